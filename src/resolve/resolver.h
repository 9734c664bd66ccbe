// The resolver's one class, whose parts live in one file each: fields.cpp lowers field
// expressions along their chains (see include/ksurf/resolve.h), packets.cpp binds the packet
// names, filters.cpp binds comparisons and their literals; resolve.cpp drives it per probe.
// Internal to src/resolve.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/resolve.h"
#include "globals.h"
#include "packet_names.h"

namespace ksurf::detail {

using Kind = Type::Kind;
using Base = Fetch::Base;
using Access = Fetch::Access;

constexpr std::uint32_t kCommLen = 16;  // TASK_COMM_LEN
// Beyond this an offset is a typo, not a kernel layout (kprobe offsets are longs).
constexpr std::uint64_t kMaxOffset = std::numeric_limits<std::int32_t>::max();

// The name of an available_filter_functions line: "tcp_v4_rcv" or "nf_hook [nf_tables]".
std::pair<std::string_view, std::string_view> function_line(std::string_view line);

std::string qualified(std::string_view module, std::string_view function);

inline bool is_string(const PlannedField& f) { return f.fetch.access == Access::String || f.fetch.access == Access::DataLoc; }

inline unsigned value_bits(const Fetch& f) { return f.bit_size ? f.bit_size : f.size * 8; }

PlannedField builtin_field(Builtin b);

// Why a tracepoint field cannot be planned; nullptr when it can.
const char* unsupported(const tracefs::Field& f);

PlannedField record_field(const tracefs::Field& f);

// A chain's state: a value of `type` (fetch.access Value), or the object of `type` at
// (value + fetch.offset).
struct Place {
    Fetch fetch;
    Type type;
    bool object = false;
    bool user = false;  // a pointer (value or object) into user memory
    bool untyped = false;  // a kernel variable BTF does not type: a cast may take any size
};

// The object P points to, at offset 0 of it. User memory is read by the final access only:

// The object P points to, at offset 0 of it. User memory is read by the final access only:
// the loads of a chain read the kernel's.
void follow(Place& p);

class Resolver {
public:
    // FUNCTION: the function of a p/r plan when the caller already looked it up.
    Resolver(const ResolveContext& ctx, std::string_view source, PlannedProbe& plan, Span target,
             std::optional<Function> function = std::nullopt);

    void fields(const std::vector<Field>& fields);

    PlannedFilterNode filter(const FilterExpr& e);

    // The field holding NAME as a filter names it (plus the packet names), added hidden
    // when no field holds it: comm, pid, tid and cpu are the builtins unless a field or a
    // tracepoint field is called that.
    std::size_t name_slot(std::string_view name);

    // The hidden field holding the sk_buff the packet names read.
    std::size_t skb_slot();

private:
    std::string text(Span s) const { return std::string(src_.substr(std::min(s.pos, src_.size()), s.len)); }

    [[noreturn]] void fail_at(Span s, std::string message) const {
        throw SourceError(std::move(message), std::string(src_), s.pos, s.len);
    }

    // F's result; a plain Error (from BTF or tracefs) becomes a SourceError at S.
    template <typename F>
    auto guard(Span s, F&& f) const -> decltype(f()) {
        try {
            return f();
        } catch (const SourceError&) {
            throw;
        } catch (const Error& e) {
            fail_at(s, e.what());
        }
    }

    Type type(std::string_view c_name, Span s) const {
        return guard(s, [&] { return ctx_.btf.find_type(c_name, plan_.module); });
    }

    // ---- fields (fields.cpp) ----

    PlannedField field(const Field& f);

    PlannedField value_of(const Expr& e);

    static bool reads_arg(const Expr& e);

    PlannedField tracepoint_field(const Ident& id, Span s) const;

    // A record field as printed: its bytes, except a string a syscall was passed, read from
    // the user memory it is in.
    PlannedField record_value(const tracefs::Field& f) const;

    // syscalls/sys_enter_* record the arguments as the task passed them: a char pointer
    // there (`const char * filename`) is a string in user memory.
    bool user_string(const tracefs::Field& f) const;

    // Record field ID as an object of its C type (BTF), so that casts and chains apply:
    // `buf=((char __user *)buf)`, `n=((int __user *)uaddr)[0]`.
    Place record_place(const Ident& id, Span s) const;

    // How Field F asks for its value to be shown: S/U/X, ip_, b16_/B16_...
    void present(PlannedField& out, const Field& f) const;

    // The final access for the type P ends with: loaded (an object) or taken (a value).
    PlannedField lower(Place p, Span s) const;

    // atomic_t, refcount_t, kuid_t...: a struct that only wraps a number is that number, as
    // surftrace prints `users=S%0->mm->mm_users`. Its one member is at offset 0, so the
    // place keeps its address and takes the member's type.
    static void unwrap_scalar(Place& p) {
        if (std::optional<Type> inner = wrapped_scalar(p.type)) p.type = *inner;
    }

    // ---- expressions (fields.cpp) ----

    Place eval(const Expr& e);

    // Arguments are in their registers only until the function's prologue has run.
    void need_entry(Span s) const;

    Place arg(std::size_t index, Type type) const;

    Place eval(const ArgRef& a, Span s);

    Place eval(const Ident& id, Span s);

    Place eval(const RegRef& r, Span s);

    Place eval(const BuiltinRef& b, Span s);

    Place eval(const Member& m, Span);

    // P's member NAME; BASE spans what P was read from.
    void select(Place& p, std::string_view name, Span base, Span name_span) const;

    Place eval(const Index& ix, Span);

    Place eval(const Cast& c, Span s);

    // @VAR: the object at the variable's address (globals.cpp).
    Place eval(const Global& g, Span s) const;

    Place eval(const PacketHeader& h, Span);

    // Bytes from skb->data, at H's mark, to H: the headers of the layers between as
    // surftrace assumes them, sized by BTF: an Ethernet header, then an IPv4 header without
    // options (the fixed IPv6 header before an icmp6hdr). tracefs cannot read the real IPv4
    // header length before it adds it, so the BPF backend does not either.
    std::int64_t past_mark(const PacketHeader& h) const;

    // ---- packet payload: cdata[i] Sdata[i] sdata[i] ldata[i] qdata[i] ----

    struct Payload {
        std::string_view member;
        std::string_view element;
    };
    static constexpr Payload kPayload[] = {
        {"cdata", "u8"}, {"Sdata", "s8"}, {"sdata", "u16"}, {"ldata", "u32"}, {"qdata", "u64"}};

    static const Payload* payload(std::string_view member) {
        for (const Payload& p : kPayload)
            if (p.member == member) return &p;
        return nullptr;
    }

    // Whether P is a packet header struct object, or a pointer to one.
    static bool packet_struct(const Place& p);

    // HEADER->sdata[i] (surftrace): the i-th 2-byte number right after the header, and so
    // for the other widths; nullopt when IX is not such an element.
    std::optional<Place> payload_element(const Index& ix);

    // ---- packet names (packets.cpp) ----

    bool is_param(std::string_view name) const {
        return fn_ && std::ranges::any_of(fn_->params, [&](const Param& p) { return p.name == name; });
    }

    // The packet name E spells (`tcp.dport`, `ipver`), unless a parameter or a tracepoint
    // field of that name shadows it.
    std::optional<std::string> packet_expr(const Expr& e) const;

    // FIELD as the sk_buff of the packet names: an 8-byte pointer.
    Fetch skb_field(const PlannedField& field, Span s) const;

    // The struct sk_buff * the packet names read: the field named `skb`, else the first
    // parameter of that type, else (e probes) the record's `skbaddr`.
    Fetch packet_skb(Span s) const;

    PlannedField packet_field(const PacketName& n, Span s) const;

    // The hidden (or guard) field of packet name N, shared by every comparison of it.
    std::size_t packet_slot(const PacketName& n, Span s);

    PlannedComparison packet_equals(std::string_view name, std::uint64_t value, Span s);

    // Whether the packet is one of PROTO: the test a packet name's comparison is ANDed with.
    std::optional<PlannedFilterNode> protocol_test(Proto proto, Span s);

    // C on a packet name, with its protocol test.
    PlannedFilterNode packet_comparison(const Comparison& c, Span s);

    // An IPv6 address as two 8-byte halves compared with the literal's bytes in memory
    // order: the backends compare numbers of at most 8 bytes.
    PlannedFilterNode ipv6_comparison(const Comparison& c, const PacketName& n, Span s);

    // ---- filters (filters.cpp) ----

    PlannedFilterNode compare(const Comparison& c, Span s);

    // caller==SYM: the return address at entry lies in the code of SYM, [start, end) by
    // /proc/kallsyms, or of any function of that name; != is the negation. Comparisons of
    // one hidden field, which every backend can run.
    PlannedFilterNode caller_comparison(const Comparison& c, Span s);

    PlannedComparison comparison(const Comparison& c, Span s);

    std::size_t add_hidden(PlannedField f, std::string_view name) {
        f.name = name;
        f.hidden = true;
        plan_.fields.push_back(std::move(f));
        return plan_.fields.size() - 1;
    }

    // Sets OUT's subject from C's name; returns the value of a Comm/Pid/Tid subject.
    std::optional<PlannedField> bind(const Comparison& c, PlannedComparison& out);

    // C's literal as the stored bits of SUBJECT.
    std::variant<std::int64_t, std::uint64_t, std::string> literal(const Comparison& c,
                                                                   const PlannedField& subject) const;

    const ResolveContext& ctx_;
    std::string_view src_;
    PlannedProbe& plan_;
    std::optional<Function> fn_;                  // p, r
    std::optional<tracefs::EventFormat> format_;  // e
    std::optional<Fetch> skb_;                    // the field named `skb`, if any
};

}  // namespace ksurf::detail
