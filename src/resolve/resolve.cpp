// The resolver's driver: one plan per probe target (globs expanded), bound by the
// Resolver (resolver.h), plus the entry points that bind names and filters to a plan later.
#include "ksurf/resolve.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "ksurf/elf.h"
#include "ksurf/suggest.h"
#include "resolver.h"

namespace ksurf {
namespace detail {

std::pair<std::string_view, std::string_view> function_line(std::string_view line) {
    std::string_view name = line.substr(0, line.find(' '));
    std::size_t open = line.find('[');
    std::string_view module = open == line.npos ? "" : line.substr(open + 1, line.find(']', open) - open - 1);
    return {name, module};
}

std::string qualified(std::string_view module, std::string_view function) {
    return module.empty() ? std::string(function) : fmt::format("{}:{}", module, function);
}

}  // namespace detail

namespace {

using detail::qualified;
using detail::Resolver;

Span target_span(const Probe& probe) {
    const Target& t = probe.target;
    if (probe.kind != ProbeKind::Tracepoint) return t.name_span;
    return {t.subsystem_span.pos, t.name_span.end() - t.subsystem_span.pos};
}

// What plan() attaches to: FUNC, or SUBSYS/EVENT.
std::string target_name(const Probe& probe) {
    const Target& t = probe.target;
    return probe.kind == ProbeKind::Tracepoint ? t.subsystem + "/" + t.name : t.name;
}

// P/R PATH:FUNC: the function's place in the file, and its registers as the x86-64
// calling convention fills them: %0..%5 and $retval are longs (S/U/X and casts say more),
// and every pointer points into the process's memory.
Function user_function(const Probe& probe, const ResolveContext& ctx, PlannedProbe& out) {
    const Target& t = probe.target;
    auto at = [&](Span s, std::string message) { return SourceError(std::move(message), probe.text, s.pos, s.len); };
    std::error_code ec;
    const std::filesystem::path path = std::filesystem::absolute(t.binary, ec);
    if (ec || !std::filesystem::is_regular_file(path, ec)) throw at(t.binary_span, fmt::format("no file '{}'", t.binary));
    std::vector<ElfFunction> functions;
    try {
        functions = elf_functions(path);
    } catch (const Error& e) {
        throw at(t.binary_span, e.what());
    }
    auto found = std::ranges::find(functions, t.name, &ElfFunction::name);
    if (found == functions.end()) {
        std::vector<std::string> names;
        for (const ElfFunction& f : functions) names.push_back(f.name);
        throw at(t.name_span, fmt::format("{} has no function '{}'{}", path.string(), t.name, did_you_mean(t.name, names)));
    }
    if (t.offset && *t.offset >= std::max<std::uint64_t>(found->size, 1))
        throw at(t.offset_span, fmt::format("{} is {} bytes long: +{:#x} is past its end", t.name, found->size, *t.offset));
    out.binary = path.string();
    out.file_offset = found->file_offset + t.offset.value_or(0);
    const Type reg = ctx.btf.find_type("long");
    Function fn{t.name, {}, reg, {}, false};
    for (int i = 0; i < 6; i++) fn.params.push_back({"", reg});
    return fn;
}

// PROBE at TARGET: its own (target_name()) or one its glob matched.
PlannedProbe plan(const Probe& probe, const ResolveContext& ctx, const std::string& target,
                  std::optional<Function> found) {
    const Target& t = probe.target;
    PlannedProbe out;
    out.kind = probe.kind;
    out.text = probe.text;
    if (probe.kind == ProbeKind::Tracepoint) {
        const auto slash = target.find('/');
        out.subsystem = target.substr(0, slash);
        out.event = target.substr(slash + 1);
    } else {
        out.module = t.module;
        out.function = target;
        out.offset = t.offset.value_or(0);
        out.event = probe.kind == ProbeKind::Return ? target + ".return"
                    : t.offset                      ? fmt::format("{}+{:#x}", target, *t.offset)
                                                    : target;
        if (!t.binary.empty()) found = user_function(probe, ctx, out);
    }
    Resolver r(ctx, probe.text, out, target_span(probe), std::move(found));
    r.fields(probe.fields);
    if (probe.filter) out.filter = r.filter(probe.filter->root);
    return out;
}

// F's result; the errors of a probe read from a file name its line, as the parser's do.
template <typename F>
auto located(const Probe& probe, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const SourceError& e) {
        if (probe.origin.empty()) throw;
        throw SourceError(fmt::format("{}: {}", probe.origin, e.what()), e.source, e.pos, e.len);
    }
}

}  // namespace

PlannedProbe resolve(const Probe& probe, const ResolveContext& ctx) {
    return located(probe, [&] {
        if (probe.target.is_glob)
            throw SourceError(fmt::format("'{}' is a glob: resolve_all() expands it", probe.target.name), probe.text,
                              probe.target.name_span.pos, probe.target.name_span.len);
        return plan(probe, ctx, target_name(probe), std::nullopt);
    });
}

std::vector<PlannedProbe> resolve_all(const Probe& probe, const ResolveContext& ctx) {
    return located(probe, [&] {
        const Target& t = probe.target;
        std::vector<PlannedProbe> plans;
        if (!t.is_glob) {
            plans.push_back(plan(probe, ctx, target_name(probe), std::nullopt));
            return plans;
        }
        auto error = [&](std::string message) {
            Span s = target_span(probe);
            return SourceError(std::move(message), probe.text, s.pos, s.len);
        };
        if (probe.kind == ProbeKind::Tracepoint) {
            if (!ctx.tracepoints) throw error("tracepoint globs need the list of tracepoints (tracefs events/)");
            const std::string glob = target_name(probe);
            // FNM_PATHNAME: a '*' stays within the system or the event.
            for (const std::string& name : ctx.tracepoints())
                if (fnmatch(glob.c_str(), name.c_str(), FNM_PATHNAME) == 0) plans.push_back(plan(probe, ctx, name, std::nullopt));
            if (plans.empty()) throw error(fmt::format("no tracepoint matches '{}'", glob));
            return plans;
        }
        if (!ctx.functions) throw error("function globs need the list of traceable functions (tracefs)");
        for (const std::string& name : expand_glob(qualified(t.module, t.name), ctx.functions())) {
            std::optional<Function> found;
            try {
                found = ctx.btf.find_function(qualified(t.module, name));
            } catch (const Error&) {
                continue;  // no BTF: a compiler clone (f.isra.0) or a module built without it
            }
            plans.push_back(plan(probe, ctx, name, std::move(found)));
        }
        if (plans.empty()) throw error(fmt::format("no function with BTF matches '{}'", t.name));
        return plans;
    });
}

std::string probe_label(const PlannedProbe& p) {
    if (p.kind == ProbeKind::Tracepoint) return fmt::format("e {}/{}", p.subsystem, p.event);
    const bool ret = p.kind == ProbeKind::Return;
    const char letter = p.binary.empty() ? (ret ? 'r' : 'p') : (ret ? 'R' : 'P');
    std::string fn = p.binary.empty() ? qualified(p.module, p.function) : fmt::format("{}:{}", p.binary, p.function);
    if (p.offset && !ret) fn += fmt::format("+{:#x}", p.offset);
    return fmt::format("{} {}", letter, fn);
}

std::vector<std::string> expand_glob(std::string_view glob, const std::vector<std::string>& functions) {
    return std::move(expand_globs({std::string(glob)}, functions).front());
}

std::vector<std::vector<std::string>> expand_globs(const std::vector<std::string>& globs,
                                                   const std::vector<std::string>& functions) {
    struct Glob {
        std::string_view module;
        std::string pattern;
    };
    std::vector<Glob> parsed;
    parsed.reserve(globs.size());  // `literal` keeps views of the patterns: no reallocation
    // Plain names are looked up, not matched: each line then costs one hash lookup plus
    // the real patterns.
    std::unordered_map<std::string_view, std::vector<std::size_t>> literal;
    std::vector<std::size_t> patterns;
    for (std::size_t i = 0; i < globs.size(); i++) {
        const std::string_view g = globs[i];
        const std::size_t colon = g.find(':');
        parsed.push_back({colon == g.npos ? "" : g.substr(0, colon), std::string(colon == g.npos ? g : g.substr(colon + 1))});
        if (parsed.back().pattern.find_first_of("*?[\\") == std::string::npos)
            literal[parsed.back().pattern].push_back(i);
        else
            patterns.push_back(i);
    }
    std::vector<std::vector<std::string>> out(globs.size());
    std::string name_z;  // fnmatch wants a NUL-terminated name
    for (const std::string& line : functions) {
        // Named, not a structured binding: clang 14 (the fuzzer's build) cannot capture those.
        const auto split = detail::function_line(line);
        const std::string_view name = split.first, mod = split.second;
        auto take = [&](std::size_t i) {
            if (parsed[i].module.empty() || parsed[i].module == mod) out[i].emplace_back(name);
        };
        if (auto it = literal.find(name); it != literal.end())
            for (std::size_t i : it->second) take(i);
        if (patterns.empty()) continue;
        name_z.assign(name);
        for (std::size_t i : patterns)
            if (fnmatch(parsed[i].pattern.c_str(), name_z.c_str(), 0) == 0) take(i);
    }
    for (auto& o : out) {
        std::sort(o.begin(), o.end());
        o.erase(std::unique(o.begin(), o.end()), o.end());
    }
    return out;
}

std::size_t resolve_packet_skb(PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, plan.text, plan, {});
    return r.skb_slot();
}

std::size_t resolve_name(std::string_view name, PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, name, plan, {});
    return r.name_slot(name);
}

void resolve_filter(const Filter& filter, std::string_view source, PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, source, plan, filter.span);
    auto added = r.filter(filter.root);
    plan.filter = plan.filter ? all_of(std::move(*plan.filter), std::move(added)) : std::move(added);
}

}  // namespace ksurf
