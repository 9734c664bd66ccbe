#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>

#include "ksurf/codegen.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

// Why a probe stays on the interpreter: thrown inside the compiler, caught at its door.
struct Unsupported {
    std::string why;
};

[[noreturn]] void unsupported(std::string why) { throw Unsupported{std::move(why)}; }

// Where the prefix keeps the context (r1 at entry) while it decides, tried in this order:
// the x86 JIT saves in its prologue the callee-saved registers a function uses, so a
// prefix that needs none of r6-r9 pays for no push and pop on the path that rejects.
//   InR1:    left in r1, where nothing before the verdict calls a helper;
//   Spilled: in the stack, reloaded where read, with the values in r0, r4 and r5, where no
//            helper is called while one of them is held;
//   InR6:    in r6, the values in r7 and r8 and the stack.
enum class Context : std::uint8_t { InR1, Spilled, InR6 };

// Thrown by a compile whose context placement cannot hold the code: the next one is tried.
struct NeedsOtherContext {};

bool is_number(std::uint8_t code) { return code <= KSURF_OP_SGE; }
bool is_subprogram_call(const bpf_insn& i) { return i.code == (BPF_JMP | BPF_CALL) && i.src_reg == BPF_PSEUDO_CALL; }
bool is_string(std::uint8_t code) { return code >= KSURF_OP_STR_EQ && code <= KSURF_OP_STR_CONTAINS; }

// ---- instructions ----

constexpr std::uint8_t R0 = BPF_REG_0, R1 = BPF_REG_1, R2 = BPF_REG_2, R3 = BPF_REG_3, R4 = BPF_REG_4, R5 = BPF_REG_5,
                       R6 = BPF_REG_6, R7 = BPF_REG_7, R8 = BPF_REG_8, FP = BPF_REG_10;

bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}

std::uint8_t size_code(unsigned bytes) {
    switch (bytes) {
    case 1: return BPF_B;
    case 2: return BPF_H;
    case 4: return BPF_W;
    default: return BPF_DW;
    }
}

bool fits_imm(std::uint64_t v) {
    const auto s = static_cast<std::int64_t>(v);
    return s >= std::numeric_limits<std::int32_t>::min() && s <= std::numeric_limits<std::int32_t>::max();
}

std::uint8_t negate(std::uint8_t jmp) {
    switch (jmp) {
    case BPF_JEQ: return BPF_JNE;
    case BPF_JNE: return BPF_JEQ;
    case BPF_JGT: return BPF_JLE;
    case BPF_JLE: return BPF_JGT;
    case BPF_JGE: return BPF_JLT;
    case BPF_JLT: return BPF_JGE;
    case BPF_JSGT: return BPF_JSLE;
    case BPF_JSLE: return BPF_JSGT;
    case BPF_JSGE: return BPF_JSLT;
    default: return BPF_JSGE;  // BPF_JSLT
    }
}

// The jump that is taken when comparison CODE holds (value against imm).
std::uint8_t jump_of(std::uint8_t code) {
    static constexpr std::uint8_t jumps[] = {BPF_JEQ, BPF_JNE, BPF_JLT, BPF_JLE, BPF_JGT, BPF_JGE, BPF_JSLT, BPF_JSLE, BPF_JSGT, BPF_JSGE};
    return jumps[code];
}

// One test of a comparison: after PREP, REG against VALUE with JMP.
struct Check {
    std::vector<bpf_insn> prep;
    std::uint8_t jmp;
    std::uint8_t reg;
    std::uint64_t value;
    std::uint8_t cls = BPF_JMP;  // BPF_JMP32: the low halves compared
};

// A comparison as a conjunction of checks (a string's length, then its words); constant
// when the operands decide it without reading anything (an empty conjunction holds).
struct Leaf {
    bool constant = false;
    bool value = true;
    std::vector<Check> checks;
};

// Where a filter field's value is kept for the comparisons. Every field a comparison reads
// is fetched once, before the first comparison, as the interpreter does: with && and ||
// as jumps, a field fetched on one path would be unset on another. The numbers stay in
// registers (Compiler::plan_fields()), with Context::InR6 the ones past the second in the
// stack.
struct Place {
    bool fetched = false;
    std::uint8_t reg = 0;     // a number's register (plan_fields()); 0: in the stack at `slot`
    std::int16_t slot = 0;    // a number's u64, or a string's buffer
    std::int16_t ret = 0;     // a string: the slot of its read's return value
    std::uint16_t read = 0;   // a string: bytes read (its comparisons' need, within the capacity)
    bool low32 = false;       // a 32-bit number whose comparisons all look at its low half
};

// Whether field F is aggregation G's: in its key (the payload's first key_len bytes), or
// its value.
bool in_key(const ksurf_agg_cfg& g, const ksurf_field_cfg& f) { return f.out < g.key_len; }
bool aggregated(const ksurf_agg_cfg& g, const ksurf_field_cfg& f) { return in_key(g, f) || f.out == g.value_at; }

// The stack the prefix may use. The generic program is a subprogram the prefix calls, so
// its frames add to the prefix's within the verifier's 512 bytes: with the filter off,
// its deepest chain (ksurf_probe, ksurf_fetch) takes 88 (the verifier's stack depth
// statistics, 6.18). A whole program has the 512 to itself.
constexpr int kStack = 256;
constexpr int kWholeStack = 512;

class Compiler {
public:
    // WHOLE: the aggregation compiled too, in place of the generic program.
    Compiler(const ksurf_config& cfg, BpfAttach a, const FilterMaps& maps, Context where, bool whole)
        : c_(cfg), a_(a), maps_(maps), where_(where), whole_(whole) {}

    std::vector<bpf_insn> run() {
        if (c_.ncbpf) unsupported("--pcap's classic BPF program runs in the interpreter");
        if (c_.nfilter > KSURF_MAX_FIELDS || c_.nops > KSURF_MAX_OPS) unsupported("a malformed configuration");
        std::optional<FilterTree> tree;
        try {
            tree = filter_tree(c_);
        } catch (const Error& e) {
            unsupported(e.what());
        }
        if (!tree && !c_.self_tgid && !c_.by_pid && !c_.cgroup_id && !whole_) return {};
        places_.resize(c_.nfilter);
        if (tree) plan_fields();

        const int miss = label(), reject = label(), accept = label(), generic = label();
        if (where_ == Context::InR6) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R6, R1, 0, 0));
        // Spilled only where something reads it after a helper call: the generic program
        // takes it in r1.
        if (where_ == Context::Spilled && (filter_reads_context() || !whole_ || aggregation_reads_context())) {
            ctx_slot_ = alloc(8);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R1, ctx_slot_, 0));
        }
        gates(miss);
        if (tree) {
            for (std::size_t i = 0; i < places_.size(); i++) fetch(i);
            std::vector<Leaf> leaves;
            for (std::size_t i = 0; i < c_.nops; i++) leaves.push_back(is_number(c_.ops[i].code) || is_string(c_.ops[i].code) ? leaf(i) : Leaf{});
            leaves_ = &leaves;
            branch(*tree, false, reject);
            leaves_ = nullptr;
        }
        deciding_ = false;
        // The paths that accept meet at a jump's target, where the verifier prunes: what
        // the filter left differently in registers and stack is dead there (the generic
        // program sees only r1), so its ~20k instructions are verified once, not once per
        // accepting path. The jump, a no-op, is gone from the program the kernel runs.
        jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), accept);
        place(accept);
        if (where_ == Context::InR1 && (whole_ ? aggregation_reads_context() : c_.self_tgid != 0)) {
            // A helper call comes first (the self gate's, the aggregation's): the context
            // moves to the stack.
            ctx_slot_ = alloc(8);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R1, ctx_slot_, 0));
        }
        if (whole_) save_ids();
        self_gate(miss);
        if (whole_) {
            aggregate(miss);
        } else {
            if (const std::uint8_t c = context(); c != R1) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R1, c, 0, 0));
            // The generic program (which uses all of r6-r9) as a subprogram: the prefix's
            // prologue saves only the registers the prefix uses.
            jump(insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 0), generic);
            emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
        }

        place(reject);
        if (c_.count_filtered) {
            // The counters (the scratch's) looked up here, on the path that rejects, where
            // what the filter held is dead: kept across the filter, their pointer would
            // take a callee-saved register, which every hit's prologue saves.
            const std::int16_t key = alloc(8);
            emit(insn(BPF_ST | BPF_MEM | BPF_W, FP, 0, key, 0));
            lookup(maps_.scratch, key);
            jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, 0), miss);
            count(R0, KSURF_STAT_FILTERED);
        }
        place(miss);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0));
        emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
        if (!whole_) place(generic);
        resolve(accept);
        return std::move(code_);
    }

private:
    // ---- emission ----

    void emit(const bpf_insn& i) {
        const bool helper = i.code == (BPF_JMP | BPF_CALL) && !is_subprogram_call(i);
        if (helper && deciding_ && (where_ == Context::InR1 || (where_ == Context::Spilled && held_)))
            throw NeedsOtherContext{};
        code_.push_back(i);
    }
    // The register holding the context, reloaded into r1 where it was spilled.
    std::uint8_t context() {
        if (where_ == Context::InR6) return R6;
        if (ctx_slot_) emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, ctx_slot_, 0));
        return R1;
    }
    // A register a value is kept in until the verdict; no helper call may follow, outside
    // Context::InR6.
    std::uint8_t hold(std::uint8_t reg) {
        if (reg != R6 && reg != R7 && reg != R8) held_ = true;
        return reg;
    }
    void emit(const std::vector<bpf_insn>& is) { code_.insert(code_.end(), is.begin(), is.end()); }
    int label() {
        labels_.push_back(-1);
        return static_cast<int>(labels_.size() - 1);
    }
    void place(int l) { labels_[l] = static_cast<int>(code_.size()); }
    void jump(const bpf_insn& j, int l) {
        fixups_.emplace_back(code_.size(), l);
        emit(j);
    }
    // Sets the jumps' offsets and the call's, dropping the code no path reaches (a comparison
    // the operands decide leaves some): the verifier refuses a program with unreachable
    // instructions. Refuses a filter that never reaches ACCEPT.
    void resolve(int accept) {
        const std::size_t n = code_.size();
        std::vector<int> target(n, -1);
        for (auto [at, l] : fixups_) target[at] = labels_[l];
        std::vector<bool> reached(n + 1);
        std::vector<std::size_t> todo{0};
        while (!todo.empty()) {
            const std::size_t i = todo.back();
            todo.pop_back();
            if (reached[i]) continue;
            reached[i] = true;
            if (i == n) continue;
            const bpf_insn& in = code_[i];
            const std::uint8_t op = BPF_OP(in.code);
            const bool jmp = (BPF_CLASS(in.code) == BPF_JMP || BPF_CLASS(in.code) == BPF_JMP32) && op != BPF_CALL;
            if (jmp && op == BPF_EXIT) continue;
            if (jmp) todo.push_back(static_cast<std::size_t>(target[i]));
            if (in.code == (BPF_LD | BPF_IMM | BPF_DW)) {
                reached[i + 1] = true;
                todo.push_back(i + 2);
            } else if (!jmp || op != BPF_JA) {
                todo.push_back(i + 1);
            }
        }
        if (!reached[static_cast<std::size_t>(labels_[accept])]) unsupported("a filter that no hit passes");
        std::vector<long> at_new(n + 1);
        std::vector<bpf_insn> kept;
        for (std::size_t i = 0; i <= n; i++) {
            at_new[i] = static_cast<long>(kept.size());
            if (i < n && reached[i]) kept.push_back(code_[i]);
        }
        for (std::size_t i = 0; i < n; i++) {
            if (!reached[i] || target[i] < 0) continue;
            const long off = at_new[target[i]] - at_new[i] - 1;
            if (off > std::numeric_limits<std::int16_t>::max()) unsupported("a filter too long to jump over");
            if (is_subprogram_call(code_[i]))
                kept[at_new[i]].imm = static_cast<std::int32_t>(off);
            else
                kept[at_new[i]].off = static_cast<std::int16_t>(off);
        }
        code_ = std::move(kept);
    }
    static void imm64(std::vector<bpf_insn>& out, std::uint8_t reg, std::uint64_t v, std::uint8_t src = 0) {
        out.push_back(insn(BPF_LD | BPF_IMM | BPF_DW, reg, src, 0, static_cast<std::int32_t>(v)));
        out.push_back(insn(0, 0, 0, 0, static_cast<std::int32_t>(v >> 32)));
    }
    void imm64(std::uint8_t reg, std::uint64_t v) { imm64(code_, reg, v); }
    void map_fd(std::uint8_t reg, int fd) {
        if (fd < 0) unsupported("the template's maps are unknown");
        imm64(code_, reg, static_cast<std::uint32_t>(fd), BPF_PSEUDO_MAP_FD);
    }
    // map_lookup_elem(FD, r10 + KEY) into r0.
    void lookup(int fd, std::int16_t key) {
        map_fd(R1, fd);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R2, FP, 0, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R2, 0, 0, key));
        emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
    }
    // One more in counts[STAT] of the scratch at BASE: counts[] leads struct ksurf_scratch,
    // so the offset needs no knowledge of the rest.
    void count(std::uint8_t base, int stat) {
        const auto at = static_cast<std::int16_t>(8 * stat);
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, base, at, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R1, 0, 0, 1));
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, base, R1, at, 0));
    }
    std::int16_t alloc(int bytes) {
        used_ += (bytes + 7) & ~7;
        const int cap = whole_ ? kWholeStack : kStack;
        if (used_ > cap) unsupported(fmt::format("the {} values need more than {} bytes of stack", whole_ ? "filter's and key's" : "filter's", cap));
        return static_cast<std::int16_t>(-used_);
    }
    // HELPER(r10 + DST, SIZE, SRC + OFF), r0 its return; SRC is clobbered unless r6.
    void read(int helper, std::int16_t dst, unsigned size, std::uint8_t src, std::int32_t off) {
        if (src != R3) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R3, src, 0, 0));
        if (off) emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R3, 0, 0, off));
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R1, FP, 0, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R1, 0, 0, dst));
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R2, 0, 0, static_cast<std::int32_t>(size)));
        emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper));
    }
    // The SIZE-byte number at SRC + OFF, zero-extended into r3; 0 when unreadable (the
    // helper clears its destination on a fault).
    void read_number(int helper, unsigned size, std::uint8_t src, std::int32_t off) {
        if (size < 8) emit(insn(BPF_ST | BPF_MEM | BPF_DW, FP, 0, tmp(), 0));
        read(helper, tmp(), size, src, off);
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, FP, tmp(), 0));
    }
    std::int16_t tmp() {
        if (!tmp_) tmp_ = alloc(8);
        return tmp_;
    }

    // ---- the context ----

    // Whether the context allows a SIZE-byte load at OFF, written into the instruction:
    // the ranges each program type's is_valid_access accepts.
    bool direct(std::int64_t off, unsigned size) const {
        if ((size != 1 && size != 2 && size != 4 && size != 8) || off < 0 || off % size) return false;
        switch (a_) {
        case BpfAttach::Tracepoint:
            // The first 8 bytes of a perf tracepoint's record hold its pt_regs pointer.
            return off >= 8 && off + size <= 2048;
        case BpfAttach::RawTp: return off + size <= 8 * 12;
        case BpfAttach::Fentry:
        case BpfAttach::Fexit:
        case BpfAttach::TpBtf: return size == 8 && off + size <= 8 * 12;
        default:
#if defined(__x86_64__)
            return off + size <= 21 * 8;  // struct pt_regs
#else
            return false;
#endif
        }
    }

    // Whether a filter field is read from the context, after the helper calls of others.
    bool filter_reads_context() const {
        for (std::size_t i = 0; i < places_.size(); i++)
            if (places_[i].fetched && (c_.fields[i].base == KSURF_BASE_CTX || c_.fields[i].base == KSURF_BASE_CTX_U64)) return true;
        return false;
    }

    // ---- gates ----

    // Whether the gates or the filter read the thread's ids before the filter decides; the
    // self gate alone reads them after it (self_gate()).
    bool needs_id() const {
        if (c_.by_pid) return true;
        for (std::size_t i = 0; i < places_.size(); i++)
            if (places_[i].fetched && (c_.fields[i].base == KSURF_BASE_PID || c_.fields[i].base == KSURF_BASE_TID)) return true;
        return false;
    }
    // The register the thread's ids are kept in, from the gates to the self gate.
    std::uint8_t ids() const { return where_ == Context::InR6 ? R7 : R5; }

    void gates(int miss) {
        if (needs_id()) {
            emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid));
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, hold(ids()), R0, 0, 0));
        }
        if (c_.by_pid) {
            emit(insn(BPF_ALU64 | BPF_RSH | BPF_K, R0, 0, 0, 32));
            const std::int16_t key = alloc(8);
            emit(insn(BPF_STX | BPF_MEM | BPF_W, FP, R0, key, 0));
            lookup(maps_.pids, key);
            jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, 0), miss);
        }
        if (c_.cgroup_id) {
            emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_cgroup_id));
            compare_jump(R0, BPF_JNE, c_.cgroup_id, miss);
        }
    }

    // ksurf's own hits, on the accepting path only: a hit the filter rejects is rejected
    // whoever made it, and counted as filtered, so the hits a filter rejects (nearly all,
    // where the cost per hit matters) skip the helper call. The ids the filter read are
    // reused.
    void self_gate(int miss) {
        if (!c_.self_tgid) return;
        if (needs_id())
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R0, ids(), 0, 0));
        else if (ids_slot_)
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R0, FP, ids_slot_, 0));
        else
            emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid));
        emit(insn(BPF_ALU64 | BPF_RSH | BPF_K, R0, 0, 0, 32));
        compare_jump(R0, BPF_JEQ, c_.self_tgid, miss);
    }

    void compare_jump(std::uint8_t reg, std::uint8_t jmp, std::uint64_t v, int target, std::uint8_t cls = BPF_JMP) {
        if (cls == BPF_JMP32 || fits_imm(v)) {
            jump(insn(cls | jmp | BPF_K, reg, 0, 0, static_cast<std::int32_t>(v)), target);
            return;
        }
        imm64(R2, v);
        jump(insn(BPF_JMP | jmp | BPF_X, reg, R2, 0, 0), target);
    }

    // ---- fields ----

    // The field a comparison reads: the interpreter compares the payload at op.at (the
    // last filter field fetched there wins) and takes a string's length from op.field.
    std::size_t field_of(const ksurf_op& op) const {
        std::optional<std::size_t> found;
        for (std::size_t i = 0; i < c_.nfilter; i++)
            if (c_.fields[i].out == op.at) found = i;
        if (!found || (is_string(op.code) && *found != op.field)) unsupported("a comparison whose operand is not one filter field");
        return *found;
    }

    bool is_string_field(const ksurf_field_cfg& f) const {
        return f.base == KSURF_BASE_COMM || f.access == KSURF_ACCESS_STRING || f.access == KSURF_ACCESS_USER_STRING ||
               f.access == KSURF_ACCESS_DATALOC;
    }

    // Which fields the comparisons read, and how many bytes of each string they need: a
    // string is read once, as far as its longest comparison looks (plus the byte that tells
    // its length), so that a short pattern against a long capacity reads a few bytes.
    void plan_fields() {
        std::vector<std::size_t> numbers;
        for (std::size_t k = 0; k < c_.nops; k++) {
            const ksurf_op& op = c_.ops[k];
            if (!is_number(op.code) && !is_string(op.code)) continue;
            if (op.code == KSURF_OP_STR_SUFFIX || op.code == KSURF_OP_STR_CONTAINS)
                unsupported("~ patterns with a leading '*' search the string, which only the interpreter does yet");
            const std::size_t i = field_of(op);
            const ksurf_field_cfg& f = c_.fields[i];
            Place& p = places_[i];
            if (is_number(op.code)) {
                if (f.access != KSURF_ACCESS_VALUE && f.access != KSURF_ACCESS_LOAD && f.access != KSURF_ACCESS_USER_LOAD)
                    unsupported("a number compared with a field fetched as bytes or a string");
                if (f.base == KSURF_BASE_COMM) unsupported("comm compared as a number");
                if (!p.fetched) numbers.push_back(i);
            } else {
                if (!is_string_field(f) || f.size == 0) unsupported("a string comparison on a field fetched as bytes");
                if (op.slot >= KSURF_MAX_PATTERNS || c_.patterns[op.slot].len > KSURF_MAX_PATTERN)
                    unsupported("a malformed pattern");
                if (decided(op, f)) continue;
                const unsigned len = c_.patterns[op.slot].len;
                const unsigned need = len + (op.code == KSURF_OP_STR_EQ ? 2 : 1);
                p.read = static_cast<std::uint16_t>(std::max<unsigned>(p.read, std::min<unsigned>(need, f.size)));
            }
            p.fetched = true;
        }
        // r1-r3 are the helpers' arguments and the fetches' scratch; the comparisons load a
        // number kept in the stack into r1, and r2 takes a 64-bit constant.
        std::vector<std::uint8_t> regs = where_ == Context::InR6 ? std::vector<std::uint8_t>{R7, R8}
                                                                 : std::vector<std::uint8_t>{R4, R5, R0};
        if (needs_id()) std::erase(regs, ids());
        if (where_ != Context::InR6 && numbers.size() > regs.size()) throw NeedsOtherContext{};
        for (std::size_t k = 0; k < numbers.size() && k < regs.size(); k++) places_[numbers[k]].reg = regs[k];
        for (std::size_t i : numbers) places_[i].low32 = low32(i);
    }

    // How field F's 64-bit value extends its low 32 bits, where it is one of them.
    enum class Extension : std::uint8_t { None, Sign, Zero };
    static Extension extension(const ksurf_field_cfg& f) {
        if (f.lshift == 32 && f.rshift == 32) return f.is_signed ? Extension::Sign : Extension::Zero;
        const bool load = f.access == KSURF_ACCESS_LOAD || f.access == KSURF_ACCESS_USER_LOAD;
        if (!f.lshift && !f.rshift && load && f.size == 4) return Extension::Zero;  // a 4-byte load zero-extends
        return Extension::None;
    }
    static bool extends(Extension e, std::uint64_t v) {
        return e == Extension::Sign ? static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(v))) == v
                                    : v <= std::numeric_limits<std::uint32_t>::max();
    }
    // Whether every comparison of field I can compare the low halves (BPF_JMP32), so that
    // the value need not be extended to 64 bits: extension is monotonic, signed and
    // unsigned, so where each constant is the extension of its own low half, the order of
    // the low halves is the values' order. The three instructions a signed 32-bit value
    // takes to extend are as many as the rest of a rejecting common_pid filter.
    bool low32(std::size_t i) const {
        const Extension e = extension(c_.fields[i]);
        if (e == Extension::None) return false;
        for (std::size_t k = 0; k < c_.nops; k++)
            if (is_number(c_.ops[k].code) && field_of(c_.ops[k]) == i && !extends(e, c_.ops[k].imm)) return false;
        return true;
    }
    // A signed comparison of zero-extended values is an unsigned one: both are positive.
    static std::uint8_t unsigned_of(std::uint8_t jmp) {
        switch (jmp) {
        case BPF_JSLT: return BPF_JLT;
        case BPF_JSLE: return BPF_JLE;
        case BPF_JSGT: return BPF_JGT;
        case BPF_JSGE: return BPF_JGE;
        default: return jmp;
        }
    }

    // The thread group's id (TGID) or the thread's into DST, zero-extended: from the stack
    // once the aggregation saved them there, else from the register the gates keep them in.
    void id(bool tgid, std::uint8_t dst) {
        if (ids_slot_) {
            constexpr int high = std::endian::native == std::endian::little ? 4 : 0;
            emit(insn(BPF_LDX | BPF_MEM | BPF_W, dst, FP, static_cast<std::int16_t>(ids_slot_ + (tgid ? high : 4 - high)), 0));
        } else if (tgid) {
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, ids(), 0, 0));
            emit(insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, 32));
        } else {
            emit(insn(BPF_ALU | BPF_MOV | BPF_X, dst, ids(), 0, 0));
        }
    }

    // The value at the start of F's chain into DST, or into r3 where it takes a read;
    // returns the register.
    std::uint8_t base(const ksurf_field_cfg& f, std::uint8_t dst = R3) {
        switch (f.base) {
        case KSURF_BASE_CTX: emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, context(), 0, 0)); return dst;
        case KSURF_BASE_CTX_U64:
            if (!direct(f.base_off, 8)) {
                read_number(BPF_FUNC_probe_read_kernel, 8, context(), f.base_off);
                return R3;
            }
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, dst, context(), static_cast<std::int16_t>(f.base_off), 0));
            return dst;
        case KSURF_BASE_PID: id(true, dst); return dst;
        case KSURF_BASE_TID: id(false, dst); return dst;
        case KSURF_BASE_CPU:
            emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_smp_processor_id));
            if (dst != R0) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, R0, 0, 0));
            return dst;
        case KSURF_BASE_ADDR: imm64(dst, std::uint64_t{f.base_hi} << 32 | static_cast<std::uint32_t>(f.base_off)); return dst;
        default: unsupported(fmt::format("a field based at {}", f.base));
        }
    }

    // ksurf_packet(): the address of the header at LAYER of the sk_buff in r3, into r3; 0
    // when the skb has none set.
    void packet(std::uint8_t layer) {
        const ksurf_layout& l = c_.layout;
        const std::uint16_t header = layer == 2 ? l.skb_mac_header : layer == 3 ? l.skb_network_header : l.skb_transport_header;
        if (!skb_) skb_ = alloc(8);
        if (!header_) header_ = alloc(8);
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R3, skb_, 0));
        emit(insn(BPF_ST | BPF_MEM | BPF_DW, FP, 0, header_, 0));
        read(BPF_FUNC_probe_read_kernel, header_, 2, R3, header);
        const int none = label(), done = label();
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, FP, header_, 0));
        jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R3, 0, 0, 0xffff), none);
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, FP, skb_, 0));
        read_number(BPF_FUNC_probe_read_kernel, 8, R3, l.skb_head);
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, header_, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_X, R3, R1, 0, 0));
        jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), done);
        place(none);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 0));
        place(done);
    }

    // F's chain of pointer loads (and its packet step) from the base, into r3.
    void chain(const ksurf_field_cfg& f) {
        base(f, R3);
        if (f.nsteps > KSURF_MAX_STEPS) unsupported("a malformed field");
        for (unsigned j = 0; j < f.nsteps; j++) {
            if (j == f.packet_step) packet(f.layer);
            read_number(BPF_FUNC_probe_read_kernel, 8, R3, f.steps[j]);
        }
        if (f.packet_step == f.nsteps) packet(f.layer);
    }

    bool plain_ctx(const ksurf_field_cfg& f) const {
        return f.base == KSURF_BASE_CTX && f.nsteps == 0 && f.packet_step != f.nsteps && (a_ == BpfAttach::Tracepoint || a_ == BpfAttach::RawTp);
    }

    // Number field F into a register: DST where it loads with no read (else r3), shifted to
    // its value unless LOW32 (its comparisons look at the low half); returns the register.
    std::uint8_t number(const ksurf_field_cfg& f, std::uint8_t dst, bool low32) {
        if (f.size == 0 || f.size > 8) unsupported("a malformed number field");
        std::uint8_t v = R3;
        if (f.access == KSURF_ACCESS_LOAD && plain_ctx(f) && direct(f.offset, f.size)) {
            const std::uint8_t c = context();
            v = dst;
            emit(insn(BPF_LDX | BPF_MEM | size_code(f.size), v, c, static_cast<std::int16_t>(f.offset), 0));
        } else if (f.access == KSURF_ACCESS_VALUE && f.nsteps == 0 && f.packet_step != 0) {
            v = base(f, dst);
        } else {
            chain(f);
            if (f.access != KSURF_ACCESS_VALUE)
                read_number(f.access == KSURF_ACCESS_USER_LOAD ? BPF_FUNC_probe_read_user : BPF_FUNC_probe_read_kernel, f.size, R3, f.offset);
        }
        if (f.lshift && !low32) emit(insn(BPF_ALU64 | BPF_LSH | BPF_K, v, 0, 0, f.lshift));
        if (f.rshift && !low32) emit(insn(BPF_ALU64 | (f.is_signed ? BPF_ARSH : BPF_RSH) | BPF_K, v, 0, 0, f.rshift));
        return v;
    }

    void fetch(std::size_t i) {
        Place& p = places_[i];
        if (!p.fetched) return;
        const ksurf_field_cfg& f = c_.fields[i];
        if (p.read) return fetch_string(f, p);
        const std::uint8_t v = number(f, p.reg ? p.reg : R3, p.low32);
        if (p.reg) {
            hold(p.reg);
            if (v != p.reg) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, p.reg, v, 0, 0));
        } else {
            p.slot = alloc(8);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, v, p.slot, 0));
        }
    }

    void fetch_string(const ksurf_field_cfg& f, Place& p) {
        if (f.base == KSURF_BASE_COMM) {
            // The interpreter copies comm and reads it as a string of 16 bytes' capacity; the
            // comparisons look up to the pattern's NUL, so they need no length.
            if (f.access != KSURF_ACCESS_STRING || f.size != KSURF_COMM_LEN || f.offset || f.nsteps || f.packet_step == 0)
                unsupported("comm read other than as the whole string");
            p.slot = alloc(KSURF_COMM_LEN);
            if (c_.layout.task_comm)
                task_comm(p.slot, p.read);
            else
                comm(p.slot);
            return;
        }
        const std::int32_t off = string_at(f);
        p.slot = alloc(p.read);
        p.ret = alloc(8);
        // The comparisons read whole words; the helper writes `read` bytes of them.
        if (p.read % 8) emit(insn(BPF_ST | BPF_MEM | BPF_DW, FP, 0, static_cast<std::int16_t>(p.slot + p.read / 8 * 8), 0));
        read(string_reader(f), p.slot, p.read, R3, off);
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R0, p.ret, 0));
    }

    // comm into the stack at DST, NUL-padded to SIZE bytes: the helper does not pad it on
    // every kernel (6.1's strscpy() leaves the bytes after the NUL as they were), and an
    // aggregation key with an earlier hit's bytes there would split one comm in many.
    void comm(std::int16_t dst, unsigned size = KSURF_COMM_LEN) {
        for (unsigned w = 0; w < size; w += 8) emit(insn(BPF_ST | BPF_MEM | BPF_DW, FP, 0, static_cast<std::int16_t>(dst + w), 0));
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R1, FP, 0, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R1, 0, 0, dst));
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R2, 0, 0, static_cast<std::int32_t>(size)));
        emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_comm));
    }

    // The words of the current task's comm the comparisons look at (NEED bytes, less the one
    // the other strings' length takes) loaded into the stack at DST: a helper that returns
    // a pointer, and a load per word, where bpf_get_current_comm() copies the whole name
    // into a buffer zeroed first (a rejecting `comm==` hit: 83 ns with the copy, 60 with
    // the loads, as the first program of a tracepoint on 6.18). The bytes after the NUL
    // are the task's, which only strscpy_pad() clears (not 5.10's strlcpy()): no
    // comparison looks past the pattern's NUL, but an aggregation key would.
    void task_comm(std::int16_t dst, unsigned need) {
        emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_task_btf));
        for (unsigned w = 0; 8 * w + 1 < need; w++) {
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, R0, static_cast<std::int16_t>(c_.layout.task_comm + 8 * w), 0));
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R1, static_cast<std::int16_t>(dst + 8 * w), 0));
        }
    }

    static int string_reader(const ksurf_field_cfg& f) {
        return f.access == KSURF_ACCESS_USER_STRING ? BPF_FUNC_probe_read_user_str : BPF_FUNC_probe_read_kernel_str;
    }

    // Where string field F is read from: r3 plus the offset returned.
    std::int32_t string_at(const ksurf_field_cfg& f) {
        if (f.access != KSURF_ACCESS_DATALOC) {
            chain(f);
            return f.offset;
        }
        // The locator's offset counts from the record, which is the chain's value.
        if (plain_ctx(f) && direct(f.offset, 4)) {
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R3, context(), 0, 0));
            emit(insn(BPF_LDX | BPF_MEM | BPF_W, R1, R3, static_cast<std::int16_t>(f.offset), 0));
        } else {
            chain(f);
            if (!loc_) loc_ = alloc(8);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R3, loc_, 0));
            read_number(BPF_FUNC_probe_read_kernel, 4, R3, f.offset);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R1, R3, 0, 0));
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, FP, loc_, 0));
        }
        emit(insn(BPF_ALU64 | BPF_AND | BPF_K, R1, 0, 0, 0xffff));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_X, R3, R1, 0, 0));
        return 0;
    }

    // ---- the aggregation, in a whole program ----

    bool in_key(const ksurf_field_cfg& f) const { return ksurf::in_key(c_.agg, f); }
    bool aggregated(const ksurf_field_cfg& f) const { return ksurf::aggregated(c_.agg, f); }
    bool aggregation_reads(std::initializer_list<std::uint8_t> bases) const {
        for (std::size_t i = 0; i < c_.nfields; i++)
            if (aggregated(c_.fields[i]) && std::ranges::find(bases, c_.fields[i].base) != bases.end()) return true;
        return false;
    }
    bool aggregation_reads_context() const {
        return c_.agg.stack_at != KSURF_AGG_NO_VALUE || aggregation_reads({KSURF_BASE_CTX, KSURF_BASE_CTX_U64});
    }

    // The thread's ids into the stack for the key fields that read them: helper calls come
    // between. Those the gates read are reused.
    void save_ids() {
        if (!aggregation_reads({KSURF_BASE_PID, KSURF_BASE_TID})) return;
        const bool kept = needs_id();
        if (!kept) emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid));
        ids_slot_ = alloc(8);
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, kept ? ids() : R0, ids_slot_, 0));
    }

    static bool is_number_field(const ksurf_field_cfg& f) {
        return f.base != KSURF_BASE_COMM &&
               (f.access == KSURF_ACCESS_VALUE || f.access == KSURF_ACCESS_LOAD || f.access == KSURF_ACCESS_USER_LOAD);
    }
    // The key bytes F's fetch writes whole (ksurf_fetch() stores a number as a u64, comm()
    // pads comm); 0 for a string or bytes, whose tail stays as it was.
    static unsigned written(const ksurf_field_cfg& f) {
        if (f.base == KSURF_BASE_COMM) return (f.size + 7u) & ~7u;
        return is_number_field(f) ? 8 : 0;
    }
    // The slot F takes in the key.
    static unsigned width(const ksurf_field_cfg& f) { return is_number_field(f) ? 8 : (f.size + 7u) & ~7u; }

    // Key field F into the stack at AT, as ksurf_fetch() writes it into the payload.
    void key_field(const ksurf_field_cfg& f, std::int16_t at) {
        if (f.base == KSURF_BASE_COMM) {
            if (f.size == 0 || f.size > KSURF_COMM_LEN) unsupported("a malformed comm field");
            if (f.size == KSURF_COMM_LEN) {
                // The filter's copy, whole and NUL-padded (comm()), where it read one: two
                // words moved instead of a helper call.
                for (std::size_t i = 0; !c_.layout.task_comm && i < places_.size(); i++) {
                    if (!places_[i].fetched || c_.fields[i].base != KSURF_BASE_COMM) continue;
                    for (std::int16_t w = 0; w < KSURF_COMM_LEN; w += 8) {
                        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, static_cast<std::int16_t>(places_[i].slot + w), 0));
                        emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R1, static_cast<std::int16_t>(at + w), 0));
                    }
                    return;
                }
            }
            return comm(at, f.size);
        }
        switch (f.access) {
        case KSURF_ACCESS_VALUE:
        case KSURF_ACCESS_LOAD:
        case KSURF_ACCESS_USER_LOAD: emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, number(f, R3, false), at, 0)); return;
        case KSURF_ACCESS_STRING:
        case KSURF_ACCESS_USER_STRING:
        case KSURF_ACCESS_DATALOC: {
            const std::int32_t off = string_at(f);
            return read(string_reader(f), at, f.size, R3, off);
        }
        case KSURF_ACCESS_BYTES:
            chain(f);
            return read(BPF_FUNC_probe_read_kernel, at, f.size, R3, f.offset);
        default: unsupported(fmt::format("a key field read as {}", f.access));
        }
    }

    // ksurf_aggregate(): the key built in the stack, then its value in `aggs` updated in
    // place. A hit whose key is there already (nearly every one) costs its fetches, one
    // lookup and a few adds, where the generic program first set up its scratch, zeroed
    // the key in map memory and fetched through the interpreter. A new key is inserted from
    // agg_zero's zeroed value; a full map refuses it with E2BIG, and then the key cannot be
    // there, so no second lookup is made: counted as KSURF_STAT_AGG_FULL. Any other outcome
    // (EEXIST when a program that interrupted this one inserted the key first, EBUSY on a
    // locked bucket) leaves the second lookup to tell.
    void aggregate(int done) {
        const ksurf_agg_cfg& g = c_.agg;
        if (g.key_len == 0 || g.key_len % 8 || g.key_len > KSURF_AGG_MAX_KEY || g.hist > KSURF_HIST_LINEAR ||
            (g.hist == KSURF_HIST_LINEAR && (g.nbuckets < 3 || g.lstep == 0)))
            unsupported("a malformed aggregation");
        const std::int16_t key = alloc(g.key_len);
        // Words no fetch writes whole are zeroed first, as the interpreter's zero_words:
        // a string's tail would keep an earlier hit's bytes and split one key in many.
        std::vector<bool> whole(g.key_len / 8);
        if (g.stack_at != KSURF_AGG_NO_VALUE) {
            if (g.stack_at % 8 || g.stack_at + 8 > g.key_len) unsupported("a malformed aggregation");
            whole[g.stack_at / 8] = true;
        }
        for (std::size_t i = 0; i < c_.nfields; i++) {
            const ksurf_field_cfg& f = c_.fields[i];
            if (!in_key(f)) continue;
            if (f.out % 8 || f.out + width(f) > g.key_len) unsupported("a key field past the key");
            for (unsigned w = 0; w < written(f) / 8; w++) whole[f.out / 8 + w] = true;
        }
        for (std::size_t w = 0; w < whole.size(); w++)
            if (!whole[w]) emit(insn(BPF_ST | BPF_MEM | BPF_DW, FP, 0, static_cast<std::int16_t>(key + 8 * w), 0));

        std::int16_t value = 0;
        for (std::size_t i = 0; i < c_.nfields; i++) {
            const ksurf_field_cfg& f = c_.fields[i];
            if (f.out == g.value_at && !is_number_field(f)) unsupported("an aggregated value that is not a number");
            if (in_key(f)) {
                key_field(f, static_cast<std::int16_t>(key + f.out));
                if (f.out == g.value_at) value = static_cast<std::int16_t>(key + f.out);
            } else if (f.out == g.value_at) {
                value = alloc(8);
                emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, number(f, R3, false), value, 0));
            }
        }
        if (g.value_at != KSURF_AGG_NO_VALUE && !value) unsupported("an aggregated value no field holds");
        if (g.stack_at != KSURF_AGG_NO_VALUE) {
            if (const std::uint8_t c = context(); c != R1) emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R1, c, 0, 0));
            map_fd(R2, maps_.agg_stacks);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 0));
            emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_stackid));
            // The id as a u32, a failure's negative errno included, as the interpreter keys it.
            emit(insn(BPF_ALU | BPF_MOV | BPF_X, R0, R0, 0, 0));
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, FP, R0, static_cast<std::int16_t>(key + g.stack_at), 0));
        }

        const int add = label(), full = label();
        lookup(maps_.aggs, key);
        jump(insn(BPF_JMP | BPF_JNE | BPF_K, R0, 0, 0, 0), add);
        const std::int16_t zero = alloc(8);
        emit(insn(BPF_ST | BPF_MEM | BPF_W, FP, 0, zero, 0));
        lookup(maps_.agg_zero, zero);
        jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, 0), full);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R3, R0, 0, 0));
        map_fd(R1, maps_.aggs);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R2, FP, 0, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R2, 0, 0, key));
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R4, 0, 0, BPF_NOEXIST));
        emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem));
        jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, -E2BIG), full);
        lookup(maps_.aggs, key);
        jump(insn(BPF_JMP | BPF_JNE | BPF_K, R0, 0, 0, 0), add);
        place(full);
        lookup(maps_.scratch, zero);
        jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, 0), done);
        count(R0, KSURF_STAT_AGG_FULL);
        jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), done);

        place(add);
        add_to_value(value, done);
        emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0));
        emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    }

    // ksurf_agg_add(): the hit added to the value at r0 (struct ksurf_agg_value), its number
    // at r10 + VALUE (0: a count only). Per CPU: plain loads and stores.
    void add_to_value(std::int16_t value, int done) {
        const ksurf_agg_cfg& g = c_.agg;
        constexpr auto count_at = static_cast<std::int16_t>(offsetof(ksurf_agg_value, count));
        constexpr auto sum_at = static_cast<std::int16_t>(offsetof(ksurf_agg_value, sum));
        constexpr auto min_at = static_cast<std::int16_t>(offsetof(ksurf_agg_value, min));
        constexpr auto max_at = static_cast<std::int16_t>(offsetof(ksurf_agg_value, max));
        constexpr auto buckets_at = static_cast<std::int16_t>(offsetof(ksurf_agg_value, buckets));
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R2, R0, count_at, 0));
        if (value) {
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, value, 0));
            const int first = label(), has_min = label(), sum = label();
            const std::uint8_t ge = g.value_signed ? BPF_JSGE : BPF_JGE;
            jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R2, 0, 0, 0), first);
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, R0, min_at, 0));
            jump(insn(BPF_JMP | ge | BPF_X, R1, R3, 0, 0), has_min);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R1, min_at, 0));
            place(has_min);
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, R0, max_at, 0));
            jump(insn(BPF_JMP | ge | BPF_X, R3, R1, 0, 0), sum);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R1, max_at, 0));
            jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), sum);
            place(first);
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R1, min_at, 0));
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R1, max_at, 0));
            place(sum);
            emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R3, R0, sum_at, 0));
            emit(insn(BPF_ALU64 | BPF_ADD | BPF_X, R3, R1, 0, 0));
            emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R3, sum_at, 0));
        } else if (g.hist != KSURF_HIST_NONE) {
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R1, 0, 0, 0));
        }
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R2, 0, 0, 1));
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R2, count_at, 0));
        if (g.hist == KSURF_HIST_NONE) return;
        bucket();
        // The bound the verifier needs against the map's value size; never taken.
        jump(insn(BPF_JMP | BPF_JGE | BPF_K, R3, 0, 0, g.nbuckets), done);
        emit(insn(BPF_ALU64 | BPF_LSH | BPF_K, R3, 0, 0, 3));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_X, R0, R3, 0, 0));
        emit(insn(BPF_LDX | BPF_MEM | BPF_DW, R4, R0, buckets_at, 0));
        emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R4, 0, 0, 1));
        emit(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R4, buckets_at, 0));
    }

    // The histogram's bucket of the number in r1 into r3, as ksurf_log2_bucket() and
    // ksurf_linear_bucket() choose it; r2 and r4 are clobbered.
    void bucket() {
        const ksurf_agg_cfg& g = c_.agg;
        const int have = label();
        if (g.hist == KSURF_HIST_LOG2) {
            // 0 for a negative number, 1 for 0, k + 2 for [2^k, 2^(k+1)): k by halving.
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 0));
            if (g.value_signed) jump(insn(BPF_JMP | BPF_JSLT | BPF_K, R1, 0, 0, 0), have);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 1));
            jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R1, 0, 0, 0), have);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 0));
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R2, R1, 0, 0));
            for (const int shift : {32, 16, 8, 4, 2}) {
                const int small = label();
                emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R4, R2, 0, 0));
                emit(insn(BPF_ALU64 | BPF_RSH | BPF_K, R4, 0, 0, shift));
                jump(insn(BPF_JMP | BPF_JEQ | BPF_K, R4, 0, 0, 0), small);
                emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R2, R4, 0, 0));
                emit(insn(BPF_ALU64 | BPF_OR | BPF_K, R3, 0, 0, shift));
                place(small);
            }
            emit(insn(BPF_ALU64 | BPF_RSH | BPF_K, R2, 0, 0, 1));
            emit(insn(BPF_ALU64 | BPF_OR | BPF_X, R3, R2, 0, 0));
            emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R3, 0, 0, 2));
        } else {
            // 0 below lmin, then one per lstep, the last for nbuckets - 2 steps and above.
            const int below = label(), above = label();
            const auto lmin = static_cast<std::uint64_t>(g.lmin);
            compare_jump(R1, g.value_signed ? BPF_JSLT : BPF_JLT, lmin, below);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, R3, R1, 0, 0));
            alu(BPF_SUB, R3, lmin);
            alu(BPF_DIV, R3, g.lstep);
            jump(insn(BPF_JMP | BPF_JGE | BPF_K, R3, 0, 0, g.nbuckets - 2), above);
            emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, R3, 0, 0, 1));
            jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), have);
            place(below);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, 0));
            jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), have);
            place(above);
            emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, g.nbuckets - 1));
        }
        place(have);
    }

    // REG op= V in 64 bits, the constant through r2 where an instruction's cannot hold it
    // (an unsigned division's must also be positive as an int32).
    void alu(std::uint8_t op, std::uint8_t reg, std::uint64_t v) {
        if (fits_imm(v) && (op != BPF_DIV || v <= std::numeric_limits<std::int32_t>::max())) {
            emit(insn(BPF_ALU64 | op | BPF_K, reg, 0, 0, static_cast<std::int32_t>(v)));
            return;
        }
        imm64(R2, v);
        emit(insn(BPF_ALU64 | op | BPF_X, reg, R2, 0, 0));
    }

    // ---- comparisons ----

    // Whether string comparison OP on F holds or fails whatever F holds: a pattern longer
    // than F can be (comm: 15 bytes), or an empty prefix.
    std::optional<bool> decided(const ksurf_op& op, const ksurf_field_cfg& f) const {
        const unsigned len = c_.patterns[op.slot].len;
        const unsigned most = f.base == KSURF_BASE_COMM ? KSURF_COMM_LEN - 1 : f.size - 1u;
        if (len > most) return false;
        if (len == 0 && op.code == KSURF_OP_STR_PREFIX) return true;
        return std::nullopt;
    }

    Leaf leaf(std::size_t k) {
        const ksurf_op& op = c_.ops[k];
        const std::size_t i = field_of(op);
        const Place& p = places_[i];
        if (is_number(op.code)) {
            Check ch{{}, jump_of(op.code), p.reg ? p.reg : R1, op.imm};
            if (!p.reg) ch.prep.push_back(insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, p.slot, 0));
            if (p.low32) {
                ch.cls = BPF_JMP32;
                ch.value = static_cast<std::uint32_t>(op.imm);
                if (extension(c_.fields[i]) == Extension::Zero) ch.jmp = unsigned_of(ch.jmp);
            }
            return {false, true, {ch}};
        }
        const ksurf_pattern& pat = c_.patterns[op.slot];
        const bool eq = op.code == KSURF_OP_STR_EQ;
        if (const auto known = decided(op, c_.fields[i])) return {true, *known, {}};
        Leaf l;
        if (c_.fields[i].base == KSURF_BASE_COMM) {
            // At most 15 bytes and a NUL: equality covers the pattern's NUL.
            words(l, p.slot, pat, pat.len + (eq ? 1 : 0));
            return l;
        }
        // The interpreter's length is the read's, cut at the capacity; 0 when it failed.
        if (pat.len == 0) {
            l.checks.push_back({{insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, p.ret, 0)}, BPF_JSLE, R1, 1});
            return l;
        }
        l.checks.push_back({{insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, p.ret, 0)}, static_cast<std::uint8_t>(eq ? BPF_JEQ : BPF_JSGE), R1, pat.len + 1u});
        words(l, p.slot, pat, pat.len);
        return l;
    }

    // Checks that the first N bytes at SLOT are the pattern's (zero past its length), a
    // word at a time; a partial word is shifted up so that only its first bytes count.
    static void words(Leaf& l, std::int16_t slot, const ksurf_pattern& pat, unsigned n) {
        for (unsigned w = 0; 8 * w < n; w++) {
            const unsigned bytes = std::min(8u, n - 8 * w);
            const unsigned shift = 64 - 8 * bytes;
            Check ch{{insn(BPF_LDX | BPF_MEM | BPF_DW, R1, FP, static_cast<std::int16_t>(slot + 8 * w), 0)}, BPF_JEQ, R1,
                     shift ? pat.words[w] << shift : pat.words[w]};
            if (shift) ch.prep.push_back(insn(BPF_ALU64 | BPF_LSH | BPF_K, R1, 0, 0, static_cast<std::int32_t>(shift)));
            l.checks.push_back(std::move(ch));
        }
    }

    void check(const Check& ch, bool holds, int target) {
        emit(ch.prep);
        compare_jump(ch.reg, holds ? ch.jmp : negate(ch.jmp), ch.value, target, ch.cls);
    }

    // Jumps to TARGET when E evaluates to WHEN, falls through otherwise: && and || as
    // jumps, so that no boolean is kept and a decided hit skips the rest.
    void branch(const FilterTree& e, bool when, int target) {
        switch (e.kind) {
        case FilterTree::Kind::Compare: {
            const Leaf& l = (*leaves_)[e.op];
            if (l.constant || l.checks.empty()) {
                if ((l.constant ? l.value : true) == when) jump(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0), target);
                return;
            }
            if (!when) {
                for (const Check& ch : l.checks) check(ch, false, target);
                return;
            }
            const int skip = label();
            for (std::size_t i = 0; i + 1 < l.checks.size(); i++) check(l.checks[i], false, skip);
            check(l.checks.back(), true, target);
            place(skip);
            return;
        }
        case FilterTree::Kind::Not: return branch(e.operands[0], !when, target);
        case FilterTree::Kind::And:
        case FilterTree::Kind::Or: {
            // Both operands decide alone when they agree with WHEN's short cut (false for
            // &&, true for ||); otherwise the first one decides only by skipping the second.
            const bool cut = e.kind == FilterTree::Kind::Or;
            if (when == cut) {
                branch(e.operands[0], when, target);
                branch(e.operands[1], when, target);
                return;
            }
            const int skip = label();
            branch(e.operands[0], cut, skip);
            branch(e.operands[1], when, target);
            place(skip);
            return;
        }
        }
    }

    const ksurf_config& c_;
    BpfAttach a_;
    FilterMaps maps_;
    std::vector<bpf_insn> code_;
    std::vector<int> labels_;
    std::vector<std::pair<std::size_t, int>> fixups_;
    std::vector<Place> places_;
    const std::vector<Leaf>* leaves_ = nullptr;
    Context where_;
    bool whole_;                 // the aggregation compiled too: no generic program behind
    std::int16_t ctx_slot_ = 0;  // the context's, once spilled
    std::int16_t ids_slot_ = 0;  // the thread's ids, once the aggregation saved them
    bool deciding_ = true;       // before the verdict
    bool held_ = false;          // a value is kept in r0-r5 until the verdict
    int used_ = 0;
    std::int16_t tmp_ = 0, skb_ = 0, header_ = 0, loc_ = 0;
};

}  // namespace

std::optional<FilterTree> filter_tree(const ksurf_config& cfg) {
    if (cfg.nops > KSURF_MAX_OPS) fail("a filter of {} operations (at most {})", cfg.nops, KSURF_MAX_OPS);
    std::vector<FilterTree> stack;
    for (std::size_t i = 0; i < cfg.nops; i++) {
        const std::uint8_t code = cfg.ops[i].code;
        auto pop = [&] {
            if (stack.empty()) fail("filter operation {} ({}) has too few operands", i, code);
            FilterTree e = std::move(stack.back());
            stack.pop_back();
            return e;
        };
        if (code == KSURF_OP_NOT) {
            FilterTree n{FilterTree::Kind::Not, 0, {}};
            n.operands.push_back(pop());
            stack.push_back(std::move(n));
        } else if (code == KSURF_OP_AND || code == KSURF_OP_OR) {
            FilterTree b{code == KSURF_OP_AND ? FilterTree::Kind::And : FilterTree::Kind::Or, 0, {}};
            FilterTree right = pop();
            b.operands.push_back(pop());
            b.operands.push_back(std::move(right));
            stack.push_back(std::move(b));
        } else if (is_number(code) || is_string(code)) {
            stack.push_back({FilterTree::Kind::Compare, i, {}});
        } else {
            fail("filter operation {} has an unknown code {}", i, code);
        }
    }
    if (stack.size() > 1) fail("the filter leaves {} values, not one", stack.size());
    if (stack.empty()) return std::nullopt;
    return std::move(stack.back());
}

namespace {

// The code for CFG with the aggregation (WHOLE) or without, the context placed as the code
// allows; throws Unsupported.
std::vector<bpf_insn> compile(const ksurf_config& cfg, BpfAttach a, const FilterMaps& maps, bool whole) {
    for (const Context where : {Context::InR1, Context::Spilled}) {
        try {
            return Compiler(cfg, a, maps, where, whole).run();
        } catch (const NeedsOtherContext&) {
        }
    }
    return Compiler(cfg, a, maps, Context::InR6, whole).run();
}

}  // namespace

CompiledFilter compile_filter(const ksurf_config& cfg, BpfAttach a, const FilterMaps& maps) {
    CompiledFilter out;
    if (cfg.agg.on && maps.aggs >= 0) {
        try {
            out.code = compile(cfg, a, maps, true);
            out.whole = true;
            return out;
        } catch (const Unsupported& u) {
            out.aggregation_why_not = u.why;
        }
    }
    try {
        out.code = compile(cfg, a, maps, false);
    } catch (const Unsupported& u) {
        out.why_not = u.why;
    }
    return out;
}

ksurf_config interpreter_config(ksurf_config cfg) {
    cfg.self_tgid = 0;
    cfg.by_pid = 0;
    cfg.cgroup_id = 0;
    cfg.nops = 0;
    if (!cfg.agg.on) return cfg;
    // An aggregation reads only its key and value: a field only the filter read would be
    // fetched a second time for nothing (for `ksurf lat --where comm==...`, a second
    // get_current_comm on every accepted call). Events keep them: they are in the payload.
    std::uint16_t kept = 0, filter = 0;
    for (std::uint16_t i = 0; i < cfg.nfields; i++) {
        if (i < cfg.nfilter && !aggregated(cfg.agg, cfg.fields[i])) continue;
        filter += i < cfg.nfilter;
        cfg.fields[kept++] = cfg.fields[i];
    }
    cfg.nfields = kept;
    cfg.nfilter = filter;
    return cfg;
}

FilterMaps filter_maps(const BpfTemplate& tmpl, bool aggregates) {
    FilterMaps m{tmpl.map("pids"), tmpl.map("scratch")};
    if (aggregates) {
        m.aggs = tmpl.map("aggs");
        m.agg_zero = tmpl.map("agg_zero");
        m.agg_stacks = tmpl.map("agg_stacks");
    }
    return m;
}

Fd load_filtered(const BpfTemplate& tmpl, std::string_view program, BpfAttach a, const AttachTarget& target,
                 const ksurf_config& cfg, const std::function<Fd(const ksurf_config&)>& rodata, bool aggregates,
                 std::string* note) {
    const FilterMaps maps = filter_maps(tmpl, aggregates);
    CompiledFilter f = compile_filter(cfg, a, maps);
    // A compiler bug, not the user's, is why the kernel would refuse compiled code: the
    // next way down (the filter alone, then the interpreter) still runs the probe right.
    if (f.whole) {
        try {
            Fd prog = tmpl.load_code(program, a, f.code, target);
            if (note) *note = fmt::format("filter and aggregation compiled, {} instructions", f.code.size());
            return prog;
        } catch (const Error& e) {
            f = compile_filter(cfg, a, filter_maps(tmpl, false));
            f.aggregation_why_not = fmt::format("the kernel refused it: {}", e.what());
        }
    }
    const std::string agg = f.aggregation_why_not.empty() ? "" : "; aggregation interpreted: " + f.aggregation_why_not;
    std::string why = f.why_not;
    if (!f.code.empty()) {
        try {
            Fd prog = tmpl.load(program, a, rodata(interpreter_config(cfg)).get(), target, f.code);
            if (note) *note = fmt::format("filter compiled, {} instructions{}", f.code.size(), agg);
            return prog;
        } catch (const Error& e) {
            why = fmt::format("the kernel refused the compiled filter: {}", e.what());
        }
    }
    Fd prog = tmpl.load(program, a, rodata(cfg).get(), target);
    if (note) *note = why.empty() ? "" : "filter interpreted: " + why + agg;
    return prog;
}

}  // namespace ksurf
