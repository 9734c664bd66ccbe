// What a new user meets first: `ksurf list`, globs and their counts, and the rough edges of
// issue 17 (ksurf tracing itself, JSON escaping, signed syscall arguments, --cgroup on a
// hybrid cgroup host, drops said while running), each on the running kernel.
#include <fmt/format.h>
#include <fnmatch.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "ksurf/btf.h"
#include "kernel_state.h"
#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uid_t kNobody = 65534;
constexpr const char* kReady = "Hit Ctrl-C to end.";
const std::string kTracing = "/sys/kernel/tracing";

std::size_t count_lines_starting(const std::string& out, std::string_view prefix) {
    std::size_t n = 0;
    for (const auto& l : lines(out)) n += l.starts_with(prefix);
    return n;
}

// The number STDERR gives in "matches N functions" / "matches N tracepoints".
std::size_t announced(const std::string& err, std::string_view what) {
    std::smatch m;
    const std::regex re(fmt::format(R"(matches (\d+) {})", what));
    if (!std::regex_search(err, m, re)) {
        ADD_FAILURE() << "no count of " << what << " in:\n" << err;
        return 0;
    }
    return std::stoul(m[1]);
}

// The unique names available_filter_functions lists for GLOB, or (unreadable, as on hosts
// without kprobes) those BTF describes: what ksurf expands a glob over.
std::set<std::string> functions_matching(const char* glob, bool* from_tracefs) {
    std::set<std::string> names;
    std::ifstream in(kTracing + "/available_filter_functions");
    for (std::string l; std::getline(in, l);) {
        const std::string name = l.substr(0, l.find(' '));
        if (fnmatch(glob, name.c_str(), 0) == 0) names.insert(name);
    }
    *from_tracefs = !names.empty();
    const Btf btf = Btf::kernel();
    if (names.empty())
        for (const auto& f : btf.functions(false, [&](std::string_view n) {
                 return fnmatch(glob, std::string(n).c_str(), 0) == 0;
             }))
            names.insert(f.name);
    return names;
}

// ---- ksurf list ----

TEST(List, FunctionsWithTheirPrototypes) {
    auto r = run({ksurf_bin(), "list", "vfs_read"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("p vfs_read  ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)"),
              std::string::npos)
        << r.out;
    // bpftrace's spelling lists the same.
    auto l = run({ksurf_bin(), "-l", "vfs_read"});
    EXPECT_EQ(l.out, r.out);
}

TEST(List, TracepointsWithFieldsAndArgumentTypes) {
    auto r = run({ksurf_bin(), "list", "-v", "e sched/sched_switch"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("pid_t prev_pid;"), std::string::npos) << r.out;
    // What %N of an e probe reads, as BTF's btf_trace_sched_switch types it.
    const Btf btf = Btf::kernel();  // the Types below borrow it
    const Function proto = btf.find_tracepoint_proto("sched_switch");
    for (std::size_t i = 0; i < proto.params.size(); i++)
        EXPECT_NE(r.out.find(fmt::format("%{} {}\n", i, proto.params[i].type.name())), std::string::npos) << r.out;
}

TEST(List, StructLayoutAsBtfHasIt) {
    auto r = run({ksurf_bin(), "list", "struct sk_buff"});
    ASSERT_EQ(r.status, 0) << r.err;
    const Btf btf = Btf::kernel();
    const Type skb = btf.find_type("struct sk_buff");
    for (const char* name : {"len", "data", "sk"}) {
        const MemberLayout m = member(skb, name);
        std::smatch got;
        ASSERT_TRUE(std::regex_search(r.out, got, std::regex(fmt::format(R"([ *]{};\s+/\*\s+(\d+)\s+(\d+) \*/)", name))))
            << name << " in:\n" << r.out;
        EXPECT_EQ(std::stoul(got[1]), m.offset) << name;
        EXPECT_EQ(std::stoul(got[2]), m.type.size()) << name;
    }
    EXPECT_NE(r.out.find(fmt::format("/* size: {},", skb.size())), std::string::npos) << r.out;
}

// How fast is for bench/, not for a test: this checks that a glob lists its functions.
TEST(List, AGlobListsEveryMatchingFunction) {
    auto r = run({ksurf_bin(), "list", "tcp_*"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_GT(count_lines_starting(r.out, "p tcp_"), 100u);
    for (const auto& l : lines(r.out))
        if (l.starts_with("p ")) {
            EXPECT_TRUE(l.starts_with("p tcp_")) << l;
        }
}

TEST(List, WithoutRootListsBtfAndSaysWhatIsMissing) {
    if (access(kTracing.c_str(), R_OK | X_OK) != 0) GTEST_SKIP() << "tracefs is not root's alone here";
    Process p({ksurf_bin(), "list", "vfs_read"}, kNobody);
    auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("p vfs_read  ssize_t vfs_read("), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("available_filter_functions"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tracepoints are not listed"), std::string::npos) << r.err;
}

// ---- globs ----

TEST(Globs, TracepointGlobCountIsWhatTracefsLists) {
    std::size_t expected = 0;
    for (const auto& e : fs::directory_iterator(kTracing + "/events/syscalls"))
        expected += e.is_directory() && e.path().filename().string().starts_with("sys_enter_");
    auto r = run({ksurf_bin(), "-S", "e syscalls/sys_enter_*"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(announced(r.err, "tracepoints"), expected) << r.err;
}

TEST(Globs, FunctionGlobCountIsWhatTheKernelLists) {
    bool from_tracefs = false;
    const auto names = functions_matching("tcp_*", &from_tracefs);
    auto r = run({ksurf_bin(), "-S", "p tcp_*"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::size_t left_out = 0;
    std::smatch m;
    if (std::regex_search(r.err, m, std::regex(R"(\((\d+) more without BTF)"))) left_out = std::stoul(m[1]);
    EXPECT_EQ(announced(r.err, "functions") + left_out, names.size()) << (from_tracefs ? "tracefs" : "BTF") << "\n" << r.err;
}

TEST(Globs, ManyTracepointsAttachWithProgress) {
    auto r = run({ksurf_bin(), "-d", "1", "e sched/*"}, 120s);
    ASSERT_EQ(r.status, 0) << r.err;
    const std::size_t n = announced(r.err, "tracepoints");
    ASSERT_GE(n, 20u);
    EXPECT_NE(r.err.find(fmt::format("attached {} of {} probes", n, n)), std::string::npos) << r.err;
}

// ---- ksurf does not trace itself ----

// How many events of its own ksurf printed for `e raw_syscalls/sys_enter f:comm=="ksurf"`
// (other ksurf runs on the host are seen too, and not counted).
std::size_t own_events(const std::string& backend, bool include_self) {
    std::vector<std::string> args{ksurf_bin(), "--backend", backend, "-d", "1", "e raw_syscalls/sys_enter f:comm==\"ksurf\""};
    if (include_self) args.push_back("--include-self");
    Process p(args);
    const std::string own = fmt::format("ksurf-{} ", p.pid());
    auto r = p.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    return count_lines_starting(r.out, own);
}

TEST(Self, LeftOutOnBothBackends) {
    for (const std::string backend : {"bpf", "tracefs"}) EXPECT_EQ(own_events(backend, false), 0u) << backend;
}

TEST(Self, IncludedWhenAsked) {
    // Its own output is written with syscalls, each one more event to print: a loop that
    // tracefs feeds faster than a test reads, so BPF alone shows it.
    EXPECT_GT(own_events("bpf", true), 0u);
}

// ---- JSON strings are escaped once ----

TEST(Json, AFileNameWithANewlineDecodesToItsBytes) {
    const fs::path dir = fs::temp_directory_path() / fmt::format("ksurf-json-{}", getpid());
    fs::create_directories(dir);
    const fs::path exe = dir / "ev\nil";
    fs::copy_file("/bin/true", exe, fs::copy_options::overwrite_existing);
    Process p({ksurf_bin(), "--json", "-d", "2", "e sched/sched_process_exec"});
    ASSERT_TRUE(p.wait_for_err(kReady, 20s));
    const pid_t pid = spawn_and_wait({exe.string()});
    auto r = p.finish();
    fs::remove_all(dir);
    bool found = false;
    for (const auto& l : lines(r.out)) {
        auto j = nlohmann::json::parse(l);
        if (j.contains("pid") && j["pid"] == pid) {
            found = true;
            EXPECT_EQ(j["fields"]["filename"].get<std::string>(), exe.string()) << l;
        }
    }
    EXPECT_TRUE(found) << r.out;
}

// ---- e probe %N out of range ----

TEST(TracepointArgs, OutOfRangeNamesTheTypes) {
    const Btf btf = Btf::kernel();  // the Types below borrow it
    const Function proto = btf.find_tracepoint_proto("sched_switch");
    std::vector<std::string> types;
    for (const auto& p : proto.params) types.push_back(p.type.name());
    const std::size_t n = types.size();
    auto r = run({ksurf_bin(), fmt::format("e sched/sched_switch x=%{}", n)});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find(fmt::format("sched_switch has {} parameters ({}); %{} is out of range", n,
                                     fmt::join(types, ", "), n)),
              std::string::npos)
        << r.err;
}

// ---- signed syscall arguments ----

TEST(Signed, AtFdcwdReadsMinus100OnBothBackends) {
    for (const std::string backend : {"bpf", "tracefs"}) {
        auto r = run({ksurf_bin(), "--backend", backend, "e syscalls/sys_enter_openat", "-c", "cat", "/etc/hostname"});
        ASSERT_EQ(r.status, 0) << backend << r.err;
        EXPECT_NE(r.out.find(" dfd=-100 "), std::string::npos) << backend << "\n" << r.out;
        EXPECT_EQ(r.out.find("dfd=4294967196"), std::string::npos) << backend << "\n" << r.out;
    }
    // Named, and in a filter.
    auto r = run({ksurf_bin(), "e syscalls/sys_enter_openat d=dfd f:dfd==-100", "-c", "cat", "/etc/hostname"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(" d=-100"), std::string::npos) << r.out;
}

// ---- --cgroup on a host whose cgroup v2 is not at /sys/fs/cgroup ----

TEST(Cgroup, NamesWhereCgroupV2IsAndResolvesAgainstIt) {
    const auto mounts = cgroup2_dirs();
    if (mounts.empty()) GTEST_SKIP() << "no cgroup2 mount";
    auto bad = run({ksurf_bin(), "-d", "1", "--cgroup", "/tmp", "e sched/sched_process_exec"});
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("cgroup v2 is mounted at " + mounts.front()), std::string::npos) << bad.err;
    // A cgroup of its own under the mount, named relative to it.
    const std::string child = fmt::format("ksurf-itest-{}", getpid());
    ASSERT_TRUE(fs::create_directory(fs::path(mounts.front()) / child));
    auto ok = run({ksurf_bin(), "-d", "1", "--cgroup", child, "e sched/sched_process_exec"});
    fs::remove(fs::path(mounts.front()) / child);
    EXPECT_EQ(ok.status, 0) << ok.err;
}

// ---- drops said while running ----

TEST(Drops, WarnedWhileRunningAtMostOnceASecond) {
    std::atomic<bool> stop = false;
    std::thread load([&] {
        while (!stop) getppid();
    });
    auto r = run({ksurf_bin(), "--buffer-size", "4", "-d", "3", "e raw_syscalls/sys_enter"}, 60s);
    stop = true;
    load.join();
    ASSERT_EQ(r.status, 0) << r.err;
    std::size_t warnings = 0, warned = 0;
    const std::regex re(R"(ksurf: (\d+) events dropped in the last second; --buffer-size raises the buffer)");
    for (auto it = std::sregex_iterator(r.err.begin(), r.err.end(), re); it != std::sregex_iterator(); ++it) {
        warnings++;
        warned += std::stoul((*it)[1]);
    }
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) dropped)"))) << r.err;
    EXPECT_GE(warnings, 1u) << r.err;
    EXPECT_LE(warnings, 3u) << r.err;
    EXPECT_LE(warned, std::stoul(m[1])) << r.err;
}

// ---- -S translates what tracefs can do and refuses the rest ----

// -p, -s and --buffer-size become the instance's set_event_pid (the process's threads),
// stacktrace option and buffer size, in a script the shell accepts.
TEST(Script, CarriesPidsStacksAndBufferSize) {
    Process sleeper({"/bin/sleep", "30"});
    const pid_t pid = sleeper.pid();
    auto r = run({ksurf_bin(), "-S", "-p", std::to_string(pid), "-s", "--buffer-size", "64", "e sched/sched_process_exec"});
    sleeper.signal(SIGKILL);
    sleeper.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(fmt::format("echo '{}' > \"$I/set_event_pid\"", pid)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("echo 1 > \"$I/options/stacktrace\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("echo 64 > \"$I/buffer_size_kb\""), std::string::npos) << r.out;
    const std::string path = fmt::format("/tmp/ksurf-script-{}.sh", getpid());
    std::ofstream(path) << r.out;
    const auto syntax = run({"/bin/sh", "-n", path});
    fs::remove(path);
    EXPECT_EQ(syntax.status, 0) << syntax.err;
}

// What only BPF can do is refused with the reason, one line, as --backend tracefs does.
TEST(Script, RefusesWhatOnlyBpfCanDo) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--cgroup", "/sys/fs/cgroup"}, "ksurf: --cgroup needs the BPF backend: tracefs event filters cannot match a cgroup\n"},
        {{"--user", "nobody"}, "ksurf: --user needs the BPF backend: a tracefs run keeps root to remove its probes and instance at exit\n"},
        {{"-c", "true"}, "ksurf: -S writes a script and runs nothing: -c's command has no place in it\n"},
    };
    for (const auto& [extra, message] : cases) {
        std::vector<std::string> args{ksurf_bin(), "-S", "e sched/sched_process_exec"};
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = run(args);
        EXPECT_EQ(r.status, 1) << extra.front();
        EXPECT_EQ(r.err, message);
        EXPECT_TRUE(r.out.empty()) << r.out;
    }
}

// A misspelt tracepoint or event system gets the closest real one.
TEST(Hints, MisspeltTracepointsAreSuggested) {
    auto r = run({ksurf_bin(), "e sched/sched_process_exce"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("not found in " + kTracing + "/events/sched; did you mean 'sched_process_exec'?"), std::string::npos) << r.err;
    r = run({ksurf_bin(), "e schde/sched_process_exec"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("no event system 'schde' in " + kTracing + "/events; did you mean 'sched'?"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ksurf::test
