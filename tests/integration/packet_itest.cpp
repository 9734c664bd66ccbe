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
#include <regex>
#include <thread>

#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

constexpr int kFromLoopback = 4;  // echo requests 127.0.0.1 -> 127.0.0.1
constexpr int kFromOther = 3;     // echo requests 127.0.0.2 -> 127.0.0.1

std::uint16_t checksum(const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint16_t*>(data);
    std::uint32_t sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

sockaddr_in addr(const char* ip, std::uint16_t port = 0) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

void ping(const char* from, int count) {
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    ASSERT_GE(fd, 0) << "raw socket: " << strerror(errno);
    auto src = addr(from);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src), 0) << strerror(errno);
    auto dst = addr("127.0.0.1");
    for (int i = 0; i < count; i++) {
        icmphdr h{};
        h.type = ICMP_ECHO;
        h.un.echo.id = htons(static_cast<std::uint16_t>(getpid()));
        h.un.echo.sequence = htons(static_cast<std::uint16_t>(i));
        h.checksum = checksum(&h, sizeof h);
        ASSERT_EQ(sendto(fd, &h, sizeof h, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), ssize_t(sizeof h));
    }
    close(fd);
}

// UDP to a bound port: IP protocol 17, and no ICMP "port unreachable" in return.
void udp(int count) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    auto a = addr("127.0.0.1", 9000);
    ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    for (int i = 0; i < count; i++) sendto(tx, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    close(tx);
    close(rx);
}

bool kernel_can_probe_functions() {
    auto r = run({ksurf_bin(), "features"});
    return std::regex_search(r.out, std::regex(R"((^|\n)(fentry|kprobe|kprobe_events) +yes)"));
}

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

// ---- packet names, --pcap and -w over mixed loopback traffic ----

constexpr int kExchanges = 6;     // request/reply rounds per TCP connection
constexpr int kRequestBytes = 300; // each request is one segment: the next waits for the reply
constexpr int kUdp6 = 4;          // IPv6 datagrams to [::1]:9002

// A loopback TCP server on PORT answering each request with one byte, and a client doing
// kExchanges rounds: exactly kExchanges data segments of kRequestBytes towards PORT.
void tcp_exchanges(std::uint16_t port) {
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = addr("127.0.0.1", port);
    ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    ASSERT_EQ(listen(srv, 1), 0);
    std::thread server([srv] {
        int c = accept(srv, nullptr, nullptr);
        char buf[kRequestBytes];
        for (int i = 0; i < kExchanges; i++) {
            int got = 0;
            while (got < kRequestBytes) {
                ssize_t n = read(c, buf, sizeof buf - got);
                if (n <= 0) break;
                got += static_cast<int>(n);
            }
            if (write(c, "k", 1) != 1) break;
        }
        char rest;
        while (read(c, &rest, 1) > 0) {}
        close(c);
    });
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(cl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ASSERT_EQ(connect(cl, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    std::string request(kRequestBytes, 'q');
    for (int i = 0; i < kExchanges; i++) {
        ASSERT_EQ(write(cl, request.data(), request.size()), ssize_t(request.size()));
        char reply;
        ASSERT_EQ(read(cl, &reply, 1), 1);
    }
    close(cl);
    server.join();
    close(srv);
}

void udp6(int count) {
    int rx = socket(AF_INET6, SOCK_DGRAM, 0), tx = socket(AF_INET6, SOCK_DGRAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(9002);
    a.sin6_addr = in6addr_loopback;
    ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    for (int i = 0; i < count; i++) sendto(tx, "six", 3, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    close(tx);
    close(rx);
}

// ICMPv6 echo requests to ::1 (the kernel fills in the checksum of raw ICMPv6 sockets).
void ping6(int count) {
    int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    ASSERT_GE(fd, 0) << "raw socket: " << strerror(errno);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const std::uint8_t echo[8] = {128, 0, 0, 0, 0x12, 0x34, 0, 1};
    for (int i = 0; i < count; i++)
        ASSERT_EQ(sendto(fd, echo, sizeof echo, 0, reinterpret_cast<sockaddr*>(&a), sizeof a), ssize_t(sizeof echo));
    close(fd);
}

// TCP to 9000 and 9001 at the same time, ICMP, UDP over IPv4 and over IPv6.
void mixed_traffic() {
    std::thread t9001([] { tcp_exchanges(9001); });
    tcp_exchanges(9000);
    t9001.join();
    ping("127.0.0.1", 2);
    udp(3);
    udp6(kUdp6);
}

void need_function_probes() {
    if (!kernel_can_probe_functions()) {
        ASSERT_FALSE(in_vm_matrix()) << "every matrix kernel can probe functions";
        GTEST_SKIP() << "neither fentry nor kprobes on this kernel";
    }
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
        {"icmp6", "p ipv6_rcv nh=ip6.nexthdr type=icmp6.type", std::regex(R"(nh=58 type=12[89]$)")},
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

INSTANTIATE_TEST_SUITE_P(Backends, Packet, testing::Values("auto", "tracefs"));

}  // namespace
}  // namespace ksurf::test
