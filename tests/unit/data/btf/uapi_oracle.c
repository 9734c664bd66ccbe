/* The UAPI oracle: the installed kernel UAPI headers' layout of network headers, which the
 * running kernel's vmlinux BTF must agree with. */
#include "oracle.h"

#include <linux/icmp.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define UAPI_TABLE(T, M, I, B)                                                                 \
    T(struct iphdr) B(struct iphdr, ihl) B(struct iphdr, version) I(struct iphdr, tot_len)     \
    I(struct iphdr, protocol) I(struct iphdr, saddr) I(struct iphdr, daddr)                    \
    T(struct tcphdr) I(struct tcphdr, source) I(struct tcphdr, dest) I(struct tcphdr, seq)     \
    B(struct tcphdr, doff) B(struct tcphdr, syn) B(struct tcphdr, ack) I(struct tcphdr, window) \
    T(struct udphdr) I(struct udphdr, source) I(struct udphdr, dest) I(struct udphdr, len)     \
    T(struct ipv6hdr) B(struct ipv6hdr, priority) B(struct ipv6hdr, version)                   \
    M(struct ipv6hdr, flow_lbl) I(struct ipv6hdr, nexthdr) M(struct ipv6hdr, saddr)           \
    M(struct ipv6hdr, daddr) I(struct ipv6hdr, daddr.in6_u.u6_addr32[3])                       \
    T(struct ethhdr) M(struct ethhdr, h_dest) I(struct ethhdr, h_source[5])                    \
    I(struct ethhdr, h_proto)                                                                  \
    T(struct icmphdr) I(struct icmphdr, type) I(struct icmphdr, code)                          \
    I(struct icmphdr, un.echo.sequence) I(struct icmphdr, un.gateway)

int main(void)
{
    UAPI_TABLE(ORACLE_T, ORACLE_M, ORACLE_I, ORACLE_B)
    return 0;
}
