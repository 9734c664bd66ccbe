#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "ksurf/btf.h"
#include "ksurf/discover.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

struct Query {
    bool functions = true;
    bool tracepoints = true;
    std::string module;   // functions of this module only
    std::string pattern;  // empty: every name
};

Query parse_query(std::string_view glob) {
    Query q;
    if (glob.size() > 2 && glob[1] == ' ' && (glob[0] == 'p' || glob[0] == 'r' || glob[0] == 'e')) {
        q.functions = glob[0] != 'e';
        q.tracepoints = glob[0] == 'e';
        glob.remove_prefix(2);
    }
    if (const auto colon = glob.find(':'); colon != glob.npos) {
        q.tracepoints = false;
        q.module = glob.substr(0, colon);
        glob.remove_prefix(colon + 1);
    }
    // Functions have no '/': a glob with one names tracepoints by system and event.
    if (glob.find('/') != glob.npos) q.functions = false;
    q.pattern = glob;
    return q;
}

bool matches(const std::string& pattern, std::string_view name) {
    return pattern.empty() || fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0;
}

// "tcp_v4_rcv" or "nf_hook [nf_tables]" as the name and "module" keys a set holds.
std::string function_key(std::string_view name, std::string_view module) { return fmt::format("{} {}", name, module); }

std::string prototype(const Function& f) {
    std::vector<std::string> params;
    for (const Param& p : f.params) params.push_back(p.type.declaration(p.name));
    if (f.variadic) params.emplace_back("...");
    return fmt::format("{}({})", f.ret.declaration(f.name), params.empty() ? "void" : fmt::to_string(fmt::join(params, ", ")));
}

void list_functions(const Btf& btf, const Query& q, Listing& out) {
    std::string why;
    const auto lines = tracefs::available_filter_functions(&why);
    if (lines.empty())
        out.missing.push_back(fmt::format("{}: functions are listed from BTF, not checked for traceability", why));
    std::unordered_set<std::string> traceable;  // keys of available_filter_functions' lines
    for (std::string_view line : lines) {
        const auto space = line.find(' ');
        // " [module]" after the name; some kernels add more after it.
        std::string_view module;
        if (space != line.npos && line.substr(space).starts_with(" [")) {
            module = line.substr(space + 2);
            module = module.substr(0, module.find(']'));
        }
        traceable.insert(function_key(line.substr(0, space), module));
    }
    auto wanted_module = [&](std::string_view module) { return q.module.empty() || matches(q.module, module); };
    std::unordered_set<std::string> with_btf;
    for (const Function& f : btf.functions(true, [&](std::string_view name) { return matches(q.pattern, name); })) {
        if (!wanted_module(f.module)) continue;
        const std::string key = function_key(f.name, f.module);
        if (!with_btf.insert(key).second) continue;
        ListedFunction l{f.name, f.module, prototype(f), {}};
        if (!lines.empty() && !traceable.contains(key))
            l.not_traceable = "not in available_filter_functions: notrace, __init or only inlined";
        out.functions.push_back(std::move(l));
    }
    for (const std::string& key : traceable) {
        const auto space = key.find(' ');
        const std::string name = key.substr(0, space), module = key.substr(space + 1);
        if (with_btf.contains(key) || !matches(q.pattern, name) || !wanted_module(module)) continue;
        out.functions.push_back({name, module, {}, "no BTF prototype (a compiler clone such as .isra.0, or a module without BTF)"});
    }
    std::sort(out.functions.begin(), out.functions.end(),
              [](const ListedFunction& a, const ListedFunction& b) { return std::tie(a.name, a.module) < std::tie(b.name, b.module); });
}

void list_tracepoints(const Btf& btf, const Query& q, Listing& out) {
    const auto root = tracefs::find_mount();
    if (!root) {
        out.missing.emplace_back("tracefs is not mounted: tracepoints are not listed");
        return;
    }
    std::string why;
    const auto events = tracefs::events(*root, &why);
    if (!why.empty()) {
        out.missing.push_back(fmt::format("{}: tracepoints are not listed", why));
        return;
    }
    const bool by_system = q.pattern.find('/') != std::string::npos;
    for (const std::string& name : events) {
        const auto slash = name.find('/');
        const std::string_view event = std::string_view(name).substr(slash + 1);
        if (!matches(q.pattern, by_system ? std::string_view(name) : event)) continue;
        ListedTracepoint tp{name, {}, {}, {}};
        try {
            for (auto& f : tracefs::read_format(*root, name.substr(0, slash), event).fields)
                if (!f.is_common()) tp.fields.push_back(std::move(f));
        } catch (const Error& e) {
            tp.missing = e.what();
        }
        try {
            for (const Param& p : btf.find_tracepoint_proto(event).params) tp.args.push_back(p.type.name());
        } catch (const Error&) {
            // Events without a tracepoint behind them (syscalls/*, ftrace/*) have no TP_PROTO.
        }
        out.tracepoints.push_back(std::move(tp));
    }
}

}  // namespace

Listing list_probes(const Btf& btf, std::string_view glob) {
    const Query q = parse_query(glob);
    Listing out;
    if (q.functions) list_functions(btf, q, out);
    if (q.tracepoints) list_tracepoints(btf, q, out);
    return out;
}

bool names_type(std::string_view text) {
    return text.starts_with("struct ") || text.starts_with("union ");
}

}  // namespace ksurf
