// The tracefs backend: planned probes become kprobe_events definitions and event filters
// in a private ftrace instance, `ksurf_<pid>`, whose binary per-CPU ring buffers are read
// back with libtracefs/libtraceevent. It runs where BPF cannot attach, and `-S` prints the
// same translation as a shell script that needs nothing but tracefs.
//
// What tracefs cannot do that BPF does, by design of kprobe_events:
// - Pid, Tid and Cpu are not fetch-args: they come from every record's header
//   (common_pid, the buffer's CPU) and filters compare `common_pid`. common_pid is the
//   thread id, so a `$pid` filter matches the threads whose id is that pid: the process's
//   main thread (all of a single-threaded process), not its other threads.
// - Packet headers are found relative to skb->data (kprobe_events cannot add two fetched
//   values, so skb->head + skb->network_header is out of reach): L3 = data, which is where
//   the IP header is on the receive path up to ip_rcv_finish; L2 = data - ETH_HLEN; L4 =
//   data + 20, an IPv4 header without options.
// - Filters count nothing: events the kernel discards are not reported (filtered unset).
// - A tracepoint's event holds its record only: a syscall's user string or a kernel variable
//   needs an event probe on it (5.15+); older kernels print the string's address.
// - Aggregations are hist triggers (CONFIG_HIST_TRIGGERS): hit counts and sums by key, and
//   `.log2` buckets that end at their power of two; no minimum, maximum or linear buckets,
//   and keys by thread, not process (a trigger records nothing that names the process).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/aggregate.h"
#include "ksurf/backend.h"
#include "ksurf/plan.h"
#include "ksurf/tracefs.h"

namespace ksurf::tracefs {

// The struct sk_buff offsets Base::Packet fetches need, from the kernel's BTF:
// `member(btf.find_type("struct sk_buff"), "data").offset`.
struct SkbLayout {
    std::int64_t data = -1;  // offsetof(struct sk_buff, data); -1: unknown
};

// What translation needs beyond the plan.
struct TranslateContext {
    std::string group;  // kprobe group: run_name(getpid())
    SkbLayout skb;
    // Formats of the e probes' tracepoints: they name the record fields filters compare.
    // Without its format, a record field is named by its PlannedField::name.
    std::vector<EventFormat> tracepoints;
    // An aggregating run's options: its probes become hist triggers (TracefsProbe::hist).
    const AggregateOptions* aggregate = nullptr;
    // The kernel has event probes (eprobes_available()): an e probe that reads more than its
    // record (a syscall's user string, a kernel variable) becomes one.
    bool eprobes = false;
};

// Where a printed field is in a record.
struct FieldSource {
    enum class Kind : std::uint8_t { Record, Comm, Pid, Tid, Cpu };

    Kind kind = Kind::Record;
    std::string name;       // Record: the event's field (kprobe fetch-arg or tracepoint field)
    std::size_t field = 0;  // index into PlannedProbe::fields
};

// One key of a hist trigger, in the order its hist file prints them.
struct HistKey {
    enum class Print : std::uint8_t { Number, String, Execname, Log2, Stack };

    Print print = Print::Number;
    FieldSource source;  // the ksurf key it is; Record for --hist's log2 bucket of the value
    bool shown = true;   // false: a placeholder key (hist triggers need one), merged away
};

// A probe's aggregation as a hist trigger (Documentation/trace/histogram.rst).
struct HistTrigger {
    std::string spec;            // "hist:keys=common_pid.execname:vals=hitcount:size=16384"
    std::vector<HistKey> keys;   // as the spec names them
    std::string value;           // the summed field (vals=) for --sum, --avg, --hist; "" for --count
    std::uint32_t size = 0;      // the map's entries: --map-size rounded up to a power of two

    // The line written to the event's trigger file: FILTER is the `if` clause, which (unlike
    // the event filter, tested after the triggers ran) decides what is aggregated.
    std::string line(const std::string& filter) const { return filter.empty() ? spec : spec + " if " + filter; }
};

// A hist file's entries, parsed for the trigger that made them.
struct HistEntry {
    std::vector<std::string> keys;    // per HistKey: the number, the string, the execname's
                                      // comm (its pid in `pid`), the log2 exponent; "" for Stack
    std::uint64_t pid = 0;            // an Execname key's common_pid
    std::vector<std::string> stack;   // "func+0x1a/0x90", innermost first
    std::uint64_t hits = 0;
    std::uint64_t value = 0;          // the sum of HistTrigger::value
};
struct HistFile {
    std::vector<HistEntry> entries;
    std::uint64_t dropped = 0;  // hits whose new key found the map full
};
// Throws a one-line Error when TEXT is not a hist file of TRIGGER's keys.
HistFile parse_hist(std::string_view text, const HistTrigger& trigger);

struct TracefsProbe {
    ProbeKind kind = ProbeKind::Entry;
    std::string system;   // the kprobe group, or the tracepoint's subsystem
    std::string event;    // "p0", "r1" (kind and index in the run), or the tracepoint
    std::string address;  // kprobes: "[MODULE:]FUNCTION[+OFFSET]"; uprobes: "PATH:0xFILEOFFSET"
    // An event probe's tracepoint, "SYSTEM.EVENT": then system/event name the dynamic event
    // ("e0") of the run's group that reads its record, and args are its fetch-args.
    std::string attached;
    bool uprobe = false;  // a P/R probe: defined in uprobe_events
    std::string args;     // kprobes: fetch-args, ending with `__comm=$comm` for the header
    std::string filter;   // the event filter; empty for none
    // The plan's printed fields, in order. Empty for an e probe that prints none: then
    // every field of the tracepoint is printed, as the BPF backend does.
    std::vector<FieldSource> fields;
    PacketPresence presence;  // printed packet names as filters test them
    // An aggregating run's hist trigger, which replaces the event's records.
    std::optional<HistTrigger> hist;

    // What this translation prints differently from the BPF backend, one line each.
    std::vector<std::string> notes;

    // "p:ksurf_42/p0 do_filp_open name=+0(+0(%si)):string __comm=$comm",
    // "e:ksurf_42/e1 syscalls.sys_enter_openat filename=+0($filename):ustring"; empty for
    // other e probes.
    std::string definition() const;
    // A kprobe, uprobe or event probe the run creates, in its group.
    bool dynamic() const { return kind != ProbeKind::Tracepoint || !attached.empty(); }
};

// The record offset of the pointer a tracepoint field F follows to a string in user memory
// (a syscall's `filename`), which tracefs prints as that pointer; nullopt for other fetches.
std::optional<std::int64_t> record_user_pointer(const Fetch& f);

// PROBE, the INDEX-th of its run, in tracefs terms. Pure: no tracefs access. Throws a
// one-line Error naming the probe for what kprobe_events or event filters cannot express.
TracefsProbe translate(const PlannedProbe& probe, std::size_t index, const TranslateContext& ctx);


// Whether the kernel has event probes (`e:` in dynamic_events, 5.15+, CONFIG_EPROBE_EVENTS).
bool eprobes_available();

// "ksurf_<pid>": the kprobe group and the instance of the run with PID.
std::string run_name(pid_t pid);
// The pid a run name carries; nullopt for any other name.
std::optional<pid_t> run_pid(std::string_view name);

struct StaleRun {
    pid_t pid = 0;
    bool instance = false;     // its instance was removed
    std::size_t kprobes = 0;   // kprobe events of its group removed
};
// Removes the instances and kprobe groups of runs whose process is gone or is no longer a
// ksurf (its pid reused), so the caller can say "removed stale probes from a killed run
// (pid N)". Mounts tracefs when needed; throws only when that fails.
std::vector<StaleRun> cleanup_stale();

}  // namespace ksurf::tracefs

namespace ksurf {

// What -s, -p and -c ask of the instance.
struct TracefsOptions {
    bool stacks = false;              // options/stacktrace: a kernel_stack record follows each event
    std::vector<std::uint32_t> pids;  // set_event_pid: the threads of these processes only
    bool follow_forks = false;        // options/event-fork: and the tasks they fork
    std::uint32_t buffer_kb = 0;      // --buffer-size: buffer_size_kb, per CPU; 0 keeps the kernel's
    bool exclude_self = false;        // drop events of this process's threads (as BpfOptions)
    const AggregateOptions* aggregate = nullptr;  // hist triggers rather than records
};

// A POSIX shell script that traces PROBES with tracefs alone: it creates an instance and the
// kprobes (group and instance `ksurf_sh_<shell pid>`, which cleanup_stale() leaves alone),
// sets the filters and what RUN asks of the instance (-p's threads as they are now, -s,
// --buffer-size), enables the events, cats trace_pipe, and removes everything on exit.
namespace tracefs {
std::string script(std::span<const PlannedProbe> probes, const TranslateContext& ctx, const TracefsOptions& run = {});
}  // namespace tracefs

class TracefsBackend : public Backend {
public:
    // An aggregating run's table now: every probe's hist file read, parsed and merged by
    // ksurf's keys (cumulative since the start, as the BPF maps are).
    virtual AggTable aggregate(const std::vector<PlannedProbe>& plans) = 0;
};

// Throws when tracefs cannot be mounted or the instance cannot be created.
std::unique_ptr<TracefsBackend> make_tracefs_backend(Backend::Sink sink, tracefs::SkbLayout skb = {},
                                              TracefsOptions options = {});

}  // namespace ksurf
