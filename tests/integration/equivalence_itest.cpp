// The ksurf binary on every backend the kernel offers: the same probe texts against the same
// triggered calls must print the same field values on tracefs, fentry and kprobe; the
// tracefs integration cases pass on BPF too; and -s, -p, -c, --cgroup, TP_PROTO arguments
// and a filter that rejects everything behave alike where the backend can run them. A
// backend the host lacks is skipped with the kernel's reason; in the VM matrix it fails.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "backends.h"
#include "kernel_state.h"
#include "process.h"

namespace ksurf::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A child that execs ARGV once released: its pid is known before it runs anything.
class Held {
public:
    explicit Held(std::vector<std::string> argv) {
        EXPECT_EQ(pipe(fds_), 0);
        pid_ = fork();
        if (pid_ == 0) {
            close(fds_[1]);
            char c;
            if (read(fds_[0], &c, 1) != 1) _exit(127);
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execv(args[0], args.data());
            _exit(127);
        }
        close(fds_[0]);
    }
    ~Held() {
        if (fds_[1] >= 0) close(fds_[1]);
        if (pid_ > 0) waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }
    void release() {
        EXPECT_EQ(write(fds_[1], "x", 1), 1);
        close(fds_[1]);
        fds_[1] = -1;
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    int fds_[2] = {-1, -1};
    pid_t pid_ = -1;
};

std::string unique(const char* what) { return fmt::format("/tmp/ksurf-eq-{}-{}", what, getpid()); }

// ---- the same function probes on every backend ----

// Field values of the probes below for the opens of one `cat` of a missing file.
std::vector<std::string> function_values(const std::string& backend, const std::string& path) {
    const std::string glob = fmt::format("f:name~\"*{}*\"", fs::path(path).filename().string());
    pid_t cat = 0;
    auto r = trace(backend,
                   {"-d", "3", fmt::format("p do_filp_open name=%1->name dfd=%0 flags=%2->open_flag {}", glob),
                    fmt::format("r do_sys_openat2 ret=$retval f:ret<0 && comm==\"cat\"")},
                   [&] { cat = spawn_and_wait({"/bin/cat", path}); });
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> v;
    for (const auto& l : of(parse(r.out), cat)) v.push_back(l.rest);
    // tracefs reads its per-CPU buffers one after the other: cat may have moved CPUs.
    std::sort(v.begin(), v.end());
    return v;
}

TEST(Equivalence, FunctionProbesPrintTheSameValuesOnEveryBackend) {
    const std::string path = unique("missing");
    std::map<std::string, std::vector<std::string>> seen;
    for (const char* backend : {"tracefs", "fentry", "kprobe"}) {
        REQUIRE_FUNCTIONS_ON(backend);
        seen[backend] = function_values(backend, path);
    }
    const auto& ref = seen["tracefs"];
    ASSERT_FALSE(ref.empty());
    // cat's open of the missing file: the name through a member chain, AT_FDCWD, the
    // O_RDONLY|O_LARGEFILE-style flags the kernel built, and ENOENT.
    bool name = false, ret = false;
    for (const auto& l : ref) {
        name |= l.starts_with(fmt::format("do_filp_open: name={} dfd=-100 flags=", path));
        ret |= l == "do_sys_openat2.return: ret=-2";
    }
    EXPECT_TRUE(name && ret) << fmt::format("{}", fmt::join(ref, "\n"));
    for (const auto& [backend, values] : seen) EXPECT_EQ(values, ref) << backend << " differs from tracefs";
}

// ---- the tracefs integration cases, on BPF ----

class FunctionCase : public testing::TestWithParam<std::string> {
protected:
    void SetUp() override { REQUIRE_FUNCTIONS_ON(GetParam()); }
};

TEST_P(FunctionCase, EntryProbeReadsAStringFilteredByComm) {
    const auto path = unique("entry");
    std::ofstream{path};
    pid_t cat = 0;
    auto r = trace(GetParam(), {"-d", "2", "p do_filp_open name=%1->name f:comm==\"cat\""}, [&] {
        spawn_and_wait({"/bin/true"});
        cat = spawn_and_wait({"/bin/cat", path});
    });
    unlink(path.c_str());
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse(r.out);
    for (const auto& l : all) EXPECT_EQ(l.comm, "cat") << l.rest;
    bool found = false;
    for (const auto& l : of(all, cat)) found |= l.rest == "do_filp_open: name=" + path;
    EXPECT_TRUE(found) << r.out;
}

TEST_P(FunctionCase, ReturnProbeRetval) {
    pid_t cat = 0;
    auto r = trace(GetParam(), {"-d", "2", "r do_sys_openat2 ret=$retval f:comm==\"cat\" && ret<0"},
                   [&] { cat = spawn_and_wait({"/bin/cat", unique("missing")}); });
    ASSERT_EQ(r.status, 0) << r.err;
    auto mine = of(parse(r.out), cat);
    ASSERT_FALSE(mine.empty()) << r.out;
    EXPECT_EQ(mine.back().rest, "do_sys_openat2.return: ret=-2");
}

// A filter that rejects everything: no events, but every rejected hit counted (BPF; tracefs
// filters count nothing).
TEST_P(FunctionCase, RejectingFilterPrintsNothingAndCounts) {
    if (GetParam() == "tracefs") GTEST_SKIP() << "tracefs event filters count nothing";
    auto r = trace(GetParam(), {"-d", "2", "--count-filtered", "p do_filp_open name=%1->name f:name==\"/ksurf/never\""}, [&] {
        for (int i = 0; i < 3; i++) spawn_and_wait({"/bin/cat", "/proc/self/stat"});
    });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(0 events, (\d+) filtered, 0 dropped)"))) << r.err;
    EXPECT_GE(std::stoul(m[1]), 3u) << r.err;  // at least each cat's open of its file
}

// -s: the caller chain of do_sys_openat2 runs through the openat syscall.
TEST_P(FunctionCase, StacksShowTheSyscallPath) {
    pid_t cat = 0;
    auto r = trace(GetParam(), {"-d", "2", "-s", "p do_sys_openat2 f:comm==\"cat\""},
                   [&] { cat = spawn_and_wait({"/bin/cat", "/proc/self/stat"}); });
    ASSERT_EQ(r.status, 0) << r.err;
    auto mine = of(parse(r.out), cat);
    ASSERT_FALSE(mine.empty()) << r.out;
    for (const auto& l : mine) {
        const std::string all = fmt::format("{}", fmt::join(l.stack, "\n"));
        EXPECT_NE(all.find("sys_open"), std::string::npos) << all;
        EXPECT_NE(all.find("do_syscall_64+0x"), std::string::npos) << all;
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, FunctionCase, testing::Values("tracefs", "fentry", "kprobe"),
                         [](const auto& info) { return info.param; });

// An offset inside a function is for kprobes only; tracefs_itest runs it on tracefs.
TEST(FunctionCaseKprobe, OffsetProbeReadsARegister) {
    REQUIRE_FUNCTIONS_ON("kprobe");
    int offset = 5;
    if (run({ksurf_bin(), "--backend", "kprobe", "-d", "0.1", "p do_filp_open+5"}).err.find("cannot attach") != std::string::npos)
        offset = 9;  // behind an endbr64
    const auto path = unique("offset");
    std::ofstream{path};
    pid_t cat = 0;
    auto r = trace("kprobe", {"-d", "2", fmt::format("p do_filp_open+{} name=((struct filename *)%si)->name f:comm==\"cat\"", offset)},
                   [&] { cat = spawn_and_wait({"/bin/cat", path}); });
    unlink(path.c_str());
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false;
    for (const auto& l : of(parse(r.out), cat)) found |= l.rest == fmt::format("do_filp_open+{:#x}: name={}", offset, path);
    EXPECT_TRUE(found) << r.out;
}

// ---- tracepoints: on BPF and tracefs, the host included ----

class TracepointCase : public testing::TestWithParam<std::string> {};

TEST_P(TracepointCase, ExecLinesAndJson) {
    pid_t pid = 0;
    auto r = trace(GetParam(), {"--json", "-d", "2", "e sched/sched_process_exec"}, [&] { pid = spawn_and_wait({"/bin/true"}); });
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false;
    for (const auto& l : lines(r.out)) {
        auto j = nlohmann::json::parse(l);
        if (j.contains("summary") || j["pid"] != pid) continue;
        found = true;
        EXPECT_EQ(j["comm"], "true");
        EXPECT_EQ(j["tgid"], pid);
        EXPECT_EQ(j["fields"]["pid"], pid);
        EXPECT_FALSE(j.contains("stack"));
    }
    EXPECT_TRUE(found) << r.out;
}

TEST_P(TracepointCase, NumericFilter) {
    const pid_t self = getpid();
    std::vector<pid_t> pids;
    auto r = trace(GetParam(), {"-d", "2", fmt::format("e sched/sched_process_fork f:parent_pid=={}", self)}, [&] {
        for (int i = 0; i < 3; i++) pids.push_back(spawn_and_wait({"/bin/true"}));
    });
    ASSERT_EQ(r.status, 0) << r.err;
    for (const auto& l : parse(r.out)) EXPECT_NE(l.rest.find(fmt::format(" parent_pid={} ", self)), std::string::npos) << l.rest;
    for (pid_t pid : pids) EXPECT_NE(r.out.find(fmt::format(" child_pid={}", pid)), std::string::npos) << r.out;
}

TEST_P(TracepointCase, FilteredByComm) {
    auto r = trace(GetParam(), {"-d", "2", "e sched/sched_process_exec f:comm==\"true\""}, [&] {
        spawn_and_wait({"/bin/true"});
        spawn_and_wait({"/bin/echo"});
    });
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse(r.out);
    ASSERT_FALSE(all.empty()) << r.err;
    for (const auto& l : all) EXPECT_EQ(l.comm, "true");
}

// -s on an exec: the stack runs through the execve syscall.
TEST_P(TracepointCase, StacksShowTheExecPath) {
    pid_t pid = 0;
    auto r = trace(GetParam(), {"-d", "2", "-s", "--json", "e sched/sched_process_exec"}, [&] { pid = spawn_and_wait({"/bin/true"}); });
    ASSERT_EQ(r.status, 0) << r.err;
    bool found = false;
    for (const auto& l : lines(r.out)) {
        auto j = nlohmann::json::parse(l);
        if (j.contains("summary") || j["pid"] != pid) continue;
        found = true;
        ASSERT_TRUE(j.contains("stack")) << l;
        const std::string all = j["stack"].dump();
        EXPECT_NE(all.find("exec"), std::string::npos) << all;
        EXPECT_NE(all.find("do_syscall_64+0x"), std::string::npos) << all;
    }
    EXPECT_TRUE(found) << r.out;
}

// -p: of two identical workloads, only the named one is reported.
TEST_P(TracepointCase, PidTracesOnlyThatProcess) {
    Held a({"/bin/true"}), b({"/bin/true"});
    const pid_t traced = a.pid(), other = b.pid();
    auto r = trace(GetParam(), {"-d", "2", "-p", std::to_string(traced), "e sched/sched_process_exec"}, [&] {
        a.release();
        b.release();
    });
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse(r.out);
    EXPECT_EQ(of(all, traced).size(), 1u) << r.out;
    EXPECT_TRUE(of(all, other).empty()) << r.out;
    for (const auto& l : all) EXPECT_EQ(l.pid, traced) << l.rest;
}

// -c: the command and what it forks, not an identical exec outside it; the run ends with it.
TEST_P(TracepointCase, CommandTracesItselfAndItsChildrenAndEnds) {
    std::vector<std::string> args = {ksurf_bin(), "--backend", GetParam(), "e sched/sched_process_exec",
                                     "-c", "/bin/sh", "-c", "sleep 1; /bin/true; /bin/true"};
    Process p(args);
    ASSERT_TRUE(p.wait_for_err(kReady, 30s)) << p.finish().err;
    const pid_t outside = spawn_and_wait({"/bin/true"});
    auto r = p.finish(60s);  // no -d: the command's exit ends the run
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse(r.out);
    EXPECT_TRUE(of(all, outside).empty()) << r.out;
    // Counted by the exec'd file, not the task name: tracefs names a task from /proc or from
    // ftrace's saved_cmdlines, and a child that exited before the read and whose name the
    // kernel did not save (128 slots, shared with the whole host) prints as <...>, as in ftrace.
    int trues = 0, shells = 0;
    for (const auto& l : all) {
        trues += l.rest.find("filename=/bin/true ") != std::string::npos;
        shells += l.rest.find("filename=/bin/sh ") != std::string::npos;
    }
    EXPECT_EQ(shells, 1) << r.out;  // the command's own exec
    EXPECT_EQ(trues, 2) << r.out;   // its children
}

INSTANTIATE_TEST_SUITE_P(Backends, TracepointCase, testing::Values("bpf", "tracefs"),
                         [](const auto& info) { return info.param; });

// ---- BPF only ----

// The cgroup2 mount: /sys/fs/cgroup in the guests, /sys/fs/cgroup/unified on hybrid hosts.
std::optional<fs::path> cgroup2_root() {
    const auto dirs = cgroup2_dirs();
    return dirs.empty() ? std::nullopt : std::optional<fs::path>(dirs.front());
}

TEST(Cgroup, OnlyTasksInTheCgroupAreTraced) {
    auto root = cgroup2_root();
    if (!root) {
        if (in_vm_matrix()) FAIL() << "no cgroup2 mount";
        GTEST_SKIP() << "no cgroup2 mount";
    }
    const fs::path cg = *root / fmt::format("ksurf-itest-{}", getpid());
    ASSERT_TRUE(fs::create_directory(cg)) << cg;
    pid_t inside = 0, outside = 0;
    Result r;
    {
        Held a({"/bin/true"}), b({"/bin/true"});
        inside = a.pid();
        outside = b.pid();
        std::ofstream(cg / "cgroup.procs") << inside << std::endl;
        r = trace("bpf", {"-d", "2", "--cgroup", cg.string(), "e sched/sched_process_exec"}, [&] {
            a.release();
            b.release();
        });
    }
    fs::remove(cg);
    ASSERT_EQ(r.status, 0) << r.err;
    auto all = parse(r.out);
    EXPECT_EQ(of(all, inside).size(), 1u) << r.out;
    EXPECT_TRUE(of(all, outside).empty()) << r.out;
}

TEST(Cgroup, TracefsRefusesInOneLine) {
    auto root = cgroup2_root();
    if (!root) GTEST_SKIP() << "no cgroup2 mount";
    auto r = run({ksurf_bin(), "--backend", "tracefs", "-d", "1", "--cgroup", root->string(), "e sched/sched_process_exec"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "ksurf: --cgroup needs the BPF backend: tracefs event filters cannot match a cgroup\n");
}

// TP_PROTO arguments of sched_process_exec(struct task_struct *p, pid_t old_pid,
// struct linux_binprm *bprm), typed by BTF: tp_btf, and the record's own pid agrees.
TEST(TracepointArguments, RunOnTpBtfWithMemberChains) {
    pid_t pid = 0;
    auto r = trace("bpf", {"-v", "-d", "2", "e sched/sched_process_exec comm=%0->comm old=%1 file=%2->filename f:old>0"},
                   [&] { pid = spawn_and_wait({"/bin/true"}); });
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("ksurf: e sched/sched_process_exec: tp_btf\n"), std::string::npos) << r.err;
    auto mine = of(parse(r.out), pid);
    ASSERT_EQ(mine.size(), 1u) << r.out;
    EXPECT_EQ(mine[0].rest, fmt::format("sched_process_exec: comm=true old={} file=/bin/true", pid));
}

TEST(TracepointArguments, RecordFieldsSayWhyNotTpBtf) {
    auto r = trace("bpf", {"-v", "-d", "1", "e sched/sched_process_exec p=pid"}, [] {});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("e sched/sched_process_exec: tracepoint (tp_btf: its fields are from the record"), std::string::npos)
        << r.err;
}

TEST(TracepointArguments, TracefsCannotReadThem) {
    auto r = run({ksurf_bin(), "--backend", "tracefs", "-d", "1", "e sched/sched_process_exec comm=%0->comm"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("TP_PROTO arguments"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ksurf::test
