// The command line every command shares: its options, their parsers (each value parsed
// once, when the options are, with one `ksurf:` line when it is wrong), exit statuses and
// the hints for probe texts that are not ksurf's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/aggregate.h"
#include "ksurf/backend_choice.h"
#include "ksurf/bpf_backend.h"

namespace CLI {
class App;
class Option;
class ParseError;
class Validator;
}  // namespace CLI

namespace ksurf {

// 0: the run ended as asked. 1: ksurf could not do what was asked, the line before says
// why: bad usage or input, or the kernel refused (load, attach, permission). With -c, the
// command's own status. Documented in --help, ksurf.1 and docs/RUNNING.md.
inline constexpr int kExitFailure = 1;
inline constexpr const char* kExitStatusHelp = R"(Exit status:
  0   the run ended (-d, Ctrl-C, SIGTERM, SIGHUP, or -c's command exited with 0)
  1   ksurf could not do what was asked: bad usage or input, or the kernel refused
      (load, attach, permission); one line starting with 'ksurf:' says why
  N   with -c, the command's own status: 127 not found, 126 not runnable,
      128+SIG killed by signal SIG)";

// The options of every command: tracing, graph and skb.
struct CommonOptions {
    double duration = 0;             // -d: seconds; 0 runs until a signal
    bool json = false;
    int verbose = 0;                 // -v: ksurf's choices and their reasons; -vv: libbpf's log too
    BackendRequest backend = BackendRequest::Auto;
    std::string btf_file;            // --btf: instead of /sys/kernel/btf
    std::vector<std::uint32_t> pids; // -p: only these processes (their threads included)
    std::uint32_t buffer_kb = 0;     // --buffer-size: KB of kernel buffer; 0: the backend's default
};

// Adds them to APP in the option group kCommonGroup, which every command takes.
void add_common_options(CLI::App& app, CommonOptions& opt);
inline constexpr const char* kCommonGroup = "Options of every command";

// "a, b or c": a set of values in an error's words.
std::string either(const std::vector<std::string>& values);
// Names the fixed VALUES an option takes for --help, the man page and the completion
// (validator kOneOf, read back by generate.cpp); the option's own parser checks the value
// and words its error.
CLI::Validator one_of(const std::vector<std::string>& values);
inline constexpr const char* kOneOf = "one of";
// The names --attach takes.
std::vector<std::string> attach_names();

// `ksurf --generate man|bash-completion`: APP's commands and options as a man page
// (groff, its header naming VERSION) or a bash completion script, so neither is a second
// copy of --help to drift. Throws for another KIND.
std::string generate(CLI::App& app, std::string_view kind, std::string_view version);

// An option's value in OPTION's words ("-d takes ..."); each throws a one-line Error.
// -d: 5, 1.5 (seconds), 500ms, 2m; more than 0 and at most a year.
double parse_seconds(std::string_view text, std::string_view option);
// --min-duration: 10us, 1.5ms, 2s, or bare nanoseconds; 0 or more.
std::uint64_t parse_duration_ns(std::string_view text, std::string_view option);
// --attach: auto, fentry, kprobe, kprobe.multi.
FunctionAttach parse_attach(std::string_view text);
// --backend fentry and kprobe name the function probes' program type; the others leave it
// to the kernel's features.
FunctionAttach function_attach(BackendRequest req);
// -p: a process that exists now.
std::uint32_t parse_pid(std::string_view text);

// The aggregation options (--count, --by, --interval, --top, --folded, --metrics-file,
// --map-size; with VALUES also --sum, --min, --max, --avg, --stats, --hist, --lhist),
// returned for the caller's list of options other commands refuse.
std::vector<CLI::Option*> add_aggregate_options(CLI::App& app, AggregateOptions& opt, bool values);

// The one `ksurf:` line for an error CLI11 found in the options.
std::string option_error(const CLI::ParseError& e);

// `ksurf features`: the table, or with JSON one object for scripts and tests.
int run_features(bool json);

// Probe arguments that are not ksurf probes but one the user meant: a probe split over
// several arguments by the shell, or bpftrace's syntax. Throws a line with the fix.
void check_probe_arguments(const std::vector<std::string>& probes);

// -c CMD ARGS...: everything after -c is the command's, so probes written after it are its
// arguments. Throws a line saying so when there is no probe but ARGS has one.
void check_probes_before_command(const std::vector<std::string>& command);

}  // namespace ksurf
