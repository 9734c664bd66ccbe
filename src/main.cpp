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

#include "ksurf/attach.h"
#include "ksurf/error.h"
#include "ksurf/graph.h"
#include "ksurf/list.h"
#include "ksurf/latency.h"
#include "ksurf/privileges.h"
#include "ksurf/skb.h"
#include "ksurf/trace.h"

namespace {

bool g_libbpf_log = false;

// libbpf explains load failures at length: -vv shows that, -v only ksurf's own reasons.
int libbpf_log(enum libbpf_print_level, const char* format, va_list args) {
    return g_libbpf_log ? std::vfprintf(stderr, format, args) : 0;
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

constexpr const char* kHelpFooter = R"(Probes:
  p FUNC[+OFF] [NAME=EXPR...] [f:FILTER]    function entry (or an offset inside it)
  r FUNC [NAME=EXPR...] [f:FILTER]          function return; $retval is the return value
  e SUBSYS/EVENT [NAME=FIELD...] [f:FILTER] tracepoint; without fields, all of its own
EXPR: %0..%5 or a parameter name, ->member .member [i], (struct T *)casts, %reg at
FUNC+OFF, $comm $pid $tid $cpu, S/U/X prefixes (signed, unsigned, hex), packet headers
@(struct iphdr *)l3%0->saddr, kernel variables @jiffies ((T)@var to type one).
Field names ip_* print IPv4, b16_/B16_* byte-swap.
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
  ksurf -F do_filp_open                                   # its instructions, as p FUNC+OFF names them
  ksurf 'p vfs_read' --count comm --top 10 --interval 1s  # counted in the kernel
  ksurf 'r vfs_read ret=$retval' --hist ret --by comm     # log2 histograms by key
  ksurf lat do_nanosleep --by comm                        # call durations
  ksurf skb --pcap 'tcp and port 9000'                   # each matching packet's path
  ksurf features                                          # what this kernel allows, and why not
  ksurf list 'tcp_*'                                      # what probes can name, with their types)";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ksurf: trace kernel functions and events with typed fields and in-kernel filters"};
    const std::string version = std::string("ksurf ") + KSURF_VERSION;
    app.set_version_flag("--version", version);
    // The tracing options extend the common ones, which graph and skb take on their own.
    ksurf::TraceOptions opt;
    bool list_mode = false;
    ksurf::add_common_options(app, opt);
    // The options below are tracing's alone; a subcommand given one is told so.
    std::vector<CLI::Option*> trace_only{
        app.add_option("probes", opt.probes, "Probes (see below)")->type_name("PROBE"),
        app.add_option("-f,--file", opt.probe_file, "Read probes from FILE, one per line")->check(CLI::ExistingFile),
        app.add_flag("-S,--script", opt.script, "Print the tracefs translation as a shell script; attach nothing"),
        app.add_option("-o,--output-script", opt.script_file, "Write the tracefs translation to FILE (mode 0600)")
            ->type_name("FILE"),
        app.add_flag("-s,--stack", opt.stacks, "Print each event's kernel stack under it"),
        app.add_option("-F,--disassemble", opt.disassemble,
                       "Print a kernel function's instructions with the offsets 'p FUNC+OFF' takes; trace nothing"),
        app.add_option("-c,--command", opt.command,
                       "The last option: start CMD [ARGS...] held until the probes are attached, trace only it and "
                       "what it forks, end with it and exit with its status"),
        app.add_option("--cgroup", opt.cgroup,
                       "Trace only tasks in this cgroup v2 directory (absolute or under /sys/fs/cgroup; BPF only)"),
        app.add_option("--pcap", opt.pcap,
                       "Only packets this tcpdump expression matches, tested in the kernel on each probe's sk_buff (BPF only)"),
        app.add_option("-w,--write", opt.pcap_file, "Write the matched packets to this pcapng file (mode 0600; BPF only)")
            ->type_name("FILE"),
        app.add_option("--snaplen", opt.snaplen, "-w: bytes kept per packet from its network header")
            ->capture_default_str()
            ->check(CLI::Range(1, 2048)),
        app.add_option("--user", opt.user,
                       "Once attached, continue as this user with no capabilities (BPF only); -c's command runs as it"),
        app.add_flag("--include-self", opt.include_self,
                     "Trace ksurf's own process too (left out by default: its reads and writes would feed its probes)"),
        app.add_flag("--count-filtered", opt.count_filtered,
                     "The summary counts the hits the filter rejected in the kernel (BPF; each rejection then "
                     "costs a store)"),
        app.add_flag("-l,--list", list_mode, "List what the probe globs match, as 'ksurf list GLOB...' does"),
    };
    for (auto* o : ksurf::add_aggregate_options(app, opt.agg, true)) trace_only.push_back(o);
    auto* features = app.add_subcommand("features", "Probe what this kernel lets ksurf do");
    bool features_json = false;
    features->add_flag("--json", features_json, "One JSON object: each feature's availability and reason, each capability's");
    ksurf::GraphOptions gopt;
    auto* graph = ksurf::add_graph_command(app, gopt);
    ksurf::SkbOptions sopt;
    auto* skb = ksurf::add_skb_command(app, sopt);
    ksurf::ListOptions list_opt;
    auto* list = ksurf::add_list_command(app, list_opt);
    ksurf::LatOptions lat_opt;
    auto* lat = ksurf::add_lat_command(app, lat_opt);
    std::string generate;
    app.add_option("--generate", generate, "The man page or the bash completion, for the build")->group("");
    app.require_subcommand(0, 1);
    // After the subcommands, which would copy it: theirs show their own examples.
    app.footer(std::string(kHelpFooter) + "\n\n" + ksurf::kExitStatusHelp);

    // Everything after -c is the command's, options included: CLI11 sees only what precedes.
    int cut = 1;
    while (cut < argc && std::strcmp(argv[cut], "-c") != 0 && std::strcmp(argv[cut], "--command") != 0) cut++;
    std::vector<std::string> command(argv + std::min(cut + 1, argc), argv + argc);
    try {
        try {
            app.parse(cut, argv);
        } catch (const CLI::ParseError& e) {
            if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
            fmt::print(stderr, "{}\n", ksurf::option_error(e));
            return ksurf::kExitFailure;
        }
        if (!generate.empty()) {
            fmt::print("{}", ksurf::generate(app, generate, version));
            return 0;
        }
        if (cut < argc) {
            if (command.empty()) ksurf::fail("-c needs a command");
            opt.command = std::move(command);
        }
        g_libbpf_log = opt.verbose >= 2;
        libbpf_set_print(libbpf_log);
        ksurf::BpfTemplate::set_verbose(opt.verbose >= 2);
        if (CLI::App* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().front()) {
            for (const CLI::Option* o : trace_only)
                if (o->count()) ksurf::fail("ksurf {} does not take {}", sub->get_name(), o->get_name());
            if (!opt.command.empty()) ksurf::fail("ksurf {} does not take -c", sub->get_name());
        }
        raise_fd_limit();
        if (features->parsed()) return ksurf::run_features(features_json);
        if (graph->parsed()) return ksurf::run_graph(opt, gopt);
        if (skb->parsed()) return ksurf::run_skb(opt, sopt);
        if (list->parsed()) return ksurf::run_list(opt, list_opt);
        if (list_mode) return ksurf::run_list(opt, {opt.probes});
        if (!opt.disassemble.empty()) return ksurf::run_disassemble(opt.disassemble);
        if (lat->parsed()) return ksurf::run_lat(opt, lat_opt);
        if (opt.probes.empty() && opt.probe_file.empty()) ksurf::check_probes_before_command(opt.command);
        ksurf::check_probe_arguments(opt.probes);
        return ksurf::run_trace(opt);
    } catch (const ksurf::SourceError& e) {
        fmt::print(stderr, "ksurf: {}\n", e.render());
    } catch (const std::exception& e) {
        fmt::print(stderr, "ksurf: {}\n", ksurf::printable(ksurf::explain_denied(e.what())));
    }
    return ksurf::kExitFailure;
}
