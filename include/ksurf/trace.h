// The trace command: probe text → parse → resolve → choose a backend → run → format.
#pragma once

#include <string>
#include <vector>

namespace ksurf {

struct TraceOptions {
    std::vector<std::string> probes;
    std::string probe_file;   // -f: one probe per line
    double duration = 0;      // -d: seconds; 0 runs until a signal
    bool json = false;
    bool verbose = false;
    std::string backend = "auto";
    std::string btf_file;     // --btf: instead of /sys/kernel/btf
    bool script = false;      // -S: print the tracefs translation, attach nothing
    std::string script_file;  // -o: write that translation as a shell script
};

int run_trace(const TraceOptions& opt);

}  // namespace ksurf
