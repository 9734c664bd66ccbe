// What every backend (bpf, tracefs) offers the run loop: attach planned probes, hand
// decoded events to a sink, count what was filtered and dropped, and detach completely
// when destroyed.
#pragma once

#include <functional>

#include "ksurf/events.h"
#include "ksurf/format.h"
#include "ksurf/plan.h"

namespace ksurf {

class Backend {
public:
    using Sink = std::function<void(const Event&)>;

    virtual ~Backend() = default;
    // Prepares PROBE; throws a one-line Error naming the probe when the kernel refuses it.
    virtual void add(const PlannedProbe& probe) = 0;
    // Starts delivering events for every added probe.
    virtual void start() = 0;
    // Waits up to TIMEOUT_MS, handing each event to the sink; false once interrupted.
    virtual bool poll(int timeout_ms) = 0;
    virtual RunStats stats() const = 0;
};

}  // namespace ksurf
