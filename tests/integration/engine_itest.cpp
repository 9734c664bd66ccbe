// The attach engine (src/attach) from outside: what a run holds in the kernel while many
// probes are attached, how fast a signal ends a long attach, and what it does when the
// kernel refuses bpf() altogether.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "kernel_state.h"
#include "process.h"

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A probe file with N syscall tracepoints that never match (pid 0 makes no syscalls).
std::string probe_file(std::size_t n) {
    std::vector<std::string> events;
    for (const auto& e : fs::directory_iterator(tracing_dir() / "events/syscalls"))
        if (e.path().filename().string().starts_with("sys_enter_")) events.push_back(e.path().filename());
    std::sort(events.begin(), events.end());
    EXPECT_GE(events.size(), n);
    const std::string path = fmt::format("/tmp/ksurf-engine-{}.probes", getpid());
    std::ofstream out(path);
    for (std::size_t i = 0; i < std::min(n, events.size()); i++) out << "e syscalls/" << events[i] << " f:common_pid==0\n";
    return path;
}

std::vector<std::uint32_t> map_ids_of(std::uint32_t prog_id) {
    const int fd = bpf_prog_get_fd_by_id(prog_id);
    if (fd < 0) return {};
    std::vector<std::uint32_t> ids(64);
    bpf_prog_info info{};
    info.nr_map_ids = ids.size();
    info.map_ids = reinterpret_cast<std::uintptr_t>(ids.data());
    __u32 len = sizeof info;
    const int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err) return {};
    ids.resize(std::min<std::size_t>(info.nr_map_ids, ids.size()));
    return ids;
}

TEST(Engine, ProbesAreClonesOfOneImageSharingItsMaps) {
    constexpr std::size_t kProbes = 20;
    const std::string file = probe_file(kProbes);
    Process p({ksurf_bin(), "-f", file});
    ASSERT_TRUE(p.wait_for_err("Tracing 20 probes", 60s)) << p.finish().err;
    const BpfObjects held = bpf_objects_of(p.pid());
    // One program per probe (each verified with its own configuration) and the template's
    // own; the maps the process holds are the template's, however many probes there are.
    EXPECT_GE(held.progs.size(), kProbes);
    EXPECT_LE(held.progs.size(), kProbes + 1);
    EXPECT_LE(held.maps.size(), 8u) << "maps grow with the probes: not one shared set";
    std::map<std::uint32_t, std::size_t> users;  // map id → probe programs using it
    std::size_t probes = 0;
    for (auto id : held.progs) {
        if (prog_name(id) != "ksurf_probe") continue;
        probes++;
        for (auto m : map_ids_of(id)) users[m]++;
    }
    EXPECT_GE(probes, kProbes);
    std::size_t shared = 0, own = 0;
    for (const auto& [map, n] : users) {
        if (n >= kProbes) shared++;
        if (n == 1) own++;
    }
    EXPECT_GE(shared, 2u) << "the ring buffer and the scratch map are every probe's";
    EXPECT_GE(own, kProbes) << "each probe reads its own frozen configuration";
    p.signal(SIGINT);
    const auto r = p.finish(30s);
    EXPECT_EQ(r.status, 0) << r.err;
    fs::remove(file);
    EXPECT_TRUE(still_alive_after_exit(held).empty());
}

TEST(Engine, ASignalEndsALongAttachPromptlyAndLeavesNothing) {
    const std::string file = probe_file(300);
    Process p({ksurf_bin(), "-f", file});
    // Wait until a few probes are attached, then interrupt the rest.
    BpfObjects held;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (held.progs.size() < 6 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
        held = bpf_objects_of(p.pid());
    }
    ASSERT_GE(held.progs.size(), 6u) << p.finish().err;
    const auto t0 = std::chrono::steady_clock::now();
    p.signal(SIGINT);
    const auto r = p.finish(30s);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fs::remove(file);
    EXPECT_NE(r.status, 128 + SIGINT) << "killed by the signal, not ended by it";
    EXPECT_EQ(r.err.find("Tracing"), std::string::npos) << "the attach ran to its end: " << r.err;
    // Bounded generously: before the engine, the rest of the attach ran on for seconds.
    EXPECT_LT(s, in_vm_matrix() ? 10.0 : 2.0) << r.err;
    EXPECT_TRUE(still_alive_after_exit(bpf_objects_of(p.pid())).empty());
    EXPECT_TRUE(still_alive_after_exit(held).empty());
}

TEST(Engine, WithBpfDeniedBySeccompAutoFallsBackToTracefs) {
    Process p({KSURF_NO_BPF_BIN, ksurf_bin(), "-d", "3", "e sched/sched_process_exec"});
    ASSERT_TRUE(p.wait_for_err("Tracing 1 probe", 30s)) << p.finish().err;
    const pid_t exec = spawn_and_wait({"/bin/true"});
    const auto r = p.finish(30s);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("ksurf: e sched/sched_process_exec: BPF cannot run it (bpf: BPF program load not permitted (EPERM)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("; using tracefs"), std::string::npos) << r.err;
    EXPECT_TRUE(has_true_exec_line(r.out, exec)) << r.out;
}

}  // namespace
}  // namespace ksurf::test
