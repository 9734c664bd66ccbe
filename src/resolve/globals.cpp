#include "globals.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "ksurf/error.h"
#include "ksurf/kallsyms.h"
#include "ksurf/suggest.h"

namespace ksurf {

GlobalVariable global_variable(const ResolveContext& ctx, std::string_view name) {
    std::optional<Variable> var = ctx.btf.find_variable(name);
    // Each CPU has its own copy of these, at this offset into its per-CPU area.
    if (var && var->per_cpu) fail("'{}' is a per-CPU variable, which ksurf cannot read yet", name);
    if (!ctx.kallsyms) fail("kernel variables need the kernel's symbols (/proc/kallsyms)");
    const Kallsyms& syms = ctx.kallsyms();
    const auto found = syms.find_data(name);
    if (found.empty()) {
        if (!syms.find(name).empty()) fail("'{}' is a kernel function, not a variable", name);
        if (!syms.lists_variables())
            fail("kallsyms lists no data symbol '{}' (this kernel is built without CONFIG_KALLSYMS_ALL)", name);
        std::vector<std::string_view> names;
        for (const KernelSymbol& s : syms.data_symbols()) names.push_back(s.name);
        fail("no kernel variable '{}' in /proc/kallsyms{}", name, did_you_mean(name, names));
    }
    if (found.size() > 1)
        fail("{} kernel variables are named '{}' (statics of different files or modules): ksurf cannot tell which",
             found.size(), name);
    GlobalVariable g;
    g.fetch.base = Fetch::Base::Global;
    g.fetch.symbol = name;
    g.fetch.address = found.front()->addr;
    g.fetch.access = Fetch::Access::Load;
    g.fetch.size = 8;
    g.typed = var.has_value();
    g.type = var ? var->type : ctx.btf.find_type("u64");
    return g;
}

Expr global_operand(std::string_view name, Span span) {
    std::size_t end = name.find('.');
    Expr e{Global{std::string(name.substr(1, end - 1))}, {span.pos, std::min(end, name.size())}};
    while (end != std::string_view::npos) {
        const std::size_t from = end + 1;
        end = name.find('.', from);
        const std::string_view member = name.substr(from, end - from);
        Span whole{span.pos, (end == std::string_view::npos ? name.size() : end)};
        e = Expr{Member{std::make_unique<Expr>(std::move(e)), std::string(member), false, {span.pos + from, member.size()}},
                 whole};
    }
    return e;
}

}  // namespace ksurf
