// Kernel variables (@VAR) on the real kernel, checked against what the test knows
// independently: jiffies advances by HZ (the kernel's configuration) times the time
// between two hits a measured sleep apart; a cast reads a struct in place (the release
// uname() gives) and through a pointer (init_task leads its own group, "swapper/0"). On
// every backend that probes functions; where kallsyms lists no variables (the host), one
// error line says why.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include "backends.h"
#include "ksurf/kconfig.h"
#include "process.h"

namespace ksurf::test {
namespace {

constexpr const char* kFunctionBackends[] = {"tracefs", "fentry", "kprobe"};

// Whether /proc/kallsyms lists jiffies: kernels built with CONFIG_KALLSYMS_ALL do.
bool kallsyms_all() {
    std::ifstream in("/proc/kallsyms");
    for (std::string line; std::getline(in, line);)
        if (line.ends_with(" jiffies") && line.find(" D ") != std::string::npos) return true;
    return false;
}

// The kernel's jiffies now, as /proc/timer_list shows them.
std::uint64_t timer_list_jiffies() {
    std::ifstream in("/proc/timer_list");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("jiffies: ")) return std::stoull(line.substr(9));
    ADD_FAILURE() << "no jiffies in /proc/timer_list";
    return 0;
}

// HZ: CONFIG_HZ where the configuration is readable; else (the VM matrix's kernels) the
// kernel's own jiffies over a measured second, to the nearest HZ Linux offers.
long kernel_hz() {
    if (auto hz = kernel_config("CONFIG_HZ")) return std::stol(*hz);
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t j0 = timer_list_jiffies();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const double rate = static_cast<double>(timer_list_jiffies() - j0) /
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    long best = 100;
    for (long hz : {100L, 250L, 300L, 1000L})
        if (std::abs(rate - hz) < std::abs(rate - best)) best = hz;
    return best;
}

// Skips the test where /proc/kallsyms lists no variables; the VM matrix's kernels do.
#define REQUIRE_KALLSYMS_ALL()                                                              \
    do {                                                                                    \
        if (!kallsyms_all()) {                                                              \
            if (in_vm_matrix()) FAIL() << "/proc/kallsyms lists no jiffies";                \
            GTEST_SKIP() << "CONFIG_KALLSYMS_ALL is not set: /proc/kallsyms lists no variables"; \
        }                                                                                   \
    } while (0)

// The value of NAME=... in the event line REST ("probe: a=1 b=2"), up to the next space.
std::string value_of(const std::string& rest, const std::string& name) {
    const auto at = rest.find(" " + name + "=");
    if (at == std::string::npos) return {};
    const auto from = at + name.size() + 2;
    return rest.substr(from, rest.find(' ', from) - from);
}

// Two hits of hrtimer_nanosleep (every nanosleep) by this thread, SLEEP apart: jiffies, read
// at each, differ by HZ times the time measured between them, within a tick and 10 %.
TEST(LangGlobals, JiffiesAdvanceAtHzBetweenTwoHitsOnEveryBackend) {
    REQUIRE_KALLSYMS_ALL();
    const long hz = kernel_hz();
    for (const char* backend : kFunctionBackends) {
        SCOPED_TRACE(backend);
        REQUIRE_FUNCTIONS_ON(backend);
        const pid_t tid = gettid();
        double elapsed = 0;
        auto r = trace(backend, {"-d", "3", fmt::format("p hrtimer_nanosleep j=@jiffies f:$tid=={} && @jiffies>0", tid)},
                       [&] {
                           const auto first = std::chrono::steady_clock::now();
                           std::this_thread::sleep_for(std::chrono::milliseconds(600));
                           const auto second = std::chrono::steady_clock::now();
                           std::this_thread::sleep_for(std::chrono::milliseconds(1));
                           elapsed = std::chrono::duration<double>(second - first).count();
                       });
        ASSERT_EQ(r.status, 0) << r.err;
        const auto hits = parse(r.out);
        ASSERT_GE(hits.size(), 2u) << r.out << r.err;
        const std::string a = value_of(hits[0].rest, "j"), b = value_of(hits[1].rest, "j");
        ASSERT_FALSE(a.empty() || b.empty()) << r.out;
        const double delta = static_cast<double>(std::stoull(b) - std::stoull(a));
        const double expected = static_cast<double>(hz) * elapsed;
        std::cout << fmt::format("[{}] jiffies {} -> {}: +{} in {:.3f} s, HZ {} expects {:.1f}\n", backend, a, b, delta,
                                 elapsed, hz, expected);
        EXPECT_LE(std::abs(delta - expected), 1 + 0.1 * expected) << r.out;
    }
}

// A variable BTF does not type is cast to its struct: members in place (a char array) and
// through a pointer member. The filter reads one too.
TEST(LangGlobals, CastVariablesReadStructsInPlaceAndThroughPointers) {
    REQUIRE_KALLSYMS_ALL();
    utsname u{};
    ASSERT_EQ(uname(&u), 0);
    for (const char* backend : kFunctionBackends) {
        SCOPED_TRACE(backend);
        REQUIRE_FUNCTIONS_ON(backend);
        const pid_t tid = gettid();
        auto r = trace(backend,
                       {"-d", "3",
                        fmt::format("p hrtimer_nanosleep rel=((struct uts_namespace)@init_uts_ns).name.release "
                                    "leader=((struct task_struct)@init_task).group_leader->comm f:$tid=={}",
                                    tid)},
                       [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
        ASSERT_EQ(r.status, 0) << r.err;
        const auto hits = parse(r.out);
        ASSERT_FALSE(hits.empty()) << r.out << r.err;
        EXPECT_EQ(hits[0].rest, fmt::format("hrtimer_nanosleep: rel={} leader=swapper/0", u.release)) << r.out;
    }
}

// -S writes the variable as kprobe_events' @SYM, read as the u64 an untyped one is.
TEST(LangGlobals, ScriptFetchesTheSymbol) {
    REQUIRE_KALLSYMS_ALL();
    auto r = run({ksurf_bin(), "-S", "p hrtimer_nanosleep j=@jiffies"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(" j=@jiffies:u64 "), std::string::npos) << r.out;
}

// Without CONFIG_KALLSYMS_ALL there is no variable's address to read: one line says so,
// with the variable under the caret.
TEST(LangGlobals, WithoutKallsymsAllTheErrorSaysWhy) {
    if (kallsyms_all()) GTEST_SKIP() << "this kernel's kallsyms lists variables";
    auto r = run({ksurf_bin(), "-d", "1", "e sched/sched_switch j=@jiffies f:j>0"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err,
              "ksurf: kallsyms lists no data symbol 'jiffies' (this kernel is built without CONFIG_KALLSYMS_ALL)\n"
              "  e sched/sched_switch j=@jiffies f:j>0\n"
              "                         ^^^^^^^^\n");
}

}  // namespace
}  // namespace ksurf::test
