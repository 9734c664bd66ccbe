// -c CMD: the traced command, forked at once but held before its exec until every probe is
// attached, so that its pid is traced from its first instruction.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ksurf/privileges.h"

namespace ksurf {

class Command {
public:
    // Forks; the child waits for release() before it execs ARGV (searched in PATH), as
    // USER or else the caller (ksurf's real ids), with only fds 0, 1 and 2 of ksurf's.
    Command(const std::vector<std::string>& argv, const std::optional<User>& user);
    // Kills a command never released (it must not run untraced); a released one is the
    // user's and keeps running.
    ~Command();
    Command(const Command&) = delete;
    Command& operator=(const Command&) = delete;

    std::uint32_t pid() const { return static_cast<std::uint32_t>(pid_); }
    void release();
    bool exited();  // reaps it when it has
    // What a shell would report as its status once it exited: its exit code, 128 + the
    // signal that killed it, 127 when it was not found and 126 when it could not be run
    // (as timeout(1) and perf stat do); nullopt while it runs.
    std::optional<int> status() const { return status_; }

private:
    pid_t pid_ = -1;
    int go_ = -1;
    std::optional<int> status_;
};

}  // namespace ksurf
