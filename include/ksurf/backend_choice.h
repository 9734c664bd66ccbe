// Which backend runs a set of probes: BPF where the kernel allows every probe, else
// tracefs, each fallback announced with the kernel's reason; never a silent downgrade.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/features.h"
#include "ksurf/plan.h"

namespace ksurf {

enum class BackendKind { Bpf, Tracefs };

// What the user asked for with --backend.
enum class BackendRequest { Auto, Bpf, Fentry, Kprobe, Tracefs };
BackendRequest parse_backend_request(std::string_view text);  // throws on unknown names
std::string_view backend_name(BackendRequest req);             // as --backend spells it
std::vector<std::string> backend_names();                      // every name --backend takes

struct BackendChoice {
    BackendKind kind = BackendKind::Bpf;
    std::vector<std::string> notes;  // one line per fallback, for stderr
};

using FeatureQuery = std::function<const FeatureStatus&(Feature)>;

// Throws a one-line Error naming the first probe no allowed backend can run, with the
// reason of each backend it tried.
BackendChoice choose_backend(BackendRequest req, const std::vector<PlannedProbe>& probes, const FeatureQuery& has);

}  // namespace ksurf
