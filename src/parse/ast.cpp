// Canonical printing: what the parser accepts, with the minimum of parentheses, so that
// parsing to_string() again yields the same text.
#include "ksurf/ast.h"

#include <fmt/format.h>

namespace ksurf {
namespace {

template <typename... F>
struct Overload : F... {
    using F::operator()...;
};
template <typename... F>
Overload(F...) -> Overload<F...>;

// What primary() accepts without parentheses.
bool is_primary(const Expr& e) {
    return !std::holds_alternative<Member>(e.node) && !std::holds_alternative<Index>(e.node) &&
           !std::holds_alternative<Cast>(e.node);
}

// A cast binds looser than a postfix operator: ((T *)x)->m.
std::string postfix_base(const Expr& e) {
    return std::holds_alternative<Cast>(e.node) ? fmt::format("({})", e.to_string()) : e.to_string();
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            (out += '\\') += c;
        else if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else
            out += c;
    }
    return out + '"';
}

}  // namespace

std::optional<Layer> header_layer(std::string_view name) {
    static constexpr std::pair<std::string_view, Layer> layers[] = {
        {"ethhdr", Layer::L2},  {"iphdr", Layer::L3},   {"ipv6hdr", Layer::L3},  {"tcphdr", Layer::L4},
        {"udphdr", Layer::L4}, {"icmphdr", Layer::L4}, {"icmp6hdr", Layer::L4}};
    for (const auto& [header, layer] : layers)
        if (header == name) return layer;
    return std::nullopt;
}

std::string_view builtin_name(Builtin b) {
    static constexpr std::string_view names[] = {"retval", "comm", "pid", "tid", "cpu"};
    return names[static_cast<std::size_t>(b)];
}

std::string_view cmp_op_text(CmpOp op) {
    static constexpr std::string_view texts[] = {"==", "!=", "<", "<=", ">", ">=", "~"};
    return texts[static_cast<std::size_t>(op)];
}

std::string TypeName::to_string() const {
    static constexpr std::string_view tags[] = {"", "struct ", "union ", "enum "};
    auto s = fmt::format("{}{}{}", tags[static_cast<std::size_t>(tag)], name, user ? " __user" : "");
    if (pointers) (s += ' ') += std::string(pointers, '*');
    return s;
}

std::string Expr::to_string() const {
    return std::visit(
        Overload{
            [](const ArgRef& a) { return fmt::format("%{}", a.index); },
            [](const RegRef& r) { return fmt::format("%{}", r.name); },
            [](const BuiltinRef& b) { return fmt::format("${}", builtin_name(b.which)); },
            [](const Ident& i) { return i.name; },
            [](const Global& g) { return "@" + g.name; },
            [](const Member& m) { return fmt::format("{}{}{}", postfix_base(*m.base), m.arrow ? "->" : ".", m.name); },
            [](const Index& i) { return fmt::format("{}[{}]", postfix_base(*i.base), i.index); },
            [](const Cast& c) { return fmt::format("({}){}", c.type.to_string(), c.operand->to_string()); },
            [](const PacketHeader& p) {
                auto skb = p.skb->to_string();
                return fmt::format("@({})l{}{}", p.type.to_string(), static_cast<int>(p.mark),
                                   is_primary(*p.skb) ? skb : fmt::format("({})", skb));
            },
        },
        node);
}

std::string Field::to_string() const {
    auto e = expr.to_string();
    if (!prefix) return fmt::format("{}={}", name, e);
    // The letter is a prefix only before these characters; `S(sk)` must not become `Ssk`.
    if (std::string_view("%$@(").find(e[0]) == std::string_view::npos) e = fmt::format("({})", e);
    return fmt::format("{}={}{}", name, prefix, e);
}

std::string Literal::to_string() const { return kind == Kind::String ? quote(string) : text; }

std::string FilterExpr::to_string() const {
    return std::visit(
        Overload{
            [](const Comparison& c) { return fmt::format("{}{}{}", c.name, cmp_op_text(c.op), c.value.to_string()); },
            [](const Not& n) {
                auto operand = n.operand->to_string();
                return std::holds_alternative<Not>(n.operand->node) ? "!" + operand : fmt::format("!({})", operand);
            },
            [](const Logical& l) {
                bool is_and = l.op == Logical::Op::And;
                std::string s;
                for (const auto& operand : l.operands) {
                    if (!s.empty()) s += is_and ? " && " : " || ";
                    auto* inner = std::get_if<Logical>(&operand.node);
                    bool paren = is_and && inner && inner->op == Logical::Op::Or;
                    s += paren ? fmt::format("({})", operand.to_string()) : operand.to_string();
                }
                return s;
            },
        },
        node);
}

std::string Target::to_string(ProbeKind kind) const {
    if (kind == ProbeKind::Tracepoint) return fmt::format("{}/{}", subsystem, name);
    auto s = !binary.empty() ? fmt::format("{}:{}", binary, name) : module.empty() ? name : fmt::format("{}:{}", module, name);
    if (offset) s += fmt::format("+{:#x}", *offset);
    return s;
}

std::string Probe::to_string() const {
    static constexpr char letters[] = {'p', 'r', 'e'};
    const char letter = letters[static_cast<std::size_t>(kind)];
    auto s = fmt::format("{} {}", target.binary.empty() ? letter : static_cast<char>(letter - 'a' + 'A'),
                         target.to_string(kind));
    for (const auto& f : fields) (s += ' ') += f.to_string();
    if (filter) s += fmt::format(" f:{}", filter->to_string());
    return s;
}

}  // namespace ksurf
