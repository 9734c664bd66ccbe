// ksurf's command line. The work happens in the pipeline behind run_trace():
// probe text → parse → resolve (BTF) → plan → backend (bpf | tracefs) → events → format.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/graph.h"
#include "ksurf/privileges.h"
#include "ksurf/skb.h"
#include "ksurf/trace.h"
#include "ksurf/tracefs.h"

namespace {

bool g_verbose = false;

// libbpf explains load failures at length; that belongs to -v, the one-line error to ksurf.
int libbpf_log(enum libbpf_print_level, const char* format, va_list args) {
    return g_verbose ? std::vfprintf(stderr, format, args) : 0;
}

// Every program, map, link and perf event is a file descriptor: a kprobe per function for
// a thousand functions needs more than the soft limit of 1024 (or the kernel's default hard
// limit of 4096), and libbpf's failures past it do not say so. Root may raise both.
void raise_fd_limit() {
    constexpr rlim_t kWanted = 1 << 20;  // fs.nr_open's default
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= kWanted) return;
    const rlimit wanted{kWanted, std::max(kWanted, r.rlim_max)};
    if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) return;
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

int run_features() {
    ksurf::Features features;
    for (int i = 0; i < static_cast<int>(ksurf::Feature::Count_); i++) {
        auto f = static_cast<ksurf::Feature>(i);
        const auto& st = features.get(f);
        fmt::print("{:<15} {:<4} {}\n", ksurf::feature_name(f), st.ok ? "yes" : "no", st.reason);
    }
    // The capabilities column says whether the effective set holds it.
    for (const auto& c : ksurf::capability_needs(ksurf::tracefs::find_mount()))
        fmt::print("{:<15} {:<4} {}{}\n", c.name, c.held ? "yes" : "no", c.needed ? "needed for " : "", c.why);
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
  ksurf -s 'p do_sys_openat2' -c cat /etc/hostname       # stacks of one command's opens
  ksurf -p 1234,1235 'e sched/sched_switch prev=%1->comm next=%2->comm'   # tp_btf arguments
  ksurf -S 'p vfs_open name=%0->dentry->d_name.name'    # the tracefs translation, as a script
  ksurf skb --pcap 'tcp and port 9000'                   # each matching packet's path
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
    app.add_flag("-s,--stack", opt.stacks, "Print each event's kernel stack under it");
    app.add_option("-p,--pid", opt.pids, "Trace only these processes (threads included); repeatable or PID,PID")
        ->delimiter(',')
        ->allow_extra_args(false);  // `-p 1 'e ...'`: the probe is not a pid
    std::vector<std::string> command;  // filled from argv below: CLI11 never sees it
    app.add_option("-c,--command", command,
                   "The last option: start CMD [ARGS...] held until the probes are attached, trace only it and what "
                   "it forks, and end with it");
    app.add_option("--cgroup", opt.cgroup, "Trace only tasks in this cgroup v2 directory (absolute or under /sys/fs/cgroup; BPF only)");
    app.add_option("--pcap", opt.pcap, "Only packets this tcpdump expression matches, tested in the kernel on each probe's sk_buff (BPF only)");
    app.add_option("-w,--write", opt.pcap_file, "Write the matched packets to this pcapng file (mode 0600; BPF only)");
    app.add_option("--snaplen", opt.snaplen, "-w: bytes kept per packet from its network header")->capture_default_str()->check(CLI::Range(1, 2048));
    app.add_option("--user", opt.user,
                   "Once attached, continue as this user with no capabilities (BPF only); -c's command runs as it");
    app.add_option("--buffer-size", opt.buffer_kb,
                   "KB of kernel buffer events wait in: the BPF ring buffer (rounded up to a power of two; default "
                   "4096) or each CPU's tracefs buffer. Events that find it full are dropped and counted")
        ->check(CLI::Range(4, 1 << 20));
    auto* features = app.add_subcommand("features", "Probe what this kernel lets ksurf do");
    ksurf::GraphOptions gopt;
    auto* graph = app.add_subcommand("graph", "Call graphs under ROOT, recorded only for calls whose predicate holds");
    graph->fallthrough();  // -d, --json, -v, --btf, --backend as for tracing
    graph->add_option("root", gopt.root, "FUNC, or a probe 'p FUNC [NAME=EXPR...] [f:FILTER]'")->required();
    graph->add_option("--where", gopt.where, "Predicate on ROOT's arguments and packet, checked in the kernel");
    graph->add_option("--pcap", gopt.pcap, "tcpdump expression over ROOT's sk_buff");
    graph->add_option("--funcs", gopt.funcs, "Also trace the functions these globs match")->expected(1, -1);
    graph->add_option("--depth", gopt.depth, "Levels of ROOT's callees found in its machine code (0: only --funcs)")
        ->capture_default_str();
    graph->add_option("--max", gopt.max, "Record at most N graphs, then end");
    graph->add_option("--sample", gopt.sample, "Record 1/N of the calls that match");
    graph->add_option("--min-duration", gopt.min_duration, "Print only graphs lasting at least this long (10us, 2ms)");
    graph->add_option("--attach", gopt.attach, "Callees on auto, fentry, kprobe or kprobe.multi")->capture_default_str();
    ksurf::SkbOptions sopt;
    auto* skb = app.add_subcommand("skb", "Packet paths: every function taking a struct sk_buff, for the packets --pcap matches");
    skb->fallthrough();  // -d, --json, -v, --btf as for tracing
    skb->add_option("--pcap", sopt.pcap, "tcpdump expression, tested in the kernel until a packet matches once");
    skb->add_option("--funcs", sopt.funcs, "Only the functions these globs match")->expected(1, -1);
    bool no_return = false;
    skb->add_flag("--no-return", no_return, "No return probes: no return values, and half the probe cost");
    skb->add_option("--attach", sopt.attach, "auto, kprobe or kprobe.multi")->capture_default_str();
    app.require_subcommand(0, 1);

    // Everything after -c is the command's, options included: CLI11 sees only what precedes.
    int cut = 1;
    while (cut < argc && std::strcmp(argv[cut], "-c") != 0 && std::strcmp(argv[cut], "--command") != 0) cut++;
    if (cut < argc) {
        command.assign(argv + cut + 1, argv + argc);
        if (command.empty()) {
            fmt::print(stderr, "ksurf: -c needs a command\n");
            return 1;
        }
    }
    CLI11_PARSE(app, cut, argv);
    opt.command = std::move(command);
    opt.verbose = g_verbose;
    libbpf_set_print(libbpf_log);
    raise_fd_limit();
    try {
        if (features->parsed()) return run_features();
        if (graph->parsed()) {
            gopt.duration = opt.duration;
            gopt.json = opt.json;
            gopt.verbose = opt.verbose;
            gopt.backend = opt.backend;
            gopt.pids = opt.pids;
            gopt.btf_file = opt.btf_file;
            return ksurf::run_graph(gopt);
        }
        if (skb->parsed()) {
            sopt.duration = opt.duration;
            sopt.json = opt.json;
            sopt.verbose = opt.verbose;
            sopt.btf_file = opt.btf_file;
            sopt.returns = !no_return;
            sopt.backend = opt.backend;
            return ksurf::run_skb(sopt);
        }
        return ksurf::run_trace(opt);
    } catch (const ksurf::SourceError& e) {
        fmt::print(stderr, "ksurf: {}\n", e.render());
    } catch (const std::exception& e) {
        fmt::print(stderr, "ksurf: {}\n", ksurf::printable(ksurf::explain_denied(e.what())));
    }
    return 1;
}
