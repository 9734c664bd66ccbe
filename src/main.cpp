// ksurf command line: probe text → parse → resolve → plan → backend → events → format.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>

#include "ksurf/bpf_backend.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/format.h"
#include "ksurf/tracefs.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// Without SA_RESTART the ring buffer's epoll_wait returns at once on Ctrl-C.
void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool g_verbose = false;

int libbpf_log(enum libbpf_print_level level, const char* format, va_list args) {
    if (!g_verbose && level != LIBBPF_WARN) return 0;
    if (!g_verbose) return 0;
    return std::vfprintf(stderr, format, args);
}

struct Options {
    std::vector<std::string> probes;
    double duration = 0;
    bool json = false;
};

int run_features() {
    ksurf::Features features;
    for (int i = 0; i < static_cast<int>(ksurf::Feature::Count_); i++) {
        auto f = static_cast<ksurf::Feature>(i);
        const auto& st = features.get(f);
        fmt::print("{:<15} {:<4} {}\n", ksurf::feature_name(f), st.ok ? "yes" : "no", st.reason);
    }
    return 0;
}

// `e SUBSYS/EVENT`: the only probe kind this build runs.
ksurf::tracefs::EventFormat tracepoint_of(const std::string& text, const std::string& tracefs_root) {
    if (!text.starts_with("e ") || text.find('/') == std::string::npos)
        ksurf::fail("malformed probe '{}': expected 'e SUBSYS/EVENT'", text);
    std::string target = text.substr(2);
    auto slash = target.find('/');
    return ksurf::tracefs::read_format(tracefs_root, target.substr(0, slash), target.substr(slash + 1));
}

int run_trace(const Options& opt) {
    ksurf::Features features;
    if (const auto& bpf = features.get(ksurf::Feature::Bpf); !bpf.ok) ksurf::fail("cannot trace: {}", bpf.reason);
    std::string root = ksurf::tracefs::root();
    std::vector<ksurf::tracefs::EventFormat> formats;
    for (const auto& p : opt.probes) formats.push_back(tracepoint_of(p, root));

    auto out = opt.json ? ksurf::json_formatter(stdout) : ksurf::text_formatter(stdout, stderr);
    ksurf::BpfSession session([&](const ksurf::Event& ev) { out->write(ev); });
    for (const auto& f : formats) session.add_tracepoint(f);

    install_signal_handlers();
    fmt::print(stderr, "Tracing {} probe{}. Hit Ctrl-C to end.\n", formats.size(), formats.size() == 1 ? "" : "s");
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(opt.duration);
    while (!g_stop) {
        int wait_ms = 100;
        if (opt.duration > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
            if (left <= 0) break;
            wait_ms = static_cast<int>(std::min<long>(left, wait_ms));
        }
        if (!session.poll(wait_ms)) break;
        std::fflush(stdout);
    }
    // Events already in the buffer at the deadline still belong to the run.
    session.poll(0);
    out->summary(session.stats());
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ksurf: trace kernel functions and events with typed fields and in-kernel filters"};
    app.footer(R"(Examples:
  ksurf -d 5 'e sched/sched_process_exec'        # every exec for 5 seconds
  ksurf --json 'e sched/sched_process_fork'       # JSON lines
  ksurf features                                  # what this kernel allows)");
    app.set_version_flag("--version", std::string("ksurf ") + KSURF_VERSION);
    Options opt;
    app.add_option("probes", opt.probes, "Probes: 'e SUBSYS/EVENT'");
    app.add_option("-d,--duration", opt.duration, "Stop after SECONDS")->check(CLI::PositiveNumber);
    app.add_flag("--json", opt.json, "Print events as JSON lines");
    app.add_flag("-v,--verbose", g_verbose, "Explain choices and show libbpf messages");
    auto* features = app.add_subcommand("features", "Probe what this kernel lets ksurf do");
    app.require_subcommand(0, 1);

    CLI11_PARSE(app, argc, argv);
    libbpf_set_print(libbpf_log);
    try {
        if (features->parsed()) return run_features();
        if (opt.probes.empty()) {
            fmt::print(stderr, "ksurf: no probe given\n{}", app.help());
            return 2;
        }
        return run_trace(opt);
    } catch (const ksurf::SourceError& e) {
        fmt::print(stderr, "ksurf: {}\n", e.render());
    } catch (const std::exception& e) {
        fmt::print(stderr, "ksurf: {}\n", e.what());
    }
    return 1;
}
