// The probe language's forms beyond plain member chains on the real kernel: scalar wrapper
// structs, surftrace's packet marks and payload members, user memory. Values are checked
// against what the test itself did, on every backend that can run the probe; a backend the
// host lacks is skipped with the kernel's reason, and fails the VM matrix.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "backends.h"
#include "kernel_state.h"
#include "process.h"
#include "traffic.h"

namespace ksurf::test {
namespace {

constexpr const char* kFunctionBackends[] = {"tracefs", "fentry", "kprobe"};

std::vector<std::string> rests(const std::vector<Line>& lines) {
    std::vector<std::string> v;
    for (const auto& l : lines) v.push_back(l.rest);
    std::sort(v.begin(), v.end());
    return v;
}

// Threads of this process now, from /proc/self/status.
int threads() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("Threads:")) return std::stoi(line.substr(8));
    ADD_FAILURE() << "no Threads: in /proc/self/status";
    return 0;
}

// mm_users (an atomic_t) counts the tasks that share an mm: a forked child has its own copy
// (1), a new thread shares this process's (its threads + 1). kuid_t is a number too, and a
// filter compares the wrapped number.
TEST(LangWrappers, MmUsersAndUidAreNumbersOnEveryBackend) {
    for (const char* backend : kFunctionBackends) {
        SCOPED_TRACE(backend);
        REQUIRE_FUNCTIONS_ON(backend);
        const pid_t self = getpid();
        pid_t child = 0;
        std::atomic<pid_t> thread = 0;
        int shared = 0;
        auto r = trace(backend,
                       {"-d", "3",
                        fmt::format("p wake_up_new_task child=%0->pid users=S%0->mm->mm_users uid=%0->real_cred->uid "
                                    "f:common_pid=={}",
                                    self),
                        fmt::format("p wake_up_new_task threaded=%0->pid n=S%0->mm->mm_users f:common_pid=={} && n>=2",
                                    self)},
                       [&] {
                           child = spawn_and_wait({"/bin/true"});
                           shared = threads() + 1;
                           std::thread([&] { thread = static_cast<pid_t>(syscall(SYS_gettid)); }).join();
                       });
        ASSERT_EQ(r.status, 0) << r.err;
        const auto mine = rests(of(parse(r.out), self));
        const auto has = [&](const std::string& line) { return std::ranges::find(mine, line) != mine.end(); };
        const std::string all = fmt::format("{}", fmt::join(mine, "\n"));
        EXPECT_TRUE(has(fmt::format("wake_up_new_task: child={} users=1 uid={}", child, getuid()))) << all;
        EXPECT_TRUE(has(fmt::format("wake_up_new_task: child={} users={} uid={}", thread.load(), shared, getuid()))) << all;
        EXPECT_TRUE(has(fmt::format("wake_up_new_task: threaded={} n={}", thread.load(), shared))) << all;
        EXPECT_FALSE(has(fmt::format("wake_up_new_task: threaded={} n=1", child))) << all;
    }
}

// surftrace's marks say where skb->data is: at the UDP header in udp_rcv (l4), at the IP
// header in ip_rcv (l3, where an L4 header follows 20 bytes of IPv4). The payload members
// read after the header: udp() sends "x" to 127.0.0.1:9000, and bytes 2-3 after the IP
// header are the UDP destination port. Every backend prints exactly these lines.
TEST(LangPacket, MarksAndPayloadReadTheSameBytesOnEveryBackend) {
    const std::vector<std::string> udp_lines(3, "udp_rcv: b16_dport=9000 c=120");
    const std::vector<std::string> ip_lines(3, "ip_rcv: b16_dport=9000 b16_d=9000 proto=17");
    for (const char* backend : kFunctionBackends) {
        SCOPED_TRACE(backend);
        REQUIRE_FUNCTIONS_ON(backend);
        auto r = trace(backend,
                       {"-d", "3",
                        "p udp_rcv b16_dport=@(struct udphdr *)l4%0->dest c=@(struct udphdr *)l4%0->cdata[0] "
                        "f:b16_dport==9000",
                        "p ip_rcv b16_dport=@(struct udphdr *)%0->dest b16_d=@(struct iphdr *)l3%0->sdata[1] "
                        "proto=@(struct iphdr *)l3%0->protocol f:proto==17&&b16_dport==9000"},
                       [] { udp(3); });
        ASSERT_EQ(r.status, 0) << r.err;
        std::vector<std::string> udp_seen, ip_seen;
        for (const auto& rest : rests(parse(r.out))) (rest.starts_with("udp_rcv") ? udp_seen : ip_seen).push_back(rest);
        EXPECT_EQ(udp_seen, udp_lines) << r.out;
        EXPECT_EQ(ip_seen, ip_lines) << r.out;
    }
}

// tcp_v4_rcv sees skb->data at the TCP header: l4 reads the port there on tracefs too
// (which used to add 20 bytes and never match).
TEST(LangPacket, TcpPortAtL4OnEveryBackend) {
    for (const char* backend : kFunctionBackends) {
        SCOPED_TRACE(backend);
        REQUIRE_FUNCTIONS_ON(backend);
        auto r = trace(backend, {"-d", "3", "p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest f:b16_dport==9200"},
                       [] { tcp_exchanges(9200); });
        ASSERT_EQ(r.status, 0) << r.err;
        const auto seen = rests(parse(r.out));
        EXPECT_GE(seen.size(), static_cast<std::size_t>(kExchanges)) << r.out;
        for (const auto& l : seen) EXPECT_EQ(l, "tcp_v4_rcv: b16_dport=9200");
    }
}

std::string unique_path(const char* what) { return fmt::format("/tmp/ksurf-lang-{}-{}", what, getpid()); }

// A syscall's filename is a string in user memory: BPF reads it; the explicit __user
// cast reads a string or a number from there, and filters compare them.
TEST(LangUser, SyscallStringsAndUserCastsOnBpf) {
    const std::string path = unique_path("open");
    std::ofstream{path};
    pid_t cat = 0;
    auto r = trace("bpf",
                   {"-d", "2", fmt::format("e syscalls/sys_enter_openat f:filename~\"*/ksurf-lang-open-{}\"", getpid()),
                    fmt::format("e syscalls/sys_enter_openat name=(char __user *)filename c=((u8 __user *)filename)[0] "
                                "f:name==\"{}\"",
                                path)},
                   [&] { cat = spawn_and_wait({"/bin/cat", path}); });
    unlink(path.c_str());
    ASSERT_EQ(r.status, 0) << r.err;
    const auto mine = rests(of(parse(r.out), cat));
    const std::string all = fmt::format("{}", fmt::join(rests(parse(r.out)), "\n"));
    ASSERT_EQ(mine.size(), 2u) << all;
    EXPECT_NE(mine[0].find(fmt::format(" filename={} ", path)), std::string::npos) << all;
    EXPECT_EQ(mine[1], fmt::format("sys_enter_openat: name={} c=47", path)) << all;
}

// Where the kernel has event probes (5.15+), tracefs reads a syscall's string through one
// on the tracepoint, and prints and filters it as BPF does; without them it prints the
// address and says why.
TEST(LangUser, SyscallStringsOnTracefsAsOnBpf) {
    const std::string path = unique_path("tracefs");
    std::ofstream{path};
    const std::string probe = fmt::format("e syscalls/sys_enter_openat f:filename~\"*/ksurf-lang-tracefs-{}\"", getpid());
    if (!eprobes_available()) {
        pid_t cat = 0;
        auto r = trace("tracefs", {"-d", "2", "e syscalls/sys_enter_openat f:comm==\"cat\""},
                       [&] { cat = spawn_and_wait({"/bin/cat", path}); });
        unlink(path.c_str());
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.err.find("'filename' is a string in user memory; tracefs prints its address"), std::string::npos) << r.err;
        const auto mine = rests(of(parse(r.out), cat));
        ASSERT_FALSE(mine.empty()) << r.out;
        for (const auto& l : mine) EXPECT_NE(l.find(" filename=0x"), std::string::npos) << l;
        // The filter on the string is refused with the reason, before anything is created.
        auto refused = run({ksurf_bin(), "--backend", "tracefs", "-d", "1", probe});
        EXPECT_EQ(refused.status, 1);
        EXPECT_NE(refused.err.find("event probes, 5.15+, can read it"), std::string::npos) << refused.err;
        return;
    }
    std::map<std::string, std::vector<std::string>> seen;
    for (const char* backend : {"bpf", "tracefs"}) {
        pid_t cat = 0;
        auto r = trace(backend, {"-d", "2", probe}, [&] { cat = spawn_and_wait({"/bin/cat", path}); });
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.err.find("prints its address"), std::string::npos) << r.err;
        seen[backend] = rests(of(parse(r.out), cat));
    }
    unlink(path.c_str());
    ASSERT_EQ(seen["tracefs"].size(), 1u) << fmt::format("{}", fmt::join(seen["tracefs"], "\n"));
    EXPECT_NE(seen["tracefs"][0].find(fmt::format(" filename={} ", path)), std::string::npos) << seen["tracefs"][0];
    EXPECT_EQ(seen["tracefs"], seen["bpf"]);
    // -S writes the same event probe.
    auto s = run({ksurf_bin(), "-S", probe});
    ASSERT_EQ(s.status, 0) << s.err;
    EXPECT_NE(s.out.find("eprobe \"e:$G/e0 \"'syscalls.sys_enter_openat "), std::string::npos) << s.out;
    EXPECT_NE(s.out.find(" filename=+0($filename):ustring "), std::string::npos) << s.out;
}

// P/R on a program of known calls (uprobe_target.c), -c gating the run to it: x86-64
// argument registers, casts to int, a string in the process's memory, $retval, a filter.
TEST(LangUprobe, ArgumentsStringsAndReturnValuesOnBothBackends) {
    const std::string target = KSURF_UPROBE_TARGET;
    for (const auto& [backend, feature] : {std::pair{"bpf", "uprobe"}, std::pair{"tracefs", "uprobe_events"}}) {
        SCOPED_TRACE(backend);
        if (auto why = feature_missing(feature); !why.empty()) {
            if (in_vm_matrix()) FAIL() << why;
            GTEST_SKIP() << why;
        }
        auto r = run({ksurf_bin(), "--backend", backend, fmt::format("P {}:add a=(int)%0 b=(int)%1", target),
                      fmt::format("R {}:add ret=(int)$retval", target),
                      fmt::format("P {}:greet who=(char *)%0 n=(int)%1 f:who==\"world\"", target), "-c", target,
                      "40", "2"});
        ASSERT_EQ(r.status, 0) << r.err;
        const auto lines = parse(r.out);
        for (const auto& l : lines) EXPECT_EQ(l.comm, "uprobe_target") << l.rest;
        EXPECT_EQ(rests(lines), (std::vector<std::string>{"add.return: ret=-3", "add.return: ret=42", "add: a=-5 b=2",
                                                          "add: a=40 b=2", "greet: who=world n=3"}))
            << r.out;
    }
}

// -F prints a function's instructions at the offsets p FUNC+OFF takes: a kprobe at the
// third one attaches and fires.
TEST(LangDisassemble, OffsetsAreProbePoints) {
    REQUIRE_FUNCTIONS_ON("kprobe");
    if (!in_vm_matrix() && access("/proc/kcore", R_OK) != 0) GTEST_SKIP() << "no /proc/kcore";
    auto r = run({ksurf_bin(), "-F", "do_filp_open"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto asm_lines = lines(r.out);
    ASSERT_GE(asm_lines.size(), 3u) << r.out;
    EXPECT_TRUE(asm_lines[0].starts_with("do_filp_open+0x0: ")) << r.out;
    const std::string third = asm_lines[2].substr(0, asm_lines[2].find(':'));
    ASSERT_TRUE(third.starts_with("do_filp_open+0x")) << r.out;
    pid_t cat = 0;
    auto t = trace("kprobe", {"-d", "2", fmt::format("p {} f:comm==\"cat\"", third)},
                   [&] { cat = spawn_and_wait({"/bin/cat", "/proc/self/stat"}); });
    ASSERT_EQ(t.status, 0) << t.err;
    EXPECT_FALSE(of(parse(t.out), cat).empty()) << t.out << t.err;
    EXPECT_EQ(run({ksurf_bin(), "-F", "no_such_function_here"}).err,
              "ksurf: 'no_such_function_here' is not a kernel function (not in /proc/kallsyms)\n");
}

}  // namespace
}  // namespace ksurf::test
