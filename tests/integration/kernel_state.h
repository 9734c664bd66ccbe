// What a ksurf run leaves in the kernel, read from the kernel's own files: tracefs
// instances and kprobe_events, the BPF objects a process holds (its /proc fdinfo) and
// whether they still exist, and what is pinned in bpffs.
#pragma once

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

namespace ksurf::test {

inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::filesystem::path tracing_dir() {
    std::ifstream mounts("/proc/mounts");
    std::string dev, dir, type, rest;
    while (mounts >> dev >> dir >> type && std::getline(mounts, rest))
        if (type == "tracefs") return dir;
    return "/sys/kernel/tracing";  // where ksurf mounts it
}

// Where cgroup v2 is mounted, from the kernel's mount table (the first of them first): read
// here rather than through ksurf's own cgroup2_mounts(), which the tests are checking.
inline std::vector<std::string> cgroup2_dirs() {
    std::vector<std::string> dirs;
    std::ifstream in("/proc/self/mounts");
    std::string dev, dir, type, rest;
    while (in >> dev >> dir >> type && std::getline(in, rest))
        if (type == "cgroup2") dirs.push_back(dir);
    return dirs;
}

inline bool kprobes_available() { return std::filesystem::exists(tracing_dir() / "kprobe_events"); }

// Event probes (`e:` in dynamic_events, 5.15+): whether the kernel has the code that
// creates them (its tracing README lists them whether they are built or not).
inline bool eprobes_available() {
    static const bool yes = slurp("/proc/kallsyms").find(" eprobe_dyn_event_create\n") != std::string::npos;
    return yes;
}

inline bool instance_exists(pid_t pid) {
    return std::filesystem::exists(tracing_dir() / "instances" / fmt::format("ksurf_{}", pid));
}

// dynamic_events lines (kprobes, uprobes, event probes) of the run with PID: ksurf's group,
// or libbpf's legacy kprobes (named libbpf_PID_...) where the kernel has no kprobe PMU.
inline std::vector<std::string> kprobes_of(pid_t pid) {
    std::vector<std::string> v;
    for (const auto& l : lines(slurp(tracing_dir() / "dynamic_events")))
        if (l.find(fmt::format(":ksurf_{}/", pid)) != std::string::npos ||
            l.find(fmt::format("/libbpf_{}_", pid)) != std::string::npos)
            v.push_back(l);
    return v;
}

// The BPF objects process PID holds open, by kind, from its fds' fdinfo: its programs
// whether it holds them directly or only through their links (ksurf keeps only the links).
struct BpfObjects {
    std::vector<std::uint32_t> progs, maps, links;
    bool empty() const { return progs.empty() && maps.empty() && links.empty(); }
};

inline BpfObjects bpf_objects_of(pid_t pid) {
    BpfObjects o;
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator(fmt::format("/proc/{}/fdinfo", pid), ec)) {
        std::istringstream in(slurp(fd.path()));
        std::uint32_t prog = 0;
        for (std::string line; std::getline(in, line);) {
            std::istringstream fields(line);
            std::string key, value;
            if (!(fields >> key >> value) || value.find_first_not_of("0123456789") != std::string::npos) continue;
            if (key == "link_id:") o.links.push_back(std::stoul(value));
            if (key == "map_id:") o.maps.push_back(std::stoul(value));
            if (key == "prog_id:") prog = std::stoul(value);
        }
        if (prog) o.progs.push_back(prog);
    }
    std::sort(o.progs.begin(), o.progs.end());
    o.progs.erase(std::unique(o.progs.begin(), o.progs.end()), o.progs.end());
    return o;
}

// Objects of O that still exist in the kernel.
inline BpfObjects still_alive(const BpfObjects& o) {
    BpfObjects alive;
    const auto check = [](const std::vector<std::uint32_t>& ids, int (*get)(__u32), std::vector<std::uint32_t>& out) {
        for (auto id : ids)
            if (int fd = get(id); fd >= 0) {
                close(fd);
                out.push_back(id);
            }
    };
    check(o.progs, bpf_prog_get_fd_by_id, alive.progs);
    check(o.maps, bpf_map_get_fd_by_id, alive.maps);
    check(o.links, bpf_link_get_fd_by_id, alive.links);
    return alive;
}

// Objects of O that still exist after their process exited: the kernel frees maps and
// programs in deferred work, so this waits up to 5 s for them to go.
inline BpfObjects still_alive_after_exit(const BpfObjects& o) {
    BpfObjects alive = still_alive(o);
    for (int i = 0; i < 50 && !alive.empty(); i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        alive = still_alive(o);
    }
    return alive;
}

// The name of the BPF program with ID; empty when it is gone.
inline std::string prog_name(std::uint32_t id) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) return {};
    bpf_prog_info info{};
    __u32 len = sizeof info;
    std::string name = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.name : "";
    close(fd);
    return name;
}

// Paths under bpffs mounts whose name starts with "ksurf".
inline std::vector<std::string> pinned_ksurf_objects() {
    std::vector<std::string> found;
    std::ifstream mounts("/proc/mounts");
    std::string dev, dir, type, rest;
    while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
        if (type != "bpf") continue;
        std::error_code ec;
        for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
            if (it->path().filename().string().starts_with("ksurf")) found.push_back(it->path());
    }
    return found;
}

}  // namespace ksurf::test
