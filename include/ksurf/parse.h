// The probe language: text → AST (ast.h). Syntax errors are SourceErrors whose span is the
// offending token and whose message names what was expected.
//
//   probe    := ws* KIND ws+ target { ws+ field } [ ws+ 'f:' filter ] ws*
//   KIND     := 'p' | 'r' | 'e' | 'P' | 'R'
//   target   := [ MODULE ':' ] FUNC [ '+' NUMBER ]        p; r (no offset)
//             | SUBSYS '/' EVENT                          e
//             | PATH ':' FUNC [ '+' NUMBER ]              P; R (no offset): a uprobe on FUNC of
//                                                         the ELF file PATH (up to the last ':')
//   FUNC     := [A-Za-z0-9_.*?]+   a glob when it has '*' or '?' (no offset then)
//   field    := NAME '=' [ FMT ] expr       NAME := [A-Za-z_][A-Za-z0-9_]*, unique
//   FMT      := 'S' | 'U' | 'X'             only when the next character is % $ @ (
//   expr     := '(' type ')' expr           cast (C: applies to the whole postfix chain)
//             | primary { '->' NAME | '.' NAME | '[' NUMBER ']' }
//   primary  := '%' DIGITS                  argument %0..%5
//             | '%' REG                     x86_64: di si dx cx r8 r9 ax bx bp sp ip r10-r15,
//                                           or the long forms rdi rsi ... rip (%N, %REG: p/r)
//             | '$' ('retval' | 'comm' | 'pid' | 'tid' | 'cpu')    $retval: r only
//             | NAME                        BTF parameter (p/r) or tracepoint field (e)
//             | '(' expr ')'
//             | '@(' 'struct' HEADER '*' ')' [ MARK ] primary       packet header of skb
//             | '@' NAME                    kernel variable: @jiffies, @init_task.comm
//   type     := ('struct' | 'union' | 'enum') NAME { '*' } | NAME { NAME } { '*' }
//   HEADER   := ethhdr (l2) | iphdr | ipv6hdr (l3) | tcphdr | udphdr | icmphdr | icmp6hdr (l4)
//   MARK     := 'l2' | 'l3' | 'l4'          where skb->data points at this probe; default l3
//   NUMBER   := decimal | 0x hex            (64-bit)
//
//   filter   := and { '||' and }            whitespace allowed anywhere; runs to the end
//   and      := unary { '&&' unary }
//   unary    := '!' unary | '(' filter ')' | OPERAND CMP LITERAL
//   OPERAND  := '$' NAME | [ '@' ] NAME { '.' NAME }   comm, $pid, ip.saddr, caller, @jiffies
//   CMP      := '==' | '!=' | '<' | '<=' | '>' | '>=' | '~'   ('~' is a glob match)
//   LITERAL  := '"' chars '"' | "'" chars "'"   escapes \\ \" \' \n \t
//             | WORD                        integer (decimal, 0x hex, negative), IPv4
//                                           dotted quad, IPv6, else a string; always a
//                                           string after '~'
//
// Disambiguation:
// - A field's expression contains no whitespace except inside parentheses, so fields are
//   separated by whitespace and `(struct file *)%1` still works.
// - S, U, X is a format letter only directly before % $ @ ( — `Sk`, `S` or `X->y` are
//   identifiers. To format a bare identifier, parenthesize it: `n=S(sk->sk_err)`.
// - `(NAME)` is a cast when followed by the start of an operand (`(u32)%2`, `(u32)sk`),
//   otherwise a grouping (`(sk)->x`); tagged types, `*` and multi-word names are always
//   casts.
// - In `@(struct iphdr *)l3%0->saddr` the skb is only the primary `%0`; the chain applies to
//   the header. A chained skb needs parentheses: `@(struct iphdr *)l3(%0->next)->saddr`.
//   `l` followed by a digit right after the `)` is always the mark.
// - Packet headers follow surftrace: the mark is the layer skb->data points at (l4 in
//   tcp_v4_rcv and udp_rcv, l3 in ip_rcv, l2 before eth_type_trans), and a header above it
//   comes after the headers between: an Ethernet header (14 bytes), then an IPv4 header
//   without options (20 bytes; an icmp6hdr after IPv6's 40). A header below the mark is an
//   error. Both backends read the same bytes. Every header has the payload members
//   `cdata[i] Sdata[i] sdata[i] ldata[i] qdata[i]`: the i-th u8, s8, u16, u32, u64 right
//   after the header (`sdata[1]` is bytes 2-3). The packet names of resolve.h (tcp.dport)
//   read the headers the kernel set instead.
// - `@NAME` is a kernel variable, read where it is (surftrace's and kprobe_events' @SYM):
//   an object of the type BTF gives it (a VAR outside the per-CPU section), else of an
//   unknown type read as a u64, whose cast gives it one: `(int)@x`, `(struct task_struct
//   *)@p` (8 bytes: a pointer), `((struct task_struct)@init_task).pid` (an object: the
//   cast reinterprets its bytes, however many). Its address comes from /proc/kallsyms,
//   which lists variables only in kernels built with CONFIG_KALLSYMS_ALL. Chains apply:
//   `@init_task.comm`, `@init_task.mm->pgd`; a filter names one as `@jiffies` or
//   `@init_task.pid`.
// - P and R probe user space: %0..%5 are the x86-64 argument registers and $retval rax,
//   all `long` (casts narrow them: `(int)%0`), and every pointer cast points into the
//   process's memory: `(char *)%0` is its string. There is no BTF: no parameter names.
// - Structs that only wrap a number (atomic_t, refcount_t, kuid_t, atomic64_t, local_t...)
//   read, print and compare as that number: `users=S%0->mm->mm_users f:users<4`.
// - Field-name conventions: `ip_*` prints an IPv4 address; `b16_ b32_ b64_` byte-swap and
//   print in decimal (S allowed), `B16_ B32_ B64_` byte-swap and print in hex.
//
// Limits against hostile input: kMaxSourceLength characters, kMaxNesting levels of
// parentheses/casts/'!', kMaxChain postfix operators per chain; printable ASCII only
// outside string literals.
#pragma once

#include "ksurf/ast.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksurf {

inline constexpr std::size_t kMaxSourceLength = 4096;
inline constexpr int kMaxNesting = 32;
inline constexpr int kMaxChain = 64;

Probe parse_probe(std::string_view text);

// One probe per line; blank lines and lines starting with '#' are skipped. Errors are
// prefixed "FILE:LINE: " and their source is the line.
std::vector<Probe> parse_probe_file(std::string_view contents, std::string_view filename);

// The filter grammar on its own, as `ksurf graph --where` takes it. `$retval` is allowed.
Filter parse_filter(std::string_view text);

// TEXT written as a bpftrace probe, in ksurf's words: `tracepoint:sched:sched_switch` is
// `e sched/sched_switch`, `kprobe:vfs_read` `p vfs_read`, `kretprobe:`/`fexit:` an r probe,
// and a `/predicate/` becomes `f:predicate` (args->F as F, argN as %N, pid as $pid); an
// action block is dropped. nullopt when TEXT does not start like a bpftrace probe.
std::optional<std::string> from_bpftrace(std::string_view text);

}  // namespace ksurf
