// Loopback traffic the packet tests send themselves, so that they know what to expect.
// The senders use gtest assertions: call them from a test body.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>

namespace ksurf::test {

constexpr int kExchanges = 6;     // request/reply rounds per TCP connection
constexpr int kRequestBytes = 300; // each request is one segment: the next waits for the reply
constexpr int kUdp6 = 4;          // IPv6 datagrams to [::1]:9002

sockaddr_in addr(const char* ip, std::uint16_t port = 0);

// COUNT ICMP echo requests to 127.0.0.1 from FROM (127.0.0.0/8).
void ping(const char* from, int count);
// UDP to a bound 127.0.0.1:9000: IP protocol 17, and no ICMP "port unreachable" in return.
void udp(int count);
// A loopback TCP server on PORT answering each request with one byte, and a client doing
// kExchanges rounds: exactly kExchanges data segments of kRequestBytes towards PORT.
void tcp_exchanges(std::uint16_t port);
// COUNT UDP datagrams to [::1]:9002.
void udp6(int count);
// ICMPv6 echo requests to ::1.
void ping6(int count);
// TCP to 9000 and 9001 at the same time, ICMP, UDP over IPv4 and over IPv6.
void mixed_traffic();

// Whether `ksurf features` says this kernel can probe functions (fentry or kprobes).
bool kernel_can_probe_functions();
// Skips the test where functions cannot be probed, except in the VM matrix: all can there.
void need_function_probes();

}  // namespace ksurf::test
