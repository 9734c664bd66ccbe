// Whole files read at once: tracefs and procfs files, probe files, kernel configs; and
// where the kernel's own file systems are mounted.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksurf {

// The contents of PATH; nullopt when it cannot be opened or read (errno says why). Files
// of procfs and tracefs report a size of 0: it reads until the end, whatever stat says.
std::optional<std::string> read_file(const std::string& path);

// The mount points of file systems of TYPE ("tracefs", "cgroup2"), in the order of the
// process's mount table.
std::vector<std::string> mount_points(std::string_view type);

}  // namespace ksurf
