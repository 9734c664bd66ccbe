// ksurf graph against the running kernel: loopback TCP to two ports, graphs recorded only for
// the segments to one of them, counted against an independent trace of the same function.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "backends.h"
#include "kernel_state.h"
#include "process.h"
#include "traffic.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Segments to port 9000 pass; the rest of the traffic (to 9001, and the replies to the
// clients' ports) must not open a recording.
const std::string kRoot = "p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest f:b16_dport==9000";

bool kernel_can_graph() { return has_feature("fentry") || has_feature("kprobe"); }

// Fetching atomics arrived in 5.12: before, the recorder runs its build without them,
// whose --sample is exact per (CPU, context) only (bpf/graph.bpf.c).
bool kernel_has_atomic_fetch() {
    utsname u{};
    uname(&u);
    unsigned major = 0, minor = 0;
    std::sscanf(u.release, "%u.%u", &major, &minor);
    return major > 5 || (major == 5 && minor >= 12);
}

#define REQUIRE_GRAPH_KERNEL()                                                       \
    if (!kernel_can_graph()) {                                                       \
        ASSERT_FALSE(in_vm_matrix()) << "every matrix kernel has fentry and kprobes"; \
        GTEST_SKIP() << "neither fentry nor kprobes on this kernel";                 \
    }

// A loopback connection to PORT carrying MESSAGES small writes, each read before the next.
void tcp_exchange(std::uint16_t port, int messages) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    ASSERT_EQ(listen(ls, 1), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    int s = accept(ls, nullptr, nullptr);
    ASSERT_GE(s, 0);
    for (int i = 0; i < messages; i++) {
        char b = 'x';
        ASSERT_EQ(write(c, &b, 1), 1);
        ASSERT_EQ(read(s, &b, 1), 1);
    }
    close(c);
    close(s);
    close(ls);
    usleep(100 * 1000);  // the FINs and their ACKs
}

void traffic() {
    tcp_exchange(9000, 5);
    tcp_exchange(9001, 7);
}

std::vector<json> json_lines(const std::string& out) {
    std::vector<json> v;
    for (const auto& l : lines(out))
        if (!l.empty()) v.push_back(json::parse(l));
    return v;
}

// Every call returned, nothing was left unmatched, and the names of all calls.
void walk(const json& calls, std::set<std::string>& names, const json& graph) {
    for (const auto& c : calls) {
        names.insert(c["func"].get<std::string>());
        EXPECT_TRUE(c.contains("duration_ns")) << "a call without its exit: " << graph.dump();
        if (c.contains("calls")) walk(c["calls"], names, graph);
    }
}

struct Run {
    std::vector<json> graphs;
    std::size_t reference = 0;  // port-9000 segments tcp_v4_rcv saw, by an independent trace
    Result result;
};

Run graph_run(std::vector<std::string> extra) {
    Run out;
    Process ref({ksurf_bin(), "--json", kRoot});
    std::vector<std::string> argv = {ksurf_bin(), "--json", "graph", kRoot};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Process g(argv);
    EXPECT_TRUE(ref.wait_for_err("Hit Ctrl-C to end.", 60s)) << "reference trace did not attach";
    if (!g.wait_for_err("Hit Ctrl-C to end.", 120s)) {
        out.result = g.finish(5s);
        ADD_FAILURE() << "graph did not attach: " << out.result.err;
        return out;
    }
    traffic();
    sleep(1);
    ref.signal(SIGINT);
    g.signal(SIGINT);
    auto r = ref.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    for (const auto& l : lines(r.out)) out.reference += l.find("\"tcp_v4_rcv\"") != std::string::npos;
    out.result = g.finish();
    EXPECT_EQ(out.result.status, 0) << out.result.err;
    out.graphs = json_lines(out.result.out);
    return out;
}

class Graph : public testing::TestWithParam<const char*> {};

TEST_P(Graph, OneGraphPerPort9000SegmentWithItsCallees) {
    REQUIRE_GRAPH_KERNEL();
    const std::string attach = GetParam();
    if (attach == "kprobe.multi" && !has_feature("kprobe_multi"))
        GTEST_SKIP() << "no kprobe.multi on this kernel";
    auto r = graph_run({"--attach", attach});
    EXPECT_NE(r.result.err.find("Tracing "), std::string::npos);
    // SYN, ACK, 5 data segments, FIN, ACK at least.
    EXPECT_GE(r.reference, 9u) << r.result.err;
    EXPECT_EQ(r.graphs.size(), r.reference) << r.result.err;
    std::set<std::string> all;
    for (const auto& g : r.graphs) {
        EXPECT_EQ(g["root"], "tcp_v4_rcv");
        EXPECT_EQ(g["args"]["b16_dport"], 9000) << g.dump();
        EXPECT_EQ(g["context"], "softirq") << g.dump();
        EXPECT_FALSE(g.contains("mismatched")) << g.dump();
        std::set<std::string> names;
        walk(g["calls"], names, g);
        // Every segment to a listening or established socket is looked up and handed on.
        EXPECT_TRUE(names.count("tcp_v4_do_rcv") || names.count("tcp_add_backlog") || names.count("tcp_child_process"))
            << g.dump();
        all.insert(names.begin(), names.end());
    }
    EXPECT_TRUE(all.count("tcp_v4_do_rcv")) << r.result.out;
}

INSTANTIATE_TEST_SUITE_P(Attach, Graph, testing::Values("auto", "fentry", "kprobe", "kprobe.multi"),
                         [](const auto& info) {
                             std::string n = info.param;
                             std::replace(n.begin(), n.end(), '.', '_');
                             return n;
                         });

// ROOT's line prints what the predicate read; a packet name of another protocol than the
// packet's is absent there too, as in tracing.
TEST(GraphRoot, PacketNamesOfAnotherProtocolAreAbsent) {
    REQUIRE_GRAPH_KERNEL();
    for (bool as_json : {false, true}) {
        std::vector<std::string> args{ksurf_bin(), "graph", "ip_rcv", "--where", "udp.dport==9000", "--max", "1", "--depth", "0"};
        if (as_json) args.insert(args.begin() + 1, "--json");
        Process g(args);
        ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s)) << g.finish(5s).err;
        udp(3);
        auto r = g.finish(30s);
        ASSERT_EQ(r.status, 0) << r.err;
        if (as_json) {
            const auto graphs = json_lines(r.out);
            ASSERT_EQ(graphs.size(), 1u) << r.out;
            const json& a = graphs[0]["args"];
            EXPECT_EQ(a["ipver"], 4) << a.dump();
            EXPECT_EQ(a["ip.proto"], 17) << a.dump();
            EXPECT_EQ(a["udp.dport"], 9000) << a.dump();
            EXPECT_FALSE(a.contains("ip6.nexthdr")) << a.dump();
        } else {
            const std::string root = lines(r.out).at(0);
            for (const char* printed : {" ipver=4", " ip.proto=17", " ip6.nexthdr=-", " udp.dport=9000"})
                EXPECT_NE(root.find(printed), std::string::npos) << printed << " in " << root;
        }
    }
}

std::uint64_t summary_count(const std::string& err, const std::string& what) {
    std::smatch m;
    if (!std::regex_search(err, m, std::regex("(\\d+) " + what))) return ~0ULL;
    return std::stoull(m[1]);
}

TEST(GraphBounds, MaxStopsAfterNGraphs) {
    REQUIRE_GRAPH_KERNEL();
    Process g({ksurf_bin(), "--json", "graph", kRoot, "--max", "3"});
    ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s));
    traffic();
    auto r = g.finish(30s);  // ends by itself
    ASSERT_EQ(r.status, 0) << r.err;
    // Exactly 3 on every kernel: where the kernel may start a few more, the host drops them.
    EXPECT_EQ(json_lines(r.out).size(), 3u) << r.out;
    EXPECT_EQ(summary_count(r.err, "graphs recorded"), 3u) << r.err;
    // How many matching calls came before ksurf exited depends on timing, not their fate:
    // each one past the 3rd is over --max. The summary's counters are read one after the
    // other while the programs still run, so later calls can reach "over --max" but not
    // "ROOT called": only a lower bound holds. Without fetching atomics, CPUs racing past
    // the kernel's test may start one recording per (CPU, context) slot more, and those
    // still open when ksurf exited are counted nowhere.
    std::smatch called;
    ASSERT_TRUE(std::regex_search(r.err, called, std::regex("ROOT called (\\d+) times"))) << r.err;
    const std::uint64_t matched = std::stoull(called[1]) - summary_count(r.err, "skipped by the predicate");
    const std::uint64_t over = summary_count(r.err, "over --max");
    ASSERT_GE(matched, 3u) << r.err;
    const std::uint64_t slack = kernel_has_atomic_fetch() ? 0 : 4 * sysconf(_SC_NPROCESSORS_CONF);
    EXPECT_GE(3 + over + slack, matched) << r.err;
}

TEST(GraphBounds, SampleRecordsOneInN) {
    REQUIRE_GRAPH_KERNEL();
    auto r = graph_run({"--sample", "1/2"});
    ASSERT_GE(r.reference, 9u) << r.result.err;
    const bool exact = kernel_has_atomic_fetch();
    EXPECT_NE(r.result.err.find(exact ? "exact --sample" : "lacks atomic fetch-add"), std::string::npos) << r.result.err;
    std::set<std::uint64_t> ids;
    std::set<std::pair<int, std::string>> slots;  // (CPU, context) pairs that recorded
    for (const auto& g : r.graphs) {
        ids.insert(g["graph"].get<std::uint64_t>());
        slots.emplace(g["cpu"].get<int>(), g["context"].get<std::string>());
    }
    EXPECT_EQ(ids.size(), r.graphs.size()) << "graph ids repeat: " << r.result.out;
    // Every matching call is either recorded or sampled out.
    EXPECT_EQ(summary_count(r.result.err, "sampled out"), r.reference - r.graphs.size()) << r.result.err;
    if (exact) {
        // The 1st, 3rd, ... matching call: half of them, rounded up.
        EXPECT_EQ(r.graphs.size(), (r.reference + 1) / 2) << r.result.err;
    } else {
        // The 1st, 3rd, ... of each (CPU, context) slot: sum of ceil(m/2) over the slots, whose
        // matches m add up to the reference, and every slot with a match recorded its first.
        EXPECT_GE(r.graphs.size(), (r.reference + 1) / 2) << r.result.err;
        EXPECT_LE(r.graphs.size(), (r.reference + slots.size()) / 2) << r.result.err;
    }
}

// Where cgroup v2 is mounted, or "".
std::string cgroup2_root() {
    const auto dirs = cgroup2_dirs();
    return dirs.empty() ? "" : dirs.front();
}

bool in_kallsyms(const std::string& name) {
    std::ifstream k("/proc/kallsyms");
    for (std::string addr, type, sym; k >> addr >> type >> sym && std::getline(k, addr);)
        if (sym == name) return true;
    return false;
}

void read_file(const std::string& path) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(all.empty()) << path;
}

// memory.events and memory.events.local share __memory_events_show(); `caller` tells them
// apart by the return address at its entry.
TEST(Caller, OnlyCallsFromTheNamedFunction) {
    REQUIRE_GRAPH_KERNEL();
    const std::string root = cgroup2_root();
    if (root.empty()) {
        ASSERT_FALSE(in_vm_matrix()) << "the matrix guests mount cgroup v2";
        GTEST_SKIP() << "no cgroup v2 mount";
    }
    // A small static function: the compiler may have inlined it into both callers.
    if (!in_kallsyms("__memory_events_show")) GTEST_SKIP() << "__memory_events_show is inlined in this kernel";
    { std::ofstream(root + "/cgroup.subtree_control") << "+memory"; }
    const std::string dir = root + "/ksurf-caller-test";
    mkdir(dir.c_str(), 0755);
    ASSERT_TRUE(std::ifstream(dir + "/memory.events.local").good()) << "no memory controller in " << dir;
    for (const char* to : {"memory_events_show", "memory_events_local_show"}) {
        Process p({ksurf_bin(), fmt::format("p __memory_events_show f:caller=={}", to)});
        ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 60s)) << "did not attach";
        for (int i = 0; i < 3; i++) read_file(dir + "/memory.events");
        for (int i = 0; i < 2; i++) read_file(dir + "/memory.events.local");
        p.signal(SIGINT);
        auto r = p.finish();
        ASSERT_EQ(r.status, 0) << r.err;
        std::size_t n = 0;
        for (const auto& l : lines(r.out)) n += l.find("__memory_events_show") != std::string::npos;
        EXPECT_EQ(n, std::string(to) == "memory_events_show" ? 3u : 2u) << to << ":\n" << r.out << r.err;
    }
    rmdir(dir.c_str());
}

// ---- The tracefs fallback: ftrace's function_graph tracer in the top-level instance ----

const std::string kTracing = "/sys/kernel/tracing";

#define REQUIRE_FUNCTION_GRAPH()                                                                   \
    if (!has_feature("function_graph")) {                                                        \
        ASSERT_FALSE(in_vm_matrix()) << "every matrix kernel has the function_graph tracer";        \
        GTEST_SKIP() << "no function_graph tracer on this kernel";                                  \
    }

// What a run changes in the top-level instance and must give back.
std::map<std::string, std::string> top_level_state() {
    std::map<std::string, std::string> s;
    for (const char* f : {"current_tracer", "tracing_on", "trace_clock", "max_graph_depth", "set_ftrace_filter",
                          "set_graph_function", "set_ftrace_pid", "set_ftrace_notrace_pid"}) {
        std::ifstream in(kTracing + "/" + f);
        s[f] = std::string((std::istreambuf_iterator<char>(in)), {});
    }
    return s;
}

std::string current_tracer() {
    std::ifstream in(kTracing + "/current_tracer");
    std::string t;
    in >> t;
    return t;
}

// A child that opens /etc/hostname N times once go() is called, then exits: its opens are
// the only ones a -p run sees.
class Opener {
public:
    explicit Opener(int n) {
        EXPECT_EQ(pipe(fd_), 0);
        pid_ = fork();
        if (pid_ == 0) {
            char b;
            close(fd_[1]);
            if (read(fd_[0], &b, 1) != 1) _exit(1);
            for (int i = 0; i < n; i++) close(open("/etc/hostname", O_RDONLY));
            _exit(0);
        }
        close(fd_[0]);
    }
    ~Opener() {
        if (!done_) go();
    }
    pid_t pid() const { return pid_; }
    void go() {
        done_ = true;
        EXPECT_EQ(write(fd_[1], "x", 1), 1);
        close(fd_[1]);
        int st = 0;
        waitpid(pid_, &st, 0);
    }

private:
    int fd_[2] = {-1, -1};
    pid_t pid_ = -1;
    bool done_ = false;
};

std::vector<std::string> tracefs_graph(const std::string& root, std::vector<std::string> extra) {
    std::vector<std::string> argv = {ksurf_bin(), "--json", "graph", root, "--backend", "tracefs"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

// Calls nest in time: each inside its caller, in order, all with their exits.
void check_nesting(const json& calls, std::uint64_t from, std::uint64_t to, const json& graph) {
    std::uint64_t last = from;
    for (const auto& c : calls) {
        ASSERT_TRUE(c.contains("duration_ns")) << "a call without its exit: " << graph.dump();
        const std::uint64_t at = c["at_ns"], end = at + c["duration_ns"].get<std::uint64_t>();
        EXPECT_GE(at, last) << graph.dump();
        EXPECT_LE(end, to) << graph.dump();
        last = end;
        if (c.contains("calls")) check_nesting(c["calls"], at, end, graph);
    }
}

const json* find_call(const json& calls, const std::string& name) {
    for (const auto& c : calls)
        if (c["func"] == name) return &c;
    return nullptr;
}

TEST(GraphTracefs, OneGraphPerOpenOfTheProcessWithNestedCallees) {
    REQUIRE_FUNCTION_GRAPH();
    const auto before = top_level_state();
    Opener child(3);
    Process g(tracefs_graph("do_sys_openat2", {"--depth", "2", "-p", std::to_string(child.pid())}));
    ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s)) << g.finish(5s).err;
    EXPECT_EQ(current_tracer(), "function_graph");
    child.go();
    sleep(1);
    g.signal(SIGINT);
    auto r = g.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("ksurf: tracefs function_graph fallback (--backend tracefs): no argument predicate, no ROOT args"),
              std::string::npos)
        << r.err;
    const auto graphs = json_lines(r.out);
    ASSERT_EQ(graphs.size(), 3u) << r.out << r.err;
    for (const auto& gr : graphs) {
        EXPECT_EQ(gr["root"], "do_sys_openat2");
        EXPECT_EQ(gr["tid"], child.pid()) << gr.dump();
        EXPECT_EQ(gr["context"], "task") << gr.dump();
        EXPECT_FALSE(gr.contains("mismatched")) << gr.dump();
        check_nesting(gr["calls"], 0, gr["duration_ns"], gr);
        // --depth 2: do_filp_open and, under it, its own callees (path_openat, ...).
        const json* open = find_call(gr["calls"], "do_filp_open");
        ASSERT_TRUE(open) << gr.dump();
        EXPECT_GT((*open)["duration_ns"].get<std::uint64_t>(), 0u) << gr.dump();
        EXPECT_TRUE(open->contains("calls") && !(*open)["calls"].empty()) << gr.dump();
    }
    EXPECT_EQ(top_level_state(), before) << "the top-level instance was not given back";
}

TEST(GraphTracefs, TextOutputAndMaxEndTheRun) {
    REQUIRE_FUNCTION_GRAPH();
    Opener child(4);
    Process g({ksurf_bin(), "graph", "do_sys_openat2", "--backend", "tracefs", "--max", "2", "-p", std::to_string(child.pid())});
    ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s)) << g.finish(5s).err;
    child.go();
    auto r = g.finish(30s);  // ends by itself
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(summary_count(r.err, "graphs recorded"), 2u) << r.err;
    std::size_t headers = 0, opens = 0;
    const std::regex header(R"(^graph \d+: .*-(\d+) \[\d+\] task [0-9.]+: do_sys_openat2\(\)$)");
    const std::regex open_line(R"(^ +[0-9.]+ us \| +do_filp_open\(\)|^ +\| +do_filp_open\(\) \{$)");
    for (const auto& l : lines(r.out)) {
        std::smatch m;
        if (std::regex_match(l, m, header)) {
            headers++;
            EXPECT_EQ(std::stoi(m[1]), child.pid()) << l;
        }
        opens += std::regex_search(l, open_line);
    }
    EXPECT_EQ(headers, 2u) << r.out;
    EXPECT_EQ(opens, 2u) << r.out;
}

TEST(GraphTracefs, TcpSegmentsAsSoftirqGraphsWithoutThePredicate) {
    REQUIRE_FUNCTION_GRAPH();
    Process g(tracefs_graph("tcp_v4_rcv", {"--where", "tcp.dport==9000"}));
    ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s)) << g.finish(5s).err;
    traffic();
    sleep(1);
    g.signal(SIGINT);
    auto r = g.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("no argument predicate (--where not applied)"), std::string::npos) << r.err;
    const auto graphs = json_lines(r.out);
    // Segments to both ports and the replies: the predicate is not applied.
    EXPECT_GE(graphs.size(), 18u) << r.err;
    std::set<std::string> all;
    for (const auto& gr : graphs) {
        EXPECT_EQ(gr["context"], "softirq") << gr.dump();
        check_nesting(gr["calls"], 0, gr["duration_ns"], gr);
        std::set<std::string> names;
        walk(gr["calls"], names, gr);
        all.insert(names.begin(), names.end());
    }
    EXPECT_TRUE(all.count("tcp_v4_do_rcv")) << r.out;
}

TEST(GraphTracefs, SecondRunRefusedAndSigtermGivesTheTopLevelBack) {
    REQUIRE_FUNCTION_GRAPH();
    const auto before = top_level_state();
    Process first(tracefs_graph("do_sys_openat2", {}));
    ASSERT_TRUE(first.wait_for_err("Hit Ctrl-C to end.", 120s)) << first.finish(5s).err;
    auto second = run(tracefs_graph("do_sys_openat2", {"-d", "1"}), 120s);
    EXPECT_NE(second.status, 0);
    EXPECT_NE(second.err.find(fmt::format("the function_graph tracer is in use by ksurf (pid {})", first.pid())), std::string::npos)
        << second.err;
    EXPECT_EQ(current_tracer(), "function_graph") << "the refused run touched the first one's tracer";
    first.signal(SIGTERM);
    auto r = first.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(top_level_state(), before);
}

TEST(GraphTracefs, KilledRunIsUndoneByTheNext) {
    REQUIRE_FUNCTION_GRAPH();
    const auto before = top_level_state();
    Process killed(tracefs_graph("do_sys_openat2", {}));
    ASSERT_TRUE(killed.wait_for_err("Hit Ctrl-C to end.", 120s)) << killed.finish(5s).err;
    const pid_t pid = killed.pid();
    killed.signal(SIGKILL);
    killed.finish();
    ASSERT_EQ(current_tracer(), "function_graph") << "SIGKILL left nothing to clean up";
    auto next = run(tracefs_graph("do_sys_openat2", {"-d", "1"}), 120s);
    EXPECT_EQ(next.status, 0) << next.err;
    EXPECT_NE(next.err.find(fmt::format("restored the top-level tracefs setup left by a killed run (pid {})", pid)),
              std::string::npos)
        << next.err;
    EXPECT_EQ(top_level_state(), before);
}

// Records the top level's buffers lost are counted in the summary: nothing reads ksurf's
// output, so it blocks writing graphs while the child's opens overflow 4 KB buffers.
TEST(GraphTracefs, RecordsLostToFullBuffersAreCounted) {
    REQUIRE_FUNCTION_GRAPH();
    // "1408", or "7 (expanded: 1408)" before the buffers were first used: put back the size in use.
    struct BufferSize {
        std::string kb = slurp(kTracing + "/buffer_size_kb");
        BufferSize() {
            if (auto at = kb.find("expanded: "); at != std::string::npos) kb = kb.substr(at + 10);
            write_file("4");
        }
        ~BufferSize() { write_file(kb.substr(0, kb.find_first_not_of("0123456789"))); }
        static void write_file(const std::string& v) { std::ofstream(kTracing + "/buffer_size_kb") << v; }
    } small;
    Opener child(2000);
    Process g(tracefs_graph("do_sys_openat2", {"--depth", "2", "-p", std::to_string(child.pid())}));
    ASSERT_TRUE(g.wait_for_err("Hit Ctrl-C to end.", 120s)) << g.finish(5s).err;
    child.go();
    g.signal(SIGINT);
    auto r = g.finish(120s);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto dropped = summary_count(r.err, "records dropped");
    EXPECT_GT(dropped, 0u) << r.err;
    EXPECT_NE(dropped, ~0ULL) << r.err;
}

// Where neither BPF nor function_graph can record (this build host), one line says why.
TEST(GraphTracefs, NeitherBackendSaysWhy) {
    if (kernel_can_graph() || has_feature("function_graph"))
        GTEST_SKIP() << "this kernel can record graphs";
    auto r = run({ksurf_bin(), "graph", "do_sys_openat2"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(std::regex_search(r.err, std::regex("^ksurf: cannot record graphs: .*fentry: .*kprobe: .*function_graph: .*\n$")))
        << r.err;
}

}  // namespace
}  // namespace ksurf::test
