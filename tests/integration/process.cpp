#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace ksurf::test {
namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> v;
    for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
    v.push_back(nullptr);
    return v;
}

int decode_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

}  // namespace

std::string ksurf_bin() {
    const char* env = std::getenv("KSURF_BIN");
    return env && *env ? env : KSURF_DEFAULT_BIN;
}

bool in_vm_matrix() {
    const char* k = std::getenv("KSURF_VM_KERNEL");
    return k && *k;
}

Process::Process(const std::vector<std::string>& argv, std::optional<uid_t> as_uid) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (as_uid && (setgid(*as_uid) || setuid(*as_uid))) _exit(126);
        auto args = c_argv(argv);
        execv(args[0], args.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
}

Process::~Process() {
    if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
}

bool Process::pump(int timeout_ms) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (poll(fds, 2, timeout_ms) <= 0) return false;
    bool any = false;
    for (int i = 0; i < 2; i++) {
        if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
        char buf[4096];
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
            (i ? r_.err : r_.out).append(buf, n);
            any = true;
        }
    }
    return any;
}

bool Process::wait_for(std::string Result::*stream, const std::string& needle, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while ((r_.*stream).find(needle) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (!pump(50) && waitpid(pid_, nullptr, WNOHANG) != 0) return (r_.*stream).find(needle) != std::string::npos;
    }
    return true;
}

void Process::signal(int sig) { kill(pid_, sig); }

Result Process::finish(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int st = 0;
    for (;;) {
        pump(50);
        pid_t w = waitpid(pid_, &st, WNOHANG);
        if (w == pid_) break;
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &st, 0);
            r_.err += "\n[test harness: killed after timeout]";
            break;
        }
    }
    pid_ = -1;
    while (pump(0)) {
    }
    r_.status = decode_status(st);
    return r_;
}

Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    return Process(argv).finish(timeout);
}

pid_t spawn_and_wait(const std::vector<std::string>& argv) {
    pid_t pid = fork();
    if (pid == 0) {
        auto args = c_argv(argv);
        execv(args[0], args.data());
        _exit(127);
    }
    waitpid(pid, nullptr, 0);
    return pid;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

bool has_true_exec_line(const std::string& out, pid_t pid) {
    const std::regex line(fmt::format(R"((^|\n)true-{0} \[\d{{3}}\] \d+\.\d{{6}}: sched_process_exec: )"
                                      R"(filename=(/usr)?/bin/true pid={0} old_pid={0}\n)",
                                      pid));
    return std::regex_search(out, line);
}

}  // namespace ksurf::test
