// Field expressions lowered along their chains: arguments, registers, $retval, record
// fields, members, indexes, casts, packet headers and their payload (see resolve.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ksurf/suggest.h"
#include "resolver.h"

namespace ksurf::detail {
namespace {

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

}  // namespace

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

// FUNCTION: the function of a p/r plan when the caller already looked it up.
Resolver::Resolver(const ResolveContext& ctx, std::string_view source, PlannedProbe& plan, Span target,
         std::optional<Function> function)
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

void Resolver::fields(const std::vector<Field>& fields) {
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

PlannedField Resolver::field(const Field& f) {
    PlannedField out = guard(f.expr.span, [&] { return value_of(f.expr); });
    out.name = f.name;
    present(out, f);
    return out;
}

PlannedField Resolver::value_of(const Expr& e) {
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

bool Resolver::reads_arg(const Expr& e) {
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

PlannedField Resolver::tracepoint_field(const Ident& id, Span s) const {
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
PlannedField Resolver::record_value(const tracefs::Field& f) const {
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
bool Resolver::user_string(const tracefs::Field& f) const {
    if (format_->system != "syscalls" || !f.is_pointer() || f.data_loc) return false;
    std::string t = f.type;
    for (std::string_view word : {"const", "__user", " "})
        for (std::size_t at; (at = t.find(word)) != std::string::npos;) t.erase(at, word.size());
    return t == "char*";
}

// Record field ID as an object of its C type (BTF), so that casts and chains apply:
// `buf=((char __user *)buf)`, `n=((int __user *)uaddr)[0]`.
Place Resolver::record_place(const Ident& id, Span s) const {
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
void Resolver::present(PlannedField& out, const Field& f) const {
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
PlannedField Resolver::lower(Place p, Span s) const {
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

Place Resolver::eval(const Expr& e) {
    return std::visit([&](const auto& node) { return eval(node, e.span); }, e.node);
}

// Arguments are in their registers only until the function's prologue has run.
void Resolver::need_entry(Span s) const {
    if (plan_.kind == ProbeKind::Entry && plan_.offset)
        fail_at(s, fmt::format("arguments are only defined at function entry; at {} use registers such as %di",
                               plan_.event));
}

Place Resolver::arg(std::size_t index, Type type) const {
    Place p{{}, type, false};
    p.fetch.base = Base::Arg;
    p.fetch.arg = static_cast<unsigned>(index);
    return p;
}

Place Resolver::eval(const ArgRef& a, Span s) {
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

Place Resolver::eval(const Ident& id, Span s) {
    if (format_ && !fn_) return record_place(id, s);
    need_entry(s);
    std::size_t i = guard(s, [&] { return fn_->param_index(id.name); });
    return arg(i, fn_->params[i].type);
}

Place Resolver::eval(const RegRef& r, Span s) {
    Place p{{}, type("unsigned long", s), false};
    p.fetch.base = Base::Reg;
    p.fetch.reg = r.name;
    return p;
}

Place Resolver::eval(const BuiltinRef& b, Span s) {
    if (b.which != Builtin::Retval)
        fail_at(s, fmt::format("${} takes no members, indexes or casts", builtin_name(b.which)));
    if (plan_.kind != ProbeKind::Return) fail_at(s, "$retval is only available in return probes ('r')");
    if (fn_->ret.kind() == Kind::Void) fail_at(s, fmt::format("{} returns void: there is no $retval", fn_->name));
    Place p{{}, fn_->ret, false};
    p.fetch.base = Base::Retval;
    return p;
}

Place Resolver::eval(const Member& m, Span) {
    Place p = eval(*m.base);
    if (payload(m.name) && packet_struct(p))
        fail_at(m.name_span, fmt::format("'{0}' is the payload after the header, in elements; name one: {0}[N]",
                                         m.name));
    select(p, m.name, m.base->span, m.name_span);
    return p;
}

// P's member NAME; BASE spans what P was read from.
void Resolver::select(Place& p, std::string_view name, Span base, Span name_span) const {
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

Place Resolver::eval(const Index& ix, Span) {
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

Place Resolver::eval(const Cast& c, Span s) {
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

Place Resolver::eval(const Global& g, Span s) const {
    GlobalVariable v = guard(s, [&] { return global_variable(ctx_, g.name); });
    Place p{std::move(v.fetch), v.type, true};
    p.untyped = !v.typed;
    return p;
}

Place Resolver::eval(const PacketHeader& h, Span) {
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
std::int64_t Resolver::past_mark(const PacketHeader& h) const {
    const Layer layer = header_layer(h.type.name).value();
    std::size_t skip = 0;
    if (h.mark == Layer::L2 && layer != Layer::L2) skip += type("struct ethhdr", h.type.span).size();
    if (h.mark != Layer::L4 && layer == Layer::L4)
        skip += type(h.type.name == "icmp6hdr" ? "struct ipv6hdr" : "struct iphdr", h.type.span).size();
    return static_cast<std::int64_t>(skip);
}

// Whether P is a packet header struct object, or a pointer to one.
bool Resolver::packet_struct(const Place& p) {
    const bool pointer = p.type.kind() == Kind::Pointer;
    if (!pointer && !p.object) return false;
    std::string name = (pointer ? p.type.pointee() : p.type).strip().name();
    return name.starts_with("struct ") && header_layer(std::string_view(name).substr(7));
}

// HEADER->sdata[i] (surftrace): the i-th 2-byte number right after the header, and so
// for the other widths; nullopt when IX is not such an element.
std::optional<Place> Resolver::payload_element(const Index& ix) {
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

}  // namespace ksurf::detail
