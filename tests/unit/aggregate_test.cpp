// Histogram buckets by their definition (log2: negatives, 0, then [2^k, 2^(k+1)); linear:
// below, MIN + k STEP, at and above), the per-CPU merge, and the printed shapes.
#include <gtest/gtest.h>

#include <cstring>

#include "ksurf/aggregate.h"
#include "ksurf/bpf_config.h"
#include "ksurf/format.h"

namespace ksurf {
namespace {

TEST(AggregateBuckets, Log2ByDefinition) {
    EXPECT_EQ(log2_bucket(0, false), 1u);
    EXPECT_EQ(log2_bucket(1, false), 2u);  // [1, 2)
    EXPECT_EQ(log2_bucket(2, false), 3u);  // [2, 4)
    EXPECT_EQ(log2_bucket(3, false), 3u);
    EXPECT_EQ(log2_bucket(4, false), 4u);  // [4, 8)
    EXPECT_EQ(log2_bucket(7, false), 4u);
    EXPECT_EQ(log2_bucket(8, false), 5u);  // [8, 16)
    EXPECT_EQ(log2_bucket(1023, false), 11u);
    EXPECT_EQ(log2_bucket(1024, false), 12u);
    EXPECT_EQ(log2_bucket(~0ULL, false), 65u);  // [2^63, 2^64)
    EXPECT_EQ(log2_bucket(static_cast<std::uint64_t>(-1), true), 0u);
    EXPECT_EQ(log2_bucket(static_cast<std::uint64_t>(INT64_MIN), true), 0u);
    EXPECT_EQ(kLog2Buckets, std::size_t{KSURF_AGG_LOG2_BUCKETS});
}

TEST(AggregateBuckets, Log2RangesHoldTheirValues) {
    for (std::size_t i = 2; i < 65; i++) {
        const BucketRange r = log2_range(i);
        ASSERT_TRUE(r.lo && r.hi) << i;
        EXPECT_EQ(log2_bucket(static_cast<std::uint64_t>(*r.lo), false), i);
        EXPECT_EQ(log2_bucket(*r.hi - 1, false), i);
        EXPECT_EQ(log2_bucket(*r.hi, false), i + 1);
    }
    EXPECT_TRUE(log2_range(0).negative);
    EXPECT_EQ(log2_range(1).lo, 0);
    EXPECT_EQ(log2_range(1).hi, 1u);
    EXPECT_EQ(log2_range(4).lo, 4);
    EXPECT_EQ(log2_range(4).hi, 8u);
}

// hist triggers' .log2: ilog2(roundup_pow_of_two(v)) is e, in bucket e + 1.
TEST(AggregateBuckets, KernelLog2RangesHoldTheValuesItRoundsUpToTheirPower) {
    const auto kernel_exponent = [](std::uint64_t v) -> std::size_t {
        return v <= 1 ? 0 : static_cast<std::size_t>(64 - std::countl_zero(v - 1));
    };
    for (std::uint64_t v : {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 8ull, 9ull, 1000ull, 1024ull, 1025ull, (1ull << 62) + 1}) {
        const BucketRange r = log2_ceil_range(kernel_exponent(v) + 1);
        ASSERT_TRUE(r.lo && r.hi) << v;
        EXPECT_LE(*r.lo, static_cast<std::int64_t>(v)) << v;
        EXPECT_LT(v, *r.hi) << v;
    }
    EXPECT_EQ(log2_ceil_range(1).lo, 0);
    EXPECT_EQ(log2_ceil_range(1).hi, 2u);
    EXPECT_EQ(log2_ceil_range(4).lo, 5);  // (4, 8]
    EXPECT_EQ(log2_ceil_range(4).hi, 9u);
    AggTable t;
    t.kind = AggKind::Hist;
    t.ceil_log2 = true;
    t.bounds = false;
    AggRow r;
    r.count = 4;
    r.sum = 2060;
    r.buckets.assign(kLog2Buckets, 0);
    r.buckets[1] = 1;
    r.buckets[12] = 3;  // (1K, 2K]
    t.rows.push_back(r);
    const std::string text = format_aggregate(t);
    EXPECT_NE(text.find("count 4, avg 515\n"), std::string::npos) << text;
    EXPECT_NE(text.find("[0, 1]            1 |@@@@@@@@@@@@@"), std::string::npos) << text;
    EXPECT_NE(text.find("(1K, 2K]          3 |@@@@"), std::string::npos) << text;
    // Integer values of (1K, 2K] are le 2K.
    EXPECT_NE(format_openmetrics(t).find("{le=\"2048.0\"} 4\n"), std::string::npos) << format_openmetrics(t);
}

TEST(AggregateBuckets, LinearByDefinition) {
    // [0, 100) in steps of 10: below, ten steps, at and above.
    EXPECT_EQ(linear_buckets(0, 100, 10), 12u);
    EXPECT_EQ(linear_bucket(static_cast<std::uint64_t>(-5), true, 0, 100, 10), 0u);
    EXPECT_EQ(linear_bucket(0, false, 0, 100, 10), 1u);
    EXPECT_EQ(linear_bucket(9, false, 0, 100, 10), 1u);
    EXPECT_EQ(linear_bucket(10, false, 0, 100, 10), 2u);
    EXPECT_EQ(linear_bucket(99, false, 0, 100, 10), 10u);
    EXPECT_EQ(linear_bucket(100, false, 0, 100, 10), 11u);
    EXPECT_EQ(linear_bucket(~0ULL, false, 0, 100, 10), 11u);
    // Negative bounds, signed values.
    EXPECT_EQ(linear_bucket(static_cast<std::uint64_t>(-11), true, -10, 10, 5), 0u);
    EXPECT_EQ(linear_bucket(static_cast<std::uint64_t>(-10), true, -10, 10, 5), 1u);
    EXPECT_EQ(linear_bucket(static_cast<std::uint64_t>(-1), true, -10, 10, 5), 2u);
    EXPECT_EQ(linear_bucket(0, true, -10, 10, 5), 3u);
    const BucketRange r = linear_range(2, -10, 10, 5);
    EXPECT_EQ(r.lo, -5);
    EXPECT_EQ(r.hi, 0u);
    EXPECT_FALSE(linear_range(0, -10, 10, 5).lo);
    EXPECT_FALSE(linear_range(5, -10, 10, 5).hi);
}

TEST(AggregateOptions, LhistIsChecked) {
    AggregateOptions o;
    parse_lhist("len:0:1000:10", o);
    EXPECT_EQ(o.field, "len");
    EXPECT_EQ(o.lmin, 0);
    EXPECT_EQ(o.lmax, 1000);
    EXPECT_EQ(o.lstep, 10u);
    for (const char* bad : {"len:0:10", "len:10:0:1", "len:0:10:0", ":0:10:1", "len:0:100000:1", "len:a:10:1"}) {
        AggregateOptions x;
        EXPECT_THROW(parse_lhist(bad, x), std::exception) << bad;
    }
    AggregateOptions twice;
    set_aggregation(twice, AggKind::Count, "");
    EXPECT_THROW(set_aggregation(twice, AggKind::Sum, "x"), std::exception);
}

// Two CPUs' values of one key: counts, sums and buckets add; min and max skip a CPU that
// never saw the key.
TEST(AggregateMerge, AddsCpusAndSkipsIdleOnesForMinMax) {
    const std::size_t nb = 3, size = sizeof(ksurf_agg_value) + 8 * nb;
    std::vector<std::uint64_t> cpu{
        2, 10, 3, 7, 1, 1, 0,                                    // CPU 0
        0, 0, 0, 0, 0, 0, 0,                                     // CPU 1: idle
        1, static_cast<std::uint64_t>(-4), static_cast<std::uint64_t>(-4), static_cast<std::uint64_t>(-4), 1, 0, 0,  // CPU 2
    };
    std::vector<std::uint8_t> bytes(cpu.size() * 8);
    std::memcpy(bytes.data(), cpu.data(), bytes.size());
    AggRow row;
    merge_cpus(bytes, size, 3, true, row);
    EXPECT_EQ(row.count, 3u);
    EXPECT_EQ(static_cast<std::int64_t>(row.sum), 6);
    EXPECT_EQ(static_cast<std::int64_t>(row.min), -4);
    EXPECT_EQ(static_cast<std::int64_t>(row.max), 7);
    EXPECT_EQ(row.buckets, (std::vector<std::uint64_t>{2, 1, 0}));
    AggRow unsigned_row;
    merge_cpus(bytes, size, 3, false, unsigned_row);
    EXPECT_EQ(unsigned_row.min, 3u);  // -4 is the largest unsigned value
}

TEST(AggregateFormat, TopKeepsTheLargest) {
    AggTable t;
    t.kind = AggKind::Sum;
    t.field = "v";
    t.by = {"k"};
    t.value_signed = true;
    for (std::int64_t v : {5, -3, 40, 7}) {
        AggRow r;
        r.count = 1;
        r.sum = static_cast<std::uint64_t>(v);
        r.key.push_back({"k", {v, Display::Decimal}});
        t.rows.push_back(r);
    }
    rank(t, 2);
    ASSERT_EQ(t.rows.size(), 2u);
    EXPECT_EQ(t.keys, 4u);
    EXPECT_EQ(static_cast<std::int64_t>(t.rows[0].sum), 40);
    EXPECT_EQ(static_cast<std::int64_t>(t.rows[1].sum), 7);
    const std::string text = format_aggregate(t);
    EXPECT_NE(text.find("sum v by k (top 2 of 4 keys)\nk   SUM\n40   40\n7     7\n"), std::string::npos) << text;
}

TEST(AggregateFormat, LatencyBoundsInTimeUnits) {
    AggTable t;
    t.kind = AggKind::Hist;
    t.unit = "ns";
    AggRow r;
    r.count = 3;
    r.buckets.assign(kLog2Buckets, 0);
    r.buckets[log2_bucket(20'000'000, false)] = 3;  // 20 ms: [16.8ms, 33.6ms)
    t.rows.push_back(r);
    const std::string text = format_aggregate(t);
    EXPECT_NE(text.find("[16.8ms, 33.6ms)        3 |@@@@"), std::string::npos) << text;
}

}  // namespace
}  // namespace ksurf
