// Aggregations: options, keys bound to fields, buckets, and the maps read back and merged.
#include "ksurf/aggregate.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>

#include "ksurf/bpf_backend.h"
#include "ksurf/error.h"
#include "ksurf/kallsyms.h"
#include "ksurf/resolve.h"

namespace ksurf {
namespace {

constexpr std::string_view kStack = "stack";


constexpr std::string_view kNames[] = {"count", "sum", "min", "max", "avg", "stats", "hist", "lhist"};

bool parse_int(std::string_view text, std::int64_t& v) {
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

// The frames of the stack whose id the key holds at AT: "func+0x1a/0x90", or only the
// function's name for folded lines.
std::vector<std::string> stack_frames(int fd, std::span<const std::uint8_t> key, std::size_t at, const Kallsyms* kallsyms,
                                      bool folded) {
    std::uint32_t id = 0;
    std::memcpy(&id, key.data() + at, sizeof id);
    std::uint64_t ips[KSURF_MAX_STACK] = {};
    // The id of a stack the kernel could not take or store (its map full) is an error code.
    if (bpf_map_lookup_elem(fd, &id, ips) != 0) return {"[stack lost]"};
    std::vector<std::string> frames;
    for (std::uint64_t ip : ips) {
        if (!ip) break;
        const KernelSymbol* sym = kallsyms ? kallsyms->at(ip) : nullptr;
        if (folded) frames.push_back(sym ? sym->name : fmt::format("{:#x}", ip));
        else frames.push_back(kallsyms ? kallsyms->describe(ip) : fmt::format("{:#x}", ip));
    }
    return frames;
}

}  // namespace

std::string_view agg_kind_name(AggKind k) { return kNames[static_cast<std::size_t>(k)]; }

bool AggregateOptions::stack_key() const { return stacks || std::ranges::find(by, kStack) != by.end(); }

void AggregateOptions::check() const {
    if (kind) return;
    const char* given = !by.empty() ? "--by" : interval_s > 0 ? "--interval" : top ? "--top" : folded ? "--folded"
                        : !metrics_file.empty() ? "--metrics-file" : map_size != AggregateOptions{}.map_size ? "--map-size" : nullptr;
    if (given) fail("{} shapes an aggregation: add --count, --sum, --hist... (see --help)", given);
}

void set_aggregation(AggregateOptions& opt, AggKind kind, std::string field) {
    if (opt.kind)
        fail("--{} and --{}: one aggregation per run", agg_kind_name(*opt.kind), agg_kind_name(kind));
    if (kind != AggKind::Count && field.empty()) fail("--{} needs the field to aggregate", agg_kind_name(kind));
    opt.kind = kind;
    opt.field = std::move(field);
}

void add_keys(std::string_view text, AggregateOptions& opt) {
    std::size_t at = 0;
    while (at <= text.size()) {
        const std::size_t end = std::min(text.find(',', at), text.size());
        const std::string_view key = text.substr(at, end - at);
        if (key.empty()) fail("keys are names separated by commas, not '{}'", printable(text));
        opt.by.emplace_back(key);
        at = end + 1;
    }
}

void parse_lhist(std::string_view text, AggregateOptions& opt) {
    const auto bad = [&] {
        fail("--lhist takes FIELD:MIN:MAX:STEP with MIN < MAX, STEP > 0 and at most {} steps, not '{}'",
             KSURF_AGG_MAX_LINEAR, printable(text));
    };
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
        const std::size_t end = text.find(':', at);
        parts.push_back(text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
        if (end == std::string_view::npos) break;
        at = end + 1;
    }
    std::int64_t lo = 0, hi = 0, step = 0;
    if (parts.size() != 4 || parts[0].empty() || !parse_int(parts[1], lo) || !parse_int(parts[2], hi) ||
        !parse_int(parts[3], step) || lo >= hi || step <= 0)
        bad();
    // Differences of int64 limits overflow: the steps are counted in unsigned arithmetic.
    if ((static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo) + step - 1) / step > KSURF_AGG_MAX_LINEAR) bad();
    set_aggregation(opt, AggKind::Lhist, std::string(parts[0]));
    opt.lmin = lo;
    opt.lmax = hi;
    opt.lstep = static_cast<std::uint64_t>(step);
}

// NAME's field in P, as the keys and the value name it; the resolver's error in one line.
std::size_t field_of(std::string_view name, PlannedProbe& p, const ResolveContext& ctx) {
    try {
        return resolve_name(name, p, ctx);
    } catch (const SourceError& e) {
        std::string why = e.what();
        // The resolver words it for filters, whose names it binds the same way.
        if (const auto at = why.find(" in the filter"); at != std::string::npos) why.erase(at, 14);
        fail("{}: cannot aggregate by '{}': {}", p.text, printable(name), why);
    }
}

void plan_aggregate(std::vector<PlannedProbe>& plans, const AggregateOptions& opt, const ResolveContext& ctx) {
    std::size_t key_len = 8;
    for (auto& p : plans) {
        PlannedAggregate a;
        a.stack = opt.stacks;
        for (const auto& name : opt.by) {
            if (name == kStack) {
                a.stack = true;
                continue;
            }
            a.keys.push_back(field_of(name, p, ctx));
        }
        // Keyed by the guards too, a packet of another protocol can key as absent, as a
        // printed packet name prints (read_aggregate() settles and merges such rows).
        std::vector<std::string_view> guards;
        for (std::size_t k : a.keys)
            for (std::string_view g : packet_guards(p.fields[k].packet))
                if (std::ranges::find(guards, g) == guards.end()) guards.push_back(g);
        for (std::string_view g : guards)
            if (const std::size_t k = field_of(g, p, ctx); std::ranges::find(a.keys, k) == a.keys.end()) {
                a.keys.push_back(k);
                a.guards++;
            }
        if (opt.has_value()) a.value = field_of(opt.field, p, ctx);
        a.hist = opt.kind == AggKind::Hist    ? PlannedAggregate::Hist::Log2
                 : opt.kind == AggKind::Lhist ? PlannedAggregate::Hist::Linear
                                              : PlannedAggregate::Hist::None;
        a.lmin = opt.lmin;
        a.lmax = opt.lmax;
        a.lstep = opt.lstep;
        std::size_t len = a.stack ? 8 : 0;
        for (std::size_t k : a.keys) len += (bpf_payload_bytes(p.fields[k]) + 7) & ~std::size_t{7};
        if (len > KSURF_AGG_MAX_KEY)
            fail("{}: the key {} takes {} bytes, more than the {} a key may", p.text, fmt::join(opt.by, ","), len, KSURF_AGG_MAX_KEY);
        key_len = std::max(key_len, len);
        p.aggregate = std::move(a);
    }
    for (auto& p : plans) p.aggregate->key_len = static_cast<std::uint16_t>(key_len);
    if (plans.empty()) return;
    // The per-CPU hash is preallocated: every key's value on every possible CPU.
    constexpr std::uint64_t kMaxBytes = 512ull << 20;
    const std::uint64_t ncpus = static_cast<std::uint64_t>(std::max(libbpf_num_possible_cpus(), 1));
    const std::uint64_t value = sizeof(ksurf_agg_value) + 8 * agg_buckets(*plans.front().aggregate);
    const std::uint64_t bytes = (value + key_len) * opt.map_size * ncpus;
    if (bytes > kMaxBytes)
        fail("--map-size {} keys of {} bytes on {} CPUs would take {} MiB of kernel memory (at most {}): lower --map-size or "
             "the histogram's steps",
             opt.map_size, value, ncpus, bytes >> 20, kMaxBytes >> 20);
}

// ---- histograms ----

BucketRange log2_range(std::size_t i) {
    if (i == 0) return {std::nullopt, 0, true};
    if (i == 1) return {0, 1, false};
    const unsigned k = static_cast<unsigned>(i - 2);
    // [2^63, 2^64) fits neither bound's type: printed as [8E, ...).
    if (k >= 63) return {};
    return {std::int64_t{1} << k, std::uint64_t{1} << (k + 1), false};
}

BucketRange log2_ceil_range(std::size_t i) {
    if (i == 0) return {std::nullopt, 0, true};
    if (i == 1) return {0, 2, false};
    const unsigned e = static_cast<unsigned>(i - 1);
    if (e >= 64) return {};
    return {(std::int64_t{1} << (e - 1)) + 1, (std::uint64_t{1} << e) + 1, false};
}

BucketRange linear_range(std::size_t i, std::int64_t lmin, std::int64_t lmax, std::uint64_t lstep) {
    const std::size_t n = linear_buckets(lmin, lmax, lstep);
    if (i == 0) return {std::nullopt, static_cast<std::uint64_t>(lmin), false};
    const std::int64_t lo = lmin + static_cast<std::int64_t>((i - 1) * lstep);
    if (i == n - 1) return {lo, std::nullopt, false};
    return {lo, static_cast<std::uint64_t>(lo + static_cast<std::int64_t>(lstep)), false};
}

// ---- merging and reading ----

void merge_cpus(std::span<const std::uint8_t> values, std::size_t value_size, std::size_t ncpus, bool is_signed, AggRow& row) {
    const std::size_t words = value_size / 8;
    row.buckets.resize(words - sizeof(ksurf_agg_value) / 8);
    std::vector<std::uint64_t> v(words);
    for (std::size_t cpu = 0; cpu < ncpus && (cpu + 1) * value_size <= values.size(); cpu++) {
        std::memcpy(v.data(), values.data() + cpu * value_size, words * 8);
        AggRow one;
        one.count = v[0];
        one.sum = v[1];
        one.min = v[2];
        one.max = v[3];
        one.buckets.assign(v.begin() + 4, v.end());
        merge_row(row, one, is_signed);
    }
}

PacketPresence key_presence(const PlannedProbe& plan) {
    const PlannedAggregate& a = *plan.aggregate;
    PlannedProbe key;
    for (std::size_t i = 0; i < a.keys.size(); i++) {
        PlannedField f = plan.fields[a.keys[i]];
        f.hidden = false;
        f.guard = i >= a.keys.size() - a.guards;
        key.fields.push_back(std::move(f));
    }
    return packet_presence(key);
}

void merge_row(AggRow& into, const AggRow& row, bool is_signed) {
    const auto less = [is_signed](std::uint64_t a, std::uint64_t b) {
        return is_signed ? static_cast<std::int64_t>(a) < static_cast<std::int64_t>(b) : a < b;
    };
    if (!row.count) return;
    if (!into.count || less(row.min, into.min)) into.min = row.min;
    if (!into.count || less(into.max, row.max)) into.max = row.max;
    into.count += row.count;
    into.sum += row.sum;
    into.buckets.resize(std::max(into.buckets.size(), row.buckets.size()));
    for (std::size_t b = 0; b < row.buckets.size(); b++) into.buckets[b] += row.buckets[b];
}

std::string key_id(const AggRow& row) {
    std::string id;
    for (const auto& f : row.key) {
        id += static_cast<char>('0' + f.value.v.index());
        std::visit(
            [&](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::string>) id += v;
                else if constexpr (!std::is_same_v<T, Absent>) id += std::to_string(v);
            },
            f.value.v);
        id += '\0';
    }
    for (const auto& frame : row.stack) id += frame + '\n';
    return id;
}

double sort_value(const AggTable& t, const AggRow& row) {
    const auto num = [&](std::uint64_t v) {
        return t.value_signed ? static_cast<double>(static_cast<std::int64_t>(v)) : static_cast<double>(v);
    };
    switch (t.kind) {
    case AggKind::Sum: return num(row.sum);
    case AggKind::Min: return num(row.min);
    case AggKind::Max: return num(row.max);
    case AggKind::Avg: return mean(row, t.value_signed);
    default: return static_cast<double>(row.count);
    }
}

void rank(AggTable& t, std::size_t top) {
    t.keys = t.rows.size();
    std::ranges::stable_sort(t.rows, [&](const AggRow& a, const AggRow& b) { return sort_value(t, a) > sort_value(t, b); });
    if (top && t.rows.size() > top) t.rows.resize(top);
}

AggTable agg_table(const AggregateOptions& opt, const PlannedProbe& plan) {
    const PlannedAggregate& a = *plan.aggregate;
    AggTable t;
    t.kind = *opt.kind;
    t.field = opt.field;
    t.by = opt.by;
    t.value_signed = a.value && plan.fields[*a.value].fetch.is_signed;
    t.lmin = opt.lmin;
    t.lmax = opt.lmax;
    t.lstep = opt.lstep;
    t.folded = opt.folded;
    t.map_size = opt.map_size;
    t.ts_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    return t;
}

AggTable read_aggregate(const BpfAggregateMaps& maps, const AggregateOptions& opt, const PlannedProbe& plan,
                        const Kallsyms* kallsyms) {
    const PlannedAggregate& a = *plan.aggregate;
    AggTable t = agg_table(opt, plan);
    t.full = maps.full;

    const std::size_t ncpus = static_cast<std::size_t>(std::max(libbpf_num_possible_cpus(), 1));
    const std::size_t value_size = sizeof(ksurf_agg_value) + 8 * agg_buckets(a);
    BpfProgramSpec key_spec;
    key_spec.outputs = maps.key;
    std::vector<std::uint8_t> key(a.key_len), next(a.key_len), values(ncpus * value_size);
    const PacketPresence presence = key_presence(plan);
    std::map<std::string, std::size_t> row_of;  // rows by key_id(), once guards are settled
    const void* prev = nullptr;
    while (bpf_map_get_next_key(maps.values, prev, next.data()) == 0) {
        key = next;
        prev = key.data();
        // A key deleted meanwhile is gone: nothing to add.
        if (bpf_map_lookup_elem(maps.values, key.data(), values.data()) != 0) continue;
        AggRow row;
        merge_cpus(values, value_size, ncpus, t.value_signed, row);
        if (!row.count) continue;
        row.key = decode_bpf(key_spec, key);
        if (a.stack) row.stack = stack_frames(maps.stacks, key, maps.stack_at, kallsyms, opt.folded);
        if (!a.guards) {
            t.rows.push_back(std::move(row));
            continue;
        }
        // Packets of another protocol left their own bytes in the packet names' keys.
        settle_packet_names(presence, row.key);
        const auto [at, fresh] = row_of.try_emplace(key_id(row), t.rows.size());
        if (fresh) t.rows.push_back(std::move(row));
        else merge_row(t.rows[at->second], row, t.value_signed);
    }
    rank(t, 0);
    return t;
}

}  // namespace ksurf
