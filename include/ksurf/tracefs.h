// tracefs: where it is mounted, and the tracepoint `format` files that describe each
// event's record layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksurf::tracefs {

// The mounted tracefs, if any.
std::optional<std::string> find_mount();

// The mounted tracefs, mounting it at /sys/kernel/tracing when it is not. `mounted_now` is
// set when this call did the mount. Throws naming the mount error.
std::string root(bool* mounted_now = nullptr);

// The lines of available_filter_functions ("tcp_v4_rcv", "nf_hook [nf_tables]"): what
// ftrace, kprobes and kprobe.multi can attach to. Empty when the kernel will not list them
// (not root, lockdown, no tracefs); then WHY_NOT, when given, says why.
std::vector<std::string> available_filter_functions(std::string* why_not = nullptr);

// The tracepoints under ROOT's events/ as "system/event", sorted. Empty when the directory
// cannot be read; then WHY_NOT, when given, says why.
std::vector<std::string> events(const std::string& root, std::string* why_not = nullptr);

// The thread ids of process PID now: tracefs pid filters (set_event_pid, set_ftrace_pid)
// match threads. Throws when there is no such process.
std::vector<std::string> threads_of(std::uint32_t pid);

struct Field {
    std::string type;       // C type as the kernel wrote it, e.g. "pid_t", "char[16]"
    std::string name;
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
    bool is_signed = false;
    bool data_loc = false;  // __data_loc: u32 (len << 16 | offset from record start)
    bool rel_loc = false;   // __rel_loc: like data_loc, offset from the end of this field
    bool is_string() const; // char arrays and dynamic char strings
    bool is_pointer() const;
    bool is_common() const { return name.starts_with("common_"); }
};

struct EventFormat {
    std::string system;
    std::string name;
    std::uint32_t id = 0;
    std::vector<Field> fields;

    const Field* field(std::string_view name) const;
    bool has_dynamic() const;
    std::uint32_t fixed_size() const;  // end of the last fixed field
};

EventFormat parse_format(std::string_view system, std::string_view name, std::string_view text);

// Reads events/SYSTEM/EVENT/format under `root`; throws "tracepoint 'a/b' not found" (with
// a near name when there is one) when the event does not exist.
EventFormat read_format(const std::string& root, std::string_view system, std::string_view event);

}  // namespace ksurf::tracefs
