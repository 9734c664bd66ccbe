#include "ksurf/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

namespace ksurf {

std::optional<std::string> read_file(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text;
    // /proc/kallsyms is megabytes, generated a page per read(): large reads, one copy.
    std::size_t have = 0;
    for (;;) {
        if (text.size() - have < 65536) text.resize(have + 262144);
        const ssize_t n = read(fd, text.data() + have, text.size() - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            close(fd);
            errno = err;
            return std::nullopt;
        }
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    close(fd);
    text.resize(have);
    return text;
}

std::vector<std::string> mount_points(std::string_view type) {
    std::vector<std::string> dirs;
    std::ifstream in("/proc/self/mounts");
    std::string dev, dir, fs_type, rest;
    while (in >> dev >> dir >> fs_type && std::getline(in, rest))
        if (fs_type == type) dirs.push_back(dir);
    return dirs;
}

}  // namespace ksurf
