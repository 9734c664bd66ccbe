#include "backends.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

// `ksurf features`: name → (available, reason).
const std::map<std::string, std::pair<bool, std::string>>& features() {
    static const auto table = [] {
        std::map<std::string, std::pair<bool, std::string>> t;
        static const std::regex re(R"(^(\S+)\s+(yes|no)\s*(.*)$)");
        std::smatch m;
        for (const auto& l : lines(run({ksurf_bin(), "features"}).out))
            if (std::regex_match(l, m, re)) t[m[1]] = {m[2] == "yes", m[3]};
        return t;
    }();
    return table;
}

}  // namespace

std::string feature_missing(const std::string& name) {
    auto it = features().find(name);
    if (it == features().end()) return name + ": not listed by ksurf features";
    return it->second.first ? "" : name + ": " + it->second.second;
}

std::string function_backend_missing(const std::string& backend) {
    return feature_missing(backend == "tracefs" ? "kprobe_events" : backend);
}

Result trace(const std::string& backend, std::vector<std::string> args, const std::function<void()>& action) {
    args.insert(args.begin(), {ksurf_bin(), "--backend", backend});
    Process p(args);
    EXPECT_TRUE(p.wait_for_err(kReady, 30s)) << "ksurf did not attach";
    action();
    return p.finish(60s);
}

std::vector<Line> parse(const std::string& out) {
    static const std::regex re(R"(^(.*)-(\d+) \[(\d{3})\] (\d+\.\d{6}): (.*)$)");
    std::vector<Line> v;
    std::smatch m;
    for (const auto& l : lines(out)) {
        if (l.starts_with(" => ") && !v.empty()) {
            v.back().stack.push_back(l.substr(4));
            continue;
        }
        if (std::regex_match(l, m, re)) v.push_back({m[1], std::stoi(m[2]), m[5], {}});
    }
    return v;
}

std::vector<Line> of(const std::vector<Line>& all, pid_t pid) {
    std::vector<Line> v;
    for (const auto& l : all)
        if (l.pid == pid) v.push_back(l);
    return v;
}

}  // namespace ksurf::test
