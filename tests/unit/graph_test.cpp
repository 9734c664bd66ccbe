// The host half of ksurf graph: decoding call targets, rebuilding trees from records,
// and the option parsers. The kernel half is in tests/integration/graph_itest.cpp.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ksurf/error.h"
#include "ksurf/graph.h"

namespace ksurf {
namespace {

constexpr std::uint64_t kBase = 0xffffffff81000000ULL;

// x86-64 machine code assembled by hand: each branch's target is kBase-relative.
std::vector<std::uint8_t> code() {
    return {
        0x0f, 0x1f, 0x44, 0x00, 0x00,        // nopl (the patched-out call __fentry__)
        0xe8, 0xf6, 0x0f, 0x00, 0x00,        // call kBase+0x1000
        0x74, 0x02,                          // je +2: a branch inside
        0xff, 0xd0,                          // call *%rax: indirect
        0xe8, 0xed, 0x0f, 0x00, 0x00,        // call kBase+0x1000 again
        0x0f, 0x85, 0xe7, 0x1f, 0x00, 0x00,  // jne kBase+0x2000: a conditional tail call
        0xe9, 0xe2, 0x2f, 0x00, 0x00,        // jmp kBase+0x3000: a tail call
        0xcc,                                // int3 padding
    };
}

TEST(GraphCallTargets, DirectCallsAndTailJumpsOnce) {
    const auto c = code();
    EXPECT_EQ(call_targets(c, kBase), (std::vector<std::uint64_t>{kBase + 0x1000, kBase + 0x2000, kBase + 0x3000}));
}

TEST(GraphCallTargets, BranchesIntoTheCodeItselfAreNotCalls) {
    // A function as long as the targets: every branch lands inside it.
    auto c = code();
    c.resize(0x3001, 0xcc);
    EXPECT_TRUE(call_targets(c, kBase).empty());
}

TEST(GraphCallTargets, UndecodableBytesAreSkipped) {
    std::vector<std::uint8_t> c = {0x06, 0x06, 0xe8, 0xfb, 0x00, 0x00, 0x00};  // push %es is invalid in 64-bit mode
    EXPECT_EQ(call_targets(c, kBase), (std::vector<std::uint64_t>{kBase + 0x102}));
}

TEST(GraphUntraceable, TheTracersOwnPath) {
    EXPECT_TRUE(untraceable("bpf_ringbuf_output"));
    EXPECT_TRUE(untraceable("__rcu_read_lock"));
    EXPECT_TRUE(untraceable("_raw_spin_lock"));
    EXPECT_FALSE(untraceable("tcp_v4_do_rcv"));
}

ksurf_graph_rec rec(std::uint8_t kind, std::uint32_t graph, std::uint32_t func, std::uint16_t depth, std::uint64_t ts,
                    std::uint64_t value = 0) {
    ksurf_graph_rec r{};
    r.kind = kind;
    r.graph = graph;
    r.func = func;
    r.depth = depth;
    r.ts_ns = ts;
    r.value = value;
    r.context = KSURF_CTX_SOFTIRQ;
    return r;
}

TEST(GraphBuilder, NestsCallsAndCompletesOnClose) {
    GraphBuilder b;
    EXPECT_FALSE(b.add(rec(KSURF_GRAPH_OPEN, 7, 0, 0, 1000)));
    Event ev;
    ev.comm = "nc";
    ev.fields.push_back({"len", {std::uint64_t{52}, Display::Decimal}});
    b.add_root_event(ev, 7);
    // Another context's recording interleaves and must stay apart.
    b.add(rec(KSURF_GRAPH_OPEN, 8, 0, 0, 1001));
    b.add(rec(KSURF_GRAPH_ENTRY, 7, 1, 1, 1100));
    b.add(rec(KSURF_GRAPH_ENTRY, 8, 2, 1, 1150));
    b.add(rec(KSURF_GRAPH_ENTRY, 7, 2, 2, 1200));
    b.add(rec(KSURF_GRAPH_EXIT, 7, 2, 2, 1300));
    b.add(rec(KSURF_GRAPH_EXIT, 7, 1, 1, 1400));
    b.add(rec(KSURF_GRAPH_ENTRY, 7, 3, 1, 1500));
    b.add(rec(KSURF_GRAPH_EXIT, 7, 3, 1, 1600));
    auto g = b.add(rec(KSURF_GRAPH_CLOSE, 7, 0, 0, 2000, static_cast<std::uint64_t>(-22)));
    ASSERT_TRUE(g);
    EXPECT_EQ(b.open(), 1u);
    EXPECT_EQ(g->id, 7u);
    EXPECT_EQ(g->mismatched, 0u);
    EXPECT_EQ(g->root.comm, "nc");
    ASSERT_EQ(g->calls.size(), 2u);
    EXPECT_EQ(g->calls[0].func, 1u);
    ASSERT_EQ(g->calls[0].calls.size(), 1u);
    EXPECT_EQ(g->calls[0].calls[0].exit_ns - g->calls[0].calls[0].entry_ns, 100u);
    EXPECT_EQ(g->calls[1].func, 3u);

    const std::vector<std::string> names = {"tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_established", "sock_put"};
    const std::string text = format_graph(*g, names);
    EXPECT_NE(text.find("graph 7: nc-0 [000] softirq 0.000001: tcp_v4_rcv(len=52)"), std::string::npos) << text;
    EXPECT_NE(text.find("0.100 us |      tcp_rcv_established();"), std::string::npos) << text;
    EXPECT_NE(text.find("0.300 us |    }"), std::string::npos) << text;
    EXPECT_NE(text.find("1.000 us |  } = -22"), std::string::npos) << text;

    const auto j = nlohmann::json::parse(graph_json(*g, names));
    EXPECT_EQ(j["retval"], -22);
    EXPECT_EQ(j["context"], "softirq");
    EXPECT_EQ(j["args"]["len"], 52);
    EXPECT_EQ(j["calls"][0]["calls"][0]["func"], "tcp_rcv_established");
    EXPECT_EQ(j["calls"][0]["duration_ns"], 300);
}

TEST(GraphBuilder, CountsWhatDoesNotNest) {
    GraphBuilder b;
    b.add(rec(KSURF_GRAPH_OPEN, 1, 0, 0, 0));
    b.add(rec(KSURF_GRAPH_ENTRY, 1, 1, 1, 10));
    b.add(rec(KSURF_GRAPH_EXIT, 1, 2, 1, 20));  // not the open call's exit
    auto g = b.add(rec(KSURF_GRAPH_CLOSE, 1, 0, 0, 30));
    ASSERT_TRUE(g);
    EXPECT_EQ(g->mismatched, 2u);  // the stray exit, and a call still open at the close
    ASSERT_EQ(g->calls.size(), 1u);
    EXPECT_FALSE(g->calls[0].returned);
}

TEST(GraphBuilder, RecordsOfAGraphOpenedBeforeTheReaderAreIgnored) {
    GraphBuilder b;
    EXPECT_FALSE(b.add(rec(KSURF_GRAPH_ENTRY, 3, 1, 1, 10)));
    EXPECT_FALSE(b.add(rec(KSURF_GRAPH_CLOSE, 3, 0, 0, 30)));
}

TEST(GraphOptions, Sample) {
    EXPECT_EQ(parse_sample("1/10"), 10u);
    EXPECT_THROW(parse_sample("10"), Error);
    EXPECT_THROW(parse_sample("1/0"), Error);
}

}  // namespace
}  // namespace ksurf
