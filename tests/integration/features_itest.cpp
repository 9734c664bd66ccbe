// `ksurf features` against the running kernel, checked against what the test finds out
// independently (files in sysfs/tracefs, the kernel's config) rather than against itself.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "ksurf/kconfig.h"
#include "process.h"

namespace ksurf::test {
namespace {

struct Line {
    bool yes;
    std::string reason;
};

// `ksurf features --json`, features and capabilities in one map (held for a capability).
std::map<std::string, Line> features() {
    auto r = run({ksurf_bin(), "features", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    std::map<std::string, Line> m;
    for (const auto& [name, f] : j.at("features").items()) m[name] = {f.at("available"), f.at("reason")};
    for (const auto& [name, c] : j.at("capabilities").items()) m[name] = {c.at("held"), c.at("reason")};
    return m;
}

bool exists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

TEST(Features, ListsEveryFeatureOnce) {
    auto m = features();
    for (const char* name : {"btf", "bpf", "ringbuf", "tracepoint", "raw_tp", "tp_btf", "fentry", "fexit", "kprobe",
                             "kprobe_multi", "tracefs", "kprobe_events", "function_graph", "uprobe", "uprobe_events", "hist_triggers"})
        EXPECT_EQ(m.count(name), 1u) << name;
    // Then the capabilities, held or not, with whether this host needs them.
    for (const char* name : {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYSLOG"})
        EXPECT_EQ(m.count(name), 1u) << name;
    EXPECT_EQ(m.size(), 21u);
    for (const auto& [name, line] : m) EXPECT_FALSE(line.reason.empty()) << name << " gives no reason";
}

// The table and --json say the same: one line per entry, in the same order.
TEST(Features, TableAndJsonAgree) {
    const auto table = run({ksurf_bin(), "features"});
    const auto json = run({ksurf_bin(), "features", "--json"});
    ASSERT_EQ(table.status, 0) << table.err;
    ASSERT_EQ(json.status, 0) << json.err;
    const auto j = nlohmann::ordered_json::parse(json.out);  // in the order ksurf wrote it
    std::vector<std::string> expected;
    auto line = [](const std::string& name, bool yes, const std::string& text) {
        return fmt::format("{:<15} {:<4} {}", name, yes ? "yes" : "no", text);
    };
    for (const auto& [name, f] : j.at("features").items()) expected.push_back(line(name, f.at("available"), f.at("reason")));
    for (const auto& [name, c] : j.at("capabilities").items())
        expected.push_back(line(name, c.at("held"), (c.at("needed").get<bool>() ? "needed for " : "") + c.at("reason").get<std::string>()));
    EXPECT_EQ(lines(table.out), expected);
}

TEST(Features, UnprivilegedUserSeesBpfRefused) {
    auto r = Process({ksurf_bin(), "features"}, uid_t{65534}).finish();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("bpf             no   BPF program load not permitted (EPERM)"), std::string::npos) << r.out;
}

TEST(Features, AgreesWithTheKernelsFiles) {
    auto m = features();
    EXPECT_EQ(m["btf"].yes, exists("/sys/kernel/btf/vmlinux"));
    // ksurf mounts tracefs when probing, so the file checks below see the same tracefs.
    ASSERT_TRUE(m["tracefs"].yes) << m["tracefs"].reason;
    EXPECT_EQ(m["kprobe_events"].yes, exists("/sys/kernel/tracing/kprobe_events"));
    EXPECT_EQ(m["uprobe_events"].yes, exists("/sys/kernel/tracing/uprobe_events"));
    EXPECT_EQ(m["uprobe"].yes, exists("/sys/bus/event_source/devices/uprobe/type")) << m["uprobe"].reason;
    std::ifstream tracers("/sys/kernel/tracing/available_tracers");
    std::string all((std::istreambuf_iterator<char>(tracers)), {});
    EXPECT_EQ(m["function_graph"].yes, all.find("function_graph") != std::string::npos);
    EXPECT_EQ(m["hist_triggers"].yes, exists("/sys/kernel/tracing/events/sched/sched_switch/hist"));
    EXPECT_TRUE(m["bpf"].yes) << m["bpf"].reason;
    EXPECT_TRUE(m["tracepoint"].yes) << m["tracepoint"].reason;
}

TEST(Features, NamesTheConfigWhenKprobesAreMissing) {
    auto cfg = kernel_config("CONFIG_KPROBES");
    if (!cfg || !cfg->empty()) GTEST_SKIP() << "this kernel has kprobes (or no readable config)";
    auto m = features();
    EXPECT_FALSE(m["kprobe"].yes);
    EXPECT_EQ(m["kprobe"].reason, "kprobes are not configured (CONFIG_KPROBES is not set)");
    EXPECT_NE(m["kprobe_events"].reason.find("CONFIG_KPROBES is not set"), std::string::npos);
}

TEST(Features, ExplainsARefusedFentryWithItsErrno) {
    auto m = features();
    if (m["fentry"].yes) GTEST_SKIP() << "fentry works here: " << m["fentry"].reason;
    EXPECT_FALSE(in_vm_matrix()) << "every matrix kernel supports fentry: " << m["fentry"].reason;
    EXPECT_TRUE(std::regex_search(m["fentry"].reason, std::regex(R"(\(E[A-Z]+\))"))) << m["fentry"].reason;
}

// The matrix kernels (Debian 5.10, 6.1, 6.12) all have kprobes, fentry, function_graph and
// BTF; only 6.12 has fprobe-based kprobe.multi; 5.10 (bullseye's config) has no hist
// triggers, whose absence the tracefs aggregation tests then check there.
TEST(Features, MatrixKernelsHaveTheirKnownFeatures) {
    if (!in_vm_matrix()) GTEST_SKIP() << "host kernel";
    auto m = features();
    for (const char* name : {"btf", "fentry", "fexit", "kprobe", "kprobe_events", "function_graph", "tp_btf", "raw_tp",
                             "uprobe", "uprobe_events"})
        EXPECT_TRUE(m[name].yes) << name << ": " << m[name].reason;
    EXPECT_NE(m["fentry"].reason.find("loaded fentry on vfs_read"), std::string::npos) << m["fentry"].reason;
    EXPECT_EQ(m["kprobe_multi"].yes, std::string(std::getenv("KSURF_VM_KERNEL")) == "6.12") << m["kprobe_multi"].reason;
    EXPECT_EQ(m["hist_triggers"].yes, std::string(std::getenv("KSURF_VM_KERNEL")) != "5.10") << m["hist_triggers"].reason;
    if (!m["hist_triggers"].yes) {
        EXPECT_TRUE(m["hist_triggers"].reason.starts_with("no hist triggers: ")) << m["hist_triggers"].reason;
    }
}

}  // namespace
}  // namespace ksurf::test
