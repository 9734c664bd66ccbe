// ksurf skb: find the functions taking an sk_buff, attach them all, print each matching
// packet's path.
#include <fmt/format.h>
#include <unistd.h>

#include <unordered_map>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/kallsyms.h"
#include "ksurf/run_loop.h"
#include "ksurf/skb.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

SkbAttach attach_request(const std::string& a) {
    if (a == "auto") return SkbAttach::Auto;
    if (a == "kprobe") return SkbAttach::Kprobe;
    if (a == "kprobe.multi") return SkbAttach::KprobeMulti;
    fail("--attach must be auto, kprobe or kprobe.multi, not '{}'", a);
}

}  // namespace

int run_skb(const SkbOptions& opt) {
    if (opt.backend != "auto" && opt.backend != "bpf")
        fail("skb needs the BPF backend: it follows packets by their skb address in BPF maps, which --backend {} cannot",
             opt.backend);
    const SkbAttach attach = attach_request(opt.attach);
    const Btf btf = opt.btf_file.empty() ? Btf::kernel() : Btf::from_file(opt.btf_file);
    Features features(&btf);
    auto note = [](const std::string& line) { fmt::print(stderr, "ksurf: {}\n", line); };
    SkbTracerOptions to{attach, opt.returns, opt.pcap, &features, &btf, note};
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
        fmt::print("{}\n", opt.json ? skb_record_json(r, packet, function, ret) : format_skb_record(r, packet, function, ret));
    });
    // Every mode needs kprobes: skb_clone and the free functions are probed with them.
    if (!features.has(Feature::Kprobe)) fail("skb needs kprobes: {}", features.get(Feature::Kprobe).reason);

    const auto traceable = tracefs::available_filter_functions();
    if (traceable.empty()) fail("cannot read available_filter_functions: skb probes only functions ftrace can trace");
    const SkbFunctions fns = find_skb_functions(btf, traceable, opt.funcs);
    for (const auto& f : fns.functions) returns.emplace(f.name, f.ret);
    note(fmt::format("{} functions take a struct sk_buff *{}; {} skipped{}", fns.functions.size(),
                     opt.funcs.empty() ? "" : fmt::format(" among {}", fmt::join(opt.funcs, " ")), fns.skipped.size(),
                     opt.verbose || fns.skipped.empty() ? "" : " (-v lists them)"));
    if (opt.verbose)
        for (const auto& [name, why] : fns.skipped) note(fmt::format("  skipped {}: {}", name, why));

    install_stop_handlers();
    tracer->attach(fns);
    const auto failed = tracer->failed();
    if (!failed.empty()) {
        note(fmt::format("{} functions could not be attached{}", failed.size(), opt.verbose ? ":" : " (-v lists them)"));
        if (opt.verbose)
            for (const auto& [name, why] : failed) note(fmt::format("  {}: {}", name, why));
    }
    fmt::print(stderr, "Tracing {} functions{}. Hit Ctrl-C to end.\n", tracer->attached(),
               opt.pcap.empty() ? " for every packet" : fmt::format(" for packets matching '{}'", opt.pcap));
    poll_until_stopped(opt.duration, [&](int ms) { return tracer->poll(ms); });
    const SkbStats st = tracer->stats();
    fmt::print(stderr, "ksurf: {} packets followed, {} records; {} probe hits, {} records dropped\n", packets.count(), records,
               st.hits, st.dropped);
    return 0;
}

}  // namespace ksurf
