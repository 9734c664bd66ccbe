// However a run ends, it leaves nothing in the kernel: Ctrl-C, SIGTERM, SIGHUP, a signal
// during setup and a closed output pipe all end it cleanly (status 0, the summary) with no
// kprobe_events entry, no tracefs instance, no BPF program, map or link and nothing pinned;
// after SIGKILL the BPF objects die with the process and the next run removes what tracefs
// kept, saying so. Each backend and attach type: tracepoints everywhere, kprobes and
// fentry where the kernel has them (the VM matrix, where their absence fails).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "kernel_state.h"
#include "ksurf/features.h"
#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kReady = "Hit Ctrl-C to end.";

enum class Needs { Nothing, TracefsKprobes, Fentry, BpfKprobes };

struct Config {
    const char* name;
    std::vector<std::string> args;  // backend and probes
    Needs needs = Needs::Nothing;
    bool tracefs = false;
    std::size_t kprobes = 0;  // kprobe_events entries while it runs
};

void PrintTo(const Config& c, std::ostream* os) { *os << c.name; }

const std::vector<Config>& configs() {
    static const std::vector<Config> c{
        {"TracefsTracepoint", {"--backend", "tracefs", "e sched/sched_process_exec"}, Needs::Nothing, true, 0},
        // An event probe where the kernel has them (its user string), else the tracepoint's event.
        {"TracefsEventProbe", {"--backend", "tracefs", "e syscalls/sys_enter_openat"}, Needs::Nothing, true,
         eprobes_available() ? 1u : 0u},
        {"TracefsKprobes",
         {"--backend", "tracefs", "p do_filp_open name=%1->name", "r do_sys_openat2 ret=$retval"},
         Needs::TracefsKprobes,
         true,
         2},
        {"BpfTracepoint", {"--backend", "bpf", "e sched/sched_process_exec"}},
        {"BpfFentry", {"--backend", "fentry", "p do_filp_open name=%1->name", "r do_sys_openat2 ret=$retval"}, Needs::Fentry},
        {"BpfKprobes", {"--backend", "kprobe", "p do_filp_open name=%1->name", "r do_sys_openat2 ret=$retval"}, Needs::BpfKprobes},
    };
    return c;
}

// Skips (host) or fails (VM matrix) when the kernel lacks what C needs.
void require(const Config& c) {
    static Features features;
    std::string missing;
    switch (c.needs) {
    case Needs::Nothing: return;
    case Needs::TracefsKprobes:
        if (!kprobes_available()) missing = "no kprobe_events";
        break;
    case Needs::Fentry:
        if (!features.has(Feature::Fentry)) missing = features.get(Feature::Fentry).reason;
        break;
    case Needs::BpfKprobes:
        if (!features.has(Feature::Kprobe)) missing = features.get(Feature::Kprobe).reason;
        break;
    }
    if (missing.empty()) return;
    ASSERT_FALSE(in_vm_matrix()) << c.name << " in the VM matrix: " << missing;
    GTEST_SKIP() << missing;
}

std::vector<std::string> command(const Config& c, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{ksurf_bin()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    return argv;
}

// What the run PID holds in the kernel while it traces, checked to be what C attaches.
BpfObjects attached(const Config& c, pid_t pid) {
    EXPECT_EQ(instance_exists(pid), c.tracefs);
    EXPECT_EQ(kprobes_of(pid).size(), c.kprobes) << slurp(tracing_dir() / "dynamic_events");
    BpfObjects objects = bpf_objects_of(pid);
    if (!c.tracefs) {
        EXPECT_FALSE(objects.progs.empty()) << "the BPF backend holds no program";
        for (auto id : objects.progs) EXPECT_TRUE(prog_name(id).starts_with("ksurf_")) << id << ": " << prog_name(id);
    }
    return objects;
}

// Nothing of the run PID is left: tracefs, the BPF objects it held (freed asynchronously,
// so they get a moment), bpffs.
void expect_nothing_left(pid_t pid, const BpfObjects& held) {
    EXPECT_FALSE(instance_exists(pid)) << "instance ksurf_" << pid << " is left";
    EXPECT_TRUE(kprobes_of(pid).empty()) << slurp(tracing_dir() / "dynamic_events");
    const BpfObjects alive = still_alive_after_exit(held);
    EXPECT_TRUE(alive.progs.empty()) << alive.progs.size() << " programs left, the first " << alive.progs[0];
    EXPECT_TRUE(alive.maps.empty()) << alive.maps.size() << " maps left";
    EXPECT_TRUE(alive.links.empty()) << alive.links.size() << " links left";
    EXPECT_TRUE(pinned_ksurf_objects().empty()) << pinned_ksurf_objects()[0];
}

// ---- Ctrl-C, SIGTERM, SIGHUP ----

class Signals : public testing::TestWithParam<std::tuple<Config, int>> {};

TEST_P(Signals, EndTheRunAndLeaveNothing) {
    const auto& [c, sig] = GetParam();
    require(c);
    if (IsSkipped() || HasFatalFailure()) return;
    Process p(command(c));
    ASSERT_TRUE(p.wait_for_err(kReady, 30s)) << p.finish().err;
    const pid_t pid = p.pid();
    const BpfObjects held = attached(c, pid);
    p.signal(sig);
    auto r = p.finish(20s);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find(" events, "), std::string::npos) << "no summary: " << r.err;
    expect_nothing_left(pid, held);
}

INSTANTIATE_TEST_SUITE_P(, Signals, testing::Combine(testing::ValuesIn(configs()), testing::Values(SIGINT, SIGTERM, SIGHUP)),
                         [](const auto& i) {
                             const int sig = std::get<1>(i.param);
                             return std::string(std::get<0>(i.param).name) +
                                    (sig == SIGINT ? "_SIGINT" : sig == SIGTERM ? "_SIGTERM" : "_SIGHUP");
                         });

class Runs : public testing::TestWithParam<Config> {};

// ---- SIGKILL ----

TEST_P(Runs, AfterSigkillTheNextRunRemovesWhatTracefsKept) {
    const Config& c = GetParam();
    require(c);
    if (IsSkipped() || HasFatalFailure()) return;
    Process p(command(c));
    ASSERT_TRUE(p.wait_for_err(kReady, 30s)) << p.finish().err;
    const pid_t pid = p.pid();
    const BpfObjects held = attached(c, pid);
    p.signal(SIGKILL);
    EXPECT_EQ(p.finish(10s).status, 128 + SIGKILL);
    if (c.tracefs) {
        // No process can clean up after SIGKILL: the kernel keeps tracefs state.
        ASSERT_TRUE(instance_exists(pid)) << "SIGKILL leaves the instance behind";
        ASSERT_EQ(kprobes_of(pid).size(), c.kprobes) << "SIGKILL leaves the kprobes behind";
        auto r = run(command(c, {"-d", "1"}));
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.err.find(fmt::format("removed stale probes from a killed run (pid {})", pid)), std::string::npos)
            << r.err;
    }
    expect_nothing_left(pid, held);
}

// ---- a signal while ksurf is still attaching ----

// The instance appears first; the signal lands while probes are added and enabled.
TEST_P(Runs, ASignalDuringSetupLeavesNothing) {
    const Config& c = GetParam();
    require(c);
    if (IsSkipped() || HasFatalFailure()) return;
    if (!c.tracefs) GTEST_SKIP() << "BPF objects die with the process whenever it ends";
    Process p(command(c));
    const pid_t pid = p.pid();
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!instance_exists(pid) && std::chrono::steady_clock::now() < deadline) {
    }
    ASSERT_TRUE(instance_exists(pid)) << p.finish().err;
    p.signal(SIGTERM);
    auto r = p.finish(20s);
    EXPECT_NE(r.status, 128 + SIGTERM) << "killed by the signal, not ended by it: " << r.err;
    expect_nothing_left(pid, {});
}

// ---- the reader of the output goes away (ksurf ... | head) ----

// The pid of PARENT's child named COMM, or 0.
pid_t child_named(pid_t parent, const std::string& comm) {
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string stat = slurp(d.path() / "stat");
        const auto close = stat.rfind(')');
        if (close == std::string::npos || stat.find('(') == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 2));
        char state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent && stat.substr(stat.find('(') + 1, close - stat.find('(') - 1) == comm)
            return std::stoi(d.path().filename());
    }
    return 0;
}

TEST_P(Runs, AClosedOutputPipeEndsTheRun) {
    const Config& c = GetParam();
    require(c);
    if (IsSkipped() || HasFatalFailure()) return;
    if (c.needs != Needs::Nothing) GTEST_SKIP() << "exec events are the output this test reads";
    std::string cmd;
    for (const auto& a : command(c)) cmd += "'" + a + "' ";
    Process sh({"/bin/bash", "-c", cmd + "| head -n 1; echo \"ksurf status ${PIPESTATUS[0]}\" >&2"});
    ASSERT_TRUE(sh.wait_for_err(kReady, 30s)) << sh.finish().err;
    const pid_t pid = child_named(sh.pid(), "ksurf");
    ASSERT_NE(pid, 0);
    const BpfObjects held = attached(c, pid);
    // head exits after the first exec line; ksurf learns it at its next write.
    const auto running = [&] {
        siginfo_t info{};
        return waitid(P_PID, sh.pid(), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
    };
    for (int i = 0; i < 100 && running(); i++) {
        spawn_and_wait({"/bin/true"});
        std::this_thread::sleep_for(100ms);
    }
    auto r = sh.finish(20s);
    EXPECT_NE(r.err.find("ksurf status 0"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(" events, "), std::string::npos) << "no summary: " << r.err;
    expect_nothing_left(pid, held);
}

INSTANTIATE_TEST_SUITE_P(, Runs, testing::ValuesIn(configs()), [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace ksurf::test
