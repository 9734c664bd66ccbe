// Filters bound to a plan: each name to a field (added hidden when none holds it), each
// literal to the field's stored bits, and caller==SYM to address ranges.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "ksurf/kallsyms.h"
#include "ksurf/suggest.h"
#include "resolver.h"

namespace ksurf::detail {

PlannedFilterNode Resolver::filter(const FilterExpr& e) {
    return std::visit(
        [&](const auto& node) -> PlannedFilterNode {
            using T = std::decay_t<decltype(node)>;
            if constexpr (std::is_same_v<T, Comparison>) {
                return compare(node, e.span);
            } else if constexpr (std::is_same_v<T, Not>) {
                return negation(filter(*node.operand));
            } else {
                std::vector<PlannedFilterNode> operands;
                for (const FilterExpr& operand : node.operands) operands.push_back(filter(operand));
                return logical(node.op == Logical::Op::And ? PlannedFilter::Op::And : PlannedFilter::Op::Or,
                               std::move(operands));
            }
        },
        e.node);
}

// The field holding NAME as a filter names it (plus the packet names), added hidden
// when no field holds it: comm, pid, tid and cpu are the builtins unless a field or a
// tracepoint field is called that.
std::size_t Resolver::name_slot(std::string_view name) {
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

PlannedFilterNode Resolver::compare(const Comparison& c, Span s) {
    // A hidden field of that name is one an earlier comparison added (udp.dport's, caller's):
    // it shadows nothing, and this comparison needs its protocol test or ranges as that one did.
    bool known =
        std::ranges::any_of(plan_.fields, [&](const PlannedField& f) { return !f.hidden && !f.guard && f.name == c.name; }) ||
        (format_ && format_->field(c.name)) || is_param(c.name);
    if (!known && (packet_name(c.name) || c.name == kL4Proto)) return packet_comparison(c, s);
    if (!known && c.name == "caller") return caller_comparison(c, s);
    return comparison(c, s);
}

// caller==SYM: the return address at entry lies in the code of SYM, [start, end) by
// /proc/kallsyms, or of any function of that name; != is the negation. Comparisons of
// one hidden field, which every backend can run.
PlannedFilterNode Resolver::caller_comparison(const Comparison& c, Span s) {
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
    std::vector<PlannedFilterNode> ranges;
    for (const KernelSymbol* k : found)
        ranges.push_back(all_of(comparison_of(field, CmpOp::Ge, k->addr, s), comparison_of(field, CmpOp::Lt, k->end, s)));
    PlannedFilterNode any = logical(PlannedFilter::Op::Or, std::move(ranges));
    return c.op == CmpOp::Eq ? std::move(any) : negation(std::move(any));
}

PlannedComparison Resolver::comparison(const Comparison& c, Span s) {
    PlannedComparison out;
    out.op = c.op;
    out.span = s;
    std::optional<PlannedField> builtin = bind(c, out);
    out.value = literal(c, builtin ? *builtin : plan_.fields[out.field]);
    return out;
}

// Sets OUT's subject from C's name; returns the value of a Comm/Pid/Tid subject.
std::optional<PlannedField> Resolver::bind(const Comparison& c, PlannedComparison& out) {
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
std::variant<std::int64_t, std::uint64_t, std::string> Resolver::literal(const Comparison& c,
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

}  // namespace ksurf::detail
