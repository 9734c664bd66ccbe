// The packet names (`ip.saddr`, `tcp.dport`, ...): which header and member each reads, and
// which protocol it belongs to. Internal to the resolver; packet_presence() and
// settle_packet_names() (include/ksurf/plan.h) are what backends see of it.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "ksurf/plan.h"

namespace ksurf {

// Packet names: PROTO.FIELD of the packet an sk_buff holds, and the protocol-independent
// `ipver` and `l4proto`. A comparison of a name is true only for packets of its protocol
// (Proto): the resolver ANDs it with that protocol's test, so bytes of another header
// never match; a printed name of another protocol is absent (settle_packet_names()).
using Proto = PacketPresence::Proto;

struct PacketName {
    std::string_view name;
    Proto proto;
    Layer layer;
    std::string_view header;  // struct <header>
    std::string_view member;
    unsigned swap_bits;       // wire (big-endian) numbers print in host order
    Display display;
};

// Filters only: the IPv4 protocol or the IPv6 next header, whichever the packet has.
inline constexpr std::string_view kL4Proto = "l4proto";

// The name NAME; nullptr when there is none.
const PacketName* packet_name(std::string_view name);
// The name NAME, which the resolver has checked exists.
const PacketName& packet_name_ok(std::string_view name);
// The IP protocol number a name's packets carry; 0 for IP-level names.
std::uint64_t ip_protocol(Proto p);
// The packet names whose values say whether a packet is one of PROTO.
std::vector<std::string_view> protocol_names(Proto p);

}  // namespace ksurf
