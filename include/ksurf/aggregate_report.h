// An aggregating run's output: the kernel's table read and printed at every --interval and
// at exit, as text or JSON, and the --metrics-file replaced atomically each time.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "ksurf/aggregate.h"
#include "ksurf/bpf_backend.h"

namespace ksurf {

class AggregateReport {
public:
    // PLAN: the run's first probe, whose key layout the table is decoded with. UNIT: the
    // value's ("ns" for latencies). Loads kallsyms for stack keys: construct it before
    // privileges are dropped.
    using Maps = std::function<BpfAggregateMaps()>;
    AggregateReport(Maps maps, AggregateOptions opt, const PlannedProbe& plan, bool json, std::FILE* out,
                    std::string unit = {});
    ~AggregateReport();
    // Prints when --interval has passed since the last print; false once the reader of the
    // output is gone (EPIPE). Other write errors throw.
    bool tick();
    // Prints now.
    bool print();

private:
    std::chrono::steady_clock::duration interval() const;

    Maps maps_;
    AggregateOptions opt_;
    const PlannedProbe& plan_;
    bool json_;
    std::FILE* out_;
    std::string unit_;
    std::unique_ptr<Kallsyms> kallsyms_;
    std::chrono::steady_clock::time_point next_;
};

}  // namespace ksurf
