#include "ksurf/resolve.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "ksurf/btf.h"
#include "ksurf/elf.h"
#include "ksurf/error.h"
#include "ksurf/kallsyms.h"
#include "globals.h"
#include "packet_names.h"
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
    bool user = false;  // a pointer (value or object) into user memory
    bool untyped = false;  // a kernel variable BTF does not type: a cast may take any size
};

// The object P points to, at offset 0 of it. User memory is read by the final access only:
// the loads of a chain read the kernel's.
void follow(Place& p) {
    if (p.object) {
        if (p.fetch.user) fail("a pointer in user memory cannot be followed: ksurf reads user memory only at the end of a chain");
        p.fetch.derefs.push_back(p.fetch.offset);
        p.fetch.offset = 0;
    }
    p.fetch.user = p.user;
    p.user = false;
    p.type = p.type.pointee();
    p.object = true;
}

PlannedComparison compare_field(std::size_t field, CmpOp op, std::variant<std::int64_t, std::uint64_t, std::string> v,
                                Span s) {
    PlannedComparison c;
    c.field = field;
    c.op = op;
    c.value = std::move(v);
    c.span = s;
    return c;
}

PlannedFilterNode logical(PlannedFilter::Op op, std::vector<PlannedFilterNode> operands) {
    auto out = std::make_unique<PlannedFilter>();
    out->op = op;
    out->operands = std::move(operands);
    return out;
}

template <typename... N>
PlannedFilterNode all_of(N&&... n) {
    std::vector<PlannedFilterNode> v;
    (v.push_back(std::forward<N>(n)), ...);
    return logical(PlannedFilter::Op::And, std::move(v));
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
        // A field named `skb` chooses the packet of the packet names, wherever it is written.
        for (const Field& f : fields)
            if (f.name == "skb") skb_ = skb_field(field(f), f.expr.span);
        for (const Field& f : fields) plan_.fields.push_back(field(f));
        // Each event must carry what says whether its packet is of a printed name's protocol;
        // after the printed fields, whose indices are their order in the probe.
        const std::size_t printed = plan_.fields.size();
        const Span s{0, 0};  // the printed name resolved, so its guards do too
        for (std::size_t i = 0; i < printed; ++i) {
            if (plan_.fields[i].packet.empty()) continue;
            for (std::string_view g : protocol_names(packet_name_ok(plan_.fields[i].packet).proto)) {
                PlannedField& f = plan_.fields[packet_slot(packet_name_ok(g), s)];
                if (f.hidden) {
                    f.hidden = false;
                    f.guard = true;
                }
            }
        }
        if (!format_ || !fields.empty()) return;
        // A bare `e SUBSYS/EVENT` prints the tracepoint's own fields, less what cannot be read.
        for (const tracefs::Field& f : format_->fields)
            if (!f.is_common() && !unsupported(f)) plan_.fields.push_back(record_value(f));
    }

    PlannedFilterNode filter(const FilterExpr& e) {
        return std::visit(
            [&](const auto& node) -> PlannedFilterNode {
                using T = std::decay_t<decltype(node)>;
                if constexpr (std::is_same_v<T, Comparison>) {
                    return compare(node, e.span);
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
        PlannedField out = guard(f.expr.span, [&] { return value_of(f.expr); });
        out.name = f.name;
        present(out, f);
        return out;
    }

    PlannedField value_of(const Expr& e) {
        if (std::optional<std::string> n = packet_expr(e)) {
            if (*n == kL4Proto)
                fail_at(e.span, "l4proto exists in filters only; print ip.proto or ip6.nexthdr");
            return packet_field(packet_name_ok(*n), e.span);
        }
        if (const auto* b = std::get_if<BuiltinRef>(&e.node); b && b->which != Builtin::Retval)
            return builtin_field(b->which);
        if (!format_) return lower(eval(e), e.span);
        // %N of an e probe is a TP_PROTO argument, typed by btf_trace_<event> (tp_btf/raw_tp).
        if (reads_arg(e)) {
            if (!fn_) fn_ = guard(e.span, [&] { return ctx_.btf.find_tracepoint_proto(plan_.event); });
            return lower(eval(e), e.span);
        }
        if (const auto* id = std::get_if<Ident>(&e.node)) return tracepoint_field(*id, e.span);
        return lower(eval(e), e.span);  // a cast or chain over record fields, typed by BTF
    }

    static bool reads_arg(const Expr& e) {
        return std::visit(
            [](const auto& n) {
                using T = std::decay_t<decltype(n)>;
                if constexpr (std::is_same_v<T, ArgRef>) return true;
                else if constexpr (std::is_same_v<T, Member> || std::is_same_v<T, Index>) return reads_arg(*n.base);
                else if constexpr (std::is_same_v<T, Cast>) return reads_arg(*n.operand);
                else if constexpr (std::is_same_v<T, PacketHeader>) return reads_arg(*n.skb);
                else return false;
            },
            e.node);
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
        return record_value(*f);
    }

    // A record field as printed: its bytes, except a string a syscall was passed, read from
    // the user memory it is in.
    PlannedField record_value(const tracefs::Field& f) const {
        PlannedField p = record_field(f);
        if (!user_string(f)) return p;
        p.fetch.derefs = {p.fetch.offset};
        p.fetch.offset = 0;
        p.fetch.access = Access::String;
        p.fetch.size = kMaxStringPointer;
        p.fetch.is_signed = false;
        p.fetch.user = true;
        p.display = Display::String;
        return p;
    }

    // syscalls/sys_enter_* record the arguments as the task passed them: a char pointer
    // there (`const char * filename`) is a string in user memory.
    bool user_string(const tracefs::Field& f) const {
        if (format_->system != "syscalls" || !f.is_pointer() || f.data_loc) return false;
        std::string t = f.type;
        for (std::string_view word : {"const", "__user", " "})
            for (std::size_t at; (at = t.find(word)) != std::string::npos;) t.erase(at, word.size());
        return t == "char*";
    }

    // Record field ID as an object of its C type (BTF), so that casts and chains apply:
    // `buf=((char __user *)buf)`, `n=((int __user *)uaddr)[0]`.
    Place record_place(const Ident& id, Span s) const {
        const tracefs::Field* f = format_->field(id.name);
        if (!f) tracepoint_field(id, s);  // throws, with the names there are
        if (f->data_loc || f->rel_loc || f->type.ends_with(']'))
            fail_at(s, fmt::format("'{}' is {}: print it as it is ('NAME={}')", id.name, record_field(*f).c_type, id.name));
        Place p{{}, type(f->type, s), true};
        p.fetch.base = Base::Record;
        p.fetch.offset = f->offset;
        return p;
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
        if (f.swap_bits) out.swap_bits = f.swap_bits;  // packet names come swapped already
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
        unwrap_scalar(p);
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

    // atomic_t, refcount_t, kuid_t...: a struct that only wraps a number is that number, as
    // surftrace prints `users=S%0->mm->mm_users`. Its one member is at offset 0, so the
    // place keeps its address and takes the member's type.
    static void unwrap_scalar(Place& p) {
        if (std::optional<Type> inner = wrapped_scalar(p.type)) p.type = *inner;
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
        // Tracepoint prototypes have no parameter names in BTF: their types tell %N apart.
        for (const Param& p : fn_->params) names.push_back(p.name.empty() ? p.type.name() : p.name);
        fail_at(s, fmt::format("{} has {}; %{} is out of range", fn_->name,
                               names.empty() ? "no parameters"
                                             : fmt::format("{} parameter{} ({})", names.size(),
                                                           names.size() == 1 ? "" : "s", fmt::join(names, ", ")),
                               a.index));
    }

    Place eval(const Ident& id, Span s) {
        if (format_ && !fn_) return record_place(id, s);
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
        if (payload(m.name) && packet_struct(p))
            fail_at(m.name_span, fmt::format("'{0}' is the payload after the header, in elements; name one: {0}[N]",
                                             m.name));
        select(p, m.name, m.base->span, m.name_span);
        return p;
    }

    // P's member NAME; BASE spans what P was read from.
    void select(Place& p, std::string_view name, Span base, Span name_span) const {
        // `.` on a pointer acts as `->`, and `->` on a struct as `.`: there is one meaning.
        if (p.type.kind() == Kind::Pointer) {
            if (p.type.pointee().kind() == Kind::Void)
                fail_at(base, fmt::format("'{0}' is a {1}; cast it to what it points to: ((struct NAME *){0})->{2}",
                                          text(base), p.type.name(), name));
            follow(p);
        } else if (!p.object && (p.type.kind() == Kind::Struct || p.type.kind() == Kind::Union)) {
            fail_at(base,
                    fmt::format("'{}' is a {} passed by value; its members cannot be read", text(base), p.type.name()));
        }
        if (p.fetch.bit_size) fail_at(name_span, fmt::format("'{}' is a bitfield; it has no members", text(base)));
        auto found = guard(name_span, [&] { return member(p.type, name); });
        p.type = found.type;
        p.fetch.offset += static_cast<std::int64_t>(found.offset);
        if (found.bitfield_size) {
            p.fetch.bit_offset = static_cast<std::uint8_t>(found.bit_offset % 8);
            p.fetch.bit_size = static_cast<std::uint8_t>(found.bitfield_size);
        }
    }

    Place eval(const Index& ix, Span) {
        if (std::optional<Place> element = payload_element(ix)) return std::move(*element);
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
        TypeName kernel = c.type;
        kernel.user = false;
        Type to = type(kernel.to_string(), c.type.span);
        Place p = eval(*c.operand);
        std::string from = fmt::format("'{}' is {} ({} bytes)", text(c.operand->span), p.type.name(), p.type.size());
        Kind k = to.kind();
        if (p.fetch.bit_size) fail_at(s, fmt::format("'{}' is a bitfield; it cannot be cast", text(c.operand->span)));
        if (!p.object && (k == Kind::Struct || k == Kind::Union))
            fail_at(s, fmt::format("cannot cast a value to '{0}'; cast it to a pointer: ({0} *)", to.name()));
        if (k == Kind::Pointer && p.type.size() != 8)
            fail_at(s, fmt::format("cannot cast to '{}': a pointer needs 8 bytes, but {}", to.name(), from));
        if (to.size() > p.type.size() && !p.untyped)
            fail_at(s, fmt::format("cannot cast to '{}' ({} bytes): {}", to.name(), to.size(), from));
        if (c.type.user && k != Kind::Pointer)
            fail_at(c.type.span, fmt::format("__user qualifies a pointer: ({} __user *)", kernel.to_string()));
        p.type = to;
        p.untyped = false;
        p.user = c.type.user || !plan_.binary.empty();  // a uprobe's pointers are the process's
        return p;
    }

    Place eval(const Global& g, Span s) const {
        GlobalVariable v = guard(s, [&] { return global_variable(ctx_, g.name); });
        Place p{std::move(v.fetch), v.type, true};
        p.untyped = !v.typed;
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
        // The header is an object at skb->data past the headers below it: a chain of loads
        // every backend runs alike, so BPF and tracefs agree by construction.
        Place p = std::move(skb);
        select(p, "data", h.skb->span, h.skb->span);
        follow(p);
        p.type = type(fmt::format("struct {}", h.type.name), h.type.span);
        p.fetch.offset = past_mark(h);
        return p;
    }

    // Bytes from skb->data, at H's mark, to H: the headers of the layers between as
    // surftrace assumes them, sized by BTF: an Ethernet header, then an IPv4 header without
    // options (the fixed IPv6 header before an icmp6hdr). tracefs cannot read the real IPv4
    // header length before it adds it, so the BPF backend does not either.
    std::int64_t past_mark(const PacketHeader& h) const {
        const Layer layer = header_layer(h.type.name).value();
        std::size_t skip = 0;
        if (h.mark == Layer::L2 && layer != Layer::L2) skip += type("struct ethhdr", h.type.span).size();
        if (h.mark != Layer::L4 && layer == Layer::L4)
            skip += type(h.type.name == "icmp6hdr" ? "struct ipv6hdr" : "struct iphdr", h.type.span).size();
        return static_cast<std::int64_t>(skip);
    }

    // ---- packet payload: cdata[i] Sdata[i] sdata[i] ldata[i] qdata[i] ----

    struct Payload {
        std::string_view member;
        std::string_view element;
    };
    static constexpr Payload kPayload[] = {
        {"cdata", "u8"}, {"Sdata", "s8"}, {"sdata", "u16"}, {"ldata", "u32"}, {"qdata", "u64"}};

    static const Payload* payload(std::string_view member) {
        for (const Payload& p : kPayload)
            if (p.member == member) return &p;
        return nullptr;
    }

    // Whether P is a packet header struct object, or a pointer to one.
    static bool packet_struct(const Place& p) {
        const bool pointer = p.type.kind() == Kind::Pointer;
        if (!pointer && !p.object) return false;
        std::string name = (pointer ? p.type.pointee() : p.type).strip().name();
        return name.starts_with("struct ") && header_layer(std::string_view(name).substr(7));
    }

    // HEADER->sdata[i] (surftrace): the i-th 2-byte number right after the header, and so
    // for the other widths; nullopt when IX is not such an element.
    std::optional<Place> payload_element(const Index& ix) {
        const auto* m = std::get_if<Member>(&ix.base->node);
        const Payload* pl = m ? payload(m->name) : nullptr;
        if (!pl) return std::nullopt;
        Place p = eval(*m->base);
        if (!packet_struct(p)) return std::nullopt;
        if (p.type.kind() == Kind::Pointer) follow(p);
        Type elem = type(pl->element, m->name_span);
        if (ix.index > kMaxOffset / elem.size()) fail_at(ix.index_span, fmt::format("index {} is too large", ix.index));
        p.fetch.offset += static_cast<std::int64_t>(p.type.size() + ix.index * elem.size());
        p.type = elem;
        return p;
    }

    // ---- packet names ----

    bool is_param(std::string_view name) const {
        return fn_ && std::ranges::any_of(fn_->params, [&](const Param& p) { return p.name == name; });
    }

    // The packet name E spells (`tcp.dport`, `ipver`), unless a parameter or a tracepoint
    // field of that name shadows it.
    std::optional<std::string> packet_expr(const Expr& e) const {
        std::string name;
        if (const auto* id = std::get_if<Ident>(&e.node)) {
            name = id->name;
        } else if (const auto* m = std::get_if<Member>(&e.node)) {
            const auto* base = std::get_if<Ident>(&m->base->node);
            if (!base) return std::nullopt;
            name = base->name + "." + m->name;
        } else {
            return std::nullopt;
        }
        if (!packet_name(name) && name != kL4Proto) return std::nullopt;
        std::string first = name.substr(0, name.find('.'));
        if (is_param(first) || (format_ && format_->field(first))) return std::nullopt;
        return name;
    }

    // FIELD as the sk_buff of the packet names: an 8-byte pointer.
    Fetch skb_field(const PlannedField& field, Span s) const {
        const Fetch& f = field.fetch;
        if (is_string(field) || f.bit_size || f.size != 8 || (field.c_type.find('*') == std::string::npos && !format_))
            fail_at(s, fmt::format("the field 'skb' chooses the packet, so it must be a struct sk_buff *, but it is {}",
                                   field.c_type));
        return f;
    }

    // The struct sk_buff * the packet names read: the field named `skb`, else the first
    // parameter of that type, else (e probes) the record's `skbaddr`.
    Fetch packet_skb(Span s) const {
        if (skb_) return *skb_;
        for (const PlannedField& f : plan_.fields)
            if (f.name == "skb" && !f.hidden) return skb_field(f, s);
        if (format_) {
            if (const tracefs::Field* f = format_->field("skbaddr")) return record_field(*f).fetch;
            fail_at(s, fmt::format("{}/{} has no skbaddr field for packet names to read", format_->system, format_->name));
        }
        need_entry(s);
        for (std::size_t i = 0; i < fn_->params.size(); ++i)
            if (is_skb_pointer(fn_->params[i].type)) return lower(arg(i, fn_->params[i].type), s).fetch;
        fail_at(s, fmt::format("{} has no struct sk_buff * parameter; name one with a field skb=EXPR", fn_->name));
    }

    PlannedField packet_field(const PacketName& n, Span s) const {
        Place p{{}, type(fmt::format("struct {} *", n.header), s), false};
        p.fetch.base = Base::Packet;
        p.fetch.layer = n.layer;
        p.fetch.skb = packet_skb(s);
        select(p, n.member, s, s);
        PlannedField out;
        if (n.display == Display::IPv6) {  // a struct in6_addr: its 16 bytes
            out.c_type = p.type.name();
            out.fetch = std::move(p.fetch);
            out.fetch.access = Access::Load;
            out.fetch.size = static_cast<std::uint32_t>(p.type.size());
        } else {
            out = lower(std::move(p), s);
        }
        out.name = n.name;
        out.packet = n.name;
        out.display = n.display;
        out.swap_bits = n.swap_bits;
        return out;
    }

    // The hidden (or guard) field of packet name N, shared by every comparison of it.
    std::size_t packet_slot(const PacketName& n, Span s) {
        for (std::size_t i = 0; i < plan_.fields.size(); ++i)
            if ((plan_.fields[i].hidden || plan_.fields[i].guard) && plan_.fields[i].name == n.name) return i;
        return add_hidden(packet_field(n, s), n.name);
    }

    PlannedComparison packet_equals(std::string_view name, std::uint64_t value, Span s) {
        return compare_field(packet_slot(packet_name_ok(name), s), CmpOp::Eq, value, s);
    }

    // Whether the packet is one of PROTO: the test a packet name's comparison is ANDed with.
    std::optional<PlannedFilterNode> protocol_test(Proto proto, Span s) {
        if (proto == Proto::Any) return std::nullopt;
        if (proto == Proto::Ip || proto == Proto::Ip6) return packet_equals("ipver", proto == Proto::Ip ? 4 : 6, s);
        std::uint64_t number = ip_protocol(proto);
        auto v4 = all_of(packet_equals("ipver", 4, s), packet_equals("ip.proto", number, s));
        auto v6 = all_of(packet_equals("ipver", 6, s), packet_equals("ip6.nexthdr", number, s));
        if (proto == Proto::Icmp) return v4;
        if (proto == Proto::Icmp6) return v6;
        std::vector<PlannedFilterNode> either;
        either.push_back(std::move(v4));
        either.push_back(std::move(v6));
        return logical(PlannedFilter::Op::Or, std::move(either));
    }

    // C on a packet name, with its protocol test.
    PlannedFilterNode packet_comparison(const Comparison& c, Span s) {
        if (c.name == kL4Proto) {
            auto on = [&](std::uint64_t version, std::string_view name) {
                std::size_t f = packet_slot(packet_name_ok(name), s);
                return all_of(packet_equals("ipver", version, s), compare_field(f, c.op, literal(c, plan_.fields[f]), s));
            };
            std::vector<PlannedFilterNode> either;
            either.push_back(on(4, "ip.proto"));
            either.push_back(on(6, "ip6.nexthdr"));
            return logical(PlannedFilter::Op::Or, std::move(either));
        }
        const PacketName& n = packet_name_ok(c.name);
        PlannedFilterNode cmp = n.display == Display::IPv6 ? ipv6_comparison(c, n, s) : PlannedFilterNode{};
        if (n.display != Display::IPv6) {
            std::size_t f = packet_slot(n, s);
            cmp = compare_field(f, c.op, literal(c, plan_.fields[f]), s);
        }
        std::optional<PlannedFilterNode> test = protocol_test(n.proto, s);
        if (!test) return cmp;
        return all_of(std::move(*test), std::move(cmp));
    }

    // An IPv6 address as two 8-byte halves compared with the literal's bytes in memory
    // order: the backends compare numbers of at most 8 bytes.
    PlannedFilterNode ipv6_comparison(const Comparison& c, const PacketName& n, Span s) {
        if (c.value.kind != Literal::Kind::Ipv6)
            fail_at(c.value.span, fmt::format("'{}' is an IPv6 address; {} is not one", c.name, c.value.text));
        if (c.op != CmpOp::Eq && c.op != CmpOp::Ne)
            fail_at(c.op_span, fmt::format("'{}' is an address: only == and != work", c.name));
        std::vector<PlannedFilterNode> halves;
        for (int half = 0; half < 2; ++half) {
            std::string name = fmt::format("{}[{}]", n.name, half);
            std::size_t f = plan_.fields.size();
            for (std::size_t i = 0; i < plan_.fields.size(); ++i)
                if (plan_.fields[i].hidden && plan_.fields[i].name == name) f = i;
            if (f == plan_.fields.size()) {
                PlannedField part = packet_field(n, s);
                part.fetch.size = 8;
                part.fetch.offset += 8 * half;
                part.display = Display::Hex;
                part.c_type = "u64";
                f = add_hidden(std::move(part), name);
            }
            std::uint64_t bits;
            std::memcpy(&bits, c.value.address.data() + 8 * half, sizeof bits);
            halves.push_back(compare_field(f, CmpOp::Eq, bits, s));
        }
        PlannedFilterNode both = logical(PlannedFilter::Op::And, std::move(halves));
        if (c.op == CmpOp::Eq) return both;
        std::vector<PlannedFilterNode> one;
        one.push_back(std::move(both));
        return logical(PlannedFilter::Op::Not, std::move(one));
    }

public:
    // The field holding NAME as a filter names it (plus the packet names), added hidden
    // when no field holds it: comm, pid, tid and cpu are the builtins unless a field or a
    // tracepoint field is called that.
    std::size_t name_slot(std::string_view name) {
        for (std::size_t i = 0; i < plan_.fields.size(); ++i)
            if (plan_.fields[i].name == name) return i;
        const bool known = (format_ && format_->field(name)) || is_param(name);
        const Span s{0, name.size()};
        if (!known)
            if (const PacketName* n = packet_name(name)) return packet_slot(*n, s);
        Comparison c;
        c.name = known || (name != "pid" && name != "tid" && name != "cpu") ? std::string(name) : "$" + std::string(name);
        c.name_span = s;
        PlannedComparison out;
        if (auto builtin = bind(c, out)) return add_hidden(std::move(*builtin), name);
        return out.field;
    }

    std::size_t skb_slot() {
        for (std::size_t i = 0; i < plan_.fields.size(); ++i)
            if (plan_.fields[i].hidden && plan_.fields[i].name == "$skb") return i;
        PlannedField f;
        f.fetch = packet_skb({});
        f.display = Display::Hex;
        f.c_type = "struct sk_buff *";
        return add_hidden(std::move(f), "$skb");
    }

private:
    // ---- filters ----

    PlannedFilterNode compare(const Comparison& c, Span s) {
        bool known = std::ranges::any_of(plan_.fields, [&](const PlannedField& f) { return f.name == c.name; }) ||
                     (format_ && format_->field(c.name)) || is_param(c.name);
        if (!known && (packet_name(c.name) || c.name == kL4Proto)) return packet_comparison(c, s);
        if (!known && c.name == "caller") return caller_comparison(c, s);
        return comparison(c, s);
    }

    // caller==SYM: the return address at entry lies in the code of SYM, [start, end) by
    // /proc/kallsyms, or of any function of that name; != is the negation. Comparisons of
    // one hidden field, which every backend can run.
    PlannedFilterNode caller_comparison(const Comparison& c, Span s) {
        if (plan_.kind != ProbeKind::Entry || plan_.offset || !plan_.binary.empty())
            fail_at(c.name_span, "'caller' is known at a kernel function's entry only (p FUNC, without an offset)");
        if (c.op != CmpOp::Eq && c.op != CmpOp::Ne) fail_at(c.op_span, "'caller' compares with == and != only");
        const std::string sym = c.value.kind == Literal::Kind::String ? c.value.string : c.value.text;
        if (!ctx_.kallsyms) fail_at(c.name_span, "'caller' needs the kernel's symbols (/proc/kallsyms)");
        const auto found = ctx_.kallsyms().find(sym);
        if (found.empty()) fail_at(c.value.span, fmt::format("no kernel function '{}' in /proc/kallsyms", sym));
        std::size_t field = 0;
        while (field < plan_.fields.size() && plan_.fields[field].fetch.base != Base::Caller) field++;
        if (field == plan_.fields.size()) {
            PlannedField f;
            f.fetch.base = Base::Caller;
            f.display = Display::Hex;
            f.c_type = "void *";
            field = add_hidden(std::move(f), "caller");
        }
        auto bound = [&](CmpOp op, std::uint64_t addr) {
            PlannedComparison b;
            b.field = field;
            b.op = op;
            b.value = addr;
            b.span = s;
            return b;
        };
        auto any = std::make_unique<PlannedFilter>();
        any->op = PlannedFilter::Op::Or;
        for (const KernelSymbol* k : found) {
            auto in = std::make_unique<PlannedFilter>();
            in->operands.push_back(bound(CmpOp::Ge, k->addr));
            in->operands.push_back(bound(CmpOp::Lt, k->end));
            any->operands.push_back(std::move(in));
        }
        if (c.op == CmpOp::Eq) return any;
        auto no = std::make_unique<PlannedFilter>();
        no->op = PlannedFilter::Op::Not;
        no->operands.push_back(std::move(any));
        return no;
    }

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
                if (plan_.fields[i].fetch.base == Base::Record && plan_.fields[i].fetch.offset == f.fetch.offset &&
                    plan_.fields[i].fetch.derefs == f.fetch.derefs)
                    return field(i);
            return field(add_hidden(std::move(f), name));
        }
        if (name == "comm" || name == "$comm") return by(Builtin::Comm, Subject::Comm);
        if (name == "common_pid" || name == "$pid") return by(Builtin::Pid, Subject::Pid);
        if (name == "$tid") return by(Builtin::Tid, Subject::Tid);
        if (name == "$cpu") return field(add_hidden(builtin_field(Builtin::Cpu), name));
        if (name.starts_with('@')) {
            const Expr e = global_operand(name, c.name_span);
            return field(add_hidden(guard(c.name_span, [&] { return lower(eval(e), c.name_span); }), name));
        }
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
        if (l.kind == Literal::Kind::Ipv6)
            fail_at(l.span, fmt::format("{}; IPv6 addresses compare with ip6.saddr and ip6.daddr", what));
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
    std::optional<Fetch> skb_;                    // the field named `skb`, if any
};

// What a probe's target errors point at: FUNC, or SUBSYS/EVENT.
Span target_span(const Probe& probe) {
    const Target& t = probe.target;
    if (probe.kind != ProbeKind::Tracepoint) return t.name_span;
    return {t.subsystem_span.pos, t.name_span.end() - t.subsystem_span.pos};
}

// What plan() attaches to: FUNC, or SUBSYS/EVENT.
std::string target_name(const Probe& probe) {
    const Target& t = probe.target;
    return probe.kind == ProbeKind::Tracepoint ? t.subsystem + "/" + t.name : t.name;
}

// P/R PATH:FUNC: the function's place in the file, and its registers as the x86-64
// calling convention fills them: %0..%5 and $retval are longs (S/U/X and casts say more),
// and every pointer points into the process's memory.
Function user_function(const Probe& probe, const ResolveContext& ctx, PlannedProbe& out) {
    const Target& t = probe.target;
    auto at = [&](Span s, std::string message) { return SourceError(std::move(message), probe.text, s.pos, s.len); };
    std::error_code ec;
    const std::filesystem::path path = std::filesystem::absolute(t.binary, ec);
    if (ec || !std::filesystem::is_regular_file(path, ec)) throw at(t.binary_span, fmt::format("no file '{}'", t.binary));
    std::vector<ElfFunction> functions;
    try {
        functions = elf_functions(path);
    } catch (const Error& e) {
        throw at(t.binary_span, e.what());
    }
    auto found = std::ranges::find(functions, t.name, &ElfFunction::name);
    if (found == functions.end()) {
        std::vector<std::string> names;
        for (const ElfFunction& f : functions) names.push_back(f.name);
        throw at(t.name_span, fmt::format("{} has no function '{}'{}", path.string(), t.name, did_you_mean(t.name, names)));
    }
    if (t.offset && *t.offset >= std::max<std::uint64_t>(found->size, 1))
        throw at(t.offset_span, fmt::format("{} is {} bytes long: +{:#x} is past its end", t.name, found->size, *t.offset));
    out.binary = path.string();
    out.file_offset = found->file_offset + t.offset.value_or(0);
    const Type reg = ctx.btf.find_type("long");
    Function fn{t.name, {}, reg, {}, false};
    for (int i = 0; i < 6; i++) fn.params.push_back({"", reg});
    return fn;
}

// PROBE at TARGET: its own (target_name()) or one its glob matched.
PlannedProbe plan(const Probe& probe, const ResolveContext& ctx, const std::string& target,
                  std::optional<Function> found) {
    const Target& t = probe.target;
    PlannedProbe out;
    out.kind = probe.kind;
    out.text = probe.text;
    if (probe.kind == ProbeKind::Tracepoint) {
        const auto slash = target.find('/');
        out.subsystem = target.substr(0, slash);
        out.event = target.substr(slash + 1);
    } else {
        out.module = t.module;
        out.function = target;
        out.offset = t.offset.value_or(0);
        out.event = probe.kind == ProbeKind::Return ? target + ".return"
                    : t.offset                      ? fmt::format("{}+{:#x}", target, *t.offset)
                                                    : target;
        if (!t.binary.empty()) found = user_function(probe, ctx, out);
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
        return plan(probe, ctx, target_name(probe), std::nullopt);
    });
}

std::vector<PlannedProbe> resolve_all(const Probe& probe, const ResolveContext& ctx) {
    return located(probe, [&] {
        const Target& t = probe.target;
        std::vector<PlannedProbe> plans;
        if (!t.is_glob) {
            plans.push_back(plan(probe, ctx, target_name(probe), std::nullopt));
            return plans;
        }
        auto error = [&](std::string message) {
            Span s = target_span(probe);
            return SourceError(std::move(message), probe.text, s.pos, s.len);
        };
        if (probe.kind == ProbeKind::Tracepoint) {
            if (!ctx.tracepoints) throw error("tracepoint globs need the list of tracepoints (tracefs events/)");
            const std::string glob = target_name(probe);
            // FNM_PATHNAME: a '*' stays within the system or the event.
            for (const std::string& name : ctx.tracepoints())
                if (fnmatch(glob.c_str(), name.c_str(), FNM_PATHNAME) == 0) plans.push_back(plan(probe, ctx, name, std::nullopt));
            if (plans.empty()) throw error(fmt::format("no tracepoint matches '{}'", glob));
            return plans;
        }
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

std::string probe_label(const PlannedProbe& p) {
    if (p.kind == ProbeKind::Tracepoint) return fmt::format("e {}/{}", p.subsystem, p.event);
    const bool ret = p.kind == ProbeKind::Return;
    const char letter = p.binary.empty() ? (ret ? 'r' : 'p') : (ret ? 'R' : 'P');
    std::string fn = p.binary.empty() ? qualified(p.module, p.function) : fmt::format("{}:{}", p.binary, p.function);
    if (p.offset && !ret) fn += fmt::format("+{:#x}", p.offset);
    return fmt::format("{} {}", letter, fn);
}

std::vector<std::string> expand_glob(std::string_view glob, const std::vector<std::string>& functions) {
    return std::move(expand_globs({std::string(glob)}, functions).front());
}

std::vector<std::vector<std::string>> expand_globs(const std::vector<std::string>& globs,
                                                   const std::vector<std::string>& functions) {
    struct Glob {
        std::string_view module;
        std::string pattern;
    };
    std::vector<Glob> parsed;
    parsed.reserve(globs.size());  // `literal` keeps views of the patterns: no reallocation
    // Plain names are looked up, not matched: each line then costs one hash lookup plus
    // the real patterns.
    std::unordered_map<std::string_view, std::vector<std::size_t>> literal;
    std::vector<std::size_t> patterns;
    for (std::size_t i = 0; i < globs.size(); i++) {
        const std::string_view g = globs[i];
        const std::size_t colon = g.find(':');
        parsed.push_back({colon == g.npos ? "" : g.substr(0, colon), std::string(colon == g.npos ? g : g.substr(colon + 1))});
        if (parsed.back().pattern.find_first_of("*?[\\") == std::string::npos)
            literal[parsed.back().pattern].push_back(i);
        else
            patterns.push_back(i);
    }
    std::vector<std::vector<std::string>> out(globs.size());
    std::string name_z;  // fnmatch wants a NUL-terminated name
    for (const std::string& line : functions) {
        // Named, not a structured binding: clang 14 (the fuzzer's build) cannot capture those.
        const auto split = function_line(line);
        const std::string_view name = split.first, mod = split.second;
        auto take = [&](std::size_t i) {
            if (parsed[i].module.empty() || parsed[i].module == mod) out[i].emplace_back(name);
        };
        if (auto it = literal.find(name); it != literal.end())
            for (std::size_t i : it->second) take(i);
        if (patterns.empty()) continue;
        name_z.assign(name);
        for (std::size_t i : patterns)
            if (fnmatch(parsed[i].pattern.c_str(), name_z.c_str(), 0) == 0) take(i);
    }
    for (auto& o : out) {
        std::sort(o.begin(), o.end());
        o.erase(std::unique(o.begin(), o.end()), o.end());
    }
    return out;
}

std::size_t resolve_packet_skb(PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, plan.text, plan, {});
    return r.skb_slot();
}

std::size_t resolve_name(std::string_view name, PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, name, plan, {});
    return r.name_slot(name);
}

void resolve_filter(const Filter& filter, std::string_view source, PlannedProbe& plan, const ResolveContext& ctx) {
    Resolver r(ctx, source, plan, filter.span);
    auto added = r.filter(filter.root);
    plan.filter = plan.filter ? all_of(std::move(*plan.filter), std::move(added)) : std::move(added);
}

}  // namespace ksurf
