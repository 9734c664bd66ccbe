// Semantic analysis: a parsed Probe bound to BTF (functions, parameters, struct layout) or
// to a tracepoint's format, and lowered to a PlannedProbe. Every error is a SourceError
// under the token that caused it.
//
// Lowering of a field expression, as a state walked along the chain:
//   value of type T               %0, sk, $retval, %di (unsigned long), (T)value
//   object of type T at (v + O)   what a member, an index or a header names
// `->m`/`.m` on a pointer value: the pointee object at (v + off(m)); on an object of pointer
// type: its 8 bytes become the new value (Fetch::derefs gets O), then as before; on a
// struct/union object: O += off(m). `.` on a pointer and `->` on a struct object are
// accepted for what they can only mean. `[i]` on an array object: O += i * sizeof(elem);
// on a pointer: as `->`, at i * sizeof(*p). A cast of a value retypes it; a cast of an
// object reinterprets its bytes. The final type picks the access: numbers and pointers are
// loaded (object) or taken (value); `char[N]` is a string of N bytes; a pointer to a type
// spelled char/unsigned char/signed char is followed to a string of at most
// kMaxStringPointer bytes; a struct that only wraps a scalar (atomic_t, refcount_t,
// kuid_t) is that scalar; other structs, unions and arrays are errors. A value cast to a
// `__user` pointer (every pointer of a P/R probe) is followed into user memory by the
// final access only (Fetch::user). `@(struct H *)lN SKB` is the object H at
// SKB->data past the headers below it (see parse.h).
//
// Packet names read the packet of an sk_buff at the header offsets the kernel set in it
// (not at skb->data past a mark, as `@(struct iphdr *)l3SKB->saddr` does), and
// work as field expressions (`p ip_rcv src=ip.saddr`) and in filters (`f:tcp.dport==9000`):
//   ipver (4 or 6, the version nibble of the network header)
//   ip.saddr ip.daddr (IPv4 text) ip.proto ip.ttl ip.len ip.id
//   ip6.saddr ip6.daddr (IPv6 text) ip6.nexthdr ip6.hlim ip6.plen
//   tcp.sport tcp.dport tcp.seq tcp.ack tcp.win   udp.sport udp.dport udp.len
//   icmp.type icmp.code   icmp6.type icmp6.code
//   l4proto (filters only: ip.proto of IPv4, ip6.nexthdr of IPv6)
// Multi-byte numbers print in host order; literals are IPv4/IPv6 text or numbers. A
// comparison of PROTO.NAME is true only for packets of PROTO (ip: ipver 4; ip6: ipver 6;
// tcp/udp: IP protocol 6/17 of either version; icmp: IPv4 protocol 1; icmp6: IPv6 next
// header 58), so another protocol's bytes never match: `tcp.dport!=80` skips UDP. The
// sk_buff is the probe's field named `skb` if it has one (`skb=%2`), else the function's
// first struct sk_buff * parameter, else (e probes) the record's `skbaddr`. L4 names read
// the transport header the kernel set (skb->transport_header); the IPv6 next header is the
// fixed header's, extension headers are not followed. A parameter or tracepoint field
// named like the prefix (`ip`) hides the packet names. A printed packet name agrees: for a
// packet of another protocol it is absent (settle_packet_names()).
//
// e probes print tracepoint fields by name only (`NAME=FIELD`); without fields, every
// non-common field of the format except __rel_loc and non-string dynamic arrays, which
// no Fetch::Access reads yet. Errors of probes from a file are prefixed with their origin.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/ast.h"
#include "ksurf/plan.h"
#include "ksurf/tracefs.h"

namespace ksurf {

class Kallsyms;

class Btf;

// The read limit of a string reached through a char pointer (a char[N] reads N bytes).
inline constexpr std::uint32_t kMaxStringPointer = 128;

struct ResolveContext {
    const Btf& btf;
    // The format of tracepoint SUBSYS/EVENT (e probes), normally
    // tracefs::read_format(tracefs::root(), subsys, event); throws when there is none.
    std::function<tracefs::EventFormat(std::string_view subsys, std::string_view event)> tracepoint_format;
    // The lines of tracing/available_filter_functions ("func" or "func [module]"): what
    // globs expand over and what an unknown function is compared with for a suggestion.
    // Unset: globs are an error and there are no suggestions.
    std::function<std::vector<std::string>()> functions;
    // The tracepoints as "system/event" (tracefs::events()): what e globs expand over.
    // Unset: e globs are an error.
    std::function<std::vector<std::string>()> tracepoints = {};
    // The kernel's symbols, text and data (Kallsyms::load's DATA), for `caller==FUNC` and
    // `@VAR`. Unset: caller filters and kernel variables are an error.
    std::function<const Kallsyms&()> kallsyms = {};
};

// The context of the running kernel: tracepoint formats and names from tracefs, kallsyms
// (text and data) read once when a probe first needs them, the traceable FUNCTIONS as given.
ResolveContext kernel_context(const Btf& btf, std::function<std::vector<std::string>()> functions);

// PROBE, whose target is one function or tracepoint (no glob), with its filter.
PlannedProbe resolve(const Probe& probe, const ResolveContext& ctx);

// PROBE with its glob expanded: one PlannedProbe per matching function that has BTF, in
// name order (compiler clones such as `f.isra.0` have none); exactly resolve() without a
// glob; e globs give one per matching tracepoint, in name order. Throws at the glob when
// nothing matches.
std::vector<PlannedProbe> resolve_all(const Probe& probe, const ResolveContext& ctx);

// The functions among `available_filter_functions` lines that GLOB (`*`, `?`, optionally
// "module:glob") matches, sorted and without duplicates.
std::vector<std::string> expand_glob(std::string_view glob, const std::vector<std::string>& functions);
// The same for each of GLOBS, in one pass over FUNCTIONS: `graph --funcs` and `skb --funcs`
// may name a thousand functions, and a scan of tens of thousands of lines each took seconds.
std::vector<std::vector<std::string>> expand_globs(const std::vector<std::string>& globs,
                                                   const std::vector<std::string>& functions);

// Binds FILTER (spans into SOURCE) to PLAN, a result of resolve(), and ANDs it with
// PLAN.filter (the probe's own f:) when there is one.
// A name is, in order: a field of the plan; a field of the tracepoint (e probes, so an e
// probe's common_pid is the record's); comm/$comm, common_pid/$pid, $tid, $cpu, $retval
// (r); a parameter (p/r at entry). Values that no printed field holds are added as hidden
// fields. Literals become the field's stored bits (see PlannedComparison). For the probe's
// own `f:` and `ksurf graph --where`.
void resolve_filter(const Filter& filter, std::string_view source, PlannedProbe& plan, const ResolveContext& ctx);

// The index of PLAN's field holding NAME, named as in filters (also pid, tid, cpu and
// the packet names), added hidden when no field holds it: the keys and values that
// --count, --sum, --hist... aggregate by. Errors point into NAME.
std::size_t resolve_name(std::string_view name, PlannedProbe& plan, const ResolveContext& ctx);

// The index of PLAN's hidden field `$skb`, added if needed: the sk_buff the packet names
// read, which --pcap and -w read too. Throws when the probe has none.
std::size_t resolve_packet_skb(PlannedProbe& plan, const ResolveContext& ctx);

}  // namespace ksurf
