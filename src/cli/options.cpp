#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <optional>

#include "ksurf/cli.h"
#include "ksurf/error.h"
#include "ksurf/parse.h"

namespace ksurf {
namespace {

// TEXT, a number with an optional unit, in nanoseconds; a bare number is in BARE_NS units.
std::optional<double> duration_ns(std::string_view text, double bare_ns) {
    double v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || !std::isfinite(v)) return std::nullopt;
    const std::string_view unit = text.substr(r.ptr - text.data());
    const double scale = unit.empty() ? bare_ns
                         : unit == "ns" ? 1
                         : unit == "us" ? 1e3
                         : unit == "ms" ? 1e6
                         : unit == "s"  ? 1e9
                         : unit == "m"  ? 60e9
                         : unit == "h"  ? 3600e9
                                        : -1;
    if (scale < 0) return std::nullopt;
    return v * scale;
}

// The kinds a probe text starts with; one alone is a probe the shell split.
bool is_kind(std::string_view arg) { return arg == "p" || arg == "r" || arg == "e"; }

// An argument that reads as a probe: a kind, a space, a target.
bool looks_like_probe(std::string_view arg) { return arg.size() > 2 && is_kind(arg.substr(0, 1)) && arg[1] == ' '; }

}  // namespace

double parse_seconds(std::string_view text, std::string_view option) {
    constexpr double kYear = 365 * 24 * 3600.0;
    const auto ns = duration_ns(text, 1e9);
    if (!ns) fail("{} takes a duration: 5 or 1.5 (seconds), 500ms, 2m, 1h; not '{}'", option, printable(text));
    if (*ns <= 0) fail("{} must be more than 0, not '{}' (leave {} out to trace until Ctrl-C)", option, printable(text), option);
    if (*ns > kYear * 1e9) fail("{} takes at most a year, not '{}' (leave {} out to trace until Ctrl-C)", option, printable(text), option);
    return *ns / 1e9;
}

std::uint64_t parse_duration_ns(std::string_view text, std::string_view option) {
    const auto ns = duration_ns(text, 1);
    // 2^63 ns is 292 years: the limit keeps the conversion defined.
    if (!ns || *ns < 0 || *ns >= 0x1p63)
        fail("{} takes a duration with ns, us, ms, s, m or h (bare: nanoseconds), not '{}'", option, printable(text));
    return static_cast<std::uint64_t>(*ns);
}

constexpr std::pair<std::string_view, FunctionAttach> kAttachNames[] = {{"auto", FunctionAttach::Auto},
                                                                       {"fentry", FunctionAttach::Fentry},
                                                                       {"kprobe", FunctionAttach::Kprobe},
                                                                       {"kprobe.multi", FunctionAttach::KprobeMulti}};

FunctionAttach parse_attach(std::string_view text) {
    for (const auto& [name, attach] : kAttachNames)
        if (text == name) return attach;
    fail("--attach takes {}, not '{}'", either(attach_names()), printable(text));
}

FunctionAttach function_attach(BackendRequest req) {
    return req == BackendRequest::Fentry ? FunctionAttach::Fentry : req == BackendRequest::Kprobe ? FunctionAttach::Kprobe : FunctionAttach::Auto;
}

std::vector<std::string> attach_names() {
    std::vector<std::string> out;
    for (const auto& [name, attach] : kAttachNames) out.emplace_back(name);
    return out;
}

std::string either(const std::vector<std::string>& values) {
    std::string out;
    for (std::size_t i = 0; i < values.size(); i++)
        out += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + values[i];
    return out;
}

CLI::Validator one_of(const std::vector<std::string>& values) {
    std::string set;
    for (const auto& v : values) set += (set.empty() ? "" : ",") + v;
    return CLI::Validator([](const std::string&) { return std::string(); }, "{" + set + "}", kOneOf);
}

std::uint32_t parse_pid(std::string_view text) {
    std::uint32_t pid = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size() || pid == 0 || pid > INT_MAX)
        fail("-p takes process ids, not '{}'", printable(text));
    // Signal 0 checks only that the process exists; EPERM means it does, owned by another user.
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fail("-p {}: no such process", pid);
    return pid;
}

void add_common_options(CLI::App& app, CommonOptions& opt) {
    const std::size_t before = app.get_options().size();
    app.add_option_function<std::string>(
           "-d,--duration", [&opt](const std::string& s) { opt.duration = parse_seconds(s, "-d"); },
           "Stop after this long: 5 or 1.5 (seconds), 500ms, 2m")
        ->type_name("DURATION");
    app.add_flag("--json", opt.json, "Print events as JSON lines");
    app.add_option_function<std::string>(
           "--backend", [&opt](const std::string& s) { opt.backend = parse_backend_request(s); },
           "Which backend runs the probes (default auto)")
        ->type_name("BACKEND")
        ->check(one_of(backend_names()));
    app.add_option("--btf", opt.btf_file, "Kernel BTF file, for kernels without /sys/kernel/btf/vmlinux")->type_name("FILE");
    app.add_flag("-v,--verbose", opt.verbose, "Explain ksurf's choices and their reasons; -vv adds libbpf's log");
    app.add_option_function<std::vector<std::string>>(
           "-p,--pid",
           [&opt](const std::vector<std::string>& pids) {
               for (const auto& p : pids) opt.pids.push_back(parse_pid(p));
           },
           "Trace only these processes (threads included); repeatable or PID,PID")
        ->type_name("PID")
        ->delimiter(',')
        ->allow_extra_args(false);  // `-p 1 'e ...'`: the probe is not a pid
    app.add_option("--buffer-size", opt.buffer_kb,
                   "KB of kernel buffer events wait in: the BPF ring buffer (rounded up to a power of two; default "
                   "1024) or each CPU's tracefs buffer. Events that find it full are dropped and counted")
        ->check(CLI::Range(4, 1 << 20));
    const auto options = app.get_options();
    for (auto it = options.begin() + static_cast<std::ptrdiff_t>(before); it != options.end(); ++it) (*it)->group(kCommonGroup);
}

std::vector<CLI::Option*> add_aggregate_options(CLI::App& app, AggregateOptions& opt, bool values) {
    std::vector<CLI::Option*> added;
    auto kind = [&](const char* name, AggKind k, const char* help) {
        added.push_back(app.add_option_function<std::string>(
                               name, [&opt, k](const std::string& f) { set_aggregation(opt, k, f); }, help)
                            ->type_name("FIELD"));
    };
    if (values) {
        added.push_back(app.add_option_function<std::vector<std::string>>(
                               "--count",
                               [&opt](const std::vector<std::string>& keys) {
                                   set_aggregation(opt, AggKind::Count, "");
                                   for (const auto& k : keys) {
                                       if (k.empty()) continue;  // --count alone
                                       if (k.find(' ') != std::string::npos)
                                           fail("--count takes keys (comm,pid), not the probe '{}': put --count after the probes",
                                                printable(k));
                                       add_keys(k, opt);
                                   }
                               },
                               "Count hits in the kernel, by KEY,... (as --by); print the counts instead of events")
                            ->type_name("[KEY,...]")
                            ->expected(0, 1));
        kind("--sum", AggKind::Sum, "Sum FIELD in the kernel, by the --by keys");
        kind("--min", AggKind::Min, "The least FIELD, by key");
        kind("--max", AggKind::Max, "The greatest FIELD, by key");
        kind("--avg", AggKind::Avg, "FIELD's mean, by key");
        kind("--stats", AggKind::Stats, "FIELD's count, mean, least, greatest and sum, by key");
        kind("--hist", AggKind::Hist, "FIELD's log2 histogram, by key");
        added.push_back(app.add_option_function<std::string>(
                               "--lhist", [&opt](const std::string& s) { parse_lhist(s, opt); },
                               "FIELD's linear histogram over [MIN, MAX) in steps of STEP, by key")
                            ->type_name("FIELD:MIN:MAX:STEP"));
    }
    added.push_back(app.add_option_function<std::string>(
                           "--by", [&opt](const std::string& s) { add_keys(s, opt); },
                           "Aggregate by these keys: fields, comm, pid, tid, cpu, packet names (ip.saddr), $retval, stack")
                        ->type_name("KEY[,KEY...]"));
    added.push_back(app.add_option_function<std::string>(
                           "--interval", [&opt](const std::string& s) { opt.interval_s = parse_seconds(s, "--interval"); },
                           "Print the aggregation every DURATION (cumulative) and keep going")
                        ->type_name("DURATION"));
    added.push_back(app.add_option("--top", opt.top, "Print only the N largest keys")->check(CLI::Range(1, 1 << 30)));
    added.push_back(app.add_flag("--folded", opt.folded, "Stack keys as folded lines (key;outer;...;inner value)"));
    added.push_back(app.add_option("--metrics-file", opt.metrics_file,
                                   "Replace this file atomically with OpenMetrics text at every print")
                        ->type_name("FILE"));
    added.push_back(app.add_option("--map-size", opt.map_size, "Keys the kernel aggregates at most; hits with more are counted")
                        ->capture_default_str()
                        ->check(CLI::Range(1, 1 << 22)));
    return added;
}

std::string option_error(const CLI::ParseError& e) {
    std::string what = e.what();
    // CLI11 ends some messages with a newline or spreads them over lines: one line here.
    while (!what.empty() && what.back() == '\n') what.pop_back();
    for (auto& c : what)
        if (c == '\n') c = ' ';
    return "ksurf: " + printable(what);
}

void check_probe_arguments(const std::vector<std::string>& probes) {
    for (std::size_t i = 0; i < probes.size(); i++) {
        if (auto ksurf = from_bpftrace(probes[i]))
            fail("'{}' is bpftrace's syntax; in ksurf: '{}'", printable(probes[i]), printable(*ksurf));
        if (!is_kind(probes[i]) || i + 1 == probes.size()) continue;
        // The words the shell split off, up to the next argument that starts a probe.
        std::string whole = probes[i];
        for (std::size_t j = i + 1; j < probes.size() && !is_kind(probes[j]) && !looks_like_probe(probes[j]); j++)
            whole += " " + probes[j];
        fail("'{}' is the start of a probe the shell split into words: quote each probe whole, as in ksurf '{}'",
             probes[i], printable(whole));
    }
}

void check_probes_before_command(const std::vector<std::string>& command) {
    for (std::size_t i = 1; i < command.size(); i++)
        if (looks_like_probe(command[i]) || from_bpftrace(command[i]))
            fail("no probe given, but '{}' after -c is an argument of {}: -c takes the rest of the line, so put the "
                 "probes before it (ksurf '{}' -c {} ...)",
                 printable(command[i]), printable(command[0]), printable(command[i]), printable(command[0]));
}

}  // namespace ksurf
