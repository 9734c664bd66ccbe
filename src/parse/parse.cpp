// Recursive descent over the characters of one probe: the language is small and
// context-sensitive (a target, a field expression and a filter word take different
// characters), so the "lexer" is a set of token readers the parser calls where it knows
// which token may come next.
#include "ksurf/parse.h"

#include "ksurf/error.h"

#include <arpa/inet.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <span>
#include <utility>

namespace ksurf {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_alpha(c) || is_digit(c); }
bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_glob_char(char c) { return c == '*' || c == '?'; }
// Kernel symbols carry compiler suffixes such as tcp_v4_rcv.cold or foo.isra.0.
bool is_symbol_char(char c) { return is_ident_char(c) || c == '.' || is_glob_char(c); }
bool is_tracepoint_char(char c) { return is_ident_char(c) || is_glob_char(c); }
bool starts_operand(char c) { return c == '%' || c == '$' || c == '@' || c == '(' || is_alpha(c); }
// A bare filter value ends where whitespace, an operator or a parenthesis begins.
bool is_word_char(char c) {
    return !is_space(c) && std::string_view("()!&|=<>~\"'").find(c) == std::string_view::npos;
}

enum class Number { Ok, Invalid, Overflow };

Number parse_u64(std::string_view text, std::uint64_t& out) {
    bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    auto digits = hex ? text.substr(2) : text;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out, hex ? 16 : 10);
    if (ec == std::errc::result_out_of_range) return Number::Overflow;
    return ec == std::errc{} && end == digits.data() + digits.size() ? Number::Ok : Number::Invalid;
}

// kprobe-event names; the first nine also have an `r`-prefixed long form.
constexpr std::array<std::string_view, 17> kRegisters = {
    "di", "si", "dx", "cx", "ax", "bx", "bp", "sp", "ip",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};

// A view of the kRegisters entry, never of `name` (callers pass temporaries), for a short or
// long name.
std::optional<std::string_view> canonical_register(std::string_view name) {
    auto legacy = std::span(kRegisters).first(9);
    if (auto it = std::ranges::find(kRegisters, name); it != kRegisters.end()) return *it;
    if (name.size() == 3 && name[0] == 'r') {
        if (auto it = std::ranges::find(legacy, name.substr(1)); it != legacy.end()) return *it;
    }
    return std::nullopt;
}

constexpr std::array kBuiltins = {Builtin::Retval, Builtin::Comm, Builtin::Pid, Builtin::Tid, Builtin::Cpu};

// Longest operators first, so that "<=" is not read as "<".
constexpr std::array kCmpOps = {CmpOp::Eq, CmpOp::Ne, CmpOp::Le, CmpOp::Ge, CmpOp::Lt, CmpOp::Gt, CmpOp::Glob};

template <typename T>
std::unique_ptr<T> box(T&& value) {
    return std::make_unique<T>(std::forward<T>(value));
}

class Parser {
public:
    explicit Parser(std::string_view src) : src_(src) { check_source(); }

    Probe probe();
    Filter filter();

private:
    // Counts recursion into nested constructs so hostile input cannot exhaust the stack.
    struct Nest {
        explicit Nest(Parser& p) : parser(p) {
            if (++parser.depth_ > kMaxNesting)
                parser.error(parser.pos_, 1, fmt::format("nested deeper than {} levels", kMaxNesting));
        }
        ~Nest() { --parser.depth_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;
        Parser& parser;
    };

    void check_source() const;
    Target function_target();
    Target user_target();
    void offset(Target& t);
    Target tracepoint_target();
    Field field();
    void apply_naming(Field& f) const;
    Expr expression();
    std::optional<TypeName> cast_type();
    std::optional<TypeName> type_name();
    std::string_view type_word(TypeName& t);
    Expr primary();
    Expr percent();
    Expr packet();
    Expr global();
    Expr postfix(Expr e, std::size_t start);
    Builtin builtin(std::size_t start);
    FilterExpr logical(Logical::Op op);
    FilterExpr negation();
    Comparison comparison();
    Literal literal(CmpOp op);
    std::string quoted();
    std::uint64_t number(std::string_view what);

    bool at_end() const { return pos_ >= src_.size(); }
    char peek(std::size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }
    bool starts(std::string_view s) const { return src_.substr(pos_).starts_with(s); }
    Span span_from(std::size_t start) const { return {start, pos_ - start}; }
    std::string_view take_while(bool (*pred)(char)) {
        auto start = pos_;
        while (!at_end() && pred(src_[pos_])) ++pos_;
        return src_.substr(start, pos_ - start);
    }
    std::string_view ident() { return is_alpha(peek()) ? take_while(is_ident_char) : std::string_view{}; }
    void skip_ws() { take_while(is_space); }
    // Field expressions end at whitespace unless inside parentheses.
    void expr_ws() {
        if (parens_) skip_ws();
    }

    [[noreturn]] void error(std::size_t pos, std::size_t len, std::string message) const {
        throw SourceError(std::move(message), std::string(src_), pos, len);
    }
    [[noreturn]] void error(Span span, std::string message) const { error(span.pos, span.len, std::move(message)); }
    [[noreturn]] void expected(std::string_view what) const {
        auto found = at_end() ? std::string("end of input")
                     : is_space(peek()) ? std::string("whitespace")
                                        : fmt::format("'{}'", peek());
        error(pos_, 1, fmt::format("expected {}, found {}", what, found));
    }

    std::string_view src_;
    std::optional<ProbeKind> kind_;  // unset for a standalone filter: $retval is then allowed
    std::size_t pos_ = 0;
    int depth_ = 0;
    int parens_ = 0;
};

// Rejects what a terminal or a later tracefs string cannot carry, before any token is read,
// so the message names the byte instead of a confusing "expected ...".
void Parser::check_source() const {
    if (src_.size() > kMaxSourceLength)
        error(kMaxSourceLength, 1, fmt::format("longer than {} characters", kMaxSourceLength));
    char quote = 0;
    bool escaped = false;
    for (std::size_t i = 0; i < src_.size(); ++i) {
        auto c = static_cast<unsigned char>(src_[i]);
        bool control = (c < 0x20 && c != '\t') || c == 0x7f;
        if (control || (c >= 0x80 && !quote))
            error(i, 1,
                  fmt::format("{} byte 0x{:02x} at offset {}{}", control ? "non-printable" : "non-ASCII", c, i,
                              control ? "" : " (allowed only inside quoted strings)"));
        if (escaped)
            escaped = false;
        else if (quote && c == '\\')
            escaped = true;
        else if (c == static_cast<unsigned char>(quote))
            quote = 0;
        else if (!quote && (c == '"' || c == '\''))
            quote = static_cast<char>(c);
    }
}

Probe Parser::probe() {
    Probe p;
    p.text = src_;
    skip_ws();
    auto kind_pos = pos_;
    auto kind = ident();
    if (kind.empty()) expected("probe kind 'p', 'r', 'e', 'P' or 'R'");
    const bool user = kind == "P" || kind == "R";
    if (kind == "p" || kind == "P")
        p.kind = ProbeKind::Entry;
    else if (kind == "r" || kind == "R")
        p.kind = ProbeKind::Return;
    else if (kind == "e")
        p.kind = ProbeKind::Tracepoint;
    else
        error(kind_pos, kind.size(), fmt::format("unknown probe kind '{}' (expected 'p', 'r', 'e', 'P' or 'R')", kind));
    kind_ = p.kind;
    if (!at_end() && !is_space(peek())) expected(fmt::format("whitespace after probe kind '{}'", kind));
    skip_ws();
    p.target = p.kind == ProbeKind::Tracepoint ? tracepoint_target() : user ? user_target() : function_target();
    if (!at_end() && !is_space(peek())) expected("whitespace after the probe target");

    for (;;) {
        skip_ws();
        if (at_end()) break;
        if (starts("f:")) {
            pos_ += 2;
            p.filter = filter();
            break;
        }
        auto f = field();
        auto dup = std::ranges::find(p.fields, f.name, &Field::name);
        if (dup != p.fields.end()) error(f.name_span, fmt::format("duplicate field name '{}'", f.name));
        p.fields.push_back(std::move(f));
        if (!at_end() && !is_space(peek()))
            expected(fmt::format("'->', '.', '[' or whitespace after field '{}'", p.fields.back().name));
    }
    return p;
}

Target Parser::function_target() {
    Target t;
    auto start = pos_;
    auto name = take_while(is_symbol_char);
    if (peek() == ':') {
        if (name.empty()) expected("module name before ':'");
        if (!std::ranges::all_of(name, is_ident_char))
            error(start, name.size(), fmt::format("invalid module name '{}'", name));
        t.module = name;
        t.module_span = {start, name.size()};
        ++pos_;
        start = pos_;
        name = take_while(is_symbol_char);
    }
    if (name.empty()) expected("function name");
    t.name = name;
    t.name_span = {start, name.size()};
    t.is_glob = std::ranges::any_of(name, is_glob_char);
    offset(t);
    return t;
}

// PATH:FUNC[+OFF]: the path runs to the last ':' of the target.
Target Parser::user_target() {
    Target t;
    auto start = pos_;
    auto text = take_while([](char c) { return !is_space(c); });
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        error(start, text.size(), "a user-space probe's target is PATH:FUNCTION, e.g. /bin/bash:readline");
    t.binary = text.substr(0, colon);
    t.binary_span = {start, colon};
    pos_ = start + colon + 1;
    t.name = take_while(is_symbol_char);
    if (t.name.empty()) expected(fmt::format("function name after '{}:'", t.binary));
    t.name_span = {start + colon + 1, t.name.size()};
    if (std::ranges::any_of(t.name, is_glob_char)) error(t.name_span, "user-space probes take one function, not a glob");
    offset(t);
    return t;
}

// The +OFFSET that may follow T's function: return probes and globs take none.
void Parser::offset(Target& t) {
    if (peek() != '+') return;
    auto plus = pos_++;
    auto value = number("offset after '+'");
    if (kind_ == ProbeKind::Return) error(plus, pos_ - plus, "return probes take no offset");
    if (t.is_glob) error(plus, pos_ - plus, "an offset needs one function, not a glob");
    t.offset = value;
    t.offset_span = span_from(plus + 1);
}

Target Parser::tracepoint_target() {
    Target t;
    auto start = pos_;
    auto subsystem = take_while(is_tracepoint_char);
    if (subsystem.empty()) expected("tracepoint 'SUBSYSTEM/EVENT'");
    t.subsystem = subsystem;
    t.subsystem_span = {start, subsystem.size()};
    if (peek() != '/') expected(fmt::format("'/' after tracepoint subsystem '{}'", subsystem));
    ++pos_;
    start = pos_;
    auto event = take_while(is_tracepoint_char);
    if (event.empty()) expected("event name after '/'");
    t.name = event;
    t.name_span = {start, event.size()};
    t.is_glob = std::ranges::any_of(subsystem, is_glob_char) || std::ranges::any_of(event, is_glob_char);
    return t;
}

Field Parser::field() {
    Field f;
    auto start = pos_;
    f.name = ident();
    if (f.name.empty()) expected("a field 'NAME=EXPR' or a filter 'f:'");
    f.name_span = {start, f.name.size()};
    if (peek() != '=') expected(fmt::format("'=' after field name '{}'", f.name));
    ++pos_;
    if (std::string_view("SUX").find(peek()) != std::string_view::npos &&
        std::string_view("%$@(").find(peek(1)) != std::string_view::npos) {
        f.prefix = peek();
        f.prefix_span = {pos_++, 1};
    }
    apply_naming(f);
    f.expr = expression();
    return f;
}

void Parser::apply_naming(Field& f) const {
    f.format = f.prefix == 'S' ? Format::Signed
               : f.prefix == 'U' ? Format::Unsigned
               : f.prefix == 'X' ? Format::Hex
                                 : Format::Auto;
    std::string_view name = f.name;
    if (name.starts_with("ip_")) {
        if (f.prefix)
            error(f.prefix_span, fmt::format("'{}' prints as an IPv4 address (ip_ prefix); drop the '{}'", name,
                                             f.prefix));
        f.format = Format::Ipv4;
        return;
    }
    if (name.size() < 4 || (name[0] != 'b' && name[0] != 'B') || name[3] != '_') return;
    auto width = name.substr(1, 2);
    f.swap_bits = width == "16" ? 16 : width == "32" ? 32 : width == "64" ? 64 : 0;
    if (!f.swap_bits) return;
    auto convention = name.substr(0, 4);
    if (name[0] == 'B') {
        if (f.prefix == 'S' || f.prefix == 'U')
            error(f.prefix_span,
                  fmt::format("'{}' fields print in hex; name it 'b{}_...' for decimal", convention, width));
        f.format = Format::Hex;
    } else {
        if (f.prefix == 'X')
            error(f.prefix_span,
                  fmt::format("'{}' fields print in decimal; name it 'B{}_...' for hex", convention, width));
        f.format = f.prefix == 'S' ? Format::Signed : Format::Unsigned;
    }
}

Expr Parser::expression() {
    Nest nest(*this);
    auto start = pos_;
    if (peek() == '(') {
        if (auto type = cast_type()) {
            expr_ws();
            auto operand = expression();
            return Expr{Cast{std::move(*type), box(std::move(operand))}, span_from(start)};
        }
    }
    return postfix(primary(), start);
}

// At '(': consumes "(type)" and returns the type if the parenthesis is a cast, else
// consumes nothing. Without a symbol table, `(NAME)` is a cast exactly when an operand
// follows it, as C parsers without typedef knowledge decide it.
std::optional<TypeName> Parser::cast_type() {
    auto open = pos_++;
    skip_ws();
    auto type = type_name();
    skip_ws();
    if (type && type->tag != TypeName::Tag::None && peek() != ')')
        expected(fmt::format("')' after type '{}'", type->to_string()));
    auto next = pos_ + 1;  // after the ')', and past whitespace where the expression allows it
    while (parens_ && next < src_.size() && is_space(src_[next])) ++next;
    bool cast = type && peek() == ')' &&
                (type->tag != TypeName::Tag::None || type->pointers ||
                 type->name.find(' ') != std::string::npos || starts_operand(next < src_.size() ? src_[next] : '\0'));
    if (!cast) {
        pos_ = open;
        return std::nullopt;
    }
    ++pos_;
    return type;
}

std::optional<TypeName> Parser::type_name() {
    static constexpr std::array<std::pair<std::string_view, TypeName::Tag>, 3> tags = {
        {{"struct", TypeName::Tag::Struct}, {"union", TypeName::Tag::Union}, {"enum", TypeName::Tag::Enum}}};
    TypeName t;
    auto start = pos_;
    auto word = type_word(t);
    if (word.empty()) {
        pos_ = start;
        return std::nullopt;
    }
    auto tag = std::ranges::find(tags, word, &std::pair<std::string_view, TypeName::Tag>::first);
    if (tag != tags.end()) {
        t.tag = tag->second;
        skip_ws();
        t.name = ident();
        if (t.name.empty()) expected(fmt::format("{0} name after '{0}'", word));
        auto save = pos_;
        if (!type_word(t).empty()) pos_ = save;  // only qualifiers follow a tagged name
    } else {
        t.name = word;
        while (!(word = type_word(t)).empty()) (t.name += ' ') += word;
    }
    for (;;) {
        auto save = pos_;
        skip_ws();
        if (peek() != '*') {
            pos_ = save;
            break;
        }
        ++pos_;
        ++t.pointers;
    }
    t.span = span_from(start);
    return t;
}

// The next word of a type name; const and volatile are skipped because they do not change
// what is read, and __user is kept in T. Returns empty, consuming only qualifiers, when no
// word follows.
std::string_view Parser::type_word(TypeName& t) {
    for (;;) {
        auto save = pos_;
        skip_ws();
        auto word = ident();
        if (word == "__user") {
            t.user = true;
        } else if (word != "const" && word != "volatile") {
            if (word.empty()) pos_ = save;
            return word;
        }
    }
}

Expr Parser::primary() {
    auto start = pos_;
    switch (peek()) {
    case '%':
        return percent();
    case '$': {
        auto which = builtin(start);
        return Expr{BuiltinRef{which}, span_from(start)};
    }
    case '@':
        return peek(1) == '(' ? packet() : global();
    case '(': {
        ++pos_;
        ++parens_;
        skip_ws();
        auto inner = expression();
        skip_ws();
        if (peek() != ')') expected("')'");
        ++pos_;
        --parens_;
        return inner;
    }
    default:
        auto name = ident();
        if (name.empty()) expected("an expression (%N, %REG, $VAR, NAME, @VAR, '(' or '@(')");
        return Expr{Ident{std::string(name)}, span_from(start)};
    }
}

Expr Parser::percent() {
    auto start = pos_++;
    // A tracepoint's %N is its TP_PROTO argument N (tp_btf/raw_tp); it has no registers.
    if (kind_ == ProbeKind::Tracepoint && !is_digit(peek()))
        error(start, 1, "tracepoint probes have no registers; name a tracepoint field or a TP_PROTO argument %N");
    if (is_digit(peek())) {
        auto digits = take_while(is_digit);
        if (digits.size() > 1 || digits[0] > '5')
            error(start, pos_ - start, fmt::format("argument index {} out of range (%0..%5)", digits));
        return Expr{ArgRef{static_cast<unsigned>(digits[0] - '0')}, span_from(start)};
    }
    auto name = take_while(is_ident_char);
    if (name.empty()) expected("argument index or register name after '%'");
    auto reg = canonical_register(name);
    if (!reg) {
        auto wide = name.starts_with('e') ? canonical_register(fmt::format("r{}", name.substr(1))) : std::nullopt;
        error(start, pos_ - start,
              wide ? fmt::format("unknown register '%{}' (32-bit names are not accepted; use %{} and a (u32) cast)",
                                 name, *wide)
                   : fmt::format("unknown register '%{}' (x86_64: {})", name, fmt::join(kRegisters, " ")));
    }
    return Expr{RegRef{std::string(*reg)}, span_from(start)};
}

// At '$': the builtin variable named after it.
Builtin Parser::builtin(std::size_t start) {
    ++pos_;
    auto name = ident();
    if (name.empty()) expected("variable name after '$'");
    auto found = std::ranges::find(kBuiltins, name, builtin_name);
    if (found == kBuiltins.end())
        error(start, pos_ - start,
              fmt::format("unknown variable '${}' (expected $retval, $comm, $pid, $tid or $cpu)", name));
    if (*found == Builtin::Retval && kind_ && *kind_ != ProbeKind::Return)
        error(start, pos_ - start, "$retval is only available in return probes ('r')");
    return *found;
}

Expr Parser::packet() {
    Nest nest(*this);
    auto start = pos_++;
    if (peek() != '(') expected("'(' after '@'");
    ++pos_;
    skip_ws();
    auto type = type_name();
    if (!type) expected("'struct HEADER *' after '@('");
    skip_ws();
    if (peek() != ')') expected(fmt::format("')' after '{}'", type->to_string()));
    ++pos_;
    std::optional<Layer> layer = type->tag == TypeName::Tag::Struct ? header_layer(type->name) : std::nullopt;
    if (!layer)
        error(type->span, fmt::format("unknown packet header '{}' (expected struct ethhdr, iphdr, ipv6hdr, tcphdr, "
                                      "udphdr, icmphdr or icmp6hdr)",
                                      type->to_string()));
    if (type->pointers != 1)
        error(type->span, fmt::format("a packet header is a pointer: write 'struct {} *'", type->name));
    PacketHeader h{std::move(*type), Layer::L3, {}, nullptr};
    expr_ws();
    if (peek() == 'l' && is_digit(peek(1))) {
        h.mark_span = {pos_, 2};
        char digit = peek(1);
        if (digit < '2' || digit > '4')
            error(h.mark_span, fmt::format("unknown layer 'l{}' (expected l2, l3 or l4)", digit));
        h.mark = static_cast<Layer>(digit - '0');
        pos_ += 2;
        expr_ws();
    }
    // The mark says where skb->data points: a header below it is not in the data.
    if (*layer < h.mark)
        error(h.mark_span.len ? h.mark_span : h.type.span,
              fmt::format("struct {} is a layer-{} header, below the mark l{}{} (skb->data at that layer); write l{} "
                          "where skb->data is at the {} header",
                          h.type.name, static_cast<int>(*layer), static_cast<int>(h.mark),
                          h.mark_span.len ? "" : ", the default", static_cast<int>(*layer),
                          *layer == Layer::L2 ? "Ethernet" : "IP"));
    if (!starts_operand(peek())) expected("the skb after the packet header type, e.g. %0 or skb");
    h.skb = box(primary());
    return Expr{std::move(h), span_from(start)};
}

// At '@' before a name: the kernel variable of that name.
Expr Parser::global() {
    auto start = pos_++;
    auto name = ident();
    if (name.empty()) expected("a kernel variable after '@' (@jiffies) or '(' (a packet header)");
    return Expr{Global{std::string(name)}, span_from(start)};
}

// `start` is where the primary began: for `(sk)->x` the chain's span includes the '(' that
// the grouped operand's own span leaves out.
Expr Parser::postfix(Expr e, std::size_t start) {
    for (int links = 0;; ++links) {
        auto save = pos_;
        expr_ws();
        auto op = pos_;
        bool arrow = starts("->");
        if (!arrow && peek() != '.' && peek() != '[') {
            pos_ = save;
            return e;
        }
        if (links == kMaxChain)
            error(op, 1, fmt::format("chain longer than {} members and indexes", kMaxChain));
        if (peek() == '[') {
            ++pos_;
            expr_ws();
            if (peek() == '-') error(pos_, 1, "array index must be a non-negative integer");
            auto index_pos = pos_;
            auto index = number("array index");
            Span index_span = span_from(index_pos);
            expr_ws();
            if (peek() != ']') expected("']'");
            ++pos_;
            e = Expr{Index{box(std::move(e)), index, index_span}, span_from(start)};
        } else {
            pos_ += arrow ? 2 : 1;
            expr_ws();
            auto name_pos = pos_;
            auto name = ident();
            if (name.empty()) expected(fmt::format("member name after '{}'", arrow ? "->" : "."));
            e = Expr{Member{box(std::move(e)), std::string(name), arrow, {name_pos, name.size()}}, span_from(start)};
        }
    }
}

std::uint64_t Parser::number(std::string_view what) {
    auto start = pos_;
    if (!is_digit(peek())) expected(what);
    auto text = take_while(is_ident_char);
    std::uint64_t value = 0;
    auto status = parse_u64(text, value);
    if (status == Number::Overflow)
        error(start, text.size(), fmt::format("number '{}' does not fit in 64 bits", text));
    if (status == Number::Invalid) error(start, text.size(), fmt::format("invalid number '{}'", text));
    return value;
}

Filter Parser::filter() {
    skip_ws();
    auto start = pos_;
    if (at_end()) error(pos_, 1, "empty filter");
    auto root = logical(Logical::Op::Or);
    auto span = span_from(start);
    skip_ws();
    if (!at_end()) expected("'&&', '||' or the end of the filter");
    return Filter{std::move(root), span};
}

// One precedence level: operands joined by `op`, flattened into a single node.
FilterExpr Parser::logical(Logical::Op op) {
    auto operand = [&] { return op == Logical::Op::Or ? logical(Logical::Op::And) : negation(); };
    std::string_view token = op == Logical::Op::Or ? "||" : "&&";
    skip_ws();
    auto start = pos_;
    auto first = operand();
    auto save = pos_;
    skip_ws();
    if (!starts(token)) {
        pos_ = save;
        return first;
    }
    Logical node{op, {}};
    node.operands.push_back(std::move(first));
    while (starts(token)) {
        pos_ += 2;
        node.operands.push_back(operand());
        save = pos_;
        skip_ws();
    }
    pos_ = save;
    return FilterExpr{std::move(node), span_from(start)};
}

FilterExpr Parser::negation() {
    Nest nest(*this);
    skip_ws();
    auto start = pos_;
    if (peek() == '!') {
        ++pos_;
        auto operand = negation();
        return FilterExpr{Not{box(std::move(operand))}, span_from(start)};
    }
    if (peek() == '(') {
        ++pos_;
        auto inner = logical(Logical::Op::Or);
        skip_ws();
        if (peek() != ')') expected("'&&', '||' or ')'");
        ++pos_;
        return inner;
    }
    auto c = comparison();
    return FilterExpr{std::move(c), span_from(start)};
}

Comparison Parser::comparison() {
    Comparison c;
    auto start = pos_;
    if (peek() == '$') {
        builtin(start);
    } else {
        const bool global = peek() == '@';
        pos_ += global;
        if (ident().empty()) expected(global ? "a kernel variable after '@'" : "a name to compare");
        while (peek() == '.' && is_alpha(peek(1))) {
            ++pos_;
            ident();
        }
    }
    c.name = src_.substr(start, pos_ - start);
    c.name_span = span_from(start);
    skip_ws();
    auto op = std::ranges::find_if(kCmpOps, [&](CmpOp o) { return starts(cmp_op_text(o)); });
    if (op == kCmpOps.end())
        expected(fmt::format("comparison operator (==, !=, <, <=, >, >=, ~) after '{}'", c.name));
    c.op = *op;
    c.op_span = {pos_, cmp_op_text(c.op).size()};
    pos_ += c.op_span.len;
    c.value = literal(c.op);
    return c;
}

Literal Parser::literal(CmpOp op) {
    skip_ws();
    Literal l;
    auto start = pos_;
    if (peek() == '"' || peek() == '\'') {
        l.string = quoted();
    } else {
        auto word = take_while(is_word_char);
        if (word.empty()) expected(fmt::format("a value after '{}'", cmp_op_text(op)));
        bool negative = word[0] == '-';
        std::uint64_t magnitude = 0;
        auto status = op == CmpOp::Glob ? Number::Invalid : parse_u64(word.substr(negative), magnitude);
        std::string text(word);
        if (status == Number::Overflow || (status == Number::Ok && negative && magnitude > (1ULL << 63)))
            error(start, word.size(), fmt::format("integer '{}' does not fit in 64 bits", word));
        if (status == Number::Ok) {
            l.kind = Literal::Kind::Integer;
            l.negative = negative;
            l.integer = negative ? 0 - magnitude : magnitude;
        } else if (op != CmpOp::Glob && inet_pton(AF_INET, text.c_str(), l.address.data()) == 1) {
            l.kind = Literal::Kind::Ipv4;
        } else if (op != CmpOp::Glob && text.find(':') != std::string::npos &&
                   inet_pton(AF_INET6, text.c_str(), l.address.data()) == 1) {
            l.kind = Literal::Kind::Ipv6;
        } else if (op != CmpOp::Glob && (negative || is_digit(word[0]))) {
            error(start, word.size(), fmt::format("invalid number or address '{}'", word));
        } else {
            l.string = std::move(text);
        }
    }
    l.span = span_from(start);
    l.text = src_.substr(start, pos_ - start);
    return l;
}

// At a quote: the unescaped contents of the string it opens.
std::string Parser::quoted() {
    auto start = pos_;
    char quote = src_[pos_++];
    std::string out;
    for (;;) {
        if (at_end()) error(start, pos_ - start, "unterminated string");
        char c = src_[pos_++];
        if (c == quote) return out;
        if (c != '\\') {
            out += c;
            continue;
        }
        if (at_end()) error(start, pos_ - start, "unterminated string");
        char escape = src_[pos_++];
        switch (escape) {
        case '\\':
        case '"':
        case '\'':
            out += escape;
            break;
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        default:
            error(pos_ - 2, 2, fmt::format("unknown escape '\\{}' (expected \\\\, \\\", \\', \\n or \\t)", escape));
        }
    }
}

}  // namespace

Probe parse_probe(std::string_view text) { return Parser(text).probe(); }

Filter parse_filter(std::string_view text) { return Parser(text).filter(); }

std::vector<Probe> parse_probe_file(std::string_view contents, std::string_view filename) {
    std::vector<Probe> probes;
    std::size_t line_no = 0;
    while (!contents.empty()) {
        auto newline = contents.find('\n');
        auto line = contents.substr(0, newline);
        contents.remove_prefix(newline == std::string_view::npos ? contents.size() : newline + 1);
        ++line_no;
        if (line.ends_with('\r')) line.remove_suffix(1);
        auto first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') continue;
        try {
            probes.push_back(parse_probe(line));
        } catch (const SourceError& e) {
            throw SourceError(fmt::format("{}:{}: {}", filename, line_no, e.what()), e.source, e.pos, e.len);
        }
        probes.back().origin = fmt::format("{}:{}", filename, line_no);
    }
    return probes;
}

}  // namespace ksurf
