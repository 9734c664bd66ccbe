// ksurf lat's loader: bpf/lat.bpf.c through the attach engine, the entry clone configured
// with the probe's predicate and key, the return clone with the histogram.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "ksurf/attach.h"
#include "ksurf/btf.h"
#include "ksurf/codegen.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/graph.h"
#include "ksurf/graph_record.h"
#include "ksurf/kallsyms.h"
#include "ksurf/latency.h"
// After the types its rodata uses.
#include "lat.skel.h"

namespace ksurf {
namespace {

class Tracer final : public LatencyTracer {
public:
    Tracer(const PlannedProbe& plan, const AggregateOptions& agg, const Btf& btf, Features& features,
           const std::vector<std::uint32_t>& pids, FunctionAttach attach) {
        const PlannedAggregate& a = *plan.aggregate;
        const BpfOptions::Aggregate shape{a.key_len, agg_buckets(a), agg.map_size, agg.stack_key()};
        const Function fn = btf.find_function(plan.module.empty() ? plan.function : plan.module + ":" + plan.function);
        const bool fentry = choose_fentry(features, attach);
        const BpfAttach entry = fentry ? BpfAttach::Fentry : BpfAttach::Kprobe;
        const BpfAttach ret = fentry ? BpfAttach::Fexit : BpfAttach::Kretprobe;
        type_ = fentry ? "fentry/fexit" : "kprobe/kretprobe";

        tmpl_.emplace(elf_of<lat_bpf>(), std::vector<std::string>{kEntry, "ksurf_lat_return"}, [&](bpf_map* m) {
            const std::string_view name = bpf_map__name(m);
            if (name == "events") bpf_map__set_max_entries(m, 4096);  // no events: the smallest ring
            if (name == "starts") {
                bpf_map__set_value_size(m, a.key_len + 8);
                bpf_map__set_max_entries(m, agg.map_size);
            }
            size_aggregate_map(m, shape);
        });
        for (std::uint32_t pid : pids) {
            const std::uint8_t one = 1;
            if (bpf_map_update_elem(tmpl_->map("pids"), &pid, &one, BPF_ANY)) fail("cannot trace pid {}: {}", pid, errno_text(errno));
        }

        BpfFrame frame;
        frame.attach = entry;
        set_arg_slots(frame, fn);
        if (!fentry) frame.regs = pt_regs_offsets(btf);
        ksurf_config cfg = encode_bpf(plan, frame).config;
        cfg.by_pid = !pids.empty();
        cfg.count_filtered = 1;  // the summary's "filtered"
        // ksurf's own calls, which the self gate refuses too, are too few to count.
        gated_ = cfg.nops || cfg.ncbpf || cfg.by_pid || cfg.cgroup_id;
        if (cfg.ncbpf || std::any_of(cfg.fields, cfg.fields + cfg.nfields, [](const auto& f) { return f.packet_step != KSURF_NO_PACKET; }))
            cfg.layout = kernel_layout(btf);
        ksurf_graph_config g{};
        try {
            find_preempt_count(g, Kallsyms::load("/proc/kallsyms", kPreemptCountSymbols));
        } catch (const Error&) {
            // Addresses hidden (kptr_restrict): the programs use BTF's per-CPU variables then,
            // which every kernel but 5.10 has.
        }
        AttachTarget t;
        t.name = plan.function;
        if (fentry) {
            t.btf_id = fn.btf_id;
            t.btf_module = fn.module;
        } else if (!plan.module.empty()) {
            t.name = plan.module + ":" + plan.function;
        }
        links_.add(instance(kEntry, entry, cfg, g, t));
        // The return clone aggregates the time it computes: a value, in the log2 histogram.
        cfg.agg.value_at = 0;
        cfg.agg.value_signed = 0;
        cfg.agg.hist = KSURF_HIST_LOG2;
        cfg.agg.nbuckets = KSURF_AGG_LOG2_BUCKETS;
        links_.add(instance("ksurf_lat_return", ret, cfg, g, t));
        stack_at_ = cfg.agg.stack_at;
        key_ = encode_bpf(plan, frame).key_outputs;
    }

    BpfAggregateMaps maps() const override {
        const auto counts = sum_per_cpu(tmpl_->map("scratch"), 0, KSURF_STAT_MAX);
        return {tmpl_->map("aggs"), tmpl_->map("agg_stacks"), key_, stack_at_, counts[KSURF_STAT_AGG_FULL]};
    }

    LatStats stats() const override {
        const auto counts = sum_per_cpu(tmpl_->map("scratch"), 0, KSURF_STAT_MAX);
        return {counts[KSURF_STAT_LAT_STARTED], counts[KSURF_STAT_LAT_LOST], counts[KSURF_STAT_FILTERED]};
    }

    std::string attach_type() const override { return type_; }

private:
    // fentry/fexit where the kernel has both, unless --backend kprobe; kprobes otherwise.
    static bool choose_fentry(Features& features, FunctionAttach attach) {
        auto missing = [&](Feature f) { return features.has(f) ? std::string() : features.get(f).reason; };
        const std::string fentry = missing(Feature::Fentry).empty() ? missing(Feature::Fexit) : missing(Feature::Fentry);
        if (attach == FunctionAttach::Fentry && !fentry.empty()) fail("ksurf lat --backend fentry: {}", fentry);
        if (attach == FunctionAttach::Fentry || (attach != FunctionAttach::Kprobe && fentry.empty())) return true;
        if (features.has(Feature::Kprobe)) return false;
        if (attach == FunctionAttach::Kprobe) fail("ksurf lat --backend kprobe: {}", missing(Feature::Kprobe));
        fail("ksurf lat needs fentry or kprobes: fentry: {}; kprobe: {}", fentry, missing(Feature::Kprobe));
    }

    Link instance(const char* program, BpfAttach a, const ksurf_config& cfg, const ksurf_graph_config& g, const AttachTarget& t) {
        auto rodata = [&](const ksurf_config& c) {
            std::vector<std::uint8_t> data = tmpl_->rodata();
            lat_bpf::lat_bpf__rodata ro;
            std::memcpy(&ro, data.data(), sizeof ro);
            ro.cfg = c;
            ro.gcfg = g;
            ro.gated = gated_;
            std::memcpy(data.data(), &ro, sizeof ro);
            return tmpl_->make_rodata(data);
        };
        // Only the entry runs the predicate (ksurf_take()), first thing: its filter can run
        // compiled in front. The return program takes what an accepted entry stored.
        const Fd prog = program == std::string_view(kEntry) ? load_filtered(*tmpl_, program, a, t, cfg, rodata, false)
                                                            : tmpl_->load(program, a, rodata(cfg).get(), t);
        return attach(prog.get(), a, t);
    }

    static constexpr const char* kEntry = "ksurf_lat_entry";

    std::optional<BpfTemplate> tmpl_;
    Links links_;
    std::vector<BpfOutput> key_;
    std::uint16_t stack_at_ = KSURF_AGG_NO_VALUE;
    std::string type_;
    bool gated_ = false;
};

}  // namespace

std::unique_ptr<LatencyTracer> make_latency_tracer(const PlannedProbe& plan, const AggregateOptions& agg, const Btf& btf,
                                                   Features& features, const std::vector<std::uint32_t>& pids,
                                                   FunctionAttach attach) {
    return std::make_unique<Tracer>(plan, agg, btf, features, pids, attach);
}

}  // namespace ksurf
