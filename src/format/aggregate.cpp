// Aggregation tables (include/ksurf/aggregate.h) as text (sorted tables, bpftrace-like
// histograms with bars, folded stacks), one JSON object, or OpenMetrics text.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>

#include "ksurf/aggregate.h"
#include "ksurf/error.h"
#include "ksurf/format.h"

namespace ksurf {
namespace {

constexpr std::size_t kBarWidth = 40;

bool is_hist(const AggTable& t) { return t.kind == AggKind::Hist || t.kind == AggKind::Lhist; }

std::string number(const AggTable& t, std::uint64_t v) {
    return t.value_signed ? fmt::format("{}", static_cast<std::int64_t>(v)) : fmt::format("{}", v);
}

double mean(const AggTable& t, const AggRow& r) { return mean(r, t.value_signed); }

// A bucket bound: times in the unit that reads best, powers of two as 1K, 2M (bpftrace's
// 1024-based suffixes), other numbers as they are.
std::string bound(const AggTable& t, std::uint64_t v, bool negative = false) {
    if (negative) return fmt::format("{}", static_cast<std::int64_t>(v));
    if (t.unit == "ns") {
        const double d = static_cast<double>(v);
        if (d < 1e3) return fmt::format("{}ns", v);
        if (d < 1e6) return fmt::format("{:.3g}us", d / 1e3);
        if (d < 1e9) return fmt::format("{:.3g}ms", d / 1e6);
        return fmt::format("{:.3g}s", d / 1e9);
    }
    if (t.kind == AggKind::Lhist || v < 1024 || (v & (v - 1))) return fmt::format("{}", v);
    constexpr const char* kSuffix[] = {"K", "M", "G", "T", "P", "E"};
    unsigned s = 0;
    while (v >= 1024 * 1024 && s < 5) v >>= 10, s++;
    return fmt::format("{}{}", v >> 10, kSuffix[s]);
}

BucketRange range(const AggTable& t, std::size_t i) {
    if (t.kind == AggKind::Lhist) return linear_range(i, t.lmin, t.lmax, t.lstep);
    return t.ceil_log2 ? log2_ceil_range(i) : log2_range(i);
}

std::string bucket_label(const AggTable& t, std::size_t i) {
    const BucketRange r = range(t, i);
    if (r.negative) return "(..., 0)";
    // The kernel's buckets end at their power of two, which reads best as a closed end.
    if (t.ceil_log2 && r.lo && r.hi)
        return *r.lo == 0 ? fmt::format("[{}, {}]", bound(t, 0), bound(t, 1))
                          : fmt::format("({}, {}]", bound(t, static_cast<std::uint64_t>(*r.lo) - 1), bound(t, *r.hi - 1));
    if (t.ceil_log2 && !r.hi) return "(8E, ...)";
    const auto lo = [&] { return bound(t, static_cast<std::uint64_t>(*r.lo), *r.lo < 0); };
    if (!r.lo && r.hi) return fmt::format("(..., {})", bound(t, *r.hi, t.kind == AggKind::Lhist && t.lmin < 0));
    if (!r.hi) return r.lo ? fmt::format("[{}, ...)", lo()) : "[8E, ...)";
    if (t.kind == AggKind::Hist && *r.hi - static_cast<std::uint64_t>(*r.lo) == 1 && t.unit.empty())
        return fmt::format("[{}]", lo());
    return fmt::format("[{}, {})", lo(), bound(t, *r.hi, static_cast<std::int64_t>(*r.hi) < 0));
}

std::string key_text(const AggRow& r) {
    std::string s;
    for (const auto& f : r.key) s += fmt::format("{}{}={}", s.empty() ? "" : " ", f.name, format_value(f.value));
    return s;
}

// The columns of a table row after its key.
std::vector<std::pair<std::string, std::string>> values(const AggTable& t, const AggRow& r) {
    const auto avg = [&] { return fmt::format("{:.6g}", mean(t, r)); };
    switch (t.kind) {
    case AggKind::Count: return {{"COUNT", fmt::format("{}", r.count)}};
    case AggKind::Sum: return {{"SUM", number(t, r.sum)}};
    case AggKind::Min: return {{"MIN", number(t, r.min)}};
    case AggKind::Max: return {{"MAX", number(t, r.max)}};
    case AggKind::Avg: return {{"AVG", avg()}};
    default:
        return {{"COUNT", fmt::format("{}", r.count)}, {"AVG", avg()}, {"MIN", number(t, r.min)},
                {"MAX", number(t, r.max)}, {"SUM", number(t, r.sum)}};
    }
}

std::string title(const AggTable& t) {
    std::string what(agg_kind_name(t.kind));
    if (!t.field.empty()) what += " " + t.field;
    if (t.kind == AggKind::Lhist) what += fmt::format(":{}:{}:{}", t.lmin, t.lmax, t.lstep);
    if (!t.by.empty()) what += fmt::format(" by {}", fmt::join(t.by, ","));
    const std::time_t now = static_cast<std::time_t>(t.ts_ns / 1000000000);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::string keys = t.rows.size() < t.keys ? fmt::format("top {} of {} keys", t.rows.size(), t.keys)
                                              : fmt::format("{} key{}", t.keys, t.keys == 1 ? "" : "s");
    return fmt::format("{:02}:{:02}:{:02} {} ({})\n", tm.tm_hour, tm.tm_min, tm.tm_sec, what, keys);
}

void histogram(std::string& out, const AggTable& t, const AggRow& r) {
    std::size_t first = r.buckets.size(), last = 0;
    std::uint64_t peak = 0;
    for (std::size_t i = 0; i < r.buckets.size(); i++)
        if (r.buckets[i]) {
            first = std::min(first, i);
            last = i;
            peak = std::max(peak, r.buckets[i]);
        }
    if (first == r.buckets.size()) return;
    std::vector<std::string> labels;
    std::size_t width = 0;
    for (std::size_t i = first; i <= last; i++) width = std::max(width, labels.emplace_back(bucket_label(t, i)).size());
    for (std::size_t i = first; i <= last; i++) {
        const std::size_t bar = static_cast<std::size_t>(r.buckets[i] * kBarWidth / peak);
        out += fmt::format("{:<{}} {:>8} |{:<{}}|\n", labels[i - first], width, r.buckets[i], std::string(bar, '@'), kBarWidth);
    }
}

// Folded stack lines for flame graphs: the key, the frames outermost first, the value.
std::string folded(const AggTable& t) {
    std::string out;
    for (const auto& r : t.rows) {
        std::vector<std::string> parts;
        for (const auto& f : r.key) parts.push_back(format_value(f.value));
        for (auto it = r.stack.rbegin(); it != r.stack.rend(); ++it) parts.push_back(*it);
        out += fmt::format("{} {}\n", fmt::join(parts, ";"), is_hist(t) ? fmt::format("{}", r.count) : values(t, r).front().second);
    }
    return out;
}

std::string full_note(const AggTable& t) {
    if (!t.full) return "";
    return fmt::format("note: the map of {} keys was full: {} hits with new keys were not counted (raise --map-size)\n",
                       t.map_size, t.full);
}

// ---- OpenMetrics ----

std::string metric_label_name(std::string_view name) {
    std::string s;
    for (char c : name)
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') s += c;
        else if (!s.empty() && s.back() != '_') s += '_';
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front()))) s.insert(0, "k_");
    return s;
}

std::string escape_label(std::string_view v) {
    std::string s;
    for (char c : v) {
        if (c == '\\' || c == '"') s += '\\';
        if (c == '\n') {
            s += "\\n";
            continue;
        }
        s += c;
    }
    return s;
}

std::string labels(const AggTable& t, const AggRow& r, std::string_view extra = {}) {
    std::vector<std::string> l;
    if (!t.field.empty()) l.push_back(fmt::format("field=\"{}\"", escape_label(t.field)));
    for (const auto& f : r.key) l.push_back(fmt::format("{}=\"{}\"", metric_label_name(f.name), escape_label(format_value(f.value))));
    if (!r.stack.empty()) {
        std::vector<std::string> frames(r.stack.rbegin(), r.stack.rend());
        l.push_back(fmt::format("stack=\"{}\"", escape_label(fmt::format("{}", fmt::join(frames, ";")))));
    }
    if (!extra.empty()) l.emplace_back(extra);
    return l.empty() ? "" : fmt::format("{{{}}}", fmt::join(l, ","));
}

}  // namespace

std::string format_aggregate(const AggTable& t) {
    if (t.folded) return folded(t) + full_note(t);
    std::string out = title(t);
    if (is_hist(t)) {
        for (const auto& r : t.rows) {
            const std::string bounds = t.bounds ? fmt::format(", min {}, max {}", number(t, r.min), number(t, r.max)) : "";
            out += fmt::format("{}{}count {}, avg {:.6g}{}{}\n", key_text(r), r.key.empty() ? "" : ": ", r.count, mean(t, r),
                               bounds, t.unit.empty() ? "" : " " + t.unit);
            for (const auto& f : r.stack) out += "  " + f + "\n";
            histogram(out, t, r);
            out += "\n";
        }
        return out + full_note(t);
    }
    // Columns as wide as their widest cell.
    std::vector<std::string> head;
    for (const auto& k : t.by)
        if (k != "stack") head.push_back(k);
    const std::size_t nkeys = head.size();
    for (const auto& v : values(t, AggRow{})) head.push_back(v.first);
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : t.rows) {
        auto& row = cells.emplace_back();
        for (const auto& f : r.key) row.push_back(format_value(f.value));
        row.resize(nkeys);
        for (const auto& v : values(t, r)) row.push_back(v.second);
    }
    std::vector<std::size_t> width(head.size());
    for (std::size_t c = 0; c < head.size(); c++) {
        width[c] = head[c].size();
        for (const auto& row : cells) width[c] = std::max(width[c], row[c].size());
    }
    const auto line = [&](const std::vector<std::string>& row) {
        std::string s;
        for (std::size_t c = 0; c < row.size(); c++) {
            if (c) s += "  ";
            s += c < nkeys ? fmt::format("{:<{}}", row[c], width[c]) : fmt::format("{:>{}}", row[c], width[c]);
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s + "\n";
    };
    out += line(head);
    for (std::size_t i = 0; i < cells.size(); i++) {
        out += line(cells[i]);
        for (const auto& f : t.rows[i].stack) out += "    " + f + "\n";
    }
    return out + full_note(t);
}

std::string format_aggregate_json(const AggTable& t) {
    using nlohmann::json;
    const auto num = [&](std::uint64_t v) { return t.value_signed ? json(static_cast<std::int64_t>(v)) : json(v); };
    json rows = json::array();
    for (const auto& r : t.rows) {
        json key = json::object();
        for (const auto& f : r.key) {
            if (std::holds_alternative<Absent>(f.value.v)) continue;  // as events leave it out
            if (const auto* s = std::get_if<std::string>(&f.value.v)) key[f.name] = *s;
            else if (f.value.display != Display::Decimal) key[f.name] = format_value(f.value);
            else if (const auto* i = std::get_if<std::int64_t>(&f.value.v)) key[f.name] = *i;
            else key[f.name] = std::get<std::uint64_t>(f.value.v);
        }
        json row{{"key", key}, {"count", r.count}};
        if (!r.stack.empty()) row["stack"] = r.stack;
        if (t.kind != AggKind::Count) {
            row["sum"] = num(r.sum);
            if (t.bounds) {
                row["min"] = num(r.min);
                row["max"] = num(r.max);
            }
            row["avg"] = mean(t, r);
        }
        if (is_hist(t)) {
            json buckets = json::array();
            for (std::size_t i = 0; i < r.buckets.size(); i++) {
                if (!r.buckets[i]) continue;
                const BucketRange b = range(t, i);
                json o{{"count", r.buckets[i]}};
                o["min"] = b.negative || !b.lo ? json(nullptr) : json(*b.lo);
                o["max"] = b.hi ? json(*b.hi) : json(nullptr);  // exclusive
                buckets.push_back(o);
            }
            row["buckets"] = buckets;
        }
        rows.push_back(row);
    }
    json j{{"time_ns", t.ts_ns}, {"aggregate", agg_kind_name(t.kind)}, {"by", t.by}, {"keys", t.keys}, {"rows", rows},
           {"map_full", t.full}, {"map_size", t.map_size}};
    if (!t.field.empty()) j["field"] = t.field;
    if (!t.unit.empty()) j["unit"] = t.unit;
    return j.dump() + "\n";
}

std::string format_openmetrics(const AggTable& t) {
    std::string out;
    const std::string kind(agg_kind_name(t.kind));
    if (t.kind == AggKind::Count) {
        out += "# TYPE ksurf_hits counter\n# HELP ksurf_hits Hits aggregated in the kernel, by key.\n";
        for (const auto& r : t.rows) out += fmt::format("ksurf_hits_total{} {}\n", labels(t, r), r.count);
    } else if (is_hist(t)) {
        const std::string name = t.unit == "ns" ? "ksurf_latency_ns" : "ksurf_" + kind;
        out += fmt::format("# TYPE {} histogram\n# HELP {} Values of the field aggregated in the kernel, by key.\n", name, name);
        for (const auto& r : t.rows) {
            std::uint64_t cumulative = 0;
            std::size_t last = 0;
            for (std::size_t i = 0; i < r.buckets.size(); i++)
                if (r.buckets[i]) last = i;
            // Integer values: [lo, hi) is le hi - 1.
            // Unsigned values have no negative bucket to speak of.
            const std::size_t first = t.kind == AggKind::Hist && !t.value_signed ? 1 : 0;
            for (std::size_t i = first; i <= last && i + 1 < r.buckets.size(); i++) {
                cumulative += r.buckets[i];
                const BucketRange b = range(t, i);
                const double le = b.negative ? -1.0 : static_cast<double>(static_cast<std::int64_t>(*b.hi)) - 1;
                out += fmt::format("{}_bucket{} {}\n", name, labels(t, r, fmt::format("le=\"{:.1f}\"", le)), cumulative);
            }
            out += fmt::format("{}_bucket{} {}\n", name, labels(t, r, "le=\"+Inf\""), r.count);
            out += fmt::format("{}_count{} {}\n", name, labels(t, r), r.count);
            // OpenMetrics allows a histogram's sum only when no value is negative.
            if (!t.value_signed) out += fmt::format("{}_sum{} {}\n", name, labels(t, r), r.sum);
        }
    } else {
        const auto gauge = [&](const std::string& name, auto&& value) {
            out += fmt::format("# TYPE ksurf_{} gauge\n# HELP ksurf_{} The field's {} in the kernel, by key.\n", name, name, name);
            for (const auto& r : t.rows) out += fmt::format("ksurf_{}{} {}\n", name, labels(t, r), value(r));
        };
        const auto n = [&](std::uint64_t v) { return number(t, v); };
        if (t.kind == AggKind::Sum || t.kind == AggKind::Stats) gauge("sum", [&](const AggRow& r) { return n(r.sum); });
        if (t.kind == AggKind::Min || t.kind == AggKind::Stats) gauge("min", [&](const AggRow& r) { return n(r.min); });
        if (t.kind == AggKind::Max || t.kind == AggKind::Stats) gauge("max", [&](const AggRow& r) { return n(r.max); });
        if (t.kind == AggKind::Avg || t.kind == AggKind::Stats)
            gauge("avg", [&](const AggRow& r) { return fmt::format("{}", mean(t, r)); });
        if (t.kind == AggKind::Stats) gauge("count", [&](const AggRow& r) { return fmt::format("{}", r.count); });
    }
    out += fmt::format("# TYPE ksurf_map_full counter\n# HELP ksurf_map_full Hits not aggregated: their new key found the map "
                       "of {} keys full.\nksurf_map_full_total {}\n# EOF\n",
                       t.map_size, t.full);
    return out;
}

}  // namespace ksurf
