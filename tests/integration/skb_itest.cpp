// ksurf skb: packet paths over loopback traffic the test sends itself. Only the packets of
// TCP port 9000 are followed; each request segment's path runs through the IP and TCP
// receive functions, clones made by a raw socket stay with their packet, and a freed skb
// is forgotten.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "backends.h"
#include "process.h"
#include "traffic.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// The features line of kprobes, as the error quotes it.
std::string kprobe_reason() { return kernel_features().at("features").at("kprobe").at("reason"); }

struct Path {
    std::vector<json> events;  // in output order
};

TEST(SkbPath, FollowsPort9000PacketsThroughTheirClonesUntilFreed) {
    if (!has_feature("kprobe")) {
        ASSERT_FALSE(in_vm_matrix()) << "every matrix kernel has kprobes";
        auto r = run({ksurf_bin(), "skb", "--pcap", "tcp port 9000"});
        EXPECT_EQ(r.status, 1);
        EXPECT_EQ(r.err, "ksurf: skb needs kprobes: " + kprobe_reason() + "\n");
        GTEST_SKIP() << "no kprobes on this kernel";
    }
    const bool multi = has_feature("kprobe_multi");
    std::vector<std::string> argv = {ksurf_bin(), "skb", "--pcap", "tcp port 9000", "--json", "-d", "8"};
    // A kprobe per function takes minutes for all of them under TCG: without kprobe.multi,
    // the IP, TCP, raw socket and device receive paths only.
    if (!multi) argv.insert(argv.end(), {"--funcs", "ip_*", "tcp_*", "raw_*", "__netif_receive_skb*", "skb_release_*"});
    Process p(argv);
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 120s)) << "did not attach";
    // A raw TCP socket gets a clone of every TCP packet received (raw_v4_input).
    const int raw = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
    ASSERT_GE(raw, 0) << strerror(errno);
    mixed_traffic();
    close(raw);  // frees the clones queued on it
    auto r = p.finish(60s);
    ASSERT_EQ(r.status, 0) << r.err;

    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(attached (\d+) of (\d+) functions \((kprobe\.multi|kprobes)\) in [0-9.]+ s)")))
        << r.err;
    EXPECT_EQ(m[3].str(), multi ? "kprobe.multi" : "kprobes");
    if (multi) {
        EXPECT_EQ(m[1].str(), m[2].str()) << "kprobe.multi attaches all or none";
    }
    EXPECT_GE(std::stoi(m[1]), multi ? 500 : 20) << r.err;

    std::map<std::uint64_t, Path> packets;
    std::map<std::string, bool> freed;  // skb address: freed since it was last matched
    std::set<std::pair<std::string, std::string>> open_calls;  // skb, function
    int clones_followed = 0, frees = 0, returns = 0;
    static const std::regex tuple(R"(^TCP 127\.0\.0\.1:(\d+) > 127\.0\.0\.1:(\d+) )");
    for (const auto& l : lines(r.out)) {
        const json e = json::parse(l);
        const std::string kind = e["event"], skb = e["skb"];
        const std::uint64_t packet = e["packet"];
        ASSERT_GT(packet, 0u) << l;
        if (kind == "call") {
            const std::string summary = e["summary"];
            if (!summary.empty()) {
                ASSERT_TRUE(std::regex_search(summary, m, tuple)) << l;
                EXPECT_TRUE(m[1] == "9000" || m[2] == "9000") << l;
            }
            if (e["matched"]) freed[skb] = false;
            EXPECT_FALSE(freed[skb]) << "an event of a freed skb that did not match again: " << l;
            open_calls.insert({skb, e["function"]});
        }
        if (kind == "return") {
            EXPECT_TRUE(open_calls.count({skb, e["function"]})) << "a return without its call: " << l;
            returns++;
        }
        if (kind == "clone") {
            // The clone is followed as the same packet: its later events carry the number.
            freed[e["clone"]] = false;
            clones_followed++;
        }
        if (kind == "free") {
            freed[skb] = true;
            frees++;
        }
        packets[packet].events.push_back(e);
    }
    // The connections this run opened, by the client port of their SYN: since 5.19 TCP defers
    // freeing a read skb to the CPU that allocated it, so an earlier test's request can first
    // show up here in skb_release_head_state, matched, while this run's traffic flushes it.
    static const std::regex syn(R"(^TCP 127\.0\.0\.1:(\d+) > 127\.0\.0\.1:9000 \[S\])");
    std::set<std::string> clients;
    for (const auto& [n, path] : packets)
        for (const auto& e : path.events)
            if (const std::string summary = e.value("summary", ""); std::regex_search(summary, m, syn))
                clients.insert(m[1]);
    EXPECT_FALSE(clients.empty()) << "the SYN of the connection to 9000";
    // Each request segment to 9000, whole: sent, received by IP, then by TCP.
    int requests = 0;
    for (const auto& [n, path] : packets) {
        bool request = false;
        std::vector<std::string> functions;
        for (const auto& e : path.events) {
            if (e["event"] != "call") continue;
            const std::string summary = e["summary"];
            request |= std::regex_search(summary, m, tuple) && clients.count(m[1]) && m[2] == "9000" &&
                       e["len"] >= kRequestBytes;
            functions.push_back(e["function"]);
        }
        if (!request) continue;
        requests++;
        auto at = [&](const char* f) { return std::find(functions.begin(), functions.end(), f) - functions.begin(); };
        EXPECT_LT(at("ip_rcv"), at("tcp_v4_rcv")) << "packet #" << n << ": " << testing::PrintToString(functions);
        EXPECT_LT(at("tcp_v4_rcv"), static_cast<long>(functions.size())) << "packet #" << n;
    }
    EXPECT_EQ(requests, kExchanges) << r.out;
    EXPECT_GE(clones_followed, kExchanges) << "raw socket clones of the requests at least";
    EXPECT_GT(frees, 0);
    if (multi) {
        EXPECT_GT(returns, 0);
    } else {
        EXPECT_NE(r.err.find("no return values"), std::string::npos) << r.err;
    }
}

TEST(SkbPath, TracefsSaysItNeedsBpf) {
    auto r = run({ksurf_bin(), "--backend", "tracefs", "skb", "--pcap", "tcp"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "ksurf: skb needs the BPF backend: it follows packets by their skb address in BPF maps, which "
                     "--backend tracefs cannot\n");
}

}  // namespace
}  // namespace ksurf::test
