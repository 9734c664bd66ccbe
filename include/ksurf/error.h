// Errors ksurf reports to the user: one line, naming the problem. main() prints what()
// prefixed with "ksurf: " and exits non-zero.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ksurf {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// An error at a span of a probe's text. what() is the one-line message; render() adds the
// text (control and non-ASCII bytes escaped, a long text cut around the span) and a caret
// line under the span, as a compiler would.
struct SourceError : Error {
    SourceError(std::string message, std::string source, std::size_t pos, std::size_t len = 1)
        : Error(std::move(message)), source(std::move(source)), pos(pos), len(len ? len : 1) {}

    std::string render() const;

    std::string source;
    std::size_t pos;
    std::size_t len;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// TEXT with every byte a terminal would act on (control, DEL, non-ASCII) written as \xHH:
// what ksurf prints of user input, which may be hostile.
std::string printable(std::string_view text);

// "Operation not permitted (EPERM)": errno text with its symbolic name, for reasons the
// user can search for.
std::string errno_text(int err);

}  // namespace ksurf
