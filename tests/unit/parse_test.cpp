#include "ksurf/parse.h"

#include "ksurf/error.h"

#include <gtest/gtest.h>

#include <string>

namespace ksurf {
namespace {

std::string_view at(const std::string& text, Span span) { return std::string_view(text).substr(span.pos, span.len); }

template <typename T>
const T& as(const Expr& e) {
    auto* node = std::get_if<T>(&e.node);
    if (!node) throw std::runtime_error("unexpected node kind in " + e.to_string());
    return *node;
}

// ---- Valid probes: text → canonical to_string(), which must parse to itself ----

struct Valid {
    const char* text;
    const char* canonical;
};

void PrintTo(const Valid& v, std::ostream* os) { *os << v.text; }

class ParseValid : public testing::TestWithParam<Valid> {};

TEST_P(ParseValid, PrintsCanonically) {
    auto [text, canonical] = GetParam();
    Probe p;
    try {
        p = parse_probe(text);
    } catch (const SourceError& e) {
        FAIL() << e.render();
    }
    EXPECT_EQ(p.to_string(), canonical);
    EXPECT_EQ(parse_probe(canonical).to_string(), canonical);
}

const Valid kValid[] = {
    // surftrace examples
    {"p wake_up_new_task comm=%0->comm users=S%0->mm->mm_users f:comm==bash",
     "p wake_up_new_task comm=%0->comm users=S%0->mm->mm_users f:comm==\"bash\""},
    {"r tcp_sendmsg ret=$retval f:ret<0", "r tcp_sendmsg ret=$retval f:ret<0"},
    {"e sched/sched_stat_wait f:delay>1000000", "e sched/sched_stat_wait f:delay>1000000"},
    {"p ip_rcv proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)l3%0->saddr "
     "f:proto==1&&ip_src==127.0.0.1",
     "p ip_rcv proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)l3%0->saddr "
     "f:proto==1 && ip_src==127.0.0.1"},
    {"p __netif_receive_skb_core+0x12 r=%di", "p __netif_receive_skb_core+0x12 r=%di"},
    {"p __netif_receive_skb_core+18 r=%rdi", "p __netif_receive_skb_core+0x12 r=%di"},
    {"p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest", "p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest"},
    {"p tcp_v4_rcv B16_dport=@(struct tcphdr *)%0->dest", "p tcp_v4_rcv B16_dport=@(struct tcphdr *)l3%0->dest"},
    {"p f x=@(struct tcphdr *)l2%0->dest", "p f x=@(struct tcphdr *)l2%0->dest"},
    {"P /usr/bin/bash:readline p=(char *)%0", "P /usr/bin/bash:readline p=(char *)%0"},
    {"R ./a.out:add ret=S$retval f:ret<0", "R ./a.out:add ret=S$retval f:ret<0"},
    {"P /lib/x86_64-linux-gnu/libc.so.6:malloc+0x4 n=%0", "P /lib/x86_64-linux-gnu/libc.so.6:malloc+0x4 n=%0"},
    {"p f x=(const char __user *)%1", "p f x=(char __user *)%1"},
    {"p f x=(__user char*)%1", "p f x=(char __user *)%1"},
    {"p f x=((struct foo __user *)%1)->a", "p f x=((struct foo __user *)%1)->a"},
    {"e syscalls/sys_enter_read x=((u32 __user *)buf)[1]", "e syscalls/sys_enter_read x=((u32 __user *)buf)[1]"},
    {"p f x=@(struct iphdr *)l2%0->ldata[1]", "p f x=@(struct iphdr *)l2%0->ldata[1]"},
    {"p enqueue_task_fair cpu=%1->se.cfs_rq->rq->cpu", "p enqueue_task_fair cpu=%1->se.cfs_rq->rq->cpu"},
    {"p vfs_write name=%1->f_path.dentry->d_name.name", "p vfs_write name=%1->f_path.dentry->d_name.name"},
    {"p wake_up_new_task c=%0->comm[0]", "p wake_up_new_task c=%0->comm[0]"},
    // targets
    {"p tcp_* sk=%0", "p tcp_* sk=%0"},
    {"p *skb* a=%0", "p *skb* a=%0"},
    {"p nf_conntrack:nf_conntrack_in skb=%1", "p nf_conntrack:nf_conntrack_in skb=%1"},
    {"p tcp_v4_rcv.cold a=%0", "p tcp_v4_rcv.cold a=%0"},
    {"e sched/*", "e sched/*"},
    {"e syscalls/sys_enter_openat name=filename", "e syscalls/sys_enter_openat name=filename"},
    {"r vfs_read", "r vfs_read"},
    {"  p tcp_v4_rcv  a=%0    b=%1  ", "p tcp_v4_rcv a=%0 b=%1"},
    {"\tp\tf\tx=%0\t", "p f x=%0"},
    // casts and grouping
    {"p vfs_read flags=((struct file *)%0)->f_flags", "p vfs_read flags=((struct file *)%0)->f_flags"},
    {"p vfs_read name=(struct file *)%0->f_path.dentry", "p vfs_read name=(struct file *)%0->f_path.dentry"},
    {"p do_sys_open path=(char *)%1", "p do_sys_open path=(char *)%1"},
    {"p kfree x=(unsigned long)%0", "p kfree x=(unsigned long)%0"},
    {"p kfree x=(u32)%2", "p kfree x=(u32)%2"},
    {"p f x=(u32)sk", "p f x=(u32)sk"},
    {"p f x=(u64)(u32)%0", "p f x=(u64)(u32)%0"},
    {"p f x=(const char *)%1", "p f x=(char *)%1"},
    {"p f x=(struct sk_buff**)%0", "p f x=(struct sk_buff **)%0"},
    {"p f x=(enum foo)%0", "p f x=(enum foo)%0"},
    {"p f x=(union bar *)%0", "p f x=(union bar *)%0"},
    {"p f x=(struct tcp_sock *)sk->sk_err", "p f x=(struct tcp_sock *)sk->sk_err"},
    {"p f x=( %0 -> comm )", "p f x=%0->comm"},
    {"p f x=((u32) %0)", "p f x=(u32)%0"},
    {"p f x=(sk)->sk_err", "p f x=sk->sk_err"},
    {"p f x=(%0)", "p f x=%0"},
    // format letters and name conventions
    {"p tcp_sendmsg size=size sk=sk", "p tcp_sendmsg size=size sk=sk"},
    {"p tcp_sendmsg n=S(sk->sk_err)", "p tcp_sendmsg n=S(sk->sk_err)"},
    {"p tcp_sendmsg x=X(u32)%2", "p tcp_sendmsg x=X(u32)%2"},
    {"p f x=S@(struct iphdr *)l3%0->ttl", "p f x=S@(struct iphdr *)l3%0->ttl"},
    {"r f ret=S$retval", "r f ret=S$retval"},
    {"p f Sk=Sk", "p f Sk=Sk"},
    {"p f x=X->y", "p f x=X->y"},
    {"p f x=U", "p f x=U"},
    {"p f b32_x=S%0", "p f b32_x=S%0"},
    {"p f B64_x=X%0", "p f B64_x=X%0"},
    // builtins and registers
    {"p f a=$comm b=$pid c=$tid d=$cpu", "p f a=$comm b=$pid c=$tid d=$cpu"},
    {"p f a=%r15 b=%r8 c=%ip d=%rsp e=%ax", "p f a=%r15 b=%r8 c=%ip d=%sp e=%ax"},
    {"p f x=%0->arr[0x10]", "p f x=%0->arr[16]"},
    {"p f x=%0->a[1][2].b", "p f x=%0->a[1][2].b"},
    {"p do_nanosleep j=@jiffies", "p do_nanosleep j=@jiffies"},
    {"p f x=X@jiffies y=S@x.a->b[1]", "p f x=X@jiffies y=S@x.a->b[1]"},
    {"p f x=(int)@x", "p f x=(int)@x"},
    {"p f x=((struct task_struct *)@p)->pid", "p f x=((struct task_struct *)@p)->pid"},
    {"p f x=((struct task_struct)@init_task).comm", "p f x=((struct task_struct)@init_task).comm"},
    {"p f x=( @init_task . comm )", "p f x=@init_task.comm"},
    {"e sched/sched_switch j=@jiffies f:@jiffies>0", "e sched/sched_switch j=@jiffies f:@jiffies>0"},
    // packet headers
    {"p f x=@(struct iphdr *)l3(%0->next)->saddr", "p f x=@(struct iphdr *)l3(%0->next)->saddr"},
    {"p f x=@(struct iphdr *)skb->saddr", "p f x=@(struct iphdr *)l3skb->saddr"},
    {"p f x=@(struct ethhdr *)l2%0->h_proto", "p f x=@(struct ethhdr *)l2%0->h_proto"},
    {"p f x=@(struct ipv6hdr *)l3%0->saddr", "p f x=@(struct ipv6hdr *)l3%0->saddr"},
    {"p f x=@(struct udphdr*)l4%0->source", "p f x=@(struct udphdr *)l4%0->source"},
    {"p f x=@(struct icmphdr *)l4%0->type", "p f x=@(struct icmphdr *)l4%0->type"},
    {"p f x=(u8)@(struct icmp6hdr *)l4%0->icmp6_type", "p f x=(u8)@(struct icmp6hdr *)l4%0->icmp6_type"},
    // filters
    {"p f ip_dst=@(struct iphdr *)l3%0->daddr f:ip_dst==10.0.0.1",
     "p f ip_dst=@(struct iphdr *)l3%0->daddr f:ip_dst==10.0.0.1"},
    {"p f x=%0 f:x==0x10", "p f x=%0 f:x==0x10"},
    {"p f x=%0 f:x==-1", "p f x=%0 f:x==-1"},
    {"p f x=%0 f:!(x==1)", "p f x=%0 f:!(x==1)"},
    {"p f x=%0 f:x==1||x==2&&x==3", "p f x=%0 f:x==1 || x==2 && x==3"},
    {"p f x=%0 f:(x==1||x==2)&&x==3", "p f x=%0 f:(x==1 || x==2) && x==3"},
    {"p f x=%0 f: caller == tcp_v4_rcv ", "p f x=%0 f:caller==\"tcp_v4_rcv\""},
    {"p f x=%0 f:ip.saddr==::1", "p f x=%0 f:ip.saddr==::1"},
    {"p f f=%0 f:f==1", "p f f=%0 f:f==1"},
    {"p f x=%0 f:comm=='my proc'", "p f x=%0 f:comm==\"my proc\""},
    {"p f x=%0 f:comm==\"a\\\"b\"", "p f x=%0 f:comm==\"a\\\"b\""},
    {"p f x=%0 f:comm==\"caf\xc3\xa9\"", "p f x=%0 f:comm==\"caf\xc3\xa9\""},
    {"e sched/sched_process_exec f:common_pid > 1 && comm ~ \"ba*\"",
     "e sched/sched_process_exec f:common_pid>1 && comm~\"ba*\""},
    {"r tcp_sendmsg f:$retval<0", "r tcp_sendmsg f:$retval<0"},
};

INSTANTIATE_TEST_SUITE_P(Parse, ParseValid, testing::ValuesIn(kValid));

// ---- Invalid probes: message substring and caret ----

struct Invalid {
    const char* text;
    const char* caret;  // '^' under the expected span
    const char* message;
};

void PrintTo(const Invalid& v, std::ostream* os) { *os << v.text; }

class ParseInvalid : public testing::TestWithParam<Invalid> {};

TEST_P(ParseInvalid, ReportsTokenAndExpectation) {
    auto [text, caret, message] = GetParam();
    std::string_view marks = caret;
    auto pos = marks.find('^');
    auto len = marks.find_last_of('^') - pos + 1;
    try {
        auto p = parse_probe(text);
        FAIL() << "parsed as " << p.to_string();
    } catch (const SourceError& e) {
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        EXPECT_EQ(e.pos, pos) << e.render();
        EXPECT_EQ(e.len, len) << e.render();
        EXPECT_EQ(e.source, text);
    }
}

const Invalid kInvalid[] = {
    {"", "^", "expected probe kind 'p', 'r', 'e', 'P' or 'R', found end of input"},
    {"x foo", "^", "unknown probe kind 'x' (expected 'p', 'r', 'e', 'P' or 'R')"},
    {"P add", "  ^^^", "a user-space probe's target is PATH:FUNCTION, e.g. /bin/bash:readline"},
    {"P /bin/x:", "         ^", "expected function name after '/bin/x:'"},
    {"P /bin/x:a*", "         ^^", "user-space probes take one function, not a glob"},
    {"R /bin/x:add+4", "            ^^", "return probes take no offset"},
    {"probe foo", "^^^^^", "unknown probe kind 'probe'"},
    {"p", " ^", "expected function name, found end of input"},
    {"p:foo", " ^", "expected whitespace after probe kind 'p', found ':'"},
    {"p tcp_v4_rcv-x", "            ^", "expected whitespace after the probe target, found '-'"},
    {"p my.mod:f", "  ^^^^^^", "invalid module name 'my.mod'"},
    {"p :f", "  ^", "expected module name before ':'"},
    {"r f+4", "   ^^", "return probes take no offset"},
    {"p tcp_*+4", "       ^^", "an offset needs one function, not a glob"},
    {"p f+0xzz", "    ^^^^", "invalid number '0xzz'"},
    {"p f+99999999999999999999", "    ^^^^^^^^^^^^^^^^^^^^", "number '99999999999999999999' does not fit in 64 bits"},
    {"p f+", "    ^", "expected offset after '+'"},
    {"e sched", "       ^", "expected '/' after tracepoint subsystem 'sched'"},
    {"e sched/", "        ^", "expected event name after '/'"},
    {"e /x", "  ^", "expected tracepoint 'SUBSYSTEM/EVENT'"},
    {"p tcp_v4_rcv comm%0", "                 ^", "expected '=' after field name 'comm', found '%'"},
    {"p tcp_v4_rcv comm", "                 ^", "expected '=' after field name 'comm', found end of input"},
    {"p f 1x=%0", "    ^", "expected a field 'NAME=EXPR' or a filter 'f:'"},
    {"p f x=%0 x=%1", "         ^", "duplicate field name 'x'"},
    {"p f x=", "      ^", "expected an expression"},
    {"p f x= %0", "      ^", "expected an expression (%N, %REG, $VAR, NAME, @VAR, '(' or '@('), found whitespace"},
    {"p f x=%0-comm", "        ^", "expected '->', '.', '[' or whitespace after field 'x', found '-'"},
    {"p f x=%zz", "      ^^^", "unknown register '%zz' (x86_64: di si"},
    {"p f x=%eax", "      ^^^^", "unknown register '%eax' (32-bit names are not accepted; use %ax"},
    {"p f x=%rr8", "      ^^^^", "unknown register '%rr8'"},
    {"p f x=%7", "      ^^", "argument index 7 out of range (%0..%5)"},
    {"p f x=%99999999999999999999", "      ^^^^^^^^^^^^^^^^^^^^^", "argument index 99999999999999999999 out of range"},
    {"p f x=%", "       ^", "expected argument index or register name after '%'"},
    {"p f x=$foo", "      ^^^^", "unknown variable '$foo' (expected $retval, $comm, $pid, $tid or $cpu)"},
    {"p f x=$", "       ^", "expected variable name after '$'"},
    {"p f x=$retval", "      ^^^^^^^", "$retval is only available in return probes ('r')"},
    {"e a/b x=%di", "        ^", "tracepoint probes have no registers; name a tracepoint field or a TP_PROTO argument %N"},
    {"e a/b x=$retval", "        ^^^^^^^", "$retval is only available in return probes"},
    {"p f x=%0->", "          ^", "expected member name after '->', found end of input"},
    {"p f x=%0.1", "         ^", "expected member name after '.'"},
    {"p f x=%0->comm[-1]", "               ^", "array index must be a non-negative integer"},
    {"p f x=%0->comm[1", "                ^", "expected ']'"},
    {"p f x=%0->comm[x]", "               ^", "expected array index, found 'x'"},
    {"p f x=%0[99999999999999999999]", "         ^^^^^^^^^^^^^^^^^^^^", "does not fit in 64 bits"},
    {"p f x=(struct file *%0", "                    ^", "expected ')' after type 'struct file *'"},
    {"p f x=(struct)%0", "             ^", "expected struct name after 'struct', found ')'"},
    {"p f x=(%0", "         ^", "expected ')'"},
    {"p f x=(u32 *)", "             ^", "expected an expression"},
    {"p f x=@%0", "       ^", "expected a kernel variable after '@' (@jiffies) or '(' (a packet header)"},
    {"p f x=@", "       ^", "expected a kernel variable after '@' (@jiffies) or '(' (a packet header), found end of input"},
    {"p f x=@1x", "       ^", "expected a kernel variable after '@'"},
    {"p f x=@a.", "         ^", "expected member name after '.'"},
    {"p f x=@a f:@==1", "            ^", "expected a kernel variable after '@', found '='"},
    {"p f x=@(", "        ^", "expected 'struct HEADER *' after '@('"},
    {"p f x=@(struct iphdr *%0", "                      ^", "expected ')' after 'struct iphdr *'"},
    {"p f x=@(struct iphdr *)l4%0->saddr", "                       ^^",
     "struct iphdr is a layer-3 header, below the mark l4 (skb->data at that layer); write l3 where skb->data is at "
     "the IP header"},
    {"p f x=@(struct ethhdr *)%0->h_proto", "        ^^^^^^^^^^^^^^^",
     "struct ethhdr is a layer-2 header, below the mark l3, the default (skb->data at that layer); write l2 where "
     "skb->data is at the Ethernet header"},
    {"p f x=@(struct iphdr *)l5%0", "                       ^^", "unknown layer 'l5' (expected l2, l3 or l4)"},
    {"p f x=@(struct foo *)%0", "        ^^^^^^^^^^^^", "unknown packet header 'struct foo *'"},
    {"p f x=@(union iphdr *)%0", "        ^^^^^^^^^^^^^", "unknown packet header 'union iphdr *'"},
    {"p f x=@(struct iphdr)%0", "        ^^^^^^^^^^^^", "a packet header is a pointer: write 'struct iphdr *'"},
    {"p f x=@(struct iphdr *)->saddr", "                       ^", "expected the skb after the packet header type"},
    {"p f ip_src=X%0", "           ^", "'ip_src' prints as an IPv4 address (ip_ prefix); drop the 'X'"},
    {"p f B16_x=S%0", "          ^", "'B16_' fields print in hex; name it 'b16_...' for decimal"},
    {"p f b32_x=X%0", "          ^", "'b32_' fields print in decimal; name it 'B32_...' for hex"},
    // filters
    {"p f x=%0 f:", "           ^", "empty filter"},
    {"p f x=%0 f:   ", "              ^", "empty filter"},
    {"p f x=%0 f:comm=bash", "               ^", "expected comparison operator (==, !=, <, <=, >, >=, ~) after 'comm'"},
    {"p f x=%0 f:comm==", "                 ^", "expected a value after '=='"},
    {"p f x=%0 f:x==1 & x==2", "                ^", "expected '&&', '||' or the end of the filter, found '&'"},
    {"p f x=%0 f:(x==1", "                ^", "expected '&&', '||' or ')'"},
    {"p f x=%0 f:x==1)", "               ^", "expected '&&', '||' or the end of the filter, found ')'"},
    {"p f x=%0 f:==1", "           ^", "expected a name to compare, found '='"},
    {"p f x=%0 f:x==1 &&", "                  ^", "expected a name to compare, found end of input"},
    {"p f x=%0 f:1==x", "           ^", "expected a name to compare, found '1'"},
    {"p f x=%0 f:x==1.2.3", "              ^^^^^", "invalid number or address '1.2.3'"},
    {"p f x=%0 f:x==12ab", "              ^^^^", "invalid number or address '12ab'"},
    {"p f x=%0 f:x==99999999999999999999", "              ^^^^^^^^^^^^^^^^^^^^",
     "integer '99999999999999999999' does not fit in 64 bits"},
    {"p f x=%0 f:x==-9223372036854775809", "              ^^^^^^^^^^^^^^^^^^^^", "does not fit in 64 bits"},
    {"p f x=%0 f:comm==\"bash", "                 ^^^^^", "unterminated string"},
    {"p f x=%0 f:comm=='bash\\'", "                 ^^^^^^^", "unterminated string"},
    {"p f x=%0 f:comm==\"a\\qb\"", "                   ^^", "unknown escape '\\q'"},
    {"p f x=%0 f:$foo==1", "           ^^^^", "unknown variable '$foo'"},
    {"p f x=%0 f:$retval<0", "           ^^^^^^^", "$retval is only available in return probes"},
    // bytes
    {"p f\x01", "   ^", "non-printable byte 0x01 at offset 3"},
    {"p f x=\xc3\xa9", "      ^", "non-ASCII byte 0xc3 at offset 6 (allowed only inside quoted strings)"},
    {"p f x=%0 f:comm==\"\x07\"", "                  ^", "non-printable byte 0x07 at offset 18"},
    {"p f x=%0 f:comm==\"x\" \xff", "                     ^", "non-ASCII byte 0xff at offset 21"},
};

INSTANTIATE_TEST_SUITE_P(Parse, ParseInvalid, testing::ValuesIn(kInvalid));

// ---- AST shape and spans ----

TEST(ParseProbe, TargetProperties) {
    auto p = parse_probe("p nf_conntrack:nf_conntrack_in+0x1f skb=%1");
    EXPECT_EQ(p.kind, ProbeKind::Entry);
    EXPECT_EQ(p.target.module, "nf_conntrack");
    EXPECT_EQ(p.target.name, "nf_conntrack_in");
    EXPECT_EQ(p.target.offset, 0x1fU);
    EXPECT_FALSE(p.target.is_glob);
    EXPECT_EQ(at(p.text, p.target.module_span), "nf_conntrack");
    EXPECT_EQ(at(p.text, p.target.name_span), "nf_conntrack_in");
    EXPECT_EQ(at(p.text, p.target.offset_span), "0x1f");

    auto r = parse_probe("r tcp_*");
    EXPECT_EQ(r.kind, ProbeKind::Return);
    EXPECT_TRUE(r.target.is_glob);
    EXPECT_FALSE(r.target.offset);

    auto e = parse_probe("e sched/sched_switch");
    EXPECT_EQ(e.kind, ProbeKind::Tracepoint);
    EXPECT_EQ(e.target.subsystem, "sched");
    EXPECT_EQ(e.target.name, "sched_switch");
    EXPECT_EQ(at(e.text, e.target.subsystem_span), "sched");
    EXPECT_EQ(at(e.text, e.target.name_span), "sched_switch");
    EXPECT_FALSE(e.filter);
}

TEST(ParseProbe, MemberChainSpans) {
    auto p = parse_probe("p tcp_v4_rcv len=%0->lenn");
    ASSERT_EQ(p.fields.size(), 1U);
    const auto& f = p.fields[0];
    EXPECT_EQ(at(p.text, f.name_span), "len");
    EXPECT_EQ(at(p.text, f.expr.span), "%0->lenn");
    const auto& m = as<Member>(f.expr);
    EXPECT_TRUE(m.arrow);
    EXPECT_EQ(m.name, "lenn");
    EXPECT_EQ(at(p.text, m.name_span), "lenn");
    EXPECT_EQ(as<ArgRef>(*m.base).index, 0U);

    auto q = parse_probe("p vfs_write n=%1->f_path.dentry->d_name.name[3]");
    const auto& index = as<Index>(q.fields[0].expr);
    EXPECT_EQ(index.index, 3U);
    EXPECT_EQ(at(q.text, index.index_span), "3");
    const auto& name = as<Member>(*index.base);
    EXPECT_FALSE(name.arrow);
    const auto& d_name = as<Member>(*name.base);
    EXPECT_EQ(at(q.text, d_name.name_span), "d_name");
    EXPECT_EQ(at(q.text, name.base->span), "%1->f_path.dentry->d_name");
}

TEST(ParseProbe, CastFollowsC) {
    auto outer = parse_probe("p vfs_read flags=((struct file *)%1)->f_flags");
    const auto& m = as<Member>(outer.fields[0].expr);
    EXPECT_EQ(m.name, "f_flags");
    const auto& cast = as<Cast>(*m.base);
    EXPECT_EQ(cast.type.tag, TypeName::Tag::Struct);
    EXPECT_EQ(cast.type.name, "file");
    EXPECT_EQ(cast.type.pointers, 1U);
    EXPECT_EQ(at(outer.text, cast.type.span), "struct file *");
    EXPECT_EQ(as<ArgRef>(*cast.operand).index, 1U);

    auto inner = parse_probe("p vfs_read flags=(struct file *)%1->f_flags");
    const auto& c = as<Cast>(inner.fields[0].expr);
    EXPECT_EQ(as<Member>(*c.operand).name, "f_flags");
    EXPECT_EQ(at(inner.text, inner.fields[0].expr.span), "(struct file *)%1->f_flags");

    auto words = parse_probe("p f x=(unsigned  long long)%0");
    const auto& t = as<Cast>(words.fields[0].expr).type;
    EXPECT_EQ(t.tag, TypeName::Tag::None);
    EXPECT_EQ(t.name, "unsigned long long");
    EXPECT_EQ(t.pointers, 0U);
}

TEST(ParseProbe, ParenthesizedNameIsCastOnlyBeforeAnOperand) {
    auto group = parse_probe("p f x=(sk)->sk_err");
    const auto& sk = *as<Member>(group.fields[0].expr).base;
    EXPECT_EQ(as<Ident>(sk).name, "sk");
    EXPECT_EQ(at(group.text, sk.span), "sk");
    EXPECT_EQ(at(group.text, group.fields[0].expr.span), "(sk)->sk_err");
    auto cast = parse_probe("p f x=(u32)sk");
    EXPECT_EQ(as<Cast>(cast.fields[0].expr).type.name, "u32");
}

TEST(ParseProbe, PacketHeader) {
    auto p = parse_probe("p ip_rcv ip_src=@(struct iphdr *)l3%0->saddr dport=@(struct tcphdr *)skb->dest");
    const auto& saddr = as<Member>(p.fields[0].expr);
    EXPECT_EQ(saddr.name, "saddr");
    const auto& h = as<PacketHeader>(*saddr.base);
    EXPECT_EQ(h.mark, Layer::L3);
    EXPECT_EQ(at(p.text, h.mark_span), "l3");
    EXPECT_EQ(h.type.name, "iphdr");
    EXPECT_EQ(at(p.text, h.type.span), "struct iphdr *");
    EXPECT_EQ(as<ArgRef>(*h.skb).index, 0U);
    EXPECT_EQ(p.fields[0].format, Format::Ipv4);

    const auto& implicit = as<PacketHeader>(*as<Member>(p.fields[1].expr).base);
    // surftrace's default: skb->data at the IP header.
    EXPECT_EQ(implicit.mark, Layer::L3);
    EXPECT_EQ(implicit.mark_span.len, 0U);
    EXPECT_EQ(as<Ident>(*implicit.skb).name, "skb");
}

// @NAME is a kernel variable; chains and casts take it as any operand, and in a filter
// it is a name like the others, its members dotted.
TEST(ParseProbe, GlobalVariables) {
    auto p = parse_probe("p f j=@jiffies c=@init_task.mm->pgd t=(u32)@x f:@init_task.pid==1");
    EXPECT_EQ(as<Global>(p.fields[0].expr).name, "jiffies");
    EXPECT_EQ(at(p.text, p.fields[0].expr.span), "@jiffies");
    const auto& pgd = as<Member>(p.fields[1].expr);
    EXPECT_TRUE(pgd.arrow);
    const auto& mm = as<Member>(*pgd.base);
    EXPECT_FALSE(mm.arrow);
    EXPECT_EQ(as<Global>(*mm.base).name, "init_task");
    EXPECT_EQ(at(p.text, mm.base->span), "@init_task");
    EXPECT_EQ(as<Global>(*as<Cast>(p.fields[2].expr).operand).name, "x");
    const auto& c = std::get<Comparison>(p.filter->root.node);
    EXPECT_EQ(c.name, "@init_task.pid");
    EXPECT_EQ(at(p.text, c.name_span), "@init_task.pid");
}

TEST(ParseProbe, RegistersAndBuiltins) {
    auto p = parse_probe("r f a=%rdi b=%r12 c=$retval d=$comm e=common_pid");
    EXPECT_EQ(as<RegRef>(p.fields[0].expr).name, "di");
    EXPECT_EQ(at(p.text, p.fields[0].expr.span), "%rdi");
    EXPECT_EQ(as<RegRef>(p.fields[1].expr).name, "r12");
    EXPECT_EQ(as<BuiltinRef>(p.fields[2].expr).which, Builtin::Retval);
    EXPECT_EQ(as<BuiltinRef>(p.fields[3].expr).which, Builtin::Comm);
    EXPECT_EQ(as<Ident>(p.fields[4].expr).name, "common_pid");
}

TEST(ParseProbe, FieldFormats) {
    struct Case {
        const char* field;
        Format format;
        unsigned swap;
        char prefix;
    };
    const Case cases[] = {
        {"x=%0", Format::Auto, 0, 0},          {"x=S%0", Format::Signed, 0, 'S'},
        {"x=U%0", Format::Unsigned, 0, 'U'},   {"x=X%0", Format::Hex, 0, 'X'},
        {"ip_x=%0", Format::Ipv4, 0, 0},       {"b16_x=%0", Format::Unsigned, 16, 0},
        {"b32_x=S%0", Format::Signed, 32, 'S'}, {"B64_x=%0", Format::Hex, 64, 0},
        {"B16_x=X%0", Format::Hex, 16, 'X'},   {"b8_x=%0", Format::Auto, 0, 0},
        {"Sx=Sx", Format::Auto, 0, 0},
    };
    for (const auto& c : cases) {
        auto p = parse_probe(std::string("p f ") + c.field);
        const auto& f = p.fields[0];
        EXPECT_EQ(f.format, c.format) << c.field;
        EXPECT_EQ(f.swap_bits, c.swap) << c.field;
        EXPECT_EQ(f.prefix, c.prefix) << c.field;
        if (c.prefix) {
            EXPECT_EQ(at(p.text, f.prefix_span), std::string(1, c.prefix));
        }
    }
}

TEST(ParseProbe, FilterSpansReferToProbeText) {
    auto p = parse_probe("p f x=%0 f: x == 1 && comm ~ \"ba*\"");
    ASSERT_TRUE(p.filter);
    EXPECT_EQ(at(p.text, p.filter->span), "x == 1 && comm ~ \"ba*\"");
    const auto& and_ = std::get<Logical>(p.filter->root.node);
    const auto& x = std::get<Comparison>(and_.operands[0].node);
    EXPECT_EQ(at(p.text, x.name_span), "x");
    EXPECT_EQ(at(p.text, x.op_span), "==");
    EXPECT_EQ(at(p.text, x.value.span), "1");
    const auto& comm = std::get<Comparison>(and_.operands[1].node);
    EXPECT_EQ(comm.op, CmpOp::Glob);
    EXPECT_EQ(comm.value.string, "ba*");
    EXPECT_EQ(at(p.text, comm.value.span), "\"ba*\"");
}

// ---- Filters ----

struct FilterCase {
    const char* text;
    const char* canonical;
};

void PrintTo(const FilterCase& v, std::ostream* os) { *os << v.text; }

class ParseFilter : public testing::TestWithParam<FilterCase> {};

TEST_P(ParseFilter, PrintsCanonically) {
    auto [text, canonical] = GetParam();
    EXPECT_EQ(parse_filter(text).to_string(), canonical);
    EXPECT_EQ(parse_filter(canonical).to_string(), canonical);
}

const FilterCase kFilters[] = {
    {"a==1", "a==1"},
    {"  a  ==  1  ", "a==1"},
    {"a==1 && b==2 || c==3", "a==1 && b==2 || c==3"},
    {"a==1 || b==2 && c==3", "a==1 || b==2 && c==3"},
    {"a==1 && (b==2 || c==3)", "a==1 && (b==2 || c==3)"},
    {"!a==1 && b==2", "!(a==1) && b==2"},
    {"!(a==1 || b==2)", "!(a==1 || b==2)"},
    {"!!a==1", "!!(a==1)"},
    {"((a==1))", "a==1"},
    {"a!=1&&a<=2&&a>=3&&a<4&&a>5&&a~x*", "a!=1 && a<=2 && a>=3 && a<4 && a>5 && a~\"x*\""},
    {"$pid == 42 && $comm == bash", "$pid==42 && $comm==\"bash\""},
    {"$retval < 0", "$retval<0"},
    {"tcp.dport==80 && ip.saddr==10.0.0.1 && l4proto==6", "tcp.dport==80 && ip.saddr==10.0.0.1 && l4proto==6"},
    {"comm ~ 1*", "comm~\"1*\""},
    {"comm==kworker/0:1", "comm==\"kworker/0:1\""},
    {"@jiffies > 0x10 && @init_task.pid==0", "@jiffies>0x10 && @init_task.pid==0"},
};

INSTANTIATE_TEST_SUITE_P(Parse, ParseFilter, testing::ValuesIn(kFilters));

TEST(ParseFilterShape, PrecedenceNotOverComparisonOverAndOverOr) {
    auto f = parse_filter("!a==1 && b==2 || c==3 && d==4");
    const auto& o = std::get<Logical>(f.root.node);
    EXPECT_EQ(o.op, Logical::Op::Or);
    ASSERT_EQ(o.operands.size(), 2U);
    const auto& left = std::get<Logical>(o.operands[0].node);
    EXPECT_EQ(left.op, Logical::Op::And);
    const auto& negated = std::get<Not>(left.operands[0].node);
    EXPECT_EQ(std::get<Comparison>(negated.operand->node).name, "a");
    EXPECT_EQ(std::get<Logical>(o.operands[1].node).op, Logical::Op::And);
}

TEST(ParseFilterShape, ChainsAreFlat) {
    auto f = parse_filter("a==1 && b==2 && c==3 && d==4");
    EXPECT_EQ(std::get<Logical>(f.root.node).operands.size(), 4U);
    EXPECT_EQ(f.root.span, (Span{0, 28}));
}

TEST(ParseFilterShape, SpansIncludeParentheses) {
    std::string text = " (a==1 || b==2) && !(c==3) ";
    auto f = parse_filter(text);
    EXPECT_EQ(at(text, f.span), "(a==1 || b==2) && !(c==3)");
    const auto& operands = std::get<Logical>(f.root.node).operands;
    EXPECT_EQ(at(text, operands[0].span), "a==1 || b==2");
    EXPECT_EQ(at(text, operands[1].span), "!(c==3)");
}

TEST(ParseFilterShape, LiteralClassification) {
    auto value = [](const char* text) { return std::get<Comparison>(parse_filter(text).root.node).value; };
    auto dec = value("x==42");
    EXPECT_EQ(dec.kind, Literal::Kind::Integer);
    EXPECT_EQ(dec.integer, 42U);
    EXPECT_FALSE(dec.negative);
    auto hex = value("x==0xFF");
    EXPECT_EQ(hex.integer, 255U);
    EXPECT_EQ(hex.text, "0xFF");
    auto neg = value("x==-5");
    EXPECT_TRUE(neg.negative);
    EXPECT_EQ(static_cast<std::int64_t>(neg.integer), -5);
    EXPECT_EQ(static_cast<std::int64_t>(value("x==-9223372036854775808").integer), INT64_MIN);
    EXPECT_EQ(value("x==18446744073709551615").integer, UINT64_MAX);
    auto v4 = value("ip==127.0.0.1");
    EXPECT_EQ(v4.kind, Literal::Kind::Ipv4);
    EXPECT_EQ(v4.address[0], 127);
    EXPECT_EQ(v4.address[3], 1);
    auto v6 = value("ip==fe80::1");
    EXPECT_EQ(v6.kind, Literal::Kind::Ipv6);
    EXPECT_EQ(v6.address[0], 0xfe);
    EXPECT_EQ(v6.address[15], 1);
    auto word = value("comm==bash");
    EXPECT_EQ(word.kind, Literal::Kind::String);
    EXPECT_EQ(word.string, "bash");
    EXPECT_EQ(word.text, "bash");
    auto quoted = value("comm==\"a b\\tc\"");
    EXPECT_EQ(quoted.kind, Literal::Kind::String);
    EXPECT_EQ(quoted.string, "a b\tc");
    auto quoted_number = value("comm=='42'");
    EXPECT_EQ(quoted_number.kind, Literal::Kind::String);
    auto glob = value("comm~42*");
    EXPECT_EQ(glob.kind, Literal::Kind::String);
    EXPECT_EQ(glob.string, "42*");
}

TEST(ParseFilterShape, Errors) {
    EXPECT_THROW(parse_filter(""), SourceError);
    EXPECT_THROW(parse_filter("a"), SourceError);
    EXPECT_THROW(parse_filter("a==1 b==2"), SourceError);
    try {
        parse_filter("a==1 ||| b==2");
        FAIL();
    } catch (const SourceError& e) {
        EXPECT_EQ(e.pos, 7U) << e.render();
    }
}

// ---- Files ----

TEST(ParseFile, SkipsBlankLinesAndComments) {
    auto probes = parse_probe_file(
        "# probes\n\np tcp_v4_rcv a=%0\r\n   # indented comment\n  r tcp_sendmsg ret=$retval\n", "net.probes");
    ASSERT_EQ(probes.size(), 2U);
    EXPECT_EQ(probes[0].to_string(), "p tcp_v4_rcv a=%0");
    EXPECT_EQ(probes[0].origin, "net.probes:3");
    EXPECT_EQ(probes[1].text, "  r tcp_sendmsg ret=$retval");
    EXPECT_EQ(probes[1].origin, "net.probes:5");
    EXPECT_TRUE(parse_probe_file("", "empty").empty());
}

TEST(ParseFile, ErrorsNameFileAndLine) {
    try {
        parse_probe_file("p f a=%0\n\np f x=%0->lenn comm%0\n", "my.probes");
        FAIL();
    } catch (const SourceError& e) {
        EXPECT_EQ(std::string(e.what()), "my.probes:3: expected '=' after field name 'comm', found '%'");
        EXPECT_EQ(e.source, "p f x=%0->lenn comm%0");
        EXPECT_EQ(e.pos, 19U);
        EXPECT_EQ(e.render(), "my.probes:3: expected '=' after field name 'comm', found '%'\n"
                              "  p f x=%0->lenn comm%0\n"
                              "                     ^");
    }
}

// ---- Hostile input ----

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

void expect_error(const std::string& text, std::string_view message) {
    try {
        parse_probe(text);
        ADD_FAILURE() << "parsed: " << text.substr(0, 80);
    } catch (const SourceError& e) {
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        EXPECT_LE(e.pos, text.size());
    }
}

TEST(ParseLimits, Nesting) {
    EXPECT_NO_THROW(parse_probe("p f x=" + repeat("(", 31) + "%0" + repeat(")", 31)));
    expect_error("p f x=" + repeat("(", 40) + "%0" + repeat(")", 40), "nested deeper than 32 levels");
    expect_error("p f x=" + repeat("(u32)", 40) + "%0", "nested deeper than 32 levels");
    expect_error("p f x=" + repeat("@(struct iphdr *)l3", 40) + "%0", "nested deeper than 32 levels");
    expect_error("p f f:" + repeat("!", 40) + "a==1", "nested deeper than 32 levels");
    expect_error("p f f:" + repeat("(", 40) + "a==1" + repeat(")", 40), "nested deeper than 32 levels");
    EXPECT_NO_THROW(parse_filter(repeat("a==1 && ", 400) + "a==1"));
}

TEST(ParseLimits, ChainLength) {
    EXPECT_NO_THROW(parse_probe("p f x=%0" + repeat("->a", 64)));
    expect_error("p f x=%0" + repeat("->a", 65), "chain longer than 64");
    expect_error("p f x=%0" + repeat("[1]", 65), "chain longer than 64");
}

TEST(ParseLimits, Length) {
    EXPECT_NO_THROW(parse_probe("p " + std::string(kMaxSourceLength - 2, 'a')));
    expect_error("p " + std::string(kMaxSourceLength, 'a'), "longer than 4096 characters");
    EXPECT_THROW(parse_filter("a==" + std::string(kMaxSourceLength, '1')), SourceError);
}

// Every prefix and many single-character corruptions of every valid probe either parse or
// raise a SourceError whose span lies within the text.
TEST(ParseLimits, CorruptedInputNeverEscapesSourceError) {
    const std::string_view replacements = "()[]@%$-> .:*'\"\\!&|=~\x01\x80";
    for (const auto& v : kValid) {
        std::string text = v.text;
        auto check = [](const std::string& t) {
            try {
                parse_probe(t);
            } catch (const SourceError& e) {
                ASSERT_LE(e.pos, t.size()) << t;
            }
        };
        for (std::size_t n = 0; n <= text.size(); ++n) check(text.substr(0, n));
        for (std::size_t i = 0; i < text.size(); ++i) {
            for (char c : replacements) {
                auto t = text;
                t[i] = c;
                check(t);
            }
        }
    }
}

}  // namespace
}  // namespace ksurf
