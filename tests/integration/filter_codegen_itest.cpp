// The compiled filter (src/codegen) against the interpreter (bpf/interp.bpf.h), both run by
// the kernel: random configurations, each loaded as a raw_tp clone of ksurf_probe twice
// (interpreted; compiled prefix with the interpreter's gates and filter off) and run with
// BPF_PROG_TEST_RUN on random inputs. A raw_tp test run executes in the calling thread, so
// user-memory fields read this test's buffers, comm is the name prctl() gave the thread,
// and pid/tid are the test's. Every decision (gate miss, filtered, event) must agree, and a
// configuration that does not count rejections (count_filtered off) must store no count.
// Aggregating configurations compile whole (the key's fetch and the map's update too):
// the maps the two programs fill must hold the same keys and values, byte for byte.
// KSURF_FILTER_SEED varies the seed; a failure prints it with the configuration's case.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ksurf/attach.h"
#include "ksurf/bpf_backend.h"
#include "ksurf/btf.h"
#include "ksurf/cgroup.h"
#include "ksurf/codegen.h"
#include "ksurf/error.h"
#include "probe.skel.h"

namespace ksurf {
namespace {

constexpr unsigned kArgs = 12;  // the u64 arguments a raw_tp context holds

// The values numbers are drawn from: edges of every width and sign, so that comparisons
// land on both sides of the constants the filters use.
constexpr std::uint64_t kEdges[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
                                    0x100000000, 0x7fffffffffffffff, 0x8000000000000000, ~0ULL, ~1ULL};
const char* const kWords[] = {"", "a", "ab", "abc", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmno", "abcdefghijklmnop",
                              "xyz", "abx", "ksurf-filter", "ksurf-filtes", "ksurf", "kthread"};

// CFG as the read-only data of a clone of TMPL's ksurf_probe.
Fd probe_rodata(const BpfTemplate& tmpl, const ksurf_config& cfg) {
    std::vector<std::uint8_t> data = tmpl.rodata();
    probe_bpf::probe_bpf__rodata ro;
    std::memcpy(&ro, data.data(), sizeof ro);
    ro.cfg = cfg;
    std::memcpy(data.data(), &ro, sizeof ro);
    return tmpl.make_rodata(data);
}

void test_run(int prog, std::array<std::uint64_t, kArgs>& args) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = args.data(), .ctx_size_in = sizeof args);
    if (bpf_prog_test_run_opts(prog, &o)) fail("BPF_PROG_TEST_RUN: {}", errno_text(errno));
}

bool is_number(const ksurf_field_cfg& f) {
    return f.base != KSURF_BASE_COMM && (f.access == KSURF_ACCESS_VALUE || f.access == KSURF_ACCESS_LOAD || f.access == KSURF_ACCESS_USER_LOAD);
}

class Decisions {
public:
    Decisions() : tmpl_(elf_of<probe_bpf>(), {"ksurf_probe"}, [](bpf_map* m) {
          if (std::string_view(bpf_map__name(m)) == "events") bpf_map__set_max_entries(m, 1 << 16);
      }) {
        rb_ = ring_buffer__new(tmpl_.map("events"), [](void* ctx, void*, std::size_t) {
            ++*static_cast<int*>(ctx);
            return 0;
        }, &events_, nullptr);
        if (!rb_) fail("ring_buffer__new: {}", errno_text(errno));
    }
    ~Decisions() { ring_buffer__free(rb_); }

    const BpfTemplate& tmpl() const { return tmpl_; }

    Fd rodata(const ksurf_config& cfg) const { return probe_rodata(tmpl_, cfg); }

    // 0: the gates dropped the hit (or the filter did, uncounted); 1: the filter rejected it
    // and counted it; 2: it became an event.
    int run(int prog, const ksurf_config& cfg, std::array<std::uint64_t, kArgs>& args) {
        const std::uint64_t filtered = sum_per_cpu(tmpl_.map("scratch"), 0, KSURF_STAT_MAX)[KSURF_STAT_FILTERED];
        test_run(prog, args);
        events_ = 0;
        ring_buffer__consume(rb_);
        const std::uint64_t rejected = sum_per_cpu(tmpl_.map("scratch"), 0, KSURF_STAT_MAX)[KSURF_STAT_FILTERED] - filtered;
        if (rejected + events_ > 1) fail("one run counted {} rejections and sent {} events", rejected, events_);
        if (rejected && !cfg.count_filtered) fail("a configuration that does not count rejections counted one");
        return events_ ? 2 : rejected ? 1 : 0;
    }

private:
    BpfTemplate tmpl_;
    ring_buffer* rb_ = nullptr;
    int events_ = 0;
};

// Where comm is in this kernel's task_struct; 0 where the programs cannot reach the task
// (before 5.11). The configurations take it half the time, so that both ways the compiled
// code reads comm meet the interpreter.
std::uint16_t kernel_task_comm() {
    static const std::uint16_t at = kernel_layout(Btf::kernel()).task_comm;
    return at;
}

// One random configuration and the inputs that exercise it.
class Generator {
public:
    explicit Generator(std::uint64_t seed) : rng_(seed) {}

    std::uint64_t pick() { return rng_(); }
    unsigned below(unsigned n) { return static_cast<unsigned>(rng_() % n); }
    bool coin() { return rng_() & 1; }
    std::uint64_t number() {
        switch (below(4)) {
        case 0: return rng_();
        case 1: return below(8);
        default: return kEdges[below(std::size(kEdges))];
        }
    }
    std::string word() { return kWords[below(std::size(kWords))]; }

    ksurf_config config(std::uint32_t self, std::uint64_t cgroup, std::uint32_t tid) {
        ksurf_config c{};
        c.count_filtered = below(4) != 0;
        c.self_tgid = below(10) == 0 ? (coin() ? self : self + 1) : 0;
        c.by_pid = below(6) == 0;
        c.cgroup_id = below(10) == 0 ? (coin() ? cgroup : cgroup + 1) : 0;
        // Packet fields take the context for an sk_buff: these offsets land in its arguments.
        c.layout.skb_head = static_cast<std::uint16_t>(8 * below(kArgs));
        c.layout.skb_mac_header = static_cast<std::uint16_t>(2 * below(4 * kArgs));
        c.layout.skb_network_header = static_cast<std::uint16_t>(2 * below(4 * kArgs));
        c.layout.skb_transport_header = static_cast<std::uint16_t>(2 * below(4 * kArgs));
        if (coin()) c.layout.task_comm = kernel_task_comm();
        pid_ = self;
        tid_ = tid;
        std::uint16_t out = 0;
        c.nfields = static_cast<std::uint16_t>(1 + below(5));
        for (unsigned i = 0; i < c.nfields; i++) {
            ksurf_field_cfg& f = c.fields[i];
            f.packet_step = KSURF_NO_PACKET;
            f.out = out;
            field(f);
            out = static_cast<std::uint16_t>(out + (is_number(f) ? 8 : (f.size + 7) / 8 * 8));
        }
        c.nfilter = c.nfields;
        c.data_len = out;
        std::vector<ksurf_op> ops;
        std::vector<ksurf_pattern> patterns;
        do {
            ops.clear();
            patterns.clear();
            tree(c, 0, ops, patterns);
        } while (ops.size() > KSURF_MAX_OPS || patterns.size() > KSURF_MAX_PATTERNS);
        c.nops = static_cast<std::uint16_t>(ops.size());
        std::copy(ops.begin(), ops.end(), c.ops);
        std::copy(patterns.begin(), patterns.end(), c.patterns);
        return c;
    }

    // Arguments for C: user buffers for the user-memory fields, words in the context for
    // __data_loc strings, everything else from the edges.
    std::array<std::uint64_t, kArgs> inputs(const ksurf_config& c) {
        std::array<std::uint64_t, kArgs> args;
        for (auto& a : args) a = coin() ? number() : 0xffff;
        // Whatever a locator points at ends within the context: the bytes past it differ
        // between runs.
        reinterpret_cast<char*>(args.data())[8 * kArgs - 1] = 0;
        for (auto& b : memory_) b = static_cast<char>(coin() ? number() : 'a' + below(3));
        for (std::size_t s = 0; s < strings_.size(); s++) strings_[s] = word();
        for (unsigned i = 0; i < c.nfields; i++) {
            const ksurf_field_cfg& f = c.fields[i];
            const unsigned slot = static_cast<unsigned>(f.base_off / 8);
            if (f.access == KSURF_ACCESS_USER_LOAD && below(8))
                args[slot] = reinterpret_cast<std::uintptr_t>(memory_.data()) + below(64);
            if (f.access == KSURF_ACCESS_USER_STRING && below(8)) {
                const std::string& s = strings_[i % strings_.size()];
                args[slot] = reinterpret_cast<std::uintptr_t>(s.c_str());
            }
            if (f.access == KSURF_ACCESS_DATALOC) {
                // The locator in the slot at `offset`, the string in the last 32 bytes.
                const std::string s = word().substr(0, 24);
                char* bytes = reinterpret_cast<char*>(args.data());
                const unsigned at = 8 * kArgs - 32 + below(8);
                std::memcpy(bytes + at, s.c_str(), s.size() + 1);
                const std::uint32_t loc = static_cast<std::uint32_t>(s.size() + 1) << 16 | (coin() ? at : below(96));
                std::memcpy(bytes + f.offset, &loc, sizeof loc);
            }
        }
        return args;
    }

    // Makes C aggregate, as src/backend/bpf/encode.cpp lays an aggregation out: a random
    // part of its fields as the key from the payload's start, in KEY_LENS' first length that
    // holds them (false: none does), the rest after it; a number field, in the key or not,
    // or none as the value; a histogram of either kind, or none.
    template <std::size_t N>
    bool aggregate(ksurf_config& c, const std::uint16_t (&key_lens)[N]) {
        std::vector<unsigned> key, rest, numbers;
        for (unsigned i = 0; i < c.nfields; i++) {
            (below(3) ? key : rest).push_back(i);
            if (is_number(c.fields[i])) numbers.push_back(i);
        }
        if (key.empty()) return false;
        auto width = [&](unsigned i) { return is_number(c.fields[i]) ? 8u : (c.fields[i].size + 7u) / 8 * 8; };
        std::vector<std::uint16_t> out(c.nfields);
        unsigned end = 0;
        bool strings = false;
        for (unsigned i : key) {
            out[i] = static_cast<std::uint16_t>(end);
            end += width(i);
            strings |= !is_number(c.fields[i]);
        }
        const auto fits = std::find_if(std::begin(key_lens), std::end(key_lens), [&](std::uint16_t l) { return l >= end; });
        if (fits == std::end(key_lens)) return false;
        ksurf_agg_cfg& g = c.agg;
        g.on = 1;
        g.key_len = *fits;
        g.zero_words = static_cast<std::uint16_t>(strings || end < g.key_len ? g.key_len / 8 : 0);
        end = g.key_len;
        for (unsigned i : rest) {
            out[i] = static_cast<std::uint16_t>(end);
            end += width(i);
        }
        for (unsigned k = 0; k < c.nops; k++)
            if (c.ops[k].code <= KSURF_OP_STR_CONTAINS) c.ops[k].at = out[c.ops[k].field];
        for (unsigned i = 0; i < c.nfields; i++) c.fields[i].out = out[i];
        c.data_len = static_cast<std::uint16_t>(end);
        g.value_at = g.stack_at = KSURF_AGG_NO_VALUE;
        if (!numbers.empty() && below(3)) {
            const ksurf_field_cfg& f = c.fields[numbers[below(static_cast<unsigned>(numbers.size()))]];
            g.value_at = f.out;
            g.value_signed = f.is_signed;
        }
        static constexpr std::int64_t lmins[] = {0, -5, 100, -(std::int64_t{1} << 40), std::int64_t{1} << 35};
        static constexpr std::uint64_t lsteps[] = {1, 3, 100, 1 << 20, std::uint64_t{1} << 33};
        switch (below(3)) {
        case 0: break;
        case 1:
            g.hist = KSURF_HIST_LOG2;
            g.nbuckets = KSURF_AGG_LOG2_BUCKETS;
            break;
        default:
            g.hist = KSURF_HIST_LINEAR;
            g.nbuckets = static_cast<std::uint16_t>(3 + below(KSURF_AGG_LOG2_BUCKETS - 2));
            g.lmin = lmins[below(std::size(lmins))];
            g.lstep = lsteps[below(std::size(lsteps))];
        }
        return true;
    }

private:
    void shape(ksurf_field_cfg& f, unsigned size) {
        f.size = static_cast<std::uint16_t>(size);
        f.is_signed = coin();
        unsigned bits = size * 8, first = 0;
        if (below(4) == 0) {  // a bitfield within the bytes loaded
            bits = 1 + below(size * 8);
            first = below(size * 8 - bits + 1);
        }
        f.lshift = static_cast<std::uint8_t>(64 - first - bits);
        f.rshift = static_cast<std::uint8_t>(64 - bits);
    }

    void field(ksurf_field_cfg& f) {
        static constexpr unsigned sizes[] = {1, 2, 4, 8, 3};
        const unsigned size = sizes[below(below(4) ? 4 : 5)];
        f.base = KSURF_BASE_CTX_U64;
        f.base_off = static_cast<std::int32_t>(8 * below(8));
        switch (below(11)) {
        case 0: // an argument itself
        case 1:
            f.access = KSURF_ACCESS_VALUE;
            shape(f, coin() ? 8 : size);
            break;
        case 2: // the context's own bytes: direct loads where aligned
            f.base = KSURF_BASE_CTX;
            f.access = KSURF_ACCESS_LOAD;
            f.offset = static_cast<std::int32_t>(below(8 * kArgs - size + 1));
            shape(f, size);
            break;
        case 3: // user memory an argument points to
            f.access = KSURF_ACCESS_USER_LOAD;
            f.offset = static_cast<std::int32_t>(below(64));
            shape(f, size);
            break;
        case 4: // a user string
        case 5:
            f.access = KSURF_ACCESS_USER_STRING;
            f.size = static_cast<std::uint16_t>(1 + below(coin() ? 20 : 256));
            break;
        case 6: // comm
            f.base = KSURF_BASE_COMM;
            f.access = KSURF_ACCESS_STRING;
            f.size = KSURF_COMM_LEN;
            break;
        case 7: // pid, tid, cpu
            f.base = static_cast<std::uint8_t>(KSURF_BASE_PID + below(3));
            f.access = KSURF_ACCESS_VALUE;
            shape(f, coin() ? 8 : 4);
            break;
        case 8: // a pointer chain: the context's word, then kernel memory at it (user: 0)
            f.base = KSURF_BASE_CTX;
            f.nsteps = 1;
            f.steps[0] = static_cast<std::int32_t>(8 * below(kArgs));
            f.access = KSURF_ACCESS_LOAD;
            f.offset = static_cast<std::int32_t>(below(16));
            shape(f, size);
            break;
        case 9: // a packet header's bytes (unreadable, or none set: 0 either way)
            f.base = KSURF_BASE_CTX;
            f.packet_step = 0;
            f.layer = static_cast<std::uint8_t>(2 + below(3));
            f.access = KSURF_ACCESS_LOAD;
            f.offset = static_cast<std::int32_t>(below(16));
            shape(f, size);
            break;
        default: // a __data_loc string in the context
            f.base = KSURF_BASE_CTX;
            f.access = KSURF_ACCESS_DATALOC;
            f.offset = static_cast<std::int32_t>(8 * below(8) + 4 * coin());
            f.size = KSURF_MAX_STR;
        }
    }

    std::uint8_t pattern(std::vector<ksurf_pattern>& patterns, const std::string& text) {
        ksurf_pattern p{};
        p.len = static_cast<std::uint32_t>(text.size());
        p.full = p.len / 8;
        p.last_mask = (std::uint64_t{1} << (8 * (p.len % 8))) - 1;
        std::memcpy(p.words, text.data(), text.size());
        for (std::size_t i = 0; i < patterns.size(); i++)
            if (std::memcmp(&patterns[i], &p, sizeof p) == 0) return static_cast<std::uint8_t>(i);
        patterns.push_back(p);
        return static_cast<std::uint8_t>(patterns.size() - 1);
    }

    void leaf(const ksurf_config& c, std::vector<ksurf_op>& ops, std::vector<ksurf_pattern>& patterns) {
        const unsigned i = below(c.nfields);
        const ksurf_field_cfg& f = c.fields[i];
        ksurf_op op{};
        op.field = static_cast<std::uint8_t>(i);
        op.at = f.out;
        if (is_number(f)) {
            op.code = static_cast<std::uint8_t>(below(KSURF_OP_SGE + 1));
            op.imm = f.base == KSURF_BASE_PID ? pid_ + below(3) - 1 : f.base == KSURF_BASE_TID ? tid_ + below(3) - 1 : number();
        } else {
            op.code = coin() ? KSURF_OP_STR_EQ : KSURF_OP_STR_PREFIX;
            const std::string w = below(4) ? word() : "ksurf-filter";
            op.slot = pattern(patterns, coin() ? w : w.substr(0, below(static_cast<unsigned>(w.size()) + 1)));
        }
        ops.push_back(op);
    }

    void tree(const ksurf_config& c, unsigned depth, std::vector<ksurf_op>& ops, std::vector<ksurf_pattern>& patterns) {
        const unsigned kind = depth >= 4 ? 0 : below(depth ? 5 : 4);
        ksurf_op op{};
        switch (kind) {
        case 0:
        case 1: return leaf(c, ops, patterns);
        case 2:
            tree(c, depth + 1, ops, patterns);
            op.code = KSURF_OP_NOT;
            break;
        default:
            tree(c, depth + 1, ops, patterns);
            tree(c, depth + 1, ops, patterns);
            op.code = kind == 3 ? KSURF_OP_AND : KSURF_OP_OR;
        }
        ops.push_back(op);
    }

    std::mt19937_64 rng_;
    std::uint32_t pid_ = 0, tid_ = 0;
    std::array<char, 128> memory_{};
    std::array<std::string, 3> strings_;
};

// The test's cgroup v2 id; 0 (the gate off) without one.
std::uint64_t own_cgroup() {
    std::ifstream in("/proc/self/cgroup");
    const auto mounts = cgroup2_mounts();
    for (std::string line; std::getline(in, line) && !mounts.empty();)
        if (line.starts_with("0::")) return cgroup_id(mounts.front() + line.substr(3));
    return 0;
}

// The thread's name for the test's runs; the old one back at the end.
class Comm {
public:
    Comm() { prctl(PR_GET_NAME, old_); }
    ~Comm() { prctl(PR_SET_NAME, old_); }
    void set(const std::string& name) { prctl(PR_SET_NAME, name.c_str()); }

private:
    char old_[17] = {};
};

// The thread on one CPU while it lives: a filter on `cpu` decides both runs of an input the
// same way only if no migration comes between them (a busy CI host moved the thread once).
class PinnedToThisCpu {
public:
    PinnedToThisCpu() {
        sched_getaffinity(0, sizeof old_, &old_);
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        if (sched_setaffinity(0, sizeof one, &one)) fail("sched_setaffinity: {}", errno_text(errno));
    }
    ~PinnedToThisCpu() { sched_setaffinity(0, sizeof old_, &old_); }

private:
    cpu_set_t old_{};
};

TEST(FilterCompiler, AgreesWithTheInterpreterOnRandomFilters) {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
    const char* env = std::getenv("KSURF_FILTER_SEED");
    const std::uint64_t seed = env ? std::strtoull(env, nullptr, 0) : 20261201;
    Decisions d;
    Generator g(seed);
    Comm comm;
    PinnedToThisCpu pinned;
    const std::uint32_t self = static_cast<std::uint32_t>(getpid()), tid = static_cast<std::uint32_t>(gettid());
    const std::uint64_t cgroup = own_cgroup();
    const std::uint8_t one = 1;
    unsigned decided[3] = {}, compared = 0;
    for (unsigned n = 0; n < 160; n++) {
        SCOPED_TRACE(fmt::format("seed {} configuration {}", seed, n));
        const ksurf_config cfg = g.config(self, cgroup, tid);
        if (g.coin()) bpf_map_update_elem(d.tmpl().map("pids"), &self, &one, BPF_ANY);
        else bpf_map_delete_elem(d.tmpl().map("pids"), &self);
        const CompiledFilter compiled = compile_filter(cfg, BpfAttach::RawTp, {d.tmpl().map("pids"), d.tmpl().map("scratch")});
        if (compiled.code.empty()) {
            // Only a filter that no hit can pass is left to the interpreter here.
            EXPECT_EQ(compiled.why_not, "a filter that no hit passes");
            continue;
        }
        const Fd interpreted = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, d.rodata(cfg).get());
        Fd prog;
        ASSERT_NO_THROW(prog = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, d.rodata(interpreter_config(cfg)).get(), {}, compiled.code))
            << compiled.code.size() << " instructions";
        for (unsigned k = 0; k < 40; k++) {
            auto args = g.inputs(cfg);
            comm.set(g.coin() ? g.word() : "ksurf-filter");
            const int want = d.run(interpreted.get(), cfg, args);
            const int got = d.run(prog.get(), cfg, args);
            ASSERT_EQ(got, want) << "input " << k;
            decided[want]++;
            compared++;
        }
    }
    std::cout << fmt::format("seed {}: {} inputs compared; {} dropped by the gates, {} filtered, {} sent\n", seed, compared, decided[0],
                             decided[1], decided[2]);
    // The generator must reach every outcome, or agreement proves little.
    EXPECT_GT(compared, 4000u);
    for (int outcome = 0; outcome < 3; outcome++) EXPECT_GT(decided[outcome], compared / 50) << "outcome " << outcome;
}

// A 32-bit number compared by its low half (BPF_JMP32), as the compiler does where every
// constant is the extension of its own low half: every comparison, sign- and zero-extended,
// of every 32-bit edge against every edge, decided as the interpreter decides it.
TEST(FilterCompiler, ThirtyTwoBitComparisonsAgreeOnEveryEdge) {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
    Decisions d;
    constexpr std::uint64_t edges[] = {0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x100000000,
                                       0xffffffff80000000, ~1ULL, ~0ULL};
    unsigned narrowed = 0;
    for (const std::uint8_t is_signed : {0, 1})
        for (std::uint8_t code = 0; code <= KSURF_OP_SGE; code++)
            for (const std::uint64_t imm : edges) {
                SCOPED_TRACE(fmt::format("signed {} op {} against {:#x}", is_signed, code, imm));
                ksurf_config c{};
                c.count_filtered = 1;
                c.nfields = c.nfilter = 1;
                c.data_len = 8;
                ksurf_field_cfg& f = c.fields[0];
                f.base = KSURF_BASE_CTX_U64;
                f.access = KSURF_ACCESS_VALUE;
                f.size = 4;
                f.lshift = f.rshift = 32;
                f.is_signed = is_signed;
                f.packet_step = KSURF_NO_PACKET;
                c.ops[0].code = code;
                c.ops[0].imm = imm;
                c.nops = 1;
                const CompiledFilter compiled = compile_filter(c, BpfAttach::RawTp, {d.tmpl().map("pids"), d.tmpl().map("scratch")});
                if (compiled.code.empty()) {
                    EXPECT_EQ(compiled.why_not, "a filter that no hit passes");
                    continue;
                }
                narrowed += std::any_of(compiled.code.begin(), compiled.code.end(),
                                        [](const bpf_insn& i) { return BPF_CLASS(i.code) == BPF_JMP32; });
                const Fd interpreted = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, d.rodata(c).get());
                const Fd prog = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, d.rodata(interpreter_config(c)).get(), {}, compiled.code);
                for (const std::uint64_t value : edges) {
                    std::array<std::uint64_t, kArgs> args{value};
                    EXPECT_EQ(d.run(prog.get(), c, args), d.run(interpreted.get(), c, args)) << fmt::format("value {:#x}", value);
                }
            }
    // Constants of 33 bits and more keep the 64-bit comparison: not every one narrows.
    EXPECT_GT(narrowed, 100u);
    EXPECT_LT(narrowed, 200u);
}

// ---- aggregations compiled whole ----

constexpr std::uint16_t kKeyLens[] = {16, 64, 256};
// Few enough that a configuration's inputs fill the map: the full map's path is taken too.
constexpr std::uint32_t kAggKeys = 12;

bpf_map_info map_info(int fd) {
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) fail("bpf_obj_get_info_by_fd: {}", errno_text(errno));
    return info;
}

// A map of FD's type and sizes, for the compiled program's own updates.
Fd map_like(int fd) {
    const bpf_map_info info = map_info(fd);
    Fd copy(bpf_map_create(static_cast<bpf_map_type>(info.type), "ksurf_test", info.key_size, info.value_size, info.max_entries, nullptr));
    if (!copy) fail("bpf_map_create: {}", errno_text(errno));
    return copy;
}

// The probe template with its aggregation maps sized for keys of KEY_LEN bytes, and a
// second `aggs`, `agg_zero` and `scratch` that the compiled program updates, so that the
// two programs run each input side by side.
class Aggregations {
public:
    explicit Aggregations(std::uint16_t key_len)
        : tmpl_(elf_of<probe_bpf>(), {"ksurf_probe"}, [key_len](bpf_map* m) {
              const std::string_view name = bpf_map__name(m);
              const std::uint32_t value = sizeof(ksurf_agg_value) + 8 * KSURF_AGG_LOG2_BUCKETS;
              if (name == "aggs") {
                  bpf_map__set_key_size(m, key_len);
                  bpf_map__set_value_size(m, value);
                  bpf_map__set_max_entries(m, kAggKeys);
              } else if (name == "agg_zero") {
                  bpf_map__set_value_size(m, value);
              }
          }),
          aggs_(map_like(tmpl_.map("aggs"))), zero_(map_like(tmpl_.map("agg_zero"))), scratch_(map_like(tmpl_.map("scratch"))) {}

    const BpfTemplate& tmpl() const { return tmpl_; }
    FilterMaps compiled_maps() const { return {tmpl_.map("pids"), scratch_.get(), aggs_.get(), zero_.get(), tmpl_.map("agg_stacks")}; }

    // What a program left: each key's values on every CPU, and its counters.
    struct State {
        std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>> values;
        std::uint64_t filtered = 0, full = 0;
        bool operator==(const State&) const = default;
    };
    State interpreted() const { return state(tmpl_.map("aggs"), tmpl_.map("scratch")); }
    State compiled() const { return state(aggs_.get(), scratch_.get()); }

    // Both programs' maps emptied and counters zeroed.
    void clear() const {
        for (const int aggs : {tmpl_.map("aggs"), aggs_.get()}) {
            for (const auto& [key, value] : state(aggs, scratch_.get()).values) bpf_map_delete_elem(aggs, key.data());
        }
        for (const int scratch : {tmpl_.map("scratch"), scratch_.get()}) {
            const std::vector<std::uint8_t> zeroes(value_size(scratch) * static_cast<std::size_t>(libbpf_num_possible_cpus()));
            const std::uint32_t zero = 0;
            if (bpf_map_update_elem(scratch, &zero, zeroes.data(), BPF_ANY)) fail("clearing the scratch: {}", errno_text(errno));
        }
    }

private:
    // A per-CPU map's value, as one CPU's part of a lookup's.
    static std::size_t value_size(int fd) { return (map_info(fd).value_size + 7) / 8 * 8; }
    State state(int aggs, int scratch) const {
        const bpf_map_info info = map_info(aggs);
        State s;
        std::vector<std::uint8_t> key(info.key_size), next(info.key_size), values(value_size(aggs) * static_cast<std::size_t>(libbpf_num_possible_cpus()));
        for (void* at = nullptr; !bpf_map_get_next_key(aggs, at, next.data()); at = key.data()) {
            key = next;
            if (bpf_map_lookup_elem(aggs, key.data(), values.data())) fail("reading a key back: {}", errno_text(errno));
            s.values[key] = values;
        }
        const auto counts = sum_per_cpu(scratch, 0, KSURF_STAT_MAX);
        s.filtered = counts[KSURF_STAT_FILTERED];
        s.full = counts[KSURF_STAT_AGG_FULL];
        return s;
    }

    BpfTemplate tmpl_;
    Fd aggs_, zero_, scratch_;
};

// Random aggregating configurations (keys of numbers, strings, comm, pid, tid and cpu;
// count-only, values in and out of the key; both histograms) on random inputs, each input
// run once to three times so that keys are found as well as inserted, and the map fills:
// the compiled whole program leaves what the interpreter leaves.
TEST(CompiledAggregation, AgreesWithTheInterpreterOnRandomKeysAndValues) {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
    const char* env = std::getenv("KSURF_FILTER_SEED");
    const std::uint64_t seed = env ? std::strtoull(env, nullptr, 0) : 20261202;
    std::map<std::uint16_t, Aggregations> by_key_len;
    for (const std::uint16_t l : kKeyLens) by_key_len.try_emplace(l, l);
    Generator g(seed);
    Comm comm;
    PinnedToThisCpu pinned;
    const std::uint32_t self = static_cast<std::uint32_t>(getpid()), tid = static_cast<std::uint32_t>(gettid());
    const std::uint64_t cgroup = own_cgroup();
    unsigned whole = 0, keys = 0, repeats = 0, full = 0;
    for (unsigned n = 0; n < 120; n++) {
        SCOPED_TRACE(fmt::format("seed {} configuration {}", seed, n));
        ksurf_config cfg = g.config(self, cgroup, tid);
        if (!g.aggregate(cfg, kKeyLens)) continue;
        const Aggregations& d = by_key_len.at(cfg.agg.key_len);
        d.clear();
        const std::uint8_t one = 1;
        if (g.coin()) bpf_map_update_elem(d.tmpl().map("pids"), &self, &one, BPF_ANY);
        else bpf_map_delete_elem(d.tmpl().map("pids"), &self);
        const CompiledFilter compiled = compile_filter(cfg, BpfAttach::RawTp, d.compiled_maps());
        if (!compiled.whole) {
            // A filter no hit passes, or a key and filter too large for the stack.
            EXPECT_TRUE(compiled.why_not == "a filter that no hit passes" || compiled.aggregation_why_not.find("stack") != std::string::npos)
                << compiled.why_not << compiled.aggregation_why_not;
            continue;
        }
        whole++;
        const Fd interpreted = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, probe_rodata(d.tmpl(), cfg).get());
        Fd prog;
        ASSERT_NO_THROW(prog = d.tmpl().load_code("ksurf_probe", BpfAttach::RawTp, compiled.code)) << compiled.code.size() << " instructions";
        for (unsigned k = 0; k < 30; k++) {
            auto args = g.inputs(cfg);
            comm.set(g.coin() ? g.word() : "ksurf-filter");
            for (unsigned r = 1 + g.below(3); r--;) {
                test_run(interpreted.get(), args);
                test_run(prog.get(), args);
                repeats += r > 0;
            }
        }
        const Aggregations::State want = d.interpreted(), got = d.compiled();
        ASSERT_EQ(got.values.size(), want.values.size());
        ASSERT_TRUE(got == want) << fmt::format("{} keys, {} filtered, {} refused by the full map; compiled: {} keys, {} filtered, {} refused",
                                                want.values.size(), want.filtered, want.full, got.values.size(), got.filtered, got.full);
        keys += static_cast<unsigned>(want.values.size());
        full += want.full > 0;
    }
    std::cout << fmt::format("seed {}: {} configurations compiled whole, {} keys, {} inputs run again, {} maps filled\n", seed,
                             whole, keys, repeats, full);
    // The generator must reach every path, or agreement proves little.
    EXPECT_GT(whole, 40u);
    EXPECT_GT(keys, 100u);
    EXPECT_GT(full, 3u);
}

// The histograms' bucket edges and the extremes' signedness, which random values seldom
// land on: one key (comm), the value an argument, run through every edge of the log2
// buckets and of linear ones (each step's ends, the first and last buckets', the outside
// ones'), signed and unsigned, each run by both programs.
TEST(CompiledAggregation, BucketsAndExtremesAgreeOnEveryEdge) {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
    const Aggregations d(KSURF_COMM_LEN);
    PinnedToThisCpu pinned;
    struct Shape {
        std::uint8_t hist;
        std::int64_t lmin;
        std::uint64_t lstep;
        std::uint16_t nbuckets;
    };
    const Shape shapes[] = {{KSURF_HIST_LOG2, 0, 0, KSURF_AGG_LOG2_BUCKETS},
                            {KSURF_HIST_LINEAR, 0, 10, 12},
                            {KSURF_HIST_LINEAR, -50, 7, 3},
                            {KSURF_HIST_LINEAR, -(std::int64_t{1} << 40), std::uint64_t{1} << 33, 66},
                            {KSURF_HIST_LINEAR, std::int64_t{1} << 35, 1, 20}};
    for (const std::uint8_t is_signed : {0, 1})
        for (const Shape& shape : shapes) {
            SCOPED_TRACE(fmt::format("signed {} histogram {} from {} by {} in {}", is_signed, shape.hist, shape.lmin, shape.lstep, shape.nbuckets));
            ksurf_config c{};
            c.nfields = 2;
            c.fields[0].base = KSURF_BASE_COMM;
            c.fields[0].access = KSURF_ACCESS_STRING;
            c.fields[0].size = KSURF_COMM_LEN;
            ksurf_field_cfg& v = c.fields[1];
            v.base = KSURF_BASE_CTX_U64;
            v.access = KSURF_ACCESS_VALUE;
            v.size = 8;
            v.is_signed = is_signed;
            v.out = KSURF_COMM_LEN;
            for (ksurf_field_cfg& f : c.fields) f.packet_step = KSURF_NO_PACKET;
            c.data_len = KSURF_COMM_LEN + 8;
            ksurf_agg_cfg& g = c.agg;
            g.on = 1;
            g.key_len = KSURF_COMM_LEN;
            g.value_at = KSURF_COMM_LEN;
            g.value_signed = is_signed;
            g.stack_at = KSURF_AGG_NO_VALUE;
            g.hist = shape.hist;
            g.lmin = shape.lmin;
            g.lstep = shape.lstep;
            g.nbuckets = shape.nbuckets;
            const CompiledFilter compiled = compile_filter(c, BpfAttach::RawTp, d.compiled_maps());
            ASSERT_TRUE(compiled.whole) << compiled.aggregation_why_not;
            d.clear();
            const Fd interpreted = d.tmpl().load("ksurf_probe", BpfAttach::RawTp, probe_rodata(d.tmpl(), c).get());
            const Fd prog = d.tmpl().load_code("ksurf_probe", BpfAttach::RawTp, compiled.code);
            std::vector<std::uint64_t> values = {0, 1, ~0ULL, 1ULL << 63, ~0ULL >> 1};
            for (unsigned k = 1; k < 64; k++)
                for (const std::uint64_t delta : {0ULL, 1ULL, ~0ULL}) values.push_back((1ULL << k) + delta);
            const int n = shape.nbuckets;
            for (const int k : {-2, -1, 0, 1, 2, n - 4, n - 3, n - 2, n - 1, n})
                for (const std::uint64_t delta : {0ULL, 1ULL, ~0ULL})
                    values.push_back(static_cast<std::uint64_t>(shape.lmin) + static_cast<std::uint64_t>(k) * shape.lstep + delta);
            for (const std::uint64_t value : values) {
                std::array<std::uint64_t, kArgs> args{value};
                test_run(interpreted.get(), args);
                test_run(prog.get(), args);
            }
            const Aggregations::State want = d.interpreted(), got = d.compiled();
            ASSERT_EQ(want.values.size(), 1u);
            EXPECT_TRUE(got == want);
        }
}

}  // namespace
}  // namespace ksurf
