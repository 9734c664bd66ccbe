// The trace command: probe text → parse → resolve → choose a backend → run → format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ksurf/cli.h"

namespace ksurf {

struct TraceOptions : CommonOptions {
    std::vector<std::string> probes;
    std::string probe_file;   // -f: one probe per line
    bool script = false;      // -S: print the tracefs translation, attach nothing
    std::string disassemble;  // -F FUNC: print FUNC's instructions with their offsets, trace nothing
    std::string script_file;  // -o: write that translation as a shell script
    bool stacks = false;      // -s: each event's kernel stack
    std::vector<std::string> command;  // -c: start it, trace it and what it forks, end with it
    std::string cgroup;       // --cgroup: only tasks in this cgroup v2 (BPF only)
    std::string pcap;         // --pcap: tcpdump expression over each probe's sk_buff (BPF only)
    std::string pcap_file;    // -w: matched packets to this pcapng file (BPF only)
    std::uint32_t snaplen = 256;  // -w: bytes kept per packet, from the network header
    std::string user;         // --user: who the run continues as once attached (BPF), and -c runs as
    bool include_self = false;  // --include-self: ksurf's own events are traced too
    bool count_filtered = false;  // --count-filtered: the summary counts rejected hits (BPF)
    AggregateOptions agg;     // --count, --sum, --hist...: aggregate in the kernel, print tables
};

int run_trace(const TraceOptions& opt);

}  // namespace ksurf
