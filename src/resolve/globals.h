// Kernel variables (`@jiffies`, ast.h Global): where one is and what type it has. Internal
// to the resolver, which walks a chain from the place this gives like from any other.
#pragma once

#include <string_view>

#include "ksurf/ast.h"
#include "ksurf/btf.h"
#include "ksurf/plan.h"
#include "ksurf/resolve.h"

namespace ksurf {

struct GlobalVariable {
    Fetch fetch;  // Base::Global at the variable's address, Access::Load of 8 bytes
    Type type;    // from BTF; else u64
    bool typed = false;
};

// The variable NAME: typed by a BTF VAR outside the per-CPU section, placed by
// /proc/kallsyms. Throws an Error saying why it cannot be read (a per-CPU variable, a
// kernel without CONFIG_KALLSYMS_ALL, a misspelt name, a name several statics share).
GlobalVariable global_variable(const ResolveContext& ctx, std::string_view name);

// The filter operand NAME, "@VAR" or "@VAR.MEMBER...", at SPAN of the filter's source, as the
// field expression it means.
Expr global_operand(std::string_view name, Span span);

}  // namespace ksurf
