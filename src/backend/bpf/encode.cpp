// PlannedProbe → ksurf_config, and payload → fields: the two ends of what bpf/interp.bpf.h
// does in between.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <deque>
#include <optional>

#include "internal.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

using Base = Fetch::Base;
using Access = Fetch::Access;
using Kind = BpfOutput::Kind;

static_assert(KSURF_MAX_FIELDS <= 0xff && KSURF_MAX_PATTERNS <= 0xff, "indexes are __u8");
static_assert(KSURF_MAX_PATTERN % 8 == 0, "patterns are compared in u64 words");
static_assert(KSURF_MAX_OPS <= 63, "the filter's stack is the bits of a u64");
static_assert(KSURF_MAX_DATA + 8 <= 0xffff, "payload offsets are __u16");
static_assert(KSURF_MAX_FIELDS * KSURF_MAX_STR <= KSURF_MAX_DATA, "any fields fit a payload");
static_assert(sizeof(ksurf_field_cfg) == 56 && sizeof(ksurf_op) == 16 && sizeof(ksurf_pattern) == 88 &&
                  sizeof(ksurf_config) == 2144 + 8 + 8 * KSURF_MAX_CBPF + sizeof(ksurf_layout) + sizeof(ksurf_agg_cfg) &&
                  sizeof(ksurf_layout) == 24 && sizeof(ksurf_agg_cfg) == 32,
              "no implicit padding: configs compare bytewise");

// x86-64 SysV: the registers of the first six integer arguments.
constexpr std::array<std::string_view, 6> kArgRegs = {"di", "si", "dx", "cx", "r8", "r9"};
// Every struct pt_regs member a kprobe may name.
constexpr std::array<std::string_view, 21> kRegs = {"r15", "r14", "r13", "r12", "bp", "bx", "r11",
                                                    "r10", "r9",  "r8",  "ax",  "cx", "dx", "si",
                                                    "di",  "orig_ax", "ip", "cs", "flags", "sp", "ss"};

// The context is the probed task's struct pt_regs (kprobes and uprobes alike).
bool is_kprobe(BpfAttach a) {
    return a == BpfAttach::Kprobe || a == BpfAttach::Kretprobe || a == BpfAttach::KprobeMulti ||
           a == BpfAttach::KretprobeMulti || a == BpfAttach::Uprobe || a == BpfAttach::Uretprobe;
}
// The context is an array of u64 arguments (fentry/fexit, tp_btf, raw_tp).
bool is_trampoline(BpfAttach a) {
    return a == BpfAttach::Fentry || a == BpfAttach::Fexit || a == BpfAttach::TpBtf || a == BpfAttach::RawTp;
}
bool is_return(BpfAttach a) {
    return a == BpfAttach::Fexit || a == BpfAttach::Kretprobe || a == BpfAttach::KretprobeMulti ||
           a == BpfAttach::Uretprobe;
}

// A fetched value: a plan field, or one the filter needs that the plan does not print.
struct Slot {
    const PlannedField* field;
    bool filter = false;  // read by the filter: fetched before it runs
    ksurf_field_cfg cfg{};
    Kind kind = Kind::Number;
    std::uint16_t size = 8;  // payload bytes
    unsigned bits = 64;
};

class Encoder {
public:
    Encoder(const PlannedProbe& probe, const BpfFrame& frame) : probe_(probe), frame_(frame), label_(probe_label(probe)) {}

    BpfProgramSpec run() {
        for (const auto& f : probe_.fields) slots_.push_back({&f});
        if (probe_.filter) mark(*probe_.filter);
        if (probe_.packet) {  // the packet's sk_buff is read before the program runs
            if (probe_.packet->skb_field >= slots_.size()) fail("{}: the packet's sk_buff is not a field", label_);
            slots_[probe_.packet->skb_field].filter = true;
        }
        if (slots_.size() > KSURF_MAX_FIELDS)
            fail("{}: {} fields, counting those the filter reads, exceed the BPF backend's {}", label_, slots_.size(),
                 KSURF_MAX_FIELDS);
        for (auto& s : slots_) encode(s);

        BpfProgramSpec spec;
        auto& c = spec.config;
        // The filter's fields first, each group in plan order (stable).
        for (std::size_t i = 0; i < slots_.size(); i++) order_.push_back(i);
        std::stable_partition(order_.begin(), order_.end(), [&](std::size_t i) { return slots_[i].filter; });
        std::vector<std::size_t> cfg_index(slots_.size());
        for (std::size_t k = 0; k < order_.size(); k++) cfg_index[order_[k]] = k;

        // An aggregation's key first, then numbers: 8-byte aligned for the filter's u64 loads.
        std::size_t end = probe_.aggregate ? key(spec) : 0;
        for (Kind pass : {Kind::Number, Kind::String}) {
            for (std::size_t i = 0; i < slots_.size(); i++) {
                auto& s = slots_[i];
                if (is_key(i) || (s.kind == Kind::Number) != (pass == Kind::Number)) continue;
                s.cfg.out = static_cast<std::uint16_t>(std::min<std::size_t>(end, 0xffff));
                end += s.size;
            }
        }
        if (probe_.packet && probe_.packet->snaplen) {
            c.pkt_out = static_cast<std::uint16_t>(std::min<std::size_t>((end + 7) & ~std::size_t{7}, KSURF_MAX_DATA));
            if (c.pkt_out + 8 >= KSURF_MAX_DATA) fail("{}: no room in the event for the packet", label_);
            c.snaplen = static_cast<std::uint16_t>(std::min<std::size_t>(probe_.packet->snaplen, KSURF_MAX_DATA - c.pkt_out - 8));
            end = c.pkt_out + 8 + c.snaplen;
        }
        bool printed = std::any_of(probe_.fields.begin(), probe_.fields.end(), [](const auto& f) { return !f.hidden; });
        if (probe_.kind == ProbeKind::Tracepoint && !printed && frame_.record_size && !probe_.aggregate) {
            spec.raw_record = true;
            c.record_out = static_cast<std::uint16_t>(std::min<std::size_t>(end, 0xffff));
            // The record is printed whole: as much of it as fits.
            c.record_len = static_cast<std::uint16_t>(end < KSURF_MAX_DATA ? std::min<std::size_t>(frame_.record_size, KSURF_MAX_DATA - end) : 0);
            end += c.record_len;
        }

        c.nfields = static_cast<std::uint16_t>(slots_.size());
        c.nfilter = static_cast<std::uint16_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.filter; }));
        c.data_len = static_cast<std::uint16_t>(end);
        for (std::size_t k = 0; k < order_.size(); k++) c.fields[k] = slots_[order_[k]].cfg;
        if (probe_.filter) emit(*probe_.filter, c, cfg_index);
        if (probe_.packet) {
            try {
                encode_cbpf(probe_.packet->program, probe_.packet->expr, c);
            } catch (const Error& e) {
                fail("{}: {}", label_, e.what());
            }
            c.pcap_field = static_cast<std::uint8_t>(cfg_index[probe_.packet->skb_field]);
        }
        c.nops = static_cast<std::uint16_t>(ops_.size());
        std::copy(ops_.begin(), ops_.end(), c.ops);
        std::copy(patterns_.begin(), patterns_.end(), c.patterns);

        if (probe_.aggregate) value(c);
        for (std::size_t i = 0; i < probe_.fields.size(); i++)
            if (!probe_.fields[i].hidden) spec.outputs.push_back(output(i));
        spec.presence = packet_presence(probe_);
        return spec;
    }

private:
    bool is_key(std::size_t slot) const {
        return probe_.aggregate && std::ranges::find(probe_.aggregate->keys, slot) != probe_.aggregate->keys.end();
    }

    // The key fields at the start of the payload, each in whole words, the stack id last;
    // the value's offset, once every slot has one. Returns the key's length.
    std::size_t key(BpfProgramSpec& spec) {
        const PlannedAggregate& a = *probe_.aggregate;
        ksurf_agg_cfg& g = spec.config.agg;
        std::size_t end = 0;
        bool strings = false;
        for (std::size_t i : a.keys) {
            Slot& s = slots_[i];
            s.cfg.out = static_cast<std::uint16_t>(end);
            end += (bpf_payload_bytes(*s.field) + 7) & ~std::size_t{7};
            // Strings stop at their NUL, comm too where bpf_get_current_comm does not pad it
            // (6.1's strscpy()).
            strings |= s.kind != Kind::Number;
            spec.key_outputs.push_back(output(i));
        }
        g.stack_at = KSURF_AGG_NO_VALUE;
        if (a.stack) {
            g.stack_at = static_cast<std::uint16_t>(end);
            end += 8;
        }
        if (end > a.key_len || a.key_len > KSURF_AGG_MAX_KEY || a.key_len % 8)
            fail("{}: an aggregation key of {} bytes (the run's is {}; at most {})", label_, end, a.key_len, KSURF_AGG_MAX_KEY);
        g.on = 1;
        g.key_len = a.key_len;
        // Words past this probe's own key are another probe's: zeroed too, as the key's.
        g.zero_words = strings || end < a.key_len ? a.key_len / 8 : 0;
        g.value_at = KSURF_AGG_NO_VALUE;
        g.hist = a.hist == PlannedAggregate::Hist::Log2 ? KSURF_HIST_LOG2 : a.hist == PlannedAggregate::Hist::Linear ? KSURF_HIST_LINEAR : KSURF_HIST_NONE;
        g.nbuckets = static_cast<std::uint16_t>(agg_buckets(a));
        g.lmin = a.lmin;
        g.lstep = a.lstep;
        return a.key_len;
    }

    // The value's offset, after the layout: a number of the payload.
    void value(ksurf_config& c) const {
        const auto& a = *probe_.aggregate;
        if (!a.value) return;
        const Slot& s = slots_[*a.value];
        if (s.kind != Kind::Number) fail("{}: '{}' is not a number to aggregate", label_, s.field->name);
        c.agg.value_at = s.cfg.out;
        c.agg.value_signed = s.cfg.is_signed;
    }

    BpfOutput output(std::size_t i) const {
        const Slot& s = slots_[i];
        const PlannedField& f = *s.field;
        return {f.name, s.kind, s.cfg.out, s.size, s.cfg.is_signed != 0, s.bits, f.swap_bits, f.display};
    }

    [[noreturn]] void refuse(const PlannedField& f, std::string_view why) const {
        fail("{}: field '{}': {}", label_, f.name, why);
    }
    [[noreturn]] void refuse(const PlannedComparison& c, std::string_view why) const {
        throw SourceError(fmt::format("{}: {}", label_, why), probe_.text, c.span.pos, c.span.len);
    }

    // ---- which fields the filter reads ----

    void mark(const PlannedFilterNode& node) {
        if (const auto* c = std::get_if<PlannedComparison>(&node)) {
            slots_[operand(*c)].filter = true;
            return;
        }
        for (const auto& n : std::get<std::unique_ptr<PlannedFilter>>(node)->operands) mark(n);
    }

    // The slot comparison C reads; a Comm/Pid/Tid subject reuses a plan field of that base
    // or adds one.
    std::size_t operand(const PlannedComparison& c) {
        using S = PlannedComparison::Subject;
        if (c.subject == S::Field) {
            if (c.field >= probe_.fields.size()) refuse(c, "the filter names a field the plan does not have");
            return c.field;
        }
        const Base base = c.subject == S::Comm ? Base::Comm : c.subject == S::Pid ? Base::Pid : Base::Tid;
        for (std::size_t i = 0; i < slots_.size(); i++)
            if (slots_[i].field->fetch.base == base && slots_[i].field->fetch.derefs.empty()) return i;
        auto& f = extra_.emplace_back();  // a deque: slots_ keeps pointers into it
        f.name = c.subject == S::Comm ? "comm" : c.subject == S::Pid ? "$pid" : "$tid";
        f.hidden = true;
        f.fetch.base = base;
        f.fetch.access = base == Base::Comm ? Access::String : Access::Value;
        f.fetch.size = base == Base::Comm ? KSURF_COMM_LEN : 4;
        f.fetch.is_signed = base != Base::Comm;
        slots_.push_back({&f});
        return slots_.size() - 1;
    }

    // ---- fields ----

    void encode(Slot& s) {
        const PlannedField& f = *s.field;
        const Fetch& x = f.fetch;
        auto& c = s.cfg;
        std::vector<std::int64_t> steps;
        c.packet_step = KSURF_NO_PACKET;
        if (is_common_pid(x)) {
            c.base = KSURF_BASE_TID;
            number(s, KSURF_ACCESS_VALUE);
            return;
        }
        if (x.base == Base::Packet) {
            if (!x.skb) refuse(f, "a packet header without its sk_buff");
            const Fetch& skb = *x.skb;
            if (skb.base == Base::Packet) refuse(f, "an sk_buff read from a packet header");
            base(skb, f, c, steps);
            steps.insert(steps.end(), skb.derefs.begin(), skb.derefs.end());
            if (skb.bit_size || skb.size != 8 || (skb.access != Access::Value && skb.access != Access::Load))
                refuse(f, "the sk_buff must be a pointer");
            if (skb.access == Access::Load) steps.push_back(skb.offset);
            c.packet_step = static_cast<std::uint8_t>(std::min<std::size_t>(steps.size(), KSURF_MAX_STEPS + 1));
            c.layer = static_cast<std::uint8_t>(x.layer);
        } else {
            base(x, f, c, steps);
        }
        steps.insert(steps.end(), x.derefs.begin(), x.derefs.end());
        if (steps.size() > KSURF_MAX_STEPS)
            refuse(f, fmt::format("{} pointer loads exceed the BPF backend's {}", steps.size(), KSURF_MAX_STEPS));
        c.nsteps = static_cast<std::uint8_t>(steps.size());
        for (std::size_t i = 0; i < steps.size(); i++) c.steps[i] = offset32(f, steps[i]);
        c.offset = offset32(f, x.offset);

        if (x.base == Base::Comm) {  // the header's comm, whatever the plan's access
            string(s, KSURF_COMM_LEN);
            c.offset = 0;
            return;
        }
        switch (x.access) {
        case Access::Value: number(s, KSURF_ACCESS_VALUE); break;
        case Access::Load:
            // Other widths (a u8[6] address) print as their bytes, as in tracepoint records.
            if ((x.bit_size || x.size == 1 || x.size == 2 || x.size == 4 || x.size == 8) && f.display != Display::String) {
                number(s, x.user ? KSURF_ACCESS_USER_LOAD : KSURF_ACCESS_LOAD);
            } else {
                if (x.user) refuse(f, "user memory is read as numbers of 1, 2, 4 or 8 bytes and strings");
                if (x.size == 0 || x.size > KSURF_MAX_STR)
                    refuse(f, fmt::format("{}-byte values cannot be fetched (at most {})", x.size, KSURF_MAX_STR));
                c.access = KSURF_ACCESS_BYTES;
                c.size = static_cast<std::uint16_t>(x.size);
                s.kind = f.display == Display::String ? Kind::String : Kind::Bytes;
                s.size = c.size;
            }
            break;
        case Access::String:
            // One byte more than the string's limit: a full char[N] keeps all N characters.
            string(s, std::min<std::uint32_t>(x.size ? x.size : KSURF_MAX_STR, KSURF_MAX_STR - 1) + 1);
            if (x.user) c.access = KSURF_ACCESS_USER_STRING;
            break;
        case Access::DataLoc:
            if (x.base != Base::Record || !steps.empty()) refuse(f, "a __data_loc string is read from the record itself");
            string(s, KSURF_MAX_STR);
            c.access = KSURF_ACCESS_DATALOC;
            break;
        }
    }

    // Whether X is a classic tracepoint's common_pid. perf hands the BPF program the record
    // with its first 8 bytes overwritten by a pt_regs pointer (perf_trace_run_bpf_submit):
    // read there, common_pid was half an address. It is the current thread's id.
    bool is_common_pid(const Fetch& x) const {
        return frame_.attach == BpfAttach::Tracepoint && x.base == Base::Record && x.access == Access::Load && x.offset == 4 &&
               x.size == 4 && !x.bit_size && x.derefs.empty();
    }

    // Where the chain of X starts.
    void base(const Fetch& x, const PlannedField& f, ksurf_field_cfg& c, std::vector<std::int64_t>& steps) const {
        const BpfAttach a = frame_.attach;
        const bool header = x.base == Base::Comm || x.base == Base::Pid || x.base == Base::Tid || x.base == Base::Cpu;
        if (header && !x.derefs.empty()) refuse(f, "header values cannot be dereferenced");
        switch (x.base) {
        case Base::Arg: {
            if (a == BpfAttach::Tracepoint) refuse(f, "TP_PROTO arguments (%N) exist in tp_btf and raw_tp programs only");
            if (is_return(a) && !is_trampoline(a)) refuse(f, "arguments are gone when a kretprobe runs (fexit keeps them)");
            const std::size_t n = frame_.arg_slots.size();
            if (is_trampoline(a) && n && x.arg >= n)
                refuse(f, fmt::format("{} reads only the {} declared parameters", bpf_attach_name(a), n));
            const unsigned slot = x.arg < n ? frame_.arg_slots[x.arg] : n ? frame_.ret_slot + (x.arg - static_cast<unsigned>(n)) : x.arg;
            c.base = KSURF_BASE_CTX_U64;
            if (is_trampoline(a)) {
                c.base_off = static_cast<std::int32_t>(8 * slot);
            } else if (slot < kArgRegs.size()) {
                c.base_off = reg(f, kArgRegs[slot]);
            } else {
                // On the stack above the return address, as the call left it.
                if (probe_.offset) refuse(f, fmt::format("argument {} is on the stack, which moves after function entry", x.arg));
                c.base_off = reg(f, "sp");
                steps.push_back(8 * (slot - kArgRegs.size() + 1));
            }
            break;
        }
        case Base::Reg:
            if (!is_kprobe(a)) refuse(f, fmt::format("%{} needs a kprobe (only kprobes have struct pt_regs)", x.reg));
            c.base = KSURF_BASE_CTX_U64;
            c.base_off = reg(f, x.reg);
            break;
        case Base::Retval:
            if (!is_return(a)) refuse(f, "$retval exists in return probes only");
            c.base = KSURF_BASE_CTX_U64;
            c.base_off = is_trampoline(a) ? static_cast<std::int32_t>(8 * frame_.ret_slot) : reg(f, "ax");
            break;
        case Base::Record:
            if (a != BpfAttach::Tracepoint)
                refuse(f, probe_.kind == ProbeKind::Tracepoint
                              ? "record fields exist only in the classic tracepoint's context, TP_PROTO arguments (%N) only in tp_btf/raw_tp's: a probe reads one kind"
                              : "only e probes have a tracepoint record");
            c.base = KSURF_BASE_CTX;
            break;
        case Base::Comm: c.base = KSURF_BASE_COMM; break;
        case Base::Pid: c.base = KSURF_BASE_PID; break;
        case Base::Tid: c.base = KSURF_BASE_TID; break;
        case Base::Cpu: c.base = KSURF_BASE_CPU; break;
        case Base::Packet: refuse(f, "a nested packet header");
        case Base::Global:
            c.base = KSURF_BASE_ADDR;
            c.base_off = static_cast<std::int32_t>(static_cast<std::uint32_t>(x.address));
            c.base_hi = static_cast<std::uint32_t>(x.address >> 32);
            break;
        case Base::Caller:
            // At entry the return address is the word at the stack pointer. A trampoline
            // saves it at a frame offset that varies with the kernel and the argument count.
            if (!is_kprobe(a) || is_return(a) || probe_.offset) refuse(f, "'caller' is read at a kprobe on function entry");
            c.base = KSURF_BASE_CTX_U64;
            c.base_off = reg(f, "sp");
            steps.push_back(0);
            break;
        }
    }

    std::int32_t reg(const PlannedField& f, std::string_view name) const {
        auto it = frame_.regs.find(name);
        if (it == frame_.regs.end()) refuse(f, fmt::format("struct pt_regs has no register '{}'", name));
        return it->second;
    }

    std::int32_t offset32(const PlannedField& f, std::int64_t off) const {
        if (off < INT32_MIN || off > INT32_MAX) refuse(f, fmt::format("offset {} is out of range", off));
        return static_cast<std::int32_t>(off);
    }

    void number(Slot& s, std::uint8_t access) const {
        const PlannedField& f = *s.field;
        const Fetch& x = f.fetch;
        if (x.size == 0 || x.size > 8) refuse(f, fmt::format("{}-byte values cannot be fetched as numbers", x.size));
        const unsigned bits = x.bit_size ? x.bit_size : x.size * 8;
        const unsigned first = x.bit_size ? x.bit_offset : 0;
        if (first + bits > 64) refuse(f, "a bitfield spanning more than 8 bytes");
        auto& c = s.cfg;
        c.access = access;
        // A bitfield loads the bytes that hold it; then shifts cut it out.
        c.size = static_cast<std::uint16_t>(x.bit_size ? (first + bits + 7) / 8 : x.size);
        c.is_signed = x.is_signed;
        c.lshift = static_cast<std::uint8_t>(64 - first - bits);
        c.rshift = static_cast<std::uint8_t>(64 - bits);
        s.kind = Kind::Number;
        s.bits = bits;
    }

    void string(Slot& s, std::uint32_t capacity) const {
        s.cfg.access = KSURF_ACCESS_STRING;
        s.cfg.size = static_cast<std::uint16_t>(capacity);
        s.kind = Kind::String;
        s.size = s.cfg.size;
    }

    // ---- the filter, in postfix ----

    void emit(const PlannedFilterNode& node, const ksurf_config& c, const std::vector<std::size_t>& cfg_index) {
        if (const auto* cmp = std::get_if<PlannedComparison>(&node)) return compare(*cmp, c, cfg_index);
        const auto& f = *std::get<std::unique_ptr<PlannedFilter>>(node);
        if (f.operands.empty() || (f.op == PlannedFilter::Op::Not && f.operands.size() != 1))
            fail("{}: malformed filter plan", label_);
        for (std::size_t i = 0; i < f.operands.size(); i++) {
            emit(f.operands[i], c, cfg_index);
            if (f.op == PlannedFilter::Op::Not) push(KSURF_OP_NOT);
            else if (i) push(f.op == PlannedFilter::Op::And ? KSURF_OP_AND : KSURF_OP_OR);
        }
    }

    void push(std::uint8_t code, ksurf_op op = {}) {
        if (ops_.size() >= KSURF_MAX_OPS)
            fail("{}: the filter needs more than the BPF backend's {} operations", label_, KSURF_MAX_OPS);
        op.code = code;
        ops_.push_back(op);
    }

    void compare(const PlannedComparison& cmp, const ksurf_config& c, const std::vector<std::size_t>& cfg_index) {
        const std::size_t i = operand(cmp);  // found again: the same slot as mark()'s
        const Slot& s = slots_[i];
        ksurf_op op{};
        op.field = static_cast<std::uint8_t>(cfg_index[i]);
        op.at = c.fields[cfg_index[i]].out;
        if (s.kind == Kind::Bytes) refuse(cmp, fmt::format("'{}' is a byte array, which filters cannot compare", s.field->name));
        if (s.kind == Kind::Number) {
            if (std::holds_alternative<std::string>(cmp.value)) refuse(cmp, "a number compared with a string");
            op.imm = std::visit([](auto v) -> std::uint64_t {
                if constexpr (std::is_same_v<decltype(v), std::string>) return 0;
                else return static_cast<std::uint64_t>(v);
            }, cmp.value);
            const bool sgn = s.cfg.is_signed;
            switch (cmp.op) {
            case CmpOp::Eq: return push(KSURF_OP_EQ, op);
            case CmpOp::Ne: return push(KSURF_OP_NE, op);
            case CmpOp::Lt: return push(sgn ? KSURF_OP_SLT : KSURF_OP_LT, op);
            case CmpOp::Le: return push(sgn ? KSURF_OP_SLE : KSURF_OP_LE, op);
            case CmpOp::Gt: return push(sgn ? KSURF_OP_SGT : KSURF_OP_GT, op);
            case CmpOp::Ge: return push(sgn ? KSURF_OP_SGE : KSURF_OP_GE, op);
            case CmpOp::Glob: refuse(cmp, "~ matches strings only");
            }
        }
        const auto* text = std::get_if<std::string>(&cmp.value);
        if (!text) refuse(cmp, "a string compared with a number");
        std::string_view pat = *text;
        std::uint8_t code = KSURF_OP_STR_EQ;
        switch (cmp.op) {
        case CmpOp::Eq:
        case CmpOp::Ne: break;
        case CmpOp::Glob: {
            const bool front = pat.starts_with('*');
            if (front) pat.remove_prefix(1);
            const bool back = pat.ends_with('*');
            if (back) pat.remove_suffix(1);
            if (pat.find_first_of("*?[\\") != std::string_view::npos)
                refuse(cmp, fmt::format("the BPF backend matches ~ patterns with '*' only at their start and end, not '{}'", *text));
            code = front && back ? KSURF_OP_STR_CONTAINS : front ? KSURF_OP_STR_SUFFIX : back ? KSURF_OP_STR_PREFIX : KSURF_OP_STR_EQ;
            break;
        }
        default: refuse(cmp, "strings compare with ==, != and ~ only");
        }
        if (pat.size() > KSURF_MAX_PATTERN)
            refuse(cmp, fmt::format("the BPF backend compares strings of at most {} bytes", KSURF_MAX_PATTERN));
        op.slot = pattern(cmp, pat);
        push(code, op);
        if (cmp.op == CmpOp::Ne) push(KSURF_OP_NOT);
    }

    std::uint8_t pattern(const PlannedComparison& cmp, std::string_view text) {
        ksurf_pattern p{};
        p.len = static_cast<std::uint32_t>(text.size());
        p.full = p.len / 8;
        std::memcpy(p.words, text.data(), text.size());  // little-endian words, like the loads
        p.last_mask = (std::uint64_t{1} << (8 * (p.len % 8))) - 1;
        for (std::size_t i = 0; i < patterns_.size(); i++)
            if (std::memcmp(&patterns_[i], &p, sizeof p) == 0) return static_cast<std::uint8_t>(i);
        if (patterns_.size() >= KSURF_MAX_PATTERNS)
            refuse(cmp, fmt::format("the filter compares with more than the BPF backend's {} distinct strings", KSURF_MAX_PATTERNS));
        patterns_.push_back(p);
        return static_cast<std::uint8_t>(patterns_.size() - 1);
    }

    const PlannedProbe& probe_;
    const BpfFrame& frame_;
    const std::string label_;
    std::deque<PlannedField> extra_;
    std::vector<Slot> slots_;
    std::vector<std::size_t> order_;
    std::vector<ksurf_op> ops_;
    std::vector<ksurf_pattern> patterns_;
};

}  // namespace

std::uint16_t bpf_payload_bytes(const PlannedField& f) {
    const Fetch& x = f.fetch;
    if (x.base == Base::Comm) return KSURF_COMM_LEN;
    switch (x.access) {
    case Access::Value: return 8;
    case Access::Load:
        if ((x.bit_size || x.size == 1 || x.size == 2 || x.size == 4 || x.size == 8) && f.display != Display::String) return 8;
        return static_cast<std::uint16_t>(std::min<std::uint32_t>(x.size, KSURF_MAX_STR));
    case Access::String: return static_cast<std::uint16_t>(std::min<std::uint32_t>(x.size ? x.size : KSURF_MAX_STR, KSURF_MAX_STR - 1) + 1);
    case Access::DataLoc: return KSURF_MAX_STR;
    }
    return 8;
}

void size_aggregate_map(bpf_map* m, const BpfOptions::Aggregate& a) {
    const std::string_view name = bpf_map__name(m);
    const auto value = static_cast<std::uint32_t>(sizeof(ksurf_agg_value) + 8 * a.nbuckets);
    if (name == "aggs") {
        bpf_map__set_key_size(m, a.key_len);
        bpf_map__set_value_size(m, value);
        bpf_map__set_max_entries(m, a.max_keys);
    } else if (name == "agg_zero") {
        bpf_map__set_value_size(m, value);
    } else if (name == "agg_stacks" && a.stacks) {
        bpf_map__set_max_entries(m, a.max_keys);
    }
}

std::size_t agg_buckets(const PlannedAggregate& a) {
    switch (a.hist) {
    case PlannedAggregate::Hist::Log2: return KSURF_AGG_LOG2_BUCKETS;
    case PlannedAggregate::Hist::Linear: return (static_cast<std::uint64_t>(a.lmax - a.lmin) + a.lstep - 1) / a.lstep + 2;
    default: return 0;
    }
}

ksurf_layout kernel_layout(const Btf& btf) {
    // Each type looked up once: the first few lookups scan BTF, the later ones build its
    // index. A BTF without the type (a --btf file of one module's types) has no probe that
    // reads it either: the resolver refused those.
    auto type = [&](std::string_view name) -> std::optional<Type> {
        try {
            return btf.find_type(name);
        } catch (const Error&) {
            return std::nullopt;
        }
    };
    auto at = [](const std::optional<Type>& t, std::string_view name) -> std::uint16_t {
        try {
            return t ? static_cast<std::uint16_t>(member(*t, name).offset) : 0;
        } catch (const Error&) {
            return 0;
        }
    };
    ksurf_layout l{};
    const auto skb = type("struct sk_buff"), task = type("struct task_struct"), helpers = type("enum bpf_func_id");
    l.skb_head = at(skb, "head");
    l.skb_data = at(skb, "data");
    l.skb_len = at(skb, "len");
    l.skb_tail = at(skb, "tail");
    l.skb_mac_header = at(skb, "mac_header");
    l.skb_network_header = at(skb, "network_header");
    l.skb_transport_header = at(skb, "transport_header");
    l.task_tgid = at(task, "tgid");
    if (btf.of_running_kernel() && helpers && has_enumerator(*helpers, "BPF_FUNC_get_current_task_btf"))
        l.task_comm = at(task, "comm");
    return l;
}

std::map<std::string, std::int32_t, std::less<>> pt_regs_offsets(const Btf& btf) {
    const Type regs = btf.find_type("struct pt_regs");
    std::map<std::string, std::int32_t, std::less<>> out;
    for (auto name : kRegs) out.emplace(name, static_cast<std::int32_t>(member(regs, name).offset));
    return out;
}

void set_arg_slots(BpfFrame& frame, const Function& fn) {
    frame.arg_slots.clear();
    unsigned regs = 0, stack = 0;
    for (const auto& p : fn.params) {
        const Type t = p.type.strip();
        const bool aggregate = t.kind() == Type::Kind::Struct || t.kind() == Type::Kind::Union;
        const unsigned n = aggregate ? static_cast<unsigned>((t.size() + 7) / 8) : 1;
        if (is_trampoline(frame.attach)) {
            // The trampoline saves each argument register in order, a struct in its words.
            frame.arg_slots.push_back(regs);
            regs += n;
        } else if (n <= 2 && regs + n <= kArgRegs.size()) {
            frame.arg_slots.push_back(regs);
            regs += n;
        } else {
            // Memory-class or out of registers: the next words of the caller's stack.
            frame.arg_slots.push_back(static_cast<unsigned>(kArgRegs.size()) + stack);
            stack += n;
        }
    }
    frame.ret_slot = regs;
}

void encode_cbpf(const std::vector<CbpfInsn>& program, std::string_view expr, ksurf_config& c) {
    if (program.size() > KSURF_MAX_CBPF)
        fail("--pcap '{}' compiles to {} classic BPF instructions; the BPF backend runs at most {}", expr,
             program.size(), KSURF_MAX_CBPF);
    c.ncbpf = static_cast<std::uint16_t>(program.size());
    for (std::size_t i = 0; i < program.size(); i++) c.cbpf[i] = {program[i].code, program[i].jt, program[i].jf, program[i].k};
}

BpfProgramSpec encode_bpf(const PlannedProbe& probe, const BpfFrame& frame) { return Encoder(probe, frame).run(); }

void decode_bpf_packet(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload, Event& ev) {
    const ksurf_config& c = spec.config;
    const std::size_t skb_at = c.fields[c.pcap_field].out;
    if (!c.snaplen || std::size_t{c.pkt_out} + 8 > payload.size() || skb_at + 8 > payload.size()) return;
    std::uint32_t hdr[2];
    std::memcpy(hdr, payload.data() + c.pkt_out, sizeof hdr);
    std::memcpy(&ev.skb, payload.data() + skb_at, sizeof ev.skb);
    const std::size_t n = std::min<std::size_t>(hdr[1], payload.size() - c.pkt_out - 8);
    ev.packet.assign(reinterpret_cast<const char*>(payload.data() + c.pkt_out + 8), n);
    ev.packet_len = hdr[0];
}

namespace {

// The payload's outputs over OUT's previous fields (a FieldWriter: sized when it is gone).
void write_outputs(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload, std::vector<FieldValue>& out) {
    FieldWriter w(out);
    for (const auto& o : spec.outputs) {
        if (std::size_t(o.at) + o.size > payload.size()) continue;
        const auto bytes = payload.subspan(o.at, o.size);
        switch (o.kind) {
        case Kind::Number: {
            std::uint64_t v;
            std::memcpy(&v, bytes.data(), sizeof v);
            if (o.swap_bits) {
                v = swap_low(v, o.swap_bits);
                // Sign extension from the value's bits happens after the swap.
                if (o.is_signed && o.bits < 64) {
                    const unsigned shift = 64 - o.bits;
                    v = static_cast<std::uint64_t>(static_cast<std::int64_t>(v << shift) >> shift);
                }
            }
            Value& value = w.next(o.name, o.display);
            if (o.is_signed)
                value.v = static_cast<std::int64_t>(v);
            else
                value.v = v;
            break;
        }
        case Kind::String: {
            auto end = std::find(bytes.begin(), bytes.end(), std::uint8_t{0});
            w.text(o.name).assign(bytes.begin(), end);
            break;
        }
        case Kind::Bytes: {
            if (o.display == Display::IPv6 && bytes.size() == 16) {
                char addr[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, bytes.data(), addr, sizeof addr);
                w.text(o.name, Display::IPv6).assign(addr);
                break;
            }
            std::string& hex = w.text(o.name);
            hex.assign("0x");
            for (auto b : bytes) fmt::format_to(std::back_inserter(hex), "{:02x}", b);
            break;
        }
        }
    }
}

}  // namespace

std::vector<FieldValue> decode_bpf(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload) {
    std::vector<FieldValue> out;
    decode_bpf(spec, payload, out);
    return out;
}

void decode_bpf(const BpfProgramSpec& spec, std::span<const std::uint8_t> payload, std::vector<FieldValue>& out) {
    write_outputs(spec, payload, out);
    settle_packet_names(spec.presence, out);
}

}  // namespace ksurf
