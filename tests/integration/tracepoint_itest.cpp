// `e SUBSYS/EVENT` probes on the running kernel: the test triggers the events itself and
// checks the lines ksurf prints about them.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kReady = "Hit Ctrl-C to end.";

// Starts ksurf with ARGS, runs /bin/true N times once it is attached, and returns the
// pids of those runs with ksurf's result.
std::pair<std::vector<pid_t>, Result> trace_true(std::vector<std::string> args, int n = 3) {
    args.insert(args.begin(), ksurf_bin());
    Process p(args);
    EXPECT_TRUE(p.wait_for_err(kReady, 20s)) << "ksurf did not attach";
    std::vector<pid_t> pids;
    for (int i = 0; i < n; i++) pids.push_back(spawn_and_wait({"/bin/true"}));
    return {pids, p.finish()};
}

TEST(Tracepoint, ExecEventsNameTheCommandAndItsPid) {
    auto [pids, r] = trace_true({"-d", "2", "e sched/sched_process_exec"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (pid_t pid : pids) {
        EXPECT_TRUE(has_true_exec_line(r.out, pid)) << "no exec line for pid " << pid << " in:\n" << r.out;
    }
}

// The record's first 8 bytes are a pt_regs pointer by the time a BPF program reads them.
TEST(Tracepoint, CommonPidIsTheThreadOnBpf) {
    auto [pids, r] = trace_true({"-d", "2", "--backend", "bpf", "e sched/sched_process_exec cp=common_pid f:common_pid>1"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (pid_t pid : pids) EXPECT_NE(r.out.find(fmt::format("cp={}", pid)), std::string::npos) << "pid " << pid << " in:\n" << r.out;
}

TEST(Tracepoint, SummaryCountsWhatWasPrinted) {
    auto [pids, r] = trace_true({"-d", "2", "e sched/sched_process_exec"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) events, (\d+) dropped)"))) << r.err;
    EXPECT_EQ(std::stoul(m[1]), lines(r.out).size());
    EXPECT_GE(std::stoul(m[1]), pids.size());
    EXPECT_EQ(m[2], "0");
}

// Rejected hits are counted only when asked: the count is a store on the path that rejects,
// which bpftrace's programs do not pay. Asked, it is exact: -p keeps the hits to this test's
// own getppid() calls, which the (compiled) filter rejects every one of.
TEST(Tracepoint, RejectedHitsAreCountedOnlyWhenAsked) {
    for (const bool count : {true, false}) {
        SCOPED_TRACE(count ? "--count-filtered" : "by default");
        std::vector<std::string> args{ksurf_bin(), "--backend", "bpf", "-d", "2", "-p", std::to_string(getpid())};
        if (count) args.push_back("--count-filtered");
        args.push_back("e syscalls/sys_enter_getppid f:common_pid==1");
        Process p(args);
        ASSERT_TRUE(p.wait_for_err(kReady, 20s)) << "ksurf did not attach";
        for (int i = 0; i < 1000; i++) syscall(SYS_getppid);
        const Result r = p.finish();
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.err.find("filtered") != std::string::npos, count) << r.err;
        EXPECT_NE(r.err.find(count ? "0 events, 1000 filtered, 0 dropped" : "0 events, 0 dropped"), std::string::npos) << r.err;
    }
}

TEST(Tracepoint, JsonLinesCarryTypedFields) {
    auto [pids, r] = trace_true({"--json", "-d", "2", "e sched/sched_process_exec"}, 1);
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false, summary = false;
    for (const auto& l : lines(r.out)) {
        auto j = nlohmann::json::parse(l);
        if (j.contains("summary")) {
            summary = true;
            EXPECT_GE(j["summary"]["events"].get<int>(), 1);
            continue;
        }
        EXPECT_EQ(j["probe"], "sched_process_exec");
        if (j["pid"] == pids[0]) {
            found = true;
            EXPECT_EQ(j["comm"], "true");
            EXPECT_EQ(j["fields"]["pid"], pids[0]);  // a number, not a string
            EXPECT_TRUE(j["fields"]["filename"].get<std::string>().ends_with("/bin/true"));
        }
    }
    EXPECT_TRUE(found) << r.out;
    EXPECT_TRUE(summary) << r.out;
}

TEST(Tracepoint, SeveralProbesShareOneRun) {
    auto [pids, r] = trace_true({"-d", "2", "e sched/sched_process_exec", "e sched/sched_process_exit"}, 1);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(fmt::format("true-{} ", pids[0])), std::string::npos) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(fmt::format(R"(: sched_process_exit: comm=true pid={} )", pids[0]))))
        << r.out;
}

TEST(Tracepoint, CtrlCEndsTheRunWithASummary) {
    Process p({ksurf_bin(), "e sched/sched_process_exec"});
    ASSERT_TRUE(p.wait_for_err(kReady, 20s));
    p.signal(SIGINT);
    auto r = p.finish(10s);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find(" dropped"), std::string::npos) << r.err;
}

struct BadInput {
    std::vector<std::string> args;
    std::string message;
};

class TracepointBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(TracepointBadInput, OneLineAndNonZeroExit) {
    auto args = GetParam().args;
    args.insert(args.begin(), ksurf_bin());
    auto r = run(args);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.status, 128 + SIGSEGV);
    EXPECT_NE(r.status, 128 + SIGABRT);
    EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Tracepoint, TracepointBadInput,
    ::testing::Values(BadInput{{"e sched/no_such_event"}, "tracepoint 'sched/no_such_event' not found"},
                      BadInput{{"e nosys/x"}, "no event system 'nosys'"},
                      BadInput{{"-d", "-1", "e sched/sched_process_exec"}, "-d"},
                      BadInput{{"--no-such-flag"}, "no-such-flag"}));

// Each backend names what the user lacks: BPF's EPERM, tracefs's unwritable directory.
TEST(Tracepoint, UnprivilegedUserGetsOneClearLine) {
    for (auto [backend, reason] : {std::pair{"auto", "not permitted"}, std::pair{"tracefs", "is not writable"}}) {
        Process p({ksurf_bin(), "--backend", backend, "-d", "1", "e sched/sched_process_exec"}, uid_t{65534});
        auto r = p.finish();
        EXPECT_EQ(r.status, 1) << backend << ": " << r.err;
        EXPECT_EQ(lines(r.err).size(), 1u) << backend << ": " << r.err;
        EXPECT_NE(r.err.find(reason), std::string::npos) << backend << ": " << r.err;
    }
}

}  // namespace
}  // namespace ksurf::test
