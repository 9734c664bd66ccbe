// ksurf skb: find the functions taking an sk_buff, attach them all, print each matching
// packet's path.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <unordered_map>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/privileges.h"
#include "ksurf/features.h"
#include "ksurf/kallsyms.h"
#include "ksurf/run_loop.h"
#include "ksurf/skb.h"
#include "ksurf/tracefs.h"

namespace ksurf {
CLI::App* add_skb_command(CLI::App& app, SkbOptions& opt) {
    auto* skb = app.add_subcommand("skb", "Packet paths: every function taking a struct sk_buff, for the packets --pcap matches");
    skb->fallthrough();  // the common options, as for tracing
    skb->footer(R"(Each packet --pcap matches once is followed by its skb's address through clones until freed.

Examples:
  ksurf skb --pcap 'tcp and port 9000'                     # every function each packet goes through
  ksurf skb --pcap 'icmp6' --funcs 'ip6_*' 'icmpv6_*' --json
  ksurf skb --pcap 'udp port 53' --no-return -d 10s        # half the probe cost, no return values)");
    skb->add_option("--pcap", opt.pcap, "tcpdump expression, tested in the kernel until a packet matches once");
    skb->add_option("--funcs", opt.funcs, "Only the functions these globs match")->expected(1, -1);
    skb->add_flag("--no-return{false}", opt.returns, "No return probes: no return values, and half the probe cost");
    // fentry cannot follow an skb through clones and frees: it needs kprobes.
    const std::vector<std::string> attach{"auto", "kprobe", "kprobe.multi"};
    skb->add_option_function<std::string>(
        "--attach",
        [&opt, attach](const std::string& s) {
            switch (parse_attach(s)) {
            case FunctionAttach::Auto: opt.attach = SkbAttach::Auto; break;
            case FunctionAttach::Kprobe: opt.attach = SkbAttach::Kprobe; break;
            case FunctionAttach::KprobeMulti: opt.attach = SkbAttach::KprobeMulti; break;
            case FunctionAttach::Fentry: fail("ksurf skb takes --attach {}: it needs kprobes", either(attach));
            }
        },
        "How the functions attach (default auto)")
        ->type_name("ATTACH")
        ->check(one_of(attach));
    return skb;
}

int run_skb(const CommonOptions& common, const SkbOptions& opt) {
    if (common.backend != BackendRequest::Auto && common.backend != BackendRequest::Bpf)
        fail("skb needs the BPF backend: it follows packets by their skb address in BPF maps, which --backend {} cannot",
             backend_name(common.backend));
    if (!common.pids.empty()) fail("ksurf skb does not take -p: it follows packets, whichever process sends them");
    if (common.buffer_kb) fail("ksurf skb does not take --buffer-size: it sizes the buffer of tracing's events");
    const Btf btf = common.btf_file.empty() ? Btf::kernel() : Btf::from_file(common.btf_file);
    Features features(&btf);
    auto note = [](const std::string& line) { fmt::print(stderr, "ksurf: {}\n", line); };
    SkbTracerOptions to{opt.attach, opt.returns, opt.pcap, &features, &btf, note};
    const Kallsyms syms = Kallsyms::load();
    PacketNumbers packets;
    std::unordered_map<std::string, SkbReturn> returns;  // filled before the first record
    std::uint64_t records = 0;
    auto tracer = make_skb_tracer(std::move(to), [&](const ksurf_skb_rec& r) {
        records++;
        const std::uint64_t packet = packets.on(r);
        const KernelSymbol* s = r.kind == KSURF_SKB_CLONE ? nullptr : syms.at(r.ip);
        const std::string function = r.kind == KSURF_SKB_CLONE ? kSkbCloneFunction : s ? s->name : fmt::format("{:#x}", r.ip);
        const auto it = returns.find(function);
        const SkbReturn ret = it == returns.end() ? SkbReturn::Signed : it->second;
        fmt::print("{}\n", common.json ? skb_record_json(r, packet, function, ret) : format_skb_record(r, packet, function, ret));
    });
    // Every mode needs kprobes: skb_clone and the free functions are probed with them.
    if (!features.has(Feature::Kprobe)) fail("skb needs kprobes: {}", features.get(Feature::Kprobe).reason);

    const auto traceable = tracefs::available_filter_functions();
    if (traceable.empty()) fail("cannot read available_filter_functions: skb probes only functions ftrace can trace");
    const SkbFunctions fns = find_skb_functions(btf, traceable, opt.funcs);
    for (const auto& f : fns.functions) returns.emplace(f.name, f.ret);
    note(fmt::format("{} functions take a struct sk_buff *{}; {} skipped{}", fns.functions.size(),
                     opt.funcs.empty() ? "" : fmt::format(" among {}", fmt::join(opt.funcs, " ")), fns.skipped.size(),
                     common.verbose || fns.skipped.empty() ? "" : " (-v lists them)"));
    if (common.verbose)
        for (const auto& [name, why] : fns.skipped) note(fmt::format("  skipped {}: {}", name, why));

    install_stop_handlers();
    tracer->attach(fns);
    // Attached BPF objects are fds that need no privilege.
    const std::string dropped = drop_privileges(std::nullopt);
    if (common.verbose) note(dropped);
    const auto failed = tracer->failed();
    if (!failed.empty()) {
        note(fmt::format("{} functions could not be attached{}", failed.size(), common.verbose ? ":" : " (-v lists them)"));
        if (common.verbose)
            for (const auto& [name, why] : failed) note(fmt::format("  {}: {}", name, why));
    }
    fmt::print(stderr, "Tracing {} functions{}. Hit Ctrl-C to end.\n", tracer->attached(),
               opt.pcap.empty() ? " for every packet" : fmt::format(" for packets matching '{}'", opt.pcap));
    poll_until_stopped(common.duration, [&](int ms) { return tracer->poll(ms); });
    const SkbStats st = tracer->stats();
    fmt::print(stderr, "ksurf: {} packets followed, {} records; {} probe hits, {} records dropped\n", packets.count(), records,
               st.hits, st.dropped);
    return 0;
}

}  // namespace ksurf
