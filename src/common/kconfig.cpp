#include "ksurf/kconfig.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <zlib.h>

#include <sstream>

#include "ksurf/file.h"

namespace ksurf {
namespace {

std::optional<std::string> read_config_text() {
    if (gzFile gz = gzopen("/proc/config.gz", "rb")) {
        std::string text;
        char buf[65536];
        int n;
        while ((n = gzread(gz, buf, sizeof buf)) > 0) text.append(buf, n);
        gzclose(gz);
        if (!text.empty()) return text;
    }
    utsname u{};
    if (uname(&u) == 0) {
        if (auto text = read_file(std::string("/boot/config-") + u.release)) return text;
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> kernel_config(std::string_view option) {
    static const std::optional<std::string> text = read_config_text();
    if (!text) return std::nullopt;
    std::istringstream in(*text);
    std::string line;
    const std::string set = fmt::format("{}=", option);
    const std::string unset = fmt::format("# {} is not set", option);
    while (std::getline(in, line)) {
        if (line.starts_with(set)) return line.substr(set.size());
        if (line == unset) return std::string();
    }
    return std::string();
}

std::string config_hint(std::string_view option) {
    auto v = kernel_config(option);
    return v && v->empty() ? fmt::format(" ({} is not set)", option) : std::string();
}

}  // namespace ksurf
