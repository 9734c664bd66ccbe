// --pcap's compiler and -w's writer, checked against libpcap itself: its own matcher
// (bpf_filter) on hand-made packets, and its pcapng reader on what PcapngWriter wrote.
#include "ksurf/pcap.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "ksurf/error.h"

namespace ksurf {
namespace {

// A minimal IPv4 (or IPv6) packet with a TCP/UDP header whose destination port is DPORT.
std::string packet(int version, std::uint8_t proto, std::uint16_t dport) {
    std::string p(version == 4 ? 20 : 40, '\0');
    if (version == 4) {
        p[0] = 0x45;
        p[9] = static_cast<char>(proto);
        p[12] = 10, p[13] = 1, p[14] = 2, p[15] = 3;  // 10.1.2.3
        p[16] = 127, p[19] = 1;
    } else {
        p[0] = 0x60;
        p[6] = static_cast<char>(proto);
        p[23] = 1, p[39] = 1;  // ::1 -> ::1
    }
    std::string l4(20, '\0');
    l4[2] = static_cast<char>(dport >> 8);
    l4[3] = static_cast<char>(dport);
    p += l4;
    if (version == 4) p[3] = static_cast<char>(p.size());
    else p[5] = 20;
    return p;
}

bool matches(const std::vector<CbpfInsn>& prog, const std::string& pkt) {
    std::vector<bpf_insn> insns;
    for (const auto& i : prog) insns.push_back({i.code, i.jt, i.jf, i.k});
    const auto* data = reinterpret_cast<const u_char*>(pkt.data());
    return bpf_filter(insns.data(), data, static_cast<u_int>(pkt.size()), static_cast<u_int>(pkt.size())) != 0;
}

TEST(Pcap, CompilesForPacketsFromTheNetworkHeader) {
    auto tcp9000 = compile_pcap("tcp and dst port 9000");
    EXPECT_TRUE(matches(tcp9000, packet(4, 6, 9000)));
    EXPECT_TRUE(matches(tcp9000, packet(6, 6, 9000)));
    EXPECT_FALSE(matches(tcp9000, packet(4, 6, 9001)));
    EXPECT_FALSE(matches(tcp9000, packet(4, 17, 9000)));
    auto host = compile_pcap("host 10.1.2.3");
    EXPECT_TRUE(matches(host, packet(4, 17, 53)));
    EXPECT_FALSE(matches(host, packet(6, 17, 53)));
    EXPECT_TRUE(matches(compile_pcap("icmp6"), packet(6, 58, 0)));
    EXPECT_FALSE(matches(compile_pcap("icmp6"), packet(4, 1, 0)));
    // What the kernel interpreter runs must fit its slots.
    for (const char* e : {"tcp and dst port 9000", "host 10.1.2.3", "icmp6", "udp or icmp"})
        EXPECT_LE(compile_pcap(e).size(), 64u) << e;
}

TEST(Pcap, BadExpressionsAreOneLineErrors) {
    try {
        compile_pcap("tcp and port");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("--pcap 'tcp and port': ", 0), 0u) << e.what();
    }
    EXPECT_THROW(compile_pcap("ether host 1:2:3:4:5:6"), Error);  // no link layer in DLT_RAW
}

TEST(Pcapng, LibpcapReadsWhatWasWritten) {
    const std::string file = (std::filesystem::temp_directory_path() / ("ksurf-pcapng-" + std::to_string(getpid()))).string();
    {
        PcapngWriter w(file, 128);
        Event ev;
        ev.probe = "ip_rcv";
        ev.ts_ns = 5'000'000'123;
        for (std::uint16_t port : {9000, 9001}) {
            ev.packet = packet(4, 6, port);
            ev.packet_len = static_cast<std::uint32_t>(ev.packet.size()) + 100;  // more on the wire
            ev.skb = 0xffff888012345678;
            w.write(ev);
        }
        ev.packet.clear();  // no packet: nothing written
        w.write(ev);
        EXPECT_EQ(w.written(), 2u);
    }
    struct stat st {};
    ASSERT_EQ(stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* in = pcap_open_offline(file.c_str(), err);
    ASSERT_NE(in, nullptr) << err;
    EXPECT_EQ(pcap_datalink(in), DLT_RAW);
    pcap_pkthdr* h;
    const u_char* data;
    std::vector<std::uint16_t> ports;
    while (pcap_next_ex(in, &h, &data) == 1) {
        EXPECT_EQ(h->caplen, 40u);
        EXPECT_EQ(h->len, 140u);
        ports.push_back(static_cast<std::uint16_t>(data[22] << 8 | data[23]));
    }
    pcap_close(in);
    std::filesystem::remove(file);
    EXPECT_EQ(ports, (std::vector<std::uint16_t>{9000, 9001}));
}

}  // namespace
}  // namespace ksurf
