// The one-line summary of a packet from the bytes at its network header, as `ksurf skb`
// prints it next to each function.
#include <arpa/inet.h>
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ksurf/error.h"
#include "ksurf/skb.h"

namespace ksurf {
namespace {

std::string address(int family, const std::uint8_t* p) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    inet_ntop(family, p, text.data(), text.size());
    return family == AF_INET6 ? fmt::format("[{}]", text.data()) : std::string(text.data());
}

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

// TCP's flags as tcpdump writes them: S, F, R, P, U, and '.' for ACK.
std::string tcp_flags(std::uint8_t f) {
    std::string s;
    for (auto [bit, c] : {std::pair{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'}, {0x20, 'U'}, {0x10, '.'}})
        if (f & bit) s += c;
    return s;
}

std::string icmp_type(bool v6, std::uint8_t type) {
    switch (v6 ? type + 1000 : type) {
    case 0: case 1129: return "echo-reply";
    case 8: case 1128: return "echo-request";
    case 3: case 1001: return "unreachable";
    case 11: case 1003: return "time-exceeded";
    case 1135: return "neighbor-solicitation";
    case 1136: return "neighbor-advertisement";
    case 1133: return "router-solicitation";
    case 1134: return "router-advertisement";
    default: return fmt::format("type {}", type);
    }
}

std::string text(const char* s, std::size_t cap) { return printable(std::string(s, strnlen(s, cap))); }

std::string net_of(const ksurf_skb_rec& r) {
    return describe_packet(std::span(r.net, std::min<std::size_t>(r.net_len, sizeof r.net)));
}

std::string return_value(std::uint64_t v, SkbReturn ret) {
    switch (ret) {
    case SkbReturn::Pointer: return fmt::format("{:#x}", v);
    case SkbReturn::Unsigned: return fmt::format("{}", v);
    default: return fmt::format("{}", static_cast<std::int64_t>(v));
    }
}

const char* kind_name(std::uint8_t kind) {
    switch (kind) {
    case KSURF_SKB_CALL: return "call";
    case KSURF_SKB_RETURN: return "return";
    case KSURF_SKB_CLONE: return "clone";
    default: return "free";
    }
}

}  // namespace

std::string describe_packet(std::span<const std::uint8_t> net) {
    if (net.empty()) return "";
    const int version = net[0] >> 4;
    int family, proto;
    std::size_t l4, saddr, daddr;
    bool fragment = false;
    if (version == 4 && net.size() >= 20) {
        family = AF_INET, proto = net[9], l4 = (net[0] & 0xf) * 4u, saddr = 12, daddr = 16;
        fragment = (be16(&net[6]) & 0x1fff) != 0;  // only the first fragment has the ports
    } else if (version == 6 && net.size() >= 40) {
        family = AF_INET6, proto = net[6], l4 = 40, saddr = 8, daddr = 24;
    } else {
        return "";
    }
    const std::string src = address(family, &net[saddr]), dst = address(family, &net[daddr]);
    const auto rest = net.size() > l4 && !fragment ? net.subspan(l4) : std::span<const std::uint8_t>{};
    switch (proto) {
    case 6:
        if (rest.size() >= 14)
            return fmt::format("TCP {}:{} > {}:{} [{}]", src, be16(&rest[0]), dst, be16(&rest[2]), tcp_flags(rest[13]));
        return fmt::format("TCP {} > {}", src, dst);
    case 17:
        if (rest.size() >= 4) return fmt::format("UDP {}:{} > {}:{}", src, be16(&rest[0]), dst, be16(&rest[2]));
        return fmt::format("UDP {} > {}", src, dst);
    case 1:
    case 58: {
        const char* name = proto == 1 ? "ICMP" : "ICMP6";
        if (!rest.empty()) return fmt::format("{} {} > {} {}", name, src, dst, icmp_type(proto == 58, rest[0]));
        return fmt::format("{} {} > {}", name, src, dst);
    }
    default:
        return fmt::format("{} {} > {} proto {}", version == 4 ? "IPv4" : "IPv6", src, dst, proto);
    }
}


std::uint64_t PacketNumbers::on(const ksurf_skb_rec& rec) {
    if (rec.kind == KSURF_SKB_CALL && rec.first) return by_skb_[rec.skb] = next_++;
    auto it = by_skb_.find(rec.skb);
    const std::uint64_t n = it == by_skb_.end() ? 0 : it->second;
    if (rec.kind == KSURF_SKB_CLONE && n) by_skb_[rec.value] = n;
    return n;
}

std::string format_skb_record(const ksurf_skb_rec& r, std::uint64_t packet, std::string_view function, SkbReturn ret) {
    std::string line = fmt::format("{}-{} [{:03}] {}.{:06}: #{} skb={:x} {}", text(r.comm, sizeof r.comm), r.pid, r.cpu,
                                   r.ts_ns / 1000000000, r.ts_ns % 1000000000 / 1000, packet, r.skb, function);
    switch (r.kind) {
    case KSURF_SKB_CALL: {
        const std::string dev = r.ifindex ? fmt::format("{}({})", text(r.ifname, sizeof r.ifname), r.ifindex) : "-";
        line += fmt::format("{} dev={} len={}", r.first ? " (matched)" : "", dev, r.len);
        if (auto p = net_of(r); !p.empty()) line += " " + p;
        break;
    }
    case KSURF_SKB_RETURN: line += " returned " + return_value(r.value, ret); break;
    case KSURF_SKB_CLONE: line += fmt::format(" -> skb={:x}", r.value); break;
    default: line += " freed"; break;
    }
    return line;
}

std::string skb_record_json(const ksurf_skb_rec& r, std::uint64_t packet, std::string_view function, SkbReturn ret) {
    nlohmann::ordered_json j;
    j["time_ns"] = r.ts_ns;
    j["packet"] = packet;
    j["skb"] = fmt::format("0x{:x}", r.skb);
    j["event"] = kind_name(r.kind);
    j["function"] = function;
    j["cpu"] = r.cpu;
    j["pid"] = r.pid;
    j["tgid"] = r.tgid;
    j["comm"] = text(r.comm, sizeof r.comm);
    if (r.kind == KSURF_SKB_CALL) {
        j["matched"] = r.first != 0;
        j["dev"] = text(r.ifname, sizeof r.ifname);
        j["ifindex"] = r.ifindex;
        j["len"] = r.len;
        j["summary"] = net_of(r);
    }
    if (r.kind == KSURF_SKB_RETURN && ret == SkbReturn::Pointer) j["retval"] = return_value(r.value, ret);
    if (r.kind == KSURF_SKB_RETURN && ret == SkbReturn::Unsigned) j["retval"] = r.value;
    if (r.kind == KSURF_SKB_RETURN && ret == SkbReturn::Signed) j["retval"] = static_cast<std::int64_t>(r.value);
    if (r.kind == KSURF_SKB_CLONE) j["clone"] = fmt::format("0x{:x}", r.value);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace ksurf
