// Output: ftrace-like text lines or JSON lines, and the summary at exit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "ksurf/events.h"

namespace ksurf {

struct RunStats {
    std::uint64_t events = 0;    // printed
    // Rejected in the kernel; counted only on request (--count-filtered, BPF): the count
    // costs the rejecting path a store. Unset, the summary leaves it out.
    std::optional<std::uint64_t> filtered;
    std::uint64_t dropped = 0;   // lost: ring buffer full
};

// Events are buffered and written out in large blocks; the run loop calls flush() after
// each batch it polls, so that output still comes promptly when events are few.
class Formatter {
public:
    virtual ~Formatter() = default;
    virtual void write(const Event& ev) = 0;
    // Writes out what is buffered. False once the reader of the output is gone (EPIPE,
    // `ksurf ... | head`): the run should end, and later output is dropped. Other write
    // errors throw Error.
    virtual bool flush() = 0;
    // Flushes, then writes the summary.
    virtual void summary(const RunStats& stats) = 0;
};

// `comm-pid [cpu] seconds.micros: probe: name=value ...`
std::unique_ptr<Formatter> text_formatter(std::FILE* out, std::FILE* summary_out);
// One JSON object per line; the summary is a final {"summary": {...}} object.
std::unique_ptr<Formatter> json_formatter(std::FILE* out);

std::string format_value(const Value& v);

// An aggregation's table (include/ksurf/aggregate.h): as text (a title line, then a table
// largest first, or each key's histogram with bars, or --folded lines); as one JSON object
// on one line; as OpenMetrics text ending in `# EOF`. Each notes a full map.
struct AggTable;
std::string format_aggregate(const AggTable& t);
std::string format_aggregate_json(const AggTable& t);
std::string format_openmetrics(const AggTable& t);

}  // namespace ksurf
