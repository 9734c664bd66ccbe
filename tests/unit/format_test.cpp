// The text and JSON line formats, byte for byte, from their definitions: ftrace's line
// with printable() strings; JSON as nlohmann's dump(-1, ' ', false, replace) printed it
// (numbers for decimal values, Grisu2 timestamps, U+FFFD for ill-formed UTF-8). Then how
// output leaves the buffer: on flush(), past the high-water mark, and when it cannot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "error_of.h"
#include "ksurf/format.h"

namespace {

using ksurf::Display;
using ksurf::Event;
using ksurf::FieldValue;
using ksurf::Value;

Event event(std::uint64_t ts_ns, std::vector<FieldValue> fields = {}, std::vector<std::string> stack = {}) {
    Event ev;
    ev.ts_ns = ts_ns;
    ev.pid = 42;
    ev.tgid = 40;
    ev.cpu = 1;
    ev.comm = "bash";
    ev.probe = "ev";
    ev.fields = std::move(fields);
    ev.stack = std::move(stack);
    return ev;
}

Value i64(std::int64_t v, Display d = Display::Decimal) { return {v, d}; }
Value u64(std::uint64_t v, Display d = Display::Decimal) { return {v, d}; }
Value str(std::string v, Display d = Display::String) { return {std::move(v), d}; }

// What the formatter writes for EV and then the summary, to a memory stream.
std::string formatted(bool json, const Event& ev, const ksurf::RunStats& stats = {1, 2, 3}) {
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* mem = open_memstream(&buf, &len);
    {
        auto f = json ? ksurf::json_formatter(mem) : ksurf::text_formatter(mem, mem);
        f->write(ev);
        f->summary(stats);
    }
    std::fclose(mem);
    std::string out(buf, len);
    free(buf);
    return out;
}

struct Case {
    const char* what;
    Event ev;
    std::string text;  // the event's line(s), without the summary
    std::string json;
};

std::vector<Case> cases() {
    constexpr auto kMaxU = std::numeric_limits<std::uint64_t>::max();
    constexpr auto kMinI = std::numeric_limits<std::int64_t>::min();
    return {
        {"integers", event(1234567890123, {{"neg", i64(-5)}, {"min", i64(kMinI)}, {"max", u64(kMaxU)}, {"zero", u64(0)}}),
         "bash-42 [001] 1234.567890: ev: neg=-5 min=-9223372036854775808 max=18446744073709551615 zero=0\n",
         R"({"ts":1234.567890123,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{"neg":-5,)"
         R"("min":-9223372036854775808,"max":18446744073709551615,"zero":0}})"
         "\n"},
        {"hex: the bits of signed values too",
         event(5000, {{"a", u64(0, Display::Hex)}, {"b", u64(255, Display::Hex)}, {"c", i64(-1, Display::Hex)}}),
         "bash-42 [001] 0.000005: ev: a=0x0 b=0xff c=0xffffffffffffffff\n",
         R"({"ts":5e-06,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{"a":"0x0","b":"0xff",)"
         R"("c":"0xffffffffffffffff"}})"
         "\n"},
        {"ipv4: the low four bytes in network order",
         event(1, {{"ip_a", u64(0x0100007f, Display::IPv4)},
                   {"ip_b", u64(0xffffffff, Display::IPv4)},
                   {"ip_c", u64(0x123456780a00010aull, Display::IPv4)},
                   {"ip_d", u64(0, Display::IPv4)}}),
         "bash-42 [001] 0.000000: ev: ip_a=127.0.0.1 ip_b=255.255.255.255 ip_c=10.1.0.10 ip_d=0.0.0.0\n",
         R"({"ts":1e-09,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{"ip_a":"127.0.0.1",)"
         R"("ip_b":"255.255.255.255","ip_c":"10.1.0.10","ip_d":"0.0.0.0"}})"
         "\n"},
        {"other displays of integers are decimal text", event(0, {{"s", i64(-7, Display::String)}, {"v6", u64(9, Display::IPv6)}}),
         "bash-42 [001] 0.000000: ev: s=-7 v6=9\n",
         R"({"ts":0.0,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{"s":"-7","v6":"9"}})"
         "\n"},
        {"no fields, an empty string, a stack", event(2000000000, {}, {"do_sys_openat2+0x0/0x90", "do_syscall_64+0x3a/0xb0"}),
         "bash-42 [001] 2.000000: ev:\n => do_sys_openat2+0x0/0x90\n => do_syscall_64+0x3a/0xb0\n",
         R"({"ts":2.0,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{},)"
         R"("stack":["do_sys_openat2+0x0/0x90","do_syscall_64+0x3a/0xb0"]})"
         "\n"},
        {"an empty string", event(3000000000, {{"e", str("")}, {"d", str("", Display::Decimal)}}),
         "bash-42 [001] 3.000000: ev: e= d=\n",
         R"({"ts":3.0,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{"e":"","d":""}})"
         "\n"},
        // UINT64_MAX ns: seconds past 32 bits; micros are truncated, not rounded.
        {"the largest timestamp", event(std::numeric_limits<std::uint64_t>::max()),
         "bash-42 [001] 18446744073.709551: ev:\n",
         R"({"ts":18446744073.709553,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{}})"
         "\n"},
        // Grisu2 is not always the shortest round trip: 52.613035 reads back as this double.
        {"ts as nlohmann's Grisu2 prints it", event(52613035000), "bash-42 [001] 52.613035: ev:\n",
         R"({"ts":52.613035000000004,"comm":"bash","pid":42,"tgid":40,"cpu":1,"probe":"ev","fields":{}})"
         "\n"},
        // printable() in text; in JSON, one escaping: JSON's own, decoding to the bytes.
        {"display strings", event(7, {{"s", str("a\"b\\c\x01\n\x7f\xc3\xa9 ")}}),
         "bash-42 [001] 0.000000: ev: s=a\"b\\c\\x01\\x0a\\x7f\\xc3\\xa9 \n",
         "{\"ts\":7e-09,\"comm\":\"bash\",\"pid\":42,\"tgid\":40,\"cpu\":1,\"probe\":\"ev\",\"fields\":{\"s\":"
         "\"a\\\"b\\\\c\\u0001\\n\x7f\xc3\xa9 \"}}\n"},
        // Decimal-display strings go to JSON as they are: control bytes escaped, DEL and
        // UTF-8 (é, €, U+1F600) raw.
        {"json escapes", event(1, {{"d", str("\b\t\n\f\r\x01\x1f\"\\\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", Display::Decimal)}}),
         "bash-42 [001] 0.000000: ev: d=\\x08\\x09\\x0a\\x0c\\x0d\\x01\\x1f\"\\\\x7f\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80\n",
         "{\"ts\":1e-09,\"comm\":\"bash\",\"pid\":42,\"tgid\":40,\"cpu\":1,\"probe\":\"ev\",\"fields\":{\"d\":"
         "\"\\b\\t\\n\\f\\r\\u0001\\u001f\\\"\\\\\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}}\n"},
        // One U+FFFD per ill-formed sequence: a stray continuation byte; a sequence cut
        // short by a byte that starts the next; one cut by the end; overlong C0; ED A0
        // (a surrogate: ED takes only 80..9F, then A0 and 80 are strays); beyond U+10FFFF.
        {"invalid utf-8",
         event(1, {{"d", str("\x80x\xe2\x82y\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80z\xe2\x82", Display::Decimal)}}),
         "bash-42 [001] 0.000000: ev: d=\\x80x\\xe2\\x82y\\xc0\\xaf\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80z\\xe2\\x82\n",
         "{\"ts\":1e-09,\"comm\":\"bash\",\"pid\":42,\"tgid\":40,\"cpu\":1,\"probe\":\"ev\",\"fields\":{\"d\":\""
         "\xEF\xBF\xBDx\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\xEF\xBF\xBD\"}}\n"},
    };
}

TEST(FormatLines, Text) {
    for (const auto& c : cases())
        EXPECT_EQ(formatted(false, c.ev), c.text + "1 events, 2 filtered, 3 dropped\n") << c.what;
}

TEST(FormatLines, Json) {
    for (const auto& c : cases())
        EXPECT_EQ(formatted(true, c.ev), c.json + "{\"summary\":{\"events\":1,\"filtered\":2,\"dropped\":3}}\n") << c.what;
}

// A run that did not count rejections says nothing of them, rather than 0.
TEST(FormatLines, SummaryWithoutAFilteredCount) {
    const ksurf::RunStats uncounted{1, std::nullopt, 3};
    EXPECT_EQ(formatted(false, event(0), uncounted), "bash-42 [001] 0.000000: ev:\n1 events, 3 dropped\n");
    EXPECT_EQ(formatted(true, event(0), uncounted),
              "{\"ts\":0.0,\"comm\":\"bash\",\"pid\":42,\"tgid\":40,\"cpu\":1,\"probe\":\"ev\",\"fields\":{}}\n"
              "{\"summary\":{\"events\":1,\"dropped\":3}}\n");
}

// comm is user-controlled: printable() in text, escaped in JSON; the cpu field is three
// digits at least, not at most.
TEST(FormatLines, CommAndCpu) {
    Event ev = event(1000000000);
    ev.comm = "a\x1b[2J\xff";
    ev.cpu = 1234;
    ev.pid = ev.tgid = 4294967295u;
    EXPECT_EQ(formatted(false, ev), "a\\x1b[2J\\xff-4294967295 [1234] 1.000000: ev:\n1 events, 2 filtered, 3 dropped\n");
    EXPECT_EQ(formatted(true, ev),
              "{\"ts\":1.0,\"comm\":\"a\\u001b[2J\xEF\xBF\xBD\",\"pid\":4294967295,\"tgid\":4294967295,\"cpu\":1234,"
              "\"probe\":\"ev\",\"fields\":{}}\n{\"summary\":{\"events\":1,\"filtered\":2,\"dropped\":3}}\n");
}

TEST(FormatLines, FormatValueIsTheTextFormsValue) {
    EXPECT_EQ(ksurf::format_value(u64(0x0100007f, Display::IPv4)), "127.0.0.1");
    EXPECT_EQ(ksurf::format_value(i64(-1, Display::Hex)), "0xffffffffffffffff");
    EXPECT_EQ(ksurf::format_value(str("a\x01")), "a\\x01");
    EXPECT_EQ(ksurf::format_value(i64(-3)), "-3");
}

// ---- where the output goes ----

// The text of FILE from its start.
std::string contents(std::FILE* file) {
    std::fflush(file);
    std::rewind(file);
    std::string s;
    char chunk[65536];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, file)) > 0;) s.append(chunk, n);
    return s;
}

TEST(FormatOutput, NothingIsWrittenBeforeFlush) {
    std::FILE* file = std::tmpfile();
    auto f = ksurf::text_formatter(file, file);
    f->write(event(1000));
    EXPECT_EQ(contents(file), "");
    EXPECT_TRUE(f->flush());
    EXPECT_EQ(contents(file), "bash-42 [001] 0.000001: ev:\n");
    std::fclose(file);
}

// Past the high-water mark the buffer is written out on its own; an event larger than the
// whole buffer still arrives whole.
TEST(FormatOutput, LargeOutputArrivesWhole) {
    std::FILE* file = std::tmpfile();
    auto f = ksurf::text_formatter(file, file);
    const std::string big(1 << 20, 'x');
    std::string expected;
    for (int i = 0; i < 20000; i++) {
        const Event ev = event(1000, {{"n", i64(i)}, {"s", str(i == 10000 ? big : "y")}});
        f->write(ev);
        expected += "bash-42 [001] 0.000001: ev: n=" + std::to_string(i) + " s=" + (i == 10000 ? big : "y") + "\n";
    }
    const std::size_t before_flush = contents(file).size();
    EXPECT_GT(before_flush, 0u);
    EXPECT_LT(before_flush, expected.size());
    EXPECT_TRUE(f->flush());
    EXPECT_EQ(contents(file), expected);
    std::fclose(file);
}

// `ksurf ... | head`: flush() says the reader is gone, and nothing throws.
TEST(FormatOutput, AClosedPipeEndsOutputQuietly) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    close(fds[0]);
    auto* old = std::signal(SIGPIPE, SIG_IGN);
    std::FILE* out = fdopen(fds[1], "w");
    std::FILE* summary = std::tmpfile();
    for (bool json : {false, true}) {
        auto f = json ? ksurf::json_formatter(out) : ksurf::text_formatter(out, summary);
        f->write(event(1000));
        EXPECT_FALSE(f->flush());
        f->write(event(2000));
        EXPECT_FALSE(f->flush());
        EXPECT_NO_THROW(f->summary({1, 0, 0}));
    }
    EXPECT_EQ(contents(summary), "1 events, 0 filtered, 0 dropped\n");
    std::fclose(summary);
    std::fclose(out);
    std::signal(SIGPIPE, old);
}

TEST(FormatOutput, OtherWriteErrorsAreReported) {
    std::FILE* full = std::fopen("/dev/full", "w");
    ASSERT_NE(full, nullptr);
    auto f = ksurf::json_formatter(full);
    f->write(event(1000));
    EXPECT_EQ(ksurf::test::error_of([&] { f->flush(); }), "writing the output: No space left on device (ENOSPC)");
    std::fclose(full);
}

}  // namespace
