// The message of the ksurf::Error a callable throws: what the error-path tests compare.
#pragma once

#include <string>

#include "ksurf/error.h"

namespace ksurf::test {

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace ksurf::test
