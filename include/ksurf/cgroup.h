// --cgroup: which cgroup v2 a BPF run is limited to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ksurf {

// Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones (systemd's), anywhere an administrator chose.
std::vector<std::string> cgroup2_mounts();

// PATH, a cgroup v2 directory absolute or relative to the (first) cgroup v2 mount, as the id
// bpf_get_current_cgroup_id() returns: the directory's inode number. Throws naming PATH
// and where cgroup v2 is when PATH is not a cgroup v2 directory.
std::uint64_t cgroup_id(const std::string& path);

}  // namespace ksurf
