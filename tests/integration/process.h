// Runs the real ksurf binary as a child process for integration tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ksurf::test {

// Path of the binary under test: $KSURF_BIN, else the one this build produced.
std::string ksurf_bin();

// True inside the VM kernel matrix, where a missing kernel feature is a failure, not a skip.
bool in_vm_matrix();

struct Result {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
};

class Process {
public:
    // Starts ARGV[0] with ARGV; `as_uid` drops to that user first.
    explicit Process(const std::vector<std::string>& argv, std::optional<uid_t> as_uid = std::nullopt);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    // Reads output until stderr (stdout) contains NEEDLE; false on timeout or exit.
    bool wait_for_err(const std::string& needle, std::chrono::milliseconds timeout) { return wait_for(&Result::err, needle, timeout); }
    bool wait_for_out(const std::string& needle, std::chrono::milliseconds timeout) { return wait_for(&Result::out, needle, timeout); }
    void signal(int sig);
    // Waits for exit (killing the child after TIMEOUT) and returns everything it printed.
    Result finish(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    pid_t pid() const { return pid_; }

private:
    bool wait_for(std::string Result::*stream, const std::string& needle, std::chrono::milliseconds timeout);
    bool pump(int timeout_ms);
    pid_t pid_ = -1;
    int out_fd_ = -1, err_fd_ = -1;
    Result r_;
};

// Runs ARGV to completion.
Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Forks and execs ARGV, waits for it, and returns its pid (the pid an exec event reports).
pid_t spawn_and_wait(const std::vector<std::string>& argv);

std::vector<std::string> lines(const std::string& text);

// Whether OUT has the ftrace-like sched_process_exec line of /bin/true run as PID.
bool has_true_exec_line(const std::string& out, pid_t pid);

}  // namespace ksurf::test
