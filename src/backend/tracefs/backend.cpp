// The tracefs backend at run time: a private instance holding the run's events, kprobes in
// the run's own group, and the instance's per-CPU ring buffers read in binary (by the
// tracefs reader) and decoded as the plan says.
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "bits.h"
#include "../../tracefs/libtracefs.h"
#include "ksurf/file.h"
#include "ksurf/error.h"
#include "ksurf/kallsyms.h"
#include "ksurf/kconfig.h"
#include "ksurf/tracefs_backend.h"
#include "ksurf/tracefs_reader.h"

namespace ksurf {
namespace {

namespace fs = std::filesystem;
using tracefs::FieldSource;
using tracefs::HistKey;

std::string slurp(const fs::path& path) { return read_file(path).value_or(""); }

// Mounts tracefs when needed and points libtracefs at the same mount.
std::string tracing_root() {
    std::string root = tracefs::root();
    if (tracefs_set_tracing_dir(root.data()) != 0) fail("libtracefs cannot use {}", root);
    return root;
}

struct InstanceDeleter {
    void operator()(tracefs_instance* i) const {
        // Disabling first leaves the run's kprobes removable even if rmdir fails.
        tracefs_instance_file_write(i, "events/enable", "0");
        tracefs_instance_destroy(i);
        tracefs_instance_free(i);
    }
};
using InstancePtr = std::unique_ptr<tracefs_instance, InstanceDeleter>;

struct DyneventDeleter {
    void operator()(tracefs_dynevent* d) const {
        // Forced only when enabled elsewhere: forcing disables it in every instance.
        if (tracefs_dynevent_destroy(d, false) != 0) tracefs_dynevent_destroy(d, true);
        tracefs_dynevent_free(d);
    }
};
using DyneventPtr = std::unique_ptr<tracefs_dynevent, DyneventDeleter>;

// The kernel's reason for refusing DEFINITION, from DIR's error_log (the top one for
// kprobes, the instance's for hist triggers):
//   [  12.345678] trace_kprobe: error: Invalid probed address or symbol
//     Command: p:ksurf_42/p0 nosuch __comm=$comm
//              ^
std::optional<std::string> logged_refusal(const std::string& dir, std::string_view definition) {
    std::istringstream in(slurp(fs::path(dir) / "error_log"));
    std::optional<std::string> reason;
    std::string line, error, command;
    std::size_t command_at = 0;
    while (std::getline(in, line)) {
        if (auto at = line.find(": error: "); at != std::string::npos && line.starts_with("[")) {
            error = line.substr(at + 9);
            command.clear();
        } else if (auto c = line.find("Command: "); c != std::string::npos) {
            command_at = c + 9;
            command = line.substr(command_at);
        } else if (auto caret = line.find('^'); caret != std::string::npos && !command.empty()) {
            // Several refusals may be logged; the last one for this definition is ours.
            if (!definition.starts_with(command.substr(0, command.find_last_not_of(' ') + 1))) continue;
            std::size_t pos = caret >= command_at ? caret - command_at : 0;
            auto token = pos < command.size() ? command.substr(pos, command.find(' ', pos) - pos) : std::string();
            reason = token.empty() ? error : fmt::format("{} (at '{}')", error, token);
        }
    }
    return reason;
}

// After a refused filter the event's filter file holds the kernel's parse error.
std::string filter_refusal(tracefs_instance* inst, const std::string& system, const std::string& event, int err) {
    char* text = tracefs_event_file_read(inst, system.c_str(), event.c_str(), "filter", nullptr);
    std::string reason = errno_text(err);
    if (text) {
        std::string_view s(text);
        if (auto at = s.find("parse_error: "); at != std::string_view::npos)
            reason = std::string(s.substr(at + 13, s.find('\n', at) - at - 13));
        std::free(text);
    }
    return reason;
}

std::string c_string(std::span<const std::uint8_t> bytes, std::size_t limit) {
    bytes = bytes.first(std::min(bytes.size(), limit));
    return {bytes.begin(), std::find(bytes.begin(), bytes.end(), std::uint8_t{0})};
}

// A printed field: where it is in the record and how the plan wants it shown.
struct Slot {
    std::string name;
    FieldSource::Kind kind = FieldSource::Kind::Record;
    tracefs::Field field;       // Record: offset and size in the record
    Display display = Display::Decimal;
    unsigned swap_bits = 0;
    unsigned bits = 64;         // the value's width
    unsigned shift = 0;         // a tracepoint bitfield's bit offset (kprobes shift in the kernel)
    bool is_signed = false;
    bool is_string = false;
    std::size_t limit = SIZE_MAX;  // strings: the plan's read limit

    Value number(std::uint64_t raw) const {
        raw = tracefs::low_bits(raw >> shift, bits);
        if (swap_bits) raw = swap_low(raw, swap_bits);
        return is_signed ? Value{tracefs::sign_extend(raw, bits), display} : Value{raw, display};
    }

    // Strings in kprobe and tracepoint records alike: __data_loc/__rel_loc or char arrays.
    std::optional<std::string> text(const tracefs::Record& r) const {
        const auto rec = r.data;
        if (field.offset + field.size > rec.size()) return std::nullopt;
        if (!field.data_loc && !field.rel_loc) return c_string(rec.subspan(field.offset, field.size), limit);
        auto loc = static_cast<std::uint32_t>(*r.number(field.offset, 4));
        std::size_t off = (loc & 0xffff) + (field.rel_loc ? field.offset + field.size : 0);
        if (off > rec.size()) return std::nullopt;
        return c_string(rec.subspan(off, std::min<std::size_t>(loc >> 16, rec.size() - off)), limit);
    }

    std::optional<Value> read(const tracefs::Record& rec, const Event& ev, std::uint32_t tgid) const {
        switch (kind) {
        case FieldSource::Kind::Comm: return Value{ev.comm, Display::String};
        case FieldSource::Kind::Pid: return number(tgid);
        case FieldSource::Kind::Tid: return number(ev.pid);
        case FieldSource::Kind::Cpu: return number(ev.cpu);
        case FieldSource::Kind::Record: break;
        }
        if (is_string || field.data_loc || field.rel_loc) {
            auto s = text(rec);
            if (!s) return std::nullopt;
            return Value{*s, Display::String};
        }
        const auto raw = rec.number(field);
        if (!raw) return std::nullopt;
        return number(*raw);
    }
};

// Whether PID is a live ksurf run: its comm is ours (a reused pid runs another program).
bool live_run(pid_t pid) {
    if (pid == getpid()) return true;
    std::string theirs = slurp(fs::path("/proc") / std::to_string(pid) / "comm");
    return !theirs.empty() && theirs == slurp("/proc/self/comm");
}

// A run's probe events: kprobes, uprobes for P/R, event probes on tracepoints.
constexpr unsigned kKprobeTypes = TRACEFS_DYNEVENT_KPROBE | TRACEFS_DYNEVENT_KRETPROBE | TRACEFS_DYNEVENT_UPROBE |
                                  TRACEFS_DYNEVENT_URETPROBE | TRACEFS_DYNEVENT_EPROBE;

// Removes the instance and the kprobe group of the run with PID.
tracefs::StaleRun remove_run(pid_t pid) {
    tracefs::StaleRun r{pid};
    const auto name = tracefs::run_name(pid);
    if (tracefs_instance_exists(name.c_str())) {
        // The instance goes first: events enabled in it keep the kprobes in place.
        if (InstancePtr inst{tracefs_instance_alloc(nullptr, name.c_str())}) {
            tracefs_instance_file_write(inst.get(), "events/enable", "0");
            r.instance = tracefs_instance_destroy(inst.get()) == 0;
            tracefs_instance_free(inst.release());
        }
    }
    if (tracefs_dynevent** all = tracefs_dynevent_get_all(kKprobeTypes, name.c_str())) {
        for (auto** d = all; *d; d++) r.kprobes += tracefs_dynevent_destroy(*d, true) == 0;
        tracefs_dynevent_list_free(all);
    }
    return r;
}

struct Probe {
    std::string name;  // printed
    tracefs::TracefsProbe t;
    tracefs::EventFormat format;
    std::vector<Slot> slots;
    std::optional<Slot> comm;  // kprobes: __comm
    std::vector<Slot> hist_keys;  // an aggregating run's: how each key of t.hist is shown
    PacketPresence key_presence;  // and which of them are packet names and their guards
    DyneventPtr kprobe;
};

class InstanceBackend final : public TracefsBackend {
public:
    InstanceBackend(Sink sink, tracefs::SkbLayout skb, TracefsOptions opt)
        : sink_(std::move(sink)), root_(tracing_root()), opt_(std::move(opt)) {
        ctx_.group = tracefs::run_name(getpid());
        ctx_.skb = skb;
        ctx_.aggregate = opt_.aggregate;
        // Whatever already has our name was left by a killed run that had our pid.
        remove_run(getpid());
        instance_.reset(tracefs_instance_create(ctx_.group.c_str()));
        if (!instance_) fail("cannot create the tracefs instance {}: {}", ctx_.group, errno_text(errno));
        if (tracefs_instance_file_write(instance_.get(), "trace_clock", "mono") < 0)
            fail("cannot set the trace clock of {} to mono: {}", ctx_.group, errno_text(errno));
        // Like the BPF ring buffer, a full buffer drops new events (counted in stats) rather
        // than overwriting unread ones; tgids are saved for tasks gone by the time we read.
        tracefs_instance_file_write(instance_.get(), "options/overwrite", "0");
        tracefs_instance_file_write(instance_.get(), "options/record-tgid", "1");
        if (!opt_.pids.empty()) {
            std::vector<std::string> tids;
            for (auto pid : opt_.pids)
                for (auto& t : tracefs::threads_of(pid)) tids.push_back(std::move(t));
            option("set_event_pid", fmt::format("{}", fmt::join(tids, " ")));
            // Threads and processes started later join only by following forks.
            if (opt_.follow_forks) option("options/event-fork", "1");
        }
        if (opt_.stacks) {
            stack_format_ = tracefs::read_format(root_, "ftrace", "kernel_stack");
            option("options/stacktrace", "1");
        }
        if (opt_.buffer_kb) option("buffer_size_kb", std::to_string(opt_.buffer_kb));
    }

    ~InstanceBackend() override {
        // Removing the instance drops its triggers too (the -S script relies on that);
        // removed first, the kprobes' removal does not depend on it.
        for (const auto& p : probes_)
            if (p.t.hist && started_)
                tracefs_event_file_append(instance_.get(), p.t.system.c_str(), p.t.event.c_str(), "trigger",
                                          ("!" + p.t.hist->line(p.t.filter)).c_str());
    }

    // FILTER and not ksurf's own threads: its reads of the buffers and writes of the output
    // would feed its own probes. The kernel's filter matches threads, and ksurf starts none
    // in a tracefs run after this.
    static std::string without_self(const std::string& filter) {
        std::vector<std::string> terms;
        for (const auto& tid : tracefs::threads_of(static_cast<std::uint32_t>(getpid())))
            terms.push_back("common_pid != " + tid);
        const std::string self = fmt::format("{}", fmt::join(terms, " && "));
        return filter.empty() ? self : fmt::format("({}) && {}", filter, self);
    }

    void add(const PlannedProbe& plan) override {
        if (started_) fail("{}: probes must be added before the trace starts", plan.text);
        const bool is_kprobe = plan.kind != ProbeKind::Tracepoint;
        if (!plan.binary.empty() && !fs::exists(fs::path(root_) / "uprobe_events"))
            fail("{}: uprobes are not available on this kernel{}", plan.text, config_hint("CONFIG_UPROBE_EVENTS"));
        if (is_kprobe && plan.binary.empty() && !fs::exists(fs::path(root_) / "kprobe_events")) {
            auto hint = config_hint("CONFIG_KPROBES");
            fail("{}: kprobes are not available on this kernel{}", plan.text,
                 hint.empty() ? config_hint("CONFIG_KPROBE_EVENTS") : hint);
        }
        Probe p;
        p.name = plan.event;
        if (!is_kprobe) {
            for (const auto& other : probes_)
                if (other.t.system == plan.subsystem && other.t.event == plan.event)
                    fail("{}: {}/{} is traced twice; tracefs keeps one filter per event", plan.text, plan.subsystem,
                         plan.event);
            ctx_.tracepoints.push_back(tracefs::read_format(root_, plan.subsystem, plan.event));
        }
        if (!is_kprobe && !eprobes_) eprobes_ = tracefs::eprobes_available();
        ctx_.eprobes = eprobes_.value_or(false);
        p.t = tracefs::translate(plan, probes_.size(), ctx_);
        // The notes are on how fields print: an aggregation prints none.
        if (!p.t.hist)
            for (const auto& note : p.t.notes) fmt::print(stderr, "ksurf: {}\n", note);
        if (p.t.dynamic()) {
            create_kprobe(plan, p);
            p.format = tracefs::read_format(root_, p.t.system, p.t.event);
            if (is_kprobe) {
                p.comm.emplace();
                p.comm->field = field_of(plan, p, "__comm");
            }
        } else {
            p.format = ctx_.tracepoints.back();
        }
        if (opt_.exclude_self) p.t.filter = without_self(p.t.filter);
        // An aggregation's filter is its trigger's `if` clause.
        if (!p.t.hist && !p.t.filter.empty() && tracefs_event_file_write(instance_.get(), p.t.system.c_str(), p.t.event.c_str(), "filter",
                                                             p.t.filter.c_str()) < 0) {
            int err = errno;
            fail("{}: the kernel refused the filter '{}': {}", plan.text, p.t.filter,
                 filter_refusal(instance_.get(), p.t.system, p.t.event, err));
        }
        for (const auto& src : p.t.fields) p.slots.push_back(slot(plan, p, src));
        if (p.t.hist) {
            for (const auto& k : p.t.hist->keys)
                p.hist_keys.push_back(k.print == HistKey::Print::Stack ? Slot{} : slot(plan, p, k.source));
            p.key_presence = key_presence(plan);
        }
        probes_.push_back(std::move(p));
    }

    void start() override {
        std::vector<const tracefs::EventFormat*> events;
        for (std::size_t i = 0; i < probes_.size(); i++) {
            events.push_back(&probes_[i].format);
            by_id_[probes_[i].format.id] = i;
        }
        if (stack_format_) events.push_back(&*stack_format_);
        // Events go to the sink as each pass reads them; -s holds one back per CPU for its stack.
        reader_.emplace(root_, ctx_.group, events, [this](const tracefs::Record& r) { deliver(r); }, [this] {
            while (!pending_.empty()) flush(pending_.begin()->first);
        });
        started_ = true;
        for (const auto& p : probes_) {
            if (p.t.hist) {
                trigger(p);
                continue;
            }
            if (tracefs_event_file_write(instance_.get(), p.t.system.c_str(), p.t.event.c_str(), "enable", "1") < 0)
                fail("cannot enable {}/{}: {}", p.t.system, p.t.event, errno_text(errno));
        }
    }

    AggTable aggregate(const std::vector<PlannedProbe>& plans) override {
        const AggregateOptions& opt = *opt_.aggregate;
        AggTable t = agg_table(opt, plans.front());
        t.ceil_log2 = true;
        t.bounds = false;
        std::map<std::string, AggRow> rows;
        for (const auto& p : probes_) {
            char* text = tracefs_event_file_read(instance_.get(), p.t.system.c_str(), p.t.event.c_str(), "hist", nullptr);
            if (!text) fail("cannot read {}/{}/hist: {}", p.t.system, p.t.event, errno_text(errno));
            const std::string hist(text);
            std::free(text);
            const tracefs::HistFile h = tracefs::parse_hist(hist, *p.t.hist);
            t.full += h.dropped;
            t.map_size = p.t.hist->size;
            for (const auto& e : h.entries) add_entry(p, e, opt.folded, rows);
        }
        for (auto& [id, row] : rows) t.rows.push_back(std::move(row));
        rank(t, 0);
        return t;
    }

    bool poll(int timeout_ms) override {
        if (!reader_) return false;
        // Hist triggers keep their tables in the kernel: nothing to read until they print.
        if (opt_.aggregate) return ::poll(nullptr, 0, timeout_ms) >= 0 || errno != EINTR;
        return reader_->poll(timeout_ms);
    }

    RunStats stats() const override {
        // `filtered` stays unset: event filters discard without counting.
        RunStats s;
        s.events = delivered_;
        if (reader_) s.dropped = reader_->dropped();
        return s;
    }

private:
    void trigger(const Probe& p) {
        const std::string line = p.t.hist->line(p.t.filter);
        if (tracefs_event_file_append(instance_.get(), p.t.system.c_str(), p.t.event.c_str(), "trigger", line.c_str()) >= 0)
            return;
        const int err = errno;
        char* dir = tracefs_instance_get_dir(instance_.get());
        auto reason = dir ? logged_refusal(dir, line) : std::nullopt;
        tracefs_put_tracing_file(dir);
        fail("{}/{}: the kernel refused the hist trigger '{}': {}", p.t.system, p.t.event, line,
             reason ? *reason : errno_text(err));
    }

    // Entry E of P's hist file added into the row of its ksurf key.
    void add_entry(const Probe& p, const tracefs::HistEntry& e, bool folded, std::map<std::string, AggRow>& rows) {
        const auto& keys = p.t.hist->keys;
        AggRow key;
        std::optional<std::size_t> bucket;
        for (std::size_t i = 0; i < keys.size(); i++) {
            const Slot& s = p.hist_keys[i];
            switch (keys[i].print) {
            case HistKey::Print::Log2: bucket = std::stoull(e.keys[i]) + 1; continue;
            case HistKey::Print::Stack:
                for (const auto& frame : e.stack) key.stack.push_back(folded ? frame.substr(0, frame.find('+')) : frame);
                continue;
            default: break;
            }
            if (!keys[i].shown) continue;
            Value v{e.keys[i], Display::String};
            if (keys[i].print == HistKey::Print::Number) v = s.number(std::stoull(e.keys[i]));
            key.key.push_back({s.name, std::move(v)});
        }
        settle_packet_names(p.key_presence, key.key);
        AggRow& row = rows.try_emplace(key_id(key), std::move(key)).first->second;
        row.count += e.hits;
        row.sum += e.value;
        if (bucket) {
            row.buckets.resize(kLog2Buckets);
            row.buckets[std::min(*bucket, kLog2Buckets - 1)] += e.hits;
        }
    }

    void option(const char* file, const std::string& value) {
        if (tracefs_instance_file_write(instance_.get(), file, value.c_str()) < 0)
            fail("cannot write '{}' to {}/{}: {}", value, ctx_.group, file, errno_text(errno));
    }

    void create_kprobe(const PlannedProbe& plan, Probe& p) {
        const auto& t = p.t;
        const bool ret = plan.kind == ProbeKind::Return;
        if (!t.attached.empty())
            p.kprobe.reset(tracefs_eprobe_alloc(t.system.c_str(), t.event.c_str(), plan.subsystem.c_str(), plan.event.c_str(),
                                                t.args.c_str()));
        else if (t.uprobe)
            p.kprobe.reset((ret ? tracefs_uretprobe_alloc : tracefs_uprobe_alloc)(
                t.system.c_str(), t.event.c_str(), plan.binary.c_str(), plan.file_offset, t.args.c_str()));
        else
            p.kprobe.reset(ret ? tracefs_kretprobe_alloc(t.system.c_str(), t.event.c_str(), t.address.c_str(), t.args.c_str(), 0)
                               : tracefs_kprobe_alloc(t.system.c_str(), t.event.c_str(), t.address.c_str(), t.args.c_str()));
        if (!p.kprobe) fail("{}: {}", plan.text, errno_text(errno));
        if (tracefs_dynevent_create(p.kprobe.get()) == 0) return;
        int err = errno;
        // Not created: nothing to destroy.
        tracefs_dynevent_free(p.kprobe.release());
        auto reason = logged_refusal(root_, t.definition());
        fail("{}: the kernel refused the {}: {}", plan.text, t.attached.empty() ? "kprobe" : "event probe",
             reason ? *reason : errno_text(err));
    }

    // A fetch-arg of the kprobe P created, as its format file lays it out.
    static const tracefs::Field& field_of(const PlannedProbe& plan, const Probe& p, const std::string& name) {
        const tracefs::Field* field = p.format.field(name);
        if (!field) fail("{}: field '{}' is missing from {}/{}", plan.text, name, p.t.system, p.t.event);
        return *field;
    }

    Slot slot(const PlannedProbe& plan, const Probe& p, const FieldSource& src) const {
        const PlannedField& f = plan.fields[src.field];
        const Fetch& x = f.fetch;
        Slot s;
        s.name = f.name;
        s.kind = src.kind;
        s.display = f.display;
        s.swap_bits = f.swap_bits;
        s.is_signed = x.is_signed;
        s.is_string = x.access == Fetch::Access::String || f.display == Display::String;
        if (x.access == Fetch::Access::String) s.limit = x.size;
        if (src.kind != FieldSource::Kind::Record) {
            s.bits = src.kind == FieldSource::Kind::Comm ? 0 : 32;
            return s;
        }
        s.bits = x.bit_size ? x.bit_size : std::min(x.size * 8, 64u);
        if (p.t.dynamic()) {
            s.field = field_of(plan, p, src.name);
            return s;
        }
        if (const auto pointer = tracefs::record_user_pointer(x)) {  // its address (translate's note)
            s.is_string = false;
            s.display = Display::Hex;
            s.field.offset = static_cast<std::uint32_t>(*pointer);
            s.field.size = 8;
            s.bits = 64;
            return s;
        }
        // A tracepoint field is read where the plan says; __data_loc strings need the
        // format's word on where the text is.
        s.shift = x.bit_size ? x.bit_offset : 0;
        s.field.offset = static_cast<std::uint32_t>(x.offset);
        s.field.size = x.access == Fetch::Access::DataLoc ? 4 : x.size;
        s.field.data_loc = x.access == Fetch::Access::DataLoc;
        s.is_string |= s.field.data_loc;
        if (const auto* known = p.format.field(src.name); known && known->offset == x.offset) {
            s.field = *known;
            if (!s.is_string && !known->data_loc && !known->rel_loc) s.field.size = std::min(x.size, known->size);
        }
        return s;
    }

    void deliver(const tracefs::Record& rec) {
        if (stack_format_ && rec.id == stack_format_->id) return attach_stack(rec);
        auto it = by_id_.find(rec.id);
        if (it == by_id_.end()) return;
        const Probe& p = probes_[it->second];
        Event ev;
        ev.ts_ns = rec.ts_ns;  // trace_clock mono: CLOCK_MONOTONIC ns
        ev.pid = rec.tid;
        ev.cpu = rec.cpu;
        ev.probe = p.name;
        const auto& task = reader_->task(ev.pid);
        ev.tgid = task.tgid;
        ev.comm = p.comm ? p.comm->text(rec).value_or(task.comm) : task.comm;
        if (p.slots.empty() && p.t.kind == ProbeKind::Tracepoint)
            ev.fields = decode_tracepoint(p.format, rec.data);
        for (const auto& s : p.slots)
            if (auto v = s.read(rec, ev, task.tgid)) ev.fields.push_back({s.name, std::move(*v)});
        settle_packet_names(p.t.presence, ev.fields);
        if (!stack_format_) return send(ev);
        // Its kernel_stack record comes next on the same CPU.
        flush(rec.cpu);
        pending_[rec.cpu] = std::move(ev);
    }

    void send(const Event& ev) {
        delivered_++;
        sink_(ev);
    }

    void flush(std::uint32_t cpu) {
        auto it = pending_.find(cpu);
        if (it == pending_.end()) return;
        Event ev = std::move(it->second);
        pending_.erase(it);
        send(ev);
    }

    // A kernel_stack record: `int size` entries of `unsigned long caller[]`.
    void attach_stack(const tracefs::Record& rec) {
        auto it = pending_.find(rec.cpu);
        if (it == pending_.end()) return;
        const tracefs::Field* size = stack_format_->field("size");
        const tracefs::Field* caller = stack_format_->field("caller");
        if (const auto n = size && caller ? rec.number(size->offset, 4) : std::nullopt) {
            if (!kallsyms_) kallsyms_.emplace(Kallsyms::load());
            std::uint32_t at = caller->offset;
            for (std::uint64_t i = 0; i < *n; i++, at += 8) {
                const auto ip = rec.number(at, 8);
                if (!ip) break;
                if (*ip && *ip != ~0ull) it->second.stack.push_back(kallsyms_->describe(*ip));  // older kernels end with ~0
            }
        }
        flush(rec.cpu);
    }

    Sink sink_;
    std::string root_;
    tracefs::TranslateContext ctx_;
    // Destroyed bottom-up: the instance (disabling every event) before the kprobes,
    // which the kernel refuses to remove while enabled.
    std::vector<Probe> probes_;
    InstancePtr instance_;
    std::optional<tracefs::Reader> reader_;  // from start(): the instance's buffers
    std::unordered_map<std::uint32_t, std::size_t> by_id_;
    std::uint64_t delivered_ = 0;
    TracefsOptions opt_;
    std::optional<tracefs::EventFormat> stack_format_;  // -s
    std::optional<Kallsyms> kallsyms_;
    std::map<std::uint32_t, Event> pending_;  // -s: by CPU, the event whose stack comes next
    bool started_ = false;
    std::optional<bool> eprobes_;  // asked when the first e probe is added
};

}  // namespace

namespace tracefs {

bool eprobes_available() {
    if (auto on = kernel_config("CONFIG_EPROBE_EVENTS")) return *on == "y";
    // Without the configuration, the code that parses them is in the kernel's text (the
    // README documents them whether they are built or not).
    return slurp("/proc/kallsyms").find(" eprobe_dyn_event_create") != std::string::npos;
}

std::vector<StaleRun> cleanup_stale() {
    tracing_root();
    std::set<pid_t> pids;
    if (char** names = tracefs_instances(nullptr)) {
        for (char** n = names; *n; n++)
            if (auto pid = run_pid(*n)) pids.insert(*pid);
        tracefs_list_free(names);
    }
    if (tracefs_dynevent** all = tracefs_dynevent_get_all(kKprobeTypes, nullptr)) {
        for (auto** d = all; *d; d++) {
            char* system = nullptr;
            tracefs_dynevent_info(*d, &system, nullptr, nullptr, nullptr, nullptr);
            if (auto pid = system ? run_pid(system) : std::nullopt) pids.insert(*pid);
            std::free(system);
        }
        tracefs_dynevent_list_free(all);
    }
    std::vector<StaleRun> removed;
    for (pid_t pid : pids) {
        if (live_run(pid)) continue;
        if (auto r = remove_run(pid); r.instance || r.kprobes) removed.push_back(r);
    }
    return removed;
}

}  // namespace tracefs

std::unique_ptr<TracefsBackend> make_tracefs_backend(Backend::Sink sink, tracefs::SkbLayout skb, TracefsOptions options) {
    return std::make_unique<InstanceBackend>(std::move(sink), skb, std::move(options));
}

}  // namespace ksurf
