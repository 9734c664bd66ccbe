// ksurf's per-event formatting cost: N synthetic events shaped like
// `e syscalls/sys_enter_openat` (four fields, one a path) formatted as text and as JSON
// to /dev/null, through the same Formatter the trace command uses. Prints ns per event,
// the best of several rounds, since the host's other work only ever adds time.
//
//     build/bench/format_bench [EVENTS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ksurf/format.h"

namespace {

std::vector<ksurf::Event> synthetic_events(std::size_t n) {
    static const char* const kPaths[] = {"/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6",
                                         "/usr/lib/locale/locale-archive", "/proc/self/status"};
    static const char* const kComms[] = {"cat", "systemd-journal", "bash", "python3"};
    std::vector<ksurf::Event> events(n);
    std::uint64_t ts = 3'456'789'012'345ull;
    for (std::size_t i = 0; i < n; i++) {
        auto& ev = events[i];
        ts += 1'000 + i % 7'919;
        ev.ts_ns = ts;
        ev.pid = ev.tgid = static_cast<std::uint32_t>(1'000 + i % 30'000);
        ev.cpu = static_cast<std::uint32_t>(i % 2);
        ev.comm = kComms[i % 4];
        ev.probe = "sys_enter_openat";
        ev.fields = {{"__syscall_nr", {std::int64_t{257}}},
                     {"dfd", {std::int64_t{-100}}},
                     {"filename", {std::string(kPaths[i % 4]), ksurf::Display::String}},
                     {"flags", {std::uint64_t{0x80000 | (i % 3)}, ksurf::Display::Hex}},
                     {"mode", {std::uint64_t{0}}}};
    }
    return events;
}

// Nanoseconds per event of the fastest of ROUNDS passes over EVENTS.
double ns_per_event(bool json, const std::vector<ksurf::Event>& events, int rounds) {
    std::FILE* null = std::fopen("/dev/null", "w");
    if (!null) {
        std::perror("/dev/null");
        std::exit(1);
    }
    double best = 1e300;
    for (int r = 0; r < rounds; r++) {
        auto f = json ? ksurf::json_formatter(null) : ksurf::text_formatter(null, null);
        const auto start = std::chrono::steady_clock::now();
        for (const auto& ev : events) f->write(ev);
        f->summary({events.size(), 0, 0});
        const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
        best = std::min(best, took.count() / static_cast<double>(events.size()));
    }
    std::fclose(null);
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
    if (n == 0) {
        std::fprintf(stderr, "ksurf: format_bench: EVENTS must be a positive number\n");
        return 1;
    }
    const auto events = synthetic_events(n);
    constexpr int kRounds = 5;
    std::printf("text %.0f ns/event\n", ns_per_event(false, events, kRounds));
    std::printf("json %.0f ns/event\n", ns_per_event(true, events, kRounds));
    return 0;
}
