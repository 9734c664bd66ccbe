// ksurf lat FUNC: resolve FUNC, its predicate and keys, time its calls in the kernel, print
// the histograms at --interval and at exit.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include "ksurf/aggregate_report.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/latency.h"
#include "ksurf/parse.h"
#include "ksurf/pcap.h"
#include "ksurf/privileges.h"
#include "ksurf/resolve.h"
#include "ksurf/run_loop.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

PlannedProbe plan_function(const LatOptions& opt, const ResolveContext& ctx) {
    const Probe probe = parse_probe("p " + opt.function);
    if (probe.target.is_glob || probe.target.offset) fail("ksurf lat times one function, not '{}'", printable(opt.function));
    PlannedProbe plan = resolve(probe, ctx);
    if (!opt.where.empty()) resolve_filter(parse_filter(opt.where), opt.where, plan, ctx);
    if (!opt.pcap.empty()) plan.packet = PacketCapture{resolve_packet_skb(plan, ctx), opt.pcap, compile_pcap(opt.pcap), 0};
    // The keys only: the value is the time, which the return program measures.
    AggregateOptions keys = opt.agg;
    keys.kind = AggKind::Count;
    std::vector<PlannedProbe> plans;
    plans.push_back(std::move(plan));
    plan_aggregate(plans, keys, ctx);
    plans.front().aggregate->hist = PlannedAggregate::Hist::Log2;
    return std::move(plans.front());
}

}  // namespace

CLI::App* add_lat_command(CLI::App& app, LatOptions& opt) {
    auto* lat = app.add_subcommand("lat", "Each call's duration as a log2 histogram, paired and aggregated in the kernel");
    lat->fallthrough();  // the common options, as for tracing
    lat->footer(R"(Entry and return are paired per thread (per CPU and interrupt level in interrupt context);
--where and --pcap are checked at entry, and calls that fail them are not timed.
The programs are fentry/fexit where the kernel has both, else kprobe/kretprobe;
--backend fentry or --backend kprobe asks for one.

Examples:
  ksurf lat vfs_read --by comm --interval 1s
  ksurf lat do_nanosleep --where 'comm=="sleep"'
  ksurf lat ip_rcv --pcap 'udp port 53' --json)");
    lat->add_option("function", opt.function, "The function to time")->required()->type_name("FUNC");
    lat->add_option("--where", opt.where, "Predicate on the arguments and packet, checked in the kernel at entry");
    lat->add_option("--pcap", opt.pcap, "tcpdump expression over the function's sk_buff");
    add_aggregate_options(*lat, opt.agg, false);
    return lat;
}

int run_lat(const CommonOptions& common, LatOptions opt) {
    install_stop_handlers();
    if (common.backend == BackendRequest::Tracefs)
        fail("ksurf lat needs BPF: it pairs each call's entry and return in the kernel (on tracefs that takes synthetic "
             "events fed by hist triggers, which ksurf does not build)");
    if (common.buffer_kb) fail("ksurf lat does not take --buffer-size: it sends no events");
    Features features;
    if (geteuid() != 0 && !features.has(Feature::Bpf)) fail("cannot trace: {}", features.get(Feature::Bpf).reason);
    const Btf btf = common.btf_file.empty() ? Btf::kernel() : Btf::from_file(common.btf_file);
    features.use_btf(btf);
    const ResolveContext ctx = kernel_context(btf, [] { return tracefs::available_filter_functions(); });
    const PlannedProbe plan = plan_function(opt, ctx);
    const auto tracer = make_latency_tracer(plan, opt.agg, btf, features, common.pids, function_attach(common.backend));
    AggregateOptions shown = opt.agg;
    shown.kind = AggKind::Hist;
    shown.field = opt.function;
    AggregateReport report([&](const Kallsyms* k) { return read_aggregate(tracer->maps(), shown, plan, k); }, shown, common.json,
                           stdout, "ns");
    const std::string dropped = drop_privileges(std::nullopt);
    if (common.verbose) fmt::print(stderr, "ksurf: {}\n", dropped);
    fmt::print(stderr, "Timing {} on {}. Hit Ctrl-C to end.\n", opt.function, tracer->attach_type());
    poll_until_stopped(common.duration, [&](int ms) { return poll(nullptr, 0, ms) >= 0 && report.tick(); });
    report.print();
    std::uint64_t paired = 0;
    for (const auto& r : read_aggregate(tracer->maps(), shown, plan, nullptr).rows) paired += r.count;
    const LatStats s = tracer->stats();
    // Started calls whose return was not seen (still running, or not reported) and entries
    // with no room to wait in are missed; a full aggregation map is the table's note.
    const std::uint64_t missed = s.started + s.lost > paired ? s.started + s.lost - paired : 0;
    if (common.json)
        fmt::print("{{\"summary\":{{\"paired\":{},\"missed\":{},\"filtered\":{}}}}}\n", paired, missed, s.filtered);
    else
        fmt::print(stderr, "{} calls paired, {} missed, {} filtered\n", paired, missed, s.filtered);
    return 0;
}

}  // namespace ksurf
