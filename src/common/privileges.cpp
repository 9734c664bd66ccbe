#include "ksurf/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>

#include "ksurf/error.h"

namespace ksurf {
namespace {

struct CapFree {
    void operator()(cap_t c) const { cap_free(c); }
};
using Caps = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

bool effective(cap_value_t cap) {
    const Caps caps(cap_get_proc());
    cap_flag_value_t v = CAP_CLEAR;
    return caps && cap_get_flag(caps.get(), cap, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET;
}

bool permitted(cap_value_t cap) {
    const Caps caps(cap_get_proc());
    cap_flag_value_t v = CAP_CLEAR;
    return caps && cap_get_flag(caps.get(), cap, CAP_PERMITTED, &v) == 0 && v == CAP_SET;
}

long read_sysctl(const char* path, long otherwise) {
    std::ifstream in(path);
    long v = otherwise;
    return in >> v ? v : otherwise;
}

// Before 5.19 (commit "bpf: refine kernel.unprivileged_bpf_disabled behaviour") that
// setting refused every bpf() command without CAP_BPF, reading a map by its fd included;
// since then only creating maps and loading programs.
bool fd_use_needs_cap_bpf() {
    if (read_sysctl("/proc/sys/kernel/unprivileged_bpf_disabled", 0) == 0) return false;
    utsname u{};
    int major = 0, minor = 0;
    if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return true;
    return major < 5 || (major == 5 && minor < 19);
}

}  // namespace

User find_user(const std::string& name) {
    errno = 0;
    const passwd* pw = getpwnam(name.c_str());
    if (!pw) fail("--user {}: {}", printable(name), errno ? errno_text(errno) : "no such user");
    User u{pw->pw_name, pw->pw_uid, pw->pw_gid, {}};
    int n = 0;
    getgrouplist(u.name.c_str(), u.gid, nullptr, &n);  // -1, and the number of groups in n
    u.groups.resize(static_cast<std::size_t>(n));
    if (getgrouplist(u.name.c_str(), u.gid, u.groups.data(), &n) < 0) fail("--user {}: cannot list its groups", u.name);
    u.groups.resize(static_cast<std::size_t>(n));
    return u;
}

int become_caller(const std::optional<User>& user) noexcept {
    if (user) {
        // Groups before the gid and the gid before the uid: each needs what the next gives up.
        if (setgroups(user->groups.size(), user->groups.data()) != 0 ||
            setresgid(user->gid, user->gid, user->gid) != 0 || setresuid(user->uid, user->uid, user->uid) != 0)
            return errno;
        return 0;
    }
    const gid_t gid = getgid();
    const uid_t uid = getuid();
    if (getegid() != gid && setresgid(gid, gid, gid) != 0) return errno;
    if (geteuid() != uid && setresuid(uid, uid, uid) != 0) return errno;
    return 0;
}

std::string drop_privileges(const std::optional<User>& user) {
    const bool keep_bpf = fd_use_needs_cap_bpf() && permitted(CAP_BPF);
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes below. Without
    // it (a run given only the capabilities it needs) the set stays, and no_new_privs keeps
    // an exec from using it.
    for (cap_value_t c = 0; c < static_cast<cap_value_t>(cap_max_bits()); c++) cap_drop_bound(c);
    cap_reset_ambient();
    if (user) {
        // Without keep-caps, setuid() away from root would clear the permitted set at once.
        if (keep_bpf && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
            fail("cannot keep CAP_BPF for user {}: {}", user->name, errno_text(errno));
        if (const int err = become_caller(user)) fail("cannot switch to user {}: {}", user->name, errno_text(err));
    }
    // capset() is per thread: ksurf attaches and reads from its only thread.
    const Caps caps(cap_init());
    const cap_value_t bpf = CAP_BPF;
    if (!caps || (keep_bpf && (cap_set_flag(caps.get(), CAP_PERMITTED, 1, &bpf, CAP_SET) != 0 ||
                               cap_set_flag(caps.get(), CAP_EFFECTIVE, 1, &bpf, CAP_SET) != 0)))
        fail("cannot drop capabilities: {}", errno_text(errno));
    if (cap_set_proc(caps.get()) != 0) fail("cannot drop capabilities: {}", errno_text(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("cannot set no_new_privs: {}", errno_text(errno));
    return fmt::format(
        "attached: {}{}{}", user ? fmt::format("now user {} (uid {}, gid {}); ", user->name, user->uid, user->gid) : "",
        keep_bpf ? "every capability dropped but CAP_BPF (before 5.19 kernel.unprivileged_bpf_disabled refuses reading "
                   "maps without it)"
                 : "every capability dropped",
        "; no_new_privs set");
}

std::vector<CapabilityNeed> capability_needs(const std::optional<std::string>& tracefs) {
    std::vector<CapabilityNeed> needs;
    auto add = [&](const char* name, cap_value_t cap, bool needed, std::string why) {
        needs.push_back({name, effective(cap), needed, std::move(why)});
    };
    add("CAP_BPF", CAP_BPF, true, "loading BPF programs and creating maps (or CAP_SYS_ADMIN)");
    add("CAP_PERFMON", CAP_PERFMON, true, "tracing programs, perf events and reading kernel memory (or CAP_SYS_ADMIN)");
    struct stat st {};
    if (!tracefs) {
        add("CAP_SYS_ADMIN", CAP_SYS_ADMIN, true, "mounting tracefs, which is not mounted");
    } else {
        add("CAP_SYS_ADMIN", CAP_SYS_ADMIN, false, fmt::format("not needed: tracefs is mounted at {}", *tracefs));
        // What the mode bits grant this euid; group membership is not looked at.
        const bool readable = stat(tracefs->c_str(), &st) == 0 &&
                              ((st.st_uid == geteuid() && (st.st_mode & 0500) == 0500) || (st.st_mode & 0005) == 0005);
        add("CAP_DAC_READ_SEARCH", CAP_DAC_READ_SEARCH, !readable,
            readable ? fmt::format("not needed: {} is readable", *tracefs)
                     : fmt::format("reading tracepoint formats and ids in {} (mode {:04o}, uid {})", *tracefs,
                                   st.st_mode & 07777, st.st_uid));
    }
    const long kptr = read_sysctl("/proc/sys/kernel/kptr_restrict", 2);
    const long paranoid = read_sysctl("/proc/sys/kernel/perf_event_paranoid", 2);
    add("CAP_SYSLOG", CAP_SYSLOG, kptr == 1 || (kptr == 0 && paranoid > 1),
        kptr >= 2   ? "cannot help: kernel.kptr_restrict=2 hides /proc/kallsyms addresses from everyone (-s, graph, skb)"
        : kptr == 0 && paranoid <= 1 ? "not needed: /proc/kallsyms shows addresses (kptr_restrict=0, perf_event_paranoid<=1)"
                                     : "reading /proc/kallsyms addresses (-s, graph, skb)");
    return needs;
}

std::string explain_denied(std::string_view message) {
    if (message.find("(EPERM)") == std::string_view::npos || effective(CAP_SYS_ADMIN)) return std::string(message);
    std::string missing;
    for (const auto& [cap, name] : {std::pair{CAP_BPF, "CAP_BPF"}, std::pair{CAP_PERFMON, "CAP_PERFMON"}})
        if (!effective(cap)) missing += missing.empty() ? name : std::string(" and ") + name;
    return missing.empty() ? std::string(message)
                           : fmt::format("{}; the effective capability set lacks {}", message, missing);
}

}  // namespace ksurf
