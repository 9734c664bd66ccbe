// The resolver against two truths it does not compute: the host compiler's offsetof over
// the fixture header whose clang-built BTF it reads, and the running kernel's BTF checked
// against UAPI headers (or the BTF layer's own, oracle-tested member()).
#include "formats.h"
#include "ksurf/kallsyms.h"
#include "ksurf/resolve.h"

#include <gtest/gtest.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <type_traits>

#include "data/resolve/resolve_fixtures.h"
#include "ksurf/btf.h"
#include "ksurf/elf.h"
#include "ksurf/error.h"
#include "ksurf/parse.h"

namespace ksurf {
namespace {

using ksurf::test::kExecFormat;
using ksurf::test::kOpenatFormat;
using ksurf::test::kSwitchFormat;

using Base = Fetch::Base;
using Access = Fetch::Access;
using Subject = PlannedComparison::Subject;
using Stored = decltype(PlannedComparison::value);

tracefs::EventFormat test_format(std::string_view subsys, std::string_view event) {
    if (subsys == "sched" && event == "sched_process_exec") return tracefs::parse_format(subsys, event, kExecFormat);
    if (subsys == "sched" && event == "sched_switch") return tracefs::parse_format(subsys, event, kSwitchFormat);
    if (subsys == "syscalls" && event == "sys_enter_openat") return tracefs::parse_format(subsys, event, kOpenatFormat);
    fail("tracepoint '{}/{}' not found", subsys, event);
}

// What PROBE's resolution throws, with its caret: {message, "   ^^^"}.
std::pair<std::string, std::string> error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const SourceError& e) {
        return {e.what(), std::string(e.pos, ' ') + std::string(e.len, '^')};
    }
    return {"(no error)", ""};
}

// The first bit and the width of what SET turns on in a zeroed rs_file: the host
// compiler's bitfield layout.
struct Bits {
    std::size_t first, width;
};
Bits bits_of(void (*set)(rs_file&)) {
    rs_file f;
    std::memset(&f, 0, sizeof f);
    set(f);
    unsigned char bytes[sizeof f];
    std::memcpy(bytes, &f, sizeof f);
    std::optional<std::size_t> first;
    std::size_t last = 0;
    for (std::size_t i = 0; i < sizeof f * 8; ++i)
        if (bytes[i / 8] >> (i % 8) & 1) {
            first = first.value_or(i);
            last = i;
        }
    return {first.value(), last - *first + 1};
}

class ResolveFixture : public testing::Test {
protected:
    Btf btf = Btf::from_file(KSURF_RESOLVE_FIXTURE);
    std::vector<std::string> functions = {"rs_open", "rs_read",        "rs_close",        "rs_noargs", "rs_fill",
                                          "rs_open", "rs_open.isra.0", "rs_fill [rsmod]", "other_fn"};
    ResolveContext ctx{btf, test_format, [this] { return functions; }};

    PlannedProbe plan(std::string_view text) const {
        try {
            return resolve(parse_probe(text), ctx);
        } catch (const SourceError& e) {
            ADD_FAILURE() << e.render();
            throw;
        }
    }
    // The only field of TEXT.
    PlannedField field(std::string_view text) const {
        PlannedProbe p = plan(text);
        EXPECT_EQ(p.fields.size(), 1u) << text;
        return std::move(p.fields.at(0));
    }
    // A copy: P is often a temporary.
    PlannedComparison comparison(const PlannedProbe& p) const {
        return std::get<PlannedComparison>(p.filter.value());
    }
};

std::int64_t off(std::size_t offset) { return static_cast<std::int64_t>(offset); }

// ---- p/r: bases, members, arrays ----

TEST_F(ResolveFixture, ArgumentsAndParametersAreValues) {
    PlannedProbe p = plan("p rs_open f=%0 m=mode o=other");
    EXPECT_EQ(p.function, "rs_open");
    EXPECT_EQ(p.event, "rs_open");
    ASSERT_EQ(p.fields.size(), 3u);
    const Fetch& f = p.fields[0].fetch;
    EXPECT_EQ(f.base, Base::Arg);
    EXPECT_EQ(f.arg, 0u);
    EXPECT_EQ(f.access, Access::Value);
    EXPECT_EQ(f.size, 8u);
    EXPECT_TRUE(f.derefs.empty());
    EXPECT_EQ(p.fields[0].display, Display::Hex);
    EXPECT_EQ(p.fields[0].c_type, "struct rs_file *");
    EXPECT_EQ(p.fields[1].fetch.arg, 2u);
    EXPECT_EQ(p.fields[1].fetch.size, 4u);
    EXPECT_FALSE(p.fields[1].fetch.is_signed);
    EXPECT_EQ(p.fields[1].display, Display::Decimal);
    EXPECT_EQ(p.fields[1].c_type, "u32");
    EXPECT_EQ(p.fields[2].fetch.arg, 3u);
    EXPECT_EQ(p.fields[2].c_type, "rs_file_t *");
}

TEST_F(ResolveFixture, MemberOfPointerIsALoad) {
    PlannedField f = field("p rs_open fl=%0->f_flags");
    EXPECT_EQ(f.name, "fl");
    EXPECT_EQ(f.fetch.base, Base::Arg);
    EXPECT_TRUE(f.fetch.derefs.empty());
    EXPECT_EQ(f.fetch.access, Access::Load);
    EXPECT_EQ(f.fetch.offset, off(offsetof(rs_file, f_flags)));
    EXPECT_EQ(f.fetch.size, 4u);
    EXPECT_EQ(f.fetch.bit_size, 0u);
    EXPECT_EQ(f.c_type, "unsigned int");
}

TEST_F(ResolveFixture, NestedObjectsAddOffsets) {
    PlannedField f = field("p rs_open d=%0->f_path.dentry");
    EXPECT_TRUE(f.fetch.derefs.empty());
    EXPECT_EQ(f.fetch.offset, off(offsetof(rs_file, f_path.dentry)));
    EXPECT_EQ(f.fetch.size, 8u);
    EXPECT_EQ(f.display, Display::Hex);
    PlannedField g = field("p rs_open f=%0->nodes[1].d_name.len");
    EXPECT_EQ(g.fetch.offset, off(offsetof(rs_file, nodes[1].d_name.len)));
    EXPECT_TRUE(g.fetch.derefs.empty());
}

TEST_F(ResolveFixture, PointerMembersAreLoadedOnTheWay) {
    // The classic: file->f_path.dentry->d_name.name, a `const unsigned char *` string.
    PlannedField f = field("p rs_open name=%0->f_path.dentry->d_name.name");
    EXPECT_EQ(f.fetch.derefs,
              (std::vector<std::int64_t>{off(offsetof(rs_file, f_path.dentry)), off(offsetof(rs_node, d_name.name))}));
    EXPECT_EQ(f.fetch.access, Access::String);
    EXPECT_EQ(f.fetch.offset, 0);
    EXPECT_EQ(f.fetch.size, kMaxStringPointer);
    EXPECT_EQ(f.display, Display::String);
    EXPECT_EQ(f.c_type, "const unsigned char *");
}

TEST_F(ResolveFixture, AnonymousUnionsAndStructs) {
    PlannedField count = field("p rs_open c=%0->count");
    EXPECT_EQ(count.fetch.offset, off(offsetof(rs_file, count)));
    EXPECT_TRUE(count.fetch.is_signed);
    EXPECT_EQ(count.fetch.size, 8u);
    PlannedField len = field("p rs_open l=%0->f_path.dentry->d_name.len");
    EXPECT_EQ(len.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, f_path.dentry))}));
    EXPECT_EQ(len.fetch.offset, off(offsetof(rs_node, d_name.len)));
}

TEST_F(ResolveFixture, BitfieldsMatchHostLayout) {
    struct Case {
        const char* member;
        Bits bits;
        std::uint32_t size;
        bool is_signed;
    };
    const Case cases[] = {
        {"mode", bits_of([](rs_file& f) { f.mode = 7; }), sizeof(unsigned), false},
        {"delta", bits_of([](rs_file& f) { f.delta = -1; }), sizeof(int), true},
        {"wide", bits_of([](rs_file& f) { f.wide = 0xfffff; }), sizeof(unsigned), false},
        {"on", bits_of([](rs_file& f) { f.on = true; }), sizeof(bool), false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.member);
        PlannedField f = field(std::string("p rs_open x=%0->") + c.member);
        EXPECT_EQ(f.fetch.access, Access::Load);
        EXPECT_EQ(f.fetch.offset, off(c.bits.first / 8));
        EXPECT_EQ(f.fetch.bit_offset, c.bits.first % 8);
        EXPECT_EQ(f.fetch.bit_size, c.bits.width);
        EXPECT_EQ(f.fetch.size, c.size);
        EXPECT_EQ(f.fetch.is_signed, c.is_signed);
    }
}

TEST_F(ResolveFixture, StringsFromArraysAndCharPointers) {
    PlannedField tag = field("p rs_open t=%0->tag");
    EXPECT_EQ(tag.fetch.access, Access::String);
    EXPECT_TRUE(tag.fetch.derefs.empty());
    EXPECT_EQ(tag.fetch.offset, off(offsetof(rs_file, tag)));
    EXPECT_EQ(tag.fetch.size, sizeof(rs_file::tag));
    EXPECT_EQ(tag.c_type, "char[8]");
    for (const char* member : {"label", "buf", "sbytes"}) {
        SCOPED_TRACE(member);
        PlannedField s = field(std::string("p rs_open s=%0->") + member);
        EXPECT_EQ(s.fetch.access, Access::String);
        EXPECT_EQ(s.fetch.derefs.size(), 1u);
        EXPECT_EQ(s.fetch.offset, 0);
    }
    EXPECT_EQ(field("p rs_open s=%0->label").fetch.derefs[0], off(offsetof(rs_file, label)));
    // A char pointer argument is already the address: no load before the string.
    PlannedField name = field("p rs_open n=name");
    EXPECT_EQ(name.fetch.base, Base::Arg);
    EXPECT_EQ(name.fetch.arg, 1u);
    EXPECT_TRUE(name.fetch.derefs.empty());
    EXPECT_EQ(name.fetch.access, Access::String);
    EXPECT_EQ(name.fetch.offset, 0);
    // u8 * is a buffer, not text.
    PlannedField raw = field("p rs_open r=%0->raw");
    EXPECT_EQ(raw.fetch.access, Access::Load);
    EXPECT_EQ(raw.display, Display::Hex);
    EXPECT_EQ(field("p rs_open c=%0->tag[2]").fetch.offset, off(offsetof(rs_file, tag[2])));
}

TEST_F(ResolveFixture, ArraysAndPointerIndexing) {
    PlannedField c = field("p rs_open c=%0->counts[3]");
    EXPECT_EQ(c.fetch.offset, off(offsetof(rs_file, counts[3])));
    EXPECT_EQ(c.fetch.size, sizeof(int));
    EXPECT_TRUE(c.fetch.is_signed);
    // An array of pointers, then through one of them.
    PlannedField s = field("p rs_open s=%0->slots[2]->iname");
    EXPECT_EQ(s.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, slots[2]))}));
    EXPECT_EQ(s.fetch.offset, off(offsetof(rs_node, iname)));
    EXPECT_EQ(s.fetch.size, sizeof(rs_node::iname));
    // A pointer member indexed: load it, then the element.
    PlannedField ch = field("p rs_open f=%0->chain[1]->f_flags");
    EXPECT_EQ(ch.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, chain)), off(sizeof(rs_file*))}));
    EXPECT_EQ(ch.fetch.offset, off(offsetof(rs_file, f_flags)));
    // A pointer argument indexed: no load, the element's offset.
    PlannedField o = field("p rs_open f=other[1].f_flags");
    EXPECT_TRUE(o.fetch.derefs.empty());
    EXPECT_EQ(o.fetch.offset, off(sizeof(rs_file) + offsetof(rs_file, f_flags)));
    // A flexible array has no bound to check.
    PlannedField d = field("p rs_fill d=%0->data[100]");
    EXPECT_EQ(d.fetch.offset, off(offsetof(rs_buf, data) + 100));
    EXPECT_EQ(d.fetch.size, 1u);
}

TEST_F(ResolveFixture, DotAndArrowAreInterchangeable) {
    for (const char* text : {"p rs_open x=%0.f_path.dentry->flags", "p rs_open x=%0->f_path->dentry.flags"}) {
        SCOPED_TRACE(text);
        PlannedField f = field(text);
        EXPECT_EQ(f.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, f_path.dentry))}));
        EXPECT_EQ(f.fetch.offset, off(offsetof(rs_node, flags)));
    }
}

TEST_F(ResolveFixture, EnumsBoolsAndWideIntegers) {
    PlannedField state = field("p rs_open s=%0->state");
    EXPECT_EQ(state.fetch.size, sizeof(rs_state));
    EXPECT_EQ(state.fetch.is_signed, std::is_signed_v<std::underlying_type_t<rs_state>>);
    EXPECT_EQ(state.c_type, "enum rs_state");
    PlannedField ready = field("p rs_open r=%0->ready");
    EXPECT_EQ(ready.fetch.offset, off(offsetof(rs_file, ready)));
    EXPECT_EQ(ready.fetch.size, 1u);
    EXPECT_FALSE(ready.fetch.is_signed);
    PlannedField when = field("p rs_open w=%0->when");
    EXPECT_EQ(when.fetch.offset, off(offsetof(rs_file, when)));
    EXPECT_TRUE(when.fetch.is_signed);
    EXPECT_EQ(when.display, Display::Decimal);
}

TEST_F(ResolveFixture, CastsRetypeValuesAndReinterpretObjects) {
    PlannedField v = field("p rs_open n=(struct rs_node *)%1");
    EXPECT_EQ(v.fetch.access, Access::Value);
    EXPECT_EQ(v.c_type, "struct rs_node *");
    PlannedField m = field("p rs_open n=((struct rs_node *)name)->iname");
    EXPECT_EQ(m.fetch.access, Access::String);
    EXPECT_EQ(m.fetch.offset, off(offsetof(rs_node, iname)));
    EXPECT_TRUE(m.fetch.derefs.empty());
    PlannedField narrow = field("p rs_open n=(u16)%2");
    EXPECT_EQ(narrow.fetch.size, 2u);
    EXPECT_EQ(narrow.c_type, "u16");
    // An unsigned long member holding an address, read as the string it points to.
    PlannedField s = field("p rs_open s=(char *)%0->cookie");
    EXPECT_EQ(s.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, cookie))}));
    EXPECT_EQ(s.fetch.access, Access::String);
    PlannedField low = field("p rs_open l=(u8)%0->f_flags");
    EXPECT_EQ(low.fetch.offset, off(offsetof(rs_file, f_flags)));
    EXPECT_EQ(low.fetch.size, 1u);
    EXPECT_EQ(low.fetch.access, Access::Load);
}

TEST_F(ResolveFixture, RegistersAtAnOffset) {
    PlannedProbe p = plan("p rs_open+0x1a r=%di");
    EXPECT_EQ(p.event, "rs_open+0x1a");
    EXPECT_EQ(p.offset, 0x1au);
    const Fetch& f = p.fields.at(0).fetch;
    EXPECT_EQ(f.base, Base::Reg);
    EXPECT_EQ(f.reg, "di");
    EXPECT_EQ(f.access, Access::Value);
    EXPECT_EQ(f.size, 8u);
    EXPECT_FALSE(f.is_signed);
    EXPECT_EQ(p.fields[0].c_type, "unsigned long");
    PlannedField cast = field("p rs_open+4 f=((struct rs_file *)%si)->f_flags");
    EXPECT_EQ(cast.fetch.base, Base::Reg);
    EXPECT_EQ(cast.fetch.offset, off(offsetof(rs_file, f_flags)));
}

TEST_F(ResolveFixture, ReturnValueAndBuiltins) {
    PlannedProbe r = plan("r rs_read ret=$retval c=$comm p=$pid t=$tid u=$cpu");
    EXPECT_EQ(r.event, "rs_read.return");
    ASSERT_EQ(r.fields.size(), 5u);
    EXPECT_EQ(r.fields[0].fetch.base, Base::Retval);
    EXPECT_EQ(r.fields[0].fetch.access, Access::Value);
    EXPECT_EQ(r.fields[0].fetch.size, sizeof(long));
    EXPECT_TRUE(r.fields[0].fetch.is_signed);
    EXPECT_EQ(r.fields[0].c_type, "long");
    EXPECT_EQ(r.fields[1].fetch.base, Base::Comm);
    EXPECT_EQ(r.fields[1].fetch.access, Access::String);
    EXPECT_EQ(r.fields[1].display, Display::String);
    EXPECT_EQ(r.fields[2].fetch.base, Base::Pid);
    EXPECT_EQ(r.fields[3].fetch.base, Base::Tid);
    EXPECT_EQ(r.fields[4].fetch.base, Base::Cpu);
    EXPECT_EQ(field("r rs_noargs f=$retval->f_flags").fetch.offset, off(offsetof(rs_file, f_flags)));
}

TEST_F(ResolveFixture, RetvalOutsideReturnProbes) {
    // The parser refuses it first; the resolver holds to it for probes built otherwise.
    Probe probe = parse_probe("r rs_read ret=$retval");
    probe.kind = ProbeKind::Entry;
    auto [message, caret] = error_of([&] { resolve(probe, ctx); });
    EXPECT_EQ(message, "$retval is only available in return probes ('r')");
    EXPECT_EQ(caret, "              ^^^^^^^");
}

TEST_F(ResolveFixture, Display) {
    EXPECT_EQ(field("p rs_open x=X%0->f_flags").display, Display::Hex);
    PlannedField s = field("p rs_open x=S%0->f_flags");
    EXPECT_TRUE(s.fetch.is_signed);
    EXPECT_EQ(s.display, Display::Decimal);
    EXPECT_FALSE(field("p rs_open x=U%0->count").fetch.is_signed);
    EXPECT_EQ(field("p rs_open x=U%0").display, Display::Decimal);
    PlannedField ip = field("p rs_open ip_a=%0->addr");
    EXPECT_EQ(ip.display, Display::IPv4);
    EXPECT_EQ(ip.c_type, "be32");
    PlannedField port = field("p rs_open b16_port=%0->port");
    EXPECT_EQ(port.swap_bits, 16u);
    EXPECT_EQ(port.display, Display::Decimal);
    PlannedField hex = field("p rs_open B32_a=%0->addr");
    EXPECT_EQ(hex.swap_bits, 32u);
    EXPECT_EQ(hex.display, Display::Hex);
}

TEST_F(ResolveFixture, PacketHeadersNeedAnSkb) {
    auto [message, caret] = error_of([&] { resolve(parse_probe("p rs_open x=@(struct iphdr *)l3%1->saddr"), ctx); });
    EXPECT_EQ(message, "@(struct iphdr *) needs a struct sk_buff *, but %1 of rs_open is const char *");
    EXPECT_EQ(caret, "                               ^^");
}

TEST_F(ResolveFixture, ErrorsRenderWithACaret) {
    try {
        resolve(parse_probe("p rs_open x=%0->f_flag"), ctx);
        FAIL();
    } catch (const SourceError& e) {
        EXPECT_EQ(e.render(),
                  "struct rs_file has no member 'f_flag'; did you mean 'f_flags'?\n"
                  "  p rs_open x=%0->f_flag\n"
                  "                  ^^^^^^");
    }
}

TEST_F(ResolveFixture, ErrorsOfProbeFilesNameTheLine) {
    std::vector<Probe> probes = parse_probe_file("# probes\np rs_open x=%0->zzzz\n", "fs.probes");
    auto [message, caret] = error_of([&] { resolve(probes.at(0), ctx); });
    EXPECT_EQ(message, "fs.probes:2: struct rs_file has no member 'zzzz'");
    EXPECT_EQ(caret, "                ^^^^");
}

// ---- errors: message and caret ----

struct Invalid {
    const char* text;
    const char* caret;
    const char* message;
};

void PrintTo(const Invalid& v, std::ostream* os) { *os << v.text; }

class ResolveInvalid : public ResolveFixture, public testing::WithParamInterface<Invalid> {};

TEST_P(ResolveInvalid, ReportsTheSpan) {
    auto [text, caret, message] = GetParam();
    auto [got, got_caret] = error_of([&] { resolve(parse_probe(text), ctx); });
    EXPECT_EQ(got, message);
    EXPECT_EQ(got_caret, caret) << text;
}

const Invalid kInvalid[] = {
    // functions, arguments, parameters
    {"p rs_opn x=%0", "  ^^^^^^", "function 'rs_opn' not found in BTF; did you mean 'rs_open'?"},
    {"p rs_close x=%3", "             ^^", "rs_close has 1 parameter (file); %3 is out of range"},
    {"p rs_read x=%5", "            ^^", "rs_read has 4 parameters (file, buf, count, pos); %5 is out of range"},
    {"p rs_noargs x=%0", "              ^^", "rs_noargs has no parameters; %0 is out of range"},
    {"p rs_open x=nme", "            ^^^", "function 'rs_open' has no parameter 'nme'; did you mean 'name'?"},
    {"p rs_open+4 x=%0", "              ^^",
     "arguments are only defined at function entry; at rs_open+0x4 use registers such as %di"},
    {"p rs_open+4 x=file->f_flags", "              ^^^^",
     "arguments are only defined at function entry; at rs_open+0x4 use registers such as %di"},
    {"r rs_close x=$retval", "             ^^^^^^^", "rs_close returns void: there is no $retval"},
    {"p rs_open x=$comm[0]", "            ^^^^^", "$comm takes no members, indexes or casts"},
    // members and indexes
    {"p rs_open x=%0->f_flag", "                ^^^^^^",
     "struct rs_file has no member 'f_flag'; did you mean 'f_flags'?"},
    {"p rs_open x=%2->x", "                ^", "cannot take member 'x' of 'u32': not a struct or union"},
    {"p rs_open x=%0->owner->x", "            ^^^^^^^^^",
     "'%0->owner' is a void *; cast it to what it points to: ((struct NAME *)%0->owner)->x"},
    {"p rs_open x=%0->counts[4]", "                       ^",
     "index 4 is out of bounds: '%0->counts' is int[4] (4 elements)"},
    {"p rs_open x=%2[1]", "            ^^", "'%2' is u32; only arrays and pointers to sized types can be indexed"},
    {"p rs_fill x=%1[0]", "            ^^", "'%1' is void *; only arrays and pointers to sized types can be indexed"},
    {"p rs_open x=%0->mode.x", "                     ^", "'%0->mode' is a bitfield; it has no members"},
    // what cannot be printed
    {"p rs_open x=%0->f_path", "            ^^^^^^^^^^", "'%0->f_path' is a struct rs_path; name a member"},
    {"p rs_open x=%0->counts", "            ^^^^^^^^^^", "'%0->counts' is an array (int[4]); name an element with [N]"},
    {"p rs_open x=%0->hw", "            ^^^^^^", "'%0->hw' is an array (u8[6]); name an element with [N]"},
    {"p rs_open x=%0->ratio", "            ^^^^^^^^^", "'%0->ratio' is double, which has no value to print"},
    // casts
    {"p rs_open x=(struct nope *)%0", "             ^^^^^^^^^^^^^", "unknown type 'struct nope *'"},
    {"p rs_open x=(struct rs_node *)%0->f_flags", "            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
     "cannot cast to 'struct rs_node *': a pointer needs 8 bytes, but '%0->f_flags' is unsigned int (4 bytes)"},
    {"p rs_open x=(u64)%0->f_flags", "            ^^^^^^^^^^^^^^^^",
     "cannot cast to 'u64' (8 bytes): '%0->f_flags' is unsigned int (4 bytes)"},
    {"p rs_open x=(struct rs_node)%0", "            ^^^^^^^^^^^^^^^^^^",
     "cannot cast a value to 'struct rs_node'; cast it to a pointer: (struct rs_node *)"},
    {"p rs_open x=(u8)%0->mode", "            ^^^^^^^^^^^^", "'%0->mode' is a bitfield; it cannot be cast"},
    // display
    {"p rs_open ip_x=%0->port", "          ^^^^",
     "'ip_x' prints an IPv4 address, which needs a 4-byte integer; '%0->port' is be16"},
    {"p rs_open b32_x=%0->port", "          ^^^^^", "'b32_x' byte-swaps 32 bits, but '%0->port' is be16 (16 bits)"},
    {"p rs_open b16_x=%0->tag", "          ^^^^^", "'b16_x' byte-swaps 16 bits, but '%0->tag' is char[8] (a string)"},
    {"p rs_open x=S%0->label", "            ^", "'%0->label' is const char *, a string; 'S' formats numbers"},
    // filters
    {"p rs_open flags=%0->f_flags f:flag==1", "                              ^^^^",
     "unknown name 'flag' in the filter; did you mean 'flags'?"},
    {"p rs_open x=%0 f:zzz==1", "                 ^^^",
     "unknown name 'zzz' in the filter (known: x, comm, $pid, $tid, $cpu, file, name, mode, other)"},
    {"p rs_open+1 f:file==1", "              ^^^^",
     "unknown name 'file' in the filter (known: comm, $pid, $tid, $cpu)"},
    {"p rs_open u=%0->hw[0] f:u==300", "                           ^^^", "300 is out of range: 'u' is u8 (0..255)"},
    {"p rs_open n=%0->f_flags f:n==-1", "                             ^^",
     "-1 is out of range: 'n' is unsigned int (0..4294967295)"},
    {"p rs_open d=%0->delta f:d==-17", "                           ^^^", "-17 is out of range: 'd' is int (-16..15)"},
    {"p rs_open m=%0->mode f:m>=8", "                          ^", "8 is out of range: 'm' is unsigned int (0..7)"},
    {"p rs_open w=%0->when f:w>9223372036854775808", "                         ^^^^^^^^^^^^^^^^^^^",
     "9223372036854775808 is out of range: 'w' is long long (-9223372036854775808..9223372036854775807)"},
    {"p rs_open s=%0->label f:s<\"a\"", "                         ^",
     "'s' is const char *, a string: compare it with ==, != or ~"},
    {"p rs_open n=%0->f_flags f:n~\"a*\"", "                           ^",
     "~ matches strings, but 'n' is unsigned int"},
    {"p rs_open n=%0->f_flags f:n==abc", "                             ^^^",
     "'n' is unsigned int, a number; abc is not one"},
    {"p rs_open ip_a=%0->addr f:ip_a<10.0.0.1", "                              ^",
     "'ip_a' is compared in network byte order: only == and != work"},
    {"p rs_open b16_p=%0->port f:b16_p>=80", "                                ^^",
     "'b16_p' is compared in network byte order: only == and != work"},
    {"p rs_open p=%0->port f:p==10.0.0.1", "                          ^^^^^^^^",
     "an IPv4 address needs a 4-byte field, but 'p' is be16"},
    {"p rs_open a=%0->addr f:a==::1", "                          ^^^",
     "'a' is be32; IPv6 addresses compare with ip6.saddr and ip6.daddr"},
    {"p rs_open f:comm>1", "                ^", "'comm' is char[16], a string: compare it with ==, != or ~"},
    // tracepoints
    {"e sched/nope", "  ^^^^^^^^^^", "tracepoint 'sched/nope' not found"},
    {"e sched/sched_process_exec x=pidd", "                             ^^^^",
     "sched/sched_process_exec has no field 'pidd'; did you mean 'pid'?"},
    {"e sched/sched_switch x=prev_comm[1]", "                       ^^^^^^^^^",
     "'prev_comm' is char[16]: print it as it is ('NAME=prev_comm')"},
    {"e sched/sched_process_exec x=(u32)filename", "                                  ^^^^^^^^",
     "'filename' is __data_loc char[]: print it as it is ('NAME=filename')"},
    {"e sched/sched_switch r=rel", "                       ^^^", "'rel': __rel_loc fields are not supported yet"},
    {"e sched/sched_switch f:prev_comm>1", "                                ^",
     "'prev_comm' is char[16], a string: compare it with ==, != or ~"},
    {"e sched/sched_process_exec f:pidd==1", "                             ^^^^",
     "unknown name 'pidd' in the filter; did you mean 'pid'?"},
};

INSTANTIATE_TEST_SUITE_P(Resolve, ResolveInvalid, testing::ValuesIn(kInvalid));

// ---- filters ----

TEST_F(ResolveFixture, FilterKeepsTheTreeShape) {
    PlannedProbe p = plan("p rs_open a=%0->f_flags b=%2 f:(a==1 || !(b==2)) && comm==bash");
    const auto& root = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    EXPECT_EQ(root.op, PlannedFilter::Op::And);
    ASSERT_EQ(root.operands.size(), 2u);
    const auto& either = *std::get<std::unique_ptr<PlannedFilter>>(root.operands[0]);
    EXPECT_EQ(either.op, PlannedFilter::Op::Or);
    ASSERT_EQ(either.operands.size(), 2u);
    const auto& a = std::get<PlannedComparison>(either.operands[0]);
    EXPECT_EQ(a.subject, Subject::Field);
    EXPECT_EQ(a.field, 0u);
    EXPECT_EQ(a.value, Stored{std::uint64_t{1}});
    const auto& negated = *std::get<std::unique_ptr<PlannedFilter>>(either.operands[1]);
    EXPECT_EQ(negated.op, PlannedFilter::Op::Not);
    const auto& b = std::get<PlannedComparison>(negated.operands.at(0));
    EXPECT_EQ(b.field, 1u);
    EXPECT_EQ(b.span.pos, std::string_view(p.text).find("b==2"));
    EXPECT_EQ(b.span.len, 4u);
    const auto& comm = std::get<PlannedComparison>(root.operands[1]);
    EXPECT_EQ(comm.subject, Subject::Comm);
    EXPECT_EQ(comm.value, Stored{std::string("bash")});
    EXPECT_EQ(p.fields.size(), 2u);
}

TEST_F(ResolveFixture, Ipv4LiteralsInNetworkOrder) {
    const auto& c = comparison(plan("p rs_open ip_a=%0->addr f:ip_a==127.0.0.1"));
    // The bytes 7f 00 00 01 in memory, read as the kernel reads a little-endian u32.
    EXPECT_EQ(c.value, Stored{std::uint64_t{0x0100007f}});
}

TEST_F(ResolveFixture, SwappedFieldsCompareSwappedLiterals) {
    EXPECT_EQ(comparison(plan("p rs_open b16_p=%0->port f:b16_p==80")).value, Stored{std::uint64_t{0x5000}});
    EXPECT_EQ(comparison(plan("p rs_open B32_a=%0->addr f:B32_a!=0x01020304")).value,
              Stored{std::uint64_t{0x04030201}});
    EXPECT_EQ(comparison(plan("p rs_open b16_p=S%0->port f:b16_p==-2")).value,
              Stored{std::int64_t{static_cast<std::int16_t>(0xfeff)}});
}

TEST_F(ResolveFixture, IntegerLiteralsByFieldType) {
    auto value = [&](std::string_view text) { return comparison(plan(text)).value; };
    EXPECT_EQ(value("p rs_open u=%0->hw[0] f:u==255"), Stored{std::uint64_t{255}});
    EXPECT_EQ(value("p rs_open c=%0->counts[0] f:c>=-5"), Stored{std::int64_t{-5}});
    EXPECT_EQ(value("p rs_open d=%0->delta f:d==-16"), Stored{std::int64_t{-16}});
    EXPECT_EQ(value("p rs_open m=%0->mode f:m<7"), Stored{std::uint64_t{7}});
    EXPECT_EQ(value("p rs_open w=%0->when f:w>-9223372036854775808"), Stored{std::int64_t{INT64_MIN}});
    EXPECT_EQ(value("p rs_open f=%0 f:f!=0xffffffffffffffff"), Stored{~std::uint64_t{0}});
    // Signedness as the field prints it.
    EXPECT_EQ(value("p rs_open n=S%0->f_flags f:n<-1"), Stored{std::int64_t{-1}});
}

TEST_F(ResolveFixture, StringComparisons) {
    EXPECT_EQ(comparison(plan("p rs_open s=%0->label f:s==\"a b\"")).value, Stored{std::string("a b")});
    const auto& glob = comparison(plan("p rs_open t=%0->tag f:t~\"ab*\""));
    EXPECT_EQ(glob.op, CmpOp::Glob);
    EXPECT_EQ(glob.value, Stored{std::string("ab*")});
    // A comm may well be digits: the word as written.
    const auto& digits = comparison(plan("p rs_open f:$comm==1234"));
    EXPECT_EQ(digits.subject, Subject::Comm);
    EXPECT_EQ(digits.value, Stored{std::string("1234")});
}

TEST_F(ResolveFixture, FilterNamesBindToBuiltinsAndParameters) {
    PlannedProbe p = plan("p rs_open x=%0 f:$pid==1 && common_pid==2 && $tid==3 && $cpu==0 && mode==4 && $cpu<2");
    const auto& all = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    ASSERT_EQ(all.operands.size(), 6u);
    auto cmp = [&](std::size_t i) { return std::get<PlannedComparison>(all.operands[i]); };
    EXPECT_EQ(cmp(0).subject, Subject::Pid);
    EXPECT_EQ(cmp(0).value, Stored{std::int64_t{1}});
    EXPECT_EQ(cmp(1).subject, Subject::Pid);
    EXPECT_EQ(cmp(2).subject, Subject::Tid);
    // What no subject covers is fetched as a hidden field, once.
    ASSERT_EQ(p.fields.size(), 3u);
    EXPECT_EQ(cmp(3).subject, Subject::Field);
    EXPECT_EQ(cmp(3).field, 1u);
    EXPECT_EQ(cmp(5).field, 1u);
    EXPECT_EQ(p.fields[1].fetch.base, Base::Cpu);
    EXPECT_TRUE(p.fields[1].hidden);
    EXPECT_EQ(cmp(4).field, 2u);
    EXPECT_EQ(p.fields[2].name, "mode");
    EXPECT_EQ(p.fields[2].fetch.arg, 2u);
    EXPECT_EQ(p.fields[2].fetch.size, 4u);
    EXPECT_TRUE(p.fields[2].hidden);
    EXPECT_FALSE(p.fields[0].hidden);

    PlannedProbe r = plan("r rs_read f:$retval<0");
    ASSERT_EQ(r.fields.size(), 1u);
    EXPECT_EQ(r.fields[0].fetch.base, Base::Retval);
    EXPECT_TRUE(r.fields[0].fetch.is_signed);
    EXPECT_EQ(comparison(r).value, Stored{std::int64_t{0}});
}

TEST_F(ResolveFixture, FilterOfItsOwnForGraphWhere) {
    PlannedProbe p = plan("r rs_read");
    resolve_filter(parse_filter("$retval>=4096"), "$retval>=4096", p, ctx);
    EXPECT_EQ(comparison(p).op, CmpOp::Ge);
    EXPECT_EQ(p.fields.size(), 1u);
    auto [message, caret] = error_of([&] { resolve_filter(parse_filter("$retval==\"x\""), "$retval==\"x\"", p, ctx); });
    EXPECT_EQ(message, "'$retval' is long, a number; \"x\" is not one");
    EXPECT_EQ(caret, "         ^^^");
}

TEST_F(ResolveFixture, GraphWhereIsAndedWithTheProbesOwnFilter) {
    PlannedProbe p = plan("r rs_read f:$retval<0");
    resolve_filter(parse_filter("$retval>=-4095"), "$retval>=-4095", p, ctx);
    ASSERT_TRUE(p.filter);
    const auto* both = std::get_if<std::unique_ptr<PlannedFilter>>(&*p.filter);
    ASSERT_TRUE(both && *both);
    EXPECT_EQ((*both)->op, PlannedFilter::Op::And);
    ASSERT_EQ((*both)->operands.size(), 2u);
    EXPECT_EQ(std::get<PlannedComparison>((*both)->operands[0]).op, CmpOp::Lt);
    EXPECT_EQ(std::get<PlannedComparison>((*both)->operands[1]).op, CmpOp::Ge);
    EXPECT_EQ(p.fields.size(), 1u) << "both read the one $retval field";
}

// ---- globs ----

TEST_F(ResolveFixture, GlobsExpandOverTraceableFunctions) {
    EXPECT_EQ(expand_glob("rs_open*", functions), (std::vector<std::string>{"rs_open", "rs_open.isra.0"}));
    EXPECT_EQ(expand_glob("rsmod:rs_*", functions), (std::vector<std::string>{"rs_fill"}));
    EXPECT_EQ(expand_glob("rs_?ill", functions), (std::vector<std::string>{"rs_fill"}));
    EXPECT_TRUE(expand_glob("nope*", functions).empty());
    // Many at once, in one pass: plain names (with and without a module), patterns, a name
    // given twice, and one that matches nothing, each answered in its place.
    EXPECT_EQ(expand_globs({"rs_fill", "rs_open*", "rsmod:rs_fill", "othermod:rs_fill", "rs_fill", "nope", "rs_?ill"}, functions),
              (std::vector<std::vector<std::string>>{{"rs_fill"}, {"rs_open", "rs_open.isra.0"}, {"rs_fill"}, {}, {"rs_fill"}, {}, {"rs_fill"}}));

    std::vector<PlannedProbe> plans = resolve_all(parse_probe("p rs_*o* c=$comm"), ctx);
    std::vector<std::string> events;
    for (const PlannedProbe& p : plans) events.push_back(p.event);
    // rs_open.isra.0 has no BTF: a clone, skipped.
    EXPECT_EQ(events, (std::vector<std::string>{"rs_close", "rs_noargs", "rs_open"}));
    EXPECT_EQ(plans[0].fields.at(0).fetch.base, Base::Comm);
    EXPECT_EQ(resolve_all(parse_probe("r rs_read"), ctx).at(0).event, "rs_read.return");

    auto [message, caret] = error_of([&] { resolve_all(parse_probe("p zz_*"), ctx); });
    EXPECT_EQ(message, "no function with BTF matches 'zz_*'");
    EXPECT_EQ(caret, "  ^^^^");
}

// ---- tracepoints ----

TEST_F(ResolveFixture, TracepointPrintsItsOwnFields) {
    PlannedProbe p = plan("e sched/sched_process_exec");
    EXPECT_EQ(p.kind, ProbeKind::Tracepoint);
    EXPECT_EQ(p.subsystem, "sched");
    EXPECT_EQ(p.event, "sched_process_exec");
    ASSERT_EQ(p.fields.size(), 3u);
    EXPECT_EQ(p.fields[0].name, "filename");
    EXPECT_EQ(p.fields[0].fetch.base, Base::Record);
    EXPECT_EQ(p.fields[0].fetch.access, Access::DataLoc);
    EXPECT_EQ(p.fields[0].fetch.offset, 8);
    EXPECT_EQ(p.fields[0].display, Display::String);
    EXPECT_EQ(p.fields[0].c_type, "__data_loc char[]");
    EXPECT_EQ(p.fields[1].name, "pid");
    EXPECT_EQ(p.fields[1].fetch.access, Access::Load);
    EXPECT_EQ(p.fields[1].fetch.offset, 12);
    EXPECT_EQ(p.fields[1].fetch.size, 4u);
    EXPECT_TRUE(p.fields[1].fetch.is_signed);
    EXPECT_EQ(p.fields[1].c_type, "pid_t");
    EXPECT_EQ(p.fields[2].name, "old_pid");

    PlannedProbe sw = plan("e sched/sched_switch");
    ASSERT_EQ(sw.fields.size(), 5u);  // without the __rel_loc field
    EXPECT_EQ(sw.fields[0].fetch.access, Access::String);
    EXPECT_EQ(sw.fields[0].fetch.size, 16u);
    EXPECT_EQ(sw.fields[4].name, "ptr");
    EXPECT_EQ(sw.fields[4].display, Display::Hex);
}

TEST_F(ResolveFixture, TracepointFilter) {
    PlannedProbe p = plan("e sched/sched_process_exec f:pid>1");
    EXPECT_EQ(p.fields.size(), 3u);
    const PlannedComparison& c = comparison(p);
    EXPECT_EQ(c.subject, Subject::Field);
    EXPECT_EQ(c.field, 1u);
    EXPECT_EQ(c.op, CmpOp::Gt);
    EXPECT_EQ(c.value, Stored{std::int64_t{1}});
}

TEST_F(ResolveFixture, TracepointSelectedFields) {
    PlannedProbe p = plan("e sched/sched_process_exec p=pid c=$comm f:old_pid==3 || pid==5 || common_pid==7");
    ASSERT_EQ(p.fields.size(), 4u);
    EXPECT_EQ(p.fields[0].name, "p");
    EXPECT_EQ(p.fields[0].fetch.offset, 12);
    EXPECT_EQ(p.fields[1].fetch.base, Base::Comm);
    EXPECT_EQ(p.fields[2].name, "old_pid");
    EXPECT_TRUE(p.fields[2].hidden);
    EXPECT_EQ(p.fields[3].name, "common_pid");
    EXPECT_EQ(p.fields[3].fetch.offset, 4);
    const auto& any = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    EXPECT_EQ(std::get<PlannedComparison>(any.operands[0]).field, 2u);
    EXPECT_EQ(std::get<PlannedComparison>(any.operands[1]).field, 0u);  // pid is printed as p
    EXPECT_EQ(std::get<PlannedComparison>(any.operands[2]).field, 3u);
}

// ---- the running kernel ----

// `__user` pointers: the final access reads user memory, a chain's loads never do.
TEST_F(ResolveFixture, UserPointers) {
    PlannedField name = std::move(plan("p rs_open n=(char __user *)%1").fields.at(0));
    EXPECT_EQ(name.fetch.base, Base::Arg);
    EXPECT_EQ(name.fetch.arg, 1u);
    EXPECT_TRUE(name.fetch.derefs.empty());
    EXPECT_EQ(name.fetch.access, Access::String);
    EXPECT_EQ(name.fetch.size, kMaxStringPointer);
    EXPECT_TRUE(name.fetch.user);
    EXPECT_EQ(name.display, Display::String);
    PlannedField n = std::move(plan("p rs_open n=((u32 __user *)%1)[2] f:n>3").fields.at(0));
    EXPECT_EQ(n.fetch.access, Access::Load);
    EXPECT_EQ(n.fetch.offset, 8);
    EXPECT_EQ(n.fetch.size, 4u);
    EXPECT_TRUE(n.fetch.user);
    // A user pointer kept in kernel memory: loaded from there, then followed into user memory.
    PlannedField kept = std::move(plan("p rs_open n=(char __user *)%0->cookie").fields.at(0));
    EXPECT_EQ(kept.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, cookie))}));
    EXPECT_TRUE(kept.fetch.user);
    // Without __user, the same is kernel memory.
    EXPECT_FALSE(plan("p rs_open n=(char *)%0->cookie").fields.at(0).fetch.user);

    auto [message, caret] = error_of([&] { resolve(parse_probe("p rs_open n=((char __user **)%1)[0]"), ctx); });
    EXPECT_EQ(message, "a pointer in user memory cannot be followed: ksurf reads user memory only at the end of a chain");
    EXPECT_EQ(caret, "            ^^^^^^^^^^^^^^^^^^^^^^^");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p rs_open n=(u32 __user)%2"), ctx); });
    EXPECT_EQ(message, "__user qualifies a pointer: (u32 __user *)");
}

// A syscall's char pointer is a string in user memory; other record fields take casts.
TEST(ResolveTracepoint, SyscallStringsAreReadFromUserMemory) {
    if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "no kernel BTF";
    Btf btf = Btf::kernel();
    ResolveContext ctx{btf, test_format, {}};
    PlannedProbe all = resolve(parse_probe("e syscalls/sys_enter_openat"), ctx);
    ASSERT_EQ(all.fields.size(), 5u);
    const PlannedField& filename = all.fields.at(2);
    EXPECT_EQ(filename.name, "filename");
    EXPECT_EQ(filename.fetch.base, Base::Record);
    EXPECT_EQ(filename.fetch.derefs, (std::vector<std::int64_t>{24}));
    EXPECT_EQ(filename.fetch.access, Access::String);
    EXPECT_TRUE(filename.fetch.user);
    EXPECT_EQ(filename.display, Display::String);
    EXPECT_FALSE(all.fields.at(1).fetch.user);  // dfd

    PlannedProbe named = resolve(parse_probe("e syscalls/sys_enter_openat f:filename~\"/etc/*\""), ctx);
    ASSERT_EQ(named.fields.size(), 5u);  // the filter reuses the printed field
    EXPECT_EQ(std::get<PlannedComparison>(*named.filter).field, 2u);
    EXPECT_EQ(std::get<PlannedComparison>(*named.filter).value, Stored{std::string("/etc/*")});

    PlannedField first =
        std::move(resolve(parse_probe("e syscalls/sys_enter_openat c=((u8 __user *)filename)[0]"), ctx).fields.at(0));
    EXPECT_EQ(first.fetch.derefs, (std::vector<std::int64_t>{24}));
    EXPECT_EQ(first.fetch.access, Access::Load);
    EXPECT_EQ(first.fetch.size, 1u);
    EXPECT_TRUE(first.fetch.user);
}

// P/R: a function of a user-space ELF binary, found in its symbols, with the x86-64
// registers as untyped longs; its pointers are the process's memory.
TEST_F(ResolveFixture, UserSpaceFunctions) {
    PlannedProbe p = plan("P /proc/self/exe:main argc=(int)%0 first=(char *)%1 f:argc>0");
    EXPECT_EQ(p.kind, ProbeKind::Entry);
    EXPECT_EQ(p.binary, "/proc/self/exe");
    EXPECT_EQ(p.function, "main");
    EXPECT_EQ(p.event, "main");
    std::uint64_t main_offset = 0;
    for (const ElfFunction& f : elf_functions("/proc/self/exe"))
        if (f.name == "main") main_offset = f.file_offset;
    EXPECT_NE(main_offset, 0u);
    EXPECT_EQ(p.file_offset, main_offset);
    EXPECT_EQ(probe_label(p), "P /proc/self/exe:main");
    const PlannedField& argc = p.fields.at(0);
    EXPECT_EQ(argc.fetch.base, Base::Arg);
    EXPECT_EQ(argc.fetch.access, Access::Value);
    EXPECT_EQ(argc.fetch.size, 4u);
    EXPECT_TRUE(argc.fetch.is_signed);
    EXPECT_FALSE(argc.fetch.user);
    const PlannedField& first = p.fields.at(1);
    EXPECT_EQ(first.fetch.arg, 1u);
    EXPECT_EQ(first.fetch.access, Access::String);
    EXPECT_TRUE(first.fetch.user);
    PlannedProbe r = plan("R /proc/self/exe:main ret=(int)$retval");
    EXPECT_EQ(r.event, "main.return");
    EXPECT_EQ(r.fields.at(0).fetch.base, Base::Retval);
    EXPECT_EQ(plan("P /proc/self/exe:main+4").file_offset, main_offset + 4);

    auto [message, caret] = error_of([&] { resolve(parse_probe("P /proc/self/exe:mian"), ctx); });
    EXPECT_EQ(message, "/proc/self/exe has no function 'mian'; did you mean 'main'?");
    EXPECT_EQ(caret, "                 ^^^^");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("P /no/such/file:main"), ctx); });
    EXPECT_EQ(message, "no file '/no/such/file'");
    EXPECT_EQ(caret, "  ^^^^^^^^^^^^^");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("P /proc/self/exe:main f:caller==x"), ctx); });
    EXPECT_EQ(message, "'caller' is known at a kernel function's entry only (p FUNC, without an offset)");
}

class ResolveKernel : public testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "no kernel BTF";
        btf.emplace(Btf::kernel());
    }
    PlannedField field(std::string_view text) const {
        PlannedProbe p = resolve(parse_probe(text), ResolveContext{*btf, test_format, {}});
        return std::move(p.fields.at(0));
    }
    std::optional<Btf> btf;
};

TEST_F(ResolveKernel, TaskComm) {
    PlannedField comm = field("p wake_up_new_task comm=%0->comm");
    EXPECT_EQ(comm.fetch.base, Base::Arg);
    EXPECT_EQ(comm.fetch.arg, 0u);
    EXPECT_TRUE(comm.fetch.derefs.empty());
    EXPECT_EQ(comm.fetch.access, Access::String);
    EXPECT_EQ(comm.fetch.size, 16u);
    EXPECT_EQ(comm.fetch.offset, off(member(btf->find_type("struct task_struct"), "comm").offset));
}

// A struct that only wraps a number reads and prints as that number (surftrace's
// `users=S%0->mm->mm_users`), also through a nested wrapper, and compares as one.
TEST_F(ResolveKernel, ScalarWrappersAreTheirScalar) {
    PlannedProbe p = resolve(parse_probe("p wake_up_new_task comm=%0->comm users=S%0->mm->mm_users f:users<4"),
                             ResolveContext{*btf, test_format, {}});
    const PlannedField& users = p.fields.at(1);
    Type task = btf->find_type("struct task_struct"), mm = btf->find_type("struct mm_struct");
    EXPECT_EQ(users.fetch.derefs, (std::vector<std::int64_t>{off(member(task, "mm").offset)}));
    EXPECT_EQ(users.fetch.access, Access::Load);
    EXPECT_EQ(users.fetch.offset, off(member(mm, "mm_users").offset));
    EXPECT_EQ(users.fetch.size, 4u);
    EXPECT_TRUE(users.fetch.is_signed);
    EXPECT_EQ(users.display, Display::Decimal);
    EXPECT_EQ(users.c_type, "atomic_t");
    ASSERT_TRUE(p.filter);
    const auto& lt = std::get<PlannedComparison>(*p.filter);
    EXPECT_EQ(lt.field, 1u);
    EXPECT_EQ(lt.value, Stored{std::int64_t{4}});

    // refcount_t wraps an atomic_t, which wraps an int.
    PlannedField usage = field("p wake_up_new_task u=%0->usage");
    EXPECT_EQ(usage.fetch.access, Access::Load);
    EXPECT_EQ(usage.fetch.offset, off(member(task, "usage").offset));
    EXPECT_EQ(usage.fetch.size, 4u);
    EXPECT_EQ(usage.c_type, "refcount_t");
    // kuid_t wraps an unsigned uid_t.
    PlannedField uid = field("p wake_up_new_task uid=%0->real_cred->uid");
    EXPECT_EQ(uid.fetch.size, 4u);
    EXPECT_FALSE(uid.fetch.is_signed);
    EXPECT_EQ(uid.c_type, "kuid_t");
    // atomic_long_t wraps a long.
    EXPECT_EQ(wrapped_scalar(btf->find_type("atomic_long_t"))->size(), 8u);
    EXPECT_TRUE(wrapped_scalar(btf->find_type("atomic_long_t"))->is_signed());
    EXPECT_EQ(wrapped_scalar(btf->find_type("atomic64_t"))->size(), 8u);

    // A struct of more than one member is still not a number.
    ResolveContext ctx{*btf, test_format, {}};
    auto [message, caret] = error_of([&] { resolve(parse_probe("p wake_up_new_task x=%0->se"), ctx); });
    EXPECT_EQ(message, "'%0->se' is a struct sched_entity; name a member");
    EXPECT_FALSE(wrapped_scalar(btf->find_type("struct sched_entity")));
    EXPECT_FALSE(wrapped_scalar(btf->find_type("int")));
}

TEST_F(ResolveKernel, FileName) {
    PlannedField name = field("p vfs_read n=%0->f_path.dentry->d_name.name");
    Type file = btf->find_type("struct file"), dentry = btf->find_type("struct dentry");
    auto f_path = member(file, "f_path"), d_name = member(dentry, "d_name");
    EXPECT_EQ(name.fetch.derefs, (std::vector<std::int64_t>{off(f_path.offset + member(f_path.type, "dentry").offset),
                                                            off(d_name.offset + member(d_name.type, "name").offset)}));
    EXPECT_EQ(name.fetch.access, Access::String);
    EXPECT_EQ(name.fetch.offset, 0);
}

// @(struct H *)lN reads H at skb->data as surftrace does: the mark is the layer skb->data
// is at, and a header above it follows an Ethernet header (14 bytes) and an IPv4 header
// without options (20), or IPv6's fixed header (40) before an icmp6hdr.
TEST_F(ResolveKernel, PacketHeadersAreAtSkbDataPastTheMark) {
    const std::int64_t data = off(member(btf->find_type("struct sk_buff"), "data").offset);
    PlannedField saddr = field("p tcp_v4_rcv ip_saddr=@(struct iphdr *)l3%0->saddr");
    EXPECT_EQ(saddr.fetch.base, Base::Arg);
    EXPECT_EQ(saddr.fetch.derefs, (std::vector<std::int64_t>{data}));
    EXPECT_EQ(saddr.fetch.access, Access::Load);
    EXPECT_EQ(saddr.fetch.offset, off(offsetof(struct iphdr, saddr)));
    EXPECT_EQ(saddr.fetch.size, 4u);
    EXPECT_EQ(saddr.display, Display::IPv4);
    PlannedField dest = field("p tcp_v4_rcv b16_dport=@(struct tcphdr *)l4%0->dest");
    EXPECT_EQ(dest.fetch.derefs, (std::vector<std::int64_t>{data}));
    EXPECT_EQ(dest.fetch.offset, off(offsetof(struct tcphdr, dest)));
    EXPECT_EQ(dest.swap_bits, 16u);
    auto offset = [&](std::string_view text) { return field(text).fetch.offset; };
    EXPECT_EQ(offset("p tcp_v4_rcv d=@(struct tcphdr *)l3%0->dest"), 20 + off(offsetof(struct tcphdr, dest)));
    EXPECT_EQ(offset("p tcp_v4_rcv d=@(struct tcphdr *)%0->dest"), 20 + off(offsetof(struct tcphdr, dest)));
    EXPECT_EQ(offset("p tcp_v4_rcv d=@(struct udphdr *)l2%0->dest"), 14 + 20 + off(offsetof(struct udphdr, dest)));
    EXPECT_EQ(offset("p tcp_v4_rcv d=@(struct iphdr *)l2%0->daddr"), 14 + off(offsetof(struct iphdr, daddr)));
    EXPECT_EQ(offset("p tcp_v4_rcv t=@(struct icmp6hdr *)l3%0->icmp6_type"), 40);
    EXPECT_EQ(offset("p tcp_v4_rcv p=@(struct ethhdr *)l2%0->h_proto"), 12);
    // An skb reached through a member: its pointer loaded, then skb->data.
    PlannedField next = field("p tcp_v4_rcv p=@(struct iphdr *)l3(%0->next)->protocol");
    EXPECT_EQ(next.fetch.derefs,
              (std::vector<std::int64_t>{off(member(btf->find_type("struct sk_buff"), "next").offset), data}));
    EXPECT_EQ(next.fetch.offset, off(offsetof(struct iphdr, protocol)));
}

// HEADER->sdata[i] and the other widths: the i-th number right after the header.
TEST_F(ResolveKernel, PacketPayloadMembers) {
    struct Case {
        const char* text;
        std::int64_t offset;
        std::uint32_t size;
        bool is_signed;
    };
    for (const Case& c : {Case{"p ip_rcv d=X@(struct iphdr *)l3%0->sdata[1]", 20 + 2, 2, false},
                          Case{"p ip_rcv d=@(struct iphdr *)%0->cdata[5]", 20 + 5, 1, false},
                          Case{"p ip_rcv d=@(struct iphdr *)%0->Sdata[3]", 20 + 3, 1, true},
                          Case{"p ip_rcv d=@(struct tcphdr *)l3%0->ldata[1]", 20 + 20 + 4, 4, false},
                          Case{"p ip_rcv d=@(struct udphdr *)l2%0->qdata[2]", 14 + 20 + 8 + 16, 8, false},
                          Case{"p ip_rcv d=@(struct icmphdr *)l4%0->sdata[0]", 8, 2, false},
                          Case{"p ip_rcv d=@(struct ethhdr *)l2%0->ldata[0]", 14, 4, false},
                          // Through a pointer to a header, too.
                          Case{"p ip_rcv d=((struct iphdr *)%0->data)->ldata[0]", 20, 4, false}}) {
        SCOPED_TRACE(c.text);
        PlannedField f = field(c.text);
        EXPECT_EQ(f.fetch.derefs.size(), 1u);
        EXPECT_EQ(f.fetch.access, Access::Load);
        EXPECT_EQ(f.fetch.offset, c.offset);
        EXPECT_EQ(f.fetch.size, c.size);
        EXPECT_EQ(f.fetch.is_signed, c.is_signed);
    }
    ResolveContext ctx{*btf, test_format, {}};
    auto [message, caret] = error_of([&] { resolve(parse_probe("p ip_rcv d=@(struct iphdr *)%0->sdata"), ctx); });
    EXPECT_EQ(message, "'sdata' is the payload after the header, in elements; name one: sdata[N]");
    EXPECT_EQ(caret, "                                ^^^^^");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p ip_rcv d=@(struct iphdr *)%0"), ctx); });
    EXPECT_EQ(message, "'@(struct iphdr *)%0' is a struct iphdr; name a member");
    // Other structs have no payload members.
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p ip_rcv d=%0->cdata[0]"), ctx); });
    EXPECT_EQ(message.substr(0, 36), "struct sk_buff has no member 'cdata'");
}

TEST_F(ResolveKernel, Errors) {
    ResolveContext ctx{*btf, test_format, {}};
    auto [message, caret] = error_of([&] { resolve(parse_probe("p ip_rcv x=@(struct iphdr *)l3%1->saddr"), ctx); });
    EXPECT_EQ(message, "@(struct iphdr *) needs a struct sk_buff *, but %1 of ip_rcv is struct net_device *");
    EXPECT_EQ(caret, "                              ^^");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p tcp_v4_rcv x=%3"), ctx); });
    EXPECT_EQ(message, "tcp_v4_rcv has 1 parameter (skb); %3 is out of range");
    EXPECT_EQ(caret, "               ^^");
}

// Packet names are the explicit header syntax on the first sk_buff parameter, and a
// comparison of one is guarded by its protocol.
TEST_F(ResolveKernel, PacketNames) {
    PlannedProbe p = resolve(parse_probe("p ip_rcv dport=tcp.dport src=ip6.saddr f:tcp.dport==9000"),
                             ResolveContext{*btf, test_format, {}});
    const PlannedField& dport = p.fields.at(0);
    EXPECT_EQ(dport.fetch.base, Base::Packet);
    EXPECT_EQ(dport.fetch.layer, Layer::L4);
    EXPECT_EQ(dport.fetch.offset, off(offsetof(struct tcphdr, dest)));
    EXPECT_EQ(dport.swap_bits, 16u);
    ASSERT_TRUE(dport.fetch.skb);
    EXPECT_EQ(dport.fetch.skb->arg, 0u);
    EXPECT_EQ(p.fields.at(1).fetch.size, 16u);
    EXPECT_EQ(p.fields.at(1).display, Display::IPv6);
    // (ipver==4 && ip.proto==6 || ipver==6 && ip6.nexthdr==6) && tcp.dport==9000
    const auto& all = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    ASSERT_EQ(all.op, PlannedFilter::Op::And);
    ASSERT_EQ(all.operands.size(), 2u);
    EXPECT_EQ(std::get<std::unique_ptr<PlannedFilter>>(all.operands[0])->op, PlannedFilter::Op::Or);
    const auto& cmp = std::get<PlannedComparison>(all.operands[1]);
    EXPECT_EQ(std::get<std::uint64_t>(cmp.value), __builtin_bswap16(9000));
    EXPECT_EQ(p.fields.at(cmp.field).name, "tcp.dport");
    EXPECT_TRUE(p.fields.at(cmp.field).hidden);

    // The second sk_buff of a function, chosen by a field named skb.
    PlannedProbe q = resolve(parse_probe("p skb_copy_header skb=%1 a=ip.daddr"), ResolveContext{*btf, test_format, {}});
    EXPECT_EQ(q.fields.at(1).fetch.skb->arg, 1u);

    ResolveContext ctx{*btf, test_format, {}};
    auto [message, caret] = error_of([&] { resolve(parse_probe("p vfs_read f:tcp.dport==1"), ctx); });
    EXPECT_EQ(message, "vfs_read has no struct sk_buff * parameter; name one with a field skb=EXPR");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p ip_rcv f:ip6.saddr==1.2.3.4"), ctx); });
    EXPECT_EQ(message, "'ip6.saddr' is an IPv6 address; 1.2.3.4 is not one");
    std::tie(message, caret) = error_of([&] { resolve(parse_probe("p ip_rcv x=l4proto"), ctx); });
    EXPECT_EQ(message, "l4proto exists in filters only; print ip.proto or ip6.nexthdr");
}

// Every comparison of a packet name gets its protocol test, not only the first: the later
// ones find the name's hidden field, which must not pass for a field of the probe's own.
TEST_F(ResolveKernel, EachComparisonOfAPacketNameIsGuarded) {
    PlannedProbe p = resolve(parse_probe("p ip_rcv f:udp.dport==9000||udp.dport==9002||udp.dport==3"),
                             ResolveContext{*btf, test_format, {}});
    const auto& any = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    ASSERT_EQ(any.op, PlannedFilter::Op::Or);
    ASSERT_EQ(any.operands.size(), 3u);
    for (const auto& operand : any.operands) {
        const auto* guarded = std::get_if<std::unique_ptr<PlannedFilter>>(&operand);
        ASSERT_TRUE(guarded) << "a bare comparison";
        EXPECT_EQ((*guarded)->op, PlannedFilter::Op::And);
        EXPECT_EQ(p.fields.at(std::get<PlannedComparison>((*guarded)->operands.at(1)).field).name, "udp.dport");
    }
}

TEST_F(ResolveKernel, VariadicArgumentsAreUntyped) {
    std::string printk = "_printk";  // since 5.15
    try {
        btf->find_function(printk);
    } catch (const Error&) {
        printk = "printk";
    }
    PlannedField a = field("p " + printk + " a=%2");
    EXPECT_EQ(a.fetch.arg, 2u);
    EXPECT_EQ(a.c_type, btf->find_type("unsigned long").name());  // gcc's "long unsigned int"
    EXPECT_EQ(a.fetch.size, 8u);
}

}  // namespace
}  // namespace ksurf

namespace ksurf {
namespace {

// A packet's Fetch holds its sk_buff's: a copy is a copy of both, never shared.
TEST(Fetch, CopiesAreValues) {
    Fetch packet;
    packet.base = Fetch::Base::Packet;
    Fetch skb;
    skb.derefs = {0x10};
    packet.skb = skb;
    Fetch copy = packet;
    copy.skb->derefs.push_back(0x20);
    EXPECT_EQ(packet.skb->derefs, std::vector<std::int64_t>{0x10});
    EXPECT_EQ(copy.skb->derefs, (std::vector<std::int64_t>{0x10, 0x20}));
    copy = Fetch{};
    EXPECT_FALSE(copy.skb);
    EXPECT_TRUE(packet.skb);
}

}  // namespace
}  // namespace ksurf

namespace ksurf {
namespace {

// caller==FUNC takes FUNC's bounds from the context's symbols (every function of that
// name); without symbols it is an error at `caller`, not a read of /proc/kallsyms.
TEST_F(ResolveFixture, CallerBoundsComeFromTheContextsSymbols) {
    const Kallsyms syms = Kallsyms::parse(
        "ffffffff81000000 T rs_parent\nffffffff81000040 T rs_next\nffffffffc0000000 t rs_parent\t[rsmod]\nffffffffc0000100 t z\t[rsmod]\n");
    ResolveContext with = ctx;
    with.kallsyms = [&]() -> const Kallsyms& { return syms; };
    const PlannedProbe p = resolve(parse_probe("p rs_open f:caller==rs_parent"), with);
    const auto& any = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    ASSERT_EQ(any.operands.size(), 2u);  // vmlinux's and the module's
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (const auto& in : any.operands) {
        const auto& both = *std::get<std::unique_ptr<PlannedFilter>>(in);
        ranges.emplace_back(std::get<std::uint64_t>(std::get<PlannedComparison>(both.operands[0]).value),
                            std::get<std::uint64_t>(std::get<PlannedComparison>(both.operands[1]).value));
    }
    EXPECT_EQ(ranges, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0xffffffff81000000, 0xffffffff81000040},
                                                                          {0xffffffffc0000000, 0xffffffffc0000100}}));
    // A second caller== is ranges too, not a compare of the hidden address with a name.
    const PlannedProbe two = resolve(parse_probe("p rs_open f:caller==rs_next||caller==rs_parent"), with);
    const auto& either = *std::get<std::unique_ptr<PlannedFilter>>(two.filter.value());
    ASSERT_EQ(either.operands.size(), 2u);
    for (const auto& operand : either.operands)
        EXPECT_EQ(std::get<std::unique_ptr<PlannedFilter>>(operand)->op, PlannedFilter::Op::Or);
    auto [message, caret] = error_of([&] { resolve(parse_probe("p rs_open f:caller==rs_parent"), ctx); });
    EXPECT_EQ(message, "'caller' needs the kernel's symbols (/proc/kallsyms)");
    EXPECT_EQ(caret, "            ^^^^^^");
}

}  // namespace
}  // namespace ksurf

namespace ksurf {
namespace {

// ---- kernel variables: @VAR ----

// A kallsyms of a kernel built with CONFIG_KALLSYMS_ALL: static data (d, b) is listed.
class ResolveGlobals : public ResolveFixture {
protected:
    const Kallsyms syms = Kallsyms::parse(
        "ffffffff81000000 T rs_open\nffffffff82000010 D jiffies\nffffffff82000040 d rs_current\n"
        "ffffffff82000100 D rs_per_cpu\nffffffff82000200 d twice\nffffffff82000300 d twice\n"
        "ffffffffc0001008 b rs_mod_var\t[rsmod]\n",
        {}, true);
    ResolveContext with = [this] {
        ResolveContext c = ctx;
        c.kallsyms = [this]() -> const Kallsyms& { return syms; };
        return c;
    }();

    PlannedField global(std::string_view text) const {
        PlannedProbe p = resolve(parse_probe(text), with);
        EXPECT_EQ(p.fields.size(), 1u) << text;
        return std::move(p.fields.at(0));
    }
    std::pair<std::string, std::string> error(std::string_view text) const {
        return error_of([&] { resolve(parse_probe(text), with); });
    }
};

// Without a BTF VAR, @VAR is the u64 at the address kallsyms gives, as kprobe_events reads
// an untyped @SYM; module data keeps its full 64-bit address.
TEST_F(ResolveGlobals, UntypedVariablesAreTheU64AtTheirAddress) {
    PlannedField j = global("p rs_open j=@jiffies");
    EXPECT_EQ(j.fetch.base, Base::Global);
    EXPECT_EQ(j.fetch.symbol, "jiffies");
    EXPECT_EQ(j.fetch.address, 0xffffffff82000010u);
    EXPECT_TRUE(j.fetch.derefs.empty());
    EXPECT_EQ(j.fetch.access, Access::Load);
    EXPECT_EQ(j.fetch.offset, 0);
    EXPECT_EQ(j.fetch.size, 8u);
    EXPECT_FALSE(j.fetch.is_signed);
    EXPECT_EQ(j.c_type, "u64");
    EXPECT_EQ(j.display, Display::Decimal);
    EXPECT_EQ(global("p rs_open m=@rs_mod_var").fetch.address, 0xffffffffc0001008u);
}

// A cast gives an untyped variable its type: a narrower number, a pointer followed by a
// chain, or (an object of any size) a struct whose members are read in place.
TEST_F(ResolveGlobals, CastsTypeAnUntypedVariable) {
    PlannedField narrow = global("p rs_open n=(int)@jiffies");
    EXPECT_EQ(narrow.fetch.size, 4u);
    EXPECT_TRUE(narrow.fetch.is_signed);
    EXPECT_TRUE(narrow.fetch.derefs.empty());

    PlannedField flags = global("p rs_open f=((struct rs_file *)@jiffies)->f_flags");
    EXPECT_EQ(flags.fetch.derefs, (std::vector<std::int64_t>{0}));
    EXPECT_EQ(flags.fetch.offset, off(offsetof(rs_file, f_flags)));
    EXPECT_EQ(flags.fetch.size, 4u);

    PlannedField tag = global("p rs_open t=((struct rs_file)@jiffies).tag");
    EXPECT_TRUE(tag.fetch.derefs.empty());
    EXPECT_EQ(tag.fetch.address, 0xffffffff82000010u);
    EXPECT_EQ(tag.fetch.offset, off(offsetof(rs_file, tag)));
    EXPECT_EQ(tag.fetch.access, Access::String);
    EXPECT_EQ(tag.fetch.size, 8u);
}

// A BTF VAR types the variable: its members are read at their offsets from its address,
// and pointers among them are followed.
TEST_F(ResolveGlobals, BtfVariablesHaveTheirType) {
    PlannedField flags = global("p rs_open f=@rs_current.f_flags");
    EXPECT_EQ(flags.fetch.base, Base::Global);
    EXPECT_EQ(flags.fetch.address, 0xffffffff82000040u);
    EXPECT_TRUE(flags.fetch.derefs.empty());
    EXPECT_EQ(flags.fetch.offset, off(offsetof(rs_file, f_flags)));
    EXPECT_EQ(flags.fetch.access, Access::Load);
    EXPECT_EQ(flags.fetch.size, 4u);
    EXPECT_EQ(flags.c_type, "unsigned int");

    PlannedField label = global("p rs_open l=@rs_current->label");
    EXPECT_EQ(label.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, label))}));
    EXPECT_EQ(label.fetch.access, Access::String);

    PlannedField dentry = global("p rs_open d=@rs_current.f_path.dentry->d_name.len");
    EXPECT_EQ(dentry.fetch.derefs, (std::vector<std::int64_t>{off(offsetof(rs_file, f_path.dentry))}));
    EXPECT_EQ(dentry.fetch.offset, off(offsetof(rs_node, d_name.len)));

    auto [message, caret] = error("p rs_open x=(struct rs_file)@rs_current.f_flags");
    EXPECT_EQ(message.rfind("cannot cast to 'struct rs_file'", 0), 0u) << message;
}

// In a filter, @VAR and its dotted members are hidden fields compared like any other.
TEST_F(ResolveGlobals, FiltersNameVariables) {
    PlannedProbe p = resolve(parse_probe("p rs_open f:@jiffies>100 && @rs_current.f_flags==1"), with);
    ASSERT_EQ(p.fields.size(), 2u);
    EXPECT_TRUE(p.fields[0].hidden);
    EXPECT_EQ(p.fields[0].name, "@jiffies");
    EXPECT_EQ(p.fields[0].fetch.address, 0xffffffff82000010u);
    EXPECT_EQ(p.fields[1].fetch.offset, off(offsetof(rs_file, f_flags)));
    EXPECT_EQ(p.fields[1].fetch.size, 4u);
    const auto& both = *std::get<std::unique_ptr<PlannedFilter>>(p.filter.value());
    const auto& gt = std::get<PlannedComparison>(both.operands[0]);
    EXPECT_EQ(gt.field, 0u);
    EXPECT_EQ(gt.op, CmpOp::Gt);
    EXPECT_EQ(gt.value, (Stored{std::uint64_t{100}}));

    auto [message, caret] = error("p rs_open f:@rs_current.nope==1");
    EXPECT_EQ(message.rfind("struct rs_file has no member 'nope'", 0), 0u) << message;
    EXPECT_EQ(caret, "                        ^^^^");
}

// Each variable ksurf cannot read says why, under its name.
TEST_F(ResolveGlobals, UnreadableVariablesSayWhy) {
    auto [percpu, caret] = error("p rs_open x=@rs_per_cpu");
    EXPECT_EQ(percpu, "'rs_per_cpu' is a per-CPU variable, which ksurf cannot read yet");
    EXPECT_EQ(caret, "            ^^^^^^^^^^^");
    EXPECT_EQ(error("p rs_open x=@jifies").first, "no kernel variable 'jifies' in /proc/kallsyms; did you mean 'jiffies'?");
    EXPECT_EQ(error("p rs_open x=@rs_open").first, "'rs_open' is a kernel function, not a variable");
    EXPECT_EQ(error("p rs_open x=@twice").first,
              "2 kernel variables are named 'twice' (statics of different files or modules): ksurf cannot tell which");

    // The host's kernel: text symbols and a few exported markers, no static data.
    const Kallsyms text_only = Kallsyms::parse("ffffffff81000000 T rs_open\nffffffff82000000 D __start_foo\n", {}, true);
    ResolveContext no_all = ctx;
    no_all.kallsyms = [&]() -> const Kallsyms& { return text_only; };
    auto [message, at] = error_of([&] { resolve(parse_probe("p rs_open j=@jiffies f:j>0"), no_all); });
    EXPECT_EQ(message, "kallsyms lists no data symbol 'jiffies' (this kernel is built without CONFIG_KALLSYMS_ALL)");
    EXPECT_EQ(at, "            ^^^^^^^^");

    EXPECT_EQ(error_of([&] { resolve(parse_probe("p rs_open j=@jiffies"), ctx); }).first,
              "kernel variables need the kernel's symbols (/proc/kallsyms)");
}

}  // namespace
}  // namespace ksurf
