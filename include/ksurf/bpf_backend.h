// The BPF backend: every PlannedProbe becomes one instance of bpf/probe.bpf.c, whose rodata
// holds the probe encoded as a ksurf_config (include/ksurf/bpf_config.h): the fields are
// fetched and the filter is evaluated in the kernel, and only events that pass reach the
// ring buffer shared by all instances.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/attach.h"
#include "ksurf/backend.h"
#include "ksurf/bpf_config.h"
#include "ksurf/plan.h"

namespace ksurf {

class Btf;
class Features;
struct Function;


// ---- Encoding: PlannedProbe → ksurf_config (pure; no kernel) ----

// Where the program's context keeps what Arg, Reg and Retval fetch.
struct BpfFrame {
    BpfAttach attach = BpfAttach::Tracepoint;
    // fentry/fexit, tp_btf, raw_tp: the u64 slot of each parameter in the context (a struct passed by
    // value takes one slot per 8 bytes) and of the return value (fexit). kprobes: the
    // calling-convention slot of each parameter (0..5 in registers, then the stack).
    // Without them, parameter i is slot i.
    std::vector<unsigned> arg_slots;
    unsigned ret_slot = 0;
    // kprobes: offsetof(struct pt_regs, NAME) by kprobe register name ("di", "ax", "ip").
    std::map<std::string, std::int32_t, std::less<>> regs;
    // e probes printed whole (no visible field): bytes of the raw record to copy.
    std::uint32_t record_size = 0;
};

// Both from the kernel's BTF: pt_regs offsets, and FN's argument slots.
std::map<std::string, std::int32_t, std::less<>> pt_regs_offsets(const Btf& btf);
void set_arg_slots(BpfFrame& frame, const Function& fn);

// How one printed field sits in the payload.
struct BpfOutput {
    enum class Kind : std::uint8_t { Number, String, Bytes };

    std::string name;
    Kind kind = Kind::Number;
    std::uint16_t at = 0;    // payload offset
    std::uint16_t size = 8;  // bytes reserved
    bool is_signed = false;
    unsigned bits = 64;      // of the value, for swap_bits
    unsigned swap_bits = 0;
    Display display = Display::Decimal;
};

struct BpfProgramSpec {
    ksurf_config config{};            // probe_id is set per instance
    std::vector<BpfOutput> outputs;   // the plan's visible fields, in order
    std::vector<BpfOutput> key_outputs;  // an aggregation's key fields, in key order
    bool raw_record = false;          // the payload ends with the record (config.record_out)
    PacketPresence presence;          // decode_bpf() prints packet names as filters test them
};

// The payload bytes field F takes, as encode_bpf() lays it out: an aggregation's key is
// made of them (each rounded up to 8 bytes), and its length is the run's, not the probe's.
std::uint16_t bpf_payload_bytes(const PlannedField& f);
// The u64 buckets of an aggregation's value (66 for log2, the steps + 2 for linear).
std::size_t agg_buckets(const PlannedAggregate& a);

// Throws a one-line Error naming PROBE when FRAME cannot run it or it exceeds the limits of
// bpf_config.h.
BpfProgramSpec encode_bpf(const PlannedProbe& probe, const BpfFrame& frame);
// --pcap's PROGRAM (from EXPR) into C's classic BPF slots; throws when it does not fit.
void encode_cbpf(const std::vector<CbpfInsn>& program, std::string_view expr, ksurf_config& c);

// The offsets of the kernel structures the BPF programs read (ksurf_layout), from BTF.
ksurf_layout kernel_layout(const Btf& btf);

// The visible fields of one event's PAYLOAD (without the raw record).
std::vector<FieldValue> decode_bpf(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload);
// The same into OUT, whose storage a reader reuses from one event to the next.
void decode_bpf(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload, std::vector<FieldValue>& out);

// -w: EV's packet and sk_buff from PAYLOAD, when SPEC copies packets.
void decode_bpf_packet(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload, Event& ev);

// ---- The backend ----

// Which program type runs function (p/r) probes. e probes run on tp_btf (then raw_tp) when
// their fields are TP_PROTO arguments, else on the classic tracepoint.
enum class FunctionAttach : std::uint8_t {
    Auto,         // fentry/fexit where the kernel and the probe allow, else kprobes
    Fentry,
    Kprobe,       // one kprobe per function
    KprobeMulti,  // one kprobe.multi link per group of functions sharing a spec
};

struct BpfOptions {
    FunctionAttach attach = FunctionAttach::Auto;
    Features* features = nullptr;  // borrowed; the backend probes its own when null
    const Btf* btf = nullptr;      // borrowed; kernel BTF is loaded when null
    std::uint32_t ringbuf_bytes = 1u << 20;  // 2 MiB of RSS, mapped twice: ample when the reader keeps up
    bool stacks = false;              // -s: every event carries its kernel stack, symbolized
    // Who is traced, decided in the kernel before any field is fetched: these processes
    // (threads included; -p, -c), also the processes they fork when follow_forks (-c), and
    // only tasks in the cgroup v2 with this id (--cgroup).
    std::vector<std::uint32_t> pids;
    bool follow_forks = false;
    std::uint64_t cgroup_id = 0;
    // ksurf's own process is not traced (its reads and writes would feed the trace): the
    // trace command's default, which --include-self turns off; a library user tracing its
    // own calls leaves it off.
    bool exclude_self = false;
    // --count-filtered: the summary counts the hits filters reject (RunStats::filtered).
    bool count_filtered = false;
    // Aggregating (the probes' PlannedAggregate): the aggs map's key bytes, u64 buckets per
    // value and maximum keys. No events are sent.
    struct Aggregate {
        std::uint16_t key_len = 8;
        std::size_t nbuckets = 0;
        std::uint32_t max_keys = 10240;
        bool stacks = false;  // `stack` keys: the stack map gets max_keys entries too
    };
    std::optional<Aggregate> aggregate;
    // Called once per probe when its attach type is decided (for -v): "p vfs_open: kprobe
    // (fentry: program load refused: ...)".
    std::function<void(const std::string&)> explain;
};

// What the backend chose for one probe.
struct BpfAttachment {
    std::string probe;  // "p vfs_open", "e sched/sched_process_exec"
    BpfAttach attach = BpfAttach::Tracepoint;
    std::string why;    // why not the better attach types; empty when the best one runs it
};

// The aggregation maps of a BPF object (bpf/agg.bpf.h), as A's keys and values need them,
// before the object is loaded: the stack map holds one stack per key at most.
void size_aggregate_map(bpf_map* m, const BpfOptions::Aggregate& a);

// Where an aggregating run's values are, for src/aggregate to read.
struct BpfAggregateMaps {
    int values = -1;                 // aggs: key → per-CPU struct ksurf_agg_value
    int stacks = -1;                 // agg_stacks: stack id → return addresses
    std::vector<BpfOutput> key;      // the first probe's key fields
    std::uint16_t stack_at = 0;      // and where its key holds the stack id
    std::uint64_t full = 0;          // new keys refused by the full map, summed over CPUs
};

class BpfBackend : public Backend {
public:
    // In add() order; kprobes grouped for kprobe.multi are decided in start().
    virtual const std::vector<BpfAttachment>& attachments() const = 0;
    virtual BpfAggregateMaps aggregate_maps() const = 0;
};

// Throws when the shared maps cannot be created (no BPF, no ring buffer).
std::unique_ptr<BpfBackend> make_bpf_backend(Backend::Sink sink, BpfOptions options = {});

}  // namespace ksurf
