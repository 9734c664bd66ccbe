#include "ksurf/features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>

#include "ksurf/attach.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/kconfig.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(Feature::Count_)> kNames = {
    "btf",    "bpf",    "ringbuf", "tracepoint",   "raw_tp",        "tp_btf",         "fentry",
    "fexit",  "kprobe", "kprobe_multi", "tracefs", "kprobe_events", "function_graph", "uprobe", "uprobe_events",
    "hist_triggers",
};

// A file we may not read counts as absent: unprivileged runs see EACCES under tracefs.
bool present(const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

FeatureStatus yes(std::string reason) { return {true, std::move(reason)}; }
FeatureStatus no(std::string reason) { return {false, std::move(reason)}; }

// The smallest program the kernel accepts, r0 = 0; exit, loaded as the program type of F:
// the kernel's answer to the load is the answer for the attach type. Nothing is attached:
// a tracepoint's detach waits for an RCU grace period (55-67 ms at start-up), and every
// real attach reports its own failure. kprobe.multi is the exception: kernels without
// fprobe load it and refuse only the link.
FeatureStatus trial_load(Feature f, const Btf* btf) {
    static const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    BpfAttach a = BpfAttach::RawTp;
    std::string target;
    AttachTarget t;
    switch (f) {
    case Feature::Tracepoint: a = BpfAttach::Tracepoint; break;
    case Feature::RawTp: a = BpfAttach::RawTp; break;
    case Feature::TpBtf: a = BpfAttach::TpBtf; target = "sched_switch"; break;
    case Feature::Fentry: a = BpfAttach::Fentry; target = "vfs_read"; break;
    case Feature::Fexit: a = BpfAttach::Fexit; target = "vfs_read"; break;
    case Feature::Kprobe: a = BpfAttach::Kprobe; break;
    case Feature::Uprobe: a = BpfAttach::Uprobe; break;
    case Feature::KprobeMulti: a = BpfAttach::KprobeMulti; break;
    default: break;
    }
    // vfs_read and sched_switch exist and are traceable on every kernel ksurf supports.
    if (a == BpfAttach::TpBtf || a == BpfAttach::Fentry || a == BpfAttach::Fexit) {
        try {
            t.btf_id = a == BpfAttach::TpBtf ? btf->find_tracepoint_proto(target).btf_id : btf->find_function(target).btf_id;
        } catch (const Error& e) {
            return no(e.what());
        }
    }
    LIBBPF_OPTS(bpf_prog_load_opts, o, .attach_btf_id = t.btf_id);
    o.expected_attach_type = a == BpfAttach::TpBtf    ? BPF_TRACE_RAW_TP
                             : a == BpfAttach::Fentry ? BPF_TRACE_FENTRY
                             : a == BpfAttach::Fexit  ? BPF_TRACE_FEXIT
                             : a == BpfAttach::KprobeMulti ? BPF_TRACE_KPROBE_MULTI
                                                      : BPF_CGROUP_INET_INGRESS;
    const bpf_prog_type type = a == BpfAttach::Tracepoint ? BPF_PROG_TYPE_TRACEPOINT
                               : a == BpfAttach::RawTp    ? BPF_PROG_TYPE_RAW_TRACEPOINT
                               : a == BpfAttach::Kprobe || a == BpfAttach::KprobeMulti || a == BpfAttach::Uprobe
                                   ? BPF_PROG_TYPE_KPROBE
                                                                                         : BPF_PROG_TYPE_TRACING;
    Fd prog(bpf_prog_load(type, "ksurf_trial", "GPL", insns, std::size(insns), &o));
    const std::string name = target.empty() ? std::string(bpf_attach_name(a)) : fmt::format("{} on {}", bpf_attach_name(a), target);
    if (!prog) {
        const int err = errno;
        // Root passed the plain BPF trial, so EPERM here is this kernel's policy for the
        // attach type (lockdown, an LSM), not a missing privilege.
        const bool policy = err == EPERM && geteuid() == 0;
        return no(fmt::format("program load refused: {}{}", errno_text(err),
                              policy ? "; the kernel does not permit this attach type, even to root" : ""));
    }
    if (a == BpfAttach::KprobeMulti) {
        try {
            attach_multi(prog.get(), false, {"vfs_read"}, {});
        } catch (const Error& e) {
            return no(fmt::format("loaded, but attach failed: {}", e.what()));
        }
        return yes("loaded and attached kprobe.multi on vfs_read");
    }
    return yes(fmt::format("loaded {}", name));
}

// Kernel kprobes are reachable through the kprobe PMU or tracefs kprobe_events; with
// neither, no attach attempt can say more than the build configuration does.
std::optional<FeatureStatus> kprobes_absent() {
    bool pmu = present("/sys/bus/event_source/devices/kprobe/type");
    auto mount = tracefs::find_mount();
    bool events = mount && present(*mount + "/kprobe_events");
    if (pmu || events) return std::nullopt;
    if (auto v = kernel_config("CONFIG_KPROBES"); v && v->empty())
        return no("kprobes are not configured (CONFIG_KPROBES is not set)");
    return no("no kprobe PMU and no tracefs kprobe_events");
}

// Whether the kernel's BTF can be read; parsing it is the resolver's, done once per run.
FeatureStatus probe_btf() {
    const char* path = "/sys/kernel/btf/vmlinux";
    if (access(path, R_OK) != 0) return no(fmt::format("{}: {}{}", path, errno_text(errno), config_hint("CONFIG_DEBUG_INFO_BTF")));
    return yes(path);
}

FeatureStatus probe_bpf() {
    // The smallest program the kernel accepts: r0 = 0; exit.
    const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "ksurf_trial", "GPL", insns, 2, nullptr);
    if (fd < 0) {
        int err = errno;
        if (err == EPERM) return no("BPF program load not permitted (EPERM): run as root or with CAP_BPF and CAP_PERFMON");
        return no("BPF program load failed: " + errno_text(err));
    }
    close(fd);
    return yes("BPF program load works");
}

FeatureStatus probe_ringbuf() {
    int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "ksurf_trial", 0, 0, 4096, nullptr);
    if (fd < 0) return no("cannot create a BPF ring buffer: " + errno_text(errno));
    close(fd);
    return yes("created a BPF ring buffer");
}

FeatureStatus probe_tracefs() {
    try {
        bool mounted_now = false;
        std::string dir = tracefs::root(&mounted_now);
        return yes(mounted_now ? dir + " (mounted by ksurf)" : dir);
    } catch (const Error& e) {
        return no(e.what());
    }
}

FeatureStatus probe_kprobe_events(Features& fs) {
    if (!fs.has(Feature::Tracefs)) return no("tracefs is not available");
    std::string path = *tracefs::find_mount() + "/kprobe_events";
    if (!present(path))
        return no(fmt::format("{} is missing{}", path,
                              config_hint("CONFIG_KPROBES").empty() ? config_hint("CONFIG_KPROBE_EVENTS")
                                                                    : config_hint("CONFIG_KPROBES")));
    return yes(path);
}

FeatureStatus probe_uprobe_events(Features& fs) {
    if (!fs.has(Feature::Tracefs)) return no("tracefs is not available");
    std::string path = *tracefs::find_mount() + "/uprobe_events";
    if (!present(path)) return no(fmt::format("{} is missing{}", path, config_hint("CONFIG_UPROBE_EVENTS")));
    return yes(path);
}

FeatureStatus probe_function_graph(Features& fs) {
    if (!fs.has(Feature::Tracefs)) return no("tracefs is not available");
    const std::string path = *tracefs::find_mount() + "/available_tracers";
    std::ifstream in(path);
    if (!in) return no(fmt::format("cannot read {}: {}", path, errno_text(errno)));
    std::string tracer, all;
    while (in >> tracer) {
        if (tracer == "function_graph") return yes("listed in available_tracers");
        all += (all.empty() ? "" : " ") + tracer;
    }
    return no(fmt::format("not among available_tracers ({}){}", all, config_hint("CONFIG_FUNCTION_GRAPH_TRACER")));
}

// Every event has a hist file when the kernel has hist triggers (CONFIG_HIST_TRIGGERS);
// sched_switch is an event every kernel has.
FeatureStatus probe_hist_triggers(Features& fs) {
    if (!fs.has(Feature::Tracefs)) return no("tracefs is not available");
    const std::string path = *tracefs::find_mount() + "/events/sched/sched_switch/hist";
    if (present(path)) return yes(path);
    return no(fmt::format("no hist triggers: {} is missing{}", path, config_hint("CONFIG_HIST_TRIGGERS")));
}

}  // namespace

std::string_view feature_name(Feature f) { return kNames[static_cast<std::size_t>(f)]; }

Features::Features(const Btf* btf) : btf_(btf) {}
Features::~Features() = default;

const Btf& Features::btf() {
    if (btf_) return *btf_;
    if (!own_btf_) own_btf_ = std::make_unique<Btf>(Btf::kernel());
    return *own_btf_;
}

const FeatureStatus& Features::get(Feature f) {
    auto& slot = cache_[static_cast<std::size_t>(f)];
    if (!slot) slot = probe(f);
    return *slot;
}

FeatureStatus Features::probe(Feature f) {
    switch (f) {
    case Feature::Btf: return probe_btf();
    case Feature::Bpf: return probe_bpf();
    case Feature::Ringbuf: return has(Feature::Bpf) ? probe_ringbuf() : no("BPF is not available");
    case Feature::Tracefs: return probe_tracefs();
    case Feature::KprobeEvents: return probe_kprobe_events(*this);
    case Feature::FunctionGraph: return probe_function_graph(*this);
    case Feature::UprobeEvents: return probe_uprobe_events(*this);
    case Feature::Uprobe:
        if (!has(Feature::Bpf)) return no("BPF is not available");
        if (!present("/sys/bus/event_source/devices/uprobe/type"))
            return no(fmt::format("no uprobe PMU{}", config_hint("CONFIG_UPROBE_EVENTS")));
        return trial_load(f, nullptr);
    case Feature::HistTriggers: return probe_hist_triggers(*this);
    case Feature::Kprobe:
    case Feature::KprobeMulti:
        if (!has(Feature::Bpf)) return no("BPF is not available");
        if (auto absent = kprobes_absent()) return *absent;
        return trial_load(f, nullptr);
    case Feature::Tracepoint:
        // libbpf finds tracepoint ids in tracefs, so mount it first.
        if (!has(Feature::Tracefs)) return no("tracefs is not available");
        [[fallthrough]];
    default:
        if (!has(Feature::Bpf)) return no("BPF is not available");
        if (f == Feature::Tracepoint || f == Feature::RawTp) return trial_load(f, nullptr);
        if (!has(Feature::Btf)) return no("needs kernel BTF");
        return trial_load(f, &btf());
    }
}

}  // namespace ksurf
