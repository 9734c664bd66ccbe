#include "ksurf/features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>

#include "features.skel.h"
#include "ksurf/error.h"
#include "ksurf/kconfig.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(Feature::Count_)> kNames = {
    "btf",    "bpf",    "ringbuf", "tracepoint",   "raw_tp",        "tp_btf",         "fentry",
    "fexit",  "kprobe", "kprobe_multi", "tracefs", "kprobe_events", "function_graph",
};

// A file we may not read counts as absent: unprivileged runs see EACCES under tracefs.
bool present(const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

FeatureStatus yes(std::string reason) { return {true, std::move(reason)}; }
FeatureStatus no(std::string reason) { return {false, std::move(reason)}; }

// The trial program of features.bpf.c that proves each attach type.
bpf_program* trial_program(features_bpf* skel, Feature f) {
    switch (f) {
    case Feature::Tracepoint: return skel->progs.trial_tracepoint;
    case Feature::RawTp: return skel->progs.trial_raw_tp;
    case Feature::TpBtf: return skel->progs.trial_tp_btf;
    case Feature::Fentry: return skel->progs.trial_fentry;
    case Feature::Fexit: return skel->progs.trial_fexit;
    case Feature::Kprobe: return skel->progs.trial_kprobe;
    case Feature::KprobeMulti: return skel->progs.trial_kprobe_multi;
    default: return nullptr;
    }
}

// Opens the features skeleton with only `f`'s program enabled, loads and attaches it.
FeatureStatus trial_attach(Feature f) {
    std::unique_ptr<features_bpf, decltype(&features_bpf__destroy)> skel(features_bpf__open(),
                                                                         features_bpf__destroy);
    if (!skel) return no("cannot open the trial BPF object: " + errno_text(errno));
    bpf_program* p = nullptr;
    bpf_object__for_each_program(p, skel->obj) bpf_program__set_autoload(p, false);
    bpf_program* prog = trial_program(skel.get(), f);
    bpf_program__set_autoload(prog, true);
    if (int err = features_bpf__load(skel.get())) {
        // Root passed the plain BPF trial, so EPERM here is this kernel's policy for the
        // attach type (lockdown, an LSM), not a missing privilege.
        const bool policy = (err == -EPERM || err == EPERM) && geteuid() == 0;
        return no(fmt::format("program load refused: {}{}", errno_text(err),
                              policy ? "; the kernel does not permit this attach type, even to root" : ""));
    }
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return no(fmt::format("loaded, but attach failed: {}", errno_text(errno)));
    bpf_link__destroy(link);
    return yes(fmt::format("loaded and attached {}", bpf_program__section_name(prog)));
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

FeatureStatus probe_btf() {
    const char* path = "/sys/kernel/btf/vmlinux";
    btf* b = btf__load_vmlinux_btf();
    if (!b) return no(fmt::format("{}: {}{}", path, errno_text(errno), config_hint("CONFIG_DEBUG_INFO_BTF")));
    std::string r = fmt::format("{} types from {}", btf__type_cnt(b), path);
    btf__free(b);
    return yes(r);
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

}  // namespace

std::string_view feature_name(Feature f) { return kNames[static_cast<std::size_t>(f)]; }

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
    case Feature::Kprobe:
    case Feature::KprobeMulti:
        if (!has(Feature::Bpf)) return no("BPF is not available");
        if (auto absent = kprobes_absent()) return *absent;
        return trial_attach(f);
    case Feature::Tracepoint:
        // libbpf finds tracepoint ids in tracefs, so mount it first.
        if (!has(Feature::Tracefs)) return no("tracefs is not available");
        [[fallthrough]];
    default:
        if (!has(Feature::Bpf)) return no("BPF is not available");
        if (!has(Feature::Btf) && f != Feature::Tracepoint && f != Feature::RawTp)
            return no("needs kernel BTF");
        return trial_attach(f);
    }
}

}  // namespace ksurf
