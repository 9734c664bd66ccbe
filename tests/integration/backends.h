// The ksurf binary run on a chosen backend, and its ftrace-like output lines: shared by the
// tests that compare backends (equivalence_itest.cpp, lang_itest.cpp).
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process.h"

namespace ksurf::test {

// What ksurf prints on stderr once every probe is attached.
inline constexpr const char* kReady = "Hit Ctrl-C to end.";

// `ksurf features --json`, run once per test process.
const nlohmann::json& kernel_features();
// Why the kernel lacks feature NAME as `ksurf features` lists it ("uprobe"); empty when
// it has it.
std::string feature_missing(const std::string& name);
inline bool has_feature(const std::string& name) { return feature_missing(name).empty(); }
// Why BACKEND (tracefs, fentry, kprobe) cannot run function probes here, from `ksurf
// features`; empty when it can.
std::string function_backend_missing(const std::string& backend);

// Skips the test when BACKEND cannot probe functions here; in the VM matrix, fails it.
#define REQUIRE_FUNCTIONS_ON(backend)                                                      \
    do {                                                                                   \
        if (auto why = ::ksurf::test::function_backend_missing(backend); !why.empty()) {   \
            if (::ksurf::test::in_vm_matrix()) FAIL() << why;                              \
            GTEST_SKIP() << why;                                                           \
        }                                                                                  \
    } while (0)

// Runs `ksurf --backend BACKEND ARGS...` and, once attached, ACTION; then waits for it.
Result trace(const std::string& backend, std::vector<std::string> args, const std::function<void()>& action);

struct Line {
    std::string comm;
    pid_t pid = 0;
    std::string rest;                // "probe: fields"
    std::vector<std::string> stack;  // the " => frame" lines under it
};

// The event lines of OUT.
std::vector<Line> parse(const std::string& out);
// Those of ALL that PID printed.
std::vector<Line> of(const std::vector<Line>& all, pid_t pid);

}  // namespace ksurf::test
