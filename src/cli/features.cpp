// `ksurf features`: what the kernel lets ksurf do, as a table or (--json) for scripts.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "ksurf/cli.h"
#include "ksurf/features.h"
#include "ksurf/privileges.h"
#include "ksurf/tracefs.h"

namespace ksurf {

int run_features(bool json) {
    Features features;
    const auto caps = capability_needs(tracefs::find_mount());
    if (json) {
        nlohmann::ordered_json out;
        auto& fs = out["features"] = nlohmann::ordered_json::object();
        for (int i = 0; i < static_cast<int>(Feature::Count_); i++) {
            const auto f = static_cast<Feature>(i);
            const auto& st = features.get(f);
            fs[std::string(feature_name(f))] = {{"available", st.ok}, {"reason", st.reason}};
        }
        auto& cs = out["capabilities"] = nlohmann::ordered_json::object();
        for (const auto& c : caps) cs[c.name] = {{"held", c.held}, {"needed", c.needed}, {"reason", c.why}};
        fmt::print("{}\n", out.dump(2));
        return 0;
    }
    for (int i = 0; i < static_cast<int>(Feature::Count_); i++) {
        const auto f = static_cast<Feature>(i);
        const auto& st = features.get(f);
        fmt::print("{:<15} {:<4} {}\n", feature_name(f), st.ok ? "yes" : "no", st.reason);
    }
    // The capabilities column says whether the effective set holds it.
    for (const auto& c : caps) fmt::print("{:<15} {:<4} {}{}\n", c.name, c.held ? "yes" : "no", c.needed ? "needed for " : "", c.why);
    return 0;
}

}  // namespace ksurf
