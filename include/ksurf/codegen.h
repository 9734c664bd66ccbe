// The filter compiler: a probe's gates and filter (the postfix program of its encoded
// ksurf_config) turned into straight-line eBPF that runs in front of the generic program.
//
// The interpreter (bpf/interp.bpf.h) runs every config with one instruction stream, so it
// cannot put a field's offset inside a load instruction: it reads even context fields with
// bpf_probe_read_kernel, through a subprogram, and keeps the filter's booleans in map
// memory. The prefix this compiles reads context fields with one `ldx` at a constant
// offset, evaluates the filter as short-circuit jumps, and counts a rejected hit itself
// (--count-filtered); a hit it accepts calls the generic program, placed right behind it
// as a subprogram, with ctx in r1; that clone's rodata has the gates and the filter
// turned off (interpreter_config()). BPF jumps and calls are relative, so the generic code
// runs unchanged behind the prefix. An aggregating probe (--count, --sum, --hist...) whose
// key and value it can fetch compiles whole: after the filter, the key is built in the
// stack and its value in the `aggs` map updated in place, with no generic program behind.
// What it cannot compile yet leaves that part, or the whole probe, on the interpreter:
// exact semantics first.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/attach.h"
#include "ksurf/bpf_config.h"
#include "ksurf/fd.h"

namespace ksurf {

// What the postfix program cfg.ops[0, nops) computes, as a tree.
struct FilterTree {
    enum class Kind : std::uint8_t { Compare, Not, And, Or };
    Kind kind = Kind::Compare;
    std::size_t op = 0;                 // Compare: the index of its comparison in cfg.ops
    std::vector<FilterTree> operands;   // Not: one; And, Or: two
};

// The tree of CFG's filter; nullopt when it has none (every hit passes). Throws Error on a
// program the interpreter would not run as a single boolean (an operator short of operands,
// values left over).
std::optional<FilterTree> filter_tree(const ksurf_config& cfg);

// The maps the compiled code addresses: the template's, shared by every clone. Without
// `aggs`, an aggregation is left to the generic program.
struct FilterMaps {
    int pids = -1;
    int scratch = -1;
    int aggs = -1;
    int agg_zero = -1;
    int agg_stacks = -1;
};
// TMPL's maps; its aggregation's when the program behind the prefix AGGREGATES as
// ksurf_run() does (bpf/probe.bpf.c), which the compiler may then do itself.
FilterMaps filter_maps(const BpfTemplate& tmpl, bool aggregates);

// The compiled code for CFG in a program attached as A, or why the probe stays
// interpreted. An aggregating configuration whose key and value the compiler can fetch
// compiles whole: the filter, then the update of the key's value (ksurf_aggregate()), with
// no generic program behind it.
struct CompiledFilter {
    std::vector<bpf_insn> code;        // empty when not compiled
    bool whole = false;                // a program of its own; else a prefix of the generic one
    std::string why_not;               // why there is no code
    std::string aggregation_why_not;   // why an aggregation is not compiled
};
CompiledFilter compile_filter(const ksurf_config& cfg, BpfAttach a, const FilterMaps& maps);

// CFG as the generic program behind a compiled prefix runs it: the gates and the filter
// are the prefix's; the filter's fields are still fetched where they are event fields or
// the aggregation's key or value, and only there.
ksurf_config interpreter_config(ksurf_config cfg);

// PROGRAM of TMPL loaded as A for TARGET with CFG: compiled whole when it AGGREGATES (as
// filter_maps()) and can be, else its filter compiled in front when it can be, else
// interpreted. RODATA makes the clone's read-only data from the config the generic program
// is to run. NOTE (when given) receives the path taken, in one phrase; empty when there
// was nothing to filter.
Fd load_filtered(const BpfTemplate& tmpl, std::string_view program, BpfAttach a, const AttachTarget& target,
                 const ksurf_config& cfg, const std::function<Fd(const ksurf_config&)>& rodata, bool aggregates,
                 std::string* note = nullptr);

}  // namespace ksurf
