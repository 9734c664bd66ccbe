// The BPF backend: picks an attach type per probe, has the attach engine load
// bpf/probe.bpf.c once and clone it per probe with the probe's configuration (one
// kprobe.multi clone for a group of functions sharing one), and decodes the ring buffer.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "internal.h"
#include "ksurf/btf.h"
#include "ksurf/codegen.h"
#include "ksurf/error.h"
#include "ksurf/event.h"
#include "ksurf/features.h"
#include "ksurf/kallsyms.h"
#include "ksurf/ring_reader.h"
#include "ksurf/run_loop.h"
#include "ksurf/tracefs.h"
#include "probe.skel.h"

namespace ksurf {
namespace {

// Room for __data_loc payloads after a record's fixed fields: paths and names, without
// copying kilobytes per event.
constexpr std::uint32_t kDynamicRecordBytes = 256;

bool uses(const Fetch& f, Fetch::Base base) { return f.base == base || (f.skb && uses(*f.skb, base)); }
bool uses(const PlannedProbe& p, Fetch::Base base) {
    return std::any_of(p.fields.begin(), p.fields.end(), [&](const auto& f) { return uses(f.fetch, base); });
}

std::string qualified(const PlannedProbe& p) { return p.module.empty() ? p.function : p.module + ":" + p.function; }

constexpr const char* kProgram = "ksurf_probe";
constexpr const char* kFollowFork = "ksurf_follow_fork";

class Impl final : public BpfBackend {
public:
    Impl(Sink sink, BpfOptions opt) : sink_(std::move(sink)), opt_(std::move(opt)) {
        if (!opt_.features) opt_.features = &own_features_;
        const std::uint32_t rb = opt_.ringbuf_bytes;
        if (rb < 4096 || (rb & (rb - 1))) fail("the BPF ring buffer size must be a power of two of at least 4096 bytes, not {}", rb);
        if (opt_.pids.size() > KSURF_MAX_PIDS) fail("at most {} processes can be traced by pid", KSURF_MAX_PIDS);
        std::vector<std::string> programs{kProgram};
        if (opt_.follow_forks) programs.push_back(kFollowFork);
        // The maps are the template's, shared by every clone: a failed probe never takes
        // them along.
        tmpl_.emplace(elf_of<probe_bpf>(), programs, [rb, this](bpf_map* m) {
            if (std::string_view(bpf_map__name(m)) == "events") bpf_map__set_max_entries(m, rb);
            if (opt_.aggregate) size_aggregate_map(m, *opt_.aggregate);
        });
        rb_.emplace(tmpl_->map("events"), [this](std::span<const std::uint8_t> rec) { on_event(rec); });
        for (std::uint32_t pid : opt_.pids) {
            const std::uint8_t one = 1;
            if (bpf_map_update_elem(tmpl_->map("pids"), &pid, &one, BPF_ANY))
                fail("cannot trace pid {}: {}", pid, errno_text(errno));
        }
        if (opt_.stacks) kallsyms_.emplace(Kallsyms::load());
    }

    ~Impl() override {
        links_.clear();  // detached first: nothing writes to the ring buffer any more
        rb_.reset();
    }

    void add(const PlannedProbe& p) override {
        const std::size_t id = probes_.size();
        probes_.push_back({p.event.empty() ? p.function : p.event, {}, std::nullopt});
        try {
            if (p.kind == ProbeKind::Tracepoint)
                add_tracepoint(p, id);
            else if (!p.binary.empty())
                add_uprobe(p, id);
            else
                add_function(p, id);
        } catch (...) {
            probes_.pop_back();
            throw;
        }
    }

    void start() override {
        started_ = true;
        if (opt_.follow_forks) follow_forks();
        for (auto& g : groups_) {
            if (stop_requested()) break;
            start_group(g);
        }
        groups_.clear();
    }

    bool poll(int timeout_ms) override { return rb_->poll(timeout_ms); }

    RunStats stats() const override {
        RunStats s;
        s.events = delivered_;
        const auto counts = sum_per_cpu(tmpl_->map("scratch"), 0, KSURF_STAT_MAX);
        if (opt_.count_filtered) s.filtered = counts[KSURF_STAT_FILTERED];
        s.dropped = counts[KSURF_STAT_DROPPED];
        return s;
    }

    const std::vector<BpfAttachment>& attachments() const override { return attachments_; }

    BpfAggregateMaps aggregate_maps() const override {
        BpfAggregateMaps m{tmpl_->map("aggs"), tmpl_->map("agg_stacks"), {}, 0, 0};
        if (!probes_.empty()) {
            m.key = probes_.front().spec.key_outputs;
            m.stack_at = probes_.front().spec.config.agg.stack_at;
        }
        m.full = sum_per_cpu(tmpl_->map("scratch"), 0, KSURF_STAT_MAX)[KSURF_STAT_AGG_FULL];
        return m;
    }

private:
    struct Probe {
        std::string name;  // Event::probe
        BpfProgramSpec spec;
        std::optional<tracefs::EventFormat> format;  // raw records
    };

    // kprobes that can share one kprobe.multi link, attached in start() when the whole
    // set of probes is known.
    struct Group {
        BpfAttach attach;
        BpfProgramSpec spec;
        std::vector<std::size_t> ids;
        std::vector<std::string> functions;
        std::vector<PlannedProbe> plans;  // for plain kprobes when the group stays single
        std::vector<std::string> notes;   // why not kprobe.multi, when that failed
    };

    // ---- attach type selection ----

    // tp_btf, then raw_tp, for TP_PROTO arguments; the classic tracepoint for the record.
    void add_tracepoint(const PlannedProbe& p, std::size_t id) {
        const bool whole = std::none_of(p.fields.begin(), p.fields.end(), [](const auto& f) { return !f.hidden; });
        std::vector<BpfAttach> order{BpfAttach::TpBtf, BpfAttach::RawTp, BpfAttach::Tracepoint};
        std::vector<std::string> notes;
        if (uses(p, Fetch::Base::Arg)) {
            order.pop_back();  // the classic tracepoint's context is the record
        } else if (whole || uses(p, Fetch::Base::Record)) {
            order = {BpfAttach::Tracepoint};
            notes.push_back(fmt::format("tp_btf: {} the record, which only the classic tracepoint's context has",
                                        whole ? "it prints" : "its fields are from"));
        }
        for (BpfAttach a : order) {
            const auto name = bpf_attach_name(a);
            const Feature need = a == BpfAttach::TpBtf ? Feature::TpBtf : a == BpfAttach::RawTp ? Feature::RawTp : Feature::Tracepoint;
            if (const auto& st = opt_.features->get(need); !st.ok) {
                notes.push_back(fmt::format("{}: {}", name, st.reason));
                continue;
            }
            BpfFrame frame;
            frame.attach = a;
            if (a == BpfAttach::Tracepoint && whole) {
                auto fmt = tracefs::read_format(tracefs::root(), p.subsystem, p.event);
                frame.record_size = fmt.fixed_size() + (fmt.has_dynamic() ? kDynamicRecordBytes : 0);
                probes_[id].format = std::move(fmt);
            } else if (a != BpfAttach::Tracepoint) {
                set_arg_slots(frame, btf().find_tracepoint_proto(p.event));
            }
            probes_[id].spec = encode_bpf(p, frame);  // the same limits for each type: not a fallback
            try {
                links_.add(instance(probes_[id].spec.config, id, a, target(a, p)));
                decided(p, a, notes);
                return;
            } catch (const Error& e) {
                notes.push_back(fmt::format("{}: {}", name, e.what()));
            }
        }
        fail("{}: no BPF attach type can run it: {}", probe_label(p), fmt::join(notes, "; "));
    }

    // Why ATTACH cannot run P on this kernel, before trying; nullopt when it may.
    std::optional<std::string> unavailable(BpfAttach a, const PlannedProbe& p) {
        auto missing = [&](Feature f) -> std::optional<std::string> {
            const auto& st = opt_.features->get(f);
            if (st.ok) return std::nullopt;
            return st.reason;
        };
        switch (a) {
        case BpfAttach::Fentry:
        case BpfAttach::Fexit:
            if (auto m = missing(a == BpfAttach::Fentry ? Feature::Fentry : Feature::Fexit)) return m;
            if (p.offset) return "it attaches at function entry only, not at an offset";
            if (uses(p, Fetch::Base::Reg)) return "registers need a kprobe's struct pt_regs";
            if (uses(p, Fetch::Base::Caller)) return "'caller' is the return address a kprobe finds at the stack pointer";
            if (!function(p)) return fmt::format("'{}' has no BTF", qualified(p));
            return std::nullopt;
        case BpfAttach::KprobeMulti:
        case BpfAttach::KretprobeMulti:
            if (auto m = missing(Feature::KprobeMulti)) return m;
            if (p.offset) return "it attaches at function entry only, not at an offset";
            [[fallthrough]];
        default:
            if (auto m = missing(Feature::Kprobe)) return m;
            if (p.kind == ProbeKind::Return && uses(p, Fetch::Base::Arg))
                return "arguments are gone when a kretprobe runs (fexit keeps them)";
            return std::nullopt;
        }
    }

    void add_function(const PlannedProbe& p, std::size_t id) {
        const bool ret = p.kind == ProbeKind::Return;
        const BpfAttach fentry = ret ? BpfAttach::Fexit : BpfAttach::Fentry;
        const BpfAttach kprobe = ret ? BpfAttach::Kretprobe : BpfAttach::Kprobe;
        const BpfAttach multi = ret ? BpfAttach::KretprobeMulti : BpfAttach::KprobeMulti;
        std::vector<BpfAttach> order;
        switch (opt_.attach) {
        case FunctionAttach::Auto: order = {fentry, kprobe}; break;
        case FunctionAttach::Fentry: order = {fentry}; break;
        case FunctionAttach::Kprobe: order = {kprobe}; break;
        case FunctionAttach::KprobeMulti: order = {multi}; break;
        }
        const bool forced = opt_.attach != FunctionAttach::Auto;
        std::vector<std::string> notes;
        for (BpfAttach a : order) {
            const auto name = bpf_attach_name(a);
            if (auto why = unavailable(a, p)) {
                if (forced) fail("{}: cannot use {}: {}", probe_label(p), name, *why);
                notes.push_back(fmt::format("{}: {}", name, *why));
                continue;
            }
            probes_[id].spec = encode_bpf(p, frame(a, p));  // limits are the same for every type: not a fallback
            // Several functions with one spec share a kprobe.multi link; which ones is
            // known in start().
            const bool may_group = a == kprobe && opt_.attach == FunctionAttach::Auto && !unavailable(multi, p);
            if (!started_ && (a == multi || may_group)) {
                group(p, id, a, notes);
                return;
            }
            try {
                links_.add(instance(probes_[id].spec.config, id, a, target(a, p)));
                decided(p, a, notes);
                return;
            } catch (const Error& e) {
                if (forced) fail("{}: {}", probe_label(p), e.what());
                notes.push_back(fmt::format("{}: {}", name, e.what()));
            }
        }
        fail("{}: no BPF attach type can run it: {}", probe_label(p), fmt::join(notes, "; "));
    }

    // P/R: one attach type, whatever --backend says about kernel functions.
    void add_uprobe(const PlannedProbe& p, std::size_t id) {
        const BpfAttach a = p.kind == ProbeKind::Return ? BpfAttach::Uretprobe : BpfAttach::Uprobe;
        probes_[id].spec = encode_bpf(p, frame(a, p));
        try {
            links_.add(instance(probes_[id].spec.config, id, a, target(a, p)));
        } catch (const Error& e) {
            fail("{}: {}", probe_label(p), e.what());
        }
        decided(p, a, {});
    }

    // P's function in BTF; nullopt when it has none (a kprobe still attaches to it).
    std::optional<Function> function(const PlannedProbe& p) {
        try {
            return btf().find_function(qualified(p));
        } catch (const Error&) {
            return std::nullopt;
        }
    }

    // Where attach type A finds what P fetches.
    BpfFrame frame(BpfAttach a, const PlannedProbe& p) {
        BpfFrame f;
        f.attach = a;
        if (auto fn = p.binary.empty() ? function(p) : std::nullopt) set_arg_slots(f, *fn);
        if (a != BpfAttach::Fentry && a != BpfAttach::Fexit) {
            if (regs_.empty()) regs_ = pt_regs_offsets(btf());
            f.regs = regs_;
        }
        return f;
    }

    void group(const PlannedProbe& p, std::size_t id, BpfAttach a, const std::vector<std::string>& notes) {
        attachments_.push_back({probe_label(p), a, fmt::format("{}", fmt::join(notes, "; "))});
        const ksurf_config& key = probes_[id].spec.config;
        auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& g) {
            return g.attach == a && std::memcmp(&g.spec.config, &key, sizeof key) == 0;
        });
        if (g == groups_.end()) g = groups_.insert(g, {a, probes_[id].spec, {}, {}, {}, {}});
        g->ids.push_back(id);
        g->functions.push_back(p.function);  // kprobe.multi looks names up without "module:"
        g->plans.push_back(copy_of(p));
    }

    // A group keeps what start() needs of its plans: kind, target, label; not their fields and
    // filters, once per function of a glob. (Member by member, like the tracefs backend's
    // Slot: the two copy different members and share nothing but the shape.)
    static PlannedProbe copy_of(const PlannedProbe& p) {
        PlannedProbe c;
        c.kind = p.kind;
        c.module = p.module;
        c.function = p.function;
        c.offset = p.offset;
        c.event = p.event;
        c.text = p.text;
        return c;
    }

    void start_group(Group& g) {
        const bool multi = g.attach == BpfAttach::KprobeMulti || g.attach == BpfAttach::KretprobeMulti;
        const bool ret = g.attach == BpfAttach::Kretprobe || g.attach == BpfAttach::KretprobeMulti;
        if (multi || g.ids.size() > 1) {
            const BpfAttach a = ret ? BpfAttach::KretprobeMulti : BpfAttach::KprobeMulti;
            try {
                links_.add(instance_multi(g, a));
                for (std::size_t id : g.ids) decided_at(id, a, g.notes);
                return;
            } catch (const Error& e) {
                const std::string who = g.ids.size() > 1 ? fmt::format(" (with {} more functions of its spec)", g.ids.size() - 1) : "";
                if (multi) fail("{}{}: {}", probe_label(g.plans.front()), who, e.what());
                // Plain kprobes then, each failing on its own if it must.
                g.notes.push_back(fmt::format("{}: {}", bpf_attach_name(a), e.what()));
            }
        }
        const BpfAttach a = ret ? BpfAttach::Kretprobe : BpfAttach::Kprobe;
        for (std::size_t i = 0; i < g.ids.size() && !stop_requested(); i++) {
            try {
                links_.add(instance(g.spec.config, g.ids[i], a, target(a, g.plans[i])));
            } catch (const Error& e) {
                fail("{}: {}{}", probe_label(g.plans[i]), e.what(),
                     g.notes.empty() ? "" : fmt::format(" ({})", fmt::join(g.notes, "; ")));
            }
            decided_at(g.ids[i], a, g.notes);
        }
    }

    void decided(const PlannedProbe& p, BpfAttach a, const std::vector<std::string>& notes) {
        attachments_.push_back({probe_label(p), a, fmt::format("{}", fmt::join(notes, "; "))});
        explain(attachments_.back());
    }

    // A grouped probe's choice, made in start(); attachments_ and probes_ share indexes.
    void decided_at(std::size_t id, BpfAttach a, const std::vector<std::string>& group_notes) {
        auto& at = attachments_[id];
        at.attach = a;
        for (const auto& n : group_notes) at.why += (at.why.empty() ? "" : "; ") + n;
        explain(at);
    }

    // The attach type, then how the probe just loaded runs its filter (filter_note_).
    void explain(const BpfAttachment& a) const {
        if (!opt_.explain) return;
        opt_.explain(fmt::format("{}: {}{}", a.probe, bpf_attach_name(a.attach), a.why.empty() ? "" : " (" + a.why + ")"));
        if (!filter_note_.empty()) opt_.explain(fmt::format("{}: {}", a.probe, filter_note_));
    }

    // ---- loading ----

    // Where A attaches P, with the BTF id tracing programs are loaded for.
    AttachTarget target(BpfAttach a, const PlannedProbe& p) {
        AttachTarget t;
        switch (a) {
        case BpfAttach::Fentry:
        case BpfAttach::Fexit: {
            const Function fn = btf().find_function(qualified(p));
            t.name = p.function;
            t.btf_id = fn.btf_id;
            t.btf_module = fn.module;
            break;
        }
        case BpfAttach::TpBtf: {
            const Function proto = btf().find_tracepoint_proto(p.event);
            t.name = p.event;
            t.btf_id = proto.btf_id;
            t.btf_module = proto.module;
            break;
        }
        case BpfAttach::Tracepoint:
            t.subsystem = p.subsystem;
            t.name = p.event;
            break;
        case BpfAttach::RawTp: t.name = p.event; break;
        case BpfAttach::Uprobe:
        case BpfAttach::Uretprobe:
            t.name = p.function;
            t.binary = p.binary;
            t.offset = p.file_offset;
            break;
        default:
            t.name = qualified(p);
            t.offset = p.offset;
        }
        return t;
    }

    // CFG with what every probe of the run shares.
    ksurf_config configured(const ksurf_config& cfg, std::size_t id) {
        ksurf_config c = cfg;
        c.probe_id = static_cast<std::uint32_t>(id);
        c.by_pid = !opt_.pids.empty();
        c.stack = opt_.stacks;
        c.count_filtered = opt_.count_filtered;
        c.cgroup_id = opt_.cgroup_id;
        c.self_tgid = opt_.exclude_self ? static_cast<std::uint32_t>(getpid()) : 0;
        // The layout takes the kernel's BTF, which a tracepoint probe does not need
        // otherwise (20 ms of its start-up and 6 MiB, 6.18): only probes that read packets,
        // compare comm in the filter (which loads it from the task) and -c's fork follower
        // pay for it.
        const bool packets = c.ncbpf || c.snaplen ||
                             std::any_of(c.fields, c.fields + c.nfields, [](const auto& f) { return f.packet_step != KSURF_NO_PACKET; });
        const bool comm = std::any_of(c.fields, c.fields + c.nfilter, [](const auto& f) { return f.base == KSURF_BASE_COMM; });
        if (packets || comm || opt_.follow_forks) {
            try {
                if (!layout_) layout_ = kernel_layout(btf());
                c.layout = *layout_;
            } catch (const Error&) {
                // Without BTF, the filter copies comm with the helper.
                if (packets || opt_.follow_forks) throw;
            }
        }
        return c;
    }

    // CFG as a clone's read-only data.
    Fd rodata(const ksurf_config& cfg) const {
        std::vector<std::uint8_t> data = tmpl_->rodata();
        probe_bpf::probe_bpf__rodata ro;
        std::memcpy(&ro, data.data(), sizeof ro);
        ro.cfg = cfg;
        std::memcpy(data.data(), &ro, sizeof ro);
        return tmpl_->make_rodata(data);
    }

    // The probe program for CFG, its filter compiled where it can be (filter_note_ says
    // whether), loaded as A for T.
    Fd load(const ksurf_config& cfg, std::size_t id, BpfAttach a, const AttachTarget& t = {}) {
        return load_filtered(*tmpl_, kProgram, a, t, configured(cfg, id), [this](const ksurf_config& c) { return rodata(c); },
                             true, &filter_note_);
    }

    // The probe program configured with CFG, loaded as A and attached to T.
    Link instance(const ksurf_config& cfg, std::size_t id, BpfAttach a, const AttachTarget& t) {
        const Fd prog = load(cfg, id, a, t);
        return attach(prog.get(), a, t);
    }

    Link instance_multi(const Group& g, BpfAttach a) {
        ksurf_config cfg = g.spec.config;
        cfg.id_from_cookie = 1;
        const Fd prog = load(cfg, 0, a);
        std::vector<const char*> syms;
        for (const auto& f : g.functions) syms.push_back(f.c_str());
        return attach_multi(prog.get(), a == BpfAttach::KretprobeMulti, syms, {g.ids.begin(), g.ids.end()});
    }

    // -c: processes the traced ones fork join the pids map.
    void follow_forks() {
        const Fd ro = rodata(configured({}, 0));
        const Fd prog = tmpl_->load(kFollowFork, BpfAttach::RawTp, ro.get());
        AttachTarget fork;
        fork.name = "sched_process_fork";
        links_.add(attach(prog.get(), BpfAttach::RawTp, fork));
    }

    const Btf& btf() {
        if (opt_.btf) return *opt_.btf;
        if (!own_btf_) own_btf_.emplace(Btf::kernel());
        return *own_btf_;
    }

    // ---- events ----

    void on_event(std::span<const std::uint8_t> rec) {
        if (rec.size() < sizeof(ksurf_event)) return;
        ksurf_event hdr;
        std::memcpy(&hdr, rec.data(), sizeof hdr);
        if (hdr.probe_id >= probes_.size()) return;
        const Probe& probe = probes_[hdr.probe_id];
        auto payload = rec.subspan(sizeof hdr, std::min<std::size_t>(hdr.data_len, rec.size() - sizeof hdr));
        const std::size_t stack_len = std::min<std::size_t>(hdr.stack_len, payload.size());
        const auto stack = payload.last(stack_len);
        payload = payload.first(payload.size() - stack_len);
        // One event reused: its strings and vectors keep their storage between records.
        Event& ev = event_;
        ev.stack.clear();
        ev.packet.clear();
        ev.packet_len = 0;
        ev.skb = 0;
        ev.ts_ns = hdr.ts_ns;
        ev.pid = hdr.pid;
        ev.tgid = hdr.tgid;
        ev.cpu = hdr.cpu;
        ev.comm.assign(hdr.comm, strnlen(hdr.comm, sizeof hdr.comm));
        ev.probe = probe.name;
        decode_bpf(probe.spec, payload, ev.fields);
        decode_bpf_packet(probe.spec, payload, ev);
        if (kallsyms_)
            for (std::size_t at = 0; at + 8 <= stack.size(); at += 8) {
                std::uint64_t ip;
                std::memcpy(&ip, stack.data() + at, sizeof ip);
                ev.stack.push_back(kallsyms_->describe(ip));
            }
        if (probe.spec.raw_record && probe.format && probe.spec.config.record_out <= payload.size())
            decode_tracepoint(*probe.format, payload.subspan(probe.spec.config.record_out), ev.fields);
        delivered_++;
        sink_(ev);
    }

    Sink sink_;
    BpfOptions opt_;
    Features own_features_;
    std::optional<Btf> own_btf_;
    std::map<std::string, std::int32_t, std::less<>> regs_;
    std::optional<Kallsyms> kallsyms_;  // -s
    std::optional<BpfTemplate> tmpl_;
    std::optional<ksurf_layout> layout_;
    std::string filter_note_;  // how the last probe loaded runs its filter, for -v
    std::optional<RingReader> rb_;
    Event event_;
    std::vector<Probe> probes_;
    std::vector<Group> groups_;
    Links links_;
    std::vector<BpfAttachment> attachments_;
    bool started_ = false;
    std::uint64_t delivered_ = 0;
};

}  // namespace

std::unique_ptr<BpfBackend> make_bpf_backend(Backend::Sink sink, BpfOptions options) {
    return std::make_unique<Impl>(std::move(sink), std::move(options));
}

}  // namespace ksurf
