// --pcap and -w: tcpdump filter expressions compiled by libpcap to classic BPF (run in the
// kernel by bpf/pcap.bpf.h), and pcapng files of the packets that matched.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/events.h"
#include "ksurf/plan.h"

namespace ksurf {

// EXPR (pcap-filter syntax) compiled and optimized for DLT_RAW: packets that start at their
// IP header, IPv4 or IPv6 told apart by the version nibble. ksurf reads packets from the
// network header of an sk_buff, which every IP packet has whatever its interface's link
// layer (loopback, Ethernet, tunnels); link-layer primitives (`ether host`, `vlan`) are
// rejected by libpcap for this link type. Throws libpcap's message.
std::vector<CbpfInsn> compile_pcap(std::string_view expr);

// The classic BPF program as tcpdump -d prints it, for -v and tests.
std::string dump_cbpf(const std::vector<CbpfInsn>& program);

// A pcapng file (mode 0600): one section, one LINKTYPE_RAW interface with nanosecond
// timestamps, and an Enhanced Packet Block per write() whose comment names the probe and
// the sk_buff. Wireshark, tcpdump -r and libpcap read it.
class PcapngWriter {
public:
    PcapngWriter(const std::string& path, std::uint32_t snaplen);
    ~PcapngWriter();
    PcapngWriter(const PcapngWriter&) = delete;
    PcapngWriter& operator=(const PcapngWriter&) = delete;

    // EV's packet, if it carries one; its CLOCK_MONOTONIC time becomes wall-clock time.
    void write(const Event& ev);
    std::uint64_t written() const { return written_; }

private:
    void block(std::uint32_t type, const std::string& body);

    std::FILE* f_ = nullptr;
    std::string path_;
    std::int64_t realtime_offset_ns_ = 0;
    std::uint64_t written_ = 0;
};

}  // namespace ksurf
