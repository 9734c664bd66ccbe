// What the running kernel lets ksurf do, found by really loading, creating or attaching
// something (never by comparing version numbers). Probed lazily and cached, so a run
// pays only for the features its probes need.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace ksurf {

enum class Feature {
    Btf,
    Bpf,
    Ringbuf,
    Tracepoint,
    RawTp,
    TpBtf,
    Fentry,
    Fexit,
    Kprobe,
    KprobeMulti,
    Tracefs,
    KprobeEvents,
    FunctionGraph,
    Count_,
};

struct FeatureStatus {
    bool ok = false;
    std::string reason;  // why not, or where/how it was found
};

std::string_view feature_name(Feature f);

class Features {
public:
    const FeatureStatus& get(Feature f);
    bool has(Feature f) { return get(f).ok; }

private:
    FeatureStatus probe(Feature f);
    std::array<std::optional<FeatureStatus>, static_cast<std::size_t>(Feature::Count_)> cache_;
};

}  // namespace ksurf
