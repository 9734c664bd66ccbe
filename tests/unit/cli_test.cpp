// The command line's parsers and hints, through CLI11 as main() registers them.
#include <CLI/CLI.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ksurf/cli.h"
#include "ksurf/error.h"
#include "ksurf/parse.h"

namespace ksurf {
namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(Durations, SecondsTakeUnitsAndBareSeconds) {
    EXPECT_DOUBLE_EQ(parse_seconds("5", "-d"), 5);
    EXPECT_DOUBLE_EQ(parse_seconds("1.5", "-d"), 1.5);
    EXPECT_DOUBLE_EQ(parse_seconds("5s", "-d"), 5);
    EXPECT_DOUBLE_EQ(parse_seconds("500ms", "-d"), 0.5);
    EXPECT_DOUBLE_EQ(parse_seconds("2m", "-d"), 120);
    EXPECT_DOUBLE_EQ(parse_seconds("1h", "-d"), 3600);
    EXPECT_DOUBLE_EQ(parse_seconds("250us", "-d"), 250e-6);
}

TEST(Durations, SecondsRefuseZeroJunkAndRunaways) {
    EXPECT_EQ(error_of([] { parse_seconds("0", "-d"); }),
              "-d must be more than 0, not '0' (leave -d out to trace until Ctrl-C)");
    EXPECT_EQ(error_of([] { parse_seconds("-1", "-d"); }),
              "-d must be more than 0, not '-1' (leave -d out to trace until Ctrl-C)");
    EXPECT_EQ(error_of([] { parse_seconds("x", "-d"); }),
              "-d takes a duration: 5 or 1.5 (seconds), 500ms, 2m, 1h; not 'x'");
    for (const char* bad : {"5 s", "5sec", "", "s", "inf", "nan", "1e999", "5s5"})
        EXPECT_NE(error_of([&] { parse_seconds(bad, "-d"); }), "(no error)") << bad;
    EXPECT_EQ(error_of([] { parse_seconds("1e300", "-d"); }),
              "-d takes at most a year, not '1e300' (leave -d out to trace until Ctrl-C)");
}

TEST(Durations, MinDurationKeepsNanosecondsBare) {
    EXPECT_EQ(parse_duration_ns("10us", "--min-duration"), 10000u);
    EXPECT_EQ(parse_duration_ns("1.5ms", "--min-duration"), 1500000u);
    EXPECT_EQ(parse_duration_ns("250", "--min-duration"), 250u);
    EXPECT_EQ(parse_duration_ns("2s", "--min-duration"), 2000000000u);
    EXPECT_EQ(parse_duration_ns("0", "--min-duration"), 0u);
    EXPECT_EQ(error_of([] { parse_duration_ns("5 minutes", "--min-duration"); }),
              "--min-duration takes a duration with ns, us, ms, s, m or h (bare: nanoseconds), not '5 minutes'");
    EXPECT_NE(error_of([] { parse_duration_ns("-1us", "--min-duration"); }), "(no error)");
    EXPECT_NE(error_of([] { parse_duration_ns("1e30", "--min-duration"); }), "(no error)");
}

TEST(Attach, OneParserForEveryCommand) {
    EXPECT_EQ(parse_attach("auto"), FunctionAttach::Auto);
    EXPECT_EQ(parse_attach("fentry"), FunctionAttach::Fentry);
    EXPECT_EQ(parse_attach("kprobe"), FunctionAttach::Kprobe);
    EXPECT_EQ(parse_attach("kprobe.multi"), FunctionAttach::KprobeMulti);
    EXPECT_EQ(error_of([] { parse_attach("kprobes"); }), "--attach takes auto, fentry, kprobe or kprobe.multi, not 'kprobes'");
}

TEST(Pids, ExistingOnly) {
    EXPECT_EQ(parse_pid(std::to_string(getpid())), static_cast<std::uint32_t>(getpid()));
    EXPECT_EQ(error_of([] { parse_pid("0"); }), "-p takes process ids, not '0'");
    EXPECT_EQ(error_of([] { parse_pid("4294967295"); }), "-p takes process ids, not '4294967295'");
    EXPECT_EQ(error_of([] { parse_pid("12x"); }), "-p takes process ids, not '12x'");
    // Above the largest pid_max the kernel allows (2^22), so never a process.
    EXPECT_EQ(error_of([] { parse_pid("99999999"); }), "-p 99999999: no such process");
}

// The common options as CLI11 parses them: ARGS after the program name.
CommonOptions parse(std::vector<std::string> args) {
    CLI::App app;
    CommonOptions opt;
    add_common_options(app, opt);
    args.insert(args.begin(), "ksurf");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
    return opt;
}

TEST(CommonOptions, ParsedOnceIntoTheirTypes) {
    const CommonOptions o = parse({"-d", "500ms", "--backend", "tracefs", "-vv", "--json", "-p", "1", "--buffer-size", "64"});
    EXPECT_DOUBLE_EQ(o.duration, 0.5);
    EXPECT_EQ(o.backend, BackendRequest::Tracefs);
    EXPECT_EQ(o.verbose, 2);
    EXPECT_TRUE(o.json);
    EXPECT_EQ(o.pids, std::vector<std::uint32_t>{1});
    EXPECT_EQ(o.buffer_kb, 64u);
    EXPECT_EQ(parse({"-v"}).verbose, 1);
    EXPECT_EQ(parse({"-v", "-v"}).verbose, 2);
    EXPECT_EQ(parse({"-p", "1,1", "-p", "1"}).pids, (std::vector<std::uint32_t>{1, 1, 1}));
}

TEST(CommonOptions, BadValuesThrowTheirLine) {
    EXPECT_EQ(error_of([] { parse({"-d", "0"}); }), "-d must be more than 0, not '0' (leave -d out to trace until Ctrl-C)");
    EXPECT_EQ(error_of([] { parse({"--backend", "ebpf"}); }),
              "unknown backend 'ebpf': expected auto, bpf, fentry, kprobe or tracefs");
    EXPECT_EQ(error_of([] { parse({"-p", "1,99999999"}); }), "-p 99999999: no such process");
}

TEST(ProbeHints, AProbeSplitIntoWords) {
    EXPECT_EQ(error_of([] { check_probe_arguments({"e", "sched/sched_switch"}); }),
              "'e' is the start of a probe the shell split into words: quote each probe whole, as in ksurf "
              "'e sched/sched_switch'");
    EXPECT_EQ(error_of([] { check_probe_arguments({"p", "vfs_read", "x=%0", "e sched/sched_switch"}); }),
              "'p' is the start of a probe the shell split into words: quote each probe whole, as in ksurf "
              "'p vfs_read x=%0'");
    EXPECT_EQ(error_of([] { check_probe_arguments({"e sched/sched_switch", "p vfs_read"}); }), "(no error)");
    EXPECT_EQ(error_of([] { check_probe_arguments({"e"}); }), "(no error)") << "the parser's error says it";
}

TEST(ProbeHints, BpftraceSyntax) {
    EXPECT_EQ(from_bpftrace("tracepoint:sched:sched_switch"), "e sched/sched_switch");
    EXPECT_EQ(from_bpftrace("t:sched:sched_process_exec"), "e sched/sched_process_exec");
    EXPECT_EQ(from_bpftrace("kprobe:vfs_read"), "p vfs_read");
    EXPECT_EQ(from_bpftrace("k:tcp_v4_rcv+4"), "p tcp_v4_rcv+4");
    EXPECT_EQ(from_bpftrace("kretprobe:vfs_read"), "r vfs_read");
    EXPECT_EQ(from_bpftrace("fexit:vmlinux:vfs_read"), "r vfs_read");
    EXPECT_EQ(from_bpftrace("tracepoint:sched:sched_switch /args->prev_pid == 1 && pid > 0/ { @[comm] = count(); }"),
              "e sched/sched_switch f:prev_pid == 1 && $pid > 0");
    EXPECT_EQ(from_bpftrace("kretprobe:vfs_read /retval < 0/"), "r vfs_read f:$retval < 0");
    EXPECT_EQ(from_bpftrace("kprobe:vfs_read /arg2 > 4096/"), "p vfs_read f:%2 > 4096");
    EXPECT_EQ(from_bpftrace("p vfs_read"), std::nullopt);
    EXPECT_EQ(from_bpftrace("e sched/sched_switch f:prev_pid==1"), std::nullopt);
    EXPECT_EQ(from_bpftrace("tracepoint:sched_switch"), std::nullopt);
    EXPECT_EQ(error_of([] { check_probe_arguments({"kprobe:vfs_read"}); }),
              "'kprobe:vfs_read' is bpftrace's syntax; in ksurf: 'p vfs_read'");
}

TEST(ProbeHints, ProbesAfterTheCommand) {
    EXPECT_EQ(error_of([] { check_probes_before_command({"ls", "e sched/sched_process_exec"}); }),
              "no probe given, but 'e sched/sched_process_exec' after -c is an argument of ls: -c takes the rest of "
              "the line, so put the probes before it (ksurf 'e sched/sched_process_exec' -c ls ...)");
    EXPECT_EQ(error_of([] { check_probes_before_command({"ls", "-l"}); }), "(no error)");
    EXPECT_EQ(error_of([] { check_probes_before_command({}); }), "(no error)");
}

}  // namespace
}  // namespace ksurf
