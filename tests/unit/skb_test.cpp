// ksurf skb's host side: which functions it probes (against this machine's kernel BTF),
// the packet summaries and lines it prints, and packet numbering through clones and frees.
#include "ksurf/skb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "error_of.h"

namespace ksurf {
namespace {

using ksurf::test::error_of;

// 127.0.0.1:45736 > 127.0.0.1:9000, SYN, as the kernel lays it out.
std::vector<std::uint8_t> tcp4_syn() {
    std::vector<std::uint8_t> p = {0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1};
    std::vector<std::uint8_t> tcp = {0xb2, 0xa8, 0x23, 0x28, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff};
    p.insert(p.end(), tcp.begin(), tcp.end());
    return p;
}

TEST(SkbPacket, Ipv4Tcp) {
    EXPECT_EQ(describe_packet(tcp4_syn()), "TCP 127.0.0.1:45736 > 127.0.0.1:9000 [S]");
    auto p = tcp4_syn();
    p[33] = 0x18;  // PSH ACK
    EXPECT_EQ(describe_packet(p), "TCP 127.0.0.1:45736 > 127.0.0.1:9000 [P.]");
    // Without the flags byte: ports still; without the ports: addresses only.
    EXPECT_EQ(describe_packet(std::span(p).first(24)), "TCP 127.0.0.1 > 127.0.0.1");
    // A later fragment has no ports where the header ends.
    p[6] = 0x00, p[7] = 0x10;
    EXPECT_EQ(describe_packet(p), "TCP 127.0.0.1 > 127.0.0.1");
}

TEST(SkbPacket, UdpIcmpAndIpv6) {
    std::vector<std::uint8_t> udp = {0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 2, 3, 10, 1, 2, 4, 0x13, 0x88, 0, 53};
    EXPECT_EQ(describe_packet(udp), "UDP 10.1.2.3:5000 > 10.1.2.4:53");
    std::vector<std::uint8_t> icmp = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 2, 127, 0, 0, 1, 8, 0};
    EXPECT_EQ(describe_packet(icmp), "ICMP 127.0.0.2 > 127.0.0.1 echo-request");

    std::vector<std::uint8_t> v6(48, 0);
    v6[0] = 0x60, v6[6] = 17, v6[23] = 1, v6[39] = 1;  // ::1 > ::1
    v6[40] = 0x0f, v6[41] = 0xa0, v6[42] = 0x23, v6[43] = 0x2a;
    EXPECT_EQ(describe_packet(v6), "UDP [::1]:4000 > [::1]:9002");
    v6[6] = 58, v6[40] = 128;
    EXPECT_EQ(describe_packet(v6), "ICMP6 [::1] > [::1] echo-request");
    v6[6] = 47;
    EXPECT_EQ(describe_packet(v6), "IPv6 [::1] > [::1] proto 47");

    // No network header yet, or not IP.
    EXPECT_EQ(describe_packet({}), "");
    std::vector<std::uint8_t> junk(40, 0);
    EXPECT_EQ(describe_packet(junk), "");
    EXPECT_EQ(describe_packet(std::span(v6).first(30)), "") << "an IPv6 header cut short";
}

ksurf_skb_rec record(std::uint8_t kind, std::uint64_t skb, bool first = false, std::uint64_t value = 0) {
    ksurf_skb_rec r{};
    r.ts_ns = 12'345'678'901;
    r.skb = skb;
    r.value = value;
    r.pid = 42;
    r.cpu = 1;
    r.kind = kind;
    r.first = first;
    std::strcpy(r.comm, "nc");
    return r;
}

TEST(SkbPacket, NumbersFollowClonesAndOutliveFree) {
    PacketNumbers n;
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xa, true)), 1u);
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xa)), 1u);
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xb, true)), 2u);
    EXPECT_EQ(n.on(record(KSURF_SKB_CLONE, 0xa, false, 0xc)), 1u);
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xc)), 1u) << "the clone is packet 1";
    EXPECT_EQ(n.on(record(KSURF_SKB_FREE, 0xa)), 1u);
    EXPECT_EQ(n.on(record(KSURF_SKB_RETURN, 0xa)), 1u) << "the return of the call that freed it";
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xa, true)), 3u) << "the address reused by another packet";
    EXPECT_EQ(n.on(record(KSURF_SKB_CALL, 0xd)), 0u) << "never matched here";
    EXPECT_EQ(n.count(), 3u);
}

TEST(SkbPacket, Lines) {
    auto call = record(KSURF_SKB_CALL, 0xffff888004d0cee8, true);
    call.len = 60;
    call.ifindex = 1;
    std::strcpy(call.ifname, "lo");
    const auto syn = tcp4_syn();
    std::memcpy(call.net, syn.data(), syn.size());
    call.net_len = static_cast<std::uint16_t>(syn.size());
    EXPECT_EQ(format_skb_record(call, 1, "ip_rcv", SkbReturn::Signed),
              "nc-42 [001] 12.345678: #1 skb=ffff888004d0cee8 ip_rcv (matched) dev=lo(1) len=60 "
              "TCP 127.0.0.1:45736 > 127.0.0.1:9000 [S]");
    EXPECT_EQ(skb_record_json(call, 1, "ip_rcv", SkbReturn::Signed),
              R"({"time_ns":12345678901,"packet":1,"skb":"0xffff888004d0cee8","event":"call","function":"ip_rcv",)"
              R"("cpu":1,"pid":42,"tgid":0,"comm":"nc","matched":true,"dev":"lo","ifindex":1,"len":60,)"
              R"("summary":"TCP 127.0.0.1:45736 > 127.0.0.1:9000 [S]"})");

    auto ret = record(KSURF_SKB_RETURN, 0xa, false, static_cast<std::uint64_t>(-22));
    EXPECT_EQ(format_skb_record(ret, 2, "ip_rcv", SkbReturn::Signed), "nc-42 [001] 12.345678: #2 skb=a ip_rcv returned -22");
    ret.value = 0xffff888004d0c000;
    EXPECT_EQ(format_skb_record(ret, 2, "skb_push", SkbReturn::Pointer),
              "nc-42 [001] 12.345678: #2 skb=a skb_push returned 0xffff888004d0c000");
    EXPECT_EQ(format_skb_record(record(KSURF_SKB_CLONE, 0xa, false, 0xb), 2, "skb_clone", SkbReturn::Pointer),
              "nc-42 [001] 12.345678: #2 skb=a skb_clone -> skb=b");
    EXPECT_EQ(format_skb_record(record(KSURF_SKB_FREE, 0xa), 2, "kfree_skbmem", SkbReturn::Void),
              "nc-42 [001] 12.345678: #2 skb=a kfree_skbmem freed");
}

// Against this machine's kernel BTF, with BTF's own names standing in for the traceable
// list (reading available_filter_functions needs root and tracefs).
class SkbFunctionsKernel : public testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "no kernel BTF";
        btf.emplace(Btf::kernel());
        names = btf->function_names();
    }
    const SkbFunction* find(const SkbFunctions& fs, std::string_view name) {
        auto it = std::find_if(fs.functions.begin(), fs.functions.end(), [&](const SkbFunction& f) { return f.name == name; });
        return it == fs.functions.end() ? nullptr : &*it;
    }
    std::optional<Btf> btf;
    std::vector<std::string> names;
};

TEST_F(SkbFunctionsKernel, EveryFunctionTakingAnSkbWithItsArgument) {
    const SkbFunctions fs = find_skb_functions(*btf, names, {});
    EXPECT_GT(fs.functions.size(), 500u);
    ASSERT_TRUE(find(fs, "ip_rcv"));
    EXPECT_EQ(find(fs, "ip_rcv")->arg, 0u);
    EXPECT_EQ(find(fs, "ip_rcv")->ret, SkbReturn::Signed);
    // ip_finish_output(struct net *, struct sock *, struct sk_buff *).
    ASSERT_TRUE(find(fs, "ip_finish_output"));
    EXPECT_EQ(find(fs, "ip_finish_output")->arg, 2u);
    ASSERT_TRUE(find(fs, "skb_push"));
    EXPECT_EQ(find(fs, "skb_push")->ret, SkbReturn::Pointer);
    // Probed apart (the free and clone programs), or ksurf's own path.
    EXPECT_FALSE(find(fs, "kfree_skbmem"));
    EXPECT_NE(std::find(fs.frees.begin(), fs.frees.end(), "kfree_skbmem"), fs.frees.end()) << "probed apart";
    EXPECT_FALSE(find(fs, "skb_clone"));
    EXPECT_FALSE(find(fs, "bpf_skb_load_bytes"));
    EXPECT_TRUE(std::is_sorted(fs.functions.begin(), fs.functions.end(),
                               [](const SkbFunction& a, const SkbFunction& b) { return a.name < b.name; }));
}

TEST_F(SkbFunctionsKernel, GlobsRestrictAndTraceableListDecides) {
    const SkbFunctions fs = find_skb_functions(*btf, names, {"ip_rcv*", "tcp_v4_rcv"});
    std::vector<std::string> got;
    for (const auto& f : fs.functions) got.push_back(f.name);
    EXPECT_TRUE(std::find(got.begin(), got.end(), "tcp_v4_rcv") != got.end());
    for (const auto& g : got) EXPECT_TRUE(g.starts_with("ip_rcv") || g == "tcp_v4_rcv") << g;

    // Not traceable: left out, and said why.
    std::vector<std::string> without(names);
    std::erase(without, "ip_rcv");
    const SkbFunctions fs2 = find_skb_functions(*btf, without, {"ip_rcv*"});
    EXPECT_FALSE(find(fs2, "ip_rcv"));
    EXPECT_EQ(error_of([&] { find_skb_functions(*btf, names, {"no_such_function_*"}); }),
              "--funcs 'no_such_function_*' matches no traceable function");
    EXPECT_EQ(error_of([&] { find_skb_functions(*btf, names, {"schedule"}); }),
              "no traceable function --funcs names takes a struct sk_buff *");
}

}  // namespace
}  // namespace ksurf
