// The BPF backend on the running kernel, driven with hand-built plans (no resolver): the
// test triggers the events itself and checks what arrives, what the kernel filtered, and
// which attach type ran each probe. Function probes need fentry or kprobes: on a host
// without them they are skipped, in the VM matrix their absence fails.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>

#include <fmt/format.h>

#include "ksurf/bpf_backend.h"
#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/tracefs.h"
#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
using Base = Fetch::Base;
using Access = Fetch::Access;
using Subject = PlannedComparison::Subject;

Features& features() {
    static Features f;
    return f;
}

const Btf& kernel_btf() {
    static const Btf b = Btf::kernel();
    return b;
}

// Events of one run, with the backend that delivers them.
struct Trace {
    std::vector<Event> events;
    std::unique_ptr<BpfBackend> backend;

    explicit Trace(FunctionAttach attach = FunctionAttach::Auto) {
        BpfOptions o;
        o.attach = attach;
        o.features = &features();
        o.btf = &kernel_btf();
        o.count_filtered = true;  // what the filters reject, the tests count
        backend = make_bpf_backend([this](const Event& e) { events.push_back(e); }, o);
    }

    // Polls until PRED holds over the events or TIMEOUT passes (TCG guests are slow).
    bool until(const std::function<bool(const std::vector<Event>&)>& pred, std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!pred(events) && std::chrono::steady_clock::now() < end) backend->poll(50);
        backend->poll(0);
        return pred(events);
    }
    // Drains what is in flight.
    void settle() {
        for (int i = 0; i < 5; i++) backend->poll(50);
    }
};

const FieldValue* find(const Event& e, std::string_view name) {
    for (const auto& f : e.fields)
        if (f.name == name) return &f;
    return nullptr;
}

template <typename T>
std::optional<T> value(const Event& e, std::string_view name) {
    const FieldValue* f = find(e, name);
    if (!f || !std::holds_alternative<T>(f->value.v)) return std::nullopt;
    return std::get<T>(f->value.v);
}

PlannedField field(std::string name, Base base, Access access, std::uint32_t size, std::int64_t offset = 0,
                   bool is_signed = false, Display d = Display::Decimal) {
    PlannedField f;
    f.name = std::move(name);
    f.fetch.base = base;
    f.fetch.access = access;
    f.fetch.size = size;
    f.fetch.offset = offset;
    f.fetch.is_signed = is_signed;
    f.display = d;
    return f;
}

// ---- tracepoints ----

const tracefs::EventFormat& exec_format() {
    static const auto f = tracefs::read_format(tracefs::root(), "sched", "sched_process_exec");
    return f;
}

// e sched/sched_process_exec filename=filename pid=pid, from the running kernel's format.
PlannedProbe exec_probe() {
    const auto& fmt = exec_format();
    PlannedProbe p;
    p.kind = ProbeKind::Tracepoint;
    p.subsystem = "sched";
    p.event = "sched_process_exec";
    p.text = "e sched/sched_process_exec";
    const auto* filename = fmt.field("filename");
    const auto* pid = fmt.field("pid");
    EXPECT_TRUE(filename && filename->data_loc && pid);
    p.fields.push_back(field("filename", Base::Record, Access::DataLoc, 4, filename->offset, false, Display::String));
    p.fields.push_back(field("pid", Base::Record, Access::Load, pid->size, pid->offset, true));
    return p;
}

// A child that execs /bin/true when release() is called: its pid is known before the exec.
class Child {
public:
    Child() {
        EXPECT_EQ(pipe(fds_), 0);
        pid_ = fork();
        if (pid_ == 0) {
            char c;
            close(fds_[1]);
            if (read(fds_[0], &c, 1) == 1) execl("/bin/true", "true", nullptr);
            _exit(127);
        }
        close(fds_[0]);
    }
    ~Child() {
        close(fds_[1]);
        if (pid_ > 0) waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }
    void release() {
        EXPECT_EQ(write(fds_[1], "x", 1), 1);
        int status = 0;
        waitpid(pid_, &status, 0);
        EXPECT_EQ(status, 0);
        pid_ = -1;
    }

private:
    int fds_[2];
    pid_t pid_;
};

TEST(BpfBackendTracepoint, PidFilterPassesOnlyThatExec) {
    Child child;
    PlannedProbe p = exec_probe();
    p.filter = comparison_of(1, CmpOp::Eq, std::int64_t{child.pid()});
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    for (int i = 0; i < 3; i++) spawn_and_wait({"/bin/true"});
    const pid_t pid = child.pid();
    child.release();
    ASSERT_TRUE(trace.until([](const auto& ev) { return !ev.empty(); })) << "no exec event";
    trace.settle();
    ASSERT_EQ(trace.events.size(), 1u);
    const Event& e = trace.events[0];
    EXPECT_EQ(e.probe, "sched_process_exec");
    EXPECT_EQ(static_cast<pid_t>(e.tgid), pid);
    EXPECT_EQ(e.comm, "true");
    EXPECT_EQ(value<std::int64_t>(e, "pid"), pid);
    EXPECT_TRUE(value<std::string>(e, "filename").value_or("").ends_with("/bin/true")) << e.fields.size();
    EXPECT_GE(trace.backend->stats().filtered.value_or(0), 3u);
    EXPECT_EQ(trace.backend->attachments().at(0).attach, BpfAttach::Tracepoint);
}

TEST(BpfBackendTracepoint, RejectingFilterCountsInsteadOfSending) {
    PlannedProbe p = exec_probe();
    // filename ~ "*/ksurf-never-*" || pid < 0
    std::vector<PlannedFilterNode> ops;
    ops.push_back(comparison_of(0, CmpOp::Glob, std::string("*/ksurf-never-*")));
    ops.push_back(comparison_of(1, CmpOp::Lt, std::int64_t{0}));
    p.filter = logical(PlannedFilter::Op::Or, std::move(ops));
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    const int n = 4;
    for (int i = 0; i < n; i++) spawn_and_wait({"/bin/true"});
    trace.settle();
    EXPECT_TRUE(trace.events.empty());
    EXPECT_GE(trace.backend->stats().filtered.value_or(0), static_cast<std::uint64_t>(n));
    EXPECT_EQ(trace.backend->stats().dropped, 0u);
}

TEST(BpfBackendTracepoint, StringGlobsMatchInTheKernel) {
    Child child;
    PlannedProbe p = exec_probe();
    // The exec of /bin/true (or /usr/bin/true) by our child, by every kind of pattern.
    std::vector<PlannedFilterNode> all;
    all.push_back(comparison_of(1, CmpOp::Eq, std::int64_t{child.pid()}));
    all.push_back(comparison_of(0, CmpOp::Glob, std::string("*/true")));
    all.push_back(comparison_of(0, CmpOp::Glob, std::string("/*")));
    all.push_back(comparison_of(0, CmpOp::Glob, std::string("*bin/tr*")));
    all.push_back(comparison_of(0, CmpOp::Ne, std::string("/bin/false")));
    all.push_back(comparison_of(Subject::Comm, CmpOp::Eq, std::string("true")));
    p.filter = logical(PlannedFilter::Op::And, std::move(all));
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    child.release();
    EXPECT_TRUE(trace.until([](const auto& ev) { return !ev.empty(); })) << "the exec did not pass the filter";
}

TEST(BpfBackendTracepoint, WithoutFieldsTheWholeRecordIsPrinted) {
    PlannedProbe p = exec_probe();
    p.fields.clear();
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    const pid_t pid = spawn_and_wait({"/bin/true"});
    ASSERT_TRUE(trace.until([&](const auto& ev) {
        return std::any_of(ev.begin(), ev.end(), [&](const Event& e) { return static_cast<pid_t>(e.tgid) == pid; });
    }));
    for (const auto& e : trace.events) {
        if (static_cast<pid_t>(e.tgid) != pid) continue;
        EXPECT_TRUE(value<std::string>(e, "filename").value_or("").ends_with("/bin/true"));
        EXPECT_EQ(value<std::int64_t>(e, "old_pid"), pid);
    }
}

// ---- functions ----

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The path our opens use: unique per run, never existing.
std::string missing_path(std::string_view tag) {
    return fmt::format("/tmp/ksurf-bpf-itest-{}-{}-missing", getpid(), tag);
}

void open_missing(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_LT(fd, 0);
    ASSERT_EQ(errno, ENOENT);
}

PlannedProbe filp_probe(ProbeKind kind) {
    PlannedProbe p;
    p.kind = kind;
    p.function = "do_filp_open";
    p.event = kind == ProbeKind::Return ? "do_filp_open.return" : "do_filp_open";
    p.text = fmt::format("{} do_filp_open", kind == ProbeKind::Return ? 'r' : 'p');
    return p;
}

// %1->name of do_filp_open(int dfd, struct filename *pathname, ...): a kernel string.
PlannedField filp_name() {
    PlannedField f = field("name", Base::Arg, Access::String, 128, 0, false, Display::String);
    f.fetch.arg = 1;
    f.fetch.derefs = {static_cast<std::int64_t>(member(kernel_btf().find_type("struct filename"), "name").offset)};
    return f;
}

PlannedField retval() { return field("ret", Base::Retval, Access::Value, 8, 0, true); }

BpfAttach expected(FunctionAttach a, ProbeKind kind) {
    const bool ret = kind == ProbeKind::Return;
    switch (a) {
    case FunctionAttach::Fentry: return ret ? BpfAttach::Fexit : BpfAttach::Fentry;
    case FunctionAttach::KprobeMulti: return ret ? BpfAttach::KretprobeMulti : BpfAttach::KprobeMulti;
    default: return ret ? BpfAttach::Kretprobe : BpfAttach::Kprobe;
    }
}

class BpfBackendFunction : public testing::TestWithParam<FunctionAttach> {
protected:
    void SetUp() override {
        const Feature need = GetParam() == FunctionAttach::Fentry   ? Feature::Fentry
                             : GetParam() == FunctionAttach::Kprobe ? Feature::Kprobe
                                                                    : Feature::KprobeMulti;
        const auto& st = features().get(need);
        if (st.ok) return;
        // Only 6.12 of the matrix has kprobe.multi (CONFIG_FPROBE).
        if (in_vm_matrix() && need != Feature::KprobeMulti) FAIL() << feature_name(need) << ": " << st.reason;
        GTEST_SKIP() << feature_name(need) << ": " << st.reason;
    }
};

TEST_P(BpfBackendFunction, EntryReadsAKernelStringAndFiltersOnIt) {
    const std::string path = missing_path("entry");
    PlannedProbe p = filp_probe(ProbeKind::Entry);
    p.fields.push_back(filp_name());
    p.filter = comparison_of(0, CmpOp::Glob, fmt::format("*-{}-entry-*", getpid()));
    Trace trace(GetParam());
    trace.backend->add(p);
    trace.backend->start();
    EXPECT_EQ(trace.backend->attachments().at(0).attach, expected(GetParam(), ProbeKind::Entry));
    spawn_and_wait({"/bin/true"});  // opens of other paths: filtered
    open_missing(path);
    ASSERT_TRUE(trace.until([](const auto& ev) { return !ev.empty(); })) << "no event for " << path;
    trace.settle();
    for (const auto& e : trace.events) {
        EXPECT_EQ(e.probe, "do_filp_open");
        EXPECT_EQ(value<std::string>(e, "name"), path);
        EXPECT_EQ(static_cast<pid_t>(e.pid), gettid_());
    }
    EXPECT_GT(trace.backend->stats().filtered.value_or(0), 0u);
}

TEST_P(BpfBackendFunction, ReturnProbeSeesTheError) {
    PlannedProbe p = filp_probe(ProbeKind::Return);
    p.fields.push_back(retval());
    p.filter = comparison_of(Subject::Tid, CmpOp::Eq, std::int64_t{gettid_()});
    Trace trace(GetParam());
    trace.backend->add(p);
    trace.backend->start();
    EXPECT_EQ(trace.backend->attachments().at(0).attach, expected(GetParam(), ProbeKind::Return));
    open_missing(missing_path("ret"));
    ASSERT_TRUE(trace.until([](const auto& ev) {
        return std::any_of(ev.begin(), ev.end(), [](const Event& e) { return value<std::int64_t>(e, "ret") == -ENOENT; });
    })) << "no do_filp_open return of -2";
    for (const auto& e : trace.events) EXPECT_EQ(e.probe, "do_filp_open.return");
}

INSTANTIATE_TEST_SUITE_P(, BpfBackendFunction,
                         testing::Values(FunctionAttach::Fentry, FunctionAttach::Kprobe, FunctionAttach::KprobeMulti),
                         [](const auto& info) {
                             return std::string(info.param == FunctionAttach::Fentry   ? "fentry"
                                                : info.param == FunctionAttach::Kprobe ? "kprobe"
                                                                                       : "kprobe_multi");
                         });

bool have(Feature f) {
    if (features().has(f)) return true;
    if (in_vm_matrix()) ADD_FAILURE() << feature_name(f) << ": " << features().get(f).reason;
    return false;
}

TEST(BpfBackendFexit, HasArgumentsAndTheReturnValue) {
    if (!have(Feature::Fexit)) GTEST_SKIP() << features().get(Feature::Fexit).reason;
    const std::string path = missing_path("fexit");
    PlannedProbe p = filp_probe(ProbeKind::Return);
    p.fields.push_back(filp_name());
    p.fields.push_back(retval());
    p.filter = comparison_of(0, CmpOp::Eq, path);
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    EXPECT_EQ(trace.backend->attachments().at(0).attach, BpfAttach::Fexit);
    open_missing(path);
    ASSERT_TRUE(trace.until([](const auto& ev) { return !ev.empty(); }));
    EXPECT_EQ(value<std::string>(trace.events[0], "name"), path);
    EXPECT_EQ(value<std::int64_t>(trace.events[0], "ret"), -ENOENT);
}

TEST(BpfBackendAuto, RegistersFallBackToAKprobeAndSayWhy) {
    if (!have(Feature::Kprobe)) GTEST_SKIP() << features().get(Feature::Kprobe).reason;
    PlannedProbe p = filp_probe(ProbeKind::Entry);
    PlannedField ip = field("ip", Base::Reg, Access::Value, 8, 0, false, Display::Hex);
    ip.fetch.reg = "ip";
    p.fields.push_back(std::move(ip));
    p.filter = comparison_of(Subject::Tid, CmpOp::Eq, std::int64_t{gettid_()});
    Trace trace;
    trace.backend->add(p);
    trace.backend->start();
    const auto& a = trace.backend->attachments().at(0);
    EXPECT_EQ(a.attach, BpfAttach::Kprobe);
    if (features().has(Feature::Fentry)) {
        EXPECT_EQ(a.why, "fentry: registers need a kprobe's struct pt_regs");
    }
    open_missing(missing_path("ip"));
    ASSERT_TRUE(trace.until([](const auto& ev) { return !ev.empty(); }));
    EXPECT_NE(value<std::uint64_t>(trace.events[0], "ip").value_or(0), 0u);
}

TEST(BpfBackendAuto, KretprobesCannotReadArguments) {
    PlannedProbe p = filp_probe(ProbeKind::Return);
    p.fields.push_back(filp_name());
    Trace trace(FunctionAttach::Kprobe);
    try {
        trace.backend->add(p);
        ADD_FAILURE() << "a kretprobe accepted an argument";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find("r do_filp_open: cannot use kretprobe: "), 0u) << e.what();
    }
}

TEST(BpfBackendAuto, WithoutFentryAndKprobesTheErrorSaysWhy) {
    if (features().has(Feature::Fentry) || features().has(Feature::Kprobe))
        GTEST_SKIP() << "this kernel has fentry or kprobes";
    PlannedProbe p = filp_probe(ProbeKind::Entry);
    Trace trace;
    try {
        trace.backend->add(p);
        ADD_FAILURE() << "attached without fentry or kprobes";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  fmt::format("p do_filp_open: no BPF attach type can run it: fentry: {}; kprobe: {}",
                              features().get(Feature::Fentry).reason, features().get(Feature::Kprobe).reason));
    }
}

TEST(BpfBackendKprobeMulti, OneLinkForFunctionsSharingASpec) {
    if (!features().has(Feature::KprobeMulti)) GTEST_SKIP() << features().get(Feature::KprobeMulti).reason;
    // Opening an existing file runs both; the probe id of each event is its cookie.
    PlannedProbe a = filp_probe(ProbeKind::Entry);
    a.filter = comparison_of(Subject::Tid, CmpOp::Eq, std::int64_t{gettid_()});
    PlannedProbe b = filp_probe(ProbeKind::Entry);
    b.function = b.event = "vfs_open";
    b.text = "p vfs_open";
    b.filter = comparison_of(Subject::Tid, CmpOp::Eq, std::int64_t{gettid_()});
    Trace trace(FunctionAttach::KprobeMulti);
    trace.backend->add(a);
    trace.backend->add(b);
    trace.backend->start();
    for (const auto& at : trace.backend->attachments()) EXPECT_EQ(at.attach, BpfAttach::KprobeMulti);
    close(open("/proc/self/stat", O_RDONLY));
    auto has = [](const std::vector<Event>& ev, std::string_view name) {
        return std::any_of(ev.begin(), ev.end(), [&](const Event& e) { return e.probe == name; });
    };
    EXPECT_TRUE(trace.until([&](const auto& ev) { return has(ev, "do_filp_open") && has(ev, "vfs_open"); }));
}

// ---- the verifier against the largest config ----

// Instruction counts of the ksurf programs loaded since FIRST_ID, for the log: what the
// verifier walked (5.16+), and what remains once dead branches are removed.
std::string program_sizes(std::uint32_t after_id) {
    std::string out;
    for (std::uint32_t id = after_id; bpf_prog_get_next_id(id, &id) == 0;) {
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0) continue;
        bpf_prog_info info{};
        std::uint32_t len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::string_view(info.name).starts_with("ksurf_"))
            out += fmt::format(" {}: {} verified, {} xlated;", info.name, info.verified_insns, info.xlated_prog_len / 8);
        close(fd);
    }
    return out;
}

std::uint32_t last_prog_id() {
    std::uint32_t id = 0;
    while (bpf_prog_get_next_id(id, &id) == 0) {
    }
    return id;
}

// 16 fields of 8 pointer loads each (one through a packet header, eight strings at full
// capacity) and a 32-op filter with eight 64-byte patterns, every string op kind among
// them. The values read are garbage; the point is that every kernel verifies it.
PlannedProbe maximal(PlannedProbe p, Base base) {
    auto chain = [&](std::string name, Access access, std::uint32_t size, unsigned i) {
        PlannedField f = field(std::move(name), base, access, size, 8 * i, i % 2, access == Access::String ? Display::String : Display::Decimal);
        f.fetch.arg = i % 3;  // do_filp_open has three parameters
        f.fetch.derefs.assign(KSURF_MAX_STEPS, 8 * i);
        return f;
    };
    PlannedField packet = field("ip_saddr", Base::Packet, Access::Load, 4, 12, false, Display::IPv4);
    packet.fetch.layer = Layer::L3;
    packet.fetch.skb = std::move(chain("skb", Access::Value, 8, 0).fetch);
    packet.fetch.skb->derefs.resize(3);
    packet.fetch.derefs.assign(KSURF_MAX_STEPS - 3, 16);
    p.fields.push_back(std::move(packet));
    for (unsigned i = 1; i < 8; i++) {
        PlannedField f = chain(fmt::format("n{}", i), Access::Load, 8 >> (i % 4), i);
        if (i == 7) f.fetch.bit_offset = 3, f.fetch.bit_size = 5;
        p.fields.push_back(std::move(f));
    }
    for (unsigned i = 8; i < KSURF_MAX_FIELDS; i++) p.fields.push_back(chain(fmt::format("s{}", i), Access::String, 4096, i));
    std::vector<PlannedFilterNode> ops;  // 16 comparisons, 15 ORs, one NOT
    for (unsigned i = 0; i < KSURF_MAX_PATTERNS; i++)
        ops.push_back(comparison_of(8 + i, CmpOp::Glob, "*" + std::string(KSURF_MAX_PATTERN - 2, char('a' + i)) + "z*"));
    const char* shapes[] = {"{}", "{}*", "*{}", "{}"};
    for (unsigned i = 0; i < 4; i++)
        ops.push_back(comparison_of(8 + i, i == 3 ? CmpOp::Eq : CmpOp::Glob,
                              fmt::format(fmt::runtime(shapes[i]), std::string(KSURF_MAX_PATTERN - 2, char('a' + i)) + "z")));
    for (unsigned i = 1; i < 4; i++) ops.push_back(comparison_of(i, CmpOp::Gt, std::int64_t{1} << 40));
    std::vector<PlannedFilterNode> never;
    never.push_back(comparison_of(4, CmpOp::Ne, std::uint64_t{12345}));
    ops.push_back(logical(PlannedFilter::Op::Not, std::move(never)));
    p.filter = logical(PlannedFilter::Op::Or, std::move(ops));
    return p;
}

TEST(BpfBackendVerifier, LargestTracepointConfigLoads) {
    Trace trace;
    const std::uint32_t before = last_prog_id();
    PlannedProbe p = exec_probe();
    p.fields.clear();
    ASSERT_NO_THROW(trace.backend->add(maximal(std::move(p), Base::Record)));
    trace.backend->start();
    spawn_and_wait({"/bin/true"});
    trace.settle();
    std::cout << "[ sizes    ]" << program_sizes(before) << "\n";
    EXPECT_GE(trace.backend->stats().filtered.value_or(0), 1u);
}

TEST_P(BpfBackendFunction, LargestConfigLoads) {
    PlannedProbe p = maximal(filp_probe(ProbeKind::Entry), Base::Arg);
    Trace trace(GetParam());
    const std::uint32_t before = last_prog_id();
    ASSERT_NO_THROW(trace.backend->add(p)) << p.text;
    ASSERT_NO_THROW(trace.backend->start());
    open_missing(missing_path("max"));
    trace.settle();
    std::cout << "[ sizes    ]" << program_sizes(before) << "\n";
    EXPECT_GE(trace.backend->stats().filtered.value_or(0), 1u);
}

}  // namespace
}  // namespace ksurf::test
