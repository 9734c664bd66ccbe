// `ksurf graph ROOT`: call graphs under ROOT, recorded in the kernel only for the calls whose
// predicate holds. Three parts: which functions to trace (ROOT's callees, found by decoding
// its machine code), the recorder (bpf/graph.bpf.c and its loader), and the graphs the
// host rebuilds from the recorder's records.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/bpf_backend.h"
#include "ksurf/cli.h"
#include "ksurf/events.h"
#include "ksurf/graph_record.h"

namespace ksurf {

class Btf;
class Features;
class Kallsyms;
struct PlannedProbe;

// ---- Callees (src/graph/callees.cpp) ----

// Targets of the direct calls and jumps in CODE, x86-64 machine code loaded at ADDR, in
// order of appearance and without duplicates; jumps inside CODE are left out.
std::vector<std::uint64_t> call_targets(std::span<const std::uint8_t> code, std::uint64_t addr);

// Kernel text read from /proc/kcore (root; lockdown=confidentiality refuses it).
class KernelText {
public:
    static KernelText open(const std::string& path = "/proc/kcore");
    KernelText(KernelText&&) noexcept;
    ~KernelText();
    // LEN bytes at kernel address ADDR; throws when no segment of the core holds them.
    std::vector<std::uint8_t> read(std::uint64_t addr, std::size_t len) const;

private:
    struct Segment {
        std::uint64_t vaddr, size, offset;
    };
    KernelText() = default;
    int fd_ = -1;
    std::vector<Segment> segments_;
};

// -F: the instructions of the kernel function(s) named NAME as the core file KCORE holds
// them (patched alternatives and static calls included), one line each, "vfs_read+0x4:
// push rbp", the offsets `p FUNC+OFF` takes; a function of several copies gets a header
// line per copy.
std::vector<std::string> disassemble(const std::string& name, const Kallsyms& syms,
                                     const std::string& kcore = "/proc/kcore");

// Why ksurf does not trace NAME in a graph: the tracer's own path (BPF, RCU, preemption,
// locking primitives, ftrace), where a probe would recurse or be refused; nullopt if it may.
std::optional<std::string> untraceable(std::string_view name);

struct CalleeSet {
    std::vector<std::string> functions;  // to trace, without ROOT, sorted
    // Found but skipped, with the reason ("notrace", "ksurf's own path", ...).
    std::vector<std::pair<std::string, std::string>> skipped;
};

// ROOT's callees to DEPTH levels (0: none), found by decoding each level's code, merged with
// the functions GLOBS match in FILTER_FUNCTIONS (available_filter_functions lines); only
// functions in that list are kept. TEXT is needed when DEPTH is not 0.
CalleeSet find_callees(const std::string& root, unsigned depth, const std::vector<std::string>& globs,
                       const Kallsyms& syms, const std::optional<KernelText>& text,
                       const std::vector<std::string>& filter_functions);

// ---- Graphs (src/graph/tree.cpp) ----

struct GraphCall {
    std::uint32_t func = 0;
    std::uint64_t entry_ns = 0, exit_ns = 0;
    bool returned = false;  // false: still running when ROOT returned, or its exit was lost
    std::vector<GraphCall> calls;
};

struct Graph {
    std::uint32_t id = 0;
    std::uint8_t context = KSURF_CTX_TASK;
    std::uint64_t start_ns = 0, end_ns = 0;
    std::optional<std::uint64_t> retval;  // ROOT's; nullopt where the backend cannot read it
    Event root;              // who, where, and ROOT's fields (its args)
    std::vector<GraphCall> calls;
    unsigned mismatched = 0;  // records that did not nest (lost ones, or a bug): 0 normally
};

std::string_view context_name(std::uint8_t context);  // "task", "softirq", ...

// Assembles each recording's records, in ring buffer order, into a Graph.
class GraphBuilder {
public:
    // The graph REC completes (a CLOSE), else nullopt.
    std::optional<Graph> add(const ksurf_graph_rec& rec);
    // The OPEN's event: ROOT's fields, comm, pid. Its probe_id is the graph id.
    void add_root_event(const Event& ev, std::uint32_t graph);
    std::size_t open() const { return open_.size(); }

private:
    struct Building {
        Graph g;
        std::vector<GraphCall*> stack;  // open calls, outermost first
    };
    std::vector<std::unique_ptr<Building>> open_;
    Building* find(std::uint32_t graph);
};

// function_graph-like text: a header line, then one line per call with its duration.
// NAMES: function names by index (0 is ROOT).
std::string format_graph(const Graph& g, const std::vector<std::string>& names);
// One JSON object on one line.
std::string graph_json(const Graph& g, const std::vector<std::string>& names);

// ---- The recorder (src/graph/recorder.cpp) ----

struct RecorderOptions {
    FunctionAttach attach = FunctionAttach::Auto;  // of the callees; ROOT takes fentry, else kprobes
    Features* features = nullptr;                  // borrowed, required
    const Btf* btf = nullptr;                      // borrowed, required
    const Kallsyms* syms = nullptr;                // borrowed, required: loaded with kPreemptCountSymbols
    ksurf_graph_config config{};                   // sample, max, max_depth
    std::function<void(const std::string&)> note;  // attach progress and choices, for stderr
};

struct RecorderStats {
    std::uint64_t root_hits = 0, filtered = 0;     // ROOT calls; those the predicate rejected
    std::uint64_t counts[KSURF_GCOUNT_MAX] = {};   // enum ksurf_graph_count
    std::uint64_t dropped = 0;                     // records lost: ring buffer full
};

class GraphRecorder {
public:
    virtual ~GraphRecorder() = default;
    // Attaches the callees, then ROOT (so the first recordings are whole). Callees that
    // cannot be attached are skipped and reported through `note`.
    virtual void attach() = 0;
    virtual std::size_t attached() const = 0;  // callee functions, ROOT not counted
    virtual std::vector<std::pair<std::string, std::string>> failed() const = 0;  // callee, why
    virtual bool poll(int timeout_ms) = 0;     // false on EINTR
    virtual RecorderStats stats() const = 0;
    virtual const std::vector<std::string>& names() const = 0;  // 0: ROOT, then the callees
};

// Where CONFIG's programs read preempt_count on a kernel whose BTF has no per-CPU
// variables (Debian's 5.10): the kallsyms addresses of these, from SYMS loaded with them.
inline const std::vector<std::string> kPreemptCountSymbols{"__preempt_count", "__per_cpu_offset"};
void find_preempt_count(ksurf_graph_config& config, const Kallsyms& syms);

// ROOT (a resolved p probe: its fields are printed, its filter is the predicate) and the
// CALLEES to record under it; ON_GRAPH gets every completed graph.
std::unique_ptr<GraphRecorder> make_graph_recorder(const PlannedProbe& root, const std::vector<std::string>& callees,
                                                   RecorderOptions opt, std::function<void(const Graph&)> on_graph);

// ---- The tracefs fallback (src/graph/function_graph.cpp) ----

// ftrace's function_graph tracer in the top-level tracefs instance: set_graph_function
// (ROOT) is a global of the kernel, instances or not, so one run at a time. The run
// saves what it changes in /run/ksurf/function_graph (with its pid) before changing it,
// and puts it back on exit; a run that finds the file of a dead run restores from it.
// It refuses to start while current_tracer is not nop or another run holds the file.
struct FunctionGraphOptions {
    std::vector<std::uint32_t> pids;  // set_ftrace_pid: the threads of these processes
    ksurf_graph_config config{};      // sample, max_depth (max is the caller's)
    const Kallsyms* syms = nullptr;   // borrowed, required: record addresses to functions
    std::function<void(const std::string&)> note;
};

// ROOT and the CALLEES to record under it (all in available_filter_functions), where the
// kernel has the function_graph tracer (Feature::FunctionGraph); records are
// rebuilt per thread (per CPU in interrupt context) from funcgraph_entry/funcgraph_exit
// into the same Graph as BPF's.
std::unique_ptr<GraphRecorder> make_function_graph_recorder(const std::string& root, const std::vector<std::string>& callees,
                                                            FunctionGraphOptions opt, std::function<void(const Graph&)> on_graph);

// ---- The command (src/cli/graph.cpp) ----

struct GraphOptions {
    std::string root;                // FUNC, or a probe `p FUNC [fields] [f:FILTER]`
    std::string where;               // filter, ANDed with the probe's own
    std::string pcap;                // tcpdump expression over ROOT's sk_buff
    std::vector<std::string> funcs;  // globs
    unsigned depth = 1;
    std::uint64_t max = 0;
    unsigned sample = 1;             // --sample 1/N: N
    std::uint64_t min_duration_ns = 0;
    FunctionAttach attach = FunctionAttach::Auto;  // of the callees
};

// The `graph` subcommand and its options, parsed into OPT.
CLI::App* add_graph_command(CLI::App& app, GraphOptions& opt);
int run_graph(const CommonOptions& common, const GraphOptions& opt);
// `ksurf -F FUNC`: disassemble() of the running kernel, to stdout.
int run_disassemble(const std::string& function);

// "1/N" → N. Throws on anything else.
unsigned parse_sample(std::string_view text);

}  // namespace ksurf
