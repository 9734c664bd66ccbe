// PlannedProbe → kprobe_events fetch-args and an event filter (Documentation/trace/
// kprobetrace.rst, events.rst "Event filtering"). x86_64 only, like the rest of ksurf.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>

#include "ksurf/error.h"
#include "ksurf/tracefs_backend.h"
#include "bits.h"

namespace ksurf::tracefs {
namespace {

constexpr std::array<std::string_view, 6> kArgRegs = {"%di", "%si", "%dx", "%cx", "%r8", "%r9"};
constexpr std::int64_t kEthHlen = 14;
constexpr std::int64_t kIpv4Hlen = 20;  // without options

// Names a kprobe fetch-arg must not take: the kernel reserves some, and filters resolve an
// event's own fields before the generic comm/cpu, so an arg named `comm` would shadow them.
bool reserved_arg_name(std::string_view n) {
    for (std::string_view prefix : {"common_", "__probe_", "__comm"})
        if (n.starts_with(prefix)) return true;
    for (std::string_view generic : {"comm", "COMM", "cpu", "CPU", "stacktrace", "STACKTRACE"})
        if (n == generic) return true;
    return false;
}

bool identifier(std::string_view n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}

// `+OFF(INNER)` / `-OFF(INNER)`: the memory at INNER + OFF; `+uOFF(INNER)` in user memory.
std::string at(std::int64_t off, const std::string& inner, bool user = false) {
    return fmt::format("{}{}{}({})", off < 0 ? '-' : '+', user ? "u" : "",
                       off < 0 ? -static_cast<std::uint64_t>(off) : off, inner);
}

std::optional<FieldSource::Kind> header_kind(Fetch::Base base) {
    switch (base) {
    case Fetch::Base::Comm: return FieldSource::Kind::Comm;
    case Fetch::Base::Pid: return FieldSource::Kind::Pid;
    case Fetch::Base::Tid: return FieldSource::Kind::Tid;
    case Fetch::Base::Cpu: return FieldSource::Kind::Cpu;
    default: return std::nullopt;
    }
}

unsigned value_bits(const Fetch& f) { return f.bit_size ? f.bit_size : f.size * 8; }

class Translator {
public:
    Translator(const PlannedProbe& probe, std::size_t index, const TranslateContext& ctx)
        : probe_(probe), ctx_(ctx), index_(index) {
        if (probe.kind == ProbeKind::Tracepoint)
            for (const auto& f : ctx.tracepoints)
                if (f.system == probe.subsystem && f.name == probe.event) format_ = &f;
    }

    TracefsProbe run() {
        TracefsProbe t;
        t.kind = probe_.kind;
        if (probe_.kind == ProbeKind::Tracepoint && ctx_.eprobes && beyond_record()) {
            t.attached = probe_.subsystem + "." + probe_.event;
            t.system = ctx_.group;
            t.event = fmt::format("e{}", index_);
        } else if (probe_.kind == ProbeKind::Tracepoint) {
            t.system = probe_.subsystem;
            t.event = probe_.event;
        } else {
            t.system = ctx_.group;
            t.event = fmt::format("{}{}", probe_.kind == ProbeKind::Return ? 'r' : 'p', index_);
            t.address = probe_.module.empty() ? probe_.function : probe_.module + ":" + probe_.function;
            if (probe_.offset) t.address += fmt::format("+{}", probe_.offset);
            t.uprobe = !probe_.binary.empty();
            if (t.uprobe) t.address = fmt::format("{}:{:#x}", probe_.binary, probe_.file_offset);
        }
        for (std::size_t i = 0; i < probe_.fields.size(); i++) {
            const auto& f = probe_.fields[i];
            FieldSource src{FieldSource::Kind::Record, {}, i};
            if (auto kind = header_kind(f.fetch.base)) {
                if (!f.fetch.derefs.empty()) refuse(f, "header values cannot be dereferenced");
                src.kind = *kind;
            } else if (t.dynamic() && probe_.kind == ProbeKind::Tracepoint) {
                src.name = arg_name(f, i);
                t.args += fmt::format("{}={}:{} ", src.name, event_arg(f), type(f));
            } else if (probe_.kind == ProbeKind::Tracepoint) {
                src.name = record_field(f, t);
            } else {
                src.name = arg_name(f, i);
                t.args += fmt::format("{}={}:{} ", src.name, location(f.fetch, f), type(f));
            }
            names_.push_back(src.name);
            if (!f.hidden) t.fields.push_back(std::move(src));
        }
        // The comm of the task that hit a kprobe, for the event header: exact, where a
        // tracepoint's comm has to be looked up afterwards. An event probe's is looked up
        // too: 6.1 reads every `$NAME` of one as a record field, `$comm` included.
        if (probe_.kind != ProbeKind::Tracepoint) t.args += "__comm=$comm";
        else if (!t.args.empty()) t.args.pop_back();  // the space after the last arg
        eprobe_ = !t.attached.empty();
        if (probe_.filter) t.filter = filter(*probe_.filter, false);
        t.presence = packet_presence(probe_);
        if (probe_.aggregate && ctx_.aggregate) t.hist = hist();
        return t;
    }

private:
    [[noreturn]] void refuse(const PlannedField& f, std::string_view why) const {
        fail("{}: field '{}': {} on tracefs", probe_.text, f.name, why);
    }
    [[noreturn]] void refuse(const PlannedComparison& c, std::string_view why) const {
        throw SourceError(fmt::format("{} in a tracefs filter", why), probe_.text, c.span.pos, c.span.len);
    }

    std::string arg_name(const PlannedField& f, std::size_t i) const {
        bool taken = std::find(names_.begin(), names_.end(), f.name) != names_.end();
        return identifier(f.name) && !reserved_arg_name(f.name) && !taken ? f.name : fmt::format("f{}", i);
    }

    // Whether a field reads what the record only points to (a syscall's string in user
    // memory) or what it does not hold (a kernel variable): an event probe can, where the
    // tracepoint's own event cannot. An aggregation keeps the tracepoint's own event, whose
    // hist trigger counts without the cost of the strings.
    bool beyond_record() const {
        if (probe_.aggregate && ctx_.aggregate) return false;
        return std::ranges::any_of(probe_.fields, [](const PlannedField& f) {
            return record_user_pointer(f.fetch) || f.fetch.base == Fetch::Base::Global;
        });
    }

    // The name of the tracepoint's field at OFFSET; F's own when the format is unknown.
    std::string field_at(std::int64_t offset, const PlannedField& f) const {
        if (format_)
            for (const auto& field : format_->fields)
                if (field.offset == static_cast<std::uint64_t>(offset)) return field.name;
        return f.name;
    }

    // An event probe's fetch-arg for F: a record field is `$NAME`, and the string a syscall's
    // pointer leads to `+0($NAME)` (typed ustring).
    std::string event_arg(const PlannedField& f) const {
        if (f.fetch.base == Fetch::Base::Global) return location(f.fetch, f);
        if (f.fetch.base != Fetch::Base::Record) refuse(f, "e probes read only their own record and kernel variables");
        if (const std::optional<std::int64_t> pointer = record_user_pointer(f.fetch)) return at(0, "$" + field_at(*pointer, f));
        if (!f.fetch.derefs.empty()) refuse(f, "pointers in a tracepoint record cannot be followed");
        return "$" + field_at(f.fetch.offset, f);
    }

    // A tracepoint field is in the record already: its name is all a filter needs.
    std::string record_field(const PlannedField& f, TracefsProbe& t) const {
        if (f.fetch.base == Fetch::Base::Global)
            refuse(f, "a tracepoint's event reads only its record, not kernel variables (an event probe, 5.15+, a p probe or "
                      "the BPF backend can)");
        if (f.fetch.base != Fetch::Base::Record) refuse(f, "e probes read only their own record");
        const std::optional<std::int64_t> pointer = record_user_pointer(f.fetch);
        if (pointer)
            t.notes.push_back(fmt::format("{}: '{}' is a string in user memory; tracefs prints its address", probe_.text,
                                          f.name));
        else if (!f.fetch.derefs.empty())
            refuse(f, "pointers in a tracepoint record cannot be followed");
        return field_at(pointer.value_or(f.fetch.offset), f);
    }

    // The fetch-arg for F's value, without a type.
    std::string location(const Fetch& f, const PlannedField& owner) const {
        std::string expr;
        std::int64_t pending = 0;  // a packet layer's distance from skb->data
        switch (f.base) {
        case Fetch::Base::Arg:
            if (probe_.kind == ProbeKind::Return) refuse(owner, "arguments are gone in a return probe");
            if (f.arg >= kArgRegs.size()) refuse(owner, fmt::format("argument %{} is on the stack, not in a register", f.arg));
            expr = kArgRegs[f.arg];
            break;
        case Fetch::Base::Reg: expr = "%" + f.reg; break;
        case Fetch::Base::Caller: expr = "$stack0"; break;
        case Fetch::Base::Global: return global(f, owner);
        case Fetch::Base::Retval:
            if (probe_.kind != ProbeKind::Return) refuse(owner, "$retval exists in r probes only");
            expr = "$retval";
            break;
        case Fetch::Base::Packet: {
            if (!f.skb) refuse(owner, "packet header without its sk_buff");
            if (ctx_.skb.data < 0) refuse(owner, "offsetof(struct sk_buff, data) is unknown (no BTF)");
            const Fetch& skb = *f.skb;
            if (skb.access == Fetch::Access::String || skb.bit_size || (skb.access == Fetch::Access::Load && skb.size != 8))
                refuse(owner, "the sk_buff must be a pointer");
            expr = at(ctx_.skb.data, location(skb, owner));
            pending = f.layer == Layer::L2 ? -kEthHlen : f.layer == Layer::L4 ? kIpv4Hlen : 0;
            break;
        }
        default: refuse(owner, "this value is not a kprobe fetch-arg");
        }
        for (auto off : f.derefs) {
            expr = at(off + pending, expr);
            pending = 0;
        }
        if (f.access == Fetch::Access::Value) {
            if (pending) refuse(owner, "the address of an L2/L4 header cannot be fetched");
            return expr;
        }
        return at(f.offset + pending, expr, user_memory(f));
    }

    // `@SYM+OFF` is kprobe_events' read of the memory at a symbol plus an offset: the
    // first load of a chain that starts at a variable's address, whether a pointer load or
    // the final access (`@SYM+OFF:string` reads the string stored there).
    std::string global(const Fetch& f, const PlannedField& owner) const {
        const auto sym = [&](std::int64_t off) { return off ? fmt::format("@{}{:+}", f.symbol, off) : "@" + f.symbol; };
        if (f.derefs.empty()) {
            if (f.access == Fetch::Access::Value) refuse(owner, "the address of a kernel variable is not a fetch-arg");
            return sym(f.offset);
        }
        std::string expr = sym(f.derefs.front());
        for (std::size_t i = 1; i < f.derefs.size(); i++) expr = at(f.derefs[i], expr);
        return f.access == Fetch::Access::Value ? expr : at(f.offset, expr, user_memory(f));
    }

    // Whether X's final read needs the kprobe's user-memory form: a uprobe reads the
    // process's memory with the plain one.
    bool user_memory(const Fetch& x) const { return x.user && probe_.binary.empty(); }

    std::string type(const PlannedField& f) const {
        const Fetch& x = f.fetch;
        if (x.access == Fetch::Access::String) return user_memory(x) ? "ustring" : "string";
        if (x.bit_size) {
            unsigned need = x.bit_offset + x.bit_size, container = 8;
            while (container < need) container *= 2;
            if (container > 64) refuse(f, "a bitfield spanning more than 8 bytes");
            return fmt::format("b{}@{}/{}", x.bit_size, x.bit_offset, container);
        }
        if (x.size != 1 && x.size != 2 && x.size != 4 && x.size != 8)
            refuse(f, fmt::format("{}-byte values cannot be fetched", x.size));
        char kind = f.display == Display::Hex ? 'x' : x.is_signed ? 's' : 'u';
        return fmt::format("{}{}", kind, x.size * 8);
    }

    // ---- hist trigger ----

    [[noreturn]] void refuse_aggregate(std::string_view why) const {
        fail("{}: --{} on tracefs: {}; the BPF backend computes it", probe_.text, agg_kind_name(*ctx_.aggregate->kind), why);
    }

    // The name of field I in the event, as hist keys and vals name it.
    std::string hist_field(std::size_t i, bool numeric) const {
        const PlannedField& f = probe_.fields[i];
        if (numeric && string_field(f)) refuse_aggregate(fmt::format("'{}' is a string, not a number", f.name));
        // Header values (pid, cpu...) are keys of their own, never summed.
        if (names_[i].empty()) refuse_aggregate(fmt::format("'{}' is not a field of the event", f.name));
        return names_[i];
    }

    static bool string_field(const PlannedField& f) {
        return f.fetch.access == Fetch::Access::String || f.fetch.access == Fetch::Access::DataLoc ||
               f.display == Display::String;
    }

    HistTrigger hist() const {
        const AggregateOptions& opt = *ctx_.aggregate;
        const PlannedAggregate& a = *probe_.aggregate;
        switch (*opt.kind) {
        case AggKind::Count:
        case AggKind::Sum:
        case AggKind::Avg:
        case AggKind::Hist: break;
        case AggKind::Min:
        case AggKind::Max:
        case AggKind::Stats: refuse_aggregate("hist triggers keep hit counts and sums, no minimum or maximum");
        case AggKind::Lhist: refuse_aggregate("hist triggers have no linear histogram between bounds");
        }
        // The map's size is a power of two from 2^7 to 2^17 (TRACING_MAP_BITS_MIN/MAX).
        constexpr std::uint32_t kMinSize = 1u << 7, kMaxSize = 1u << 17;
        if (opt.map_size > kMaxSize)
            refuse_aggregate(fmt::format("--map-size {} is more than the {} keys a hist trigger holds", opt.map_size, kMaxSize));
        HistTrigger h;
        h.size = std::max(std::bit_ceil(opt.map_size), kMinSize);
        std::vector<std::string> keys;
        const auto key = [&](std::string spec, HistKey k) {
            keys.push_back(std::move(spec));
            h.keys.push_back(std::move(k));
        };
        for (std::size_t i : a.keys) {
            const PlannedField& f = probe_.fields[i];
            FieldSource src{FieldSource::Kind::Record, {}, i};
            if (auto kind = header_kind(f.fetch.base)) src.kind = *kind;
            switch (src.kind) {
            // A kprobe records the comm of every hit; a tracepoint's is the one the hist
            // trigger saved with the pid's first hit (execname), so tracepoint keys are by
            // thread until the rows are merged by comm.
            case FieldSource::Kind::Comm:
                if (probe_.kind == ProbeKind::Tracepoint) key("common_pid.execname", {HistKey::Print::Execname, src});
                else key("__comm", {HistKey::Print::String, src});
                break;
            // A thread's process is not in the record, nor (once it exited) anywhere else:
            // saved_tgids is filled by recorded events, and a trigger records none.
            case FieldSource::Kind::Pid:
                refuse_aggregate("hist triggers key by thread (common_pid), not by process: key by tid");
            case FieldSource::Kind::Tid: key("common_pid", {HistKey::Print::Number, src}); break;
            case FieldSource::Kind::Cpu: key("cpu", {HistKey::Print::Number, src}); break;
            case FieldSource::Kind::Record:
                src.name = hist_field(i, false);
                key(src.name, {string_field(f) ? HistKey::Print::String : HistKey::Print::Number, src});
            }
        }
        if (a.value) {
            h.value = hist_field(*a.value, true);
            if (opt.kind == AggKind::Hist)
                key(h.value + ".log2", {HistKey::Print::Log2, {FieldSource::Kind::Record, h.value, *a.value}, false});
        }
        if (a.stack) key("stacktrace", {HistKey::Print::Stack, {}, true});
        // A hist trigger needs a key: without one of ksurf's, the CPU, merged away.
        if (keys.empty()) key("cpu", {HistKey::Print::Number, {FieldSource::Kind::Cpu, {}, 0}, false});
        // TRACING_MAP_KEYS_MAX. A packet name of one protocol brings ipver and ip.proto or
        // ip6.nexthdr into the key, which say whether it applies (see PlannedAggregate).
        constexpr std::size_t kMaxKeys = 3;
        if (keys.size() > kMaxKeys) {
            std::vector<std::string> own, guards;
            for (std::size_t i = 0; i < a.keys.size(); i++)
                (i < a.keys.size() - a.guards ? own : guards).push_back(probe_.fields[a.keys[i]].name);
            if (a.stack) own.emplace_back("stack");
            if (opt.kind == AggKind::Hist) own.push_back(fmt::format("the log2 bucket of {}", opt.field));
            refuse_aggregate(fmt::format("hist triggers key by at most {} fields, and this key takes {}: {}{}", kMaxKeys,
                                         keys.size(), fmt::join(own, ", "),
                                         guards.empty() ? ""
                                                        : fmt::format(", and {}, which say whether the packet names apply",
                                                                      fmt::join(guards, ", "))));
        }
        h.spec = fmt::format("hist:keys={}:vals=hitcount{}:size={}", fmt::join(keys, ","), h.value.empty() ? "" : "," + h.value,
                             h.size);
        return h;
    }

    // ---- filter ----

    std::string filter(const PlannedFilterNode& node, bool nested) const {
        if (const auto* c = std::get_if<PlannedComparison>(&node)) return comparison(*c);
        const auto& f = *std::get<std::unique_ptr<PlannedFilter>>(node);
        if (f.op == PlannedFilter::Op::Not) return fmt::format("!({})", filter(f.operands.at(0), false));
        std::string s;
        for (const auto& operand : f.operands) {
            if (!s.empty()) s += f.op == PlannedFilter::Op::And ? " && " : " || ";
            s += filter(operand, true);
        }
        return nested && f.operands.size() > 1 ? "(" + s + ")" : s;
    }

    // The generic comm/cpu, unless the tracepoint has a field of that name: then (or when
    // its format is unknown) the upper-case spelling, which no event uses.
    std::string generic(std::string_view lower, std::string_view upper) const {
        if (probe_.kind != ProbeKind::Tracepoint || eprobe_ || (format_ && !format_->field(lower))) return std::string(lower);
        return std::string(upper);
    }

    std::string comparison(const PlannedComparison& c) const {
        using S = PlannedComparison::Subject;
        const PlannedField* field = nullptr;
        std::string name;
        bool is_string = false, is_signed = true;
        unsigned bits = 32;  // common_pid and cpu are ints
        bool hex = false;
        auto subject = c.subject;
        if (c.subject == S::Field) {
            if (c.field >= probe_.fields.size()) refuse(c, "a comparison of an unknown field");
            field = &probe_.fields[c.field];
            switch (field->fetch.base) {
            case Fetch::Base::Comm: subject = S::Comm; break;
            case Fetch::Base::Pid: subject = S::Pid; break;
            case Fetch::Base::Tid: subject = S::Tid; break;
            case Fetch::Base::Cpu: name = generic("cpu", "CPU"); break;
            default:
                name = names_[c.field];
                is_string = field->fetch.access == Fetch::Access::String ||
                            field->fetch.access == Fetch::Access::DataLoc || field->display == Display::String;
                is_signed = field->fetch.is_signed;
                bits = value_bits(field->fetch);
                hex = field->display == Display::Hex;
            }
        }
        if (subject == S::Comm) {
            name = generic("comm", "COMM");
            is_string = true;
        } else if (subject == S::Pid || subject == S::Tid) {
            name = "common_pid";
        }
        auto op = cmp_op_text(c.op);
        if (field && record_user_pointer(field->fetch) && !eprobe_)
            refuse(c, "a string in user memory that a record points to (event probes, 5.15+, can read it)");
        if (is_string) {
            const auto* s = std::get_if<std::string>(&c.value);
            if (!s) refuse(c, "a string compared with a number");
            if (c.op != CmpOp::Eq && c.op != CmpOp::Ne && c.op != CmpOp::Glob) refuse(c, "strings compare with ==, != and ~ only");
            // The kernel's filter strings have no escapes: either quote may delimit them.
            char quote = s->find('"') == std::string::npos ? '"' : '\'';
            if (s->find(quote) != std::string::npos) refuse(c, "a string with both kinds of quotes");
            return fmt::format("{} {} {}{}{}", name, op, quote, *s, quote);
        }
        if (std::holds_alternative<std::string>(c.value)) refuse(c, "a number compared with a string");
        if (c.op == CmpOp::Glob) refuse(c, "~ matches strings only");
        // The plan gives the stored bits; the kernel parses them by the field's signedness.
        std::uint64_t raw = std::holds_alternative<std::int64_t>(c.value)
                                ? static_cast<std::uint64_t>(std::get<std::int64_t>(c.value))
                                : std::get<std::uint64_t>(c.value);
        raw = low_bits(raw, bits);
        if (is_signed) return fmt::format("{} {} {}", name, op, sign_extend(raw, bits));
        return hex ? fmt::format("{} {} 0x{:x}", name, op, raw) : fmt::format("{} {} {}", name, op, raw);
    }

    const PlannedProbe& probe_;
    const TranslateContext& ctx_;
    std::size_t index_;
    const EventFormat* format_ = nullptr;
    std::vector<std::string> names_;  // per plan field: its name in the event, "" for header values
    bool eprobe_ = false;             // the probe is an event probe on its tracepoint
};

}  // namespace

std::optional<std::int64_t> record_user_pointer(const Fetch& f) {
    if (f.base != Fetch::Base::Record || !f.user || f.derefs.size() != 1 || f.access != Fetch::Access::String)
        return std::nullopt;
    return f.derefs[0];
}

std::string TracefsProbe::definition() const {
    if (!attached.empty()) return fmt::format("e:{}/{} {} {}", system, event, attached, args);
    if (kind == ProbeKind::Tracepoint) return {};
    return fmt::format("{}:{}/{} {} {}", kind == ProbeKind::Return ? 'r' : 'p', system, event, address, args);
}

TracefsProbe translate(const PlannedProbe& probe, std::size_t index, const TranslateContext& ctx) {
    return Translator(probe, index, ctx).run();
}

std::string run_name(pid_t pid) { return fmt::format("ksurf_{}", pid); }

std::optional<pid_t> run_pid(std::string_view name) {
    constexpr std::string_view prefix = "ksurf_";
    if (!name.starts_with(prefix)) return std::nullopt;
    auto digits = name.substr(prefix.size());
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (ec != std::errc{} || end != digits.data() + digits.size() || pid <= 0 || digits[0] == '0') return std::nullopt;
    return pid;
}

}  // namespace ksurf::tracefs
