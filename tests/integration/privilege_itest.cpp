// Least privilege on the running kernel: output files another local user planted cannot be
// used to overwrite root's files, a BPF run gives up root once attached and still works,
// ksurf traces with only the capabilities it needs, and -c's command gets none of ksurf's
// fds. Needs root (the attacks are another user's; capabilities are dropped from root's).
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <tuple>

#include "kernel_state.h"
#include "process.h"

namespace ksurf::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kReady = "Hit Ctrl-C to end.";
constexpr uid_t kNobody = 65534;

// A sysctl set for one test and put back after it.
class Sysctl {
public:
    Sysctl(std::string path, const std::string& value) : path_(std::move(path)), old_(slurp(path_)) {
        std::ofstream(path_) << value;
    }
    ~Sysctl() { std::ofstream(path_) << old_; }
    Sysctl(const Sysctl&) = delete;
    Sysctl& operator=(const Sysctl&) = delete;

private:
    std::string path_, old_;
};

// /proc/PID/status lines of every thread of PID: "Name:\tvalue" by name.
std::vector<std::map<std::string, std::string>> thread_status(pid_t pid) {
    std::vector<std::map<std::string, std::string>> v;
    for (const auto& t : fs::directory_iterator(fmt::format("/proc/{}/task", pid))) {
        std::map<std::string, std::string> m;
        for (const auto& l : lines(slurp(t.path() / "status")))
            if (auto colon = l.find(':'); colon != std::string::npos)
                m[l.substr(0, colon)] = std::regex_replace(l.substr(colon + 1), std::regex(R"(^\s+|\s+$)"), "");
        v.push_back(std::move(m));
    }
    return v;
}

bool has_summary(const std::string& err) {
    return std::regex_search(err, std::regex(R"(\d+ events, (\d+ filtered, )?0 dropped)"));
}

// A root-owned victim file beside a sticky, world-writable directory on the same file
// system, where nobody plants names with the protections that would stop it turned off.
class OutputAttack : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
        char tmpl[] = "/tmp/ksurf-priv-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        ASSERT_EQ(chmod(root_.c_str(), 0755), 0);
        victim_ = root_ / "victim";
        std::ofstream(victim_) << "precious root data\n";
        ASSERT_EQ(chmod(victim_.c_str(), 0644), 0);
        shared_ = root_ / "shared";
        fs::create_directory(shared_);
        ASSERT_EQ(chmod(shared_.c_str(), 01777), 0);
    }
    void TearDown() override {
        if (!root_.empty()) fs::remove_all(root_);
    }

    // Plants NAME in the shared directory as nobody: "symlink" or "hardlink" to the victim,
    // or "file", a regular file of nobody's own.
    void plant(const std::string& kind, const fs::path& name) {
        std::vector<std::string> argv = kind == "symlink"    ? std::vector<std::string>{"/bin/ln", "-s", victim_, name}
                                        : kind == "hardlink" ? std::vector<std::string>{"/bin/ln", victim_, name}
                                                             : std::vector<std::string>{"/bin/sh", "-c", "echo mine > " + name.string()};
        Process p(argv, kNobody);
        const auto r = p.finish();
        ASSERT_EQ(r.status, 0) << kind << ": " << r.err;
        struct stat st {};
        ASSERT_EQ(lstat(name.c_str(), &st), 0);
        ASSERT_EQ(st.st_uid, kind == "hardlink" ? 0u : kNobody);
    }

    // The contents and mode of the file NAME leads to, and whether NAME is still a symlink.
    static std::tuple<std::string, mode_t, bool> state(const fs::path& name) {
        struct stat st {};
        EXPECT_EQ(stat(name.c_str(), &st), 0);
        return {slurp(name), st.st_mode & 07777, fs::is_symlink(name)};
    }

    fs::path root_, victim_, shared_;
};

struct Writer {
    const char* option;
    const char* file;
    std::vector<std::string> rest;
};

TEST_F(OutputAttack, PlantedNamesAreRefusedAndTheirTargetsKept) {
    Sysctl symlinks("/proc/sys/fs/protected_symlinks", "0");
    Sysctl hardlinks("/proc/sys/fs/protected_hardlinks", "0");
    const std::vector<Writer> writers = {
        {"-w", "x.pcapng", {"-d", "1", "--pcap", "icmp"}},
        {"-o", "x.sh", {}},
    };
    const std::vector<std::pair<std::string, std::string>> kinds = {
        {"symlink", "it is a symbolic link, which ksurf does not follow"},
        {"hardlink", "it has 2 hard links, and writing it would change the other names too"},
        {"file", "it exists and belongs to uid 65534, not to uid 0 that ksurf runs for"},
    };
    for (const auto& w : writers)
        for (const auto& [kind, why] : kinds) {
            SCOPED_TRACE(fmt::format("{} on a planted {}", w.option, kind));
            const fs::path name = shared_ / (kind + "-" + w.file);
            plant(kind, name);
            const auto before = state(name);
            std::vector<std::string> argv{ksurf_bin()};
            argv.insert(argv.end(), w.rest.begin(), w.rest.end());
            argv.insert(argv.end(), {w.option, name.string(), "e net/netif_receive_skb"});
            const auto r = run(argv);
            EXPECT_NE(r.status, 0);
            EXPECT_EQ(r.err, fmt::format("ksurf: cannot write {}: {}\n", name.string(), why));
            EXPECT_EQ(state(name), before);
            EXPECT_EQ(slurp(victim_), "precious root data\n");
            EXPECT_EQ(fs::status(victim_).permissions(), static_cast<fs::perms>(0644));
            fs::remove(name);  // the next hard link makes two again
        }
}

TEST_F(OutputAttack, OwnNewFileIsWrittenPrivate) {
    const fs::path name = shared_ / "mine.sh";
    const auto r = run({ksurf_bin(), "-o", name.string(), "e sched/sched_process_exec"});
    ASSERT_EQ(r.status, 0) << r.err;
    struct stat st {};
    ASSERT_EQ(lstat(name.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_NE(slurp(name).find("sched/sched_process_exec"), std::string::npos);
}

// The kernel's version as major * 100 + minor (5.10 → 510).
int kernel_version() {
    utsname u{};
    int major = 0, minor = 0;
    if (uname(&u) || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return 0;
    return major * 100 + minor;
}

// CAP_BPF and CAP_PERFMON; before 5.11, which charged BPF memory to RLIMIT_MEMLOCK rather
// than to the cgroup, CAP_SYS_RESOURCE to raise that limit; and where perf_event_paranoid
// is above 2 (Debian's kernels: 3), CAP_SYS_ADMIN for any perf event, a tracepoint's too.
std::string tracing_caps() {
    std::ifstream in("/proc/sys/kernel/perf_event_paranoid");
    int paranoid = 2;
    in >> paranoid;
    return std::string("+bpf,+perfmon") + (kernel_version() < 511 ? ",+sys_resource" : "") + (paranoid > 2 ? ",+sys_admin" : "");
}

// Before 5.19 kernel.unprivileged_bpf_disabled refused every bpf() command without CAP_BPF,
// reading a map through an fd included: there a run keeps CAP_BPF (bit 39) alone.
bool keeps_cap_bpf() {
    std::ifstream in("/proc/sys/kernel/unprivileged_bpf_disabled");
    int disabled = 0;
    return in >> disabled && disabled && kernel_version() < 519;
}

// After attach the BPF run holds fds only: no capability in any thread, and it still
// reads events, its per-CPU stats map for the summary, and detaches at exit.
void expect_runs_without_privilege(const std::vector<std::string>& extra, uid_t uid) {
    std::vector<std::string> argv{ksurf_bin(), "-d", "3"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("e sched/sched_process_exec");
    Process p(argv);
    ASSERT_TRUE(p.wait_for_err(kReady, 20s)) << "ksurf did not attach";
    const BpfObjects held = bpf_objects_of(p.pid());
    EXPECT_FALSE(held.empty());
    for (const auto& t : thread_status(p.pid())) {
        const char* kept = keeps_cap_bpf() ? "0000008000000000" : "0000000000000000";
        EXPECT_EQ(t.at("CapEff"), kept);
        EXPECT_EQ(t.at("CapPrm"), kept);
        EXPECT_EQ(t.at("CapInh"), "0000000000000000");
        EXPECT_EQ(t.at("CapAmb"), "0000000000000000");
        EXPECT_EQ(t.at("CapBnd"), "0000000000000000");
        EXPECT_EQ(t.at("NoNewPrivs"), "1");
        EXPECT_EQ(t.at("Uid"), fmt::format("{0}\t{0}\t{0}\t{0}", uid));
    }
    const pid_t exec = spawn_and_wait({"/bin/true"});
    const auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(has_true_exec_line(r.out, exec)) << r.out;
    EXPECT_TRUE(has_summary(r.err)) << r.err;
    const BpfObjects alive = still_alive_after_exit(held);
    EXPECT_TRUE(alive.empty()) << alive.progs.size() << " programs, " << alive.maps.size() << " maps, "
                               << alive.links.size() << " links left";
}

// graph and skb drop them too once attached, and still end cleanly: their probes need
// kprobes, which the guests have.
TEST(Privileges, GraphAndSkbDropEveryCapabilityOnceAttached) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    if (!kprobes_available()) GTEST_SKIP() << "graph and skb need kprobes";
    const std::vector<std::vector<std::string>> runs{
        {ksurf_bin(), "graph", "do_sys_openat2", "--depth", "0", "--funcs", "do_filp_open", "-d", "4"},
        {ksurf_bin(), "skb", "--funcs", "ip_rcv", "--no-return", "-d", "4"},
    };
    for (const auto& argv : runs) {
        Process p(argv);
        if (!p.wait_for_err("Tracing", 120s)) {
            ADD_FAILURE() << argv[1] << " did not attach: " << p.finish().err;
            continue;
        }
        const char* kept = keeps_cap_bpf() ? "0000008000000000" : "0000000000000000";
        for (const auto& t : thread_status(p.pid())) {
            EXPECT_EQ(t.at("CapEff"), kept) << argv[1];
            EXPECT_EQ(t.at("NoNewPrivs"), "1") << argv[1];
        }
        const auto r = p.finish(120s);
        EXPECT_EQ(r.status, 0) << argv[1] << ": " << r.err;
    }
}

TEST(Privileges, BpfRunDropsEveryCapabilityOnceAttached) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    expect_runs_without_privilege({}, 0);
}

TEST(Privileges, UserOptionSwitchesToThatUserOnceAttached) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    expect_runs_without_privilege({"--user", "nobody"}, kNobody);
}

TEST(Privileges, VerboseSaysWhatWasDroppedAndTracefsKeepsRoot) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    auto r = run({ksurf_bin(), "-v", "-d", "1", "e sched/sched_process_exec"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find(keeps_cap_bpf() ? "ksurf: attached: every capability dropped but CAP_BPF"
                                         : "ksurf: attached: every capability dropped; no_new_privs set\n"),
              std::string::npos)
        << r.err;
    r = run({ksurf_bin(), "-v", "-d", "1", "--backend", "tracefs", "e sched/sched_process_exec"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("ksurf: tracefs keeps root for the whole run"), std::string::npos) << r.err;
    r = run({ksurf_bin(), "--user", "nobody", "-d", "1", "--backend", "tracefs", "e sched/sched_process_exec"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "ksurf: --user needs the BPF backend: a tracefs run keeps root to remove its probes and instance at exit\n");
    r = run({ksurf_bin(), "--user", "no-such-user-ksurf", "e sched/sched_process_exec"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "ksurf: --user no-such-user-ksurf: no such user\n");
}

// setpriv runs ksurf with CAPS as its permitted, effective, inheritable, ambient and
// bounding sets, as uid and gid WHO ("root": uid 0, whose exec gains the bounding set).
std::vector<std::string> with_caps(const std::string& caps, const std::string& who) {
    const std::string list = "-all," + caps;
    std::vector<std::string> v{"/usr/bin/setpriv", "--inh-caps=" + list, "--bounding-set=" + list};
    if (who != "root") v.insert(v.end(), {"--reuid=" + who, "--regid=" + who, "--clear-groups", "--ambient-caps=" + list});
    v.push_back(ksurf_bin());
    return v;
}

// ARGV traces /bin/true's exec and prints its exact line.
void expect_traces_exec(const std::vector<std::string>& argv) {
    std::vector<std::string> a = argv;
    a.insert(a.end(), {"-d", "3", "e sched/sched_process_exec"});
    Process p(a);
    if (!p.wait_for_err(kReady, 20s)) FAIL() << "ksurf did not attach: " << p.finish().err;
    const pid_t exec = spawn_and_wait({"/bin/true"});
    const auto r = p.finish();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(has_true_exec_line(r.out, exec)) << r.out;
    EXPECT_TRUE(has_summary(r.err)) << r.err;
}

TEST(Privileges, TracesWithOnlyCapBpfAndCapPerfmon) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    // uid 0 owns tracefs, so its mode bits let it read formats without CAP_DAC_*.
    expect_traces_exec(with_caps(tracing_caps(), "root"));
}

TEST(Privileges, AnotherUserAlsoNeedsToReadTracefs) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    expect_traces_exec(with_caps(tracing_caps() + ",+dac_read_search", "65534"));
}

TEST(Privileges, FeaturesListTheCapabilitiesHeldAndNeeded) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    auto argv = with_caps("+bpf,+perfmon", "65534");
    argv.insert(argv.end(), {"features", "--json"});
    const auto r = run(argv);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto caps = nlohmann::json::parse(r.out).at("capabilities");
    EXPECT_TRUE(caps.at("CAP_BPF").at("held")) << r.out;
    EXPECT_TRUE(caps.at("CAP_BPF").at("needed")) << r.out;
    EXPECT_EQ(caps.at("CAP_BPF").at("reason"), "loading BPF programs and creating maps (or CAP_SYS_ADMIN)");
    EXPECT_TRUE(caps.at("CAP_PERFMON").at("held")) << r.out;
    EXPECT_TRUE(caps.at("CAP_PERFMON").at("needed")) << r.out;
    EXPECT_FALSE(caps.at("CAP_SYS_ADMIN").at("held")) << r.out;
    if ((fs::status(tracing_dir()).permissions() & fs::perms::others_read) == fs::perms::none) {
        EXPECT_FALSE(caps.at("CAP_DAC_READ_SEARCH").at("held")) << r.out;
        EXPECT_TRUE(caps.at("CAP_DAC_READ_SEARCH").at("needed")) << r.out;
        EXPECT_TRUE(caps.at("CAP_DAC_READ_SEARCH").at("reason").get<std::string>().starts_with("reading tracepoint formats")) << r.out;
    }
}

TEST(Privileges, EpermNamesTheMissingCapability) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    const auto argv = with_caps("+perfmon", "root");
    auto a = argv;
    a.insert(a.end(), {"--backend", "bpf", "-d", "1", "e sched/sched_process_exec"});
    const auto r = run(a);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("(EPERM)"), std::string::npos) << r.err;
    EXPECT_TRUE(r.err.ends_with("; the effective capability set lacks CAP_BPF\n")) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
}

// -c's command: ksurf's fds closed (even one ksurf itself inherited without close-on-exec),
// and with --user, that user with no capabilities.
TEST(Privileges, CommandGetsOnlyStdioAndTheCallersCredentials) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    const int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC: ksurf inherits it
    ASSERT_GE(leaked, 3);
    auto r = run({ksurf_bin(), "--user", "nobody", "e sched/sched_process_exec", "-c", "/bin/sh", "-c",
                  "ls /proc/$$/fd; id -u; grep CapEff /proc/$$/status"});
    close(leaked);
    ASSERT_EQ(r.status, 0) << r.err;
    std::vector<std::string> own;
    for (const auto& l : lines(r.out))
        if (l.find("sched_process_exec:") == std::string::npos) own.push_back(l);
    EXPECT_EQ(own, (std::vector<std::string>{"0", "1", "2", "65534", "CapEff:\t0000000000000000"})) << r.out;
}

}  // namespace
}  // namespace ksurf::test
