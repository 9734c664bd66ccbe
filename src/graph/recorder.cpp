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
// After the types its rodata uses.
#include "graph.skel.h"
#include "graph_legacy.skel.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/graph.h"
#include "ksurf/plan.h"

namespace ksurf {
namespace {

// Two builds of bpf/graph.bpf.c, one skeleton each, with the same maps and programs: S is
// graph_bpf (fetching atomics, 5.12+) or graph_legacy_bpf (without them).
template <class S>
struct SkelDeleter {
    void operator()(S* s) const { S::destroy(s); }
};
struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

struct FdCloser {
    void operator()(int* fd) const {
        close(*fd);
        delete fd;
    }
};
using Fd = std::unique_ptr<int, FdCloser>;

template <class S>
class Recorder final : public GraphRecorder {
    using Skel = std::unique_ptr<S, SkelDeleter<S>>;
    // Links before the skeleton: detached before their programs go.
    struct Instance {
        Skel skel;
        std::vector<Link> links;
    };
    // A program of the skeleton, for choosing which ones an instance loads.
    using Progs = decltype(S::progs);
    using Prog = bpf_program* Progs::*;

public:
    Recorder(const PlannedProbe& root, const std::vector<std::string>& callees, RecorderOptions opt,
             std::function<void(const Graph&)> on_graph)
        : root_(root), opt_(std::move(opt)), on_graph_(std::move(on_graph)) {
        names_.push_back(root.function);
        names_.insert(names_.end(), callees.begin(), callees.end());
        if (names_.size() > 1'000'000) fail("too many functions to trace: {}", names_.size());
        Skel skel(S::open());
        if (!skel) fail("cannot open the graph BPF object: {}", errno_text(errno));
        for (bpf_map* m : shared(skel.get())) {
            int fd = bpf_map_create(bpf_map__type(m), bpf_map__name(m), bpf_map__key_size(m), bpf_map__value_size(m),
                                    bpf_map__max_entries(m), nullptr);
            if (fd < 0) fail("cannot create the BPF map '{}': {}", bpf_map__name(m), errno_text(errno));
            maps_.emplace_back(new int(fd));
        }
        rb_ = ring_buffer__new(*maps_[0], on_record, this, nullptr);
        if (!rb_) fail("cannot read the BPF ring buffer: {}", errno_text(errno));
    }

    ~Recorder() override {
        instances_.clear();
        ring_buffer__free(rb_);
    }

    void attach() override {
        const auto t0 = std::chrono::steady_clock::now();
        attach_callees();
        attach_root();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        note(fmt::format("attached ROOT {} ({}) and {} of {} callees in {:.2f} s", root_.function, root_how_, attached_,
                         names_.size() - 1, s));
    }

    std::size_t attached() const override { return attached_; }
    std::vector<std::pair<std::string, std::string>> failed() const override { return failed_; }

    bool poll(int timeout_ms) override {
        int n = ring_buffer__poll(rb_, timeout_ms);
        if (n == -EINTR) return false;
        if (n < 0) fail("reading the BPF ring buffer: {}", errno_text(n));
        return true;
    }

    RecorderStats stats() const override {
        RecorderStats s;
        const auto counts = sum_per_cpu(*maps_[1], 0, KSURF_STAT_MAX);
        s.root_hits = counts[KSURF_STAT_HITS];
        s.filtered = counts[KSURF_STAT_FILTERED];
        s.dropped = counts[KSURF_STAT_DROPPED];
        for (std::uint32_t k = 0; k < KSURF_GCOUNT_MAX; k++) bpf_map_lookup_elem(*maps_[3], &k, &s.counts[k]);
        return s;
    }

    const std::vector<std::string>& names() const override { return names_; }

private:
    // In the order maps_ holds their fds.
    static std::vector<bpf_map*> shared(S* s) {
        return {s->maps.events, s->maps.scratch, s->maps.recordings, s->maps.gcounts, s->maps.pids, s->maps.ksurf_cbpf_states};
    }

    void note(const std::string& line) const {
        if (opt_.note) opt_.note(line);
    }

    // An instance with rodata CFG and GCFG and only PROGS loaded; maps shared.
    Skel open(const ksurf_config& cfg, const ksurf_graph_config& gcfg, std::initializer_list<Prog> progs) {
        Skel skel(S::open());
        if (!skel) fail("cannot open the graph BPF object: {}", errno_text(errno));
        bpf_program* p = nullptr;
        bpf_object__for_each_program(p, skel->obj) bpf_program__set_autoload(p, false);
        for (Prog prog : progs) bpf_program__set_autoload(skel->progs.*prog, true);
        const auto maps = shared(skel.get());
        for (std::size_t i = 0; i < maps.size(); i++)
            if (int err = bpf_map__reuse_fd(maps[i], *maps_[i])) fail("cannot share BPF maps: {}", errno_text(err));
        skel->rodata->cfg = cfg;
        skel->rodata->cfg.layout = layout_;
        skel->rodata->gcfg = gcfg;
        return skel;
    }

    static void load(S* s, std::string_view what) {
        if (int err = S::load(s))
            fail("cannot load the {} programs: {}{}", what, errno_text(err),
                 err == -EACCES || err == -EINVAL ? " (-v shows the verifier's log)" : "");
    }

    static Link must(bpf_link* l, std::string_view what) {
        if (!l) fail("cannot attach {}: {}", what, errno_text(errno));
        return Link(l);
    }

    // A pair of trampoline programs (ENTRY, EXIT) on FUNCTION.
    Instance trampolines(const std::string& function, const ksurf_config& cfg, const ksurf_graph_config& gcfg,
                         Prog entry, Prog exit) {
        Instance in{open(cfg, gcfg, {entry, exit}), {}};
        for (Prog p : {entry, exit})
            if (int err = bpf_program__set_attach_target(in.skel->progs.*p, 0, function.c_str()))
                fail("no BTF for '{}': {}", function, errno_text(err));
        load(in.skel.get(), "fentry/fexit");
        for (Prog p : {entry, exit}) in.links.push_back(must(bpf_program__attach_trace(in.skel->progs.*p), "fentry/fexit"));
        return in;
    }

    Instance kprobes(const std::string& function, const ksurf_config& cfg, const ksurf_graph_config& gcfg, Prog entry,
                     Prog exit) {
        Instance in{open(cfg, gcfg, {entry, exit}), {}};
        load(in.skel.get(), "kprobe");
        for (bool ret : {false, true}) {
            LIBBPF_OPTS(bpf_kprobe_opts, o, .retprobe = ret);
            bpf_program* p = in.skel->progs.*(ret ? exit : entry);
            in.links.push_back(must(bpf_program__attach_kprobe_opts(p, function.c_str(), &o), ret ? "kretprobe" : "kprobe"));
        }
        return in;
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
                instances_.push_back(trampolines(root_.function, root_spec_.config, g, &Progs::graph_root_fentry, &Progs::graph_root_fexit));
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
        instances_.push_back(kprobes(root_.function, root_spec_.config, g, &Progs::graph_root_kprobe, &Progs::graph_root_kretprobe));
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
                attach_multi();
                return;
            } catch (const Error& e) {
                if (a == FunctionAttach::KprobeMulti) throw;
                note(fmt::format("kprobe.multi failed, attaching one by one: {}", e.what()));
            }
        }
        const bool use_fentry = fentry_ok && a != FunctionAttach::Kprobe;
        const bool use_kprobe = kprobe_ok && a != FunctionAttach::Fentry;
        for (std::size_t i = 1; i <= n; i++) {
            progress(i - 1, n, use_fentry ? "fentry/fexit" : "kprobe/kretprobe");
            ksurf_graph_config g = opt_.config;
            g.func = static_cast<std::uint32_t>(i);
            std::vector<std::string> why;
            if (use_fentry) {
                try {
                    instances_.push_back(trampolines(names_[i], {}, g, &Progs::graph_fentry, &Progs::graph_fexit));
                    attached_++;
                    continue;
                } catch (const Error& e) {
                    why.push_back(fmt::format("fentry: {}", e.what()));
                }
            }
            if (use_kprobe) {
                try {
                    instances_.push_back(kprobes(names_[i], {}, g, &Progs::graph_kprobe, &Progs::graph_kretprobe));
                    attached_++;
                    continue;
                } catch (const Error& e) {
                    why.push_back(fmt::format("kprobe: {}", e.what()));
                }
            }
            failed_.emplace_back(names_[i], fmt::format("{}", fmt::join(why, "; ")));
        }
    }

    void attach_multi() {
        const std::size_t n = names_.size() - 1;
        Instance in{open({}, opt_.config, {&Progs::graph_multi_entry, &Progs::graph_multi_exit}), {}};
        load(in.skel.get(), "kprobe.multi");
        std::vector<const char*> syms;
        std::vector<__u64> cookies;
        for (std::size_t i = 1; i <= n; i++) {
            syms.push_back(names_[i].c_str());
            cookies.push_back(i);
        }
        for (bool ret : {false, true}) {
            LIBBPF_OPTS(bpf_kprobe_multi_opts, o, .syms = syms.data(), .cookies = cookies.data(), .cnt = syms.size(), .retprobe = ret);
            bpf_program* p = ret ? in.skel->progs.graph_multi_exit : in.skel->progs.graph_multi_entry;
            in.links.push_back(must(bpf_program__attach_kprobe_multi_opts(p, nullptr, &o), ret ? "kretprobe.multi" : "kprobe.multi"));
        }
        instances_.push_back(std::move(in));
        attached_ = n;
        callee_how_ = "kprobe.multi";
    }

    // ---- records ----

    static int on_record(void* ctx, void* data, std::size_t size) {
        auto* self = static_cast<Recorder*>(ctx);
        if (size == sizeof(ksurf_graph_rec)) {
            ksurf_graph_rec r;
            std::memcpy(&r, data, sizeof r);
            if (auto g = self->builder_.add(r)) self->on_graph_(*g);
            return 0;
        }
        if (size < sizeof(ksurf_event)) return 0;
        ksurf_event hdr;
        std::memcpy(&hdr, data, sizeof hdr);
        auto payload = std::span(static_cast<const std::uint8_t*>(data) + sizeof hdr,
                                 std::min<std::size_t>(hdr.data_len, size - sizeof hdr));
        Event ev{hdr.ts_ns, hdr.pid, hdr.tgid, hdr.cpu, std::string(hdr.comm, strnlen(hdr.comm, sizeof hdr.comm)),
                 self->root_.function, decode_bpf(self->root_spec_, payload), {}};
        self->builder_.add_root_event(ev, hdr.probe_id);
        return 0;
    }

    const PlannedProbe& root_;
    RecorderOptions opt_;
    std::function<void(const Graph&)> on_graph_;
    std::vector<std::string> names_;
    std::vector<Fd> maps_;  // events, scratch, recordings, gcounts, pids, cbpf states
    ring_buffer* rb_ = nullptr;
    BpfProgramSpec root_spec_;
    ksurf_layout layout_ = kernel_layout(*opt_.btf);
    std::vector<Instance> instances_;
    std::size_t attached_ = 0;
    std::vector<std::pair<std::string, std::string>> failed_;
    std::string root_how_, callee_how_;
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

void find_preempt_count(ksurf_graph_config& config) {
    std::ifstream in("/proc/kallsyms");
    std::string addr, type, name;
    while (in >> addr >> type >> name && !(config.preempt_count && config.per_cpu_offset)) {
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        if (name == "__preempt_count") config.preempt_count = std::stoull(addr, nullptr, 16);
        if (name == "__per_cpu_offset") config.per_cpu_offset = std::stoull(addr, nullptr, 16);
    }
}

std::unique_ptr<GraphRecorder> make_graph_recorder(const PlannedProbe& root, const std::vector<std::string>& callees,
                                                   RecorderOptions opt, std::function<void(const Graph&)> on_graph) {
    find_preempt_count(opt.config);
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
