// PlannedProbe → kprobe_events definitions, event filters and the -S script, from plans
// built by hand as the resolver would build them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "ksurf/error.h"
#include "ksurf/tracefs_backend.h"

namespace ksurf::tracefs {
namespace {

Fetch arg(unsigned i, std::vector<std::int64_t> derefs = {}) {
    Fetch f;
    f.base = Fetch::Base::Arg;
    f.arg = i;
    f.derefs = std::move(derefs);
    return f;
}

Fetch base(Fetch::Base b) {
    Fetch f;
    f.base = b;
    return f;
}

Fetch reg(std::string name) {
    Fetch f = base(Fetch::Base::Reg);
    f.reg = std::move(name);
    return f;
}

Fetch load(Fetch f, std::int64_t offset, std::uint32_t size, bool is_signed = false) {
    f.access = Fetch::Access::Load;
    f.offset = offset;
    f.size = size;
    f.is_signed = is_signed;
    return f;
}

Fetch value(Fetch f, std::uint32_t size, bool is_signed = false) {
    f.access = Fetch::Access::Value;
    f.size = size;
    f.is_signed = is_signed;
    return f;
}

Fetch string(Fetch f, std::int64_t offset = 0, std::uint32_t limit = 256) {
    f.access = Fetch::Access::String;
    f.offset = offset;
    f.size = limit;
    return f;
}

Fetch bitfield(Fetch f, std::int64_t offset, std::uint8_t bit_offset, std::uint8_t bit_size, std::uint32_t size) {
    f = load(std::move(f), offset, size);
    f.bit_offset = bit_offset;
    f.bit_size = bit_size;
    return f;
}

Fetch packet(Layer layer, Fetch skb, std::int64_t offset, std::uint32_t size) {
    Fetch f = base(Fetch::Base::Packet);
    f.layer = layer;
    f.skb = std::move(skb);
    return load(std::move(f), offset, size);
}

Fetch global(std::string symbol, std::vector<std::int64_t> derefs = {}) {
    Fetch f = base(Fetch::Base::Global);
    f.symbol = std::move(symbol);
    f.address = 0xffffffff82000010;
    f.derefs = std::move(derefs);
    return f;
}

Fetch record(std::int64_t offset, std::uint32_t size, bool is_signed = false) {
    return load(base(Fetch::Base::Record), offset, size, is_signed);
}

PlannedField field(std::string name, Fetch f, Display d = Display::Decimal) {
    PlannedField p;
    p.name = std::move(name);
    if (f.access == Fetch::Access::String || f.base == Fetch::Base::Comm) d = Display::String;
    p.fetch = std::move(f);
    p.display = d;
    return p;
}

PlannedField hidden(PlannedField f) {
    f.hidden = true;
    return f;
}

PlannedProbe probe(ProbeKind kind, std::string function, std::vector<PlannedField> fields = {}) {
    PlannedProbe p;
    p.kind = kind;
    p.function = std::move(function);
    p.event = p.function;
    p.text = (kind == ProbeKind::Return ? "r " : "p ") + p.function;
    p.fields = std::move(fields);
    return p;
}

PlannedProbe tracepoint(std::string subsystem, std::string event, std::vector<PlannedField> fields = {}) {
    PlannedProbe p;
    p.kind = ProbeKind::Tracepoint;
    p.subsystem = std::move(subsystem);
    p.event = std::move(event);
    p.text = "e " + p.subsystem + "/" + p.event;
    p.fields = std::move(fields);
    return p;
}

TranslateContext context() {
    TranslateContext ctx;
    ctx.group = "ksurf_42";
    ctx.skb.data = 200;
    return ctx;
}

TracefsProbe tr(const PlannedProbe& p, const TranslateContext& ctx = context()) { return translate(p, 0, ctx); }

std::string args_of(PlannedField f, ProbeKind kind = ProbeKind::Entry) {
    std::vector<PlannedField> fields;
    fields.push_back(std::move(f));
    return tr(probe(kind, "f", std::move(fields))).args;
}

// ---- fetch-args ----

TEST(TracefsTranslateFetch, ArgumentsAreTheX86CallingConventionRegisters) {
    std::vector<PlannedField> fields;
    for (unsigned i = 0; i < 6; i++) fields.push_back(field("a" + std::to_string(i), value(arg(i), 8)));
    auto t = translate(probe(ProbeKind::Entry, "do_sys_openat2", std::move(fields)), 3, context());
    EXPECT_EQ(t.system, "ksurf_42");
    EXPECT_EQ(t.event, "p3");
    EXPECT_EQ(t.address, "do_sys_openat2");
    EXPECT_EQ(t.args, "a0=%di:u64 a1=%si:u64 a2=%dx:u64 a3=%cx:u64 a4=%r8:u64 a5=%r9:u64 __comm=$comm");
    EXPECT_EQ(t.definition(), "p:ksurf_42/p3 do_sys_openat2 " + t.args);
    EXPECT_TRUE(t.filter.empty());
    ASSERT_EQ(t.fields.size(), 6u);
    EXPECT_EQ(t.fields[5].kind, FieldSource::Kind::Record);
    EXPECT_EQ(t.fields[5].name, "a5");
    EXPECT_EQ(t.fields[5].field, 5u);
}

TEST(TracefsTranslateFetch, ValuesAreTruncatedToTheirSizeAndSign) {
    EXPECT_EQ(args_of(field("x", value(arg(1), 4, true))), "x=%si:s32 __comm=$comm");
    EXPECT_EQ(args_of(field("x", value(arg(1), 2))), "x=%si:u16 __comm=$comm");
    EXPECT_EQ(args_of(field("x", value(arg(1), 1), Display::Hex)), "x=%si:x8 __comm=$comm");
}

TEST(TracefsTranslateFetch, MemberChainsNestLoadsAndSignedOffsets) {
    // %1->a->b, then a signed int at 24: derefs at +8 and -16 (container_of) first.
    EXPECT_EQ(args_of(field("x", load(arg(1, {8, -16}), 24, 4, true))), "x=+24(-16(+8(%si))):s32 __comm=$comm");
    EXPECT_EQ(args_of(field("x", load(arg(0), -8, 8), Display::Hex)), "x=-8(%di):x64 __comm=$comm");
    // A pointer member's value: the last deref with no further load.
    EXPECT_EQ(args_of(field("p", value(arg(0, {16}), 8), Display::Hex)), "p=+16(%di):x64 __comm=$comm");
}

TEST(TracefsTranslateFetch, BitfieldsTakeTheSmallestContainer) {
    EXPECT_EQ(args_of(field("b", bitfield(arg(0), 16, 3, 5, 4))), "b=+16(%di):b5@3/8 __comm=$comm");
    EXPECT_EQ(args_of(field("b", bitfield(arg(0), 17, 6, 4, 4))), "b=+17(%di):b4@6/16 __comm=$comm");
    EXPECT_EQ(args_of(field("b", bitfield(arg(0), 0, 7, 20, 4))), "b=+0(%di):b20@7/32 __comm=$comm");
    EXPECT_EQ(args_of(field("b", bitfield(arg(0), 0, 1, 40, 8))), "b=+0(%di):b40@1/64 __comm=$comm");
}

TEST(TracefsTranslateFetch, StringsAreReadThroughTheChain) {
    // do_filp_open(dfd, struct filename *name): %1->name
    EXPECT_EQ(args_of(field("name", string(arg(1, {0})))), "name=+0(+0(%si)):string __comm=$comm");
    // task->comm, an array inside the struct
    EXPECT_EQ(args_of(field("c", string(arg(0), 1552, 16))), "c=+1552(%di):string __comm=$comm");
}

// A kernel variable is kprobe_events' @SYM[+|-OFF], the memory at the symbol: the first load
// of the chain, the value itself or a pointer followed further.
TEST(TracefsTranslateFetch, VariablesAreTheMemoryAtTheirSymbol) {
    EXPECT_EQ(args_of(field("j", load(global("jiffies"), 0, 8))), "j=@jiffies:u64 __comm=$comm");
    EXPECT_EQ(args_of(field("p", load(global("init_task"), 1234, 4, true))), "p=@init_task+1234:s32 __comm=$comm");
    EXPECT_EQ(args_of(field("n", load(global("x"), -8, 2))), "n=@x-8:u16 __comm=$comm");
    // a char array inside the variable: the string stored there
    EXPECT_EQ(args_of(field("c", string(global("init_task"), 1552, 16))), "c=@init_task+1552:string __comm=$comm");
    EXPECT_EQ(args_of(field("s", string(global("saved_command_line", {0})))), "s=+0(@saved_command_line):string __comm=$comm");
    EXPECT_EQ(args_of(field("g", load(global("init_task", {2048, 16}), 80, 8), Display::Hex)),
              "g=+80(+16(@init_task+2048)):x64 __comm=$comm");
    EXPECT_EQ(args_of(field("v", value(global("init_task", {2048}), 8), Display::Hex)), "v=@init_task+2048:x64 __comm=$comm");
}

TEST(TracefsTranslateFetch, UserMemoryIsReadWithTheUPrefix) {
    Fetch name = string(arg(1));
    name.user = true;
    EXPECT_EQ(args_of(field("name", std::move(name))), "name=+u0(%si):ustring __comm=$comm");
    Fetch n = load(arg(1), 8, 4);
    n.user = true;
    EXPECT_EQ(args_of(field("n", std::move(n))), "n=+u8(%si):u32 __comm=$comm");
    // The pointer itself is loaded from kernel memory.
    Fetch kept = string(arg(0, {16}));
    kept.user = true;
    EXPECT_EQ(args_of(field("k", std::move(kept))), "k=+u0(+16(%di)):ustring __comm=$comm");
}

// P/R: uprobe_events at the function's file offset; the process's memory is what a
// uprobe's plain dereference reads.
TEST(TracefsTranslateFetch, UprobesAreFileOffsetsAndReadTheProcess) {
    std::vector<PlannedField> fields;
    fields.push_back(field("a", value(arg(0), 4, true)));
    Fetch who = string(arg(1), 0, 128);
    who.user = true;
    fields.push_back(field("who", std::move(who)));
    auto p = probe(ProbeKind::Entry, "greet", std::move(fields));
    p.binary = "/opt/x";
    p.file_offset = 0x1139;
    auto t = tr(p);
    EXPECT_TRUE(t.uprobe);
    EXPECT_EQ(t.definition(), "p:ksurf_42/p0 /opt/x:0x1139 a=%di:s32 who=+0(%si):string __comm=$comm");
    std::vector<PlannedProbe> v;
    v.push_back(std::move(p));
    const auto s = script(v, context());
    EXPECT_NE(s.find("uprobe \"p:$G/p0 \"'/opt/x:0x1139 a=%di:s32"), std::string::npos) << s;
    EXPECT_NE(s.find(">> \"$T/uprobe_events\"; done"), std::string::npos) << s;
}

TEST(TracefsTranslateFetch, RetvalInReturnProbes) {
    std::vector<PlannedField> fields;
    fields.push_back(field("ret", value(base(Fetch::Base::Retval), 4, true)));
    fields.push_back(field("s", string(base(Fetch::Base::Retval), 8)));
    auto t = translate(probe(ProbeKind::Return, "do_sys_openat2", std::move(fields)), 1, context());
    EXPECT_EQ(t.event, "r1");
    EXPECT_EQ(t.definition(), "r:ksurf_42/r1 do_sys_openat2 ret=$retval:s32 s=+8($retval):string __comm=$comm");
}

TEST(TracefsTranslateFetch, RegistersAtAnOffsetAndModules) {
    std::vector<PlannedField> fields;
    fields.push_back(field("ax", value(reg("ax"), 8), Display::Hex));
    fields.push_back(field("r8", load(reg("r8"), 4, 2)));
    auto p = probe(ProbeKind::Entry, "__netif_receive_skb_core", std::move(fields));
    p.offset = 0x12;
    p.module = "nf_conntrack";
    auto t = tr(p);
    EXPECT_EQ(t.address, "nf_conntrack:__netif_receive_skb_core+18");
    EXPECT_EQ(t.args, "ax=%ax:x64 r8=+4(%r8):u16 __comm=$comm");
}

TEST(TracefsTranslateFetch, PacketHeadersAreRelativeToSkbData) {
    // Packet names as surftrace reads them: ip.saddr, an L2 h_proto, tcp.dport
    auto skb = [] { return value(arg(0), 8); };
    EXPECT_EQ(args_of(field("saddr", packet(Layer::L3, skb(), 12, 4), Display::IPv4)), "saddr=+12(+200(%di)):u32 __comm=$comm");
    EXPECT_EQ(args_of(field("proto", packet(Layer::L2, skb(), 12, 2))), "proto=-2(+200(%di)):u16 __comm=$comm");
    EXPECT_EQ(args_of(field("dport", packet(Layer::L4, skb(), 2, 2))), "dport=+22(+200(%di)):u16 __comm=$comm");
    // The skb itself behind a member chain: %1->skb
    EXPECT_EQ(args_of(field("saddr", packet(Layer::L3, load(arg(1), 8, 8), 12, 4))),
              "saddr=+12(+200(+8(%si))):u32 __comm=$comm");
    // A header member that is a pointer, followed.
    Fetch f = packet(Layer::L4, skb(), 0, 1);
    f.derefs = {8};
    EXPECT_EQ(args_of(field("x", std::move(f))), "x=+0(+28(+200(%di))):u8 __comm=$comm");
}

TEST(TracefsTranslateFetch, HeaderValuesAreNotFetchArgs) {
    std::vector<PlannedField> fields;
    fields.push_back(field("c", base(Fetch::Base::Comm)));
    fields.push_back(field("pid", value(base(Fetch::Base::Pid), 4)));
    fields.push_back(field("tid", value(base(Fetch::Base::Tid), 4)));
    fields.push_back(field("cpu", value(base(Fetch::Base::Cpu), 4)));
    auto t = tr(probe(ProbeKind::Entry, "f", std::move(fields)));
    EXPECT_EQ(t.args, "__comm=$comm");
    ASSERT_EQ(t.fields.size(), 4u);
    EXPECT_EQ(t.fields[0].kind, FieldSource::Kind::Comm);
    EXPECT_EQ(t.fields[1].kind, FieldSource::Kind::Pid);
    EXPECT_EQ(t.fields[2].kind, FieldSource::Kind::Tid);
    EXPECT_EQ(t.fields[3].kind, FieldSource::Kind::Cpu);
}

TEST(TracefsTranslateFetch, HiddenFieldsAreFetchedNotPrinted) {
    std::vector<PlannedField> fields;
    fields.push_back(field("a", value(arg(0), 8)));
    fields.push_back(hidden(field("b", value(arg(1), 8))));
    auto t = tr(probe(ProbeKind::Entry, "f", std::move(fields)));
    EXPECT_EQ(t.args, "a=%di:u64 b=%si:u64 __comm=$comm");
    ASSERT_EQ(t.fields.size(), 1u);
    EXPECT_EQ(t.fields[0].name, "a");
}

TEST(TracefsTranslateFetch, NamesTheKernelWouldMisreadAreReplaced) {
    std::vector<PlannedField> fields;
    for (const char* name : {"comm", "cpu", "common_pid", "__probe_ip", "x.y", "ok", "ok"})
        fields.push_back(field(name, value(arg(0), 8)));
    auto t = tr(probe(ProbeKind::Entry, "f", std::move(fields)));
    EXPECT_EQ(t.args,
              "f0=%di:u64 f1=%di:u64 f2=%di:u64 f3=%di:u64 f4=%di:u64 ok=%di:u64 f6=%di:u64 __comm=$comm");
}

struct Refused {
    const char* what;
    ProbeKind kind;
    std::function<PlannedField()> make;
    const char* message;
};

void PrintTo(const Refused& r, std::ostream* os) { *os << r.what; }

class TracefsTranslateRefused : public testing::TestWithParam<Refused> {};

TEST_P(TracefsTranslateRefused, OneLineNamingProbeAndField) {
    const auto& r = GetParam();
    std::vector<PlannedField> fields;
    fields.push_back(r.make());
    auto p = probe(r.kind, "vfs_read", std::move(fields));
    TranslateContext ctx = context();
    ctx.skb.data = -1;
    try {
        translate(p, 0, ctx);
        FAIL() << "translated";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(p.text + ": field 'x': "), std::string::npos) << msg;
        EXPECT_NE(msg.find(r.message), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

INSTANTIATE_TEST_SUITE_P(
    TracefsTranslate, TracefsTranslateRefused,
    testing::Values(
        Refused{"arg in r", ProbeKind::Return, [] { return field("x", value(arg(0), 8)); }, "arguments are gone in a return probe"},
        Refused{"retval in p", ProbeKind::Entry, [] { return field("x", value(base(Fetch::Base::Retval), 8)); }, "$retval exists in r probes only"},
        Refused{"7th arg", ProbeKind::Entry, [] { return field("x", value(arg(6), 8)); }, "argument %6 is on the stack"},
        Refused{"16 bytes", ProbeKind::Entry, [] { return field("x", load(arg(0), 0, 16)); }, "16-byte values cannot be fetched"},
        Refused{"no skb layout", ProbeKind::Entry, [] { return field("x", packet(Layer::L3, value(arg(0), 8), 12, 4)); },
                "offsetof(struct sk_buff, data) is unknown"},
        Refused{"record in p", ProbeKind::Entry, [] { return field("x", record(8, 4)); }, "not a kprobe fetch-arg"},
        Refused{"variable's address", ProbeKind::Entry, [] { return field("x", value(global("jiffies"), 8)); },
                "the address of a kernel variable is not a fetch-arg"}));

TEST(TracefsTranslateFetch, AnL2HeaderAddressIsNotFetchable) {
    Fetch f = base(Fetch::Base::Packet);
    f.layer = Layer::L2;
    f.skb = value(arg(0), 8);
    f = value(std::move(f), 8);
    std::vector<PlannedField> fields;
    fields.push_back(field("x", std::move(f)));
    EXPECT_THROW(tr(probe(ProbeKind::Entry, "ip_rcv", std::move(fields))), Error);
}

// ---- filters ----

// FILTER over fields 0 a (s32), 1 b (u64), 2 name (string, hidden), 3 ip (IPv4), 4 flags
// (hex u32), 5 c (comm), 6 cpu_now (cpu).
std::string filter_of(PlannedFilterNode filter, ProbeKind kind = ProbeKind::Entry) {
    std::vector<PlannedField> fields;
    fields.push_back(field("a", value(arg(0), 4, true)));
    fields.push_back(field("b", value(arg(1), 8)));
    fields.push_back(hidden(field("name", string(arg(2)))));
    fields.push_back(field("ip", load(arg(3), 4, 4), Display::IPv4));
    fields.push_back(field("flags", load(arg(3), 8, 4), Display::Hex));
    fields.push_back(field("c", base(Fetch::Base::Comm)));
    fields.push_back(field("cpu_now", value(base(Fetch::Base::Cpu), 4)));
    auto p = probe(kind, "f", std::move(fields));
    p.filter = std::move(filter);
    return tr(p).filter;
}

TEST(TracefsTranslateFilter, ComparisonsOfIntegers) {
    EXPECT_EQ(filter_of(comparison_of(0, CmpOp::Eq, std::int64_t{5})), "a == 5");
    EXPECT_EQ(filter_of(comparison_of(0, CmpOp::Lt, std::int64_t{-2})), "a < -2");
    EXPECT_EQ(filter_of(comparison_of(1, CmpOp::Ge, std::uint64_t{18446744073709551615u})), "b >= 18446744073709551615");
    EXPECT_EQ(filter_of(comparison_of(1, CmpOp::Ne, std::int64_t{-1})), "b != 18446744073709551615");
    EXPECT_EQ(filter_of(comparison_of(4, CmpOp::Eq, std::uint64_t{0x80})), "flags == 0x80");
    // The stored bits of a narrower signed field read back signed.
    EXPECT_EQ(filter_of(comparison_of(0, CmpOp::Eq, std::uint64_t{0xfffffffe})), "a == -2");
}

TEST(TracefsTranslateFilter, Ipv4IsTheNetworkOrderInteger) {
    // 127.0.0.1 as the kernel stores it, read as a little-endian u32.
    EXPECT_EQ(filter_of(comparison_of(3, CmpOp::Eq, std::uint64_t{0x0100007f})), "ip == 16777343");
}

TEST(TracefsTranslateFilter, StringsAreQuotedAndGlobbed) {
    EXPECT_EQ(filter_of(comparison_of(2, CmpOp::Eq, std::string("/etc/passwd"))), "name == \"/etc/passwd\"");
    EXPECT_EQ(filter_of(comparison_of(2, CmpOp::Glob, std::string("*.so*"))), "name ~ \"*.so*\"");
    EXPECT_EQ(filter_of(comparison_of(2, CmpOp::Ne, std::string("say \"hi\""))), "name != 'say \"hi\"'");
}

TEST(TracefsTranslateFilter, HeaderSubjects) {
    using S = PlannedComparison::Subject;
    EXPECT_EQ(filter_of(comparison_of(S::Comm, CmpOp::Eq, std::string("bash"))), "comm == \"bash\"");
    EXPECT_EQ(filter_of(comparison_of(S::Pid, CmpOp::Eq, std::int64_t{42})), "common_pid == 42");
    EXPECT_EQ(filter_of(comparison_of(S::Tid, CmpOp::Ne, std::int64_t{42})), "common_pid != 42");
    // Fields whose value is the header's: comm and cpu
    EXPECT_EQ(filter_of(comparison_of(5, CmpOp::Glob, std::string("ba*"))), "comm ~ \"ba*\"");
    EXPECT_EQ(filter_of(comparison_of(6, CmpOp::Eq, std::int64_t{1})), "cpu == 1");
}

TEST(TracefsTranslateFilter, PrecedenceAndNegation) {
    auto a = [] { return comparison_of(0, CmpOp::Eq, std::int64_t{1}); };
    auto b = [] { return comparison_of(1, CmpOp::Eq, std::int64_t{2}); };
    auto c = [] { return comparison_of(2, CmpOp::Eq, std::string("x")); };
    EXPECT_EQ(filter_of(any_of(all_of(a(), b()), c())), "(a == 1 && b == 2) || name == \"x\"");
    EXPECT_EQ(filter_of(all_of(any_of(a(), b()), c())), "(a == 1 || b == 2) && name == \"x\"");
    EXPECT_EQ(filter_of(all_of(a(), b(), c())), "a == 1 && b == 2 && name == \"x\"");
    EXPECT_EQ(filter_of(negation(a())), "!(a == 1)");
    EXPECT_EQ(filter_of(negation(any_of(a(), b()))), "!(a == 1 || b == 2)");
    EXPECT_EQ(filter_of(all_of(negation(a()), negation(negation(b())))), "!(a == 1) && !(!(b == 2))");
}

struct BadFilter {
    const char* what;
    std::function<PlannedComparison()> make;
    const char* message;
};

void PrintTo(const BadFilter& b, std::ostream* os) { *os << b.what; }

class TracefsTranslateBadFilter : public testing::TestWithParam<BadFilter> {};

TEST_P(TracefsTranslateBadFilter, SourceErrorAtTheComparison) {
    auto c = GetParam().make();
    c.span = {4, 3};
    try {
        filter_of(std::move(c));
        FAIL() << "translated";
    } catch (const SourceError& e) {
        EXPECT_NE(std::string(e.what()).find(GetParam().message), std::string::npos) << e.what();
        EXPECT_EQ(e.pos, 4u);
        EXPECT_EQ(e.len, 3u);
    }
}

INSTANTIATE_TEST_SUITE_P(
    TracefsTranslate, TracefsTranslateBadFilter,
    testing::Values(BadFilter{"glob on int", [] { return comparison_of(0, CmpOp::Glob, std::int64_t{1}); }, "~ matches strings only"},
                    BadFilter{"string on int", [] { return comparison_of(0, CmpOp::Eq, std::string("x")); }, "a number compared with a string"},
                    BadFilter{"int on string", [] { return comparison_of(2, CmpOp::Eq, std::int64_t{1}); }, "a string compared with a number"},
                    BadFilter{"ordered string", [] { return comparison_of(2, CmpOp::Lt, std::string("x")); }, "strings compare with ==, != and ~ only"},
                    BadFilter{"both quotes", [] { return comparison_of(2, CmpOp::Eq, std::string("'\"")); }, "both kinds of quotes"}));

// ---- tracepoints ----

EventFormat exec_format() {
    EventFormat f{"sched", "sched_process_exec", 300, {}};
    f.fields = {{"unsigned short", "common_type", 0, 2, false},
                {"int", "common_pid", 4, 4, true},
                {"char[]", "filename", 8, 4, false, true},
                {"pid_t", "pid", 12, 4, true},
                {"pid_t", "old_pid", 16, 4, true}};
    return f;
}

TEST(TracefsTranslateTracepoint, TheEventItselfWithAFilterOnItsFields) {
    std::vector<PlannedField> fields;
    fields.push_back(field("p", record(12, 4, true)));  // an alias of pid
    Fetch filename = load(base(Fetch::Base::Record), 8, 4);
    filename.access = Fetch::Access::DataLoc;
    fields.push_back(hidden(field("file", std::move(filename), Display::String)));
    auto p = tracepoint("sched", "sched_process_exec", std::move(fields));
    p.filter = all_of(comparison_of(0, CmpOp::Gt, std::int64_t{1}), comparison_of(1, CmpOp::Glob, std::string("*/true")));
    auto ctx = context();
    ctx.tracepoints.push_back(exec_format());
    auto t = translate(p, 7, ctx);
    EXPECT_EQ(t.system, "sched");
    EXPECT_EQ(t.event, "sched_process_exec");
    EXPECT_TRUE(t.args.empty());
    EXPECT_TRUE(t.definition().empty());
    EXPECT_EQ(t.filter, "pid > 1 && filename ~ \"*/true\"");
    ASSERT_EQ(t.fields.size(), 1u);
    EXPECT_EQ(t.fields[0].name, "pid");
    // Without the format, the plan's names are the best guess.
    EXPECT_EQ(tr(p).filter, "p > 1 && file ~ \"*/true\"");
}

TEST(TracefsTranslateTracepoint, CommIsUppercaseWhenTheEventHasACommField) {
    using S = PlannedComparison::Subject;
    auto p = tracepoint("sched", "sched_wakeup");
    p.filter = comparison_of(S::Comm, CmpOp::Eq, std::string("bash"));
    auto ctx = context();
    EXPECT_EQ(translate(p, 0, ctx).filter, "COMM == \"bash\"");  // format unknown: be safe
    ctx.tracepoints.push_back({"sched", "sched_wakeup", 1, {{"char[16]", "comm", 8, 16, false}}});
    EXPECT_EQ(translate(p, 0, ctx).filter, "COMM == \"bash\"");
    ctx.tracepoints.back().fields[0].name = "target_cpu";
    EXPECT_EQ(translate(p, 0, ctx).filter, "comm == \"bash\"");
}

TEST(TracefsTranslateTracepoint, RecordPointersCannotBeFollowed) {
    Fetch f = string(base(Fetch::Base::Record));
    f.derefs = {16};
    std::vector<PlannedField> fields;
    fields.push_back(field("x", std::move(f)));
    EXPECT_THROW(tr(tracepoint("syscalls", "sys_enter_openat", std::move(fields))), Error);
}

// A tracepoint's event holds its record: a kernel variable needs a kprobe of its own.
TEST(TracefsTranslateTracepoint, KernelVariablesAreRefused) {
    std::vector<PlannedField> fields;
    fields.push_back(field("j", load(global("jiffies"), 0, 8)));
    try {
        tr(tracepoint("sched", "sched_switch", std::move(fields)));
        FAIL() << "translated";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "e sched/sched_switch: field 'j': a tracepoint's event reads only its record, not "
                                         "kernel variables (an event probe, 5.15+, a p probe or the BPF backend can) on tracefs");
    }
}

// A syscall's string argument: the plan follows the record's pointer into user memory,
// which tracefs cannot do from a tracepoint; it prints the pointer and says so.
TEST(TracefsTranslateTracepoint, SyscallStringsArePrintedAsTheirPointer) {
    auto user_string = [] {
        Fetch f = string(base(Fetch::Base::Record), 0, 128);
        f.derefs = {24};
        f.user = true;
        return f;
    };
    Fetch f = user_string();
    EXPECT_EQ(record_user_pointer(f), std::optional<std::int64_t>{24});
    std::vector<PlannedField> fields;
    fields.push_back(field("filename", user_string()));
    auto p = tracepoint("syscalls", "sys_enter_openat", std::move(fields));
    p.text = "e syscalls/sys_enter_openat";
    auto ctx = context();
    ctx.tracepoints.push_back({"syscalls", "sys_enter_openat", 782, {{"const char *", "filename", 24, 8, false}}});
    auto t = translate(p, 0, ctx);
    ASSERT_EQ(t.fields.size(), 1u);
    EXPECT_EQ(t.fields[0].name, "filename");
    EXPECT_EQ(t.notes, (std::vector<std::string>{
                           "e syscalls/sys_enter_openat: 'filename' is a string in user memory; tracefs prints its address"}));
    p.filter = comparison_of(0, CmpOp::Glob, std::string("/etc/*"));
    EXPECT_THROW(translate(p, 0, ctx), SourceError);
    // A user pointer the chain loads from elsewhere is still refused.
    f.derefs = {24, 0};
    EXPECT_FALSE(record_user_pointer(f));
}

// The probe of sys_enter_openat's dfd and filename, the string in user memory, with
// the record's offsets (a 6.18 kernel's), and its format.
PlannedProbe openat(TranslateContext& ctx) {
    Fetch name = string(base(Fetch::Base::Record), 0, 128);
    name.derefs = {24};
    name.user = true;
    std::vector<PlannedField> fields;
    fields.push_back(field("dfd", record(16, 8, true)));
    fields.push_back(field("filename", std::move(name)));
    auto p = tracepoint("syscalls", "sys_enter_openat", std::move(fields));
    ctx.tracepoints.push_back(
        {"syscalls", "sys_enter_openat", 782, {{"int", "dfd", 16, 8, false}, {"const char *", "filename", 24, 8, false}}});
    return p;
}

// Where the kernel has event probes, a tracepoint whose fields reach beyond its record
// becomes one: record fields by name, a syscall's string through its pointer in user
// memory, a kernel variable as a kprobe reads it; filters then compare the string.
TEST(TracefsTranslateTracepoint, EventProbesReadWhatTheRecordPointsTo) {
    auto ctx = context();
    ctx.eprobes = true;
    auto p = openat(ctx);
    p.filter = comparison_of(1, CmpOp::Glob, std::string("/etc/*"));
    auto t = translate(p, 2, ctx);
    EXPECT_EQ(t.attached, "syscalls.sys_enter_openat");
    EXPECT_EQ(t.system, "ksurf_42");
    EXPECT_EQ(t.event, "e2");
    EXPECT_TRUE(t.dynamic());
    EXPECT_EQ(t.args, "dfd=$dfd:s64 filename=+0($filename):ustring");
    EXPECT_EQ(t.definition(), "e:ksurf_42/e2 syscalls.sys_enter_openat dfd=$dfd:s64 filename=+0($filename):ustring");
    EXPECT_TRUE(t.notes.empty());
    EXPECT_EQ(t.filter, "filename ~ \"/etc/*\"");
    ASSERT_EQ(t.fields.size(), 2u);
    EXPECT_EQ(t.fields[1].name, "filename");
    // The event has only its args: comm is the generic one, whatever the tracepoint has.
    p.filter = comparison_of(PlannedComparison::Subject::Comm, CmpOp::Eq, std::string("cat"));
    ctx.tracepoints.back().fields.push_back({"char[16]", "comm", 40, 16, false});
    EXPECT_EQ(translate(p, 2, ctx).filter, "comm == \"cat\"");

    p.fields.push_back(field("j", load(global("jiffies"), 0, 8)));
    EXPECT_EQ(translate(p, 2, ctx).args, "dfd=$dfd:s64 filename=+0($filename):ustring j=@jiffies:u64");
    // A tracepoint its record suffices for stays the tracepoint's own event.
    p.fields.erase(p.fields.begin() + 1, p.fields.end());
    p.filter.reset();
    auto own = translate(p, 2, ctx);
    EXPECT_TRUE(own.attached.empty());
    EXPECT_EQ(own.system, "syscalls");
    EXPECT_FALSE(own.dynamic());
}

// ---- -S ----

std::vector<PlannedProbe> sample_probes() {
    std::vector<PlannedProbe> v;
    std::vector<PlannedField> fields;
    fields.push_back(field("name", string(arg(1, {0}))));
    v.push_back(probe(ProbeKind::Entry, "do_filp_open", std::move(fields)));
    v.back().text = "p do_filp_open name=%1->name f:comm==\"it's\"";
    v.back().filter = comparison_of(PlannedComparison::Subject::Comm, CmpOp::Eq, std::string("it's"));
    fields.clear();
    fields.push_back(field("ret", value(base(Fetch::Base::Retval), 4, true)));
    v.push_back(probe(ProbeKind::Return, "do_sys_openat2", std::move(fields)));
    v.push_back(tracepoint("sched", "sched_process_exec"));
    v.back().filter = comparison_of(PlannedComparison::Subject::Pid, CmpOp::Ne, std::int64_t{1});
    return v;
}

TEST(TracefsTranslateScript, CreatesFiltersEnablesAndCleansUp) {
    auto s = script(sample_probes(), context());
    EXPECT_TRUE(s.starts_with("#!/bin/sh\n")) << s;
    for (const char* line : {
             "G=ksurf_sh_$$\n",
             "I=$T/instances/$G\n",
             "mkdir \"$I\"\n",
             "echo mono > \"$I/trace_clock\"",
             "trap cleanup EXIT\n",
             "\t[ ! -d \"$I\" ] || rmdir \"$I\"",
             "\tfor e in p0 r1; do printf -- '-:%s/%s\\n' \"$G\" \"$e\" >> \"$T/kprobe_events\"; done",
             "# do_filp_open: p do_filp_open name=%1->name f:comm==\"it's\"\n",
             "kprobe \"p:$G/p0 \"'do_filp_open name=+0(+0(%si)):string __comm=$comm'\n",
             "filter \"$G/p0\" 'comm == \"it'\\''s\"'\n",
             "echo 1 > \"$I/events/$G/p0/enable\"\n",
             "kprobe \"r:$G/r1 \"'do_sys_openat2 ret=$retval:s32 __comm=$comm'\n",
             "filter \"sched/sched_process_exec\" 'common_pid != 1'\n",
             "echo 1 > \"$I/events/sched/sched_process_exec/enable\"\n",
             "cat \"$I/trace_pipe\" &\n",
         })
        EXPECT_NE(s.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << s;
    // Appending, never truncating: `>` on kprobe_events would remove every kprobe.
    EXPECT_EQ(s.find(" > \"$T/kprobe_events\""), std::string::npos) << s;
}

// Whether `sh -n` parses TEXT.
bool valid_shell(const std::string& text) {
    char path[] = "/tmp/ksurf-script-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return false;
    const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    const bool ok = written && std::system(("sh -n " + std::string(path)).c_str()) == 0;
    unlink(path);
    return ok;
}

TEST(TracefsTranslateScript, IsValidShell) { EXPECT_TRUE(valid_shell(script(sample_probes(), context()))); }

// An event probe is written to dynamic_events and removed from there.
TEST(TracefsTranslateScript, EventProbesAreDynamicEvents) {
    auto ctx = context();
    ctx.eprobes = true;
    std::vector<PlannedProbe> v;
    v.push_back(openat(ctx));
    v.back().filter = comparison_of(1, CmpOp::Glob, std::string("/etc/*"));
    const auto s = script(v, ctx);
    for (const char* line : {
             "\tfor e in e0; do printf -- '-:%s/%s\\n' \"$G\" \"$e\" >> \"$T/dynamic_events\"; done",
             "eprobe \"e:$G/e0 \"'syscalls.sys_enter_openat dfd=$dfd:s64 filename=+0($filename):ustring'\n",
             "filter \"$G/e0\" 'filename ~ \"/etc/*\"'\n",
             "echo 1 > \"$I/events/$G/e0/enable\"\n",
         })
        EXPECT_NE(s.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << s;
    EXPECT_TRUE(valid_shell(s));
}

TEST(TracefsTranslateScript, WithoutKprobesThereIsNothingToRemove) {
    std::vector<PlannedProbe> v;
    v.push_back(tracepoint("sched", "sched_process_exec"));
    auto s = script(v, context());
    EXPECT_EQ(s.find("kprobe_events\"; done"), std::string::npos) << s;
}

// ---- run names ----

TEST(TracefsTranslateRunName, RoundTripsAndRejectsOthers) {
    EXPECT_EQ(run_name(1234), "ksurf_1234");
    EXPECT_EQ(run_pid("ksurf_1234"), 1234);
    for (const char* other : {"ksurf_", "ksurf_sh_12", "ksurf_12x", "ksurf_0", "ksurf_012", "ksurf_-1", "kprobes",
                              "ksurf_99999999999"})
        EXPECT_EQ(run_pid(other), std::nullopt) << other;
}

// ---- hist triggers ----

namespace hist {

PlannedProbe aggregated(PlannedProbe p, std::vector<std::size_t> keys, std::optional<std::size_t> value = {},
                        bool stack = false) {
    p.aggregate.emplace();
    p.aggregate->keys = std::move(keys);
    p.aggregate->value = value;
    p.aggregate->stack = stack;
    return p;
}

TracefsProbe with(const PlannedProbe& p, AggKind kind, std::uint32_t map_size = 10240) {
    AggregateOptions opt;
    opt.kind = kind;
    opt.map_size = map_size;
    auto ctx = context();
    ctx.aggregate = &opt;
    return translate(p, 0, ctx);
}

std::vector<PlannedField> len_and_comm() {
    std::vector<PlannedField> fields;
    fields.push_back(field("len", load(arg(0), 8, 4)));
    fields.push_back(hidden(field("comm", base(Fetch::Base::Comm))));
    fields.push_back(hidden(field("name", string(arg(1)))));
    return fields;
}

}  // namespace hist

TEST(TracefsTranslateHist, KprobeCommIsItsOwnStringTracepointCommTheExecname) {
    auto k = hist::with(hist::aggregated(probe(ProbeKind::Entry, "f", hist::len_and_comm()), {1}), AggKind::Count);
    ASSERT_TRUE(k.hist);
    EXPECT_EQ(k.hist->spec, "hist:keys=__comm:vals=hitcount:size=16384");
    ASSERT_EQ(k.hist->keys.size(), 1u);
    EXPECT_EQ(k.hist->keys[0].print, HistKey::Print::String);
    EXPECT_EQ(k.hist->keys[0].source.kind, FieldSource::Kind::Comm);
    std::vector<PlannedField> fields;
    fields.push_back(hidden(field("comm", base(Fetch::Base::Comm))));
    fields.push_back(hidden(field("tid", value(base(Fetch::Base::Tid), 4))));
    fields.push_back(hidden(field("cpu", value(base(Fetch::Base::Cpu), 4))));
    auto t = hist::with(hist::aggregated(tracepoint("sched", "sched_switch", std::move(fields)), {0, 1, 2}), AggKind::Count);
    EXPECT_EQ(t.hist->spec, "hist:keys=common_pid.execname,common_pid,cpu:vals=hitcount:size=16384");
    EXPECT_EQ(t.hist->keys[0].print, HistKey::Print::Execname);
    EXPECT_EQ(t.hist->keys[1].source.kind, FieldSource::Kind::Tid);
}

TEST(TracefsTranslateHist, ValuesAreSummedAndHistogramsAreLog2Keys) {
    const auto p = [] { return probe(ProbeKind::Entry, "f", hist::len_and_comm()); };
    EXPECT_EQ(hist::with(hist::aggregated(p(), {2}, 0), AggKind::Sum).hist->spec,
              "hist:keys=name:vals=hitcount,len:size=16384");
    auto h = hist::with(hist::aggregated(p(), {1}, 0, true), AggKind::Hist, 100);
    EXPECT_EQ(h.hist->spec, "hist:keys=__comm,len.log2,stacktrace:vals=hitcount,len:size=128");
    EXPECT_EQ(h.hist->value, "len");
    EXPECT_EQ(h.hist->keys[1].print, HistKey::Print::Log2);
    EXPECT_FALSE(h.hist->keys[1].shown);
    EXPECT_EQ(h.hist->keys[2].print, HistKey::Print::Stack);
    // Without keys of ksurf's, the CPU, which the table merges away.
    auto total = hist::with(hist::aggregated(p(), {}), AggKind::Count);
    EXPECT_EQ(total.hist->spec, "hist:keys=cpu:vals=hitcount:size=16384");
    EXPECT_FALSE(total.hist->keys[0].shown);
    // The filter is the trigger's condition.
    EXPECT_EQ(total.hist->line("len > 3"), "hist:keys=cpu:vals=hitcount:size=16384 if len > 3");
}

TEST(TracefsTranslateHist, WhatHistTriggersLackIsRefusedWithTheReason) {
    const auto p = [] { return probe(ProbeKind::Entry, "f", hist::len_and_comm()); };
    const auto refusal = [](PlannedProbe q, AggKind kind, std::uint32_t size = 10240) {
        try {
            hist::with(q, kind, size);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(refusal(hist::aggregated(p(), {1}, 0), AggKind::Max),
              "p f: --max on tracefs: hist triggers keep hit counts and sums, no minimum or maximum; the BPF backend computes it");
    EXPECT_EQ(refusal(hist::aggregated(p(), {1}, 0), AggKind::Stats),
              "p f: --stats on tracefs: hist triggers keep hit counts and sums, no minimum or maximum; the BPF backend computes it");
    EXPECT_EQ(refusal(hist::aggregated(p(), {1}, 0), AggKind::Lhist),
              "p f: --lhist on tracefs: hist triggers have no linear histogram between bounds; the BPF backend computes it");
    EXPECT_EQ(refusal(hist::aggregated(p(), {1}, 2), AggKind::Sum),
              "p f: --sum on tracefs: 'name' is a string, not a number; the BPF backend computes it");
    std::vector<PlannedField> cpu;
    cpu.push_back(hidden(field("cpu", value(base(Fetch::Base::Cpu), 4))));
    EXPECT_EQ(refusal(hist::aggregated(probe(ProbeKind::Entry, "f", std::move(cpu)), {}, 0), AggKind::Sum),
              "p f: --sum on tracefs: 'cpu' is not a field of the event; the BPF backend computes it");
    std::vector<PlannedField> by_pid;
    by_pid.push_back(hidden(field("pid", value(base(Fetch::Base::Pid), 4))));
    EXPECT_EQ(refusal(hist::aggregated(probe(ProbeKind::Entry, "f", std::move(by_pid)), {0}), AggKind::Count),
              "p f: --count on tracefs: hist triggers key by thread (common_pid), not by process: key by tid; the BPF "
              "backend computes it");
    EXPECT_EQ(refusal(hist::aggregated(p(), {1}), AggKind::Count, 1u << 18),
              "p f: --count on tracefs: --map-size 262144 is more than the 131072 keys a hist trigger holds; the BPF backend "
              "computes it");
}

HistTrigger trigger_of(std::vector<HistKey::Print> prints, std::string value = {}) {
    HistTrigger h;
    for (auto p : prints) h.keys.push_back({p, {}, true});
    h.value = std::move(value);
    return h;
}

// As kernel/trace/trace_events_hist.c prints them (5.10 and 6.x alike).
TEST(TracefsHistFile, KeysAndValuesOfEachEntry) {
    const std::string text = R"(# event histogram
#
# trigger info: hist:keys=common_pid.execname,len.log2:vals=hitcount,len:sort=hitcount:size=16384 [active]
#

{ common_pid: ksurf_itest     [       812], len: ~ 2^3  } hitcount:          5  len:         37
{ common_pid: a, b            [         1], len: ~ 2^10 } hitcount:          1  len:       1000

Totals:
    Hits: 6
    Entries: 2
    Dropped: 4
)";
    const auto h = parse_hist(text, trigger_of({HistKey::Print::Execname, HistKey::Print::Log2}, "len"));
    ASSERT_EQ(h.entries.size(), 2u);
    EXPECT_EQ(h.entries[0].keys, (std::vector<std::string>{"ksurf_itest", "3"}));
    EXPECT_EQ(h.entries[0].pid, 812u);
    EXPECT_EQ(h.entries[0].hits, 5u);
    EXPECT_EQ(h.entries[0].value, 37u);
    EXPECT_EQ(h.entries[1].keys[1], "10");
    EXPECT_EQ(h.entries[1].value, 1000u);
    EXPECT_EQ(h.dropped, 4u);
    // The keys end with " }": a last execname is followed by a space.
    const auto last = parse_hist("{ common_pid: last            [         7] } hitcount:          1\n",
                                 trigger_of({HistKey::Print::Execname}));
    ASSERT_EQ(last.entries.size(), 1u);
    EXPECT_EQ(last.entries[0].keys[0], "last");
    EXPECT_EQ(last.entries[0].pid, 7u);
}

TEST(TracefsHistFile, StringsNumbersAndStacks) {
    const std::string text = "{ __comm: bash                                              , cpu:          1, stacktrace:\n"
                             "         ksys_read+0x73/0xf0\n"
                             "         do_syscall_64+0x33/0x80\n"
                             " } hitcount:          2\n"
                             "{ __comm: sh                                                , cpu:          0, stacktrace:\n"
                             "         vfs_read+0x5/0x1a0 [mod]\n"
                             " } hitcount:          9\n\nTotals:\n    Hits: 11\n    Entries: 2\n    Dropped: 0\n";
    const auto h = parse_hist(text, trigger_of({HistKey::Print::String, HistKey::Print::Number, HistKey::Print::Stack}));
    ASSERT_EQ(h.entries.size(), 2u);
    EXPECT_EQ(h.entries[0].keys, (std::vector<std::string>{"bash", "1", ""}));
    EXPECT_EQ(h.entries[0].stack, (std::vector<std::string>{"ksys_read+0x73/0xf0", "do_syscall_64+0x33/0x80"}));
    EXPECT_EQ(h.entries[0].hits, 2u);
    EXPECT_EQ(h.entries[1].stack, (std::vector<std::string>{"vfs_read+0x5/0x1a0 [mod]"}));
    EXPECT_EQ(h.entries[1].hits, 9u);
}

TEST(TracefsHistFile, WhatIsNotAnEntryOfTheTriggerIsRefused) {
    const auto two = trigger_of({HistKey::Print::Number, HistKey::Print::Number});
    EXPECT_THROW(parse_hist("{ cpu:          1 } hitcount:          2\n", two), Error);
    EXPECT_THROW(parse_hist("{ cpu: x, cpu: 2 } hitcount:          2\n", two), Error);
    EXPECT_THROW(parse_hist("{ cpu: 1, cpu: 2 } hits: 2\n", two), Error);
    EXPECT_TRUE(parse_hist("# event histogram\n\nTotals:\n    Hits: 0\n    Entries: 0\n    Dropped: 0\n", two).entries.empty());
}

TEST(TracefsTranslateScript, AggregationsAreTriggersPrintedAtTheEnd) {
    auto probes = sample_probes();
    for (auto& p : probes) p.aggregate.emplace();
    AggregateOptions opt;
    opt.kind = AggKind::Count;
    auto ctx = context();
    ctx.aggregate = &opt;
    const std::string s = script(probes, ctx);
    for (const char* line : {
             "trigger \"$G/p0\" 'hist:keys=cpu:vals=hitcount:size=16384 if comm == \"it'\\''s\"'\n",
             "trigger \"sched/sched_process_exec\" 'hist:keys=cpu:vals=hitcount:size=16384 if common_pid != 1'\n",
             "trap 'cat \"$I/events/$G/p0/hist\" \"$I/events/$G/r1/hist\" \"$I/events/sched/sched_process_exec/hist\"; exit 130'",
         })
        EXPECT_NE(s.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << s;
    EXPECT_EQ(s.find("/enable"), std::string::npos) << s;
    EXPECT_EQ(s.find("trace_pipe"), std::string::npos) << s;
    EXPECT_TRUE(valid_shell(s)) << s;
    opt.interval_s = 0.5;
    const std::string every = script(probes, ctx);
    EXPECT_NE(every.find("while :; do sleep 0.5; cat \"$I/events/$G/p0/hist\""), std::string::npos) << every;
    EXPECT_TRUE(valid_shell(every)) << every;
}

}  // namespace
}  // namespace ksurf::tracefs
