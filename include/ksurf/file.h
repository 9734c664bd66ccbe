// Whole files read at once: tracefs and procfs files, probe files, kernel configs.
#pragma once

#include <optional>
#include <string>

namespace ksurf {

// The contents of PATH; nullopt when it cannot be opened or read (errno says why). Files
// of procfs and tracefs report a size of 0: it reads until the end, whatever stat says.
std::optional<std::string> read_file(const std::string& path);

}  // namespace ksurf
