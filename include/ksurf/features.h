// What the running kernel lets ksurf do, found by really loading, creating or attaching
// something (never by comparing version numbers). Probed lazily and cached, so a run
// pays only for the features its probes need.
#pragma once

#include <array>
#include <memory>
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
    Uprobe,        // BPF on user-space functions (P/R) through the uprobe PMU
    UprobeEvents,  // tracefs uprobe_events
    HistTriggers,
    Count_,
};

struct FeatureStatus {
    bool ok = false;
    std::string reason;  // why not, or where/how it was found
};

std::string_view feature_name(Feature f);

class Btf;

class Features {
public:
    // BTF (borrowed; loaded on first need when null) names the targets of the trial
    // fentry and tp_btf programs: the run's own, so that it is parsed once.
    explicit Features(const Btf* btf = nullptr);
    ~Features();
    Features(const Features&) = delete;
    Features& operator=(const Features&) = delete;
    // The run's BTF, once it has one: later probes use it rather than loading their own.
    void use_btf(const Btf& btf) { btf_ = &btf; }

    const FeatureStatus& get(Feature f);
    bool has(Feature f) { return get(f).ok; }

private:
    FeatureStatus probe(Feature f);
    const Btf& btf();

    const Btf* btf_;
    std::unique_ptr<Btf> own_btf_;
    std::array<std::optional<FeatureStatus>, static_cast<std::size_t>(Feature::Count_)> cache_;
};

}  // namespace ksurf
