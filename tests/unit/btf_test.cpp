#include "ksurf/btf.h"

#include "ksurf/error.h"

#include <bpf/btf.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include "error_of.h"

namespace {

namespace fs = std::filesystem;
using ksurf::Btf;
using Member = ksurf::MemberLayout;
using ksurf::Type;
using Kind = Type::Kind;

constexpr const char* kVmlinux = "/sys/kernel/btf/vmlinux";

using ksurf::test::error_of;

std::vector<std::string> split(const std::string& line, char sep) {
    std::vector<std::string> fields;
    for (std::size_t i = 0;; ++i) {
        std::size_t end = line.find(sep, i);
        fields.push_back(line.substr(i, end - i));
        if (end == line.npos) return fields;
        i = end;
    }
}

// The lines a layout oracle program prints (format in data/btf/oracle.h).
std::vector<std::vector<std::string>> run_oracle(const char* exe) {
    FILE* pipe = popen(exe, "r");
    if (!pipe) return {};
    std::vector<std::vector<std::string>> rows;
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe)) {
        std::string line(buf);
        if (!line.empty() && line.back() == '\n') line.pop_back();
        rows.push_back(split(line, '\t'));
    }
    EXPECT_EQ(pclose(pipe), 0) << exe << " failed";
    return rows;
}

// Walks a member path such as "a.b[3].c" with the public API, as the resolver will.
Member walk(Type root, std::string_view path) {
    Member at{root};
    for (std::size_t i = 0; i < path.size();) {
        if (path[i] == '[') {
            std::size_t close = path.find(']', i);
            std::size_t index = std::stoul(std::string(path.substr(i + 1, close - i - 1)));
            if (index >= at.type.count())
                ksurf::fail("index {} out of bounds of '{}'", index, at.type.name());
            Type elem = at.type.elem();
            std::size_t offset = at.offset + index * elem.size();
            at = {elem, offset, static_cast<std::uint32_t>(offset * 8)};
            i = close + 1;
        } else {
            i += path[i] == '.';
            std::size_t end = std::min(path.find_first_of(".[", i), path.size());
            Member m = ksurf::member(at.type, path.substr(i, end - i));
            at = {m.type, at.offset + m.offset, static_cast<std::uint32_t>(at.offset * 8 + m.bit_offset),
                  m.bitfield_size};
            i = end;
        }
    }
    return at;
}

// Checks every row of an oracle against `btf`; returns how many rows were checked.
std::size_t expect_oracle_layout(const Btf& btf, const char* oracle) {
    std::vector<std::vector<std::string>> rows = run_oracle(oracle);
    for (const std::vector<std::string>& row : rows) {
        if (row.size() < 4 || row[0].size() != 1) {
            ADD_FAILURE() << "bad oracle line: " << fmt::format("{}", fmt::join(row, "\t"));
            continue;
        }
        char kind = row[0][0];
        const std::string& type = row[1];
        std::string where = kind == 'T' ? type : type + "." + row[2];
        auto expect = [&](std::string_view what, std::uint64_t btf_says, const std::string& oracle_says) {
            if (std::to_string(btf_says) != oracle_says)
                ADD_FAILURE() << where << ": " << what << " is " << btf_says << " in BTF, " << oracle_says
                              << " natively";
        };
        try {
            Type root = btf.find_type(type);
            if (kind == 'T') {
                expect("size", root.size(), row[3]);
                continue;
            }
            Member m = walk(root, row[2]);
            if (kind == 'B') {
                expect("bit offset", m.bit_offset, row[3]);
                expect("bitfield size", m.bitfield_size, row.at(4));
            } else {
                expect("offset", m.offset, row[3]);
                expect("size", m.type.size(), row.at(4));
                expect("bitfield size", m.bitfield_size, "0");
            }
            if (kind != 'M') expect("signedness", m.type.is_signed(), row.at(5));
        } catch (const std::exception& e) {
            ADD_FAILURE() << where << ": " << e.what();
        }
    }
    return rows.size();
}

class BtfFixture : public testing::Test {
protected:
    Btf btf = Btf::from_file(KSURF_BTF_FIXTURE);

    Type type(std::string_view name) const { return btf.find_type(name); }
    Type member_type(std::string_view agg, std::string_view name) const {
        return ksurf::member(type(agg), name).type;
    }
};

// The fixture BTF comes from clang -target bpf; the oracle is the host compiler (gcc)
// compiling the same types natively.
TEST_F(BtfFixture, LayoutMatchesHostCompilerOracle) {
    EXPECT_GE(expect_oracle_layout(btf, KSURF_BTF_LAYOUT_ORACLE), 120u);
}

TEST_F(BtfFixture, KindsSizesSignedness) {
    EXPECT_EQ(type("u8").kind(), Kind::Int);
    EXPECT_FALSE(type("u8").is_signed());
    EXPECT_EQ(type("char").kind(), Kind::Char);
    EXPECT_TRUE(type("char").is_signed());  // the bpf target's char is signed; the kernel's is not
    EXPECT_EQ(type("signed char").kind(), Kind::Int);
    EXPECT_EQ(type("bool").kind(), Kind::Bool);
    EXPECT_EQ(type("_Bool").size(), 1u);
    EXPECT_EQ(type("enum mid").kind(), Kind::Enum);
    EXPECT_EQ(type("enum mid").size(), 2u);
    EXPECT_EQ(type("double").kind(), Kind::Float);
    EXPECT_EQ(type("union value").kind(), Kind::Union);
    EXPECT_EQ(type("point_t").kind(), Kind::Struct);
    EXPECT_EQ(type("point_ptr").kind(), Kind::Pointer);
    EXPECT_EQ(type("point_ptr").pointee().name(), "struct point");
    EXPECT_EQ(Type().kind(), Kind::Void);
    EXPECT_EQ(Type().size(), 0u);

    Type deep = member_type("struct nested", "deep_arr");
    EXPECT_EQ(deep.kind(), Kind::Array);
    EXPECT_EQ(deep.count(), 3u);
    EXPECT_EQ(deep.elem().name(), "s16");
    EXPECT_EQ(deep.elem().strip().name(), "short");
    Type open = member_type("struct callbacks", "open");
    EXPECT_EQ(open.pointee().kind(), Kind::FuncProto);
    EXPECT_EQ(open.pointee().size(), 0u);
    EXPECT_EQ(member_type("struct quals", "cvu").strip().name(), "unsigned long long");
    EXPECT_EQ(member_type("struct quals", "pconst").kind(), Kind::Pointer);

    EXPECT_EQ(error_of([&] { type("u8").pointee(); }), "'u8' is not a pointer");
    EXPECT_EQ(error_of([&] { type("u8").elem(); }), "'u8' is not an array");
}

TEST_F(BtfFixture, NamesRenderAsC) {
    EXPECT_EQ(member_type("struct with_arrays", "name").name(), "char[16]");
    EXPECT_EQ(member_type("struct with_arrays", "grid").name(), "int[3][4]");
    EXPECT_EQ(member_type("struct with_arrays", "cube").name(), "u8[2][3][4]");
    EXPECT_EQ(member_type("struct with_arrays", "refs").name(), "point_t *[3]");
    EXPECT_EQ(member_type("struct with_arrays", "rowp").name(), "int (*)[4]");
    EXPECT_EQ(member_type("struct with_arrays", "fl").name(), "struct flags[2]");
    EXPECT_EQ(member_type("struct callbacks", "open").name(), "int (*)(struct flags *, const char *)");
    EXPECT_EQ(member_type("struct callbacks", "close").name(), "void (*)(void)");
    EXPECT_EQ(member_type("struct callbacks", "logf").name(), "long (*)(const char *, ...)");
    EXPECT_EQ(member_type("struct callbacks", "cursor").name(), "point_ptr");
    EXPECT_EQ(member_type("struct callbacks", "cursor").strip().name(), "struct point *");
    EXPECT_EQ(member_type("struct quals", "ci").name(), "const int");
    EXPECT_EQ(member_type("struct quals", "cvu").name(), "const volatile u64");
    EXPECT_EQ(member_type("struct quals", "cstr").name(), "const char *");
    EXPECT_EQ(member_type("struct quals", "pconst").name(), "char *const");
    EXPECT_EQ(member_type("struct quals", "cp").name(), "const struct point");
    EXPECT_EQ(member_type("struct quals", "addr").name(), "be32");
    EXPECT_EQ(member_type("struct flags", "col").name(), "enum color");
    EXPECT_EQ(member_type("struct nested", "pair").strip().name(), "struct {...}");
    EXPECT_EQ(Type().name(), "void");
    EXPECT_EQ(Type().pointer_to().name(), "void *");
    Type grid = member_type("struct with_arrays", "grid");
    EXPECT_EQ(grid.pointer_to().name(), "int (*)[3][4]");
    EXPECT_EQ(grid.pointer_to().pointer_to().name(), "int (**)[3][4]");
    EXPECT_EQ(grid.elem().pointer_to().name(), "int (*)[4]");
}

TEST_F(BtfFixture, FindTypeParsesCastSpellings) {
    EXPECT_EQ(type("struct point *").name(), "struct point *");
    EXPECT_EQ(type("struct point**").name(), "struct point **");
    EXPECT_EQ(type("struct point **").pointee().pointee().kind(), Kind::Struct);
    EXPECT_EQ(type("struct point **").pointee().size(), 8u);
    EXPECT_EQ(type(" union   value ").name(), "union value");
    EXPECT_EQ(type("enum wide").size(), 8u);
    EXPECT_EQ(type("const char *").name(), "char *");
    EXPECT_EQ(type("char * const").name(), "char *");
    EXPECT_EQ(type("void *").name(), "void *");
    EXPECT_EQ(type("void").kind(), Kind::Void);
    EXPECT_EQ(type("be32").name(), "be32");
    EXPECT_EQ(type("be32").strip().name(), "unsigned int");
    // Integer specifiers in any order find clang's spelling in the BTF.
    EXPECT_EQ(type("long long unsigned int").name(), "unsigned long long");
    EXPECT_EQ(type("unsigned").name(), "unsigned int");
    EXPECT_EQ(type("short int").name(), "short");
    EXPECT_EQ(type("signed long").name(), "long");
    EXPECT_EQ(type("unsigned long long").id(), type("u64").strip().id());

    EXPECT_EQ(error_of([&] { type("struct nope"); }), "unknown type 'struct nope'");
    EXPECT_EQ(error_of([&] { type("union point"); }), "unknown type 'union point'");
    EXPECT_EQ(error_of([&] { type("unsigned double"); }), "unknown type 'unsigned double'");
    EXPECT_EQ(error_of([&] { type("long short"); }), "unknown type 'long short'");
    EXPECT_EQ(error_of([&] { type("char *p"); }), "unknown type 'char *p'");
    EXPECT_EQ(error_of([&] { type("struct"); }), "unknown type 'struct'");
    EXPECT_EQ(error_of([&] { type("*"); }), "unknown type '*'");
}

// The first lookups of a BTF scan its types; later ones go through an index built then:
// both find the same types, and the same absence.
TEST_F(BtfFixture, ScansAndIndexAgree) {
    const std::vector<std::string> names = {"struct point", "union value", "enum wide", "u32", "be32", "point_t",
                                            "struct nested", "enum color", "struct nope"};
    auto id_in = [](const Btf& b, const std::string& name) -> std::uint32_t {
        try {
            return b.find_type(name).id();
        } catch (const ksurf::Error&) {
            return 0;
        }
    };
    for (int i = 0; i < 10; i++) id_in(btf, "struct point");  // past the scans
    for (const auto& name : names) {
        const Btf fresh = Btf::from_file(KSURF_BTF_FIXTURE);
        EXPECT_EQ(id_in(fresh, name), id_in(btf, name)) << name;
        EXPECT_EQ(id_in(fresh, name) == 0, name == "struct nope") << name;
    }
}

// What a kernel's enum bpf_func_id tells of its helpers, here on the fixture's enums (the
// 64-bit one is ENUM64 where clang emits it).
TEST_F(BtfFixture, Enumerators) {
    EXPECT_TRUE(ksurf::has_enumerator(type("enum color"), "GREEN"));
    EXPECT_FALSE(ksurf::has_enumerator(type("enum color"), "PURPLE"));
    EXPECT_TRUE(ksurf::has_enumerator(type("enum wide"), "WIDE_B"));
    EXPECT_TRUE(ksurf::has_enumerator(type("enum tiny"), "TINY_A"));
    EXPECT_FALSE(ksurf::has_enumerator(type("struct point"), "x"));
}

TEST_F(BtfFixture, MemberErrors) {
    EXPECT_EQ(error_of([&] { ksurf::member(type("struct nested"), "deepst"); }),
              "struct nested has no member 'deepst'; did you mean 'deepest'?");
    EXPECT_EQ(error_of([&] { ksurf::member(type("nested_t"), "hi_flg"); }),
              "nested_t has no member 'hi_flg'; did you mean 'hi_flag'?");
    EXPECT_EQ(error_of([&] { ksurf::member(type("struct nested"), "unrelated"); }),
              "struct nested has no member 'unrelated'");
    EXPECT_EQ(error_of([&] { ksurf::member(type("int"), "x"); }),
              "cannot take member 'x' of 'int': not a struct or union");
    EXPECT_EQ(error_of([&] { ksurf::member(type("struct point *"), "x"); }),
              "cannot take member 'x' of 'struct point *': not a struct or union");
}

TEST_F(BtfFixture, Functions) {
    ksurf::Function open = btf.find_function("fixture_open");
    EXPECT_EQ(open.name, "fixture_open");
    EXPECT_EQ(open.module, "");
    EXPECT_EQ(open.ret.name(), "int");
    EXPECT_FALSE(open.variadic);
    ASSERT_EQ(open.params.size(), 4u);
    std::vector<std::pair<std::string, std::string>> params;
    for (const ksurf::Param& p : open.params) params.emplace_back(p.name, p.type.name());
    EXPECT_EQ(
        params,
        (std::vector<std::pair<std::string, std::string>>{
            {"f", "struct flags *"}, {"name", "const char *"}, {"where", "point_ptr"}, {"count", "u32"}}));
    EXPECT_EQ(open.param_index("where"), 2u);
    EXPECT_EQ(error_of([&] { open.param_index("nme"); }),
              "function 'fixture_open' has no parameter 'nme'; did you mean 'name'?");

    ksurf::Function sum = btf.find_function("vmlinux:fixture_sum");
    EXPECT_EQ(sum.ret.name(), "long");
    ASSERT_EQ(sum.params.size(), 3u);
    EXPECT_EQ(sum.params[0].type.name(), "const struct with_arrays *");
    EXPECT_EQ(sum.params[1].type.name(), "enum color");

    ksurf::Function none = btf.find_function("fixture_noargs");
    EXPECT_EQ(none.ret.kind(), Kind::Void);
    EXPECT_TRUE(none.params.empty());

    EXPECT_EQ(error_of([&] { btf.find_function("fixture_nope"); }),
              "function 'fixture_nope' not found in BTF");
    EXPECT_EQ(error_of([&] { btf.find_function("keep_0"); }), "function 'keep_0' not found in BTF");
    EXPECT_EQ(error_of([&] { btf.find_function("mod:fixture_open"); }),
              "module 'mod': no module BTF with an explicit BTF file");
    EXPECT_EQ(error_of([&] { btf.find_tracepoint_proto("sched_switch"); }),
              "tracepoint 'sched_switch' not found in BTF (no btf_trace_sched_switch)");
}

TEST(BtfLoad, MissingBtfIsAClearError) {
    EXPECT_EQ(error_of([] { Btf::kernel("/nonexistent/btf"); }),
              "kernel BTF not found at /nonexistent/btf/vmlinux (CONFIG_DEBUG_INFO_BTF); pass --btf FILE");
    EXPECT_EQ(error_of([] { Btf::from_file("/nonexistent/vmlinux"); }),
              "BTF file /nonexistent/vmlinux not found");
}

// A fake /sys/kernel/btf: the fixture object as "vmlinux" and a module "mymod" whose split
// BTF (written with libbpf) adds its own struct, functions and tracepoint over it.
class BtfModules : public testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(dir);
        fs::copy_file(KSURF_BTF_FIXTURE, dir / "vmlinux", fs::copy_options::overwrite_existing);
        std::unique_ptr<struct btf, void (*)(struct btf*)> base(btf__parse(KSURF_BTF_FIXTURE, nullptr),
                                                                btf__free);
        ASSERT_TRUE(base);
        std::unique_ptr<struct btf, void (*)(struct btf*)> mod(btf__new_empty_split(base.get()), btf__free);
        struct btf* m = mod.get();
        int point = btf__find_by_name_kind(m, "point", BTF_KIND_STRUCT);
        int u32 = btf__find_by_name_kind(m, "u32", BTF_KIND_TYPEDEF);
        int integer = btf__find_by_name_kind(m, "int", BTF_KIND_INT);
        ASSERT_GT(point, 0);
        // libbpf appends fields and params to the type added last: create what they refer to first.
        int point_ptr = btf__add_ptr(m, point);
        int state = btf__add_struct(m, "mod_state", 16);
        btf__add_field(m, "where", point_ptr, 0, 0);
        btf__add_field(m, "flags", u32, 64, 0);
        int state_ptr = btf__add_ptr(m, state);
        int void_ptr = btf__add_ptr(m, 0);

        int proto = btf__add_func_proto(m, integer);
        btf__add_func_param(m, "st", state_ptr);
        btf__add_func(m, "mod_func", BTF_FUNC_GLOBAL, proto);
        btf__add_func(m, "fixture_open", BTF_FUNC_STATIC, btf__add_func_proto(m, 0));
        int tp_proto = btf__add_func_proto(m, 0);
        btf__add_func_param(m, "__data", void_ptr);
        btf__add_func_param(m, "", state_ptr);
        btf__add_func_param(m, "", integer);
        btf__add_typedef(m, "btf_trace_mod_event", btf__add_ptr(m, tp_proto));
        ASSERT_GT(btf__type_cnt(m), btf__type_cnt(base.get()) + 10);

        std::uint32_t size = 0;
        const void* raw = btf__raw_data(m, &size);
        ASSERT_TRUE(raw);
        std::ofstream(dir / "mymod", std::ios::binary).write(static_cast<const char*>(raw), size);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path dir = fs::path(testing::TempDir()) / fmt::format("ksurf_btf_modules.{}", getpid());
};

TEST_F(BtfModules, SplitBtfLoadsOnDemand) {
    Btf btf = Btf::kernel(dir);
    // vmlinux first: the module's static fixture_open does not shadow it.
    EXPECT_EQ(btf.find_function("fixture_open").module, "");
    EXPECT_EQ(btf.find_function("fixture_open").params.size(), 4u);
    EXPECT_TRUE(btf.find_function("mymod:fixture_open").params.empty());

    ksurf::Function f = btf.find_function("mod_func");
    EXPECT_EQ(f.module, "mymod");
    ASSERT_EQ(f.params.size(), 1u);
    EXPECT_EQ(f.params[0].name, "st");
    EXPECT_EQ(f.params[0].type.name(), "struct mod_state *");
    Member flags = ksurf::member(f.params[0].type.pointee(), "flags");
    EXPECT_EQ(flags.offset, 8u);
    EXPECT_EQ(flags.type.name(), "u32");
    EXPECT_EQ(ksurf::member(f.params[0].type.pointee(), "where").type.pointee().name(), "struct point");

    EXPECT_EQ(btf.find_type("struct mod_state *", "mymod").name(), "struct mod_state *");
    EXPECT_EQ(btf.find_type("struct point", "mymod").size(), 8u);
    EXPECT_EQ(error_of([&] { btf.find_type("struct mod_state"); }), "unknown type 'struct mod_state'");

    ksurf::Function tp = btf.find_tracepoint_proto("mod_event");
    EXPECT_EQ(tp.module, "mymod");
    ASSERT_EQ(tp.params.size(), 2u);
    EXPECT_EQ(tp.params[0].type.name(), "struct mod_state *");
    EXPECT_EQ(tp.params[1].type.name(), "int");

    // Every function, each with its module: the module's own after vmlinux's.
    std::vector<std::pair<std::string, std::string>> all;
    for (const auto& fn : btf.functions(true)) all.emplace_back(fn.module, fn.name);
    EXPECT_EQ(std::count(all.begin(), all.end(), std::pair<std::string, std::string>("mymod", "mod_func")), 1);
    EXPECT_EQ(std::count(all.begin(), all.end(), std::pair<std::string, std::string>("mymod", "fixture_open")), 1);
    EXPECT_EQ(std::count(all.begin(), all.end(), std::pair<std::string, std::string>("", "fixture_open")), 1);
    EXPECT_EQ(btf.functions(false).size() + 2, all.size());

    EXPECT_EQ(error_of([&] { btf.find_function("mymod:fixture_sum"); }),
              "function 'fixture_sum' not found in BTF of module 'mymod'");
    EXPECT_EQ(error_of([&] { btf.find_function("othermod:f"); }),
              fmt::format("module 'othermod' has no BTF at {}", (dir / "othermod").string()));
}

class BtfKernel : public testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kVmlinux)) GTEST_SKIP() << "no kernel BTF at " << kVmlinux;
        btf.emplace(Btf::kernel());
    }
    std::optional<Btf> btf;
};

// Expectations from the installed UAPI headers, compiled natively.
TEST_F(BtfKernel, NetworkHeadersMatchUapiOracle) {
    EXPECT_GE(expect_oracle_layout(*btf, KSURF_BTF_UAPI_ORACLE), 30u);
}

TEST_F(BtfKernel, VmlinuxSanity) {
    Type comm = ksurf::member(btf->find_type("struct task_struct"), "comm").type;
    EXPECT_EQ(comm.name(), "char[16]");
    EXPECT_EQ(comm.elem().kind(), Kind::Char);

    ksurf::Function rcv = btf->find_function("tcp_v4_rcv");
    EXPECT_EQ(rcv.module, "");
    ASSERT_EQ(rcv.params.size(), 1u);
    EXPECT_EQ(rcv.params[0].name, "skb");
    EXPECT_EQ(rcv.params[0].type.name(), "struct sk_buff *");
    EXPECT_EQ(rcv.param_index("skb"), 0u);

    Type skb = rcv.params[0].type.pointee();
    EXPECT_EQ(ksurf::member(skb, "len").type.name(), "unsigned int");
    EXPECT_EQ(error_of([&] { ksurf::member(skb, "lenn"); }),
              "struct sk_buff has no member 'lenn'; did you mean 'len'?");

    EXPECT_EQ(btf->find_type("__be32").name(), "__be32");
    EXPECT_EQ(btf->find_type("unsigned long").size(), 8u);
    EXPECT_EQ(btf->find_type("struct file **").name(), "struct file **");
    EXPECT_EQ(error_of([&] { btf->find_type("struct ksurf_no_such"); }),
              "unknown type 'struct ksurf_no_such'");
    EXPECT_EQ(error_of([&] { btf->find_function("ksurf_no_such_function"); }),
              "function 'ksurf_no_such_function' not found in BTF");

    // sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next, ...).
    ksurf::Function sw = btf->find_tracepoint_proto("sched_switch");
    ASSERT_GE(sw.params.size(), 3u);
    EXPECT_EQ(sw.params[0].type.strip().kind(), Kind::Bool);
    EXPECT_EQ(sw.params[1].type.name(), "struct task_struct *");
    EXPECT_EQ(sw.params[2].type.name(), "struct task_struct *");
}

}  // namespace
