// Output: ftrace-like text lines or JSON lines, and the summary at exit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>

#include "ksurf/events.h"

namespace ksurf {

struct RunStats {
    std::uint64_t events = 0;    // printed
    std::uint64_t filtered = 0;  // rejected in the kernel
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

}  // namespace ksurf
