// The command line through the real binary: every option error is one `ksurf:` line with
// exit status 1, -c ends with its command's status, and probe texts that are not ksurf's
// get the fix. The exact lines are the point: they are what a user reads.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

const std::string kExec = "e sched/sched_process_exec";

// ARGS fail as options: status 1, nothing on stdout, exactly the line ERR on stderr.
void expect_option_error(const std::vector<std::string>& args, const std::string& err) {
    std::vector<std::string> argv{ksurf_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    const Result r = run(argv);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, err + "\n");
}

// Status 1 and one line starting with "ksurf: ", whatever CLI11's words are.
void expect_one_line(const std::vector<std::string>& args) {
    std::vector<std::string> argv{ksurf_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    const Result r = run(argv);
    EXPECT_EQ(r.status, 1) << r.err;
    ASSERT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_TRUE(r.err.starts_with("ksurf: ")) << r.err;
    EXPECT_LT(r.err.size(), 200u) << "no 300-digit ranges: " << r.err;
}

TEST(Durations, UnitsRun) {
    const auto start = std::chrono::steady_clock::now();
    const Result r = run({ksurf_bin(), "-d", "1s", kExec});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("Tracing 1 probe."), std::string::npos) << r.err;
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 1s);
    EXPECT_LT(took, 20s);
    EXPECT_EQ(run({ksurf_bin(), "-d", "300ms", kExec}).status, 0);
}

TEST(Durations, ZeroAndJunkAreOneLine) {
    expect_option_error({"-d", "0", kExec}, "ksurf: -d must be more than 0, not '0' (leave -d out to trace until Ctrl-C)");
    expect_option_error({"-d", "x", kExec}, "ksurf: -d takes a duration: 5 or 1.5 (seconds), 500ms, 2m, 1h; not 'x'");
    expect_option_error({"-d", "1e300", kExec},
                        "ksurf: -d takes at most a year, not '1e300' (leave -d out to trace until Ctrl-C)");
    expect_option_error({"graph", "vfs_read", "--min-duration", "5 minutes"},
                        "ksurf: --min-duration takes a duration with ns, us, ms, s, m or h (bare: nanoseconds), not '5 minutes'");
}

TEST(OptionErrors, CLI11sAreOneKsurfLineWithStatusOne) {
    expect_one_line({"--buffer-size", "2", kExec});
    expect_one_line({"--buffer-size", "x", kExec});
    expect_one_line({"--snaplen", "0", kExec});
    expect_one_line({"--no-such-option", kExec});
    expect_one_line({"-d"});
    expect_one_line({"graph"});
    expect_one_line({"graph", "vfs_read", "--depth", "-1"});
    expect_option_error({"--backend", "ebpf", kExec}, "ksurf: unknown backend 'ebpf': expected auto, bpf, fentry, kprobe or tracefs");
    expect_option_error({"graph", "vfs_read", "--attach", "uprobe"},
                        "ksurf: --attach takes auto, fentry, kprobe or kprobe.multi, not 'uprobe'");
    expect_option_error({"skb", "--attach", "fentry"},
                        "ksurf: ksurf skb takes --attach auto, kprobe or kprobe.multi: it needs kprobes");
}

TEST(OptionErrors, TracingOptionsAreRefusedBySubcommands) {
    expect_option_error({"graph", "vfs_read", "--snaplen", "64"}, "ksurf: ksurf graph does not take --snaplen");
    expect_option_error({"skb", "-s"}, "ksurf: ksurf skb does not take --stack");
    expect_option_error({"graph", "vfs_read", "-c", "true"}, "ksurf: ksurf graph does not take -c");
    expect_option_error({"skb", "-p", "1"}, "ksurf: ksurf skb does not take -p: it follows packets, whichever process sends them");
}

TEST(Help, ExitStatusesAndEachCommandsOwnExamples) {
    const Result top = run({ksurf_bin(), "--help"});
    EXPECT_EQ(top.status, 0);
    EXPECT_NE(top.out.find("Exit status:\n  0 "), std::string::npos) << top.out;
    EXPECT_NE(top.out.find("ksurf -d 5 'e sched/sched_process_exec'"), std::string::npos) << top.out;
    for (const char* sub : {"graph", "skb"}) {
        const Result r = run({ksurf_bin(), sub, "--help"});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find(std::string("  ksurf ") + sub + " "), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("ksurf -d 5 'e sched/sched_process_exec'"), std::string::npos) << "the generic examples:\n" << r.out;
    }
}

TEST(Command, ExitsWithTheCommandsStatus) {
    Result r = run({ksurf_bin(), kExec, "-c", "true"});
    EXPECT_EQ(r.status, 0) << r.err;
    r = run({ksurf_bin(), kExec, "-c", "false"});
    EXPECT_EQ(r.status, 1) << r.err;
    r = run({ksurf_bin(), kExec, "-c", "sh", "-c", "exit 3"});
    EXPECT_EQ(r.status, 3) << r.err;
    r = run({ksurf_bin(), kExec, "-c", "sh", "-c", "kill -TERM $$"});
    EXPECT_EQ(r.status, 128 + SIGTERM) << r.err;
}

TEST(Command, NotFoundIs127AndNotRunnable126) {
    Result r = run({ksurf_bin(), kExec, "-c", "/nonexistent/cmd"});
    EXPECT_EQ(r.status, 127) << r.err;
    EXPECT_NE(r.err.find("\nksurf: cannot run '/nonexistent/cmd': No such file or directory (ENOENT)\n"), std::string::npos)
        << r.err;
    r = run({ksurf_bin(), kExec, "-c", "/etc/passwd"});
    EXPECT_EQ(r.status, 126) << r.err;
    EXPECT_NE(r.err.find("\nksurf: cannot run '/etc/passwd': Permission denied (EACCES)\n"), std::string::npos) << r.err;
}

TEST(Command, ProbesAfterItAreTheCommandsArgumentsAndSaidSo) {
    expect_option_error({"-c", "ls", "e sched/x"},
                        "ksurf: no probe given, but 'e sched/x' after -c is an argument of ls: -c takes the rest of the "
                        "line, so put the probes before it (ksurf 'e sched/x' -c ls ...)");
    expect_option_error({"-c"}, "ksurf: -c needs a command");
}

TEST(Pids, ANonexistentPidIsNamed) {
    if (kill(999999, 0) == 0) GTEST_SKIP() << "pid 999999 exists";
    expect_option_error({"-p", "999999", kExec}, "ksurf: -p 999999: no such process");
    expect_option_error({"-p", "1,999999", kExec}, "ksurf: -p 999999: no such process");
    expect_option_error({"graph", "vfs_read", "--backend", "tracefs", "-p", "999999"}, "ksurf: -p 999999: no such process");
}

TEST(Hints, AnUnquotedProbe) {
    expect_option_error({"e", "sched/sched_switch"},
                        "ksurf: 'e' is the start of a probe the shell split into words: quote each probe whole, as in "
                        "ksurf 'e sched/sched_switch'");
    expect_option_error({"-d", "1", "p", "vfs_read", "x=%0"},
                        "ksurf: 'p' is the start of a probe the shell split into words: quote each probe whole, as in "
                        "ksurf 'p vfs_read x=%0'");
}

TEST(Hints, BpftraceSyntax) {
    expect_option_error({"tracepoint:sched:sched_switch"},
                        "ksurf: 'tracepoint:sched:sched_switch' is bpftrace's syntax; in ksurf: 'e sched/sched_switch'");
    expect_option_error({"kprobe:vfs_read"}, "ksurf: 'kprobe:vfs_read' is bpftrace's syntax; in ksurf: 'p vfs_read'");
    expect_option_error({"kretprobe:vfs_read /retval < 0/ { @ = count(); }"},
                        "ksurf: 'kretprobe:vfs_read /retval < 0/ { @ = count(); }' is bpftrace's syntax; in ksurf: "
                        "'r vfs_read f:$retval < 0'");
}

bool has_libbpf_line(const std::string& err) {
    for (const auto& l : lines(err))
        if (l.starts_with("libbpf: ")) return true;
    return false;
}

TEST(Verbosity, OneVIsKsurfsReasonsTwoAddLibbpfsLog) {
    const Result v = run({ksurf_bin(), "-v", "-d", "300ms", kExec});
    ASSERT_EQ(v.status, 0) << v.err;
    EXPECT_NE(v.err.find("ksurf: " + kExec + ": "), std::string::npos) << "the attach type and why:\n" << v.err;
    EXPECT_FALSE(has_libbpf_line(v.err)) << v.err;
    EXPECT_LT(lines(v.err).size(), 20u) << v.err;
    const Result vv = run({ksurf_bin(), "-vv", "-d", "300ms", kExec});
    ASSERT_EQ(vv.status, 0) << vv.err;
    EXPECT_TRUE(has_libbpf_line(vv.err)) << vv.err;
}

}  // namespace
}  // namespace ksurf::test
