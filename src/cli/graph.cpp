// ksurf graph ROOT: resolve ROOT and its predicate, find the callees, record, print graphs.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/privileges.h"
#include "ksurf/features.h"
#include "ksurf/graph.h"
#include "ksurf/kallsyms.h"
#include "ksurf/parse.h"
#include "ksurf/pcap.h"
#include "ksurf/resolve.h"
#include "ksurf/run_loop.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

std::vector<std::string> filter_functions() {
    auto lines = tracefs::available_filter_functions();
    if (lines.empty()) fail("cannot read available_filter_functions: the graph traces only what ftrace can");
    return lines;
}

// ROOT as a p probe: as written when it is one, else `p ROOT` printing its parameters.
Probe root_probe(const std::string& root, const Btf& btf) {
    if (root.find_first_of(" \t") != std::string::npos) return parse_probe(root);
    std::string text = "p " + root;
    try {
        const Function fn = btf.find_function(root);
        for (std::size_t i = 0; i < fn.params.size() && i < 6; i++) {
            const auto& p = fn.params[i];
            const auto k = p.type.strip().kind();
            if (!p.name.empty() && k != Type::Kind::Struct && k != Type::Kind::Union) text += fmt::format(" {}={}", p.name, p.name);
        }
    } catch (const Error&) {
        // No BTF: no parameters to print; resolve() says what else is missing.
    }
    return parse_probe(text);
}

PlannedProbe plan_root(const GraphOptions& opt, const Btf& btf) {
    const Probe probe = root_probe(opt.root, btf);
    if (probe.kind != ProbeKind::Entry || probe.target.offset || probe.target.is_glob)
        fail("ROOT must be one function, or a probe 'p FUNC ...' at its entry");
    const ResolveContext ctx = kernel_context(btf, filter_functions);
    PlannedProbe plan = resolve(probe, ctx);
    if (!opt.where.empty()) resolve_filter(parse_filter(opt.where), opt.where, plan, ctx);
    // What the predicate reads is worth seeing next to the arguments.
    for (auto& f : plan.fields) f.hidden = false;
    if (!opt.pcap.empty()) {
        const std::size_t skb = resolve_packet_skb(plan, ctx);
        plan.packet = PacketCapture{skb, opt.pcap, compile_pcap(opt.pcap), 0};
    }
    return plan;
}

// ROOT's function for the tracefs fallback, which reads no BTF: it prints no fields.
Probe fallback_root(const std::string& root) {
    Probe p;
    if (root.find_first_of(" \t") == std::string::npos) p.target.name = root;
    else p = parse_probe(root);
    if (p.kind != ProbeKind::Entry || p.target.offset || p.target.is_glob)
        fail("ROOT must be one function, or a probe 'p FUNC ...' at its entry");
    return p;
}

// Why BPF cannot record here, or nullopt when it can.
std::optional<std::string> bpf_unusable(Features& f) {
    if (!f.has(Feature::Bpf)) return fmt::format("BPF: {}", f.get(Feature::Bpf).reason);
    if (f.has(Feature::Fentry) && f.has(Feature::Fexit)) return std::nullopt;
    if (f.has(Feature::Kprobe)) return std::nullopt;
    return fmt::format("fentry: {}; kprobe: {}", f.get(Feature::Fentry).reason, f.get(Feature::Kprobe).reason);
}

// What the function_graph fallback cannot do that was asked, for its announcement.
std::string fallback_losses(const GraphOptions& opt, const Probe& root) {
    std::vector<std::string> unapplied;
    if (root.filter) unapplied.push_back("ROOT's f: filter");
    if (!opt.where.empty()) unapplied.push_back("--where");
    if (!opt.pcap.empty()) unapplied.push_back("--pcap");
    std::string lost = "no argument predicate";
    if (!unapplied.empty()) lost += fmt::format(" ({} not applied)", fmt::join(unapplied, ", "));
    // CONFIG_FUNCTION_GRAPH_RETVAL (6.5) records return values.
    const bool retval = tracefs::read_format(tracefs::root(), "ftrace", "funcgraph_exit").field("retval") != nullptr;
    lost += retval ? ", no ROOT args" : ", no ROOT args or $retval";
    if (!root.fields.empty()) lost += " (ROOT's fields not printed)";
    return lost;
}

}  // namespace

unsigned parse_sample(std::string_view text) {
    unsigned n = 0;
    if (text.starts_with("1/")) {
        auto r = std::from_chars(text.data() + 2, text.data() + text.size(), n);
        if (r.ec == std::errc() && r.ptr == text.data() + text.size() && n > 0) return n;
    }
    fail("--sample takes 1/N (N > 0), not '{}'", text);
}

CLI::App* add_graph_command(CLI::App& app, GraphOptions& opt) {
    auto* graph = app.add_subcommand("graph", "Call graphs under ROOT, recorded only for calls whose predicate holds");
    graph->fallthrough();  // the common options, as for tracing
    graph->footer(R"(ROOT is a function (its parameters are printed) or a probe 'p FUNC fields f:filter';
--where and --pcap are ANDed with its filter in the kernel.

Examples:
  ksurf graph tcp_v4_rcv --where 'tcp.dport==9000'
  ksurf graph 'p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest f:b16_dport==9000' --json
  ksurf graph vfs_read --where 'comm=="cat"' --depth 2 --funcs 'ext4_*' --max 10 --sample 1/4 --min-duration 50us
  ksurf graph do_sys_openat2 --backend tracefs -p 1234     # ftrace's function_graph, one process)");
    graph->add_option("root", opt.root, "FUNC, or a probe 'p FUNC [NAME=EXPR...] [f:FILTER]'")->required()->type_name("FUNC");
    graph->add_option("--where", opt.where, "Predicate on ROOT's arguments and packet, checked in the kernel");
    graph->add_option("--pcap", opt.pcap, "tcpdump expression over ROOT's sk_buff");
    graph->add_option("--funcs", opt.funcs, "Also trace the functions these globs match")->expected(1, -1);
    graph->add_option("--depth", opt.depth, "Levels of ROOT's callees found in its machine code (0: only --funcs)")
        ->capture_default_str();
    graph->add_option("--max", opt.max, "Record at most N graphs, then end");
    graph->add_option_function<std::string>(
        "--sample", [&opt](const std::string& s) { opt.sample = parse_sample(s); }, "Record 1/N of the calls that match");
    graph->add_option_function<std::string>(
        "--min-duration", [&opt](const std::string& s) { opt.min_duration_ns = parse_duration_ns(s, "--min-duration"); },
        "Print only graphs lasting at least this long (10us, 2ms; bare: ns)");
    graph->add_option_function<std::string>(
        "--attach", [&opt](const std::string& s) { opt.attach = parse_attach(s); },
        "How the callees attach (default auto)")
        ->type_name("ATTACH")
        ->check(one_of(attach_names()));
    return graph;
}

int run_graph(const CommonOptions& common, const GraphOptions& opt) {
    ksurf_graph_config gcfg{};
    gcfg.sample = opt.sample;
    gcfg.max = opt.max;
    gcfg.max_depth = 64;  // deeper nesting than this is a runaway recursion, not a graph
    const std::uint64_t min_ns = opt.min_duration_ns;
    if (common.backend != BackendRequest::Auto && common.backend != BackendRequest::Bpf &&
        common.backend != BackendRequest::Tracefs)
        fail("ksurf graph takes --backend auto, bpf or tracefs (--attach chooses fentry or kprobes for the callees)");
    if (common.buffer_kb) fail("ksurf graph does not take --buffer-size: it sizes the buffer of tracing's events");

    Features features;
    if (geteuid() != 0 && !features.has(Feature::Bpf)) fail("cannot trace: {}", features.get(Feature::Bpf).reason);
    std::optional<std::string> no_bpf;
    if (common.backend == BackendRequest::Tracefs) no_bpf = "--backend tracefs";
    else if (common.backend == BackendRequest::Auto) no_bpf = bpf_unusable(features);
    if (!no_bpf && !common.pids.empty())
        fail("-p: ksurf graph applies it on the tracefs backend only; with BPF put it in the predicate: --where 'common_pid==PID'");

    std::optional<Btf> btf;
    std::optional<PlannedProbe> root;
    std::string root_function;
    if (no_bpf) {
        const Probe p = fallback_root(opt.root);
        if (!features.has(Feature::FunctionGraph))
            fail("cannot record graphs: {}; function_graph: {}", *no_bpf, features.get(Feature::FunctionGraph).reason);
        root_function = p.target.name;
        fmt::print(stderr, "ksurf: tracefs function_graph fallback ({}): {}\n", *no_bpf, fallback_losses(opt, p));
    } else {
        btf.emplace(common.btf_file.empty() ? Btf::kernel() : Btf::from_file(common.btf_file));
        features.use_btf(*btf);
        root.emplace(plan_root(opt, *btf));
        root_function = root->function;
    }

    const Kallsyms syms = Kallsyms::load("/proc/kallsyms", kPreemptCountSymbols);
    // Without kernel text (no /proc/kcore, lockdown) --depth 0 --funcs still works.
    const std::optional<KernelText> text = opt.depth ? std::optional(KernelText::open()) : std::nullopt;
    const CalleeSet callees = find_callees(root_function, opt.depth, opt.funcs, syms, text, filter_functions());
    // A long --funcs list (a probe file's thousand names) is counted, not echoed.
    const std::string funcs = opt.funcs.empty()       ? ""
                              : opt.funcs.size() <= 8 ? fmt::format(" and {}", fmt::join(opt.funcs, " "))
                                                      : fmt::format(" and {} --funcs names", opt.funcs.size());
    fmt::print(stderr, "ksurf: {} functions under {} (callees to depth {}{}), {} skipped\n", callees.functions.size(),
               root_function, opt.depth, funcs, callees.skipped.size());
    if (common.verbose)
        for (const auto& [name, why] : callees.skipped) fmt::print(stderr, "ksurf:   skipped {}: {}\n", name, why);

    std::uint64_t printed = 0, short_ = 0, complete = 0, over_max = 0;
    auto on_graph = [&](const Graph& g, const std::vector<std::string>& names) {
        // Without fetching atomics the kernel may start a few more than --max (recorder.cpp).
        if (opt.max && complete >= opt.max) {
            over_max++;
            return;
        }
        complete++;
        if (g.end_ns - g.start_ns < min_ns) {
            short_++;
            return;
        }
        printed++;
        if (common.json)
            fmt::print("{}\n", graph_json(g, names));
        else
            fmt::print("{}\n", format_graph(g, names));
    };
    // Set before attaching: a signal then ends the run once attached, through the
    // recorder's cleanup (the fallback gives the top-level tracefs instance back).
    install_stop_handlers();

    const std::vector<std::string>* names = nullptr;
    auto note = [](const std::string& line) { fmt::print(stderr, "ksurf: {}\n", line); };
    auto sink = [&](const Graph& g) { on_graph(g, *names); };
    std::unique_ptr<GraphRecorder> rec;
    if (no_bpf) {
        FunctionGraphOptions fo;
        fo.pids = common.pids;
        fo.config = gcfg;
        fo.syms = &syms;
        fo.note = note;
        rec = make_function_graph_recorder(root_function, callees.functions, fo, sink);
    } else {
        RecorderOptions ro;
        ro.attach = opt.attach;
        ro.features = &features;
        ro.btf = &*btf;
        ro.syms = &syms;
        ro.config = gcfg;
        ro.note = note;
        rec = make_graph_recorder(*root, callees.functions, ro, sink);
    }
    names = &rec->names();
    rec->attach();
    // Attached BPF objects are fds that need no privilege; the function_graph fallback
    // keeps root to give the top-level tracefs instance back.
    if (!no_bpf) {
        const std::string did = drop_privileges(std::nullopt);
        if (common.verbose) fmt::print(stderr, "ksurf: {}\n", did);
    }
    const auto failed = rec->failed();
    if (!failed.empty()) {
        fmt::print(stderr, "ksurf: {} callees could not be attached{}\n", failed.size(), common.verbose ? ":" : " (-v lists them)");
        if (common.verbose)
            for (const auto& [name, why] : failed) fmt::print(stderr, "ksurf:   {}: {}\n", name, why);
    }

    const std::size_t nprobes = rec->attached() + 1;
    fmt::print(stderr, "Tracing {} probe{}. Hit Ctrl-C to end.\n", nprobes, nprobes == 1 ? "" : "s");
    poll_until_stopped(common.duration, [&](int ms) { return rec->poll(ms); }, [&] { return opt.max && complete >= opt.max; });
    const RecorderStats s = rec->stats();
    fmt::print(stderr,
               "ksurf: {} graphs recorded, {} printed; ROOT called {} times: {} skipped by the predicate, {} sampled "
               "out, {} over --max; {} shorter than --min-duration; {} records dropped\n",
               complete, printed, s.root_hits, s.filtered, s.counts[KSURF_GCOUNT_SAMPLED_OUT], s.counts[KSURF_GCOUNT_OVER_MAX] + over_max,
               short_, s.dropped + s.counts[KSURF_GCOUNT_NO_ROOM]);
    return 0;
}

int run_disassemble(const std::string& function) {
    for (const std::string& line : disassemble(function, Kallsyms::load())) fmt::print("{}\n", line);
    return 0;
}

}  // namespace ksurf
