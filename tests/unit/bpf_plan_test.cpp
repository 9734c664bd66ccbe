// PlannedProbe → ksurf_config, the encoding bpf/interp.bpf.h interprets, with hand-built
// plans: where each attach type finds arguments, the payload layout, the filter's postfix
// order, and the limits.
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "ksurf/bpf_backend.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "error_of.h"

namespace ksurf {
namespace {

using Base = Fetch::Base;
using Access = Fetch::Access;
using Op = PlannedFilter::Op;
using Subject = PlannedComparison::Subject;

Fetch fetch(Base base, Access access, std::uint32_t size, std::int64_t offset = 0, bool is_signed = false) {
    Fetch f;
    f.base = base;
    f.access = access;
    f.size = size;
    f.offset = offset;
    f.is_signed = is_signed;
    return f;
}

PlannedField field(std::string name, Fetch f, Display d = Display::Decimal, bool hidden = false) {
    PlannedField p;
    p.name = std::move(name);
    p.fetch = std::move(f);
    p.display = d;
    p.hidden = hidden;
    return p;
}

template <typename... Fields>
PlannedProbe function_probe(ProbeKind kind, Fields&&... fields) {
    PlannedProbe p;
    p.kind = kind;
    p.function = "vfs_open";
    p.event = "vfs_open";
    p.text = "p vfs_open";
    (p.fields.push_back(std::forward<Fields>(fields)), ...);
    return p;
}

PlannedProbe function_probe_of(ProbeKind kind, std::vector<PlannedField> fields) {
    PlannedProbe p = function_probe(kind);
    p.fields = std::move(fields);
    return p;
}

// N fields named NAME fetching F.
std::vector<PlannedField> fields_of(std::size_t n, const Fetch& f, Display d = Display::Decimal) {
    std::vector<PlannedField> v;
    for (std::size_t i = 0; i < n; i++) v.push_back(field("x", f, d));
    return v;
}

// The sched_process_exec record of a 6.18 kernel: filename (__data_loc) at 8, pid at 12.
PlannedProbe exec_probe() {
    PlannedProbe p;
    p.kind = ProbeKind::Tracepoint;
    p.subsystem = "sched";
    p.event = "sched_process_exec";
    p.text = "e sched/sched_process_exec";
    p.fields.push_back(field("filename", fetch(Base::Record, Access::DataLoc, 4, 8), Display::String));
    p.fields.push_back(field("pid", fetch(Base::Record, Access::Load, 4, 12, true)));
    return p;
}

BpfFrame frame(BpfAttach a) {
    BpfFrame f;
    f.attach = a;
    // Not the kernel's: any distinct offsets show where each register came from.
    std::int32_t off = 0;
    for (const char* r : {"r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
                          "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss"})
        f.regs[r] = off += 8;
    return f;
}

using ksurf::test::error_of;

// The arithmetic the BPF side applies to a loaded number.
std::uint64_t finish(const ksurf_field_cfg& c, std::uint64_t loaded) {
    if (c.is_signed) return static_cast<std::uint64_t>(static_cast<std::int64_t>(loaded << c.lshift) >> c.rshift);
    return (loaded << c.lshift) >> c.rshift;
}

TEST(BpfPlanTracepoint, RecordFieldsAndLayout) {
    const auto spec = encode_bpf(exec_probe(), frame(BpfAttach::Tracepoint));
    const auto& c = spec.config;
    ASSERT_EQ(c.nfields, 2);
    EXPECT_EQ(c.nfilter, 0);
    EXPECT_EQ(c.nops, 0);
    const auto& name = c.fields[0];
    EXPECT_EQ(name.base, KSURF_BASE_CTX);
    EXPECT_EQ(name.access, KSURF_ACCESS_DATALOC);
    EXPECT_EQ(name.offset, 8);
    EXPECT_EQ(name.size, KSURF_MAX_STR);
    const auto& pid = c.fields[1];
    EXPECT_EQ(pid.base, KSURF_BASE_CTX);
    EXPECT_EQ(pid.access, KSURF_ACCESS_LOAD);
    EXPECT_EQ(pid.offset, 12);
    EXPECT_EQ(pid.size, 4);
    EXPECT_EQ(pid.nsteps, 0);
    EXPECT_EQ(pid.packet_step, KSURF_NO_PACKET);
    // Numbers first, 8 bytes each; then the string at its capacity.
    EXPECT_EQ(pid.out, 0);
    EXPECT_EQ(name.out, 8);
    EXPECT_EQ(c.data_len, 8 + KSURF_MAX_STR);
    EXPECT_EQ(c.record_len, 0);
    ASSERT_EQ(spec.outputs.size(), 2u);
    EXPECT_EQ(spec.outputs[0].name, "filename");
    EXPECT_EQ(spec.outputs[0].kind, BpfOutput::Kind::String);
    EXPECT_EQ(spec.outputs[1].name, "pid");
    EXPECT_TRUE(spec.outputs[1].is_signed);
}

TEST(BpfPlanTracepoint, WholeRecordFollowsTheFields) {
    PlannedProbe p = exec_probe();
    p.fields[0].hidden = p.fields[1].hidden = true;
    BpfFrame f = frame(BpfAttach::Tracepoint);
    f.record_size = 300;
    auto spec = encode_bpf(p, f);
    EXPECT_TRUE(spec.raw_record);
    EXPECT_TRUE(spec.outputs.empty());
    EXPECT_EQ(spec.config.record_out, 8 + KSURF_MAX_STR);
    EXPECT_EQ(spec.config.record_len, 300);
    EXPECT_EQ(spec.config.data_len, 8 + KSURF_MAX_STR + 300);
    // Printed fields: no copy.
    f.record_size = 300;
    EXPECT_FALSE(encode_bpf(exec_probe(), f).raw_record);
}

TEST(BpfPlanTracepoint, ArgumentsAndRegistersAreRefused) {
    PlannedProbe p = exec_probe();
    p.fields[1].fetch.base = Base::Arg;
    EXPECT_EQ(error_of([&] { encode_bpf(p, frame(BpfAttach::Tracepoint)); }),
              "e sched/sched_process_exec: field 'pid': TP_PROTO arguments (%N) exist in tp_btf and raw_tp programs only");
}

// tp_btf and raw_tp contexts are the u64 argument array, as fentry's; the record is not there.
TEST(BpfPlanTracepoint, ArgumentsAreContextSlotsOnTpBtfAndRawTp) {
    PlannedProbe p = exec_probe();
    p.fields.erase(p.fields.begin());
    p.fields[0].fetch.base = Base::Arg;  // old_pid, the second TP_PROTO argument
    p.fields[0].fetch.arg = 1;
    p.fields[0].fetch.access = Access::Value;
    for (BpfAttach a : {BpfAttach::TpBtf, BpfAttach::RawTp}) {
        BpfFrame f = frame(a);
        f.arg_slots = {0, 1, 2};
        const auto c = encode_bpf(p, f).config;
        EXPECT_EQ(c.fields[0].base, KSURF_BASE_CTX_U64);
        EXPECT_EQ(c.fields[0].base_off, 8);
    }
    PlannedProbe mixed = exec_probe();
    mixed.fields[0].fetch.base = Base::Arg;
    mixed.fields[0].fetch.access = Access::Value;
    EXPECT_EQ(error_of([&] { encode_bpf(mixed, frame(BpfAttach::TpBtf)); }),
              "e sched/sched_process_exec: field 'pid': record fields exist only in the classic tracepoint's context, "
              "TP_PROTO arguments (%N) only in tp_btf/raw_tp's: a probe reads one kind");
}

TEST(BpfPlanFentry, ArgumentsAreContextSlots) {
    // vfs_open(const struct path *path, struct file *file): file->f_flags at 0x44.
    Fetch flags = fetch(Base::Arg, Access::Load, 4, 0x44);
    flags.arg = 1;
    Fetch name = fetch(Base::Arg, Access::String, 128, 0x28);
    name.derefs = {8, 0x28};
    auto p = function_probe(ProbeKind::Entry, field("flags", flags, Display::Hex), field("name", name, Display::String));
    BpfFrame f = frame(BpfAttach::Fentry);
    f.arg_slots = {0, 1};
    f.ret_slot = 2;
    const auto c = encode_bpf(p, f).config;
    EXPECT_EQ(c.fields[0].base, KSURF_BASE_CTX_U64);
    EXPECT_EQ(c.fields[0].base_off, 8);
    EXPECT_EQ(c.fields[0].offset, 0x44);
    EXPECT_EQ(c.fields[1].base_off, 0);
    ASSERT_EQ(c.fields[1].nsteps, 2);
    EXPECT_EQ(c.fields[1].steps[0], 8);
    EXPECT_EQ(c.fields[1].steps[1], 0x28);
    EXPECT_EQ(c.fields[1].access, KSURF_ACCESS_STRING);
    EXPECT_EQ(c.fields[1].size, 129);  // the limit plus the NUL
}

TEST(BpfPlanFentry, StructArgumentsTakeTwoSlots) {
    // A struct passed by value in two registers shifts the slots of what follows it.
    std::unique_ptr<btf, decltype(&btf__free)> b(btf__new_empty(), btf__free);
    int u64 = btf__add_int(b.get(), "unsigned long", 8, 0);
    int pair = btf__add_struct(b.get(), "pair", 16);
    btf__add_field(b.get(), "a", u64, 0, 0);
    btf__add_field(b.get(), "b", u64, 64, 0);
    int big = btf__add_struct(b.get(), "big", 24);
    btf__add_field(b.get(), "a", u64, 0, 0);
    int proto = btf__add_func_proto(b.get(), u64);
    btf__add_func_param(b.get(), "x", u64);
    btf__add_func_param(b.get(), "p", pair);
    btf__add_func_param(b.get(), "y", u64);
    btf__add_func_param(b.get(), "g", big);
    btf__add_func_param(b.get(), "z", u64);
    btf__add_func(b.get(), "f", BTF_FUNC_GLOBAL, proto);
    std::uint32_t size = 0;
    const void* raw = btf__raw_data(b.get(), &size);
    const auto path = std::filesystem::temp_directory_path() / ("ksurf_bpf_plan_" + std::to_string(getpid()) + ".btf");
    std::ofstream(path, std::ios::binary).write(static_cast<const char*>(raw), size);
    const Btf types = Btf::from_file(path);
    std::filesystem::remove(path);
    const Function fn = types.find_function("f");

    BpfFrame fentry = frame(BpfAttach::Fexit);
    set_arg_slots(fentry, fn);
    EXPECT_EQ(fentry.arg_slots, (std::vector<unsigned>{0, 1, 3, 4, 7}));
    EXPECT_EQ(fentry.ret_slot, 8u);
    // The calling convention: 24 bytes go on the stack, the rest fills registers.
    BpfFrame kprobe = frame(BpfAttach::Kprobe);
    set_arg_slots(kprobe, fn);
    EXPECT_EQ(kprobe.arg_slots, (std::vector<unsigned>{0, 1, 3, 6, 4}));
}

TEST(BpfPlanFentry, FexitHasArgumentsAndTheReturnValue) {
    Fetch arg = fetch(Base::Arg, Access::Value, 8);
    arg.arg = 1;
    auto p = function_probe(ProbeKind::Return, field("file", arg, Display::Hex),
                                                field("ret", fetch(Base::Retval, Access::Value, 4, 0, true)));
    BpfFrame f = frame(BpfAttach::Fexit);
    f.arg_slots = {0, 1};
    f.ret_slot = 2;
    const auto c = encode_bpf(p, f).config;
    EXPECT_EQ(c.fields[0].base_off, 8);
    EXPECT_EQ(c.fields[1].base_off, 16);
    EXPECT_EQ(finish(c.fields[1], 0xfffffffe), static_cast<std::uint64_t>(-2));
}

TEST(BpfPlanFentry, RegistersAndVariadicArgumentsAreRefused) {
    Fetch reg = fetch(Base::Reg, Access::Value, 8);
    reg.reg = "ip";
    EXPECT_EQ(error_of([&] { encode_bpf(function_probe(ProbeKind::Entry, field("ip", reg)), frame(BpfAttach::Fentry)); }),
              "p vfs_open: field 'ip': %ip needs a kprobe (only kprobes have struct pt_regs)");
    Fetch third = fetch(Base::Arg, Access::Value, 8);
    third.arg = 2;
    BpfFrame f = frame(BpfAttach::Fentry);
    f.arg_slots = {0, 1};
    EXPECT_EQ(error_of([&] { encode_bpf(function_probe(ProbeKind::Entry, field("x", third)), f); }),
              "p vfs_open: field 'x': fentry reads only the 2 declared parameters");
}

TEST(BpfPlanKprobe, ArgumentsAreRegistersThenTheStack) {
    std::vector<PlannedField> fields;
    for (unsigned i = 0; i < 8; i++) {
        Fetch a = fetch(Base::Arg, Access::Value, 8);
        a.arg = i;
        fields.push_back(field("a" + std::to_string(i), std::move(a)));
    }
    Fetch ip = fetch(Base::Reg, Access::Value, 8);
    ip.reg = "ip";
    fields.push_back(field("ip", ip, Display::Hex));
    const BpfFrame f = frame(BpfAttach::Kprobe);
    const auto c = encode_bpf(function_probe_of(ProbeKind::Entry, std::move(fields)), f).config;
    const char* regs[] = {"di", "si", "dx", "cx", "r8", "r9"};
    for (int i = 0; i < 6; i++) {
        EXPECT_EQ(c.fields[i].base, KSURF_BASE_CTX_U64);
        EXPECT_EQ(c.fields[i].base_off, f.regs.at(regs[i])) << i;
        EXPECT_EQ(c.fields[i].nsteps, 0);
    }
    // Above the return address: sp + 8, sp + 16.
    for (int i = 6; i < 8; i++) {
        EXPECT_EQ(c.fields[i].base_off, f.regs.at("sp"));
        ASSERT_EQ(c.fields[i].nsteps, 1);
        EXPECT_EQ(c.fields[i].steps[0], 8 * (i - 5));
    }
    EXPECT_EQ(c.fields[8].base_off, f.regs.at("ip"));
}

TEST(BpfPlanKprobe, KretprobeHasTheReturnValueOnly) {
    auto ret = function_probe(ProbeKind::Return, field("ret", fetch(Base::Retval, Access::Value, 4, 0, true)));
    const BpfFrame f = frame(BpfAttach::Kretprobe);
    EXPECT_EQ(encode_bpf(ret, f).config.fields[0].base_off, f.regs.at("ax"));
    Fetch arg = fetch(Base::Arg, Access::Value, 8);
    ret.fields.push_back(field("x", arg));
    EXPECT_EQ(error_of([&] { encode_bpf(ret, f); }),
              "r vfs_open: field 'x': arguments are gone when a kretprobe runs (fexit keeps them)");
    auto entry = function_probe(ProbeKind::Entry, field("ret", fetch(Base::Retval, Access::Value, 8)));
    EXPECT_EQ(error_of([&] { encode_bpf(entry, frame(BpfAttach::Kprobe)); }),
              "p vfs_open: field 'ret': $retval exists in return probes only");
}

TEST(BpfPlanPacket, HeaderFromTheSkbThenTheFieldsChain) {
    // ip.saddr of the skb at *(%0 + 0x10) (an object's pointer member, as `skb=%0->...`):
    // header at L3, then saddr at 12 of the header.
    Fetch skb = fetch(Base::Arg, Access::Load, 8, 0x10);
    skb.derefs = {0x20};
    Fetch saddr = fetch(Base::Packet, Access::Load, 4, 12);
    saddr.layer = Layer::L3;
    saddr.skb = std::move(skb);
    Fetch deref = fetch(Base::Packet, Access::Load, 2, 4);
    deref.layer = Layer::L4;
    deref.skb = fetch(Base::Arg, Access::Value, 8);
    deref.derefs = {0x30};
    auto p = function_probe(ProbeKind::Entry, field("ip_saddr", std::move(saddr), Display::IPv4), field("d", std::move(deref)));
    const auto c = encode_bpf(p, frame(BpfAttach::Fentry)).config;
    const auto& f = c.fields[0];
    ASSERT_EQ(f.nsteps, 2);
    EXPECT_EQ(f.steps[0], 0x20);
    EXPECT_EQ(f.steps[1], 0x10);
    EXPECT_EQ(f.packet_step, 2);  // after the skb's own loads, before the field's (none)
    EXPECT_EQ(f.layer, 3);
    EXPECT_EQ(f.offset, 12);
    const auto& g = c.fields[1];
    ASSERT_EQ(g.nsteps, 1);
    EXPECT_EQ(g.packet_step, 0);
    EXPECT_EQ(g.layer, 4);
    EXPECT_EQ(g.steps[0], 0x30);
}

// A kernel variable's chain starts at its address, whole 64 bits of it (module data is
// above the sign-extended 32 bits kernel text and data fit), in every kind of program.
TEST(BpfPlanGlobal, TheChainStartsAtTheVariablesAddress) {
    Fetch jiffies = fetch(Base::Global, Access::Load, 8);
    jiffies.symbol = "jiffies";
    jiffies.address = 0xffffffff82a05010;
    Fetch module = fetch(Base::Global, Access::Load, 4, 0x18, true);
    module.symbol = "mod_var";
    module.address = 0xffffffffc0a81008;
    module.derefs = {0x40};
    for (BpfAttach a : {BpfAttach::Fentry, BpfAttach::Kprobe, BpfAttach::Kretprobe}) {
        auto p = function_probe(a == BpfAttach::Kretprobe ? ProbeKind::Return : ProbeKind::Entry, field("j", jiffies),
                                field("m", module));
        const auto c = encode_bpf(p, frame(a)).config;
        const auto& j = c.fields[0];
        EXPECT_EQ(j.base, KSURF_BASE_ADDR);
        EXPECT_EQ((std::uint64_t{j.base_hi} << 32 | static_cast<std::uint32_t>(j.base_off)), 0xffffffff82a05010u);
        EXPECT_EQ(j.nsteps, 0);
        EXPECT_EQ(j.access, KSURF_ACCESS_LOAD);
        EXPECT_EQ(j.size, 8);
        EXPECT_EQ(j.offset, 0);
        const auto& m = c.fields[1];
        EXPECT_EQ((std::uint64_t{m.base_hi} << 32 | static_cast<std::uint32_t>(m.base_off)), 0xffffffffc0a81008u);
        ASSERT_EQ(m.nsteps, 1);
        EXPECT_EQ(m.steps[0], 0x40);
        EXPECT_EQ(m.offset, 0x18);
        EXPECT_EQ(m.size, 4);
        EXPECT_EQ(finish(m, 0xffffffffu), ~0ULL);  // a signed int: -1
    }
    auto tp = exec_probe();
    tp.fields.push_back(field("j", jiffies));
    EXPECT_EQ(encode_bpf(tp, frame(BpfAttach::Tracepoint)).config.fields[2].base, KSURF_BASE_ADDR);
}

TEST(BpfPlanNumbers, BitfieldsAndSignsAreCutOutByShifts) {
    Fetch bf = fetch(Base::Arg, Access::Load, 4, 0x10, true);
    bf.bit_offset = 3;
    bf.bit_size = 5;
    Fetch u = bf;
    u.is_signed = false;
    Fetch wide = fetch(Base::Arg, Access::Load, 4, 0);
    wide.bit_offset = 6;
    wide.bit_size = 12;  // bits 6..17: three bytes
    auto p = function_probe(ProbeKind::Entry, field("s", bf), field("u", u), field("w", wide),
                                               field("c", fetch(Base::Arg, Access::Load, 1, 0, true)));
    const auto c = encode_bpf(p, frame(BpfAttach::Fentry)).config;
    EXPECT_EQ(c.fields[0].size, 1);
    // bits 3..7 of 0b1011'1000 = 0b10111: -9 signed, 23 unsigned.
    EXPECT_EQ(finish(c.fields[0], 0xb8), static_cast<std::uint64_t>(-9));
    EXPECT_EQ(finish(c.fields[1], 0xb8), 23u);
    EXPECT_EQ(c.fields[2].size, 3);
    EXPECT_EQ(finish(c.fields[2], 0x3ffc0), 0xfffu);
    EXPECT_EQ(finish(c.fields[3], 0x80), static_cast<std::uint64_t>(-128));
}

TEST(BpfPlanFilter, PostfixInSourceOrder) {
    // pid == 7 && (len < -1 || !(name == "x"))
    auto p = function_probe(ProbeKind::Entry, field("name", fetch(Base::Arg, Access::String, 64), Display::String),
                                               field("pid", fetch(Base::Pid, Access::Value, 4, 0, true)),
                                               field("len", fetch(Base::Arg, Access::Value, 8, 0, true)));
    std::vector<PlannedFilterNode> inner;
    inner.push_back(comparison_of(2, CmpOp::Lt, std::int64_t{-1}));
    std::vector<PlannedFilterNode> name_eq;
    name_eq.push_back(comparison_of(0, CmpOp::Eq, std::string("x")));
    inner.push_back(logical(Op::Not, std::move(name_eq)));
    std::vector<PlannedFilterNode> top;
    top.push_back(comparison_of(1, CmpOp::Eq, std::int64_t{7}));
    top.push_back(logical(Op::Or, std::move(inner)));
    p.filter = logical(Op::And, std::move(top));
    const auto c = encode_bpf(p, frame(BpfAttach::Fentry)).config;
    std::vector<int> codes;
    for (int i = 0; i < c.nops; i++) codes.push_back(c.ops[i].code);
    EXPECT_EQ(codes, (std::vector<int>{KSURF_OP_EQ, KSURF_OP_SLT, KSURF_OP_STR_EQ, KSURF_OP_NOT, KSURF_OP_OR, KSURF_OP_AND}));
    EXPECT_EQ(c.ops[0].imm, 7u);
    EXPECT_EQ(c.ops[1].imm, ~0ULL);
    // Every field is the filter's, in plan order; the operands point at their payload.
    EXPECT_EQ(c.nfilter, 3);
    EXPECT_EQ(c.ops[0].at, c.fields[1].out);
    EXPECT_EQ(c.ops[1].at, c.fields[2].out);
    EXPECT_EQ(c.ops[2].at, c.fields[0].out);
    EXPECT_EQ(c.ops[2].field, 0);
    EXPECT_EQ(c.patterns[c.ops[2].slot].len, 1u);
}

TEST(BpfPlanFilter, TheFiltersFieldsAreFetchedFirst) {
    auto p = function_probe(ProbeKind::Entry, field("a", fetch(Base::Arg, Access::Value, 8)),
                                               field("b", fetch(Base::Cpu, Access::Value, 4)));
    p.filter = comparison_of(1, CmpOp::Ge, std::uint64_t{2});
    const auto spec = encode_bpf(p, frame(BpfAttach::Fentry));
    const auto& c = spec.config;
    EXPECT_EQ(c.nfilter, 1);
    EXPECT_EQ(c.fields[0].base, KSURF_BASE_CPU);
    EXPECT_EQ(c.fields[1].base, KSURF_BASE_CTX_U64);
    EXPECT_EQ(c.ops[0].code, KSURF_OP_GE);
    // The payload keeps plan order.
    EXPECT_EQ(spec.outputs[0].name, "a");
    EXPECT_EQ(spec.outputs[0].at, 0);
    EXPECT_EQ(spec.outputs[1].at, 8);
}

TEST(BpfPlanFilter, CommPidTidSubjectsAddHiddenFields) {
    auto p = function_probe(ProbeKind::Entry, field("a", fetch(Base::Arg, Access::Value, 8)));
    std::vector<PlannedFilterNode> ops;
    ops.push_back(comparison_of(Subject::Comm, CmpOp::Eq, std::string("cat")));
    ops.push_back(comparison_of(Subject::Pid, CmpOp::Ne, std::int64_t{1}));
    ops.push_back(comparison_of(Subject::Tid, CmpOp::Eq, std::int64_t{2}));
    ops.push_back(comparison_of(Subject::Comm, CmpOp::Ne, std::string("sh")));
    p.filter = logical(Op::Or, std::move(ops));
    const auto spec = encode_bpf(p, frame(BpfAttach::Fentry));
    const auto& c = spec.config;
    ASSERT_EQ(c.nfields, 4);  // comm once
    EXPECT_EQ(c.nfilter, 3);
    EXPECT_EQ(c.fields[0].base, KSURF_BASE_COMM);
    EXPECT_EQ(c.fields[0].access, KSURF_ACCESS_STRING);
    EXPECT_EQ(c.fields[0].size, KSURF_COMM_LEN);
    EXPECT_EQ(c.fields[1].base, KSURF_BASE_PID);
    EXPECT_EQ(c.fields[2].base, KSURF_BASE_TID);
    EXPECT_EQ(c.fields[3].base, KSURF_BASE_CTX_U64);
    ASSERT_EQ(spec.outputs.size(), 1u);
    std::vector<int> codes;
    for (int i = 0; i < c.nops; i++) codes.push_back(c.ops[i].code);
    EXPECT_EQ(codes, (std::vector<int>{KSURF_OP_STR_EQ, KSURF_OP_NE, KSURF_OP_OR, KSURF_OP_EQ, KSURF_OP_OR,
                                       KSURF_OP_STR_EQ, KSURF_OP_NOT, KSURF_OP_OR}));
    EXPECT_NE(c.ops[0].slot, c.ops[5].slot);
}

TEST(BpfPlanFilter, GlobsBecomePrefixSuffixOrContains) {
    auto p = function_probe(ProbeKind::Entry, field("s", fetch(Base::Arg, Access::String, 128), Display::String));
    auto code_of = [&](std::string glob) {
        p.filter = comparison_of(0, CmpOp::Glob, glob);
        const auto c = encode_bpf(p, frame(BpfAttach::Fentry)).config;
        const auto& pat = c.patterns[c.ops[0].slot];
        return std::make_pair(int(c.ops[0].code), std::string(reinterpret_cast<const char*>(pat.words), pat.len));
    };
    EXPECT_EQ(code_of("ksurf*"), std::make_pair(int(KSURF_OP_STR_PREFIX), std::string("ksurf")));
    EXPECT_EQ(code_of("*.txt"), std::make_pair(int(KSURF_OP_STR_SUFFIX), std::string(".txt")));
    EXPECT_EQ(code_of("*tmp*"), std::make_pair(int(KSURF_OP_STR_CONTAINS), std::string("tmp")));
    EXPECT_EQ(code_of("exact"), std::make_pair(int(KSURF_OP_STR_EQ), std::string("exact")));
    EXPECT_EQ(code_of("*"), std::make_pair(int(KSURF_OP_STR_SUFFIX), std::string()));
    p.filter = comparison_of(0, CmpOp::Glob, std::string("a*b"));
    EXPECT_EQ(error_of([&] { encode_bpf(p, frame(BpfAttach::Fentry)); }),
              "p vfs_open: the BPF backend matches ~ patterns with '*' only at their start and end, not 'a*b'");
}

TEST(BpfPlanFilter, PatternWordsAndMasks) {
    auto p = function_probe(ProbeKind::Entry, field("s", fetch(Base::Arg, Access::String, 128), Display::String));
    std::vector<PlannedFilterNode> ops;
    ops.push_back(comparison_of(0, CmpOp::Eq, std::string("0123456789")));
    ops.push_back(comparison_of(0, CmpOp::Ne, std::string("0123456789")));  // the same slot
    ops.push_back(comparison_of(0, CmpOp::Eq, std::string("01234567")));
    p.filter = logical(Op::And, std::move(ops));
    const auto c = encode_bpf(p, frame(BpfAttach::Fentry)).config;
    EXPECT_EQ(c.ops[0].slot, c.ops[1].slot);
    const auto& ten = c.patterns[c.ops[0].slot];
    EXPECT_EQ(ten.full, 1u);
    EXPECT_EQ(ten.last_mask, 0xffffu);
    std::uint64_t first;
    std::memcpy(&first, "01234567", 8);
    EXPECT_EQ(ten.words[0], first);
    const auto& eight = c.patterns[c.ops[4].slot];  // after EQ, EQ, NOT, AND
    EXPECT_EQ(eight.full, 1u);
    EXPECT_EQ(eight.last_mask, 0u);  // nothing after the whole word
}

TEST(BpfPlanFilter, TypeMismatchesAreRefused) {
    auto p = function_probe(ProbeKind::Entry, field("n", fetch(Base::Arg, Access::Value, 8)),
                                               field("s", fetch(Base::Arg, Access::String, 16), Display::String),
                                               field("mac", fetch(Base::Arg, Access::Load, 6), Display::Hex));
    auto error = [&](PlannedFilterNode f) {
        p.filter = std::move(f);
        return error_of([&] { encode_bpf(p, frame(BpfAttach::Fentry)); });
    };
    EXPECT_EQ(error(comparison_of(0, CmpOp::Eq, std::string("x"))), "p vfs_open: a number compared with a string");
    EXPECT_EQ(error(comparison_of(1, CmpOp::Eq, std::int64_t{1})), "p vfs_open: a string compared with a number");
    EXPECT_EQ(error(comparison_of(1, CmpOp::Lt, std::string("x"))), "p vfs_open: strings compare with ==, != and ~ only");
    EXPECT_EQ(error(comparison_of(2, CmpOp::Eq, std::int64_t{1})), "p vfs_open: 'mac' is a byte array, which filters cannot compare");
}

// Reads at the end of a chain through a __user pointer: bpf_probe_read_user(_str).
TEST(BpfPlanUser, UserMemoryHasItsOwnAccesses) {
    Fetch name = fetch(Base::Arg, Access::String, 128);
    name.user = true;
    name.derefs = {0x18};
    Fetch n = fetch(Base::Arg, Access::Load, 4, 8, true);
    n.user = true;
    auto p = function_probe(ProbeKind::Entry, field("name", name, Display::String), field("n", n));
    const auto c = encode_bpf(p, frame(BpfAttach::Kprobe)).config;
    EXPECT_EQ(c.fields[0].access, KSURF_ACCESS_USER_STRING);
    EXPECT_EQ(c.fields[0].size, 129);
    ASSERT_EQ(c.fields[0].nsteps, 1);  // the pointer itself is kernel memory
    EXPECT_EQ(c.fields[0].steps[0], 0x18);
    EXPECT_EQ(c.fields[1].access, KSURF_ACCESS_USER_LOAD);
    EXPECT_EQ(c.fields[1].size, 4);
    EXPECT_EQ(c.fields[1].offset, 8);
    EXPECT_TRUE(c.fields[1].is_signed);
    Fetch mac = fetch(Base::Arg, Access::Load, 6);
    mac.user = true;
    EXPECT_EQ(error_of([&] { encode_bpf(function_probe(ProbeKind::Entry, field("mac", std::move(mac))), frame(BpfAttach::Kprobe)); }),
              "p vfs_open: field 'mac': user memory is read as numbers of 1, 2, 4 or 8 bytes and strings");
}

TEST(BpfPlanLimits, EachBoundHasItsError) {
    Fetch v = fetch(Base::Arg, Access::Value, 8);
    EXPECT_EQ(error_of([&] {
                  encode_bpf(function_probe_of(ProbeKind::Entry, fields_of(KSURF_MAX_FIELDS + 1, v)), frame(BpfAttach::Fentry));
              }),
              "p vfs_open: 17 fields, counting those the filter reads, exceed the BPF backend's 16");
    EXPECT_NO_THROW(encode_bpf(function_probe_of(ProbeKind::Entry, fields_of(KSURF_MAX_FIELDS, v)), frame(BpfAttach::Fentry)));

    Fetch deep = v;
    deep.derefs.assign(KSURF_MAX_STEPS + 1, 8);
    EXPECT_EQ(error_of([&] { encode_bpf(function_probe(ProbeKind::Entry, field("d", deep)), frame(BpfAttach::Fentry)); }),
              "p vfs_open: field 'd': 9 pointer loads exceed the BPF backend's 8");

    auto p = function_probe(ProbeKind::Entry, field("x", v), field("s", fetch(Base::Arg, Access::String, 16), Display::String));
    std::vector<PlannedFilterNode> ops;
    for (int i = 0; i < KSURF_MAX_OPS / 2 + 1; i++) ops.push_back(comparison_of(0, CmpOp::Ne, std::uint64_t(i)));
    p.filter = logical(Op::And, std::move(ops));  // 17 comparisons + 16 ANDs
    EXPECT_EQ(error_of([&] { encode_bpf(p, frame(BpfAttach::Fentry)); }),
              "p vfs_open: the filter needs more than the BPF backend's 32 operations");

    p.filter = comparison_of(1, CmpOp::Eq, std::string(KSURF_MAX_PATTERN + 1, 'a'));
    EXPECT_EQ(error_of([&] { encode_bpf(p, frame(BpfAttach::Fentry)); }),
              "p vfs_open: the BPF backend compares strings of at most 64 bytes");

    std::vector<PlannedFilterNode> strs;
    for (int i = 0; i < KSURF_MAX_PATTERNS + 1; i++) strs.push_back(comparison_of(1, CmpOp::Eq, std::string(1, char('a' + i))));
    p.filter = logical(Op::Or, std::move(strs));
    EXPECT_EQ(error_of([&] { encode_bpf(p, frame(BpfAttach::Fentry)); }),
              "p vfs_open: the filter compares with more than the BPF backend's 8 distinct strings");

    // Strings are cut at the longest the payload holds for every field at once.
    const Fetch path = fetch(Base::Arg, Access::String, 4096);
    EXPECT_EQ(encode_bpf(function_probe_of(ProbeKind::Entry, fields_of(KSURF_MAX_FIELDS, path, Display::String)),
                         frame(BpfAttach::Fentry))
                  .config.data_len,
              KSURF_MAX_DATA);
    EXPECT_EQ(error_of([&] {
                  encode_bpf(function_probe(ProbeKind::Entry, field("b", fetch(Base::Arg, Access::Load, KSURF_MAX_STR + 1))),
                             frame(BpfAttach::Fentry));
              }),
              "p vfs_open: field 'b': 257-byte values cannot be fetched (at most 256)");
}

TEST(BpfPlanDecode, NumbersStringsAndBytes) {
    Fetch port = fetch(Base::Arg, Access::Load, 2);
    Fetch neg = fetch(Base::Arg, Access::Load, 2, 0, true);
    auto p = function_probe(ProbeKind::Entry, field("b16_port", port), field("neg", neg), field("name", fetch(Base::Arg, Access::String, 8), Display::String),
                                               field("mac", fetch(Base::Arg, Access::Load, 6), Display::Hex),
                                               field("hidden", fetch(Base::Arg, Access::Value, 8), Display::Decimal, true));
    p.fields[0].swap_bits = 16;
    p.fields[1].swap_bits = 16;
    const auto spec = encode_bpf(p, frame(BpfAttach::Fentry));
    std::vector<std::uint8_t> payload(spec.config.data_len, 0xee);
    auto put = [&](const char* name, const void* bytes, std::size_t n) {
        for (const auto& o : spec.outputs)
            if (o.name == name) std::memcpy(payload.data() + o.at, bytes, n);
    };
    const std::uint64_t port_bits = 0x5000;  // 80 in network order
    // -2 in network order is 0xfeff; BPF stores it sign-extended from its 16 bits.
    const std::uint64_t neg_stored = static_cast<std::uint64_t>(std::int64_t{static_cast<std::int16_t>(0xfeff)});
    put("b16_port", &port_bits, 8);
    put("neg", &neg_stored, 8);
    put("name", "abc\0zzzz", 8);
    put("mac", "\x00\x11\x22\x33\x44\x55", 6);
    const auto fields = decode_bpf(spec, payload);
    ASSERT_EQ(fields.size(), 4u);
    EXPECT_EQ(std::get<std::uint64_t>(fields[0].value.v), 80u);
    EXPECT_EQ(std::get<std::int64_t>(fields[1].value.v), -2);
    EXPECT_EQ(std::get<std::string>(fields[2].value.v), "abc");
    EXPECT_EQ(std::get<std::string>(fields[3].value.v), "0x001122334455");
    // A payload cut short drops what it does not hold.
    EXPECT_EQ(decode_bpf(spec, std::span(payload).first(16)).size(), 2u);
}

}  // namespace
}  // namespace ksurf
