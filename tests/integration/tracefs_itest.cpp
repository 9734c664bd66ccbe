// `ksurf --backend tracefs` on the running kernel: tracepoints everywhere, kprobes where the
// kernel has kprobe_events (the VM matrix), and nothing left behind in tracefs afterwards.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "kernel_state.h"
#include "process.h"

namespace ksurf::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kReady = "Hit Ctrl-C to end.";

std::vector<std::string> tracefs_args(std::vector<std::string> args) {
    args.insert(args.begin(), {ksurf_bin(), "--backend", "tracefs"});
    return args;
}

// Runs ksurf with ARGS and, once it is attached, ACTION; then waits for ksurf to end.
Result trace(const std::vector<std::string>& args, const std::function<void()>& action) {
    Process p(args);
    EXPECT_TRUE(p.wait_for_err(kReady, 20s)) << "ksurf did not attach";
    action();
    return p.finish();
}

// A line of ksurf's text output: comm-pid [cpu] secs.micros: probe: fields
struct Line {
    std::string comm;
    pid_t pid = 0;
    int cpu = 0;
    double ts = 0;
    std::string rest;  // "probe: fields"
};

std::vector<Line> parse_lines(const std::string& out) {
    static const std::regex re(R"(^(.*)-(\d+) \[(\d{3})\] (\d+\.\d{6}): (.*)$)");
    std::vector<Line> v;
    std::smatch m;
    for (const auto& l : lines(out)) {
        EXPECT_TRUE(std::regex_match(l, m, re)) << "not an event line: " << l;
        if (!m.empty()) v.push_back({m[1], std::stoi(m[2]), std::stoi(m[3]), std::stod(m[4]), m[5]});
    }
    return v;
}

std::vector<Line> lines_of(const std::vector<Line>& all, pid_t pid) {
    std::vector<Line> v;
    for (const auto& l : all)
        if (l.pid == pid) v.push_back(l);
    return v;
}

// ---- everywhere: tracepoints ----

TEST(TracefsBackend, ExecEventsPrintAsFtraceLikeLines) {
    std::vector<pid_t> pids;
    auto r = trace(tracefs_args({"-d", "2", "e sched/sched_process_exec"}), [&] {
        for (int i = 0; i < 3; i++) pids.push_back(spawn_and_wait({"/bin/true"}));
    });
    ASSERT_EQ(r.status, 0) << r.err;
    for (pid_t pid : pids) {
        EXPECT_TRUE(has_true_exec_line(r.out, pid)) << "no exec line for pid " << pid << " in:\n" << r.out;
    }
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) events, 0 dropped)"))) << r.err;
    EXPECT_EQ(std::stoul(m[1]), lines(r.out).size());
}

// Event filters discard without counting: asked for a count, tracefs says it has none and
// the run goes on, its summary without one.
TEST(TracefsBackend, CountFilteredSaysItCannotCount) {
    auto r = trace(tracefs_args({"-d", "1", "--count-filtered", "e sched/sched_process_exec f:common_pid==1"}), [] {
        spawn_and_wait({"/bin/true"});
    });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("ksurf: --count-filtered: tracefs event filters discard without counting"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("filtered,"), std::string::npos) << r.err;
    EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(\d+ events, 0 dropped)"))) << r.err;
}

// The same events through both backends: identical lines, timestamps of the same clock.
TEST(TracefsBackend, LinesMatchTheBpfBackend) {
    Process bpf({ksurf_bin(), "--backend", "bpf", "-d", "3", "e sched/sched_process_exec"});
    ASSERT_TRUE(bpf.wait_for_err(kReady, 20s)) << "the BPF backend did not attach";
    std::vector<pid_t> pids;
    auto r = trace(tracefs_args({"-d", "2", "e sched/sched_process_exec"}), [&] {
        for (int i = 0; i < 3; i++) pids.push_back(spawn_and_wait({"/bin/true"}));
    });
    auto b = bpf.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(b.status, 0) << b.err;
    auto ours = parse_lines(r.out), theirs = parse_lines(b.out);
    for (pid_t pid : pids) {
        auto x = lines_of(ours, pid), y = lines_of(theirs, pid);
        ASSERT_EQ(x.size(), 1u) << r.out;
        ASSERT_EQ(y.size(), 1u) << b.out;
        EXPECT_EQ(x[0].comm, y[0].comm);
        EXPECT_EQ(x[0].cpu, y[0].cpu);
        EXPECT_EQ(x[0].rest, y[0].rest);
        // CLOCK_MONOTONIC both: the same tracepoint hit, apart by the time between the two
        // handlers (milliseconds under emulation).
        EXPECT_NEAR(x[0].ts, y[0].ts, 0.05) << "tracefs " << x[0].ts << " bpf " << y[0].ts;
    }
}

TEST(TracefsBackend, JsonCarriesTgidAndNumbers) {
    pid_t pid = 0;
    auto r = trace(tracefs_args({"--json", "-d", "2", "e sched/sched_process_exec"}),
                   [&] { pid = spawn_and_wait({"/bin/true"}); });
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false;
    for (const auto& l : lines(r.out)) {
        auto j = nlohmann::json::parse(l);
        if (j.contains("summary") || j["pid"] != pid) continue;
        found = true;
        EXPECT_EQ(j["comm"], "true");
        EXPECT_EQ(j["tgid"], pid);
        EXPECT_EQ(j["probe"], "sched_process_exec");
        EXPECT_EQ(j["fields"]["pid"], pid);
    }
    EXPECT_TRUE(found) << r.out;
}

TEST(TracefsBackend, TracepointWithANumericFilter) {
    // Only the forks of this test process: the kernel filters on the record's parent_pid.
    const pid_t self = getpid();
    std::vector<pid_t> pids;
    auto r = trace(tracefs_args({"-d", "2", fmt::format("e sched/sched_process_fork f:parent_pid=={}", self)}), [&] {
        for (int i = 0; i < 3; i++) pids.push_back(spawn_and_wait({"/bin/true"}));
    });
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse_lines(r.out);
    EXPECT_GE(all.size(), pids.size()) << r.out;
    for (const auto& l : all)
        EXPECT_NE(l.rest.find(fmt::format(" parent_pid={} ", self)), std::string::npos) << l.rest;
    for (pid_t pid : pids)
        EXPECT_NE(r.out.find(fmt::format(" child_pid={}", pid)), std::string::npos) << pid << " in\n" << r.out;
}

// Signals and cleanup after a killed run: signals_itest.cpp. Tracepoint and function cases
// that every backend shares (comm filters, strings, $retval, stacks): equivalence_itest.cpp.

// ---- -S ----

TEST(TracefsBackend, ScriptIsPrintedWithoutAttaching) {
    auto r = run(tracefs_args({"-S", "e sched/sched_process_exec f:comm==\"true\""}));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(r.out.starts_with("#!/bin/sh\n")) << r.out;
    EXPECT_NE(r.out.find("echo 1 > \"$I/events/sched/sched_process_exec/enable\""), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find(kReady), std::string::npos) << r.err;
}

TEST(TracefsBackend, ScriptOfAKprobeNeedsNoKprobes) {
    auto r = run(tracefs_args({"-S", "p do_filp_open name=%1->name f:comm==\"cat\""}));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(kprobe "p:\$G/p0 "'do_filp_open name=\S+\(%si\)\):string __comm=\$comm')")))
        << r.out;
    EXPECT_NE(r.out.find("filter \"$G/p0\" 'comm == \"cat\"'"), std::string::npos) << r.out;
}

// -S reads only BTF (world-readable), so it needs no privileges.
TEST(TracefsBackend, ScriptOfAKprobeNeedsNoRoot) {
    auto r = Process({ksurf_bin(), "-S", "p do_filp_open name=%1->name"}, uid_t{65534}).finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("'do_filp_open name=+0(+0(%si)):string __comm=$comm'"), std::string::npos) << r.out;
}

// The script traces by itself and removes its instance when terminated.
TEST(TracefsBackend, ScriptFileRunsAndCleansUp) {
    const std::string file = fmt::format("/tmp/ksurf-tfs-{}.sh", getpid());
    auto r = run(tracefs_args({"-o", file, "e sched/sched_process_exec f:comm==\"true\""}));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    struct stat st {};
    ASSERT_EQ(stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    Process sh({"/bin/sh", file});
    const auto instance = [&] { return tracing_dir() / "instances" / fmt::format("ksurf_sh_{}", sh.pid()); };
    const auto enable = [&] { return instance() / "events/sched/sched_process_exec/enable"; };
    for (int i = 0; i < 200 && !slurp(enable()).starts_with("1"); i++) std::this_thread::sleep_for(50ms);
    pid_t pid = spawn_and_wait({"/bin/true"});
    std::this_thread::sleep_for(1s);  // for cat to copy it out of trace_pipe
    sh.signal(SIGTERM);
    auto s = sh.finish(10s);
    // trace_pipe names the task from saved_cmdlines, which may not have it yet: "<...>-PID".
    EXPECT_TRUE(std::regex_search(s.out, std::regex(fmt::format(R"(-{} +\[\d+\] .*sched_process_exec: filename=)", pid))))
        << s.out << s.err;
    EXPECT_FALSE(fs::exists(instance())) << s.err;
    unlink(file.c_str());
}

// ---- kprobes ----

// On the host, without CONFIG_KPROBES: one clear line, not a crash or a fallback.
TEST(TracefsBackend, KprobesMissingIsOneClearLine) {
    if (kprobes_available()) GTEST_SKIP() << "this kernel has kprobe_events";
    auto r = run(tracefs_args({"-d", "1", "p do_filp_open"}));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("kprobe"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("(CONFIG_KPROBES is not set)"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(kReady), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

class TracefsBackendKprobes : public testing::Test {
protected:
    void SetUp() override {
        if (kprobes_available()) return;
        ASSERT_FALSE(in_vm_matrix()) << "no kprobe_events in the VM matrix";
        GTEST_SKIP() << "no kprobe_events on this kernel";
    }

    // A file the test opens itself, so its name is in the trace.
    static std::string unique_path(const char* what) { return fmt::format("/tmp/ksurf-tfs-{}-{}", what, getpid()); }
};

// FUNC+OFF right after the ftrace call site, where the argument registers are untouched:
// 5 bytes in, or 9 behind an endbr64 (IBT kernels). The kernel refuses the offset that is
// not an instruction boundary.
TEST_F(TracefsBackendKprobes, OffsetProbeReadsARegister) {
    int offset = 5;
    if (run(tracefs_args({"-d", "0.1", "p do_filp_open+5"})).err.find("not an instruction boundary") != std::string::npos)
        offset = 9;
    const auto path = unique_path("offset");
    std::ofstream{path};
    pid_t cat = 0;
    auto r = trace(tracefs_args({"-d", "2", fmt::format("p do_filp_open+{} name=((struct filename *)%si)->name "
                                                        "f:comm==\"cat\"",
                                                        offset)}),
                   [&] { cat = spawn_and_wait({"/bin/cat", path}); });
    unlink(path.c_str());
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false;
    const auto expected = fmt::format("do_filp_open+{:#x}: name={}", offset, path);
    for (const auto& l : lines_of(parse_lines(r.out), cat)) found |= l.rest == expected;
    EXPECT_TRUE(found) << r.out;
}

TEST_F(TracefsBackendKprobes, TheKernelsReasonForARefusedKprobe) {
    // An offset inside the first instruction: the kernel refuses, naming why.
    auto r = run(tracefs_args({"-d", "1", "p do_filp_open+1"}));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("p do_filp_open+1: the kernel refused the kprobe: "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ksurf::test
