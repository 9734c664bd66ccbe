#include "ksurf/resolve.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/suggest.h"

namespace ksurf {
namespace {

using Kind = Type::Kind;
using Base = Fetch::Base;
using Access = Fetch::Access;

constexpr std::uint32_t kCommLen = 16;  // TASK_COMM_LEN
// Beyond this an offset is a typo, not a kernel layout (kprobe offsets are longs).
constexpr std::uint64_t kMaxOffset = std::numeric_limits<std::int32_t>::max();

// The name of an available_filter_functions line: "tcp_v4_rcv" or "nf_hook [nf_tables]".
std::pair<std::string_view, std::string_view> function_line(std::string_view line) {
    std::string_view name = line.substr(0, line.find(' '));
    std::size_t open = line.find('[');
    std::string_view module = open == line.npos ? "" : line.substr(open + 1, line.find(']', open) - open - 1);
    return {name, module};
}

std::string qualified(std::string_view module, std::string_view function) {
    return module.empty() ? std::string(function) : fmt::format("{}:{}", module, function);
}

bool is_string(const PlannedField& f) { return f.fetch.access == Access::String || f.fetch.access == Access::DataLoc; }

unsigned value_bits(const Fetch& f) { return f.bit_size ? f.bit_size : f.size * 8; }

// A pointer to this is a C string. Decided by the spelling, not the underlying type:
// `const unsigned char *name` (struct qstr) is text, `u8 *data` is a buffer. Arrays of
// unsigned char are not strings (h_dest[6] of struct ethhdr is an address).
bool spells_char(const Type& pointee) {
    std::string full = pointee.name();
    std::string_view name = full;
    for (std::string_view qual : {"const ", "volatile "})
        while (name.starts_with(qual)) name.remove_prefix(qual.size());
    return pointee.strip().size() == 1 && (name == "char" || name == "unsigned char" || name == "signed char");
}

PlannedField builtin_field(Builtin b) {
    PlannedField f;
    f.fetch.access = Access::Value;
    f.fetch.size = 4;
    switch (b) {
    case Builtin::Comm:
        f.fetch.base = Base::Comm;
        f.fetch.access = Access::String;
        f.fetch.size = kCommLen;
        f.display = Display::String;
        f.c_type = "char[16]";
        break;
    case Builtin::Pid:
    case Builtin::Tid:
        f.fetch.base = b == Builtin::Pid ? Base::Pid : Base::Tid;
        f.fetch.is_signed = true;
        f.c_type = "pid_t";
        break;
    case Builtin::Cpu:
        f.fetch.base = Base::Cpu;
        f.c_type = "unsigned int";
        break;
    case Builtin::Retval:
        fail("$retval has a type only in its function");
    }
    return f;
}

// The function of a p/r target, with a suggestion from ctx.functions when it is unknown.
Function lookup_function(const ResolveContext& ctx, const std::string& name, std::string_view source, Span span) {
    try {
        return ctx.btf.find_function(name);
    } catch (const Error& e) {
        std::string hint;
        if (ctx.functions) {
            std::vector<std::string> names;
            for (const std::string& line : ctx.functions()) names.emplace_back(function_line(line).first);
            hint = did_you_mean(name.substr(name.find(':') + 1), names);
        }
        throw SourceError(e.what() + hint, std::string(source), span.pos, span.len);
    }
}

// Why a tracepoint field cannot be planned; nullptr when it can.
const char* unsupported(const tracefs::Field& f) {
    if (f.rel_loc) return "__rel_loc fields are not supported yet";
    if (f.data_loc && !f.is_string()) return "dynamic arrays other than strings are not supported yet";
    return nullptr;
}

PlannedField record_field(const tracefs::Field& f) {
    PlannedField p;
    p.name = f.name;
    p.fetch.base = Base::Record;
    p.fetch.access = f.data_loc ? Access::DataLoc : f.is_string() ? Access::String : Access::Load;
    p.fetch.offset = f.offset;
    p.fetch.size = f.size;
    p.fetch.is_signed = f.is_signed;
    p.display = is_string(p)                              ? Display::String
                : f.is_pointer() || f.type.ends_with(']') ? Display::Hex
                                                          : Display::Decimal;
    p.c_type = f.data_loc ? "__data_loc " + f.type : f.type;
    return p;
}

// A chain's state: a value of `type` (fetch.access Value), or the object of `type` at
// (value + fetch.offset).
struct Place {
    Fetch fetch;
    Type type;
    bool object = false;
};

// The object P points to, at offset 0 of it.
void follow(Place& p) {
    if (p.object) {
        p.fetch.derefs.push_back(p.fetch.offset);
        p.fetch.offset = 0;
    }
    p.type = p.type.pointee();
    p.object = true;
}

class Resolver {
public:
    // FUNCTION: the function of a p/r plan when the caller already looked it up.
    Resolver(const ResolveContext& ctx, std::string_view source, PlannedProbe& plan, Span target,
             std::optional<Function> function = std::nullopt)
        : ctx_(ctx), src_(source), plan_(plan), fn_(std::move(function)) {
        if (plan.kind == ProbeKind::Tracepoint)
            format_ = guard(target, [&] {
                if (!ctx.tracepoint_format) fail("tracepoint formats are not available");
                return ctx.tracepoint_format(plan.subsystem, plan.event);
            });
        else if (!fn_)
            fn_ = lookup_function(ctx, qualified(plan.module, plan.function), source, target);
        // An unqualified function may live in a module: its casts name the module's types.
        if (fn_) plan.module = fn_->module;
    }

    void fields(const std::vector<Field>& fields) {
        for (const Field& f : fields) plan_.fields.push_back(field(f));
        if (!format_ || !fields.empty()) return;
        // A bare `e SUBSYS/EVENT` prints the tracepoint's own fields, less what cannot be read.
        for (const tracefs::Field& f : format_->fields)
            if (!f.is_common() && !unsupported(f)) plan_.fields.push_back(record_field(f));
    }

    PlannedFilterNode filter(const FilterExpr& e) {
        return std::visit(
            [&](const auto& node) -> PlannedFilterNode {
                using T = std::decay_t<decltype(node)>;
                if constexpr (std::is_same_v<T, Comparison>) {
                    return comparison(node, e.span);
                } else {
                    auto out = std::make_unique<PlannedFilter>();
                    if constexpr (std::is_same_v<T, Not>) {
                        out->op = PlannedFilter::Op::Not;
                        out->operands.push_back(filter(*node.operand));
                    } else {
                        out->op = node.op == Logical::Op::And ? PlannedFilter::Op::And : PlannedFilter::Op::Or;
                        for (const FilterExpr& operand : node.operands) out->operands.push_back(filter(operand));
                    }
                    return out;
                }
            },
            e.node);
    }

private:
    std::string text(Span s) const { return std::string(src_.substr(std::min(s.pos, src_.size()), s.len)); }

    [[noreturn]] void fail_at(Span s, std::string message) const {
        throw SourceError(std::move(message), std::string(src_), s.pos, s.len);
    }

    // F's result; a plain Error (from BTF or tracefs) becomes a SourceError at S.
    template <typename F>
    auto guard(Span s, F&& f) const -> decltype(f()) {
        try {
            return f();
        } catch (const SourceError&) {
            throw;
        } catch (const Error& e) {
            fail_at(s, e.what());
        }
    }

    Type type(std::string_view c_name, Span s) const {
        return guard(s, [&] { return ctx_.btf.find_type(c_name, plan_.module); });
    }

    // ---- fields ----

    PlannedField field(const Field& f) {
        PlannedField out = value_of(f.expr);
        out.name = f.name;
        present(out, f);
        return out;
    }

    PlannedField value_of(const Expr& e) {
        if (const auto* b = std::get_if<BuiltinRef>(&e.node); b && b->which != Builtin::Retval)
            return builtin_field(b->which);
        if (!format_) return lower(eval(e), e.span);
        const auto* id = std::get_if<Ident>(&e.node);
        if (!id)
            fail_at(e.span,
                    "e probes print tracepoint fields as they are ('NAME=FIELD'); members, indexes and "
                    "casts of them are not supported yet");
        return tracepoint_field(*id, e.span);
    }

    PlannedField tracepoint_field(const Ident& id, Span s) const {
        const tracefs::Field* f = format_->field(id.name);
        if (!f) {
            std::vector<std::string> names;
            for (const tracefs::Field& field : format_->fields) names.push_back(field.name);
            std::string hint = did_you_mean(id.name, names);
            fail_at(s, fmt::format("{}/{} has no field '{}'{}", format_->system, format_->name, id.name,
                                   hint.empty() ? fmt::format(" (fields: {})", fmt::join(names, ", ")) : hint));
        }
        if (const char* why = unsupported(*f)) fail_at(s, fmt::format("'{}': {}", id.name, why));
        return record_field(*f);
    }

    // How Field F asks for its value to be shown: S/U/X, ip_, b16_/B16_...
    void present(PlannedField& out, const Field& f) const {
        unsigned bits = value_bits(out.fetch);
        std::string what = fmt::format("'{}' is {}", text(f.expr.span), out.c_type);
        bool string = is_string(out);
        // First: a b16_ name implies a format, and no S/U/X letter is then to blame.
        if (f.swap_bits && (string || bits != f.swap_bits))
            fail_at(f.name_span, fmt::format("'{}' byte-swaps {} bits, but {} ({})", f.name, f.swap_bits, what,
                                             string ? "a string" : fmt::format("{} bits", bits)));
        out.swap_bits = f.swap_bits;
        switch (f.format) {
        case Format::Auto:
            break;
        case Format::Signed:
        case Format::Unsigned:
        case Format::Hex:
            if (string) fail_at(f.prefix_span, fmt::format("{}, a string; '{}' formats numbers", what, f.prefix));
            if (f.format != Format::Hex) out.fetch.is_signed = f.format == Format::Signed;
            out.display = f.format == Format::Hex ? Display::Hex : Display::Decimal;
            break;
        case Format::Ipv4:
            if (string || bits != 32)
                fail_at(f.name_span,
                        fmt::format("'{}' prints an IPv4 address, which needs a 4-byte integer; {}", f.name, what));
            out.display = Display::IPv4;
            break;
        }
    }

    // The final access for the type P ends with: loaded (an object) or taken (a value).
    PlannedField lower(Place p, Span s) const {
        PlannedField out;
        out.c_type = p.type.name();
        Type t = p.type.strip();
        Kind k = t.kind();
        bool char_array = k == Kind::Array && t.elem().strip().kind() == Kind::Char;
        bool char_pointer = k == Kind::Pointer && spells_char(t.pointee());
        if (k == Kind::Struct || k == Kind::Union)
            fail_at(s, fmt::format("'{}' is a {}; name a member", text(s), out.c_type));
        if (k == Kind::Array && !char_array)
            fail_at(s, fmt::format("'{}' is an array ({}); name an element with [N]", text(s), out.c_type));
        if (k == Kind::Void || k == Kind::Float || k == Kind::FuncProto)
            fail_at(s, fmt::format("'{}' is {}, which has no value to print", text(s), out.c_type));
        if (char_pointer) follow(p);
        out.fetch = std::move(p.fetch);
        if (char_array || char_pointer) {
            out.fetch.access = Access::String;
            out.fetch.size = char_array ? t.count() : kMaxStringPointer;
            out.display = Display::String;
        } else {
            out.fetch.access = p.object ? Access::Load : Access::Value;
            out.fetch.size = static_cast<std::uint32_t>(t.size());
            out.fetch.is_signed = t.is_signed();
            out.display = k == Kind::Pointer ? Display::Hex : Display::Decimal;
        }
        return out;
    }

    // ---- expressions ----

    Place eval(const Expr& e) {
        return std::visit([&](const auto& node) { return eval(node, e.span); }, e.node);
    }

    // Arguments are in their registers only until the function's prologue has run.
    void need_entry(Span s) const {
        if (plan_.kind == ProbeKind::Entry && plan_.offset)
            fail_at(s, fmt::format("arguments are only defined at function entry; at {} use registers such as %di",
                                   plan_.event));
    }

    Place arg(std::size_t index, Type type) const {
        Place p{{}, type, false};
        p.fetch.base = Base::Arg;
        p.fetch.arg = static_cast<unsigned>(index);
        return p;
    }

    Place eval(const ArgRef& a, Span s) {
        need_entry(s);
        if (a.index < fn_->params.size()) return arg(a.index, fn_->params[a.index].type);
        if (fn_->variadic) return arg(a.index, type("unsigned long", s));  // the `...`: untyped
        std::vector<std::string> names;
        for (const Param& p : fn_->params) names.push_back(p.name);
        fail_at(s, fmt::format("{} has {}; %{} is out of range", fn_->name,
                               names.empty() ? "no parameters"
                                             : fmt::format("{} parameter{} ({})", names.size(),
                                                           names.size() == 1 ? "" : "s", fmt::join(names, ", ")),
                               a.index));
    }

    Place eval(const Ident& id, Span s) {
        need_entry(s);
        std::size_t i = guard(s, [&] { return fn_->param_index(id.name); });
        return arg(i, fn_->params[i].type);
    }

    Place eval(const RegRef& r, Span s) {
        Place p{{}, type("unsigned long", s), false};
        p.fetch.base = Base::Reg;
        p.fetch.reg = r.name;
        return p;
    }

    Place eval(const BuiltinRef& b, Span s) {
        if (b.which != Builtin::Retval)
            fail_at(s, fmt::format("${} takes no members, indexes or casts", builtin_name(b.which)));
        if (plan_.kind != ProbeKind::Return) fail_at(s, "$retval is only available in return probes ('r')");
        if (fn_->ret.kind() == Kind::Void) fail_at(s, fmt::format("{} returns void: there is no $retval", fn_->name));
        Place p{{}, fn_->ret, false};
        p.fetch.base = Base::Retval;
        return p;
    }

    Place eval(const Member& m, Span) {
        Place p = eval(*m.base);
        // `.` on a pointer acts as `->`, and `->` on a struct as `.`: there is one meaning.
        if (p.type.kind() == Kind::Pointer) {
            if (p.type.pointee().kind() == Kind::Void)
                fail_at(m.base->span,
                        fmt::format("'{0}' is a {1}; cast it to what it points to: ((struct NAME *){0})->{2}",
                                    text(m.base->span), p.type.name(), m.name));
            follow(p);
        } else if (!p.object && (p.type.kind() == Kind::Struct || p.type.kind() == Kind::Union)) {
            fail_at(m.base->span, fmt::format("'{}' is a {} passed by value; its members cannot be read",
                                              text(m.base->span), p.type.name()));
        }
        if (p.fetch.bit_size)
            fail_at(m.name_span, fmt::format("'{}' is a bitfield; it has no members", text(m.base->span)));
        auto found = guard(m.name_span, [&] { return member(p.type, m.name); });
        p.type = found.type;
        p.fetch.offset += static_cast<std::int64_t>(found.offset);
        if (found.bitfield_size) {
            p.fetch.bit_offset = static_cast<std::uint8_t>(found.bit_offset % 8);
            p.fetch.bit_size = static_cast<std::uint8_t>(found.bitfield_size);
        }
        return p;
    }

    Place eval(const Index& ix, Span) {
        Place p = eval(*ix.base);
        Type t = p.type;
        if (t.kind() == Kind::Array && p.object) {
            // A count of 0 is a flexible array member: its length is known only at run time.
            if (t.count() && ix.index >= t.count())
                fail_at(ix.index_span, fmt::format("index {} is out of bounds: '{}' is {} ({} elements)", ix.index,
                                                   text(ix.base->span), t.name(), t.count()));
            p.type = t.elem();
        } else if (t.kind() == Kind::Pointer && t.pointee().size()) {
            follow(p);
        } else {
            fail_at(ix.base->span, fmt::format("'{}' is {}; only arrays and pointers to sized types can be indexed",
                                               text(ix.base->span), t.name()));
        }
        std::uint64_t size = p.type.size();
        if (size && ix.index > kMaxOffset / size)
            fail_at(ix.index_span, fmt::format("index {} is too large", ix.index));
        p.fetch.offset += static_cast<std::int64_t>(ix.index * size);
        return p;
    }

    Place eval(const Cast& c, Span s) {
        Type to = type(c.type.to_string(), c.type.span);
        Place p = eval(*c.operand);
        std::string from = fmt::format("'{}' is {} ({} bytes)", text(c.operand->span), p.type.name(), p.type.size());
        Kind k = to.kind();
        if (p.fetch.bit_size) fail_at(s, fmt::format("'{}' is a bitfield; it cannot be cast", text(c.operand->span)));
        if (!p.object && (k == Kind::Struct || k == Kind::Union))
            fail_at(s, fmt::format("cannot cast a value to '{0}'; cast it to a pointer: ({0} *)", to.name()));
        if (k == Kind::Pointer && p.type.size() != 8)
            fail_at(s, fmt::format("cannot cast to '{}': a pointer needs 8 bytes, but {}", to.name(), from));
        if (to.size() > p.type.size())
            fail_at(s, fmt::format("cannot cast to '{}' ({} bytes): {}", to.name(), to.size(), from));
        p.type = to;
        return p;
    }

    Place eval(const PacketHeader& h, Span) {
        Place skb = eval(*h.skb);
        Type t = skb.type.strip();
        if (t.kind() != Kind::Pointer || t.pointee().strip().name() != "struct sk_buff") {
            std::string who = text(h.skb->span);
            if (std::holds_alternative<ArgRef>(h.skb->node) || std::holds_alternative<Ident>(h.skb->node))
                who += " of " + fn_->name;
            fail_at(h.skb->span, fmt::format("@({}) needs a struct sk_buff *, but {} is {}", h.type.to_string(), who,
                                             skb.type.name()));
        }
        Place p{{}, type(h.type.to_string(), h.type.span), false};
        p.fetch.base = Base::Packet;
        p.fetch.layer = h.layer;
        p.fetch.skb = std::make_unique<Fetch>(lower(std::move(skb), h.skb->span).fetch);
        return p;
    }

    // ---- filters ----

    PlannedComparison comparison(const Comparison& c, Span s) {
        PlannedComparison out;
        out.op = c.op;
        out.span = s;
        std::optional<PlannedField> builtin = bind(c, out);
        out.value = literal(c, builtin ? *builtin : plan_.fields[out.field]);
        return out;
    }

    std::size_t add_hidden(PlannedField f, std::string_view name) {
        f.name = name;
        f.hidden = true;
        plan_.fields.push_back(std::move(f));
        return plan_.fields.size() - 1;
    }

    // Sets OUT's subject from C's name; returns the value of a Comm/Pid/Tid subject.
    std::optional<PlannedField> bind(const Comparison& c, PlannedComparison& out) {
        using Subject = PlannedComparison::Subject;
        const std::string& name = c.name;
        auto field = [&](std::size_t i) -> std::optional<PlannedField> {
            out.subject = Subject::Field;
            out.field = i;
            return std::nullopt;
        };
        auto by = [&](Builtin b, Subject subject) -> std::optional<PlannedField> {
            out.subject = subject;
            return builtin_field(b);
        };
        for (std::size_t i = 0; i < plan_.fields.size(); ++i)
            if (plan_.fields[i].name == name) return field(i);
        if (format_ && format_->field(name)) {
            PlannedField f = tracepoint_field(Ident{name}, c.name_span);
            for (std::size_t i = 0; i < plan_.fields.size(); ++i)
                if (plan_.fields[i].fetch.base == Base::Record && plan_.fields[i].fetch.offset == f.fetch.offset)
                    return field(i);
            return field(add_hidden(std::move(f), name));
        }
        if (name == "comm" || name == "$comm") return by(Builtin::Comm, Subject::Comm);
        if (name == "common_pid" || name == "$pid") return by(Builtin::Pid, Subject::Pid);
        if (name == "$tid") return by(Builtin::Tid, Subject::Tid);
        if (name == "$cpu") return field(add_hidden(builtin_field(Builtin::Cpu), name));
        if (name == "$retval")
            return field(add_hidden(lower(eval(BuiltinRef{Builtin::Retval}, c.name_span), c.name_span), name));
        bool params = fn_ && !(plan_.kind == ProbeKind::Entry && plan_.offset);
        if (params)
            for (const Param& p : fn_->params)
                if (p.name == name) return field(add_hidden(lower(eval(Ident{name}, c.name_span), c.name_span), name));

        std::vector<std::string> names;
        for (const PlannedField& f : plan_.fields)
            if (!f.hidden) names.push_back(f.name);
        if (format_)
            for (const tracefs::Field& f : format_->fields)
                if (std::ranges::find(names, f.name) == names.end()) names.push_back(f.name);
        for (const char* builtin : {"comm", "$pid", "$tid", "$cpu"}) names.emplace_back(builtin);
        if (plan_.kind == ProbeKind::Return) names.emplace_back("$retval");
        if (params)
            for (const Param& p : fn_->params) names.push_back(p.name);
        std::string hint = did_you_mean(name, names);
        fail_at(c.name_span, fmt::format("unknown name '{}' in the filter{}", name,
                                         hint.empty() ? fmt::format(" (known: {})", fmt::join(names, ", ")) : hint));
    }

    // C's literal as the stored bits of SUBJECT.
    std::variant<std::int64_t, std::uint64_t, std::string> literal(const Comparison& c,
                                                                   const PlannedField& subject) const {
        const Literal& l = c.value;
        std::string what = fmt::format("'{}' is {}", c.name, subject.c_type);
        bool ordering = c.op != CmpOp::Eq && c.op != CmpOp::Ne && c.op != CmpOp::Glob;
        if (is_string(subject)) {
            if (ordering) fail_at(c.op_span, fmt::format("{}, a string: compare it with ==, != or ~", what));
            return l.kind == Literal::Kind::String ? l.string : l.text;  // `comm==1234` means the text
        }
        if (c.op == CmpOp::Glob) fail_at(c.op_span, fmt::format("~ matches strings, but {}", what));
        if (l.kind == Literal::Kind::String) fail_at(l.span, fmt::format("{}, a number; {} is not one", what, l.text));
        if (l.kind == Literal::Kind::Ipv6) fail_at(l.span, "IPv6 addresses are not supported in filters yet");
        bool ipv4 = l.kind == Literal::Kind::Ipv4 || subject.display == Display::IPv4;
        // The kernel compares the bits in memory, whose order is not the order shown.
        if (ordering && (ipv4 || subject.swap_bits))
            fail_at(c.op_span, fmt::format("'{}' is compared in network byte order: only == and != work", c.name));
        unsigned bits = value_bits(subject.fetch);
        std::uint64_t mask = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
        std::uint64_t raw = l.integer;
        if (l.kind == Literal::Kind::Ipv4) {
            if (bits != 32) fail_at(l.span, fmt::format("an IPv4 address needs a 4-byte field, but {}", what));
            std::uint32_t stored;  // network order in memory: 127.0.0.1 is 0x0100007f to x86
            std::memcpy(&stored, l.address.data(), sizeof stored);
            raw = stored;
        } else {
            bool is_signed = subject.fetch.is_signed;
            std::uint64_t max = is_signed ? mask >> 1 : mask;
            bool fits = l.negative ? is_signed && 0 - l.integer <= max + 1 : l.integer <= max;
            if (!fits)
                fail_at(l.span, fmt::format("{} is out of range: {} ({}{}..{})", l.text, what, is_signed ? "-" : "",
                                            is_signed ? max + 1 : 0, max));
            if (subject.swap_bits) raw = __builtin_bswap64(raw & mask) >> (64 - bits);
        }
        raw &= mask;
        if (!subject.fetch.is_signed) return raw;
        std::uint64_t sign = 1ULL << (bits - 1);
        return static_cast<std::int64_t>((raw ^ sign) - sign);
    }

    const ResolveContext& ctx_;
    std::string_view src_;
    PlannedProbe& plan_;
    std::optional<Function> fn_;                  // p, r
    std::optional<tracefs::EventFormat> format_;  // e
};

// What a probe's target errors point at: FUNC, or SUBSYS/EVENT.
Span target_span(const Probe& probe) {
    const Target& t = probe.target;
    if (probe.kind != ProbeKind::Tracepoint) return t.name_span;
    return {t.subsystem_span.pos, t.name_span.end() - t.subsystem_span.pos};
}

PlannedProbe plan(const Probe& probe, const ResolveContext& ctx, const std::string& function,
                  std::optional<Function> found) {
    const Target& t = probe.target;
    PlannedProbe out;
    out.kind = probe.kind;
    out.text = probe.text;
    if (probe.kind == ProbeKind::Tracepoint) {
        out.subsystem = t.subsystem;
        out.event = t.name;
    } else {
        out.module = t.module;
        out.function = function;
        out.offset = t.offset.value_or(0);
        out.event = probe.kind == ProbeKind::Return ? function + ".return"
                    : t.offset                      ? fmt::format("{}+{:#x}", function, *t.offset)
                                                    : function;
    }
    Resolver r(ctx, probe.text, out, target_span(probe), std::move(found));
    r.fields(probe.fields);
    if (probe.filter) out.filter = r.filter(probe.filter->root);
    return out;
}

// F's result; the errors of a probe read from a file name its line, as the parser's do.
template <typename F>
auto located(const Probe& probe, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const SourceError& e) {
        if (probe.origin.empty()) throw;
        throw SourceError(fmt::format("{}: {}", probe.origin, e.what()), e.source, e.pos, e.len);
    }
}

}  // namespace

PlannedProbe resolve(const Probe& probe, const ResolveContext& ctx) {
    return located(probe, [&] {
        if (probe.target.is_glob)
            throw SourceError(fmt::format("'{}' is a glob: resolve_all() expands it", probe.target.name), probe.text,
                              probe.target.name_span.pos, probe.target.name_span.len);
        return plan(probe, ctx, probe.target.name, std::nullopt);
    });
}

std::vector<PlannedProbe> resolve_all(const Probe& probe, const ResolveContext& ctx) {
    return located(probe, [&] {
        const Target& t = probe.target;
        std::vector<PlannedProbe> plans;
        if (!t.is_glob) {
            plans.push_back(plan(probe, ctx, t.name, std::nullopt));
            return plans;
        }
        auto error = [&](std::string message) {
            Span s = target_span(probe);
            return SourceError(std::move(message), probe.text, s.pos, s.len);
        };
        if (probe.kind == ProbeKind::Tracepoint) throw error("tracepoint globs are not supported yet");
        if (!ctx.functions) throw error("function globs need the list of traceable functions (tracefs)");
        for (const std::string& name : expand_glob(qualified(t.module, t.name), ctx.functions())) {
            std::optional<Function> found;
            try {
                found = ctx.btf.find_function(qualified(t.module, name));
            } catch (const Error&) {
                continue;  // no BTF: a compiler clone (f.isra.0) or a module built without it
            }
            plans.push_back(plan(probe, ctx, name, std::move(found)));
        }
        if (plans.empty()) throw error(fmt::format("no function with BTF matches '{}'", t.name));
        return plans;
    });
}

std::vector<std::string> expand_glob(std::string_view glob, const std::vector<std::string>& functions) {
    std::size_t colon = glob.find(':');
    std::string_view module = colon == glob.npos ? "" : glob.substr(0, colon);
    std::string pattern(colon == glob.npos ? glob : glob.substr(colon + 1));
    std::vector<std::string> out;
    for (const std::string& line : functions) {
        auto [name, mod] = function_line(line);
        if ((module.empty() || module == mod) && fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0)
            out.emplace_back(name);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void resolve_filter(const Filter& filter, std::string_view source, PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, source, plan, filter.span);
    plan.filter = r.filter(filter.root);
}

}  // namespace ksurf
