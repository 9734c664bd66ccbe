// Loopback traffic the packet tests send themselves, so that they know what to expect.
#include "traffic.h"

#include <gtest/gtest.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "backends.h"
#include "process.h"

namespace ksurf::test {

namespace {

std::uint16_t checksum(const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint16_t*>(data);
    std::uint32_t sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

}  // namespace

sockaddr_in addr(const char* ip, std::uint16_t port) {
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

// Loopback delivery may be deferred to ksoftirqd: closing RX before every datagram arrived
// would answer the late ones with ICMP "port unreachable", packets no test counts on.
static void receive_then_close(int rx, int tx, int count) {
    timeval wait{5, 0};
    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char buf[16];
    for (int i = 0; i < count; i++)
        EXPECT_GT(recv(rx, buf, sizeof buf, 0), 0) << "datagram " << i << ": " << strerror(errno);
    close(tx);
    close(rx);
}

void udp(int count) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    auto a = addr("127.0.0.1", 9000);
    ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    for (int i = 0; i < count; i++) sendto(tx, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    receive_then_close(rx, tx, count);
}

bool kernel_can_probe_functions() { return has_feature("fentry") || has_feature("kprobe") || has_feature("kprobe_events"); }


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
    receive_then_close(rx, tx, count);
}

// The kernel fills in the checksum of raw ICMPv6 sockets.
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

}  // namespace ksurf::test
