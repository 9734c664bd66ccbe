// Suggestions for users coming from bpftrace; ksurf never runs its syntax.
#include <regex>
#include <string>

#include "ksurf/parse.h"

namespace ksurf {
namespace {

// bpftrace's names for variables in a predicate, as ksurf's filter names them.
std::string filter_from_predicate(const std::string& pred) {
    static const std::regex name(R"(\bargs(?:->|\.)(\w+)|\barg([0-5])\b|\b(pid|tid|cpu|retval)\b)");
    std::string out;
    auto last = pred.cbegin();
    for (std::sregex_iterator it(pred.begin(), pred.end(), name), end; it != end; ++it) {
        const std::smatch& m = *it;
        out.append(last, m[0].first);
        if (m[1].matched) out += m[1].str();
        else if (m[2].matched) out += "%" + m[2].str();
        else out += "$" + m[3].str();
        last = m[0].second;
    }
    out.append(last, pred.cend());
    return out;
}

}  // namespace

std::optional<std::string> from_bpftrace(std::string_view text) {
    // kind:[module:]target, then an optional /predicate/ and { action }.
    static const std::regex probe(
        R"(^\s*(tracepoint|t|kprobe|k|kretprobe|kr|fentry|f|fexit|fr):(?:([\w.-]+):)?([\w.*?+]+)\s*(?:/(.*)/)?\s*(\{.*)?$)");
    std::smatch m;
    const std::string s(text);
    if (!std::regex_match(s, m, probe)) return std::nullopt;
    const std::string kind = m[1];
    std::string out;
    if (kind == "tracepoint" || kind == "t") {
        if (!m[2].matched) return std::nullopt;  // needs SUBSYS:EVENT
        out = "e " + m[2].str() + "/" + m[3].str();
    } else {
        const bool ret = kind == "kretprobe" || kind == "kr" || kind == "fexit" || kind == "fr";
        out = (ret ? "r " : "p ") + m[3].str();
    }
    if (m[4].matched) out += " f:" + filter_from_predicate(m[4].str());
    return out;
}

}  // namespace ksurf
