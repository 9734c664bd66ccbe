// Which functions `ksurf skb` probes: BTF says which take an sk_buff, ftrace which it can
// trace.
#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_set>

#include "ksurf/btf.h"
#include "ksurf/error.h"
#include "ksurf/graph.h"
#include "ksurf/resolve.h"
#include "ksurf/skb.h"

namespace ksurf {
namespace {

SkbReturn return_kind(const Type& t) {
    switch (t.strip().kind()) {
    case Type::Kind::Void: return SkbReturn::Void;
    case Type::Kind::Pointer: return SkbReturn::Pointer;
    default: return t.is_signed() ? SkbReturn::Signed : SkbReturn::Unsigned;
    }
}

}  // namespace

SkbFunctions find_skb_functions(const Btf& btf, const std::vector<std::string>& traceable,
                                const std::vector<std::string>& globs) {
    std::unordered_set<std::string_view> listed;
    for (const auto& l : traceable) listed.insert(std::string_view(l).substr(0, l.find_first_of(" \t")));
    std::unordered_set<std::string> wanted;
    const auto matched = expand_globs(globs, traceable);
    for (std::size_t i = 0; i < globs.size(); i++) {
        if (matched[i].empty()) fail("--funcs '{}' matches no traceable function", globs[i]);
        wanted.insert(matched[i].begin(), matched[i].end());
    }
    std::unordered_set<std::string_view> own(std::begin(kSkbFreeFunctions), std::end(kSkbFreeFunctions));
    own.insert(kSkbCloneFunction);

    std::map<std::string, SkbFunction> chosen;
    std::map<std::string, std::string> skipped;
    for (const Function& f : btf.functions(true)) {
        // Five: the registers the kprobe programs read (pt_regs has a sixth only on some
        // architectures' libbpf).
        auto skb = std::find_if(f.params.begin(), f.params.end(), [](const Param& p) { return is_skb_pointer(p.type); });
        if (skb == f.params.end() || chosen.count(f.name) || own.count(f.name)) continue;
        if (!wanted.empty() && !wanted.count(f.name)) continue;
        const auto arg = static_cast<unsigned>(skb - f.params.begin());
        if (arg >= 5)
            skipped.emplace(f.name, "its struct sk_buff * is not among the first five arguments");
        else if (!listed.count(f.name))
            skipped.emplace(f.name, "not in available_filter_functions (notrace, or inlined everywhere)");
        else if (auto why = untraceable(f.name))
            skipped.emplace(f.name, *why);
        else
            chosen.emplace(f.name, SkbFunction{f.name, arg, return_kind(f.ret)});
    }
    if (chosen.empty())
        fail("no traceable function{} takes a struct sk_buff *", globs.empty() ? "" : " --funcs names");
    SkbFunctions out;
    for (const char* name : kSkbFreeFunctions)
        if (listed.count(name)) out.frees.emplace_back(name);
    for (auto& [name, fn] : chosen) out.functions.push_back(std::move(fn));
    for (auto& [name, why] : skipped)
        if (!chosen.count(name)) out.skipped.emplace_back(name, why);
    return out;
}

}  // namespace ksurf
