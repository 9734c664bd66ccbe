// The resolver's packet names: the sk_buff they read, their hidden fields, and the
// protocol test each comparison of one is ANDed with (the table is packet_names.cpp).
#include <fmt/format.h>

#include <cstring>

#include "resolver.h"

namespace ksurf::detail {

// The packet name E spells (`tcp.dport`, `ipver`), unless a parameter or a tracepoint
// field of that name shadows it.
std::optional<std::string> Resolver::packet_expr(const Expr& e) const {
    std::string name;
    if (const auto* id = std::get_if<Ident>(&e.node)) {
        name = id->name;
    } else if (const auto* m = std::get_if<Member>(&e.node)) {
        const auto* base = std::get_if<Ident>(&m->base->node);
        if (!base) return std::nullopt;
        name = base->name + "." + m->name;
    } else {
        return std::nullopt;
    }
    if (!packet_name(name) && name != kL4Proto) return std::nullopt;
    std::string first = name.substr(0, name.find('.'));
    if (is_param(first) || (format_ && format_->field(first))) return std::nullopt;
    return name;
}

// FIELD as the sk_buff of the packet names: an 8-byte pointer.
Fetch Resolver::skb_field(const PlannedField& field, Span s) const {
    const Fetch& f = field.fetch;
    if (is_string(field) || f.bit_size || f.size != 8 || (field.c_type.find('*') == std::string::npos && !format_))
        fail_at(s, fmt::format("the field 'skb' chooses the packet, so it must be a struct sk_buff *, but it is {}",
                               field.c_type));
    return f;
}

// The struct sk_buff * the packet names read: the field named `skb`, else the first
// parameter of that type, else (e probes) the record's `skbaddr`.
Fetch Resolver::packet_skb(Span s) const {
    if (skb_) return *skb_;
    for (const PlannedField& f : plan_.fields)
        if (f.name == "skb" && !f.hidden) return skb_field(f, s);
    if (format_) {
        if (const tracefs::Field* f = format_->field("skbaddr")) return record_field(*f).fetch;
        fail_at(s, fmt::format("{}/{} has no skbaddr field for packet names to read", format_->system, format_->name));
    }
    need_entry(s);
    for (std::size_t i = 0; i < fn_->params.size(); ++i)
        if (is_skb_pointer(fn_->params[i].type)) return lower(arg(i, fn_->params[i].type), s).fetch;
    fail_at(s, fmt::format("{} has no struct sk_buff * parameter; name one with a field skb=EXPR", fn_->name));
}

PlannedField Resolver::packet_field(const PacketName& n, Span s) const {
    Place p{{}, type(fmt::format("struct {} *", n.header), s), false};
    p.fetch.base = Base::Packet;
    p.fetch.layer = n.layer;
    p.fetch.skb = packet_skb(s);
    select(p, n.member, s, s);
    PlannedField out;
    if (n.display == Display::IPv6) {  // a struct in6_addr: its 16 bytes
        out.c_type = p.type.name();
        out.fetch = std::move(p.fetch);
        out.fetch.access = Access::Load;
        out.fetch.size = static_cast<std::uint32_t>(p.type.size());
    } else {
        out = lower(std::move(p), s);
    }
    out.name = n.name;
    out.packet = n.name;
    out.display = n.display;
    out.swap_bits = n.swap_bits;
    return out;
}

// The hidden (or guard) field of packet name N, shared by every comparison of it.
std::size_t Resolver::packet_slot(const PacketName& n, Span s) {
    for (std::size_t i = 0; i < plan_.fields.size(); ++i)
        if ((plan_.fields[i].hidden || plan_.fields[i].guard) && plan_.fields[i].name == n.name) return i;
    return add_hidden(packet_field(n, s), n.name);
}

PlannedComparison Resolver::packet_equals(std::string_view name, std::uint64_t value, Span s) {
    return comparison_of(packet_slot(packet_name_ok(name), s), CmpOp::Eq, value, s);
}

// Whether the packet is one of PROTO: the test a packet name's comparison is ANDed with.
std::optional<PlannedFilterNode> Resolver::protocol_test(Proto proto, Span s) {
    if (proto == Proto::Any) return std::nullopt;
    if (proto == Proto::Ip || proto == Proto::Ip6) return packet_equals("ipver", proto == Proto::Ip ? 4 : 6, s);
    std::uint64_t number = ip_protocol(proto);
    auto v4 = all_of(packet_equals("ipver", 4, s), packet_equals("ip.proto", number, s));
    auto v6 = all_of(packet_equals("ipver", 6, s), packet_equals("ip6.nexthdr", number, s));
    if (proto == Proto::Icmp) return v4;
    if (proto == Proto::Icmp6) return v6;
    return any_of(std::move(v4), std::move(v6));
}

// C on a packet name, with its protocol test.
PlannedFilterNode Resolver::packet_comparison(const Comparison& c, Span s) {
    if (c.name == kL4Proto) {
        auto on = [&](std::uint64_t version, std::string_view name) {
            std::size_t f = packet_slot(packet_name_ok(name), s);
            return all_of(packet_equals("ipver", version, s), comparison_of(f, c.op, literal(c, plan_.fields[f]), s));
        };
        return any_of(on(4, "ip.proto"), on(6, "ip6.nexthdr"));
    }
    const PacketName& n = packet_name_ok(c.name);
    PlannedFilterNode cmp = n.display == Display::IPv6 ? ipv6_comparison(c, n, s) : PlannedFilterNode{};
    if (n.display != Display::IPv6) {
        std::size_t f = packet_slot(n, s);
        cmp = comparison_of(f, c.op, literal(c, plan_.fields[f]), s);
    }
    std::optional<PlannedFilterNode> test = protocol_test(n.proto, s);
    if (!test) return cmp;
    return all_of(std::move(*test), std::move(cmp));
}

// An IPv6 address as two 8-byte halves compared with the literal's bytes in memory
// order: the backends compare numbers of at most 8 bytes.
PlannedFilterNode Resolver::ipv6_comparison(const Comparison& c, const PacketName& n, Span s) {
    if (c.value.kind != Literal::Kind::Ipv6)
        fail_at(c.value.span, fmt::format("'{}' is an IPv6 address; {} is not one", c.name, c.value.text));
    if (c.op != CmpOp::Eq && c.op != CmpOp::Ne)
        fail_at(c.op_span, fmt::format("'{}' is an address: only == and != work", c.name));
    std::vector<PlannedFilterNode> halves;
    for (int half = 0; half < 2; ++half) {
        std::string name = fmt::format("{}[{}]", n.name, half);
        std::size_t f = plan_.fields.size();
        for (std::size_t i = 0; i < plan_.fields.size(); ++i)
            if (plan_.fields[i].hidden && plan_.fields[i].name == name) f = i;
        if (f == plan_.fields.size()) {
            PlannedField part = packet_field(n, s);
            part.fetch.size = 8;
            part.fetch.offset += 8 * half;
            part.display = Display::Hex;
            part.c_type = "u64";
            f = add_hidden(std::move(part), name);
        }
        std::uint64_t bits;
        std::memcpy(&bits, c.value.address.data() + 8 * half, sizeof bits);
        halves.push_back(comparison_of(f, CmpOp::Eq, bits, s));
    }
    PlannedFilterNode both = logical(PlannedFilter::Op::And, std::move(halves));
    return c.op == CmpOp::Eq ? std::move(both) : negation(std::move(both));
}

std::size_t Resolver::skb_slot() {
    for (std::size_t i = 0; i < plan_.fields.size(); ++i)
        if (plan_.fields[i].hidden && plan_.fields[i].name == "$skb") return i;
    PlannedField f;
    f.fetch = packet_skb({});
    f.display = Display::Hex;
    f.c_type = "struct sk_buff *";
    return add_hidden(std::move(f), "$skb");
}

}  // namespace ksurf::detail
