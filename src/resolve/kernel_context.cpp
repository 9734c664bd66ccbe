#include <memory>
#include <optional>

#include "ksurf/kallsyms.h"
#include "ksurf/resolve.h"
#include "ksurf/tracefs.h"

namespace ksurf {

ResolveContext kernel_context(const Btf& btf, std::function<std::vector<std::string>()> functions) {
    // Shared by the context's copies: one read of /proc/kallsyms however many probes ask.
    auto syms = std::make_shared<std::optional<Kallsyms>>();
    return ResolveContext{
        btf,
        [](std::string_view s, std::string_view e) { return tracefs::read_format(tracefs::root(), s, e); },
        std::move(functions),
        [] { return tracefs::events(tracefs::root()); },
        [syms]() -> const Kallsyms& {
            if (!*syms) syms->emplace(Kallsyms::load("/proc/kallsyms", {}, true));
            return **syms;
        },
    };
}

}  // namespace ksurf
