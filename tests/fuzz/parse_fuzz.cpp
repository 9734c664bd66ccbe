// libFuzzer target for the probe language: every input is parsed as one probe, as a probe
// file and as a filter, and what parses is resolved against the resolver's fixture BTF and
// the unit tests' tracepoint formats. Only ksurf::Error may escape the pipeline: anything
// else (a crash, a sanitizer report, another exception) is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../unit/formats.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/kallsyms.h"
#include "ksurf/parse.h"
#include "ksurf/resolve.h"

namespace {

using namespace ksurf;

tracefs::EventFormat fixture_format(std::string_view subsys, std::string_view event) {
    if (subsys == "sched" && event == "sched_process_exec")
        return tracefs::parse_format(subsys, event, test::kExecFormat);
    if (subsys == "sched" && event == "sched_switch") return tracefs::parse_format(subsys, event, test::kSwitchFormat);
    fail("tracepoint '{}/{}' not found", subsys, event);
}

// Kernel symbols for caller filters and @VAR: functions, variables of the fixture's BTF
// (typed, per-CPU), an untyped one, two statics sharing a name, a module's.
const Kallsyms& symbols() {
    static const Kallsyms syms = Kallsyms::parse(
        "ffffffff81000000 T rs_open\nffffffff81000100 T rs_read\nffffffff82000000 D rs_current\n"
        "ffffffff82000100 D rs_per_cpu\nffffffff82000200 D jiffies\nffffffff82000300 d twice\n"
        "ffffffff82000400 d twice\nffffffffc0001000 b rs_mod_var\t[rsmod]\n",
        {}, true);
    return syms;
}

const ResolveContext& context() {
    static const Btf btf = Btf::from_file(KSURF_RESOLVE_FIXTURE);
    static const ResolveContext ctx{btf,
                                    fixture_format,
                                    [] {
                                        return std::vector<std::string>{"rs_open", "rs_read", "rs_close", "rs_noargs",
                                                                        "rs_fill", "rs_open.isra.0", "rs_fill [rsmod]"};
                                    },
                                    {},
                                    symbols};
    return ctx;
}

// Errors are expected; rendering them must be safe too.
template <typename F>
void expect_only_errors(F&& f) {
    try {
        f();
    } catch (const SourceError& e) {
        (void)e.render();
    } catch (const Error&) {
    }
}

// A P/R target is a file to read: the fuzzer reads only its own, whatever path the input
// names, so that no input makes it parse /proc/kcore.
void resolve_fuzzed(Probe probe) {
    if (!probe.target.binary.empty()) probe.target.binary = "/proc/self/exe";
    (void)resolve_all(probe, context());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    expect_only_errors([&] {
        resolve_fuzzed(parse_probe(text));
    });
    expect_only_errors([&] {
        for (auto& probe : parse_probe_file(text, "fuzz.probes")) resolve_fuzzed(std::move(probe));
    });
    expect_only_errors([&] { (void)parse_filter(text); });
    return 0;
}
