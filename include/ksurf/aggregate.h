// Aggregation in the kernel (--count, --sum, --min, --max, --avg, --stats, --hist, --lhist,
// grouped --by keys; `ksurf lat`): what is asked, the keys and value bound to each probe's
// fields, the histograms' buckets, and the table read back from the per-CPU maps and merged
// over CPUs. The kernel side is bpf/agg.bpf.h; printing is src/format/aggregate.cpp.
#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/events.h"
#include "ksurf/plan.h"

namespace ksurf {

struct ResolveContext;
struct BpfAggregateMaps;
class Kallsyms;

enum class AggKind : std::uint8_t { Count, Sum, Min, Max, Avg, Stats, Hist, Lhist };
std::string_view agg_kind_name(AggKind k);  // "count", "lhist", ...

struct AggregateOptions {
    std::optional<AggKind> kind;     // none: events are printed, not aggregated
    std::string field;               // what --sum ... --lhist aggregate
    std::vector<std::string> by;     // the key: fields, comm, pid, tid, cpu, packet names, $retval, stack
    std::int64_t lmin = 0;           // --lhist FIELD:MIN:MAX:STEP
    std::int64_t lmax = 0;
    std::uint64_t lstep = 1;
    double interval_s = 0;           // --interval: print every so often; 0: at exit only
    std::size_t top = 0;             // --top: the N largest keys; 0: all
    bool folded = false;             // --folded: stack keys as one line, outermost first
    std::string metrics_file;        // --metrics-file: OpenMetrics text, replaced each print
    std::uint32_t map_size = 10240;  // --map-size: keys the kernel keeps; later ones are counted
    bool stacks = false;             // -s: the kernel stack ends every key, as `stack` would

    bool active() const { return kind.has_value(); }
    // Throws when an option that shapes an aggregation is given without one.
    void check() const;
    bool has_value() const { return kind && *kind != AggKind::Count; }
    bool stack_key() const;
};

// The one aggregation option KIND with FIELD; throws when another was given.
void set_aggregation(AggregateOptions& opt, AggKind kind, std::string field);
// --lhist FIELD:MIN:MAX:STEP; throws a one-line Error.
void parse_lhist(std::string_view text, AggregateOptions& opt);
// --by a,b and --count a,b: appended to OPT.by.
void add_keys(std::string_view text, AggregateOptions& opt);

// Binds OPT's keys and value to the fields of every plan (adding hidden fields as filters
// do) and sets its PlannedAggregate, with one key length for the run. Throws a one-line
// Error naming the probe and the key it cannot read.
void plan_aggregate(std::vector<PlannedProbe>& plans, const AggregateOptions& opt, const ResolveContext& ctx);

// ---- histograms ----

// log2: bucket 0 holds negative values, 1 holds 0, k + 2 holds [2^k, 2^(k+1)).
inline constexpr std::size_t kLog2Buckets = 66;
inline std::size_t log2_bucket(std::uint64_t v, bool is_signed) {
    if (is_signed && static_cast<std::int64_t>(v) < 0) return 0;
    if (v == 0) return 1;
    return static_cast<std::size_t>(63 - std::countl_zero(v)) + 2;
}
// linear over [lmin, lmax) in steps of lstep: bucket 0 below, 1.. the steps, the last at
// and above the end of the last step.
inline std::size_t linear_buckets(std::int64_t lmin, std::int64_t lmax, std::uint64_t lstep) {
    return (static_cast<std::uint64_t>(lmax - lmin) + lstep - 1) / lstep + 2;
}
inline std::size_t linear_bucket(std::uint64_t v, bool is_signed, std::int64_t lmin, std::int64_t lmax, std::uint64_t lstep) {
    const std::size_t n = linear_buckets(lmin, lmax, lstep);
    if (is_signed ? static_cast<std::int64_t>(v) < lmin : v < static_cast<std::uint64_t>(lmin)) return 0;
    const std::uint64_t steps = (v - static_cast<std::uint64_t>(lmin)) / lstep;
    return steps >= n - 2 ? n - 1 : steps + 1;
}

// Bucket I's values as [lo, hi): lo absent below everything, hi absent for the last.
struct BucketRange {
    std::optional<std::int64_t> lo;  // inclusive; log2's top buckets exceed int64: see hi
    std::optional<std::uint64_t> hi; // exclusive
    bool negative = false;           // log2 bucket 0: every value below 0
};
BucketRange log2_range(std::size_t i);
// The kernel's hist triggers bucket by `.log2`, ilog2(roundup_pow_of_two(v)): exponent e in
// bucket e + 1, which holds [0, 1] for e = 0 and (2^(e-1), 2^e] above; bucket 0 is unused.
BucketRange log2_ceil_range(std::size_t i);
BucketRange linear_range(std::size_t i, std::int64_t lmin, std::int64_t lmax, std::uint64_t lstep);

// ---- the table ----

struct AggRow {
    std::vector<FieldValue> key;
    std::vector<std::string> stack;  // `stack` keys: frames, innermost first
    std::uint64_t count = 0;
    std::uint64_t sum = 0;           // two's complement when the value is signed
    std::uint64_t min = 0;
    std::uint64_t max = 0;
    std::vector<std::uint64_t> buckets;
};

struct AggTable {
    AggKind kind = AggKind::Count;
    std::string field;                 // the value's name ("" for count)
    std::vector<std::string> by;       // key names, `stack` included where it is
    bool value_signed = false;
    std::string unit;                  // of the value: "ns" for latencies, else ""
    std::int64_t lmin = 0, lmax = 0;
    std::uint64_t lstep = 1;
    bool folded = false;
    bool ceil_log2 = false;            // Hist buckets are log2_ceil_range's (tracefs), not log2_range's
    bool bounds = true;                // rows' min and max are known (hist triggers keep neither)
    std::vector<AggRow> rows;          // largest first; --top's first N
    std::size_t keys = 0;              // before --top
    std::uint64_t full = 0;            // hits whose new key found the map full
    std::uint32_t map_size = 0;
    std::uint64_t ts_ns = 0;           // CLOCK_REALTIME of the read
};

// An empty table of OPT over PLAN's values, read now: what a backend's rows go under.
AggTable agg_table(const AggregateOptions& opt, const PlannedProbe& plan);

// The per-CPU values of one key (NCPUS values of VALUE_SIZE bytes each, as the kernel's
// percpu map lookup returns them) added into ROW: counts, sums and buckets add, min and
// max over the CPUs that saw the key.
void merge_cpus(std::span<const std::uint8_t> values, std::size_t value_size, std::size_t ncpus, bool is_signed, AggRow& row);

// Where PLAN's aggregation key holds packet names and their guards, as packet_presence()
// finds them among a probe's printed fields: settle_packet_names() on a row's key makes
// the names of another protocol absent and drops the guards.
PacketPresence key_presence(const PlannedProbe& plan);
// ROW's hits added into INTO: counts, sums and buckets add, min and max of both.
void merge_row(AggRow& into, const AggRow& row, bool is_signed);
// ROW's key as a string that is equal exactly when the printed keys are.
std::string key_id(const AggRow& row);

// The mean of ROW's values.
inline double mean(const AggRow& row, bool is_signed) {
    if (!row.count) return 0;
    const double sum = is_signed ? static_cast<double>(static_cast<std::int64_t>(row.sum)) : static_cast<double>(row.sum);
    return sum / static_cast<double>(row.count);
}

// What a row sorts by for the table's kind: its count, sum, min, max or mean.
double sort_value(const AggTable& t, const AggRow& row);
// Sorts ROWS largest first and keeps --top's N.
void rank(AggTable& t, std::size_t top);

// The table the kernel's maps hold now (cumulative since the start), every key, largest
// first, for PLAN's key and value; KALLSYMS symbolizes stack keys.
AggTable read_aggregate(const BpfAggregateMaps& maps, const AggregateOptions& opt, const PlannedProbe& plan,
                        const Kallsyms* kallsyms);

}  // namespace ksurf
