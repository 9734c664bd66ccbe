// "Did you mean" hints for misspelt names (members, parameters, functions, fields).
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace ksurf {

std::size_t edit_distance(std::string_view a, std::string_view b);

// "; did you mean 'len'?" for the closest of CANDIDATES within typo distance of WRONG
// (about a third of its length), else "".
template <typename Range>
std::string did_you_mean(std::string_view wrong, const Range& candidates) {
    std::size_t best = (wrong.size() + 2) / 3 + 1;
    std::string_view pick;
    for (std::string_view c : candidates)
        if (std::size_t d = edit_distance(wrong, c); d && d < best) best = d, pick = c;
    return pick.empty() ? "" : fmt::format("; did you mean '{}'?", pick);
}

}  // namespace ksurf
