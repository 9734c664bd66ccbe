// What ksurf needs of root, and giving it up. Loading and attaching BPF programs needs
// CAP_BPF and CAP_PERFMON; once attached, the links, maps and ring buffer are file
// descriptors, and using them needs no privilege (before 5.19, with
// kernel.unprivileged_bpf_disabled set, the bpf() syscall still wants CAP_BPF), so a BPF
// run gives up everything after attaching. A tracefs run keeps root: removing its probes
// and instance at exit writes tracefs.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksurf {

// --user NAME: who the run continues as once attached, and who -c's command runs as.
struct User {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};

// NAME from the user database; an Error when there is none.
User find_user(const std::string& name);

// For -c's command between fork and exec: USER's groups, group and user, or else the
// caller's real ids in place of set-id ones, so that it runs as the caller, not as ksurf.
// Returns 0 or an errno; never throws.
int become_caller(const std::optional<User>& user) noexcept;

// After attaching, on the BPF backend: switches to USER if given (groups, gid, uid), then
// clears every capability (effective, permitted, inheritable, ambient, and the bounding
// set where CAP_SETPCAP allows) and sets no_new_privs. Returns what it did, for -v.
std::string drop_privileges(const std::optional<User>& user);

// One capability ksurf may need: held in the effective set, and why it is or is not needed
// on this host.
struct CapabilityNeed {
    std::string name;  // "CAP_BPF"
    bool held = false;
    bool needed = false;
    std::string why;
};

// CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN and CAP_SYSLOG for the BPF
// backend, with tracefs mounted at TRACEFS (nullopt: not mounted).
std::vector<CapabilityNeed> capability_needs(const std::optional<std::string>& tracefs);

// MESSAGE, and when it reports EPERM, the capabilities for BPF missing from the effective
// set: "... (EPERM); the effective capability set lacks CAP_BPF".
std::string explain_denied(std::string_view message);

}  // namespace ksurf
