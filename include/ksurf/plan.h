// A probe resolved against BTF and lowered to what every backend needs: where to attach,
// how to fetch each field (a base value, pointer loads at byte offsets, a final access),
// and the filter over those fields. The tracefs backend prints it as kprobe_events
// fetch-args and an event filter; the BPF backend runs it in the kernel.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ksurf/ast.h"
#include "ksurf/events.h"

namespace ksurf {

// A T kept on the heap with the semantics of a value: a copy copies what it holds. It lets
// a type hold one of its own kind (a packet's Fetch holds the Fetch of its sk_buff) and
// still be copied, assigned and compared by the compiler's own members.
template <class T>
class Boxed {
public:
    Boxed() = default;
    Boxed(T value) : p_(std::make_unique<T>(std::move(value))) {}
    Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
    Boxed(Boxed&&) noexcept = default;
    Boxed& operator=(Boxed o) noexcept {
        p_ = std::move(o.p_);
        return *this;
    }
    explicit operator bool() const { return p_ != nullptr; }
    T& operator*() const { return *p_; }
    T* operator->() const { return p_.get(); }

private:
    std::unique_ptr<T> p_;
};

struct Fetch {
    enum class Base : std::uint8_t {
        Arg,        // function argument `arg` by the calling convention
        Reg,        // register `reg` (kprobe short name: "di", "r8", "ip")
        Retval,     // return value (r probes)
        Comm,       // current task's comm
        Pid,        // current thread group id
        Tid,        // current thread id
        Cpu,        // current CPU
        Record,     // e probes: the tracepoint record itself; `offset` is the field's
        Packet,     // the header at `layer` of the sk_buff that `skb` fetches
        Caller,     // p at entry: the return address into the calling function (`caller`)
        Global,     // the kernel variable `symbol`, at `address`: the chain starts there
    };
    // How the value at the end of the chain is taken.
    enum class Access : std::uint8_t {
        Value,      // the base/last-loaded value itself, truncated to `size`
        Load,       // `size` bytes at (value + offset)
        String,     // the NUL-terminated string at (value + offset), at most `size` bytes
        DataLoc,    // Record only: the tracepoint's __data_loc string whose u32 locator
                    // (len << 16 | offset from the record start) is at `offset`
    };

    Base base = Base::Arg;
    unsigned arg = 0;
    std::string reg;
    Layer layer = Layer::L3;
    Boxed<Fetch> skb;            // Packet only: yields a `struct sk_buff *`
    std::string symbol;          // Global only: its name (kprobe_events' @SYM)
    std::uint64_t address = 0;   // Global only: its address, from /proc/kallsyms

    // Applied in order before the final access: value = *(u64 *)(value + off).
    std::vector<std::int64_t> derefs;

    Access access = Access::Value;
    std::int64_t offset = 0;
    std::uint32_t size = 8;          // bytes; Access::String: the read limit
    bool is_signed = false;
    // Bitfields: `offset` is the byte holding the first bit, bit_offset (0..7) counts from
    // that byte's least significant bit, `size` is the declared type's. The reader picks the
    // container: the fewest of 1/2/4/8 bytes at `offset` covering bit_offset + bit_size
    // (kprobe `b<bit_size>@<bit_offset>/<container bits>`).
    std::uint8_t bit_offset = 0;
    std::uint8_t bit_size = 0;       // 0: not a bitfield
    // The final access (Load, String) reads user memory: the chain reached it through a
    // `__user` pointer (bpf_probe_read_user, kprobe `+u` and `ustring`).
    bool user = false;
};

struct PlannedField {
    std::string name;
    Fetch fetch;
    Display display = Display::Decimal;  // String for Access::String
    unsigned swap_bits = 0;              // byte-swap the low 16/32/64 bits before display
    std::string c_type;                  // resolved C type, for -v and -S comments
    bool hidden = false;                 // fetched only because the filter needs it
    std::string packet;                  // the packet name it reads ("udp.dport"); empty: none
    // Sent by the backends but not printed: the packet's ipver, ip.proto or ip6.nexthdr,
    // which say whether the printed packet names apply to it (settle_packet_names()).
    bool guard = false;
};

// The filter with every name bound: to a field of the plan, or to a value the kernel
// knows without a fetch.
struct PlannedComparison {
    enum class Subject : std::uint8_t { Field, Comm, Pid, Tid };

    Subject subject = Subject::Field;
    std::size_t field = 0;  // index into PlannedProbe::fields
    CmpOp op = CmpOp::Eq;
    // Integers as the field's stored bits (IPv4 literals in network byte order, swapped
    // fields' literals swapped), strings as written.
    std::variant<std::int64_t, std::uint64_t, std::string> value;
    Span span;              // of the comparison, for errors from backends
};

struct PlannedFilter;
using PlannedFilterNode = std::variant<PlannedComparison, std::unique_ptr<PlannedFilter>>;
struct PlannedFilter {
    enum class Op : std::uint8_t { And, Or, Not };
    Op op = Op::And;
    std::vector<PlannedFilterNode> operands;  // Not: exactly one
};

// Filter trees as the resolver builds them, and as tests write them by hand.
inline PlannedComparison comparison_of(std::size_t field, CmpOp op, decltype(PlannedComparison::value) value,
                                       Span span = {}) {
    PlannedComparison c;
    c.field = field;
    c.op = op;
    c.value = std::move(value);
    c.span = span;
    return c;
}

// A comparison of comm, the pid or the tid, which the kernel knows without a fetch.
inline PlannedComparison comparison_of(PlannedComparison::Subject subject, CmpOp op,
                                       decltype(PlannedComparison::value) value, Span span = {}) {
    PlannedComparison c = comparison_of(0, op, std::move(value), span);
    c.subject = subject;
    return c;
}

inline PlannedFilterNode logical(PlannedFilter::Op op, std::vector<PlannedFilterNode> operands) {
    auto out = std::make_unique<PlannedFilter>();
    out->op = op;
    out->operands = std::move(operands);
    return out;
}

template <PlannedFilter::Op Op, typename... N>
PlannedFilterNode combined(N... n) {
    std::vector<PlannedFilterNode> v;
    v.reserve(sizeof...(n));
    (v.emplace_back(std::move(n)), ...);
    return logical(Op, std::move(v));
}

template <typename... N>
PlannedFilterNode all_of(N... n) { return combined<PlannedFilter::Op::And>(std::move(n)...); }

template <typename... N>
PlannedFilterNode any_of(N... n) { return combined<PlannedFilter::Op::Or>(std::move(n)...); }

inline PlannedFilterNode negation(PlannedFilterNode n) {
    std::vector<PlannedFilterNode> one;
    one.push_back(std::move(n));
    return logical(PlannedFilter::Op::Not, std::move(one));
}

// One classic BPF instruction, struct sock_filter's layout.
struct CbpfInsn {
    std::uint16_t code = 0;
    std::uint8_t jt = 0, jf = 0;
    std::uint32_t k = 0;
};

// --pcap and -w: the packet of the sk_buff that the hidden field `skb_field` holds, tested
// in the kernel after the filter passed by a classic BPF program libpcap compiled for
// packets that start at their network header, and copied for a pcapng file. BPF only.
struct PacketCapture {
    std::size_t skb_field = 0;
    std::string expr;               // --pcap as written; empty: none
    std::vector<CbpfInsn> program;  // --pcap compiled; empty: every packet passes
    std::uint32_t snaplen = 0;      // -w: bytes copied per matched packet; 0: none
};

// --count, --sum, --hist...: the kernel adds each accepted hit to the value of its key
// (src/aggregate) instead of sending an event. BPF only.
struct PlannedAggregate {
    enum class Hist : std::uint8_t { None, Log2, Linear };

    std::vector<std::size_t> keys;      // fields, in key order
    // The last GUARDS keys are not printed: they say whether the packet names among the
    // keys apply (ipver, ip.proto, ip6.nexthdr), so packets of another protocol key as absent.
    std::size_t guards = 0;
    bool stack = false;                 // the kernel stack's id ends the key
    std::optional<std::size_t> value;   // the field added, ranged or counted into buckets
    Hist hist = Hist::None;
    std::int64_t lmin = 0;              // Linear: [lmin, lmax) in steps of lstep
    std::int64_t lmax = 0;
    std::uint64_t lstep = 1;
    std::uint16_t key_len = 0;          // bytes: the same for every probe of the run
};

struct PlannedProbe {
    ProbeKind kind = ProbeKind::Entry;
    std::string module;       // p/r: empty for vmlinux
    std::string function;     // p/r: the function (globs expanded by the resolver's caller)
    std::uint64_t offset = 0; // p FUNC+OFF
    std::string binary;       // P/R: the executable or library, an absolute path; empty: kernel
    std::uint64_t file_offset = 0;  // P/R: where FUNC+OFF is in the binary's file
    std::string subsystem;    // e
    std::string event;        // e: the tracepoint; p/r: the name events are printed with
    std::vector<PlannedField> fields;
    std::optional<PlannedFilterNode> filter;
    std::string text;         // the probe as written, for errors and -v
    std::optional<PacketCapture> packet;
    std::optional<PlannedAggregate> aggregate;
};

// Which of a probe's decoded fields (its visible ones, in order) are packet names and which
// hold the packet's protocol, so that a name of another protocol prints as absent.
struct PacketPresence {
    enum class Proto : std::uint8_t { Any, Ip, Ip6, Tcp, Udp, Icmp, Icmp6 };
    std::size_t visible = 0;                                 // the fields a backend decodes
    std::vector<std::pair<std::size_t, Proto>> names;        // position, the name's protocol
    std::optional<std::size_t> ipver, ip_proto, ip6_nexthdr; // positions
    std::vector<std::size_t> guards;                         // positions not printed
};
PacketPresence packet_presence(const PlannedProbe& plan);  // in src/resolve
// The packet names whose values say whether a packet has packet name NAME's protocol.
std::vector<std::string_view> packet_guards(std::string_view name);
// VALUES, decoded as PRESENCE's probe lays them out: the packet names of another protocol
// become Absent and the guards are removed. Values of another layout are left as they are.
void settle_packet_names(const PacketPresence& presence, std::vector<FieldValue>& values);

// How errors and -v name P: "p vfs_read+0x5", "r tcp_v4_rcv", "P /bin/bash:readline", "e sched/sched_switch".
std::string probe_label(const PlannedProbe& p);

}  // namespace ksurf
