// An aggregating run's output: the kernel's table read and printed at every --interval and
// at exit, as text or JSON, and the --metrics-file replaced atomically each time.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "ksurf/aggregate.h"

namespace ksurf {

class AggregateReport {
public:
    // READ: the kernel's table now, every key, stack keys symbolized with the kallsyms it
    // is given (BPF's stack ids; tracefs' stacks come symbolized). UNIT: the value's ("ns"
    // for latencies). Loads kallsyms for stack keys: construct it before privileges are
    // dropped.
    using Read = std::function<AggTable(const Kallsyms*)>;
    AggregateReport(Read read, AggregateOptions opt, bool json, std::FILE* out, std::string unit = {});
    ~AggregateReport();
    // Prints when --interval has passed since the last print; false once the reader of the
    // output is gone (EPIPE). Other write errors throw.
    bool tick();
    // Prints now.
    bool print();

private:
    std::chrono::steady_clock::duration interval() const;

    Read read_;
    AggregateOptions opt_;
    bool json_;
    std::FILE* out_;
    std::string unit_;
    std::unique_ptr<Kallsyms> kallsyms_;
    std::chrono::steady_clock::time_point next_;
};

}  // namespace ksurf
