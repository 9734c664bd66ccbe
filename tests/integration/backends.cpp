#include "backends.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>

namespace ksurf::test {
namespace {

using namespace std::chrono_literals;

}  // namespace

const nlohmann::json& kernel_features() {
    static const nlohmann::json table = [] {
        const auto r = run({ksurf_bin(), "features", "--json"});
        if (r.status != 0) throw std::runtime_error("ksurf features --json failed: " + r.err);
        return nlohmann::json::parse(r.out);
    }();
    return table;
}

std::string feature_missing(const std::string& name) {
    const auto& fs = kernel_features().at("features");
    if (!fs.contains(name)) return name + ": not listed by ksurf features";
    return fs[name].at("available").get<bool>() ? "" : name + ": " + fs[name].at("reason").get<std::string>();
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
