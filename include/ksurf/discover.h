// Discovery (`ksurf list`): what this kernel lets a probe name, and the types it reads
// there. Functions come from BTF checked against available_filter_functions, tracepoints
// from tracefs events/ with their record fields and their TP_PROTO arguments
// (btf_trace_<event>), types from BTF. Each source that cannot be read is named in
// `missing`, and what it would have added is left out rather than guessed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ksurf/tracefs.h"

namespace ksurf {

class Btf;

struct ListedFunction {
    std::string name;
    std::string module;         // empty: vmlinux
    std::string prototype;      // "int tcp_v4_rcv(struct sk_buff *skb)"; empty without BTF
    std::string not_traceable;  // why p/r probes cannot attach to it; empty when they can
};

struct ListedTracepoint {
    std::string name;                    // "sched/sched_switch"
    std::vector<tracefs::Field> fields;  // the record's own, without common_*
    std::vector<std::string> args;       // TP_PROTO's types: what %0..%N read
    std::string missing;                 // why fields or args are not listed
};

struct Listing {
    std::vector<ListedFunction> functions;
    std::vector<ListedTracepoint> tracepoints;
    std::vector<std::string> missing;  // sources that could not be read, and what that leaves out
};

// What GLOB names, as `ksurf list` takes it: "tcp_*" (functions and tracepoint events),
// "mod:glob" (one module's functions), "sched/*" (tracepoints), or with a probe kind
// first ("p vfs_*", "r vfs_*", "e net/*") only that kind. Empty: everything. Reads
// available_filter_functions and events/ of the mounted tracefs, where it can.
Listing list_probes(const Btf& btf, std::string_view glob);

// Whether TEXT names a type rather than probes: "struct sk_buff", "union bpf_attr".
bool names_type(std::string_view text);

// The layout of the struct or union TYPE as pahole prints it: each member with its byte
// offset and size (bitfields: offset:bit and bits), anonymous members nested, holes and
// padding marked, then the total size.
std::string type_layout(const Btf& btf, std::string_view type);

}  // namespace ksurf
