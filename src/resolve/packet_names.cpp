#include "packet_names.h"

#include "ksurf/error.h"

namespace ksurf {
namespace {

constexpr PacketName kPacketNames[] = {
    {"ipver", Proto::Any, Layer::L3, "iphdr", "version", 0, Display::Decimal},
    {"ip.saddr", Proto::Ip, Layer::L3, "iphdr", "saddr", 0, Display::IPv4},
    {"ip.daddr", Proto::Ip, Layer::L3, "iphdr", "daddr", 0, Display::IPv4},
    {"ip.proto", Proto::Ip, Layer::L3, "iphdr", "protocol", 0, Display::Decimal},
    {"ip.ttl", Proto::Ip, Layer::L3, "iphdr", "ttl", 0, Display::Decimal},
    {"ip.len", Proto::Ip, Layer::L3, "iphdr", "tot_len", 16, Display::Decimal},
    {"ip.id", Proto::Ip, Layer::L3, "iphdr", "id", 16, Display::Decimal},
    {"ip6.saddr", Proto::Ip6, Layer::L3, "ipv6hdr", "saddr", 0, Display::IPv6},
    {"ip6.daddr", Proto::Ip6, Layer::L3, "ipv6hdr", "daddr", 0, Display::IPv6},
    {"ip6.nexthdr", Proto::Ip6, Layer::L3, "ipv6hdr", "nexthdr", 0, Display::Decimal},
    {"ip6.hlim", Proto::Ip6, Layer::L3, "ipv6hdr", "hop_limit", 0, Display::Decimal},
    {"ip6.plen", Proto::Ip6, Layer::L3, "ipv6hdr", "payload_len", 16, Display::Decimal},
    {"tcp.sport", Proto::Tcp, Layer::L4, "tcphdr", "source", 16, Display::Decimal},
    {"tcp.dport", Proto::Tcp, Layer::L4, "tcphdr", "dest", 16, Display::Decimal},
    {"tcp.seq", Proto::Tcp, Layer::L4, "tcphdr", "seq", 32, Display::Decimal},
    {"tcp.ack", Proto::Tcp, Layer::L4, "tcphdr", "ack_seq", 32, Display::Decimal},
    {"tcp.win", Proto::Tcp, Layer::L4, "tcphdr", "window", 16, Display::Decimal},
    {"udp.sport", Proto::Udp, Layer::L4, "udphdr", "source", 16, Display::Decimal},
    {"udp.dport", Proto::Udp, Layer::L4, "udphdr", "dest", 16, Display::Decimal},
    {"udp.len", Proto::Udp, Layer::L4, "udphdr", "len", 16, Display::Decimal},
    {"icmp.type", Proto::Icmp, Layer::L4, "icmphdr", "type", 0, Display::Decimal},
    {"icmp.code", Proto::Icmp, Layer::L4, "icmphdr", "code", 0, Display::Decimal},
    {"icmp6.type", Proto::Icmp6, Layer::L4, "icmp6hdr", "icmp6_type", 0, Display::Decimal},
    {"icmp6.code", Proto::Icmp6, Layer::L4, "icmp6hdr", "icmp6_code", 0, Display::Decimal},
};

}  // namespace

const PacketName* packet_name(std::string_view name) {
    for (const PacketName& n : kPacketNames)
        if (n.name == name) return &n;
    return nullptr;
}

const PacketName& packet_name_ok(std::string_view name) {
    const PacketName* n = packet_name(name);
    if (!n) fail("internal: no packet name '{}'", name);
    return *n;
}

std::uint64_t ip_protocol(Proto p) {
    switch (p) {
    case Proto::Tcp: return 6;
    case Proto::Udp: return 17;
    case Proto::Icmp: return 1;
    case Proto::Icmp6: return 58;
    default: return 0;
    }
}

std::vector<std::string_view> protocol_names(Proto p) {
    switch (p) {
    case Proto::Any: return {};
    case Proto::Ip:
    case Proto::Ip6: return {"ipver"};
    case Proto::Icmp: return {"ipver", "ip.proto"};
    case Proto::Icmp6: return {"ipver", "ip6.nexthdr"};
    default: return {"ipver", "ip.proto", "ip6.nexthdr"};
    }
}

std::vector<std::string_view> packet_guards(std::string_view name) {
    const PacketName* n = packet_name(name);
    return n ? protocol_names(n->proto) : std::vector<std::string_view>{};
}

PacketPresence packet_presence(const PlannedProbe& plan) {
    PacketPresence out;
    for (const PlannedField& f : plan.fields) {
        if (f.hidden) continue;
        const std::size_t at = out.visible++;
        if (f.guard) out.guards.push_back(at);
        if (f.packet.empty()) continue;
        const Proto proto = packet_name_ok(f.packet).proto;
        if (proto != Proto::Any && !f.guard) out.names.emplace_back(at, proto);
        if (f.packet == "ipver") out.ipver = at;
        if (f.packet == "ip.proto") out.ip_proto = at;
        if (f.packet == "ip6.nexthdr") out.ip6_nexthdr = at;
    }
    return out;
}

void settle_packet_names(const PacketPresence& presence, std::vector<FieldValue>& values) {
    if ((presence.names.empty() && presence.guards.empty()) || values.size() != presence.visible) return;
    auto is = [&](const std::optional<std::size_t>& at, std::uint64_t want) {
        if (!at) return false;
        const auto& v = values[*at].value.v;
        if (const auto* u = std::get_if<std::uint64_t>(&v)) return *u == want;
        const auto* i = std::get_if<std::int64_t>(&v);
        return i && static_cast<std::uint64_t>(*i) == want;
    };
    // The same tests protocol_test() puts in front of a filter's comparison.
    const bool v4 = is(presence.ipver, 4), v6 = is(presence.ipver, 6);
    auto of = [&](Proto p) {
        const std::uint64_t l4 = ip_protocol(p);
        switch (p) {
        case Proto::Any: return true;
        case Proto::Ip: return v4;
        case Proto::Ip6: return v6;
        case Proto::Icmp: return v4 && is(presence.ip_proto, l4);
        case Proto::Icmp6: return v6 && is(presence.ip6_nexthdr, l4);
        default: return (v4 && is(presence.ip_proto, l4)) || (v6 && is(presence.ip6_nexthdr, l4));
        }
    };
    std::vector<std::size_t> absent;
    for (const auto& [at, proto] : presence.names)
        if (!of(proto)) absent.push_back(at);
    // Only once every test has read the values: a printed ip.proto is one the tests read.
    for (std::size_t at : absent) values[at].value.v = Absent{};
    for (auto it = presence.guards.rbegin(); it != presence.guards.rend(); ++it)
        values.erase(values.begin() + static_cast<std::ptrdiff_t>(*it));
}

}  // namespace ksurf
