// The filter compiler's structure: the tree it reads from the postfix program, and what it
// leaves to the interpreter. What the code it emits decides is checked against the
// interpreter in the kernel (tests/integration/filter_codegen_itest.cpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
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
    EXPECT_TRUE(f.code.empty());
    EXPECT_NE(f.why_not.find("search"), std::string::npos) << f.why_not;
}

TEST(FilterCompile, PcapStaysInterpreted) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.ncbpf = 1;
    EXPECT_NE(compile_filter(c, BpfAttach::Kprobe, kMaps).why_not.find("pcap"), std::string::npos);
}

TEST(FilterCompile, NothingToDoIsNoPrefix) {
    const CompiledFilter f = compile_filter(with_ops({}), BpfAttach::Tracepoint, kMaps);
    EXPECT_TRUE(f.code.empty());
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
// lookup and its store, after the comparison, on the path that rejects; still no
// callee-saved register.
TEST(FilterCompile, RecordFieldIsOneLoadFromTheContext) {
    for (const std::uint8_t count : {0, 1}) {
        SCOPED_TRACE(fmt::format("count_filtered {}", count));
        ksurf_config c = record_field(8, 16);
        c.ops[0].imm = 39;
        c.count_filtered = count;
        const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
        ASSERT_FALSE(f.code.empty()) << f.why_not;
        int loads = 0, calls = 0, stores = 0;
        std::size_t load_at = 0, call_at = 0;
        for (std::size_t k = 0; k < f.code.size(); k++) {
            const bpf_insn& i = f.code[k];
            if (i.code == (BPF_LDX | BPF_MEM | BPF_DW) && i.off == 16) loads++, load_at = k;
            if (is_helper_call(i)) calls++, call_at = k;
            if (i.code == (BPF_STX | BPF_MEM | BPF_DW) && i.dst_reg == BPF_REG_0 && i.off == 8 * KSURF_STAT_FILTERED) stores++;
        }
        EXPECT_EQ(loads, 1);
        EXPECT_EQ(calls, count);
        EXPECT_EQ(stores, count);
        if (count) {
            EXPECT_GT(call_at, load_at) << "the counters are looked up once the hit is rejected";
        }
        EXPECT_FALSE(uses_callee_saved(f.code));
        calls_what_follows(f.code);
    }
}

// ksurf's own hits are left out after the filter: the jump that rejects comes before the
// self gate's helper call, so a rejected hit makes none.
TEST(FilterCompile, SelfGateOnlyOnTheAcceptingPath) {
    ksurf_config c = record_field(4, 8);
    c.self_tgid = 7;
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.code.empty()) << f.why_not;
    std::optional<std::size_t> reject, self;
    for (std::size_t k = 0; k < f.code.size(); k++) {
        const bpf_insn& i = f.code[k];
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
    ASSERT_FALSE(f.code.empty()) << f.why_not;
    for (const bpf_insn& i : f.code) EXPECT_FALSE(is_helper_call(i)) << "nothing left to read or count";
}

// The thread id needs a helper call: the context waits in the stack, the ids and the value
// in caller-saved registers, as no other call follows before the verdict. A string read
// after the value is held would clobber it: then the prefix keeps them in r6-r8.
TEST(FilterCompile, ValuesStayOutOfCalleeSavedRegistersWhereNoCallFollows) {
    ksurf_config c = with_ops({KSURF_OP_EQ});
    c.self_tgid = 7;
    CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kMaps);
    ASSERT_FALSE(f.code.empty()) << f.why_not;
    EXPECT_FALSE(uses_callee_saved(f.code));
    calls_what_follows(f.code);

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
    ASSERT_FALSE(f.code.empty()) << f.why_not;
    EXPECT_TRUE(uses_callee_saved(f.code));
    calls_what_follows(f.code);
}

// `--count comm` as the host encodes it: the 16 bytes of comm are the key.
ksurf_config count_by_comm() {
    ksurf_config c{};
    c.nfields = 1;
    c.fields[0].base = KSURF_BASE_COMM;
    c.fields[0].access = KSURF_ACCESS_STRING;
    c.fields[0].size = KSURF_COMM_LEN;
    c.fields[0].packet_step = KSURF_NO_PACKET;
    c.self_tgid = 7;
    c.agg.on = 1;
    c.agg.key_len = KSURF_COMM_LEN;
    c.agg.value_at = c.agg.stack_at = KSURF_AGG_NO_VALUE;
    return c;
}

const FilterMaps kAggMaps{3, 4, 5, 6, 7};

int helper_calls(const std::vector<bpf_insn>& code, int helper) {
    return static_cast<int>(std::count_if(code.begin(), code.end(), [&](const bpf_insn& i) { return is_helper_call(i) && i.imm == helper; }));
}

// An aggregation whose key the compiler fetches compiles whole: comm straight into the key
// in the stack (its two words zeroed first: older kernels do not pad it), one lookup for a
// key that is there, and neither a generic program to call nor a callee-saved register to
// save.
TEST(FilterCompile, CountByCommCompilesWhole) {
    const CompiledFilter f = compile_filter(count_by_comm(), BpfAttach::Tracepoint, kAggMaps);
    ASSERT_TRUE(f.whole) << f.why_not << f.aggregation_why_not;
    EXPECT_FALSE(uses_callee_saved(f.code));
    EXPECT_EQ(helper_calls(f.code, BPF_FUNC_get_current_comm), 1);
    EXPECT_EQ(helper_calls(f.code, BPF_FUNC_map_update_elem), 1) << "a new key's insert";
    for (const bpf_insn& i : f.code) EXPECT_FALSE(i.code == (BPF_JMP | BPF_CALL) && i.src_reg == BPF_PSEUDO_CALL);
    EXPECT_EQ(std::count_if(f.code.begin(), f.code.end(), [](const bpf_insn& i) { return i.code == (BPF_ST | BPF_MEM | BPF_DW); }), 2)
        << "comm's words, once";
    // The hit that finds its key: the self gate, comm, the lookup, and the count's three.
    std::size_t to_lookup = 0;
    while (to_lookup < f.code.size() && !(is_helper_call(f.code[to_lookup]) && f.code[to_lookup].imm == BPF_FUNC_map_lookup_elem)) to_lookup++;
    EXPECT_LE(to_lookup, 16u);
}

// A comm filter in front: the key takes the filter's copy of comm, read once, and the
// context, which nothing reads after that read, is not spilled to the stack.
TEST(FilterCompile, CommKeyReusesTheFiltersComm) {
    ksurf_config c = count_by_comm();
    c.nfilter = 1;
    c.nops = 1;
    c.ops[0].code = KSURF_OP_STR_EQ;
    c.patterns[0].len = 1;
    c.patterns[0].words[0] = 'x';
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kAggMaps);
    ASSERT_TRUE(f.whole) << f.why_not << f.aggregation_why_not;
    EXPECT_EQ(helper_calls(f.code, BPF_FUNC_get_current_comm), 1);
    for (const bpf_insn& i : f.code) EXPECT_FALSE(i.code == (BPF_STX | BPF_MEM | BPF_DW) && i.src_reg == BPF_REG_1 && i.dst_reg == BPF_REG_10 && i.off == -8);
}

// Where the kernel lets the programs reach the current task through BTF, a comm filter
// loads the words of comm its pattern reaches from the task: no copy of the name on the
// path that rejects. The key, which must hold no bytes past the NUL, is still
// bpf_get_current_comm()'s, after the verdict.
TEST(FilterCompile, CommFilterLoadsTheTasksWords) {
    for (const std::string pattern : {"x", "1234567", "12345678", "123456789abcdef"}) {
        SCOPED_TRACE(pattern);
        ksurf_config c = count_by_comm();
        c.layout.task_comm = 0x7a8;
        c.nfilter = 1;
        c.nops = 1;
        c.ops[0].code = KSURF_OP_STR_EQ;
        c.patterns[0].len = static_cast<std::uint32_t>(pattern.size());
        std::memcpy(c.patterns[0].words, pattern.data(), pattern.size());
        const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kAggMaps);
        ASSERT_TRUE(f.whole) << f.why_not << f.aggregation_why_not;
        EXPECT_EQ(helper_calls(f.code, BPF_FUNC_get_current_task_btf), 1);
        // The loads from the task, up to the next call.
        std::vector<std::int16_t> loads;
        std::optional<std::size_t> task, comm;
        for (std::size_t k = 0; k < f.code.size(); k++) {
            const bpf_insn& i = f.code[k];
            if (is_helper_call(i) && i.imm == BPF_FUNC_get_current_task_btf) task = k;
            if (is_helper_call(i) && i.imm == BPF_FUNC_get_current_comm) comm = k;
            if (task && !comm && i.code == (BPF_LDX | BPF_MEM | BPF_DW) && i.src_reg == BPF_REG_0) loads.push_back(i.off);
        }
        // The pattern and its NUL: one word up to 7 bytes, two from 8.
        const std::vector<std::int16_t> words = pattern.size() < 8 ? std::vector<std::int16_t>{0x7a8} : std::vector<std::int16_t>{0x7a8, 0x7b0};
        EXPECT_EQ(loads, words);
        EXPECT_EQ(helper_calls(f.code, BPF_FUNC_get_current_comm), 1) << "the key's";
        ASSERT_TRUE(task && comm);
        EXPECT_LT(*task, *comm) << "the key is read after the filter decides";
    }
}

// Without the aggregation's maps (a program that is not ksurf_run's), the same
// configuration compiles as a prefix of the generic program, which aggregates.
TEST(FilterCompile, AggregationNeedsItsMaps) {
    const CompiledFilter f = compile_filter(count_by_comm(), BpfAttach::Tracepoint, kMaps);
    EXPECT_FALSE(f.whole);
    ASSERT_FALSE(f.code.empty()) << f.why_not;
    calls_what_follows(f.code);
}

// The thread's ids, which the self gate reads too, are read once and kept in the stack for
// the key fields pid and tid; strings in the key have their words zeroed first.
TEST(FilterCompile, KeyOfIdsAndAStringReadsTheIdsOnce) {
    ksurf_config c = count_by_comm();
    c.nfields = 3;
    for (std::uint8_t i : {0, 1}) {
        c.fields[i] = {};
        c.fields[i].base = i ? KSURF_BASE_TID : KSURF_BASE_PID;
        c.fields[i].access = KSURF_ACCESS_VALUE;
        c.fields[i].size = 4;
        c.fields[i].lshift = c.fields[i].rshift = 32;
        c.fields[i].packet_step = KSURF_NO_PACKET;
        c.fields[i].out = static_cast<std::uint16_t>(8 * i);
    }
    c.fields[2] = {};
    c.fields[2].base = KSURF_BASE_CTX_U64;
    c.fields[2].access = KSURF_ACCESS_STRING;
    c.fields[2].size = 20;
    c.fields[2].packet_step = KSURF_NO_PACKET;
    c.fields[2].out = 16;
    c.agg.key_len = 40;
    const CompiledFilter f = compile_filter(c, BpfAttach::RawTp, kAggMaps);
    ASSERT_TRUE(f.whole) << f.why_not << f.aggregation_why_not;
    EXPECT_EQ(helper_calls(f.code, BPF_FUNC_get_current_pid_tgid), 1);
    EXPECT_EQ(std::count_if(f.code.begin(), f.code.end(), [](const bpf_insn& i) { return i.code == (BPF_ST | BPF_MEM | BPF_DW); }), 3)
        << "the string's three words";
}

// What the compiler cannot fetch leaves the aggregation to the generic program, with the
// reason; the filter in front still compiles.
TEST(FilterCompile, UnfetchableKeyLeavesTheAggregationInterpreted) {
    ksurf_config c = count_by_comm();
    c.fields[0].base = 99;
    const CompiledFilter f = compile_filter(c, BpfAttach::Tracepoint, kAggMaps);
    EXPECT_FALSE(f.whole);
    EXPECT_EQ(f.aggregation_why_not, "a field based at 99");
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

// Behind the prefix an aggregation fetches its key and value and nothing else: a field only
// the filter read is not fetched again, one the key or the value shares is, and the fields
// kept keep their order.
TEST(FilterCompile, AggregationBehindThePrefixFetchesOnlyKeyAndValue) {
    ksurf_config c{};
    c.agg.on = 1;
    c.agg.key_len = 16;
    c.agg.value_at = 24;
    c.nfields = 5;
    c.nfilter = 3;
    const std::uint16_t outs[] = {16, 0, 24, 8, 40};  // filter only, filter and key, filter and value, key, value
    for (std::uint16_t i = 0; i < c.nfields; i++) {
        c.fields[i].base = KSURF_BASE_CTX_U64;
        c.fields[i].base_off = i;
        c.fields[i].size = 4;
        c.fields[i].out = outs[i];
    }
    const ksurf_config r = interpreter_config(c);
    ASSERT_EQ(r.nfields, 4);
    EXPECT_EQ(r.nfilter, 2);
    for (int i = 0; i < 4; i++) EXPECT_EQ(r.fields[i].base_off, i + 1) << i;
    c.agg.value_at = KSURF_AGG_NO_VALUE;
    const ksurf_config k = interpreter_config(c);
    EXPECT_EQ(k.nfields, 3) << "without a value, the field at 24 is the filter's alone";
    EXPECT_EQ(k.nfilter, 1);
}

}  // namespace
}  // namespace ksurf
