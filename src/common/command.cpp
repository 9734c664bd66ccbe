#include "ksurf/command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "ksurf/error.h"

namespace ksurf {
namespace {

int shell_status(int wstatus) { return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus); }

}  // namespace

Command::Command(const std::vector<std::string>& argv, const std::optional<User>& user) {
    int go[2];
    if (pipe2(go, O_CLOEXEC)) fail("cannot start '{}': {}", argv[0], errno_text(errno));
    pid_ = fork();
    if (pid_ < 0) fail("cannot start '{}': {}", argv[0], errno_text(errno));
    if (pid_ == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(127);  // ksurf gave up before attaching
        if (const int err = become_caller(user)) {
            fmt::print(stderr, "ksurf: cannot run '{}' as {}: {}\n", printable(argv[0]), user ? user->name : "the caller",
                       errno_text(err));
            _exit(127);
        }
        // Also those ksurf inherited without close-on-exec: none are the command's.
        close_range(3, ~0U, 0);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        const int err = errno;
        fmt::print(stderr, "ksurf: cannot run '{}': {}\n", printable(argv[0]), errno_text(err));
        // The shell's convention: not found, or found but not runnable.
        _exit(err == ENOENT ? 127 : 126);
    }
    close(go[0]);
    go_ = go[1];
}

Command::~Command() {
    if (go_ < 0) return;
    kill(pid_, SIGKILL);
    close(go_);
    waitpid(pid_, nullptr, 0);
}

void Command::release() {
    if (write(go_, "x", 1) != 1) fail("cannot start the command: {}", errno_text(errno));
    close(go_);
    go_ = -1;
}

bool Command::exited() {
    int wstatus = 0;
    if (!status_ && waitpid(pid_, &wstatus, WNOHANG) == pid_) status_ = shell_status(wstatus);
    return status_.has_value();
}

}  // namespace ksurf
