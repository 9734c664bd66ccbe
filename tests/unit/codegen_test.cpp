// The filter compiler's structure: the tree it reads from the postfix program, and what it
// leaves to the interpreter. What the code it emits decides is checked against the
// interpreter in the kernel (tests/integration/filter_codegen_itest.cpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "error_of.h"

using ksurf::test::error_of;
#include "ksurf/codegen.h"

namespace ksurf {
namespace {

ksurf_config with_ops(std::initializer_list<std::uint8_t> codes) {
    ksurf_config c{};
    c.nfields = c.nfilter = 1;
    c.fields[0].base = KSURF_BASE_TID;
    c.fields[0].access = KSURF_ACCESS_VALUE;
    c.fields[0].size = 4;
    c.fields[0].packet_step = KSURF_NO_PACKET;
    for (std::uint8_t code : codes) c.ops[c.nops++].code = code;
    return c;
}

// The tree as text: compare nodes by their op index.
std::string show(const FilterTree& t) {
    switch (t.kind) {
    case FilterTree::Kind::Compare: return std::to_string(t.op);
    case FilterTree::Kind::Not: return "!" + show(t.operands[0]);
    case FilterTree::Kind::And: return "(" + show(t.operands[0]) + "&" + show(t.operands[1]) + ")";
    case FilterTree::Kind::Or: return "(" + show(t.operands[0]) + "|" + show(t.operands[1]) + ")";
    }
    return "?";
}

TEST(FilterTree, PostfixBecomesATreeInOperandOrder) {
    const auto t = filter_tree(with_ops({KSURF_OP_EQ, KSURF_OP_LT, KSURF_OP_NOT, KSURF_OP_AND, KSURF_OP_GT, KSURF_OP_OR}));
    ASSERT_TRUE(t);
    EXPECT_EQ(show(*t), "((0&!1)|4)");
}

TEST(FilterTree, EmptyProgramHasNoTree) { EXPECT_FALSE(filter_tree(with_ops({}))); }

TEST(FilterTree, MalformedProgramsAreRefused) {
    EXPECT_NE(error_of([] { filter_tree(with_ops({KSURF_OP_AND})); }).find("too few operands"), std::string::npos);
    EXPECT_NE(error_of([] { filter_tree(with_ops({KSURF_OP_EQ, KSURF_OP_EQ})); }).find("leaves 2 values"), std::string::npos);
    EXPECT_NE(error_of([] { filter_tree(with_ops({99})); }).find("unknown code"), std::string::npos);
}

const FilterMaps kMaps{3, 4};

TEST(FilterCompile, StringSearchesStayInterpreted) {
    ksurf_config c = with_ops({KSURF_OP_STR_CONTAINS});
    c.fields[0].base = KSURF_BASE_COMM;
    c.fields[0].access = KSURF_ACCESS_STRING;
    c.fields[0].size = KSURF_COMM_LEN;
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    EXPECT_TRUE(f.prefix.empty());
    EXPECT_NE(f.why_not.find("search"), std::string::npos) << f.why_not;
}

TEST(FilterCompile, PcapStaysInterpreted) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.ncbpf = 1;
    EXPECT_NE(compile_filter(c, BpfAttach::Kprobe, kMaps).why_not.find("pcap"), std::string::npos);
}

TEST(FilterCompile, NothingToDoIsNoPrefix) {
    const CompiledFilter f = compile_filter(with_ops({}), BpfAttach::Tracepoint, kMaps);
    EXPECT_TRUE(f.prefix.empty());
    EXPECT_TRUE(f.why_not.empty());
}

// A filter comparing the record's SIZE bytes at OFFSET for equality.
ksurf_config record_field(std::uint16_t size, std::int32_t offset) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.fields[0] = {};
    c.fields[0].base = KSURF_BASE_CTX;
    c.fields[0].access = KSURF_ACCESS_LOAD;
    c.fields[0].size = size;
    c.fields[0].offset = offset;
    c.fields[0].packet_step = KSURF_NO_PACKET;
    return c;
}

bool is_helper_call(const bpf_insn& i) { return i.code == (BPF_JMP | BPF_CALL) && i.src_reg != BPF_PSEUDO_CALL; }

// Whether the prefix touches r6-r9, which the JIT's prologue then saves and its epilogue
// restores on every hit.
bool uses_callee_saved(const std::vector<bpf_insn>& prefix) {
    for (const bpf_insn& i : prefix)
        if ((i.dst_reg >= BPF_REG_6 && i.dst_reg <= BPF_REG_9) || (i.src_reg >= BPF_REG_6 && i.src_reg <= BPF_REG_9))
            return true;
    return false;
}

// The prefix ends by calling the generic program, which follows it, as a subprogram.
void calls_what_follows(const std::vector<bpf_insn>& prefix) {
    std::size_t calls = 0;
    for (std::size_t k = 0; k < prefix.size(); k++) {
        if (prefix[k].code != (BPF_JMP | BPF_CALL) || prefix[k].src_reg != BPF_PSEUDO_CALL) continue;
        calls++;
        EXPECT_EQ(k + 1 + static_cast<std::size_t>(prefix[k].imm), prefix.size());
        ASSERT_LT(k + 1, prefix.size());
        EXPECT_EQ(prefix[k + 1].code, BPF_JMP | BPF_EXIT) << "the generic program's verdict is the hit's";
    }
    EXPECT_EQ(calls, 1u);
}

// A record field compared once: one load at its offset in the instruction, and no helper
// call or callee-saved register, unless the run counts rejections: then the counter's
// lookup, kept in r9, and its store.
TEST(FilterCompile, RecordFieldIsOneLoadFromTheContext) {
    for (const std::uint8_t count : {0, 1}) {
        SCOPED_TRACE(fmt::format("count_filtered {}", count));
        ksurf_config c = record_field(8, 16);
        c.ops[0].imm = 39;
        c.count_filtered = count;
        const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
        ASSERT_FALSE(f.prefix.empty()) << f.why_not;
        int loads = 0, calls = 0, stores = 0;
        for (const bpf_insn& i : f.prefix) {
            if (i.code == (BPF_LDX | BPF_MEM | BPF_DW) && i.off == 16) loads++;
            if (is_helper_call(i)) calls++;
            if (i.code == (BPF_STX | BPF_MEM | BPF_DW) && i.dst_reg == BPF_REG_9) stores++;
        }
        EXPECT_EQ(loads, 1);
        EXPECT_EQ(calls, count);
        EXPECT_EQ(stores, count);
        EXPECT_EQ(uses_callee_saved(f.prefix), count == 1);
        calls_what_follows(f.prefix);
    }
}

// ksurf's own hits are left out after the filter: the jump that rejects comes before the
// self gate's helper call, so a rejected hit makes none.
TEST(FilterCompile, SelfGateOnlyOnTheAcceptingPath) {
    ksurf_config c = record_field(4, 8);
    c.self_tgid = 7;
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.prefix.empty()) << f.why_not;
    std::optional<std::size_t> reject, self;
    for (std::size_t k = 0; k < f.prefix.size(); k++) {
        const bpf_insn& i = f.prefix[k];
        const bool jump = BPF_CLASS(i.code) == BPF_JMP || BPF_CLASS(i.code) == BPF_JMP32;
        if (!reject && jump && BPF_OP(i.code) == BPF_JNE) reject = k;
        if (i.code == (BPF_JMP | BPF_CALL) && i.imm == BPF_FUNC_get_current_pid_tgid) self = k;
        if (i.code == (BPF_JMP | BPF_JEQ | BPF_K) && i.imm == 7) {
            EXPECT_TRUE(self) << "the gate compares the helper's tgid";
        }
    }
    ASSERT_TRUE(reject && self);
    EXPECT_LT(*reject, *self);
}

// A comparison the operands decide (a comm is never 16 bytes long) leaves no dead code,
// which the verifier would refuse; a filter that then never passes stays interpreted.
TEST(FilterCompile, DecidedComparisonsLeaveNoDeadCode) {
    ksurf_config c = with_ops({KSURF_OP_STR_EQ});
    c.fields[0].base = KSURF_BASE_COMM;
    c.fields[0].access = KSURF_ACCESS_STRING;
    c.fields[0].size = KSURF_COMM_LEN;
    c.patterns[0].len = KSURF_COMM_LEN;
    EXPECT_EQ(compile_filter(c, BpfAttach::Tracepoint, kMaps).why_not, "a filter that no hit passes");
    c.ops[0].code = KSURF_OP_STR_PREFIX;
    c.ops[1].code = KSURF_OP_NOT;
    c.nops = 2;
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.prefix.empty()) << f.why_not;
    for (const bpf_insn& i : f.prefix) EXPECT_FALSE(is_helper_call(i)) << "nothing left to read or count";
}

// The thread id needs a helper call: the context waits in the stack, the ids and the value
// in caller-saved registers, as no other call follows before the verdict. A string read
// after the value is held would clobber it: then the prefix keeps them in r6-r8.
TEST(FilterCompile, ValuesStayOutOfCalleeSavedRegistersWhereNoCallFollows) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.self_tgid = 7;
    CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.prefix.empty()) << f.why_not;
    EXPECT_FALSE(uses_callee_saved(f.prefix));
    calls_what_follows(f.prefix);

    c.nfields = c.nfilter = 2;
    c.fields[1].base = KSURF_BASE_COMM;
    c.fields[1].access = KSURF_ACCESS_STRING;
    c.fields[1].size = KSURF_COMM_LEN;
    c.fields[1].packet_step = KSURF_NO_PACKET;
    c.fields[1].out = 8;
    c.ops[1] = {};
    c.ops[1].code = KSURF_OP_STR_EQ;
    c.ops[1].at = 8;
    c.ops[1].field = 1;
    c.patterns[0].len = 1;
    c.patterns[0].words[0] = 'x';
    c.ops[2].code = KSURF_OP_AND;
    c.nops = 3;
    f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.prefix.empty()) << f.why_not;
    EXPECT_TRUE(uses_callee_saved(f.prefix));
    calls_what_follows(f.prefix);
}

TEST(FilterCompile, GatesOffBehindThePrefix) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.self_tgid = 7;
    c.by_pid = 1;
    c.cgroup_id = 9;
    const ksurf_config r = interpreter_config(c);
    EXPECT_EQ(r.self_tgid, 0u);
    EXPECT_EQ(r.by_pid, 0);
    EXPECT_EQ(r.cgroup_id, 0u);
    EXPECT_EQ(r.nops, 0);
    EXPECT_EQ(r.nfilter, 1) << "the filter's fields are still the event's";
}

}  // namespace
}  // namespace ksurf
