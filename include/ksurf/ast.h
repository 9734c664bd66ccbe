// The parsed form of a probe (`p tcp_v4_rcv sk=%0 f:sk!=0`) and of a filter, before any
// BTF resolution. Names are kept as text and every name a later stage may reject carries
// its span, so the resolver can throw a SourceError with a caret under the exact token.
// The grammar is documented in parse.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ksurf {

// A byte range of the probe (or filter) text the node was parsed from.
struct Span {
    std::size_t pos = 0;
    std::size_t len = 0;

    std::size_t end() const { return pos + len; }
    bool operator==(const Span&) const = default;
};

// `struct file *`, `unsigned long`, `u32`: tag + name as written (words joined by one space,
// const/volatile dropped) + pointer depth. `char __user *` (the kernel's own spelling, the
// qualifier anywhere before the '*') is a pointer into user memory.
struct TypeName {
    enum class Tag : std::uint8_t { None, Struct, Union, Enum };

    Tag tag = Tag::None;
    std::string name;
    unsigned pointers = 0;
    bool user = false;
    Span span;

    std::string to_string() const;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct ArgRef {  // %0..%5: the Nth function argument by calling convention
    unsigned index = 0;
};
struct RegRef {  // %di, %rdi → "di": the kprobe short name, always canonical
    std::string name;
};
enum class Builtin : std::uint8_t { Retval, Comm, Pid, Tid, Cpu };
std::string_view builtin_name(Builtin b);  // "retval"
struct BuiltinRef {
    Builtin which = Builtin::Retval;
};
struct Ident {  // a BTF parameter name (p/r), a tracepoint field (e), e.g. common_pid
    std::string name;
};
struct Member {  // base->name, base.name
    ExprPtr base;
    std::string name;
    bool arrow = true;
    Span name_span;
};
struct Index {  // base[index]
    ExprPtr base;
    std::uint64_t index = 0;
    Span index_span;
};
struct Cast {  // (type)operand, C semantics: the operand includes its whole postfix chain
    TypeName type;
    ExprPtr operand;
};
enum class Layer : std::uint8_t { L2 = 2, L3 = 3, L4 = 4 };
// The layer of the packet header `struct NAME` (iphdr: L3); nullopt unless NAME is ethhdr,
// iphdr, ipv6hdr, tcphdr, udphdr, icmphdr or icmp6hdr.
std::optional<Layer> header_layer(std::string_view name);
// @(struct tcphdr *)l3%0, as surftrace: a header of type `type` in the packet of the skb
// `skb`, whose skb->data points at the `mark` layer at this probe; a header above the mark
// follows those between (l3: tcphdr after an IPv4 header). A following ->member chain is
// an ordinary Member node whose base is this node.
struct PacketHeader {
    TypeName type;  // always `struct <header> *`, the header's layer not below the mark
    Layer mark = Layer::L3;
    Span mark_span;  // empty when the mark was left implicit
    ExprPtr skb;
};

// @jiffies, as surftrace and kprobe_events write it: the kernel variable NAME, an object at
// its address (typed by BTF where the kernel's BTF has it, else a u64 a cast may retype).
struct Global {
    std::string name;
};

struct Expr {
    std::variant<ArgRef, RegRef, BuiltinRef, Ident, Member, Index, Cast, PacketHeader, Global> node;
    Span span;

    std::string to_string() const;
};

// How a field's value is printed. Auto leaves it to the resolved type (strings for char
// arrays, hex for pointers, signed/unsigned decimal by the integer type).
enum class Format : std::uint8_t { Auto, Signed, Unsigned, Hex, Ipv4 };

// NAME=EXPR. The S/U/X letter and the name's prefix (ip_, b16_, B16_...) combine into
// `format` and `swap_bits`.
struct Field {
    std::string name;
    Span name_span;
    char prefix = 0;  // 'S', 'U', 'X' as written, 0 if none
    Span prefix_span;
    Format format = Format::Auto;
    unsigned swap_bits = 0;  // 16, 32, 64: byte-swap that many low bits before printing
    Expr expr;

    std::string to_string() const;
};

// ---- Filters ----

struct Literal {
    enum class Kind : std::uint8_t { Integer, String, Ipv4, Ipv6 };

    Kind kind = Kind::String;
    std::string text;                      // as written, quotes included
    std::uint64_t integer = 0;             // Integer: two's complement of the value
    bool negative = false;                 // Integer: written with '-'
    std::string string;                    // String: unescaped contents
    std::array<std::uint8_t, 16> address{};  // Ipv4 (first 4 bytes), Ipv6; network order
    Span span;

    std::string to_string() const;
};

enum class CmpOp : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge, Glob };
std::string_view cmp_op_text(CmpOp op);  // "=="

// NAME OP LITERAL. NAME is kept as one string: a field, tracepoint field, `common_pid`,
// `$pid`, a dotted name such as `ip.saddr`, or a kernel variable `@jiffies` (`@init_task.pid`).
struct Comparison {
    std::string name;
    Span name_span;
    CmpOp op = CmpOp::Eq;
    Span op_span;
    Literal value;
};

struct FilterExpr;
struct Not {
    std::unique_ptr<FilterExpr> operand;
};
// a && b && c is one node with three operands: the tree's depth is bounded by the
// nesting of parentheses and '!', never by the length of a chain.
struct Logical {
    enum class Op : std::uint8_t { And, Or };

    Op op = Op::And;
    std::vector<FilterExpr> operands;  // at least two
};

struct FilterExpr {
    std::variant<Comparison, Not, Logical> node;
    Span span;

    std::string to_string() const;
};

struct Filter {
    FilterExpr root;
    Span span;

    std::string to_string() const { return root.to_string(); }
};

// ---- Probes ----

// p, r, e; P and R are Entry and Return of a function in user space (Target::binary).
enum class ProbeKind : std::uint8_t { Entry, Return, Tracepoint };

struct Target {
    std::string binary;     // P/R `PATH:func`, a uprobe in that executable or library
    std::string module;     // p/r `module:func`; empty when unqualified
    std::string name;       // p/r: function or glob; e: event
    std::string subsystem;  // e only
    std::optional<std::uint64_t> offset;  // p FUNC+OFF
    bool is_glob = false;                 // name or subsystem contains '*' or '?'
    Span binary_span, module_span, name_span, subsystem_span, offset_span;

    std::string to_string(ProbeKind kind) const;
};

struct Probe {
    ProbeKind kind = ProbeKind::Entry;
    Target target;
    std::vector<Field> fields;
    std::optional<Filter> filter;
    std::string text;    // the source all spans refer to
    std::string origin;  // "FILE:LINE" for probes from a file, empty otherwise

    std::string to_string() const;
};

}  // namespace ksurf
