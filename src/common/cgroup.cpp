#include "ksurf/cgroup.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "ksurf/error.h"
#include "ksurf/file.h"

namespace ksurf {

std::vector<std::string> cgroup2_mounts() { return mount_points("cgroup2"); }

std::uint64_t cgroup_id(const std::string& path) {
    const auto mounts = cgroup2_mounts();
    if (mounts.empty()) fail("--cgroup {}: no cgroup v2 file system is mounted (mount -t cgroup2 none DIR)", path);
    const std::string dir = path.starts_with('/') ? path : mounts.front() + "/" + path;
    struct statfs fs {};
    struct stat st {};
    if (statfs(dir.c_str(), &fs) || stat(dir.c_str(), &st)) fail("--cgroup {}: {}: {}", path, dir, errno_text(errno));
    if (fs.f_type != CGROUP2_SUPER_MAGIC)
        fail("--cgroup {}: {} is not in a cgroup v2 file system; cgroup v2 is mounted at {}", path, dir,
             fmt::join(mounts, ", "));
    return st.st_ino;
}

}  // namespace ksurf
