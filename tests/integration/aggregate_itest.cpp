// Aggregation in the kernel (--count, --sum, --hist, --lhist, ...; ksurf lat): a child of
// the test with its own comm makes a known number of system calls with known arguments,
// and the table ksurf prints must hold exactly those.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "backends.h"
#include "kernel_state.h"
#include "process.h"
#include "traffic.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Runs WORK in a child process named COMM and waits for it; its pid.
pid_t as_child(const char* comm, const std::function<void()>& work) {
    const pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_NAME, comm);
        work();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return pid;
}

void getppids(int n) {
    for (int i = 0; i < n; i++) syscall(SYS_getppid);
}

// read(2) from /dev/zero of each size in SIZES: sys_enter_read's `count` is the size.
void reads(const std::vector<std::size_t>& sizes) {
    const int fd = open("/dev/zero", O_RDONLY);
    char buf[64];
    for (std::size_t n : sizes) (void)!read(fd, buf, n);
    close(fd);
}

// ksurf ARGS, then WORK once attached, then SIG (Ctrl-C): its result. RAN: its pid.
Result traced(std::vector<std::string> args, const std::function<void()>& work, int sig = SIGINT, pid_t* ran = nullptr) {
    args.insert(args.begin(), ksurf_bin());
    Process p(args);
    if (ran) *ran = p.pid();
    EXPECT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << "did not attach";
    work();
    p.signal(sig);
    return p.finish();
}

// The JSON object of the last print (the run's summary follows it).
json last_table(const Result& r) {
    json last;
    for (const auto& l : lines(r.out))
        if (auto j = json::parse(l); !j.contains("summary")) last = j;
    return last;
}

const json* row_of(const json& table, const std::string& key, const json& value) {
    for (const auto& row : table["rows"])
        if (row["key"].contains(key) && row["key"][key] == value) return &row;
    return nullptr;
}

TEST(Aggregate, CountsEachCallOfAKnownCommand) {
    constexpr int kCalls = 1234;
    auto r = traced({"e syscalls/sys_enter_getppid", "--count", "comm", "--top", "10"},
                    [] { as_child("ksagg_count", [] { getppids(kCalls); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(fmt::format(R"((^|\n)ksagg_count +{}\n)", kCalls)))) << r.out;
    EXPECT_NE(r.out.find("count by comm"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("0 events"), std::string::npos) << "an aggregating run sends no events: " << r.err;
}

TEST(Aggregate, SumsAndStatsOfAKnownField) {
    std::vector<std::size_t> sizes;
    for (std::size_t i = 1; i <= 10; i++) sizes.push_back(i);
    auto r = traced({"e syscalls/sys_enter_read", "--stats", "count", "--by", "comm", "--json"},
                    [&] { as_child("ksagg_sum", [&] { reads(sizes); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    const json* row = row_of(t, "comm", "ksagg_sum");
    ASSERT_TRUE(row) << r.out;
    EXPECT_EQ((*row)["count"], 10);
    EXPECT_EQ((*row)["sum"], 55);
    EXPECT_EQ((*row)["min"], 1);
    EXPECT_EQ((*row)["max"], 10);
    EXPECT_DOUBLE_EQ((*row)["avg"].get<double>(), 5.5);
}

// bpftrace attached to the same tracepoint at the same time counts the same calls, and
// sums, minimum and maximum of the same field agree with ksurf's (and with what was read).
TEST(Aggregate, AgreesWithBpftraceOnTheSameCalls) {
    const std::vector<std::size_t> sizes{1, 2, 3, 5, 8, 13, 21, 34};
    Process ksurf({ksurf_bin(), "e syscalls/sys_enter_read", "--stats", "count", "--by", "comm", "--json"});
    ASSERT_TRUE(ksurf.wait_for_err("Hit Ctrl-C to end.", 30s)) << "ksurf did not attach";
    Process bpftrace({"/usr/bin/bpftrace", "-e",
                      "BEGIN { printf(\"bpftrace-ready\\n\"); } tracepoint:syscalls:sys_enter_read /comm == \"ksagg_bt\"/ "
                      "{ @n = count(); @s = sum(args->count); @lo = min(args->count); @hi = max(args->count); }"});
    if (!bpftrace.wait_for_out("bpftrace-ready", 60s)) {
        const Result failed = bpftrace.finish();
        // Debian 5.10: bpftrace 0.17 builds tracepoint args from headers this kernel lacks.
        if (failed.err.find("Include headers with missing type definitions") != std::string::npos)
            GTEST_SKIP() << "bpftrace cannot type sys_enter_read's args here: " << failed.err;
        FAIL() << "bpftrace did not attach: " << failed.err;
    }
    as_child("ksagg_bt", [&] { reads(sizes); });
    bpftrace.signal(SIGINT);
    ksurf.signal(SIGINT);
    // bpftrace's exit (its maps printed, its probes detached) once took over 60 s in the 6.1
    // guest under TCG: a wait for it, not for ksurf.
    const Result bt = bpftrace.finish(180s), r = ksurf.finish();
    const std::string& maps = bt.out;
    ASSERT_EQ(bt.status, 0) << bt.err << maps;
    ASSERT_EQ(r.status, 0) << r.err;
    const auto map = [&](const char* name) {
        std::smatch m;
        EXPECT_TRUE(std::regex_search(maps, m, std::regex(fmt::format(R"(@{}: (\d+))", name)))) << name << ": " << maps;
        return m.empty() ? -1 : std::stoll(m[1]);
    };
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.out << r.err;
    const json* row = row_of(t, "comm", "ksagg_bt");
    ASSERT_TRUE(row) << r.out;
    EXPECT_EQ((*row)["count"], map("n"));
    EXPECT_EQ((*row)["sum"], map("s"));
    EXPECT_EQ((*row)["min"], map("lo"));
    EXPECT_EQ((*row)["max"], map("hi"));
    EXPECT_EQ((*row)["count"], 8);
    EXPECT_EQ((*row)["sum"], 87);
}

// Bucket k + 2 of the log2 histogram holds [2^k, 2^(k+1)); 0 has its own.
TEST(Aggregate, Log2HistogramPutsKnownValuesInTheirBuckets) {
    auto r = traced({"e syscalls/sys_enter_read", "--hist", "count", "--by", "comm", "--json"},
                    [] { as_child("ksagg_hist", [] { reads({0, 1, 2, 3, 4, 7, 8, 8, 15, 16}); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    const json* row = row_of(t, "comm", "ksagg_hist");
    ASSERT_TRUE(row) << r.out;
    std::map<std::pair<long, long>, long> got;
    for (const auto& b : (*row)["buckets"]) got[{b["min"].get<long>(), b["max"].get<long>()}] = b["count"].get<long>();
    const std::map<std::pair<long, long>, long> want{{{0, 1}, 1}, {{1, 2}, 1}, {{2, 4}, 2}, {{4, 8}, 2}, {{8, 16}, 3}, {{16, 32}, 1}};
    EXPECT_EQ(got, want) << r.out;
}

TEST(Aggregate, LinearHistogramAndTheBucketsOutside) {
    auto r = traced({"e syscalls/sys_enter_read", "--lhist", "count:2:10:4", "--by", "comm", "--json"},
                    [] { as_child("ksagg_lhist", [] { reads({0, 1, 2, 5, 6, 9, 10, 40}); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    const json* row = row_of(t, "comm", "ksagg_lhist");
    ASSERT_TRUE(row) << r.out;
    std::vector<std::tuple<json, json, long>> got;
    for (const auto& b : (*row)["buckets"]) got.emplace_back(b["min"], b["max"], b["count"].get<long>());
    const std::vector<std::tuple<json, json, long>> want{
        {nullptr, 2, 2}, {2, 6, 2}, {6, 10, 2}, {10, nullptr, 2}};
    EXPECT_EQ(got, want) << r.out;
}

TEST(Aggregate, TextHistogramHasBars) {
    auto r = traced({"e syscalls/sys_enter_read", "--hist", "count", "--by", "comm"},
                    [] { as_child("ksagg_bars", [] { reads({4, 5, 6, 7, 8}); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const auto at = r.out.find("comm=ksagg_bars: count 5");
    ASSERT_NE(at, std::string::npos) << r.out;
    // Four in [4, 8): the longest bar; one in [8, 16): a quarter of it.
    EXPECT_TRUE(std::regex_search(r.out.substr(at), std::regex(R"(\n\[4, 8\) +4 \|@{40}\|\n\[8, 16\) +1 \|@{10} {30}\|)"))) << r.out;
}

TEST(Aggregate, FullMapCountsWhatItCouldNotKeep) {
    constexpr int kProcesses = 12, kMapSize = 4;
    auto r = traced({"e syscalls/sys_enter_getppid f:comm==\"ksagg_full\"", "--count", "pid", "--map-size",
                     std::to_string(kMapSize), "--json"},
                    [] {
                        for (int i = 0; i < kProcesses; i++) as_child("ksagg_full", [] { getppids(3); });
                    });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    EXPECT_EQ(t["rows"].size(), std::size_t{kMapSize}) << r.out;
    EXPECT_EQ(t["keys"], kMapSize);
    EXPECT_EQ(t["map_full"], 3 * (kProcesses - kMapSize)) << r.out;
    for (const auto& row : t["rows"]) EXPECT_EQ(row["count"], 3);
}

TEST(Aggregate, FullMapNotedInText) {
    auto r = traced({"e syscalls/sys_enter_getppid f:comm==\"ksagg_note\"", "--count", "pid", "--map-size", "1"},
                    [] {
                        for (int i = 0; i < 3; i++) as_child("ksagg_note", [] { getppids(1); });
                    });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("note: the map of 1 keys was full: 2 hits"), std::string::npos) << r.out;
}

TEST(Aggregate, IntervalPrintsWhileTheRunGoesOn) {
    auto r = run({ksurf_bin(), "-d", "2.2", "e syscalls/sys_enter_getppid", "--count", "comm", "--interval", "500ms"});
    ASSERT_EQ(r.status, 0) << r.err;
    const std::regex title(R"(\d\d:\d\d:\d\d count by comm)");
    const auto titles = std::distance(std::sregex_iterator(r.out.begin(), r.out.end(), title), std::sregex_iterator());
    EXPECT_GE(titles, 4) << "4 intervals and the exit:\n" << r.out;
    EXPECT_LE(titles, 6) << r.out;
}

TEST(Aggregate, JsonIsOneObjectPerPrint) {
    auto r = traced({"e syscalls/sys_enter_getppid", "--count", "comm,pid", "--interval", "300ms", "--json"}, [] {
        as_child("ksagg_json", [] { getppids(5); });
        std::this_thread::sleep_for(700ms);
    });
    ASSERT_EQ(r.status, 0) << r.err;
    const auto l = lines(r.out);
    ASSERT_GE(l.size(), 2u) << r.out;
    for (const auto& line : l) {
        const json t = json::parse(line);
        if (t.contains("summary")) continue;
        EXPECT_EQ(t["aggregate"], "count");
        EXPECT_EQ(t["by"], json({"comm", "pid"}));
        EXPECT_TRUE(t["time_ns"].is_number_unsigned());
        EXPECT_TRUE(t["rows"].is_array());
    }
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    const json* row = row_of(t, "comm", "ksagg_json");
    ASSERT_TRUE(row) << r.out;
    EXPECT_EQ((*row)["count"], 5);
    EXPECT_TRUE((*row)["key"]["pid"].is_number()) << r.out;
}

// The Prometheus client's own OpenMetrics parser reads the file.
TEST(Aggregate, MetricsFileIsOpenMetrics) {
    const std::string dir = testing::TempDir() + "ksagg_metrics";
    mkdir(dir.c_str(), 0700);
    for (const auto& [option, field] : {std::pair{"--count", ""}, std::pair{"--hist", "count"}, std::pair{"--stats", "count"}}) {
        const std::string file = dir + "/m.prom";
        std::vector<std::string> args{"e syscalls/sys_enter_read", option, "--by", "comm", "--metrics-file", file};
        if (*field) args.insert(args.begin() + 2, field);
        auto r = traced(args, [] { as_child("ksagg_prom", [] { reads({1, 2, 3}); }); });
        ASSERT_EQ(r.status, 0) << r.err;
        const std::string script = R"(
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        if s.labels.get('comm') == 'ksagg_prom':
            print(f.type, s.name, s.labels.get('le', ''), float(s.value))
)";
        auto py = run({"/usr/bin/python3", "-c", script, file});
        ASSERT_EQ(py.status, 0) << option << ": " << py.err << "\n" << r.out;
        const std::string o = option;
        if (o == "--hist") {
            // Buckets are cumulative and `le` is the last integer of [lo, hi).
            EXPECT_NE(py.out.find("histogram ksurf_hist_bucket 0.0 0.0\n"), std::string::npos) << py.out;
            EXPECT_NE(py.out.find("histogram ksurf_hist_bucket 1.0 1.0\n"), std::string::npos) << py.out;
            EXPECT_NE(py.out.find("histogram ksurf_hist_bucket 3.0 3.0\n"), std::string::npos) << py.out;
            EXPECT_NE(py.out.find("histogram ksurf_hist_bucket +Inf 3.0\n"), std::string::npos) << py.out;
            EXPECT_NE(py.out.find("histogram ksurf_hist_sum  6.0\n"), std::string::npos) << py.out;
        } else {
            EXPECT_NE(py.out.find(o == "--count" ? "counter ksurf_hits_total  3.0\n" : "gauge ksurf_sum  6.0\n"),
                      std::string::npos) << option << ":\n" << py.out;
        }
        unlink(file.c_str());
    }
    rmdir(dir.c_str());
}

struct BadAggregate {
    std::vector<std::string> args;
    std::string message;
};

class AggregateBadInput : public testing::TestWithParam<BadAggregate> {};

TEST_P(AggregateBadInput, OneLineAndStatusOne) {
    auto args = GetParam().args;
    args.insert(args.begin(), ksurf_bin());
    auto r = run(args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Aggregate, AggregateBadInput,
    testing::Values(
        BadAggregate{{"e syscalls/sys_enter_getppid", "--top", "3"}, "--top shapes an aggregation"},
        BadAggregate{{"e syscalls/sys_enter_read", "--lhist", "count:5:1:1"}, "--lhist takes FIELD:MIN:MAX:STEP"},
        BadAggregate{{"e syscalls/sys_enter_read", "--sum", "count", "--hist", "count"}, "one aggregation per run"},
        BadAggregate{{"e syscalls/sys_enter_read", "--sum", "nosuch"}, "unknown name 'nosuch'"},
        BadAggregate{{"--count", "e syscalls/sys_enter_getppid"}, "put --count after the probes"},
        BadAggregate{{"e syscalls/sys_enter_read", "--lhist", "count:0:1024:1", "--map-size", "1000000"},
                     "of kernel memory (at most 512)"}));

// ---- tracefs: hist triggers ----

// Which matrix kernels have them is Features.MatrixKernelsHaveTheirKnownFeatures' to check.
#define REQUIRE_HIST_TRIGGERS()                                                                   \
    do {                                                                                          \
        if (auto why = feature_missing("hist_triggers"); !why.empty()) GTEST_SKIP() << why;       \
    } while (0)

// As this host's kernel (CONFIG_HIST_TRIGGERS off) and Debian's 5.10 say it.
TEST(Aggregate, TracefsWithoutHistTriggersIsRefusedWithTheReason) {
    if (feature_missing("hist_triggers").empty()) GTEST_SKIP() << "this kernel has hist triggers";
    auto r = run({ksurf_bin(), "--backend", "tracefs", "e syscalls/sys_enter_getppid", "--count", "comm"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("ksurf: --count on tracefs: no hist triggers: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("/events/sched/sched_switch/hist is missing"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Aggregate, TracefsRefusesWhatHistTriggersLack) {
    REQUIRE_HIST_TRIGGERS();
    for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--max", "count"}, "--max on tracefs: hist triggers keep hit counts and sums, no minimum or maximum"},
             {{"--stats", "count"}, "--stats on tracefs: hist triggers keep hit counts and sums, no minimum or maximum"},
             {{"--lhist", "count:0:8:2"}, "--lhist on tracefs: hist triggers have no linear histogram between bounds"},
             {{"--count", "--map-size", "200000"}, "more than the 131072 keys a hist trigger holds"},
             {{"--count", "pid"}, "--count on tracefs: hist triggers key by thread (common_pid), not by process: key by tid"}}) {
        std::vector<std::string> argv{ksurf_bin(), "--backend", "tracefs", "e syscalls/sys_enter_read"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run(argv);
        EXPECT_EQ(r.status, 1) << r.err;
        EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    }
    auto r = run({ksurf_bin(), "--backend", "tracefs", "lat", "do_nanosleep"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("ksurf lat needs BPF"), std::string::npos) << r.err;
}

// Nothing of an aggregating run stays in the kernel, however it ends.
void expect_gone(pid_t pid, const std::string& what) {
    EXPECT_FALSE(instance_exists(pid)) << what;
    EXPECT_TRUE(kprobes_of(pid).empty()) << what;
}

// N calls by a known comm: count N, on a tracepoint (keyed by the execname) and a kprobe
// (by the kprobe's own $comm); Ctrl-C and SIGTERM both leave nothing behind.
TEST(Aggregate, TracefsCountsEachCallByComm) {
    REQUIRE_HIST_TRIGGERS();
    constexpr int kCalls = 1234;
    std::vector<std::pair<std::string, int>> runs{{"e syscalls/sys_enter_getppid", SIGINT}};
    if (kprobes_available()) runs.emplace_back("p __do_sys_getppid", SIGTERM);
    else if (in_vm_matrix()) FAIL() << "every matrix kernel has kprobes";
    for (const auto& [probe, sig] : runs) {
        pid_t pid = 0;
        auto r = traced({"--backend", "tracefs", probe, "--count", "comm", "--json"},
                        [] { as_child("ksagg_tfs", [] { getppids(kCalls); }); }, sig, &pid);
        ASSERT_EQ(r.status, 0) << probe << ": " << r.err;
        const json t = last_table(r);
        ASSERT_TRUE(t.is_object()) << probe << ": " << r.err;
        const json* row = row_of(t, "comm", "ksagg_tfs");
        ASSERT_TRUE(row) << probe << ": " << r.out;
        EXPECT_EQ((*row)["count"], kCalls) << probe;
        EXPECT_EQ(t["map_size"], 16384) << "--map-size 10240 as a power of two";
        expect_gone(pid, probe);
    }
}

// The same sum, count and mean by both backends.
TEST(Aggregate, TracefsSumsAsTheBpfBackendDoes) {
    REQUIRE_HIST_TRIGGERS();
    std::vector<std::size_t> sizes;
    for (std::size_t i = 1; i <= 10; i++) sizes.push_back(i * 3);
    std::map<std::string, json> rows;
    for (const char* backend : {"tracefs", "bpf"}) {
        auto r = traced({"--backend", backend, "e syscalls/sys_enter_read", "--avg", "count", "--by", "comm", "--json"},
                        [&] { as_child("ksagg_xsum", [&] { reads(sizes); }); });
        ASSERT_EQ(r.status, 0) << backend << ": " << r.err;
        const json t = last_table(r);
        const json* row = row_of(t, "comm", "ksagg_xsum");
        ASSERT_TRUE(row) << backend << ": " << r.out;
        rows[backend] = {{"count", (*row)["count"]}, {"sum", (*row)["sum"]}, {"avg", (*row)["avg"]}};
    }
    EXPECT_EQ(rows["tracefs"], rows["bpf"]);
    EXPECT_EQ(rows["tracefs"]["count"], 10);
    EXPECT_EQ(rows["tracefs"]["sum"], 165);
}

// The kernel's .log2 buckets end at their power of two: (2^(e-1), 2^e], 0 and 1 together;
// hist triggers keep no minimum or maximum, so none is printed.
TEST(Aggregate, TracefsLog2HistogramInTheKernelsBuckets) {
    REQUIRE_HIST_TRIGGERS();
    auto r = traced({"--backend", "tracefs", "e syscalls/sys_enter_read", "--hist", "count", "--by", "comm", "--json"},
                    [] { as_child("ksagg_thist", [] { reads({0, 1, 2, 3, 4, 7, 8, 8, 15, 16}); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    const json* row = row_of(t, "comm", "ksagg_thist");
    ASSERT_TRUE(row) << r.out;
    std::map<std::pair<long, long>, long> got;
    for (const auto& b : (*row)["buckets"]) got[{b["min"].get<long>(), b["max"].get<long>()}] = b["count"].get<long>();
    const std::map<std::pair<long, long>, long> want{{{0, 2}, 2}, {{2, 3}, 1}, {{3, 5}, 2}, {{5, 9}, 3}, {{9, 17}, 2}};
    EXPECT_EQ(got, want) << r.out;
    EXPECT_EQ((*row)["sum"], 64);
    EXPECT_FALSE(row->contains("min")) << r.out;
    auto text = traced({"--backend", "tracefs", "e syscalls/sys_enter_read", "--hist", "count", "--by", "comm"},
                       [] { as_child("ksagg_thist", [] { reads({5, 6, 7, 8, 9}); }); });
    EXPECT_TRUE(std::regex_search(text.out, std::regex(R"(comm=ksagg_thist: count 5, avg 7
\(4, 8\] +4 \|@{40}\|
\(8, 16\] +1 \|@{10} {30}\|)")))
        << text.out;
}

// A filter on the probe is the trigger's condition: only the matching calls count. Without
// keys, the trigger's placeholder key (the CPU) is merged into one total.
TEST(Aggregate, TracefsFilterGatesTheTrigger) {
    REQUIRE_HIST_TRIGGERS();
    auto r = traced({"--backend", "tracefs", "e syscalls/sys_enter_read f:count>=8 && comm==\"ksagg_tfilt\"", "--count", "--json"},
                    [] { as_child("ksagg_tfilt", [] { reads({1, 7, 8, 9, 30, 8, 8, 8, 8, 8}); }); });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_EQ(t["rows"].size(), 1u) << r.out;
    EXPECT_EQ(t["rows"][0]["key"], json::object()) << r.out;
    EXPECT_EQ(t["rows"][0]["count"], 8) << r.out;
}

// Stack keys: the kernel symbolizes them; --folded keeps the functions' names. Every one of
// CALLS calls is counted under a stack that holds FRAME, of the system call's path.
void expect_folded_stacks(const Result& r, long calls, const std::string& frame) {
    ASSERT_EQ(r.status, 0) << r.err;
    long total = 0;
    for (const auto& l : lines(r.out)) {
        const auto space = l.rfind(' ');
        ASSERT_NE(space, std::string::npos) << r.out;
        EXPECT_EQ(l.find('+'), std::string::npos) << "offsets are not folded: " << l;
        total += std::stol(l.substr(space + 1));
    }
    EXPECT_EQ(total, calls) << r.out;
    EXPECT_NE(r.out.find(frame), std::string::npos) << "where the syscall's tracepoint fires:\n" << r.out;
}

TEST(Aggregate, TracefsCountsByStackFolded) {
    REQUIRE_HIST_TRIGGERS();
    constexpr int kCalls = 77;
    expect_folded_stacks(traced({"--backend", "tracefs", "e syscalls/sys_enter_getppid f:comm==\"ksagg_tstk\"", "--count", "stack", "--folded"},
                                [] { as_child("ksagg_tstk", [] { getppids(kCalls); }); }),
                         kCalls, ";do_syscall_64 ");
}

// The BPF backend keys by the stack's id in a stack map, its aggregation compiled. On
// raw_syscalls: until a late-2024 fix, a syscalls/ tracepoint handed BPF the task's user
// registers, from which no kernel stack unwinds (5.10 and 6.1 count every call "[stack
// lost]").
TEST(Aggregate, CountsByStackFolded) {
    constexpr int kCalls = 77;
    const std::string probe = fmt::format("e raw_syscalls/sys_enter f:comm==\"ksagg_bstk\" && id=={}", SYS_getppid);
    expect_folded_stacks(traced({"--backend", "bpf", probe, "--count", "stack", "--folded"},
                                [] { as_child("ksagg_bstk", [] { getppids(kCalls); }); }),
                         kCalls, "do_syscall_64");
}

// SIGKILL leaves the trigger on the kprobe, which the kernel then refuses to remove until
// the instance holding the trigger is gone: the next run removes both.
TEST(Aggregate, TracefsAfterSigkillTheNextRunRemovesTheTrigger) {
    REQUIRE_HIST_TRIGGERS();
    if (!kprobes_available()) GTEST_SKIP() << "no kprobe_events";
    Process p({ksurf_bin(), "--backend", "tracefs", "p __do_sys_getppid", "--count", "comm"});
    ASSERT_TRUE(p.wait_for_err("Hit Ctrl-C to end.", 30s)) << p.finish().err;
    const pid_t pid = p.pid();
    p.signal(SIGKILL);
    EXPECT_EQ(p.finish(10s).status, 128 + SIGKILL);
    ASSERT_TRUE(instance_exists(pid));
    ASSERT_EQ(kprobes_of(pid).size(), 1u);
    auto r = run({ksurf_bin(), "--backend", "tracefs", "-d", "0.2", "e syscalls/sys_enter_getppid", "--count"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find(fmt::format("removed stale probes from a killed run (pid {}): 1 kprobe event and its tracefs instance",
                                      pid)),
              std::string::npos)
        << r.err;
    expect_gone(pid, "after the next run");
}

// The trigger's table is cumulative, as the BPF maps are: each print holds all so far.
TEST(Aggregate, TracefsIntervalPrintsTheRunSoFar) {
    REQUIRE_HIST_TRIGGERS();
    auto r = traced({"--backend", "tracefs", "e syscalls/sys_enter_getppid", "--count", "comm", "--interval", "300ms", "--json"},
                    [] {
                        as_child("ksagg_tint", [] { getppids(5); });
                        std::this_thread::sleep_for(700ms);
                        as_child("ksagg_tint", [] { getppids(5); });
                        std::this_thread::sleep_for(700ms);
                    });
    ASSERT_EQ(r.status, 0) << r.err;
    std::vector<long> counts;
    for (const auto& l : lines(r.out)) {
        const json t = json::parse(l);
        if (t.contains("summary")) continue;
        if (const json* row = row_of(t, "comm", "ksagg_tint")) counts.push_back((*row)["count"].get<long>());
    }
    ASSERT_GE(counts.size(), 3u) << r.out;
    EXPECT_TRUE(std::find(counts.begin(), counts.end(), 5) != counts.end()) << r.out;
    EXPECT_EQ(counts.back(), 10) << r.out;
    EXPECT_TRUE(std::is_sorted(counts.begin(), counts.end())) << r.out;
}

TEST(Aggregate, TracefsScriptWritesTheTrigger) {
    auto r = run({ksurf_bin(), "-S", "e syscalls/sys_enter_read f:count>=8", "--sum", "count", "--by", "comm"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("trigger \"syscalls/sys_enter_read\" "
                         "'hist:keys=common_pid.execname:vals=hitcount,count:size=16384 if count >= 8'\n"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("trap 'cat \"$I/events/syscalls/sys_enter_read/hist\"; exit 130'"), std::string::npos) << r.out;
}

// The -S script alone: its trigger counts, Ctrl-C prints the table, and removing the
// instance removes the trigger with it.
TEST(Aggregate, TracefsScriptCountsAndLeavesNothing) {
    REQUIRE_HIST_TRIGGERS();
    constexpr int kCalls = 42;
    const std::string path = testing::TempDir() + "ksagg_script.sh";
    auto gen = run({ksurf_bin(), "-S", "e syscalls/sys_enter_getppid f:comm==\"ksagg_tsh\"", "--count", "comm",
                    "-o", path});
    ASSERT_EQ(gen.status, 0) << gen.err;
    Process sh({"/bin/sh", path});
    ASSERT_TRUE(sh.wait_for_err("Hit Ctrl-C to print the tables and end.", 30s));
    as_child("ksagg_tsh", [] { getppids(kCalls); });
    sh.signal(SIGINT);
    auto r = sh.finish();
    unlink(path.c_str());
    EXPECT_TRUE(std::regex_search(r.out, std::regex(fmt::format(R"(\{{ common_pid: ksagg_tsh +\[ *\d+\] \}} hitcount: +{}\n)", kCalls))))
        << r.out << r.err;
    EXPECT_FALSE(std::filesystem::exists(tracing_dir() / "instances" / fmt::format("ksurf_sh_{}", sh.pid()))) << r.err;
}

// ---- function probes: the guests ----

TEST(Aggregate, CountsOnAFunctionProbe) {
    need_function_probes();
    if (IsSkipped() || HasFatalFailure()) return;
    constexpr int kCalls = 321;
    // The function every getppid() calls, with BTF on every matrix kernel.
    for (const char* backend : {"fentry", "kprobe"}) {
        auto r = traced({"--backend", backend, "p __do_sys_getppid", "--count", "comm", "--json"},
                        [] { as_child("ksagg_fn", [] { getppids(kCalls); }); });
        if (r.err.find("cannot use") != std::string::npos && !in_vm_matrix()) continue;
        ASSERT_EQ(r.status, 0) << backend << ": " << r.err;
        const json t = last_table(r);
        ASSERT_TRUE(t.is_object()) << backend << ": " << r.out << r.err;
        const json* row = row_of(t, "comm", "ksagg_fn");
        ASSERT_TRUE(row) << backend << ": " << r.out;
        EXPECT_EQ((*row)["count"], kCalls) << backend;
    }
}

// Five one-byte UDP datagrams to 127.0.0.1: 29 bytes each at ip_rcv (IP and UDP headers),
// keyed by their source; the ICMP the other tests send is not UDP.
TEST(Aggregate, SumsPacketLengthsBySourceWithPcap) {
    need_function_probes();
    if (IsSkipped() || HasFatalFailure()) return;
    auto r = traced({"p ip_rcv len=%0->len", "--sum", "len", "--by", "ip.saddr", "--pcap", "udp", "--json"}, [] {
        ping("127.0.0.2", 2);
        udp(5);
    });
    ASSERT_EQ(r.status, 0) << r.err;
    const json t = last_table(r);
    ASSERT_TRUE(t.is_object()) << r.err;
    ASSERT_EQ(t["rows"].size(), 1u) << r.out;
    const json* row = row_of(t, "ip.saddr", "127.0.0.1");
    ASSERT_TRUE(row) << r.out;
    EXPECT_EQ((*row)["count"], 5);
    EXPECT_EQ((*row)["sum"], 5 * 29);
}

// N sleeps of 20 ms: N calls, none shorter than the sleep, from the log2 bucket of
// nanoseconds holding 20 ms, [2^24, 2^25), on: the predicate keeps other sleepers out. A
// sleep may overrun into the next bucket (seen in the 5.10 guest under TCG: 38.9 ms). On
// both program types --backend names, keyed by the field the predicate reads (fetched once
// for both) and by one it does not.
TEST(Aggregate, LatencyOfSleepsInTheirBucket) {
    need_function_probes();
    if (IsSkipped() || HasFatalFailure()) return;
    constexpr int kSleeps = 5;
    for (const auto& [backend, key] : {std::pair{"fentry", "comm"}, {"kprobe", "pid"}}) {
        SCOPED_TRACE(backend);
        pid_t child = 0;
        auto r = traced({"--backend", backend, "lat", "do_nanosleep", "--where", "comm==\"ksagg_lat\"", "--by", key, "--json"}, [&] {
            child = as_child("ksagg_lat", [] {
                const timespec ts{0, 20'000'000};
                for (int i = 0; i < kSleeps; i++) nanosleep(&ts, nullptr);
            });
        });
        if (r.err.find("ksurf lat --backend") != std::string::npos && !in_vm_matrix()) continue;
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.err.find(fmt::format("on {}/", backend)), std::string::npos) << r.err;
        const json t = last_table(r);
        ASSERT_TRUE(t.is_object()) << r.err;
        EXPECT_EQ(t["unit"], "ns") << r.out;
        ASSERT_EQ(t["rows"].size(), 1u) << r.out;
        const json& row = t["rows"][0];
        if (key == std::string("comm"))
            EXPECT_EQ(row["key"]["comm"], "ksagg_lat");
        else
            EXPECT_EQ(row["key"]["pid"], child);
        EXPECT_EQ(row["count"], kSleeps) << r.out;
        EXPECT_GE(row["min"].get<long>(), 20'000'000) << r.out;
        EXPECT_LT(row["max"].get<long>(), 1'000'000'000) << r.out;
        ASSERT_GE(row["buckets"].size(), 1u) << r.out;
        EXPECT_EQ(row["buckets"][0]["min"], 1 << 24) << r.out;
        EXPECT_EQ(row["buckets"][0]["max"], 1 << 25) << r.out;
        long in_buckets = 0;
        for (const auto& b : row["buckets"]) in_buckets += b["count"].get<long>();
        EXPECT_EQ(in_buckets, kSleeps) << r.out;
        json summary;
        for (const auto& l : lines(r.out))
            if (auto j = json::parse(l); j.contains("summary")) summary = j["summary"];
        EXPECT_EQ(summary["paired"], kSleeps) << r.out;
        EXPECT_EQ(summary["missed"], 0) << r.out;
    }
}

TEST(Aggregate, LatencyTextHistogramInTimeUnits) {
    need_function_probes();
    if (IsSkipped() || HasFatalFailure()) return;
    auto r = traced({"lat", "do_nanosleep", "--where", "comm==\"ksagg_latt\""}, [] {
        as_child("ksagg_latt", [] {
            const timespec ts{0, 20'000'000};
            nanosleep(&ts, nullptr);
        });
    });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("hist do_nanosleep (1 key)"), std::string::npos) << r.out;
    // The sleep's bucket, or the next when it overran (as in LatencyOfSleepsInTheirBucket).
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\n\[(16\.8ms, 33\.6ms|33\.6ms, 67\.1ms)\) +1 \|@{40}\|\n)"))) << r.out;
    EXPECT_NE(r.err.find("1 calls paired, 0 missed"), std::string::npos) << r.err;
}

TEST(Aggregate, LatencyNeedsFunctionProbes) {
    if (kernel_can_probe_functions()) GTEST_SKIP() << "this kernel can probe functions";
    auto r = run({ksurf_bin(), "lat", "do_nanosleep"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("ksurf lat needs fentry or kprobes"), std::string::npos) << r.err;
    // Asked for by name, the one refused is named, with the kernel's reason.
    for (const char* backend : {"fentry", "kprobe"}) {
        r = run({ksurf_bin(), "--backend", backend, "lat", "do_nanosleep"});
        EXPECT_EQ(r.status, 1);
        EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
        EXPECT_NE(r.err.find(fmt::format("ksurf lat --backend {}: ", backend)), std::string::npos) << r.err;
    }
}

}  // namespace
}  // namespace ksurf::test
