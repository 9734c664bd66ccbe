// Backend choice from feature answers like those of the build host (no kprobes, fentry
// refused) and of the matrix kernels.
#include <gtest/gtest.h>

#include <map>

#include "ksurf/backend_choice.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

struct Kernel {
    std::map<Feature, FeatureStatus> st;
    FeatureQuery query() {
        return [this](Feature f) -> const FeatureStatus& {
            auto [it, _] = st.try_emplace(f, FeatureStatus{true, "ok"});
            return it->second;
        };
    }
};

Kernel build_host() {
    Kernel k;
    k.st[Feature::Fentry] = {false, "program load refused: Operation not permitted (EPERM)"};
    k.st[Feature::Fexit] = {false, "program load refused: Operation not permitted (EPERM)"};
    k.st[Feature::Kprobe] = {false, "kprobes are not configured (CONFIG_KPROBES is not set)"};
    k.st[Feature::KprobeEvents] = {false, "kprobe_events is missing (CONFIG_KPROBES is not set)"};
    return k;
}

PlannedProbe probe(ProbeKind kind, std::string fn, std::uint64_t offset = 0) {
    PlannedProbe p;
    p.kind = kind;
    if (kind == ProbeKind::Tracepoint) {
        p.subsystem = "sched";
        p.event = fn;
    } else {
        p.function = fn;
    }
    p.offset = offset;
    return p;
}

std::vector<PlannedProbe> one(PlannedProbe p) {
    std::vector<PlannedProbe> v;
    v.push_back(std::move(p));
    return v;
}

std::string error_of(BackendRequest req, const std::vector<PlannedProbe>& probes, Kernel k) {
    try {
        choose_backend(req, probes, k.query());
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

TEST(BackendChoice, TracepointsRunOnBpfOnTheBuildHost) {
    auto c = choose_backend(BackendRequest::Auto, one(probe(ProbeKind::Tracepoint, "sched_switch")), build_host().query());
    EXPECT_EQ(c.kind, BackendKind::Bpf);
    EXPECT_TRUE(c.notes.empty());
}

TEST(BackendChoice, FunctionProbesOnTheBuildHostSayWhyNothingCanRunThem) {
    EXPECT_EQ(error_of(BackendRequest::Auto, one(probe(ProbeKind::Entry, "tcp_sendmsg")), build_host()),
              "p tcp_sendmsg: cannot run on this kernel: fentry: program load refused: Operation not permitted "
              "(EPERM); kprobe: kprobes are not configured (CONFIG_KPROBES is not set); kprobe_events: "
              "kprobe_events is missing (CONFIG_KPROBES is not set)");
    EXPECT_NE(error_of(BackendRequest::Auto, one(probe(ProbeKind::Return, "tcp_sendmsg")), build_host()).find("fexit: "),
              std::string::npos);
}

TEST(BackendChoice, FentryPreferredWhereAllowed) {
    Kernel k;
    EXPECT_EQ(choose_backend(BackendRequest::Auto, one(probe(ProbeKind::Entry, "f")), k.query()).kind, BackendKind::Bpf);
}

TEST(BackendChoice, OffsetProbesNeedKprobes) {
    Kernel k;
    k.st[Feature::Kprobe] = {false, "no kprobe PMU"};
    auto c = choose_backend(BackendRequest::Auto, one(probe(ProbeKind::Entry, "f", 0x12)), k.query());
    EXPECT_EQ(c.kind, BackendKind::Tracefs);
    ASSERT_EQ(c.notes.size(), 1u);
    EXPECT_EQ(c.notes[0], "p f+0x12: BPF cannot run it (kprobe: no kprobe PMU); using tracefs");
}

TEST(BackendChoice, FallsBackToTracefsAndSaysWhy) {
    Kernel k;
    k.st[Feature::Bpf] = {false, "BPF program load not permitted (EPERM)"};
    std::vector<PlannedProbe> probes;
    probes.push_back(probe(ProbeKind::Entry, "f"));
    probes.push_back(probe(ProbeKind::Tracepoint, "sched_switch"));
    auto c = choose_backend(BackendRequest::Auto, probes, k.query());
    EXPECT_EQ(c.kind, BackendKind::Tracefs);
    ASSERT_EQ(c.notes.size(), 2u);
    EXPECT_EQ(c.notes[0], "p f: BPF cannot run it (bpf: BPF program load not permitted (EPERM)); using tracefs");
}

TEST(BackendChoice, ForcedBackendsAreHonouredOrRefused) {
    Kernel k;
    EXPECT_EQ(choose_backend(BackendRequest::Tracefs, one(probe(ProbeKind::Entry, "f")), k.query()).kind,
              BackendKind::Tracefs);
    k.st[Feature::Kprobe] = {false, "kprobes are not configured"};
    EXPECT_EQ(error_of(BackendRequest::Kprobe, one(probe(ProbeKind::Entry, "f")), k),
              "p f: BPF cannot run it (kprobe: kprobes are not configured)");
    EXPECT_EQ(choose_backend(BackendRequest::Fentry, one(probe(ProbeKind::Entry, "f")), k.query()).kind, BackendKind::Bpf);
    EXPECT_EQ(error_of(BackendRequest::Fentry, one(probe(ProbeKind::Entry, "f", 4)), k),
              "p f+0x4: BPF cannot run it (fentry cannot attach at an offset inside a function)");
}

TEST(BackendChoice, UnknownBackendName) {
    EXPECT_THROW(parse_backend_request("ebpf"), Error);
    EXPECT_EQ(parse_backend_request("kprobe"), BackendRequest::Kprobe);
}

TEST(BackendChoice, NamesRoundTrip) {
    for (auto req : {BackendRequest::Auto, BackendRequest::Bpf, BackendRequest::Fentry, BackendRequest::Kprobe,
                     BackendRequest::Tracefs})
        EXPECT_EQ(parse_backend_request(backend_name(req)), req);
}

}  // namespace
}  // namespace ksurf
