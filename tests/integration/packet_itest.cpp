// Packet header fields of an sk_buff, read in the kernel and filtered there: loopback ICMP
// the test sends itself, with counts known in advance, on each backend that can run it.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <pcap/pcap.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "backends.h"
#include "process.h"
#include "traffic.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

constexpr int kFromLoopback = 4;  // echo requests 127.0.0.1 -> 127.0.0.1
constexpr int kFromOther = 3;     // echo requests 127.0.0.2 -> 127.0.0.1

class Packet : public testing::TestWithParam<const char*> {};

TEST_P(Packet, IcmpFromLoopbackOnlyWithHeaderFields) {
    if (!kernel_can_probe_functions()) {
        ASSERT_FALSE(in_vm_matrix()) << "every matrix kernel can probe functions";
        GTEST_SKIP() << "neither fentry nor kprobes on this kernel";
    }
    Process p({ksurf_bin(), "--backend", GetParam(), "-d", "3",
               "p ip_rcv proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)l3%0->saddr "
               "ip_dst=@(struct iphdr *)%0->daddr f:proto==1&&ip_src==127.0.0.1"});
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << "did not attach";
    ping("127.0.0.1", kFromLoopback);
    ping("127.0.0.2", kFromOther);
    udp(5);
    auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;

    int to_loopback = 0, to_other = 0;
    static const std::regex line(R"(: ip_rcv: proto=(\d+) ip_src=(\S+) ip_dst=(\S+)$)");
    for (const auto& l : lines(r.out)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(l, m, line)) << l;
        EXPECT_EQ(m[1], "1") << l;
        EXPECT_EQ(m[2], "127.0.0.1") << l;
        to_loopback += m[3] == "127.0.0.1";
        to_other += m[3] == "127.0.0.2";
    }
    // Each request to 127.0.0.1 from itself arrives with its reply; of the requests from
    // 127.0.0.2 only the replies (from 127.0.0.1) pass the filter.
    EXPECT_EQ(to_loopback, 2 * kFromLoopback) << r.out;
    EXPECT_EQ(to_other, kFromOther) << r.out;
}

// ip_rcv lines `... len=N sport=N dport=N`: only segments to 9000, of which exactly
// kExchanges carry a request.
void expect_only_port_9000(const Result& r) {
    static const std::regex line(R"(: ip_rcv: src=127\.0\.0\.1 len=(\d+) dport=(\d+)$)");
    int requests = 0, segments = 0;
    for (const auto& l : lines(r.out)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(l, m, line)) << l;
        EXPECT_EQ(m[2], "9000") << l;
        segments++;
        requests += std::stoi(m[1]) > kRequestBytes;
    }
    EXPECT_EQ(requests, kExchanges) << r.out;
    // The handshake's SYN and ACK and the FIN go to 9000 too.
    EXPECT_GE(segments, kExchanges + 3) << r.out;
}

class PacketNames : public testing::TestWithParam<const char*> {};

TEST_P(PacketNames, TcpDportFilterSeesOnlyPort9000) {
    need_function_probes();
    if (IsSkipped()) return;
    Process p({ksurf_bin(), "--backend", GetParam(), "-d", "4",
               "p ip_rcv src=ip.saddr len=ip.len dport=tcp.dport f:tcp.dport==9000"});
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << "did not attach";
    mixed_traffic();
    auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    expect_only_port_9000(r);
}

// 16-byte fields (IPv6 addresses) print on BPF only.
TEST(PacketNamesBpf, Ipv6AddressAndUdpPort) {
    need_function_probes();
    if (IsSkipped()) return;
    Process p({ksurf_bin(), "-d", "4",
               "p ipv6_rcv src=ip6.saddr dport=udp.dport f:ip6.daddr==::1&&udp.dport==9002"});
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << "did not attach";
    mixed_traffic();
    auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    static const std::regex line(R"(: ipv6_rcv: src=::1 dport=9002$)");
    int n = 0;
    for (const auto& l : lines(r.out)) {
        EXPECT_TRUE(std::regex_search(l, line)) << l;
        n++;
    }
    EXPECT_EQ(n, kUdp6) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Backends, PacketNames, testing::Values("auto", "tracefs"));

TEST(Pcap, TcpDstPortInKernelAndPcapngFile) {
    need_function_probes();
    if (IsSkipped()) return;
    const char* dir = std::getenv("KSURF_VM_OUT");
    const std::string file = fmt::format("{}/ksurf-pcap-{}.pcapng", dir ? dir : "/tmp", getpid());
    Process p({ksurf_bin(), "-d", "4", "--pcap", "tcp and dst port 9000", "-w", file,
               "p ip_rcv src=ip.saddr len=ip.len dport=tcp.dport"});
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << "did not attach";
    mixed_traffic();
    auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    expect_only_port_9000(r);

    struct stat st {};
    ASSERT_EQ(stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* in = pcap_open_offline(file.c_str(), err);
    ASSERT_NE(in, nullptr) << err;
    EXPECT_EQ(pcap_datalink(in), DLT_RAW);
    pcap_pkthdr* h;
    const u_char* data;
    int packets = 0, requests = 0;
    while (pcap_next_ex(in, &h, &data) == 1) {
        ASSERT_GE(h->caplen, 24u);
        ASSERT_EQ(data[0] >> 4, 4) << "IPv4";
        EXPECT_EQ(data[9], IPPROTO_TCP);
        const unsigned l4 = (data[0] & 0xf) * 4;
        ASSERT_GE(h->caplen, l4 + 4);
        EXPECT_EQ((data[l4 + 2] << 8) | data[l4 + 3], 9000);
        packets++;
        requests += h->len > kRequestBytes;
    }
    pcap_close(in);
    std::remove(file.c_str());
    EXPECT_EQ(packets, static_cast<int>(lines(r.out).size())) << "one packet per event";
    EXPECT_EQ(requests, kExchanges);
}

// Filters that cover the code libpcap emits for IPv4, IPv6 and alternatives must pass the
// verifier of every kernel and select what they say.
TEST(Pcap, RealisticFiltersSelectTheirPackets) {
    need_function_probes();
    if (IsSkipped()) return;
    struct Case {
        const char* expr;
        const char* probe;
        std::regex line;
    };
    const Case cases[] = {
        {"host 127.0.0.2", "p ip_rcv src=ip.saddr dst=ip.daddr", std::regex(R"(src=127\.0\.0\.2|dst=127\.0\.0\.2)")},
        {"ip6 and udp", "p ipv6_rcv src=ip6.saddr dport=udp.dport", std::regex(R"(src=::1 dport=9002$)")},
        {"udp or icmp", "p ip_rcv proto=ip.proto", std::regex(R"(proto=(17|1)$)")},
        // Echo request and reply, and the port unreachable (1) a datagram to a closed UDP
        // port may draw.
        {"icmp6", "p ipv6_rcv nh=ip6.nexthdr type=icmp6.type", std::regex(R"(nh=58 type=(1|128|129)$)")},
    };
    for (const auto& c : cases) {
        Process p({ksurf_bin(), "-d", "3", "--pcap", c.expr, c.probe});
        ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << c.expr << ": did not attach";
        ping("127.0.0.2", 2);
        udp(3);
        udp6(kUdp6);
        ping6(2);
        auto r = p.finish();
        ASSERT_EQ(r.status, 0) << c.expr << ": " << r.err;
        auto ls = lines(r.out);
        EXPECT_FALSE(ls.empty()) << c.expr;
        for (const auto& l : ls) EXPECT_TRUE(std::regex_search(l, c.line)) << c.expr << ": " << l;
    }
}

TEST(Pcap, TracefsSaysItNeedsBpf) {
    auto r = run({ksurf_bin(), "--backend", "tracefs", "--pcap", "tcp", "p ip_rcv"});
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.err, "ksurf: --pcap and -w need the BPF backend: tracefs cannot run a packet filter or copy packets in the kernel\n");
}

// The printed packet names of one event: name -> value, nullopt when absent (`-` in text,
// left out of JSON).
using Printed = std::map<std::string, std::optional<std::string>>;

// The names an event prints, from text (`... probe: a=1 b=-`) or JSON lines.
std::vector<Printed> printed(const std::string& out, bool json, const std::vector<std::string>& names) {
    std::vector<Printed> events;
    for (const auto& l : lines(out)) {
        Printed e;
        if (json) {
            const auto j = nlohmann::json::parse(l);
            if (j.contains("summary")) continue;
            for (const auto& n : names)
                if (j["fields"].contains(n)) e[n] = j["fields"][n].dump();
                else e[n] = std::nullopt;
        } else {
            for (const auto& n : names) {
                std::smatch m;
                const std::regex field(" " + n + "=(\\S+)");
                EXPECT_TRUE(std::regex_search(l, m, field)) << n << " missing: " << l;
                if (m[1] != "-") e[n] = m[1];
                else e[n] = std::nullopt;
            }
        }
        events.push_back(std::move(e));
    }
    return events;
}

// Printing agrees with filters: a name prints for the packets a comparison of it can be
// true for, and is absent for the others. The test sends TCP to 9000, UDP to 9000, ICMP
// echo requests and UDP over IPv6 to 9002, and expects to have seen each.
void expect_names_of_the_packets_protocol(const std::vector<Printed>& events, bool ipv6) {
    bool tcp = false, udp = false, icmp = false, udp6 = false;
    for (const auto& e : events) {
        std::string text;
        for (const auto& [n, v] : e) text += fmt::format(" {}={}", n, v.value_or("-"));
        ASSERT_TRUE(e.at("v")) << "ipver is every packet's:" << text;
        const int v = std::stoi(*e.at("v"));
        ASSERT_TRUE(v == 4 || v == 6) << text;
        EXPECT_EQ(e.at("proto").has_value(), v == 4) << text;
        EXPECT_EQ(e.at("nh").has_value(), v == 6) << text;
        const int l4 = std::stoi(*e.at(v == 4 ? "proto" : "nh"));
        EXPECT_EQ(e.at("udp").has_value(), l4 == 17) << text;
        EXPECT_EQ(e.at("tcp").has_value(), l4 == 6) << text;
        EXPECT_EQ(e.at("icmp").has_value(), v == 4 && l4 == 1) << text;
        tcp |= e.at("tcp") == "9000";
        udp |= v == 4 && e.at("udp") == "9000";
        icmp |= e.at("icmp") == "8";
        udp6 |= v == 6 && e.at("udp") == "9002";
    }
    EXPECT_TRUE(tcp && udp && icmp) << "tcp " << tcp << " udp " << udp << " icmp " << icmp;
    EXPECT_TRUE(udp6 || !ipv6);
}

const std::vector<std::string> kPrintedNames{"v", "proto", "nh", "udp", "tcp", "icmp"};
constexpr const char* kPrintedFields = "v=ipver proto=ip.proto nh=ip6.nexthdr udp=udp.dport tcp=tcp.dport icmp=icmp.type";

// ksurf ARGS (with --json when JSON) while mixed traffic flows.
Result run_with_traffic(std::vector<std::string> args, bool json) {
    if (json) args.push_back("--json");
    Process p(args);
    if (p.wait_for_err("Hit Ctrl-C to end.", 30s))
        mixed_traffic();
    else
        ADD_FAILURE() << "did not attach";
    return p.finish();
}

class PacketNamesPrinted : public testing::TestWithParam<bool> {};

// The host's tracepoint, on BPF (tracefs cannot follow an e probe's skbaddr), IPv4 and IPv6.
TEST_P(PacketNamesPrinted, OfAnotherProtocolAreAbsentOnATracepoint) {
    const bool json = GetParam();
    auto r = run_with_traffic({ksurf_bin(), "-d", "4", fmt::format("e net/netif_receive_skb {}", kPrintedFields)}, json);
    ASSERT_EQ(r.status, 0) << r.err;
    expect_names_of_the_packets_protocol(printed(r.out, json, kPrintedNames), true);
}

INSTANTIATE_TEST_SUITE_P(TextAndJson, PacketNamesPrinted, testing::Values(false, true));

class PacketNamesPrintedOnFunctions : public testing::TestWithParam<const char*> {};

// A function probe on each backend: the tracefs translation prints as BPF does.
TEST_P(PacketNamesPrintedOnFunctions, OfAnotherProtocolAreAbsent) {
    need_function_probes();
    if (IsSkipped()) return;
    for (bool json : {false, true}) {
        auto r = run_with_traffic({ksurf_bin(), "--backend", GetParam(), "-d", "4", fmt::format("p ip_rcv {}", kPrintedFields)}, json);
        ASSERT_EQ(r.status, 0) << r.err;
        expect_names_of_the_packets_protocol(printed(r.out, json, kPrintedNames), false);
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, PacketNamesPrintedOnFunctions, testing::Values("auto", "tracefs"));

// Hits counted by udp.dport (JSON rows; "-" for a row whose packets were of another protocol).
std::map<std::string, std::uint64_t> counts_by_udp_dport(const std::string& out) {
    std::map<std::string, std::uint64_t> counts;
    nlohmann::json j;
    for (const auto& l : lines(out))
        if (auto o = nlohmann::json::parse(l); o.contains("rows")) j = std::move(o);
    EXPECT_TRUE(j.contains("rows")) << out;
    for (const auto& row : j["rows"]) {
        const auto& key = row["key"];
        const std::string port = key.contains("udp.dport") ? key["udp.dport"].dump() : "-";
        EXPECT_FALSE(counts.contains(port)) << "two rows for udp.dport " << port << ": " << out;
        counts[port] += row["count"].get<std::uint64_t>();
    }
    return counts;
}

// A key of a packet name agrees with printing: TCP segments to port 9000 (whose port is
// where a UDP header has its own) are counted under an absent udp.dport, in one row, and
// the 3 UDP datagrams to 9000 and the IPv6 ones to 9002 under theirs.
void expect_udp_counts(const std::map<std::string, std::uint64_t>& counts, bool ipv6) {
    EXPECT_EQ(counts.contains("9000") ? counts.at("9000") : 0, 3u);
    if (ipv6) {
        EXPECT_EQ(counts.contains("9002") ? counts.at("9002") : 0, std::uint64_t(kUdp6));
    }
    EXPECT_GE(counts.contains("-") ? counts.at("-") : 0, std::uint64_t(kExchanges)) << "the TCP segments";
}

constexpr const char* kAggregatedFilter = "f:udp.dport==9000||udp.dport==9002||tcp.dport==9000";

TEST(PacketNamesAggregated, OfAnotherProtocolKeyAsAbsentOnATracepoint) {
    auto r = run_with_traffic({ksurf_bin(), "-d", "4", fmt::format("e net/netif_receive_skb {}", kAggregatedFilter), "--count",
                               "udp.dport"},
                              true);
    ASSERT_EQ(r.status, 0) << r.err;
    expect_udp_counts(counts_by_udp_dport(r.out), true);
}

class PacketNamesAggregatedOnFunctions : public testing::TestWithParam<const char*> {};

// Hist triggers (tracefs) would key by the same guards, which are too many for them.
TEST_P(PacketNamesAggregatedOnFunctions, OfAnotherProtocolKeyAsAbsent) {
    need_function_probes();
    if (IsSkipped()) return;
    if (std::string_view(GetParam()) == "tracefs") {
        if (auto why = feature_missing("hist_triggers"); !why.empty()) GTEST_SKIP() << why;
        // Its three guards and the port are one key more than a hist trigger has.
        auto r = run({ksurf_bin(), "--backend", "tracefs", fmt::format("p ip_rcv {}", kAggregatedFilter), "--count",
                      "udp.dport"});
        EXPECT_EQ(r.status, 1);
        EXPECT_EQ(r.err, fmt::format("ksurf: p ip_rcv {}: --count on tracefs: hist triggers key by at most 3 fields, and this "
                                     "key takes 4: udp.dport, and ipver, ip.proto, ip6.nexthdr, which say whether the packet "
                                     "names apply; the BPF backend computes it\n",
                                     kAggregatedFilter));
        return;
    }
    auto r = run_with_traffic({ksurf_bin(), "--backend", GetParam(), "-d", "4", fmt::format("p ip_rcv {}", kAggregatedFilter),
                               "--count", "udp.dport"},
                              true);
    ASSERT_EQ(r.status, 0) << r.err;
    expect_udp_counts(counts_by_udp_dport(r.out), false);
}

INSTANTIATE_TEST_SUITE_P(Backends, PacketNamesAggregatedOnFunctions, testing::Values("auto", "tracefs"));

INSTANTIATE_TEST_SUITE_P(Backends, Packet, testing::Values("auto", "tracefs"));

}  // namespace
}  // namespace ksurf::test
