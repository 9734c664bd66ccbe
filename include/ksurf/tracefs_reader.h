// The one reader of ftrace's per-CPU ring buffers: the tracefs backend reads its private
// instance through it, graph's function_graph fallback the top level. It drains the
// buffers in binary with libtracefs (libtraceevent parses the record headers), names the
// threads records come from, and counts what the buffers lost. What a record holds is the
// caller's to read, at the offsets of its event's format file (EventFormat).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ksurf/tracefs.h"

struct tep_event;
struct tep_handle;
struct tep_record;
struct tracefs_instance;

namespace ksurf::tracefs {

struct Record {
    std::uint32_t id = 0;                 // its event's: the format file's ID
    std::uint64_t ts_ns = 0;              // in the instance's trace_clock
    std::uint32_t tid = 0;                // common_pid: a thread
    std::uint32_t cpu = 0;
    std::uint8_t flags = 0;               // common_flags: the context it was written in
    std::span<const std::uint8_t> data;   // from common_type on, as the format's offsets count

    // The SIZE bytes at OFFSET, little-endian (x86_64), 8 at the most; nullopt when they run
    // past the record.
    std::optional<std::uint64_t> number(std::uint32_t offset, std::uint32_t size) const;
    std::optional<std::uint64_t> number(const Field& f) const { return number(f.offset, f.size); }
};

// Who a thread is: a record names only its id.
struct Task {
    std::string comm;
    std::uint32_t tgid = 0;  // 0: unknown
};

class Reader {
public:
    using OnRecord = std::function<void(const Record&)>;

    // Reads the per-CPU buffers of INSTANCE ("" for the top level) of the tracefs mounted at
    // ROOT: records of EVENTS go to ON_RECORD in time order, others are passed over. AFTER_PASS,
    // when given, runs once a pass has read all there was (a record left waiting for the one
    // after it will not get it in this pass).
    Reader(std::string root, const std::string& instance, const std::vector<const EventFormat*>& events, OnRecord on_record,
           std::function<void()> after_pass = {});
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    // Reads all there is, then, when that was nothing, waits up to TIMEOUT_MS and reads
    // again: tracefs has no readiness notification that also covers partly filled pages, so
    // a busy trace never sleeps and a quiet one is read every TIMEOUT_MS. False when a
    // signal interrupted the wait. What ON_RECORD throws comes out of here.
    bool poll(int timeout_ms);

    // Records lost while a buffer was full: overwritten (overrun), never written (dropped
    // events) or lost to nested writers (commit overrun), over every CPU.
    std::uint64_t dropped() const;

    // Thread TID: from /proc while it lives, else from what ftrace saved when it last ran
    // (saved_cmdlines, and saved_tgids where options/record-tgid is set). Each pass asks
    // again: a tid may have exec'd or been reused since.
    const Task& task(std::uint32_t tid);

private:
    struct TepFree {
        void operator()(tep_handle* t) const;
    };
    struct InstanceFree {
        void operator()(tracefs_instance* i) const;
    };

    std::size_t drain();
    static int on_raw(tep_event* event, tep_record* record, int cpu, void* self);
    Task lookup(std::uint32_t tid);
    void load_saved();

    std::string root_, dir_;  // dir_: the instance's, where per_cpu/ is
    std::unique_ptr<tep_handle, TepFree> tep_;
    std::unique_ptr<tracefs_instance, InstanceFree> instance_;  // null: the top level
    OnRecord on_record_;
    std::function<void()> after_pass_;
    std::size_t read_ = 0;
    std::exception_ptr error_;  // thrown by ON_RECORD, held while libtracefs's frames unwind
    std::unordered_map<std::uint32_t, Task> tasks_;
    bool saved_loaded_ = false;
    std::unordered_map<std::uint32_t, std::string> saved_comm_;
    std::unordered_map<std::uint32_t, std::uint32_t> saved_tgid_;
};

}  // namespace ksurf::tracefs
