// Packet header fields of an sk_buff, read in the kernel and filtered there: loopback ICMP
// the test sends itself, with counts known in advance, on each backend that can run it.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

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

INSTANTIATE_TEST_SUITE_P(Backends, Packet, testing::Values("auto", "tracefs"));

}  // namespace
}  // namespace ksurf::test
