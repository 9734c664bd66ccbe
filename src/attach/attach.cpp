#include "ksurf/attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <thread>

#include "ksurf/error.h"
#include "ksurf/tracefs.h"

namespace ksurf {
namespace {

bool g_verbose = false;

struct ObjectCloser {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
};

bool is_rodata(const bpf_map* m) {
    const std::string_view name = bpf_map__name(m);
    return bpf_map__is_internal(m) && name.ends_with(".rodata");
}

struct ProgType {
    bpf_prog_type type;
    bpf_attach_type expected;
};

ProgType prog_type(BpfAttach a) {
    switch (a) {
    case BpfAttach::Fentry: return {BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY};
    case BpfAttach::Fexit: return {BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT};
    case BpfAttach::TpBtf: return {BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP};
    case BpfAttach::RawTp: return {BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_CGROUP_INET_INGRESS};
    case BpfAttach::Tracepoint: return {BPF_PROG_TYPE_TRACEPOINT, BPF_CGROUP_INET_INGRESS};
    case BpfAttach::KprobeMulti:
    case BpfAttach::KretprobeMulti: return {BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI};
    default: return {BPF_PROG_TYPE_KPROBE, BPF_CGROUP_INET_INGRESS};
    }
}

std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line)) fail("cannot read {}: {}", path, errno_text(errno));
    return line;
}

int perf_event_open(perf_event_attr& attr) {
    attr.size = sizeof attr;
    return static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
}

// A probe PMU's (kprobe, uprobe) type and the config bit that makes a probe a return probe.
struct ProbePmu {
    std::uint32_t type;
    std::uint64_t retprobe;
};

ProbePmu read_pmu(const std::string& name) {
    const std::string dir = "/sys/bus/event_source/devices/" + name + "/";
    const std::string ret = read_line(dir + "format/retprobe");  // "config:0"
    const auto colon = ret.find(':');
    if (colon == ret.npos) fail("unexpected {}format/retprobe: '{}'", dir, ret);
    return ProbePmu{static_cast<std::uint32_t>(std::stoul(read_line(dir + "type"))), 1ULL << std::stoul(ret.substr(colon + 1))};
}

// A kprobe or uprobe perf event: config1 names the function or the binary, config2 is
// the offset into the function or the file.
Fd probe_event(const ProbePmu& pmu, bool ret, const std::string& name, std::uint64_t offset) {
    perf_event_attr attr{};
    attr.type = pmu.type;
    attr.config = ret ? pmu.retprobe : 0;
    attr.config1 = reinterpret_cast<std::uintptr_t>(name.c_str());
    attr.config2 = offset;
    return Fd(perf_event_open(attr));
}

// The program on a perf event (tracepoint, kprobe): through a BPF link where the kernel has
// them (5.15), else by ioctl, where the perf event itself holds the program.
// Why perf_event_open() said EACCES to a process that may have CAP_PERFMON: Debian's
// kernels add a paranoid level 3 that only CAP_SYS_ADMIN passes.
std::string paranoid_hint(int err) {
    std::ifstream in("/proc/sys/kernel/perf_event_paranoid");
    int level = 0;
    if (err != EACCES || !(in >> level) || level <= 2) return "";
    return fmt::format("; kernel.perf_event_paranoid is {}: perf events need CAP_SYS_ADMIN", level);
}

Link attach_perf(int prog, Fd event, std::string_view what) {
    if (!event) {
        const int err = errno;
        fail("cannot attach {}: {}{}", what, errno_text(err), paranoid_hint(err));
    }
    Fd link(bpf_link_create(prog, event.get(), BPF_PERF_EVENT, nullptr));
    Fd held;
    if (!link) {
        if (errno != EINVAL) fail("cannot attach {}: {}", what, errno_text(errno));
        if (ioctl(event.get(), PERF_EVENT_IOC_SET_BPF, prog)) fail("cannot attach {}: {}", what, errno_text(errno));
        held.reset(fcntl(prog, F_DUPFD_CLOEXEC, 3));
    }
    if (ioctl(event.get(), PERF_EVENT_IOC_ENABLE, 0)) fail("cannot enable {}: {}", what, errno_text(errno));
    return {std::move(link), std::move(event), std::move(held)};
}

// Closes FDS from up to 256 threads: the closes sleep in the kernel, they do not spin.
void close_parallel(std::vector<Fd>& fds) {
    if (fds.size() < 2) {
        fds.clear();
        return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    auto work = [&] {
        for (std::size_t i; (i = next++) < fds.size();) fds[i].reset();
    };
    try {
        for (std::size_t i = 1; i < std::min<std::size_t>(fds.size(), 256); i++) threads.emplace_back(work);
    } catch (const std::system_error&) {
        // No more threads: those started and this one close the rest.
    }
    work();
    for (auto& t : threads) t.join();
    fds.clear();
}

}  // namespace

std::string_view bpf_attach_name(BpfAttach a) {
    switch (a) {
    case BpfAttach::Fentry: return "fentry";
    case BpfAttach::Fexit: return "fexit";
    case BpfAttach::Kprobe: return "kprobe";
    case BpfAttach::Kretprobe: return "kretprobe";
    case BpfAttach::KprobeMulti: return "kprobe.multi";
    case BpfAttach::KretprobeMulti: return "kretprobe.multi";
    case BpfAttach::Tracepoint: return "tracepoint";
    case BpfAttach::TpBtf: return "tp_btf";
    case BpfAttach::RawTp: return "raw_tp";
    case BpfAttach::Uprobe: return "uprobe";
    case BpfAttach::Uretprobe: return "uretprobe";
    }
    return "?";
}

// ---- the template ----

void BpfTemplate::set_verbose(bool v) { g_verbose = v; }

BpfTemplate::BpfTemplate(std::span<const std::uint8_t> elf, const std::vector<std::string>& programs, const MapSetup& setup) {
    std::unique_ptr<bpf_object, ObjectCloser> obj(bpf_object__open_mem(elf.data(), elf.size(), nullptr));
    if (!obj) fail("cannot open the BPF object: {}", errno_text(errno));
    bpf_program* p = nullptr;
    bpf_object__for_each_program(p, obj.get()) {
        const bool wanted = std::find(programs.begin(), programs.end(), bpf_program__name(p)) != programs.end();
        bpf_program__set_autoload(p, wanted);
    }
    bpf_map* m = nullptr;
    if (setup) bpf_object__for_each_map(m, obj.get()) setup(m);
    if (int err = bpf_object__load(obj.get()))
        fail("cannot load the BPF programs: {}{}", errno_text(err), err == -EACCES || err == -EINVAL ? " (-vv shows the verifier's log)" : "");

    // The object's own maps outlive it for the clones: their fds are duplicated, and the
    // instructions that name the originals are rewritten to the duplicates.
    int rodata_fd = -1;
    std::map<int, int> renamed;
    bpf_object__for_each_map(m, obj.get()) {
        if (is_rodata(m)) {
            std::size_t size = 0;
            const auto* data = static_cast<const std::uint8_t*>(bpf_map__initial_value(m, &size));
            rodata_.assign(data, data + size);
            rodata_flags_ = bpf_map__map_flags(m);
            rodata_fd = bpf_map__fd(m);
            continue;
        }
        Fd copy(fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 3));
        if (!copy) fail("cannot keep the BPF map '{}': {}", bpf_map__name(m), errno_text(errno));
        renamed[bpf_map__fd(m)] = copy.get();
        maps_.emplace(bpf_map__name(m), std::move(copy));
    }
    bpf_object__for_each_program(p, obj.get()) {
        if (!bpf_program__autoload(p)) continue;
        Program prog{bpf_program__name(p), Fd(fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 3)), {}, {}};
        if (!prog.fd) fail("cannot keep the BPF program '{}': {}", prog.name, errno_text(errno));
        const std::size_t n = bpf_program__insn_cnt(p);
        prog.insns.resize(n);
        std::memcpy(prog.insns.data(), bpf_program__insns(p), n * sizeof(bpf_insn));
        auto* insns = reinterpret_cast<bpf_insn*>(prog.insns.data());
        for (std::size_t i = 0; i + 1 < n; i++) {
            bpf_insn& in = insns[i];
            if (in.code != (BPF_LD | BPF_IMM | BPF_DW)) continue;
            if (in.src_reg == BPF_PSEUDO_MAP_FD || in.src_reg == BPF_PSEUDO_MAP_VALUE) {
                if (in.imm == rodata_fd)
                    prog.rodata_refs.push_back(i);
                else if (auto it = renamed.find(in.imm); it != renamed.end())
                    in.imm = it->second;
            }
            i++;  // the second half of the 16-byte load
        }
        programs_.push_back(std::move(prog));
    }
}

BpfTemplate::~BpfTemplate() = default;

int BpfTemplate::map(std::string_view name) const {
    auto it = maps_.find(name);
    if (it == maps_.end()) fail("the BPF template has no map '{}'", name);
    return it->second.get();
}

const BpfTemplate::Program& BpfTemplate::program_of(std::string_view name) const {
    for (const auto& p : programs_)
        if (p.name == name) return p;
    fail("the BPF template has no program '{}'", name);
}

Fd BpfTemplate::make_rodata(std::span<const std::uint8_t> data) const {
    if (data.size() != rodata_.size()) fail("read-only data of {} bytes for a template of {}", data.size(), rodata_.size());
    // The verifier reads a frozen, program-read-only map's contents as constants: what lets
    // it drop every branch of the interpreter a probe does not use.
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = rodata_flags_ | BPF_F_RDONLY_PROG);
    Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ksurf.rodata", sizeof(std::uint32_t), static_cast<std::uint32_t>(data.size()), 1, &o));
    if (!fd) fail("cannot create a BPF map for read-only data: {}", errno_text(errno));
    const std::uint32_t zero = 0;
    if (bpf_map_update_elem(fd.get(), &zero, data.data(), BPF_ANY) || bpf_map_freeze(fd.get()))
        fail("cannot fill the read-only data map: {}", errno_text(errno));
    return fd;
}

Fd BpfTemplate::load(std::string_view name, BpfAttach a, int rodata, const AttachTarget& target, std::span<const bpf_insn> prefix) const {
    const Program& prog = program_of(name);
    static_assert(sizeof(bpf_insn) == sizeof(std::uint64_t));
    std::vector<std::uint64_t> insns(prefix.size() + prog.insns.size());
    // An empty prefix's data() may be null, which memcpy may not be given even for 0 bytes.
    if (!prefix.empty()) std::memcpy(insns.data(), prefix.data(), prefix.size_bytes());
    std::copy(prog.insns.begin(), prog.insns.end(), insns.begin() + static_cast<std::ptrdiff_t>(prefix.size()));
    for (std::size_t i : prog.rodata_refs) reinterpret_cast<bpf_insn*>(insns.data())[prefix.size() + i].imm = rodata;
    return load_insns(prog, a, {reinterpret_cast<const bpf_insn*>(insns.data()), insns.size()}, target);
}

Fd BpfTemplate::load_code(std::string_view name, BpfAttach a, std::span<const bpf_insn> code, const AttachTarget& target) const {
    return load_insns(program_of(name), a, code, target);
}

Fd BpfTemplate::load_insns(const Program& prog, BpfAttach a, std::span<const bpf_insn> insns, const AttachTarget& target) const {
    const ProgType t = prog_type(a);
    LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = t.expected, .attach_btf_id = target.btf_id);
    if (!target.btf_module.empty()) o.attach_btf_obj_fd = static_cast<__u32>(module_btf_fd(target.btf_module));
    const std::string prog_name = prog.name.substr(0, 15);
    Fd fd(bpf_prog_load(t.type, prog_name.c_str(), "GPL", insns.data(), insns.size(), &o));
    if (fd) return fd;
    const int err = errno;
    if (g_verbose) {
        // The log costs a second verification: only for a failure someone asked to see.
        std::vector<char> log(64u << 20);
        o.log_buf = log.data();
        o.log_size = static_cast<__u32>(log.size());
        o.log_level = 1;
        Fd again(bpf_prog_load(t.type, prog_name.c_str(), "GPL", insns.data(), insns.size(), &o));
        fmt::print(stderr, "ksurf: the verifier's log for {} as {}:\n{}\n", prog.name, bpf_attach_name(a), log.data());
    }
    const bool denied = err == EPERM && geteuid() == 0;
    fail("cannot load the {} program: {}{}", bpf_attach_name(a), errno_text(err),
         denied                           ? "; the kernel does not permit this attach type, even to root"
         : err == EACCES || err == EINVAL ? " (-vv shows the verifier's log)"
                                          : "");
}

// ---- attaching ----

Link attach(int prog, BpfAttach a, const AttachTarget& t) {
    const std::string what = fmt::format("{} {}", bpf_attach_name(a), t.subsystem.empty() ? t.name : t.subsystem + "/" + t.name);
    switch (a) {
    case BpfAttach::Fentry:
    case BpfAttach::Fexit:
    case BpfAttach::TpBtf:
    case BpfAttach::RawTp: {
        Fd fd(bpf_raw_tracepoint_open(a == BpfAttach::RawTp ? t.name.c_str() : nullptr, prog));
        if (!fd) fail("cannot attach {}: {}", what, errno_text(errno));
        return {std::move(fd), Fd(), Fd()};
    }
    case BpfAttach::Tracepoint: {
        perf_event_attr attr{};
        attr.type = PERF_TYPE_TRACEPOINT;
        attr.config = std::stoull(read_line(fmt::format("{}/events/{}/{}/id", tracefs::root(), t.subsystem, t.name)));
        return attach_perf(prog, Fd(perf_event_open(attr)), what);
    }
    case BpfAttach::Kprobe:
    case BpfAttach::Kretprobe: {
        static const ProbePmu pmu = read_pmu("kprobe");
        return attach_perf(prog, probe_event(pmu, a == BpfAttach::Kretprobe, t.name, t.offset), what);
    }
    case BpfAttach::Uprobe:
    case BpfAttach::Uretprobe: {
        static const ProbePmu pmu = read_pmu("uprobe");
        return attach_perf(prog, probe_event(pmu, a == BpfAttach::Uretprobe, t.binary, t.offset), what);
    }
    case BpfAttach::KprobeMulti:
    case BpfAttach::KretprobeMulti: return attach_multi(prog, a == BpfAttach::KretprobeMulti, {t.name.c_str()}, {});
    }
    fail("cannot attach {}: unknown attach type", what);
}

Link attach_multi(int prog, bool ret, const std::vector<const char*>& syms, const std::vector<std::uint64_t>& cookies) {
    LIBBPF_OPTS(bpf_link_create_opts, o);
    o.kprobe_multi.flags = ret ? BPF_F_KPROBE_MULTI_RETURN : 0;
    o.kprobe_multi.cnt = static_cast<__u32>(syms.size());
    o.kprobe_multi.syms = const_cast<const char**>(syms.data());
    o.kprobe_multi.cookies = cookies.empty() ? nullptr : reinterpret_cast<const __u64*>(cookies.data());
    Fd fd(bpf_link_create(prog, 0, BPF_TRACE_KPROBE_MULTI, &o));
    if (!fd)
        fail("cannot attach {} function{} with {}: {}", syms.size(), syms.size() == 1 ? "" : "s",
             ret ? "kretprobe.multi" : "kprobe.multi", errno_text(errno));
    return {std::move(fd), Fd(), Fd()};
}

// In a grandchild of ksurf, which init reaps: waits until ksurf has dropped its copies of
// EVENTS (the pipe's write end closes), then closes them, every other fd closed first.
[[noreturn]] void close_after_exit(const std::vector<Fd>& events, int wait_fd) {
    std::vector<int> keep{wait_fd};
    for (const Fd& e : events) keep.push_back(e.get());
    std::sort(keep.begin(), keep.end());
    unsigned from = 0;
    for (int fd : keep) {
        if (static_cast<unsigned>(fd) > from) close_range(from, fd - 1, 0);
        from = fd + 1;
    }
    close_range(from, ~0U, 0);
    char c;
    while (read(wait_fd, &c, 1) < 0 && errno == EINTR) {
    }
    for (int fd : keep) close(fd);
    _exit(0);
}

void Links::clear() {
    std::vector<Fd> links, events;
    for (Link& l : links_) {
        // On 5.10 the event holds the program: closing it is what detaches.
        if (l.event) (l.link ? events : links).push_back(std::move(l.event));
        if (l.link) links.push_back(std::move(l.link));
        if (l.prog) links.push_back(std::move(l.prog));
    }
    links_.clear();
    close_parallel(links);
    int done[2];
    if (events.size() < 2 || pipe2(done, O_CLOEXEC)) {
        close_parallel(events);
        return;
    }
    const pid_t child = fork();
    if (child == 0) {
        if (fork() == 0) close_after_exit(events, done[0]);
        _exit(0);
    }
    close(done[0]);
    if (child > 0) waitpid(child, nullptr, 0);
    // With the grandchild holding them, these closes only drop references: no waiting.
    close_parallel(events);
    close(done[1]);
}

std::vector<std::uint64_t> sum_per_cpu(int fd, std::uint32_t key, std::size_t n) {
    bpf_map_info info{};
    __u32 len = sizeof info;
    std::vector<std::uint64_t> sums(n);
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) return sums;
    const std::size_t stride = (info.value_size + 7) / 8, ncpu = std::max(libbpf_num_possible_cpus(), 1);
    std::vector<std::uint64_t> values(stride * ncpu);
    if (bpf_map_lookup_elem(fd, &key, values.data())) return sums;
    for (std::size_t cpu = 0; cpu < ncpu; cpu++)
        for (std::size_t i = 0; i < std::min(n, stride); i++) sums[i] += values[cpu * stride + i];
    return sums;
}

int module_btf_fd(std::string_view module) {
    static std::mutex mu;
    static std::map<std::string, Fd, std::less<>> fds;
    std::lock_guard lock(mu);
    if (auto it = fds.find(module); it != fds.end()) return it->second.get();
    for (__u32 id = 0; bpf_btf_get_next_id(id, &id) == 0;) {
        Fd fd(bpf_btf_get_fd_by_id(id));
        if (!fd) continue;
        char name[64] = {};
        bpf_btf_info info{};
        info.name = reinterpret_cast<std::uintptr_t>(name);
        info.name_len = sizeof name;
        __u32 len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && module == name)
            return fds.emplace(std::string(module), std::move(fd)).first->second.get();
    }
    fail("no BTF object of module '{}' in the kernel: {}", module, errno_text(errno));
}

}  // namespace ksurf
