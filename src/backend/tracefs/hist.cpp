// A hist file (kernel/trace/trace_events_hist.c, hist_show) read back. Each entry is
//   { common_pid: bash            [      1234], len: ~ 2^3  } hitcount:          5  len:        37
// or, with a stack key, the frames on lines of their own before ` } hitcount:`. Keys are
// printed in the trigger's order, separated by ", "; numbers are decimal u64.
#include <fmt/format.h>

#include <charconv>

#include "ksurf/error.h"
#include "ksurf/tracefs_backend.h"

namespace ksurf::tracefs {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

[[noreturn]] void bad(std::string_view what, std::string_view line) {
    fail("cannot read the hist file: {} in '{}'", what, trim(line.substr(0, line.find('\n'))));
}

std::uint64_t number(std::string_view text, std::string_view entry) {
    text = trim(text);
    std::uint64_t v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size()) bad(fmt::format("'{}' is not a number", text), entry);
    return v;
}

// The number after `NAME:` in the values that follow the key.
std::uint64_t value_of(std::string_view vals, std::string_view name, std::string_view entry) {
    const std::string label = fmt::format(" {}:", name);
    const auto at = vals.find(label);
    if (at == std::string_view::npos) bad(fmt::format("no '{}'", name), entry);
    const auto from = at + label.size();
    const auto digits = vals.find_first_not_of(' ', from);
    return number(vals.substr(from, vals.find(' ', digits) - from), entry);
}

HistEntry parse_entry(std::string_view entry, const HistTrigger& trigger) {
    // The keys end at the last " }" before "hitcount:": a string key may hold braces.
    const auto hitcount = entry.find("} hitcount:");
    if (!entry.starts_with("{ ") || hitcount == std::string_view::npos) bad("no '{ ... } hitcount:'", entry);
    const std::string_view keys = entry.substr(2, hitcount - 2);
    const std::string_view vals = entry.substr(hitcount + 1);
    HistEntry e;
    e.hits = value_of(vals, "hitcount", entry);
    if (!trigger.value.empty()) e.value = value_of(vals, trigger.value, entry);
    std::size_t at = 0;
    for (std::size_t i = 0; i < trigger.keys.size(); i++) {
        const HistKey& k = trigger.keys[i];
        const auto colon = keys.find(':', at);
        if (colon == std::string_view::npos) bad(fmt::format("key {} is missing", i + 1), entry);
        const bool last = i + 1 == trigger.keys.size();
        // Comma-separated: a string key that holds ", " is cut there (and the entry refused);
        // an execname ends with its "[pid]".
        const auto from = k.print == HistKey::Print::Execname ? keys.find(']', colon) : colon;
        const auto end = last ? keys.size() : keys.find(", ", from);
        if (end == std::string_view::npos) bad(fmt::format("key {} is missing", i + 2), entry);
        const std::string_view text = trim(keys.substr(colon + 1, end - colon - 1));
        at = end + (last ? 0 : 2);
        switch (k.print) {
        case HistKey::Print::Number: e.keys.emplace_back(fmt::format("{}", number(text, entry))); break;
        case HistKey::Print::String: e.keys.emplace_back(text); break;
        case HistKey::Print::Execname: {
            // "%-16s[%10llu]": the comm, then the pid in brackets.
            const auto open = text.rfind('[');
            if (open == std::string_view::npos || !text.ends_with(']')) bad("an execname without its pid", entry);
            e.keys.emplace_back(trim(text.substr(0, open)));  // "%-16s"
            e.pid = number(text.substr(open + 1, text.size() - open - 2), entry);
            break;
        }
        case HistKey::Print::Log2: {
            const auto caret = text.find("2^");
            if (caret == std::string_view::npos) bad("a log2 key without '2^'", entry);
            e.keys.emplace_back(fmt::format("{}", number(text.substr(caret + 2), entry)));
            break;
        }
        case HistKey::Print::Stack:
            e.keys.emplace_back();
            for (std::size_t from = 0; from < text.size();) {
                const auto nl = std::min(text.find('\n', from), text.size());
                if (auto frame = trim(text.substr(from, nl - from)); !frame.empty()) e.stack.emplace_back(frame);
                from = nl + 1;
            }
            break;
        }
    }
    return e;
}

}  // namespace

HistFile parse_hist(std::string_view text, const HistTrigger& trigger) {
    HistFile h;
    std::size_t at = 0;
    while (at < text.size()) {
        const auto nl = std::min(text.find('\n', at), text.size());
        std::string_view line = text.substr(at, nl - at);
        if (line.starts_with("{ ")) {
            // A stack key spans lines up to the one with the values.
            auto end = text.find("} hitcount:", at);
            end = end == std::string_view::npos ? nl : std::min(text.find('\n', end), text.size());
            h.entries.push_back(parse_entry(text.substr(at, end - at), trigger));
            at = end + 1;
            continue;
        }
        if (auto d = trim(line); d.starts_with("Dropped:")) h.dropped = number(d.substr(8), line);
        at = nl + 1;
    }
    return h;
}

}  // namespace ksurf::tracefs
