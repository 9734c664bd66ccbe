// The recorder's loader: ROOT's pair of programs configured with its plan (the predicate
// runs in the kernel through the interpreter), the callees' pairs on kprobe.multi,
// fentry/fexit or kprobes, and the ring buffer they share, read back into graphs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include "ksurf/attach.h"
#include "ksurf/bpf_config.h"
#include "ksurf/graph_record.h"
#include "ksurf/kallsyms.h"
// After the types its rodata uses.
#include "graph.skel.h"
#include "graph_legacy.skel.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/graph.h"
#include "ksurf/plan.h"
#include "ksurf/ring_reader.h"
#include "ksurf/run_loop.h"

namespace ksurf {
namespace {

// Two builds of bpf/graph.bpf.c with the same maps and programs: S is the skeleton of
// graph_bpf (fetching atomics, 5.12+) or graph_legacy_bpf (without them), used for its ELF
// and the layout of its rodata; the attach engine loads it once and clones its programs.
template <class S>
class Recorder final : public GraphRecorder {
    using Rodata = std::remove_pointer_t<decltype(S::rodata)>;

public:
    Recorder(const PlannedProbe& root, const std::vector<std::string>& callees, RecorderOptions opt,
             std::function<void(const Graph&)> on_graph)
        : root_(root), opt_(std::move(opt)), on_graph_(std::move(on_graph)) {
        names_.push_back(root.function);
        names_.insert(names_.end(), callees.begin(), callees.end());
        if (names_.size() > 1'000'000) fail("too many functions to trace: {}", names_.size());
        tmpl_.emplace(elf_of<S>(), std::vector<std::string>{kRootEntry, kRootExit, kEntry, kExit});
        rb_.emplace(tmpl_->map("events"), [this](std::span<const std::uint8_t> r) { on_record(r); });
    }

    ~Recorder() override {
        links_.clear();  // detached first: nothing writes to the ring buffer any more
        rb_.reset();
    }

    void attach() override {
        const auto t0 = std::chrono::steady_clock::now();
        attach_callees();
        if (stop_requested()) return;
        attach_root();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        note(fmt::format("attached ROOT {} ({}) and {} of {} callees in {:.2f} s", root_.function, root_how_, attached_,
                         names_.size() - 1, s));
    }

    std::size_t attached() const override { return attached_; }
    std::vector<std::pair<std::string, std::string>> failed() const override { return failed_; }

    bool poll(int timeout_ms) override { return rb_->poll(timeout_ms); }

    RecorderStats stats() const override {
        RecorderStats s;
        const auto counts = sum_per_cpu(tmpl_->map("scratch"), 0, KSURF_STAT_MAX);
        s.root_hits = counts[KSURF_STAT_HITS];
        s.filtered = counts[KSURF_STAT_FILTERED];
        s.dropped = counts[KSURF_STAT_DROPPED];
        for (std::uint32_t k = 0; k < KSURF_GCOUNT_MAX; k++) bpf_map_lookup_elem(tmpl_->map("gcounts"), &k, &s.counts[k]);
        return s;
    }

    const std::vector<std::string>& names() const override { return names_; }

private:
    static constexpr const char* kRootEntry = "graph_root_entry";
    static constexpr const char* kRootExit = "graph_root_exit";
    static constexpr const char* kEntry = "graph_entry";
    static constexpr const char* kExit = "graph_exit";

    void note(const std::string& line) const {
        if (opt_.note) opt_.note(line);
    }

    // Read-only data with CFG and GCFG, for the clones of one target.
    Fd rodata(const ksurf_config& cfg, const ksurf_graph_config& gcfg) const {
        std::vector<std::uint8_t> data = tmpl_->rodata();
        Rodata ro;
        std::memcpy(&ro, data.data(), sizeof ro);
        ro.cfg = cfg;
        ro.cfg.layout = layout_;
        ro.cfg.count_filtered = 1;  // the summary's ROOT calls the predicate rejected
        ro.gcfg = gcfg;
        std::memcpy(data.data(), &ro, sizeof ro);
        return tmpl_->make_rodata(data);
    }

    // ENTRY and EXIT cloned as a fentry/fexit or kprobe/kretprobe pair on FUNCTION.
    // ROOT's predicate stays interpreted: graph_root_entry runs it only when no recording is
    // open, after counting the hit, so a compiled filter in front (src/codegen) would drop
    // ROOT's recursive calls from their recording and leave their exits unmatched.
    void pair(const std::string& function, const ksurf_config& cfg, const ksurf_graph_config& gcfg, const char* entry,
              const char* exit, bool fentry) {
        const Fd ro = rodata(cfg, gcfg);
        AttachTarget t;
        t.name = function;
        if (fentry) {
            const Function fn = opt_.btf->find_function(function);
            t.btf_id = fn.btf_id;
            t.btf_module = fn.module;
        }
        const BpfAttach in = fentry ? BpfAttach::Fentry : BpfAttach::Kprobe;
        const BpfAttach out = fentry ? BpfAttach::Fexit : BpfAttach::Kretprobe;
        Link a = ksurf::attach(tmpl_->load(entry, in, ro.get(), t).get(), in, t);
        Link b = ksurf::attach(tmpl_->load(exit, out, ro.get(), t).get(), out, t);
        links_.add(std::move(a));
        links_.add(std::move(b));
    }

    // ---- ROOT ----

    void attach_root() {
        const bool fentry_ok = opt_.features->has(Feature::Fentry) && opt_.features->has(Feature::Fexit);
        std::optional<Function> fn;
        try {
            fn = opt_.btf->find_function(root_.function);
        } catch (const Error&) {
        }
        std::vector<std::string> notes;
        if (fentry_ok && fn && opt_.attach != FunctionAttach::Kprobe && opt_.attach != FunctionAttach::KprobeMulti) {
            try {
                BpfFrame frame;
                frame.attach = BpfAttach::Fentry;
                set_arg_slots(frame, *fn);
                root_spec_ = encode_bpf(root_, frame);
                ksurf_graph_config g = opt_.config;
                g.func = 0;
                g.ret_off = static_cast<std::int32_t>(8 * frame.ret_slot);
                pair(root_.function, root_spec_.config, g, kRootEntry, kRootExit, true);
                root_how_ = "fentry/fexit";
                return;
            } catch (const Error& e) {
                notes.push_back(fmt::format("fentry: {}", e.what()));
            }
        } else if (!fentry_ok) {
            notes.push_back(fmt::format("fentry: {}", opt_.features->get(Feature::Fentry).reason));
        }
        if (!opt_.features->has(Feature::Kprobe))
            fail("cannot attach ROOT {}: {}; kprobe: {}", root_.function, fmt::join(notes, "; "),
                 opt_.features->get(Feature::Kprobe).reason);
        BpfFrame frame;
        frame.attach = BpfAttach::Kprobe;
        if (fn) set_arg_slots(frame, *fn);
        frame.regs = pt_regs_offsets(*opt_.btf);
        root_spec_ = encode_bpf(root_, frame);
        ksurf_graph_config g = opt_.config;
        g.func = 0;
        g.ret_off = frame.regs.at("ax");
        pair(root_.function, root_spec_.config, g, kRootEntry, kRootExit, false);
        root_how_ = "kprobe/kretprobe";
        if (!notes.empty()) note(fmt::format("ROOT {} on kprobes ({})", root_.function, fmt::join(notes, "; ")));
    }

    // ---- callees ----

    void progress(std::size_t done, std::size_t total, std::string_view how) {
        // A line per tenth: enough to see a large attach move, few enough for a log.
        if (total >= 20 && done % std::max<std::size_t>(total / 10, 1) == 0 && done < total)
            note(fmt::format("attaching callees: {}/{} ({})", done, total, how));
    }

    void attach_callees() {
        const std::size_t n = names_.size() - 1;
        if (!n) return;
        const bool multi_ok = opt_.features->has(Feature::KprobeMulti);
        const bool fentry_ok = opt_.features->has(Feature::Fentry) && opt_.features->has(Feature::Fexit);
        const bool kprobe_ok = opt_.features->has(Feature::Kprobe);
        const FunctionAttach a = opt_.attach;
        auto refuse = [&](Feature f) { fail("cannot attach the callees with {}: {}", feature_name(f), opt_.features->get(f).reason); };
        if (a == FunctionAttach::KprobeMulti && !multi_ok) refuse(Feature::KprobeMulti);
        if (a == FunctionAttach::Fentry && !fentry_ok) refuse(Feature::Fentry);
        if (a == FunctionAttach::Kprobe && !kprobe_ok) refuse(Feature::Kprobe);
        if (!multi_ok && !fentry_ok && !kprobe_ok)
            fail("cannot attach the callees: kprobe.multi: {}; fentry: {}; kprobe: {}", opt_.features->get(Feature::KprobeMulti).reason,
                 opt_.features->get(Feature::Fentry).reason, opt_.features->get(Feature::Kprobe).reason);
        if ((a == FunctionAttach::Auto && multi_ok) || a == FunctionAttach::KprobeMulti) {
            try {
                attach_multi_callees();
                return;
            } catch (const Error& e) {
                if (a == FunctionAttach::KprobeMulti) throw;
                note(fmt::format("kprobe.multi failed, attaching one by one: {}", e.what()));
            }
        }
        const bool use_fentry = fentry_ok && a != FunctionAttach::Kprobe;
        const bool use_kprobe = kprobe_ok && a != FunctionAttach::Fentry;
        for (std::size_t i = 1; i <= n && !stop_requested(); i++) {
            progress(i - 1, n, use_fentry ? "fentry/fexit" : "kprobe/kretprobe");
            ksurf_graph_config g = opt_.config;
            g.func = static_cast<std::uint32_t>(i);
            std::vector<std::string> why;
            for (bool fentry : {true, false}) {
                if (!(fentry ? use_fentry : use_kprobe)) continue;
                try {
                    pair(names_[i], {}, g, kEntry, kExit, fentry);
                    attached_++;
                    why.clear();
                    break;
                } catch (const Error& e) {
                    why.push_back(fmt::format("{}: {}", fentry ? "fentry" : "kprobe", e.what()));
                }
            }
            if (!why.empty()) failed_.emplace_back(names_[i], fmt::format("{}", fmt::join(why, "; ")));
        }
    }

    void attach_multi_callees() {
        const std::size_t n = names_.size() - 1;
        ksurf_graph_config g = opt_.config;
        g.func_from_cookie = 1;
        const Fd ro = rodata({}, g);
        std::vector<const char*> syms;
        std::vector<std::uint64_t> cookies;
        for (std::size_t i = 1; i <= n; i++) {
            syms.push_back(names_[i].c_str());
            cookies.push_back(i);
        }
        for (bool ret : {false, true}) {
            const BpfAttach a = ret ? BpfAttach::KretprobeMulti : BpfAttach::KprobeMulti;
            const Fd prog = tmpl_->load(ret ? kExit : kEntry, a, ro.get());
            links_.add(ksurf::attach_multi(prog.get(), ret, syms, cookies));
        }
        attached_ = n;
    }

    // ---- records ----

    void on_record(std::span<const std::uint8_t> rec) {
        if (rec.size() == sizeof(ksurf_graph_rec)) {
            ksurf_graph_rec r;
            std::memcpy(&r, rec.data(), sizeof r);
            if (auto g = builder_.add(r)) on_graph_(*g);
            return;
        }
        if (rec.size() < sizeof(ksurf_event)) return;
        ksurf_event hdr;
        std::memcpy(&hdr, rec.data(), sizeof hdr);
        auto payload = rec.subspan(sizeof hdr, std::min<std::size_t>(hdr.data_len, rec.size() - sizeof hdr));
        Event ev{hdr.ts_ns, hdr.pid, hdr.tgid, hdr.cpu, std::string(hdr.comm, strnlen(hdr.comm, sizeof hdr.comm)),
                 root_.function, decode_bpf(root_spec_, payload), {}};
        builder_.add_root_event(ev, hdr.probe_id);
    }

    const PlannedProbe& root_;
    RecorderOptions opt_;
    std::function<void(const Graph&)> on_graph_;
    std::vector<std::string> names_;
    std::optional<BpfTemplate> tmpl_;
    std::optional<RingReader> rb_;
    BpfProgramSpec root_spec_;
    ksurf_layout layout_ = kernel_layout(*opt_.btf);
    Links links_;
    std::size_t attached_ = 0;
    std::vector<std::pair<std::string, std::string>> failed_;
    std::string root_how_;
    GraphBuilder builder_;
};

// Whether the verifier takes a fetching atomic (BPF_ATOMIC | BPF_FETCH, 5.12): a stack slot
// fetch-added in a socket filter, the smallest program that has one.
bool kernel_has_atomic_fetch() {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 0},
        {BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_1, -8, 0},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1},
        {BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_10, BPF_REG_1, -8, BPF_ADD | BPF_FETCH},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, nullptr, "GPL", insns, std::size(insns), nullptr);
    if (fd < 0) return false;
    close(fd);
    return true;
}

}  // namespace

void find_preempt_count(ksurf_graph_config& config, const Kallsyms& syms) {
    config.preempt_count = syms.variable("__preempt_count");
    config.per_cpu_offset = syms.variable("__per_cpu_offset");
}

std::unique_ptr<GraphRecorder> make_graph_recorder(const PlannedProbe& root, const std::vector<std::string>& callees,
                                                   RecorderOptions opt, std::function<void(const Graph&)> on_graph) {
    find_preempt_count(opt.config, *opt.syms);
    if (kernel_has_atomic_fetch()) {
        if (opt.note) opt.note("exact --sample and --max (atomic fetch-add)");
        return std::make_unique<Recorder<graph_bpf>>(root, callees, std::move(opt), std::move(on_graph));
    }
    const int ncpu = libbpf_num_possible_cpus();
    opt.config.slots = static_cast<std::uint32_t>(std::max(ncpu, 1)) * (KSURF_CTX_NMI + 1);
    if (opt.note)
        opt.note("this kernel lacks atomic fetch-add (5.12): --sample 1/N counts per CPU and context, graph ids "
                 "are unique but not in start order");
    return std::make_unique<Recorder<graph_legacy_bpf>>(root, callees, std::move(opt), std::move(on_graph));
}

}  // namespace ksurf
