#include "ksurf/backend_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "ksurf/cli.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

// The first feature of NEEDED the kernel lacks, as "name: reason"; nullopt when all are there.
std::optional<std::string> missing(const FeatureQuery& has, std::initializer_list<Feature> needed) {
    for (Feature f : needed)
        if (const auto& st = has(f); !st.ok) return fmt::format("{}: {}", feature_name(f), st.reason);
    return std::nullopt;
}

// e probes whose fields are TP_PROTO arguments (%N) rather than the record's.
bool reads_tp_args(const PlannedProbe& p) {
    return p.kind == ProbeKind::Tracepoint &&
           std::any_of(p.fields.begin(), p.fields.end(), [](const auto& f) { return f.fetch.base == Fetch::Base::Arg; });
}

// Why BPF cannot run PROBE under REQ, or nullopt when it can.
std::optional<std::string> bpf_refusal(BackendRequest req, const PlannedProbe& p, const FeatureQuery& has) {
    if (auto m = missing(has, {Feature::Bpf, Feature::Ringbuf})) return m;
    if (reads_tp_args(p)) {
        auto tp_btf = missing(has, {Feature::TpBtf});
        auto raw_tp = missing(has, {Feature::RawTp});
        if (tp_btf && raw_tp) return *tp_btf + "; " + *raw_tp;
        return std::nullopt;
    }
    if (p.kind == ProbeKind::Tracepoint) return missing(has, {Feature::Tracepoint});
    if (!p.binary.empty()) return missing(has, {Feature::Uprobe});
    const Feature fentry = p.kind == ProbeKind::Return ? Feature::Fexit : Feature::Fentry;
    // fentry attaches at a function's entry only; FUNC+OFF needs a kprobe.
    const bool fentry_allowed = !p.offset && req != BackendRequest::Kprobe;
    const bool kprobe_allowed = req != BackendRequest::Fentry;
    std::string why;
    if (fentry_allowed) {
        if (auto m = missing(has, {fentry}); !m) return std::nullopt;
        else why = *m;
    }
    if (kprobe_allowed) {
        if (auto m = missing(has, {Feature::Kprobe}); !m) return std::nullopt;
        else why += (why.empty() ? "" : "; ") + *m;
    }
    if (why.empty()) why = "fentry cannot attach at an offset inside a function";
    return why;
}

std::optional<std::string> tracefs_refusal(const PlannedProbe& p, const FeatureQuery& has) {
    if (reads_tp_args(p)) return "tracefs: a tracepoint's TP_PROTO arguments (%N) exist only for BPF; tracefs sees its record fields";
    if (p.kind == ProbeKind::Tracepoint) return missing(has, {Feature::Tracefs});
    if (!p.binary.empty()) return missing(has, {Feature::Tracefs, Feature::UprobeEvents});
    return missing(has, {Feature::Tracefs, Feature::KprobeEvents});
}

}  // namespace

namespace {
constexpr std::pair<BackendRequest, std::string_view> kBackendNames[] = {{BackendRequest::Auto, "auto"},
                                                                         {BackendRequest::Bpf, "bpf"},
                                                                         {BackendRequest::Fentry, "fentry"},
                                                                         {BackendRequest::Kprobe, "kprobe"},
                                                                         {BackendRequest::Tracefs, "tracefs"}};
}  // namespace

BackendRequest parse_backend_request(std::string_view text) {
    for (const auto& [req, name] : kBackendNames)
        if (text == name) return req;
    fail("unknown backend '{}': expected {}", printable(text), either(backend_names()));
}

std::vector<std::string> backend_names() {
    std::vector<std::string> out;
    for (const auto& [req, name] : kBackendNames) out.emplace_back(name);
    return out;
}

std::string_view backend_name(BackendRequest req) {
    for (const auto& [r, name] : kBackendNames)
        if (r == req) return name;
    return "?";
}

BackendChoice choose_backend(BackendRequest req, const std::vector<PlannedProbe>& probes, const FeatureQuery& has) {
    BackendChoice choice;
    const bool bpf_allowed = req != BackendRequest::Tracefs;
    const bool tracefs_allowed = req == BackendRequest::Auto || req == BackendRequest::Tracefs;
    std::vector<std::string> bpf_refusals;
    for (const auto& p : probes) {
        if (!bpf_allowed) break;
        if (auto why = bpf_refusal(req, p, has)) bpf_refusals.push_back(fmt::format("{}: BPF cannot run it ({})", probe_label(p), *why));
    }
    if (bpf_allowed && bpf_refusals.empty()) return choice;
    if (!tracefs_allowed) fail("{}", bpf_refusals.front());

    choice.kind = BackendKind::Tracefs;
    for (const auto& p : probes) {
        if (auto why = tracefs_refusal(p, has)) {
            std::string bpf_why = bpf_allowed ? bpf_refusal(req, p, has).value_or("") : "";
            fail("{}: cannot run on this kernel: {}{}", probe_label(p), bpf_why.empty() ? "" : bpf_why + "; ", *why);
        }
    }
    for (auto& r : bpf_refusals) choice.notes.push_back(r + "; using tracefs");
    return choice;
}

}  // namespace ksurf
