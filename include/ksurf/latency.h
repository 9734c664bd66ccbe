// ksurf lat FUNC: each call's duration, entry to return paired in the kernel per context
// (the thread, or the CPU and interrupt level), aggregated as a log2 histogram of
// nanoseconds by key; calls whose entry fails the predicate are not timed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ksurf/aggregate.h"
#include "ksurf/bpf_backend.h"
#include "ksurf/cli.h"

namespace CLI {
class App;
}

namespace ksurf {

class Btf;
class Features;

struct LatOptions {
    std::string function;
    std::string where;  // predicate on the arguments and the packet, at entry
    std::string pcap;   // tcpdump expression over the function's sk_buff
    AggregateOptions agg;
};

struct LatStats {
    std::uint64_t started = 0;   // entries that passed the predicate and were stored
    std::uint64_t lost = 0;      // entries the context map had no room for
    std::uint64_t filtered = 0;  // entries the predicate rejected
};

// The entry and return programs of bpf/lat.bpf.c on PLAN's function (fentry/fexit where
// the kernel allows, else kprobe/kretprobe), attached; detached when destroyed.
class LatencyTracer {
public:
    virtual ~LatencyTracer() = default;
    virtual BpfAggregateMaps maps() const = 0;
    virtual LatStats stats() const = 0;
    virtual std::string attach_type() const = 0;  // "fentry/fexit" or "kprobe/kretprobe"
};

// PLAN: `p FUNC` with the predicate and PlannedAggregate (keys only). PIDS: -p. ATTACH:
// Fentry or Kprobe as --backend asks, else Auto.
std::unique_ptr<LatencyTracer> make_latency_tracer(const PlannedProbe& plan, const AggregateOptions& agg, const Btf& btf,
                                                   Features& features, const std::vector<std::uint32_t>& pids,
                                                   FunctionAttach attach);

CLI::App* add_lat_command(CLI::App& app, LatOptions& opt);
int run_lat(const CommonOptions& common, LatOptions opt);

}  // namespace ksurf
