#include "ksurf/run_loop.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>

namespace ksurf {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

}  // namespace

// SA_RESTART: a write to stdout cut by Ctrl-C would fail stdio's stream, and the last
// lines of a graph or a packet path with it. The waits that end the run on a signal
// (poll, epoll_wait, nanosleep) return EINTR whatever the flag says.
void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaction(sig, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }

void poll_until_stopped(double duration_s, const std::function<bool(int)>& poll, const std::function<bool()>& done) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(duration_s);
    while (!g_stop && !(done && done())) {
        int wait_ms = 100;
        if (duration_s > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
            if (left <= 0) break;
            wait_ms = static_cast<int>(std::min<long>(left, wait_ms));
        }
        if (!poll(wait_ms)) break;
        std::fflush(stdout);
    }
    poll(0);
    std::fflush(stdout);
}

}  // namespace ksurf
