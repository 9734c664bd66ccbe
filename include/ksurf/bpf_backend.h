// The BPF backend: skeleton instances attached to the kernel, all writing into one ring
// buffer that the host drains.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ksurf/events.h"
#include "ksurf/format.h"
#include "ksurf/tracefs.h"

namespace ksurf {

class BpfSession {
public:
    using Sink = std::function<void(const Event&)>;

    explicit BpfSession(Sink sink);
    ~BpfSession();
    BpfSession(const BpfSession&) = delete;
    BpfSession& operator=(const BpfSession&) = delete;

    // Loads and attaches a tracepoint program for FMT. Throws naming the probe and errno.
    void add_tracepoint(const tracefs::EventFormat& fmt);

    // Waits up to TIMEOUT_MS for events and hands each to the sink; false once interrupted.
    bool poll(int timeout_ms);

    // Counters summed over CPUs and programs; `events` counts what reached the sink.
    RunStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ksurf
