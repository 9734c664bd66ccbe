#include "ksurf/error.h"

#include <cerrno>
#include <cstring>

namespace ksurf {

std::string SourceError::render() const {
    std::size_t at = pos > source.size() ? source.size() : pos;
    return fmt::format("{}\n  {}\n  {}{}", what(), source, std::string(at, ' '), std::string(len, '^'));
}

std::string errno_text(int err) {
    if (err < 0) err = -err;
    const char* name = strerrorname_np(err);
    return fmt::format("{} ({})", std::strerror(err), name ? name : std::to_string(err).c_str());
}

}  // namespace ksurf
