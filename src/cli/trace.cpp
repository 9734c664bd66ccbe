#include "ksurf/trace.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <optional>
#include <sstream>

#include "ksurf/backend_choice.h"
#include "ksurf/bpf_backend.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/format.h"
#include "ksurf/parse.h"
#include "ksurf/resolve.h"
#include "ksurf/tracefs.h"
#include "ksurf/tracefs_backend.h"

namespace ksurf {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// Without SA_RESTART the backends' waits return at once on Ctrl-C, SIGTERM or SIGHUP.
void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) fail("cannot read probe file '{}'", path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<Probe> parse_all(const TraceOptions& opt) {
    std::vector<Probe> probes;
    for (const auto& text : opt.probes) probes.push_back(parse_probe(text));
    if (!opt.probe_file.empty())
        for (auto& p : parse_probe_file(read_file(opt.probe_file), opt.probe_file)) probes.push_back(std::move(p));
    if (probes.empty()) fail("no probe given (try 'ksurf --help')");
    return probes;
}

std::vector<std::string> filter_functions() {
    std::ifstream in(tracefs::root() + "/available_filter_functions");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(std::move(l));
    return lines;
}

// Only plans that read packet headers need sk_buff's layout; others must not depend on a
// --btf file describing it.
tracefs::SkbLayout skb_layout(const Btf& btf, const std::vector<PlannedProbe>& plans) {
    for (const auto& p : plans)
        for (const auto& f : p.fields)
            if (f.fetch.base == Fetch::Base::Packet)
                return {static_cast<std::int64_t>(member(btf.find_type("struct sk_buff"), "data").offset)};
    return {};
}

// The tracepoints the e probes name, for translation and tracefs filters.
std::vector<tracefs::EventFormat> tracepoint_formats(const std::vector<PlannedProbe>& plans) {
    std::vector<tracefs::EventFormat> formats;
    for (const auto& p : plans)
        if (p.kind == ProbeKind::Tracepoint) formats.push_back(tracefs::read_format(tracefs::root(), p.subsystem, p.event));
    return formats;
}

void print_plan(const PlannedProbe& p) {
    fmt::print(stderr, "ksurf: {}\n", p.text);
    for (const auto& f : p.fields)
        fmt::print(stderr, "         {}{} : {}\n", f.name, f.hidden ? " (for the filter)" : "", f.c_type);
}

void say_stale(const std::vector<tracefs::StaleRun>& stale) {
    for (const auto& s : stale)
        fmt::print(stderr, "ksurf: removed stale probes from a killed run (pid {}): {} kprobe event{}{}\n", s.pid,
                   s.kprobes, s.kprobes == 1 ? "" : "s", s.instance ? " and its tracefs instance" : "");
}

int loop(Backend& backend, Formatter& out, const TraceOptions& opt, std::size_t nprobes) {
    install_signal_handlers();
    backend.start();
    fmt::print(stderr, "Tracing {} probe{}. Hit Ctrl-C to end.\n", nprobes, nprobes == 1 ? "" : "s");
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(opt.duration);
    while (!g_stop) {
        int wait_ms = 100;
        if (opt.duration > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
            if (left <= 0) break;
            wait_ms = static_cast<int>(std::min<long>(left, wait_ms));
        }
        if (!backend.poll(wait_ms)) break;
        std::fflush(stdout);
    }
    // Events already buffered when the run ends still belong to it.
    backend.poll(0);
    out.summary(backend.stats());
    std::fflush(stdout);
    return 0;
}

// The BPF backend's options for --backend REQ; -v prints each probe's attach type and why.
BpfOptions bpf_options(BackendRequest req, Features& features, const Btf& btf, bool verbose) {
    BpfOptions o;
    o.attach = req == BackendRequest::Fentry   ? FunctionAttach::Fentry
               : req == BackendRequest::Kprobe ? FunctionAttach::Kprobe
                                               : FunctionAttach::Auto;
    o.features = &features;
    o.btf = &btf;
    if (verbose) o.explain = [](const std::string& line) { fmt::print(stderr, "ksurf: {}\n", line); };
    return o;
}

}  // namespace

int run_trace(const TraceOptions& opt) {
    const auto request = parse_backend_request(opt.backend);
    const auto probes = parse_all(opt);
    Features features;
    // Privileges first: without them every later step fails with a less telling error.
    if (!opt.script && opt.script_file.empty() && geteuid() != 0 && !features.has(Feature::Bpf))
        fail("cannot trace: {}", features.get(Feature::Bpf).reason);
    const Btf btf = opt.btf_file.empty() ? Btf::kernel() : Btf::from_file(opt.btf_file);
    const ResolveContext ctx{
        btf, [](std::string_view s, std::string_view e) { return tracefs::read_format(tracefs::root(), s, e); },
        filter_functions};
    std::vector<PlannedProbe> plans;
    for (const auto& p : probes)
        for (auto& plan : resolve_all(p, ctx)) plans.push_back(std::move(plan));
    if (opt.verbose)
        for (const auto& p : plans) print_plan(p);

    if (opt.script || !opt.script_file.empty()) {
        const tracefs::TranslateContext tctx{tracefs::run_name(getpid()), skb_layout(btf, plans), tracepoint_formats(plans)};
        const std::string text = tracefs::script(plans, tctx);
        if (opt.script_file.empty())
            fmt::print("{}", text);
        else
            tracefs::write_private_file(opt.script_file, text);
        return 0;
    }

    const auto choice = choose_backend(request, plans, [&](Feature f) -> const FeatureStatus& { return features.get(f); });
    for (const auto& note : choice.notes) fmt::print(stderr, "ksurf: {}\n", note);
    if (features.has(Feature::Tracefs)) say_stale(tracefs::cleanup_stale());

    auto out = opt.json ? json_formatter(stdout) : text_formatter(stdout, stderr);
    auto sink = [&](const Event& ev) { out->write(ev); };
    std::unique_ptr<Backend> backend;
    if (choice.kind == BackendKind::Tracefs) {
        backend = make_tracefs_backend(sink, skb_layout(btf, plans));
    } else {
        backend = make_bpf_backend(sink, bpf_options(request, features, btf, opt.verbose));
    }
    for (const auto& p : plans) backend->add(p);
    return loop(*backend, *out, opt, plans.size());
}

}  // namespace ksurf
