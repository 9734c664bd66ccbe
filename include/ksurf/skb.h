// `ksurf skb`: the path of each packet through the kernel. Every traceable function taking
// a struct sk_buff * is probed (bpf/skb.bpf.c); a packet --pcap accepts once is followed by
// its skb's address, through clones, until the skb is freed. Three parts: which functions
// (from BTF), the tracer that attaches and reads records, and the lines it prints.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ksurf/cli.h"
#include "ksurf/plan.h"
#include "ksurf/skb_record.h"

namespace ksurf {

class Btf;
class Features;
class Kallsyms;

// ---- Functions (src/skb/functions.cpp) ----

// How a return value prints, from the function's BTF return type.
enum class SkbReturn : std::uint8_t { Void, Signed, Unsigned, Pointer };

struct SkbFunction {
    std::string name;
    unsigned arg = 0;  // the first struct sk_buff * parameter
    SkbReturn ret = SkbReturn::Signed;
};

struct SkbFunctions {
    std::vector<SkbFunction> functions;  // sorted by name
    std::vector<std::pair<std::string, std::string>> skipped;  // name, why
    std::vector<std::string> frees;  // the kSkbFreeFunctions the kernel can trace
};

// Where a followed skb's memory goes back: the path ends there (probed apart from the
// others, and only those the kernel has).
inline constexpr const char* kSkbFreeFunctions[] = {"kfree_skbmem", "kfree_skb_partial", "napi_skb_cache_put",
                                                    "__kfree_skb_defer"};
inline constexpr const char* kSkbCloneFunction = "skb_clone";

// The functions of BTF (vmlinux and modules) with a struct sk_buff * among their first five
// parameters that ftrace can trace (TRACEABLE: available_filter_functions lines), those
// GLOBS match when there are any; ksurf's own path, and the free and clone functions,
// which have their own programs, are left out (the traceable free ones go to `frees`).
SkbFunctions find_skb_functions(const Btf& btf, const std::vector<std::string>& traceable,
                                const std::vector<std::string>& globs);

// ---- Packets (src/skb/packet.cpp) ----

// What NET, the bytes from a network header, holds: "TCP 10.0.0.1:5000 > 10.0.0.2:80 [S.]",
// "ICMP 127.0.0.1 > 127.0.0.1 echo-request", "UDP [::1]:53 > [::1]:4000"; "" when it is not
// an IP packet (no network header yet).
std::string describe_packet(std::span<const std::uint8_t> net);

// Packet numbers: 1, 2, ... in the order packets first match; a clone is its original's
// packet. A freed skb keeps its number until its address matches again: the returns of
// the calls that freed it come after the free.
class PacketNumbers {
public:
    // REC's packet number (0: an skb followed from before this run's records).
    std::uint64_t on(const ksurf_skb_rec& rec);
    std::uint64_t count() const { return next_ - 1; }

private:
    std::map<std::uint64_t, std::uint64_t> by_skb_;
    std::uint64_t next_ = 1;
};

// One line of the path of PACKET: REC in FUNCTION, which returns RET, as text, or as one
// JSON object.
std::string format_skb_record(const ksurf_skb_rec& rec, std::uint64_t packet, std::string_view function, SkbReturn ret);
std::string skb_record_json(const ksurf_skb_rec& rec, std::uint64_t packet, std::string_view function, SkbReturn ret);

// ---- The tracer (src/skb/tracer.cpp) ----

enum class SkbAttach { Auto, Kprobe, KprobeMulti };

struct SkbTracerOptions {
    SkbAttach attach = SkbAttach::Auto;
    bool returns = true;                 // kretprobe.multi on the non-void functions, where there is one
    std::string pcap;                    // tcpdump expression; empty: every packet
    Features* features = nullptr;        // borrowed, required
    const Btf* btf = nullptr;            // borrowed, required: the offsets the programs read
    std::function<void(const std::string&)> note;  // attach progress and choices
};

struct SkbStats {
    std::uint64_t hits = 0, matched = 0, dropped = 0;
};

class SkbTracer {
public:
    virtual ~SkbTracer() = default;
    // Attaches the functions; those that cannot be are skipped and listed by failed(). The
    // kernel must have kprobes (the clone and free probes are kprobes in every mode).
    virtual void attach(const SkbFunctions& functions) = 0;
    virtual std::size_t attached() const = 0;
    virtual std::vector<std::pair<std::string, std::string>> failed() const = 0;
    virtual bool returns() const = 0;      // whether RETURN records come
    virtual bool poll(int timeout_ms) = 0;  // false on EINTR
    virtual SkbStats stats() const = 0;
};

std::unique_ptr<SkbTracer> make_skb_tracer(SkbTracerOptions opt, std::function<void(const ksurf_skb_rec&)> on_record);

// ---- The command (src/cli/skb.cpp) ----

struct SkbOptions {
    std::string pcap;
    std::vector<std::string> funcs;  // globs restricting the functions
    bool returns = true;
    SkbAttach attach = SkbAttach::Auto;
};

// The `skb` subcommand and its options, parsed into OPT.
CLI::App* add_skb_command(CLI::App& app, SkbOptions& opt);
int run_skb(const CommonOptions& common, const SkbOptions& opt);

}  // namespace ksurf
