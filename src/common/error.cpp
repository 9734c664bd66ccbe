#include "ksurf/error.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace ksurf {

namespace {

// Columns of the source line shown around an error's span: a probe may be kilobytes long.
constexpr std::size_t kShownColumns = 120;
constexpr std::size_t kColumnsBeforeSpan = 40;

}  // namespace

std::string printable(std::string_view text) {
    std::string shown;
    for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f)
            shown += ch;
        else
            shown += fmt::format("\\x{:02x}", c);
    }
    return shown;
}

// The source is shown printable, and a long line is cut to a window around the span,
// marked with "...".
std::string SourceError::render() const {
    std::string shown;
    std::vector<std::size_t> column(source.size() + 1);  // of each byte in `shown`
    for (std::size_t i = 0; i < source.size(); i++) {
        column[i] = shown.size();
        shown += printable(source.substr(i, 1));
    }
    column[source.size()] = shown.size();
    const std::size_t at = std::min(pos, source.size());
    const std::size_t from = column[at];
    const std::size_t to = at + len <= source.size() ? column[at + len] : from + len;

    // The window starts and ends between bytes, never inside an escape.
    const std::size_t first = *std::lower_bound(column.begin(), column.begin() + at + 1,
                                                from > kColumnsBeforeSpan ? from - kColumnsBeforeSpan : 0);
    const std::size_t last = *std::prev(std::upper_bound(column.begin(), column.end(), first + kShownColumns));
    const std::string before = first > 0 ? "..." : "";
    const std::string after = last < shown.size() ? "..." : "";
    const std::size_t carets = std::max<std::size_t>(1, std::min(to, std::max(last, from + 1)) - from);
    return fmt::format("{}\n  {}{}{}\n  {}{}", printable(what()), before, shown.substr(first, last - first), after,
                       std::string(before.size() + from - first, ' '), std::string(carets, '^'));
}

std::string errno_text(int err) {
    if (err < 0) err = -err;
    const char* name = strerrorname_np(err);
    return fmt::format("{} ({})", std::strerror(err), name ? name : std::to_string(err).c_str());
}

}  // namespace ksurf
