#include "ksurf/trace.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <functional>
#include <fstream>
#include <optional>
#include <sstream>

#include "ksurf/file.h"
#include "ksurf/aggregate_report.h"
#include "ksurf/backend_choice.h"
#include "ksurf/bpf_backend.h"
#include "ksurf/btf.h"
#include "ksurf/cgroup.h"
#include "ksurf/command.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/format.h"
#include "ksurf/output_file.h"
#include "ksurf/parse.h"
#include "ksurf/pcap.h"
#include "ksurf/privileges.h"
#include "ksurf/resolve.h"
#include "ksurf/run_loop.h"
#include "ksurf/tracefs.h"
#include "ksurf/tracefs_backend.h"

namespace ksurf {
namespace {

std::string read_probe_file(const std::string& path) {
    auto text = read_file(path);
    if (!text) fail("cannot read probe file '{}'", path);
    return std::move(*text);
}

std::vector<Probe> parse_all(const TraceOptions& opt) {
    std::vector<Probe> probes;
    for (const auto& text : opt.probes) probes.push_back(parse_probe(text));
    if (!opt.probe_file.empty())
        for (auto& p : parse_probe_file(read_probe_file(opt.probe_file), opt.probe_file)) probes.push_back(std::move(p));
    if (probes.empty()) fail("no probe given (try 'ksurf --help')");
    return probes;
}

// The kernel's traceable functions; BTF's when the kernel will not list them (lockdown,
// no tracefs, not root), which keeps globs and suggestions working for -S.
std::vector<std::string> filter_functions(const Btf& btf) {
    auto lines = tracefs::available_filter_functions();
    return lines.empty() ? btf.function_names() : lines;
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

// Whether e probes may become event probes: only they ask tracefs.
bool eprobes(const std::vector<PlannedProbe>& plans) {
    return std::ranges::any_of(plans, [](const auto& p) { return p.kind == ProbeKind::Tracepoint; }) &&
           tracefs::eprobes_available();
}

// The tracepoints the e probes name, for translation and tracefs filters.
std::vector<tracefs::EventFormat> tracepoint_formats(const std::vector<PlannedProbe>& plans) {
    std::vector<tracefs::EventFormat> formats;
    for (const auto& p : plans)
        if (p.kind == ProbeKind::Tracepoint) formats.push_back(tracefs::read_format(tracefs::root(), p.subsystem, p.event));
    return formats;
}

// "ksurf: p tcp_* matches 312 functions": a glob's reach, before anything is attached.
void announce_glob(const Probe& probe, std::size_t planned,
                   const std::function<const std::vector<std::string>&()>& functions) {
    const Target& t = probe.target;
    if (probe.kind == ProbeKind::Tracepoint) {
        fmt::print(stderr, "ksurf: e {}/{} matches {} tracepoint{}\n", t.subsystem, t.name, planned, planned == 1 ? "" : "s");
        return;
    }
    const std::string glob = t.module.empty() ? t.name : t.module + ":" + t.name;
    const std::size_t listed = expand_glob(glob, functions()).size();
    fmt::print(stderr, "ksurf: {} {} matches {} function{}{}\n", probe.kind == ProbeKind::Return ? 'r' : 'p', glob, planned,
               planned == 1 ? "" : "s",
               listed > planned ? fmt::format(" ({} more without BTF left out: compiler clones such as .isra.0)", listed - planned)
                                : "");
}

// Attaches PLANS, with a progress line at each tenth when there are many.
bool add_all(Backend& backend, const std::vector<PlannedProbe>& plans) {
    constexpr std::size_t kMany = 20;
    for (std::size_t i = 0; i < plans.size(); i++) {
        if (stop_requested()) return false;
        backend.add(plans[i]);
        if (plans.size() >= kMany && ((i + 1) % ((plans.size() + 9) / 10) == 0 || i + 1 == plans.size()))
            fmt::print(stderr, "ksurf: attached {} of {} probes\n", i + 1, plans.size());
    }
    return true;
}

void print_plan(const PlannedProbe& p) {
    fmt::print(stderr, "ksurf: {}\n", p.text);
    for (const auto& f : p.fields)
        fmt::print(stderr, "         {}{} : {}\n", f.name,
                   f.hidden  ? " (for the filter)"
                   : f.guard ? " (whether the packet names apply)"
                             : "",
                   f.c_type);
}

void say_stale(const std::vector<tracefs::StaleRun>& stale) {
    for (const auto& s : stale)
        fmt::print(stderr, "ksurf: removed stale probes from a killed run (pid {}): {} kprobe event{}{}\n", s.pid,
                   s.kprobes, s.kprobes == 1 ? "" : "s", s.instance ? " and its tracefs instance" : "");
}

// Drops said while they happen, at most once a second: the summary at exit comes too late
// to act on them.
class DropWarning {
public:
    void check(const Backend& backend) {
        const auto now = std::chrono::steady_clock::now();
        if (now < next_) return;
        next_ = now + std::chrono::seconds(1);
        const std::uint64_t dropped = backend.stats().dropped;
        if (dropped > said_)
            fmt::print(stderr, "ksurf: {} events dropped in the last second; --buffer-size raises the buffer\n", dropped - said_);
        said_ = dropped;
    }

private:
    std::chrono::steady_clock::time_point next_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::uint64_t said_ = 0;
};

int loop(Backend& backend, Formatter& out, const TraceOptions& opt, std::size_t nprobes, Command* command,
         const std::function<void()>& attached, AggregateReport* report) {
    backend.start();
    attached();
    fmt::print(stderr, "Tracing {} probe{}. Hit Ctrl-C to end.\n", nprobes, nprobes == 1 ? "" : "s");
    if (command) command->release();
    DropWarning drops;
    poll_until_stopped(opt.duration,
                       [&](int ms) {
                           const bool going = backend.poll(ms) && out.flush() && (!report || report->tick());
                           drops.check(backend);
                           return going;
                       },
                       [&] { return command && command->exited(); });
    if (report) report->print();
    out.summary(backend.stats());
    std::fflush(stdout);
    // -c: the command's status, as timeout(1) and perf stat give it.
    return command && command->exited() ? *command->status() : 0;
}

// The BPF backend's options for --backend REQ; -v prints each probe's attach type and why.
BpfOptions bpf_options(BackendRequest req, Features& features, const Btf& btf, bool verbose) {
    BpfOptions o;
    o.attach = function_attach(req);
    o.features = &features;
    o.btf = &btf;
    if (verbose) o.explain = [](const std::string& line) { fmt::print(stderr, "ksurf: {}\n", line); };
    return o;
}

// --pcap and -w: every probe reads the packet of its sk_buff (resolve.h says which).
void capture_packets(std::vector<PlannedProbe>& plans, const TraceOptions& opt, const ResolveContext& ctx) {
    const auto program = opt.pcap.empty() ? std::vector<CbpfInsn>{} : compile_pcap(opt.pcap);
    if (opt.verbose && !program.empty())
        fmt::print(stderr, "ksurf: --pcap '{}' (classic BPF from the network header):\n{}", opt.pcap, dump_cbpf(program));
    for (auto& p : plans)
        p.packet = PacketCapture{resolve_packet_skb(p, ctx), opt.pcap, program, opt.pcap_file.empty() ? 0 : opt.snaplen};
}

}  // namespace

int run_trace(const TraceOptions& opt) {
    // Before anything is attached: a signal during set-up must unwind it, not kill it.
    install_stop_handlers();
    const BackendRequest request = opt.backend;
    const bool packets = !opt.pcap.empty() || !opt.pcap_file.empty();
    constexpr std::string_view kPacketsNeedBpf =
        "--pcap and -w need the BPF backend: tracefs cannot run a packet filter or copy packets in the kernel";
    if (packets && (request == BackendRequest::Tracefs || opt.script || !opt.script_file.empty())) fail(kPacketsNeedBpf);
    const auto probes = parse_all(opt);
    const auto user = opt.user.empty() ? std::nullopt : std::optional(find_user(opt.user));
    Features features;
    // Privileges first: without them every later step fails with a less telling error.
    if (!opt.script && opt.script_file.empty() && geteuid() != 0) {
        if (request == BackendRequest::Tracefs) {
            const std::string dir = tracefs::find_mount().value_or("/sys/kernel/tracing");
            if (access(dir.c_str(), W_OK) != 0)
                fail("cannot trace with tracefs: {} is not writable: {} (run as root)", dir, errno_text(errno));
        } else if (!features.has(Feature::Bpf)) {
            fail("cannot trace: {}", features.get(Feature::Bpf).reason);
        }
    }
    const Btf btf = opt.btf_file.empty() ? Btf::kernel() : Btf::from_file(opt.btf_file);
    features.use_btf(btf);
    // Read once: every glob and suggestion looks at the same 70k lines.
    std::optional<std::vector<std::string>> functions;
    auto traceable = [&]() -> const std::vector<std::string>& {
        if (!functions) functions = filter_functions(btf);
        return *functions;
    };
    const ResolveContext ctx = kernel_context(btf, traceable);
    std::vector<PlannedProbe> plans;
    for (const auto& p : probes) {
        auto resolved = resolve_all(p, ctx);
        if (p.target.is_glob) announce_glob(p, resolved.size(), traceable);
        for (auto& plan : resolved) plans.push_back(std::move(plan));
    }
    if (packets) capture_packets(plans, opt, ctx);
    opt.agg.check();
    AggregateOptions agg = opt.agg;
    agg.stacks = opt.stacks && agg.active();  // -s: by stack, rather than a stack per event
    if (agg.active()) plan_aggregate(plans, agg, ctx);
    if (opt.verbose)
        for (const auto& p : plans) print_plan(p);

    if (opt.script || !opt.script_file.empty()) {
        const tracefs::TranslateContext tctx{tracefs::run_name(getpid()), skb_layout(btf, plans), tracepoint_formats(plans),
                                             agg.active() ? &agg : nullptr, eprobes(plans)};
        // What the instance can do is written into the script; what only BPF can is refused,
        // as --backend tracefs refuses it.
        if (!opt.cgroup.empty()) fail("--cgroup needs the BPF backend: tracefs event filters cannot match a cgroup");
        if (!opt.command.empty()) fail("-S writes a script and runs nothing: -c's command has no place in it");
        if (!opt.user.empty()) fail("--user needs the BPF backend: a tracefs run keeps root to remove its probes and instance at exit");
        TracefsOptions run;
        run.pids = opt.pids;
        run.stacks = opt.stacks && !agg.active();
        run.buffer_kb = opt.buffer_kb;
        const std::string text = tracefs::script(plans, tctx, run);
        if (opt.script_file.empty())
            fmt::print("{}", text);
        else
            write_output_file(opt.script_file, text);  // mode 0600: it names what is traced
        return 0;
    }

    const auto choice = choose_backend(request, plans, [&](Feature f) -> const FeatureStatus& { return features.get(f); });
    for (const auto& note : choice.notes) fmt::print(stderr, "ksurf: {}\n", note);
    if (opt.count_filtered && choice.kind == BackendKind::Tracefs)
        fmt::print(stderr, "ksurf: --count-filtered: tracefs event filters discard without counting; the summary has no count\n");
    if (features.has(Feature::Tracefs)) say_stale(tracefs::cleanup_stale());

    const std::uint64_t cgroup = opt.cgroup.empty() ? 0 : cgroup_id(opt.cgroup);
    if (cgroup && choice.kind == BackendKind::Tracefs)
        fail("--cgroup needs the BPF backend: tracefs event filters cannot match a cgroup");
    if (packets && choice.kind == BackendKind::Tracefs) fail(kPacketsNeedBpf);
    if (agg.active() && choice.kind == BackendKind::Tracefs && !features.has(Feature::HistTriggers))
        fail("--{} on tracefs: {}; the BPF backend aggregates without them", agg_kind_name(*agg.kind),
             features.get(Feature::HistTriggers).reason);
    if (user && choice.kind == BackendKind::Tracefs)
        fail("--user needs the BPF backend: a tracefs run keeps root to remove its probes and instance at exit");
    if (opt.verbose && choice.kind == BackendKind::Tracefs)
        fmt::print(stderr, "ksurf: tracefs keeps root for the whole run: removing its probes and instance at exit needs it\n");
    std::optional<PcapngWriter> pcapng;
    if (!opt.pcap_file.empty()) pcapng.emplace(opt.pcap_file, opt.snaplen);
    std::optional<Command> command;
    auto pids = opt.pids;
    if (!opt.command.empty()) pids.push_back(command.emplace(opt.command, user).pid());

    auto out = opt.json ? json_formatter(stdout) : text_formatter(stdout, stderr);
    auto sink = [&](const Event& ev) {
        out->write(ev);
        if (pcapng) pcapng->write(ev);
    };
    std::unique_ptr<Backend> backend;
    AggregateReport::Read read_table;
    if (choice.kind == BackendKind::Tracefs) {
        auto t = make_tracefs_backend(sink, skb_layout(btf, plans),
                                      {opt.stacks && !agg.active(), pids, command.has_value(), opt.buffer_kb,
                                       !opt.include_self, agg.active() ? &agg : nullptr});
        read_table = [t = t.get(), &plans](const Kallsyms*) { return t->aggregate(plans); };
        backend = std::move(t);
    } else {
        BpfOptions o = bpf_options(request, features, btf, opt.verbose);
        o.stacks = opt.stacks;
        o.pids = pids;
        o.follow_forks = command.has_value();
        o.cgroup_id = cgroup;
        o.exclude_self = !opt.include_self;
        o.count_filtered = opt.count_filtered;
        // One ring buffer for all CPUs, whose size the kernel wants a power of two.
        if (opt.buffer_kb) o.ringbuf_bytes = std::bit_ceil(opt.buffer_kb * 1024u);
        if (agg.active()) {
            o.stacks = false;
            o.aggregate = {plans.front().aggregate->key_len, agg_buckets(*plans.front().aggregate), agg.map_size, agg.stack_key()};
        }
        auto b = make_bpf_backend(sink, std::move(o));
        read_table = [b = b.get(), &agg, &plans](const Kallsyms* k) {
            return read_aggregate(b->aggregate_maps(), agg, plans.front(), k);
        };
        backend = std::move(b);
    }
    std::optional<AggregateReport> report;
    if (agg.active()) report.emplace(read_table, agg, opt.json, stdout);
    if (!add_all(*backend, plans)) return 1;
    // Attached BPF objects are fds that need no privilege; -w's file is open by now.
    auto drop = [&] {
        if (choice.kind != BackendKind::Bpf) return;
        const std::string did = drop_privileges(user);
        if (opt.verbose) fmt::print(stderr, "ksurf: {}\n", did);
    };
    const int status = loop(*backend, *out, opt, plans.size(), command ? &*command : nullptr, drop, report ? &*report : nullptr);
    if (pcapng) fmt::print(stderr, "ksurf: wrote {} packets to {}\n", pcapng->written(), opt.pcap_file);
    return status;
}

}  // namespace ksurf
