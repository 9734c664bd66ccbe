// A flood of matching events: a child calls getppid() (or getpgid()) in a tight loop under
// an accept-all probe while ksurf's output is not read (its stdout pipe full, ksurf blocked
// writing). The kernel must never wait for ksurf: the flooder finishes in bounded time, ksurf's memory
// stays bounded, and what did not fit in the small kernel buffer is counted as dropped in
// the summary, on both backends.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <regex>
#include <thread>

#include "kernel_state.h"
#include "ksurf/features.h"
#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kReady = "Hit Ctrl-C to end.";

struct Flood {
    const char* name;
    std::vector<std::string> args;  // backend and the accept-all probe
    long sysno = SYS_getppid;       // what the flooder calls
    bool kprobe = false;            // needs kprobes (the VM matrix)
};

void PrintTo(const Flood& f, std::ostream* os) { *os << f.name; }

// Forks a child making N calls of system call SYSNO (without arguments, or 0) and returns
// how long it took (nullopt: failed).
std::optional<std::chrono::duration<double>> flood(long sysno, long n) {
    const auto start = std::chrono::steady_clock::now();
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < n; i++) syscall(sysno, 0);
        _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
    return std::chrono::steady_clock::now() - start;
}

// kB of the high-water mark of PID's resident memory.
long vm_hwm_kb(pid_t pid) {
    for (const auto& l : lines(slurp(fmt::format("/proc/{}/status", pid))))
        if (l.starts_with("VmHWM:")) return std::stol(l.substr(6));
    return -1;
}

class Overload : public testing::TestWithParam<Flood> {};

TEST_P(Overload, TheKernelNeverWaitsAndDropsAreCounted) {
    const Flood& f = GetParam();
    if (f.kprobe) {
        static Features features;
        const bool have = f.args[1] == "tracefs" ? kprobes_available() : features.has(Feature::Kprobe);
        if (!have) {
            ASSERT_FALSE(in_vm_matrix()) << "no kprobes in the VM matrix";
            GTEST_SKIP() << "no kprobes on this kernel";
        }
    } else if (!std::filesystem::exists(tracing_dir() / "events/syscalls/sys_enter_getppid")) {
        // tracing_dir() is only there once something mounted tracefs: ksurf does.
        run({ksurf_bin(), "features"});
        if (!std::filesystem::exists(tracing_dir() / "events/syscalls/sys_enter_getppid"))
            GTEST_SKIP() << "no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)";
    }
    // TCG guests run the loop a hundred times slower than the host.
    const long n = in_vm_matrix() ? 100'000 : 2'000'000;
    std::vector<std::string> argv{ksurf_bin(), "--buffer-size", "8"};
    argv.insert(argv.end(), f.args.begin(), f.args.end());
    Process p(argv);
    ASSERT_TRUE(p.wait_for_err(kReady, 30s)) << p.finish().err;
    const long idle_kb = vm_hwm_kb(p.pid());

    // Nothing reads ksurf's stdout meanwhile: it blocks once the pipe is full.
    const auto took = flood(f.sysno, n);
    ASSERT_TRUE(took) << "the flooder failed";
    EXPECT_LT(took->count(), 60.0) << n << " system calls took " << took->count() << " s under ksurf";
    const long flooded_kb = vm_hwm_kb(p.pid());
    // The backlog it may still print is what the small buffer held: read it, then stop.
    p.wait_for_err("(drained)", 3s);
    p.signal(SIGINT);
    auto r = p.finish(30s);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_GT(idle_kb, 0);
    EXPECT_LT(flooded_kb, idle_kb + 32 * 1024) << "ksurf grew from " << idle_kb << " kB to " << flooded_kb << " kB";
    EXPECT_LT(flooded_kb, 256 * 1024) << flooded_kb << " kB";

    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) events, (\d+) dropped)"))) << r.err;
    const auto events = std::stoull(m[1]), dropped = std::stoull(m[2]);
    EXPECT_GT(dropped, 0u) << "a flood of " << n << " into an 8 KB buffer dropped nothing: " << r.err;
    EXPECT_GT(events, 0u) << r.err;
    // Every call was either printed or counted, never silently lost; other processes'
    // getppid() calls may add to both.
    EXPECT_GE(events + dropped, static_cast<unsigned long long>(n)) << r.err;
    EXPECT_EQ(events, lines(r.out).size()) << r.err;
    std::cout << f.name << ": " << n << " calls in " << took->count() << " s; ksurf VmHWM " << idle_kb << " -> "
              << flooded_kb << " kB; " << events << " events, " << dropped << " dropped\n";
}

INSTANTIATE_TEST_SUITE_P(, Overload,
                         testing::Values(Flood{"BpfTracepoint", {"--backend", "bpf", "e syscalls/sys_enter_getppid"}},
                                         Flood{"TracefsTracepoint", {"--backend", "tracefs", "e syscalls/sys_enter_getppid"}},
                                         // __x64_sys_getppid has no BTF on 6.1: getpgid(0) then.
                                         Flood{"BpfKprobe", {"--backend", "kprobe", "p __x64_sys_getpgid"}, SYS_getpgid, true},
                                         Flood{"TracefsKprobe", {"--backend", "tracefs", "p __x64_sys_getpgid"}, SYS_getpgid, true}),
                         [](const auto& i) { return std::string(i.param.name); });

// The size reaches the kernel: a buffer the kernel refuses is one clear line.
TEST(BufferSize, OutOfRangeIsRefused) {
    auto r = run({ksurf_bin(), "--buffer-size", "1", "-d", "1", "e sched/sched_process_exec"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("--buffer-size"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ksurf::test
