// ksurf's command line. The work happens in the pipeline behind run_trace():
// probe text → parse → resolve (BTF) → plan → backend (bpf | tracefs) → events → format.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cstdarg>
#include <cstdio>

#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/trace.h"

namespace {

bool g_verbose = false;

// libbpf explains load failures at length; that belongs to -v, the one-line error to ksurf.
int libbpf_log(enum libbpf_print_level, const char* format, va_list args) {
    return g_verbose ? std::vfprintf(stderr, format, args) : 0;
}

int run_features() {
    ksurf::Features features;
    for (int i = 0; i < static_cast<int>(ksurf::Feature::Count_); i++) {
        auto f = static_cast<ksurf::Feature>(i);
        const auto& st = features.get(f);
        fmt::print("{:<15} {:<4} {}\n", ksurf::feature_name(f), st.ok ? "yes" : "no", st.reason);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ksurf: trace kernel functions and events with typed fields and in-kernel filters"};
    app.footer(R"(Probes:
  p FUNC[+OFF] [NAME=EXPR...] [f:FILTER]    function entry (or an offset inside it)
  r FUNC [NAME=EXPR...] [f:FILTER]          function return; $retval is the return value
  e SUBSYS/EVENT [NAME=FIELD...] [f:FILTER] tracepoint; without fields, all of its own
EXPR: %0..%5 or a parameter name, ->member .member [i], (struct T *)casts, %reg at
FUNC+OFF, $comm $pid $tid $cpu, S/U/X prefixes (signed, unsigned, hex), packet headers
@(struct iphdr *)l3%0->saddr. Field names ip_* print IPv4, b16_/B16_* byte-swap.
FILTER: == != < <= > >= ~ && || ! ( ) over fields, comm, common_pid.

Examples:
  ksurf -d 5 'e sched/sched_process_exec'
  ksurf 'e sched/sched_process_exec f:pid>1000' --json
  ksurf 'p wake_up_new_task comm=%0->comm users=S%0->mm->mm_users f:comm==bash'
  ksurf 'r do_sys_openat2 ret=$retval f:ret<0'
  ksurf 'p ip_rcv proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)l3%0->saddr f:proto==1'
  ksurf -S 'p vfs_open name=%0->dentry->d_name.name'    # the tracefs translation, as a script
  ksurf features                                          # what this kernel allows, and why not)");
    app.set_version_flag("--version", std::string("ksurf ") + KSURF_VERSION);
    ksurf::TraceOptions opt;
    app.add_option("probes", opt.probes, "Probes (see below)");
    app.add_option("-f,--file", opt.probe_file, "Read probes from FILE, one per line")->check(CLI::ExistingFile);
    app.add_option("-d,--duration", opt.duration, "Stop after SECONDS")->check(CLI::PositiveNumber);
    app.add_flag("--json", opt.json, "Print events as JSON lines");
    app.add_option("--backend", opt.backend, "auto, bpf, fentry, kprobe or tracefs")->capture_default_str();
    app.add_option("--btf", opt.btf_file, "Kernel BTF file, for kernels without /sys/kernel/btf/vmlinux");
    app.add_flag("-S,--script", opt.script, "Print the tracefs translation as a shell script; attach nothing");
    app.add_option("-o,--output-script", opt.script_file, "Write the tracefs translation to FILE (mode 0600)");
    app.add_flag("-v,--verbose", g_verbose, "Explain choices and show libbpf messages");
    auto* features = app.add_subcommand("features", "Probe what this kernel lets ksurf do");
    app.require_subcommand(0, 1);

    CLI11_PARSE(app, argc, argv);
    opt.verbose = g_verbose;
    libbpf_set_print(libbpf_log);
    try {
        if (features->parsed()) return run_features();
        return ksurf::run_trace(opt);
    } catch (const ksurf::SourceError& e) {
        fmt::print(stderr, "ksurf: {}\n", e.render());
    } catch (const std::exception& e) {
        fmt::print(stderr, "ksurf: {}\n", e.what());
    }
    return 1;
}
