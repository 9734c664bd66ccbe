// Format-file parsing, record decoding and line formatting, on records laid out by hand
// exactly as the kernel writes them.
#include <gtest/gtest.h>

#include <cstring>

#include "formats.h"
#include "ksurf/error.h"
#include "ksurf/events.h"
#include "ksurf/format.h"
#include "ksurf/tracefs.h"

namespace {

using ksurf::test::kExecFormat;
using ksurf::test::kSwitchFormat;

template <typename T>
void put(std::vector<std::uint8_t>& rec, std::size_t off, T v) {
    if (rec.size() < off + sizeof v) rec.resize(off + sizeof v);
    std::memcpy(rec.data() + off, &v, sizeof v);
}

std::string text_of(const std::vector<ksurf::FieldValue>& fields) {
    std::string s;
    for (const auto& f : fields) s += f.name + "=" + ksurf::format_value(f.value) + " ";
    return s;
}


// sys_enter_openat as 6.18 writes it (formats.h): every argument in a long, signed:0.
TEST(TracefsFormat, SyscallArgumentsReadAsTheirOwnType) {
    auto fmt = ksurf::tracefs::parse_format("syscalls", "sys_enter_openat", ksurf::test::kOpenatFormat);
    std::vector<std::uint8_t> rec(48);
    put<std::uint64_t>(rec, 16, 0xffffff9cu);  // AT_FDCWD as the kernel stores it: (unsigned long)(int)-100 truncated
    put<std::uint64_t>(rec, 32, 0x80000u);
    put<std::uint64_t>(rec, 40, 0x1a4u);
    const std::string text = text_of(ksurf::decode_tracepoint(fmt, rec));
    EXPECT_NE(text.find("dfd=-100 "), std::string::npos) << text;
    EXPECT_NE(text.find("flags=524288 "), std::string::npos) << text;
    // A typedef's width only BTF knows: the long as it is.
    EXPECT_EQ(fmt.field("mode")->size, 8u);
    EXPECT_NE(text.find("mode=420 "), std::string::npos) << text;
}

TEST(TracefsFormat, ParsesFieldsAndDynamicStrings) {
    auto fmt = ksurf::tracefs::parse_format("sched", "sched_process_exec", kExecFormat);
    EXPECT_EQ(fmt.id, 365u);
    ASSERT_EQ(fmt.fields.size(), 7u);
    const auto* fn = fmt.field("filename");
    ASSERT_NE(fn, nullptr);
    EXPECT_TRUE(fn->data_loc);
    EXPECT_TRUE(fn->is_string());
    EXPECT_EQ(fn->type, "char[]");
    EXPECT_EQ(fmt.field("pid")->type, "pid_t");
    EXPECT_TRUE(fmt.field("pid")->is_signed);
    EXPECT_TRUE(fmt.has_dynamic());
    EXPECT_EQ(fmt.fixed_size(), 20u);
}

TEST(TracefsFormat, ParsesArraysAndPointers) {
    auto fmt = ksurf::tracefs::parse_format("sched", "sched_switch", kSwitchFormat);
    EXPECT_EQ(fmt.field("prev_comm")->type, "char[16]");
    EXPECT_TRUE(fmt.field("prev_comm")->is_string());
    EXPECT_EQ(fmt.field("ptr")->type, "const void *");
    EXPECT_TRUE(fmt.field("ptr")->is_pointer());
    ASSERT_NE(fmt.field("rel"), nullptr);
    EXPECT_TRUE(fmt.field("rel")->rel_loc);
    EXPECT_FALSE(fmt.field("rel")->data_loc);
    EXPECT_TRUE(fmt.has_dynamic());
}

TEST(TracefsFormat, RejectsFileWithoutFields) {
    EXPECT_THROW(ksurf::tracefs::parse_format("a", "b", "name: b\nID: 1\n"), ksurf::Error);
}

TEST(TracepointRecord, DecodesDataLocStringAndSignedInts) {
    auto fmt = ksurf::tracefs::parse_format("sched", "sched_process_exec", kExecFormat);
    std::vector<std::uint8_t> rec(20);
    const char path[] = "/bin/true";
    put<std::uint32_t>(rec, 8, (sizeof path << 16) | 20);
    put<std::int32_t>(rec, 12, 4242);
    put<std::int32_t>(rec, 16, -1);
    rec.insert(rec.end(), path, path + sizeof path);
    EXPECT_EQ(text_of(ksurf::decode_tracepoint(fmt, rec)), "filename=/bin/true pid=4242 old_pid=-1 ");
}

TEST(TracepointRecord, NeverReadsPastTheRecord) {
    auto fmt = ksurf::tracefs::parse_format("sched", "sched_process_exec", kExecFormat);
    std::vector<std::uint8_t> rec(20, 'x');
    put<std::uint32_t>(rec, 8, (200u << 16) | 18);  // claims 200 bytes at offset 18
    auto fields = ksurf::decode_tracepoint(fmt, rec);
    ASSERT_EQ(fields.size(), 3u);
    EXPECT_EQ(std::get<std::string>(fields[0].value.v), "xx");  // clipped at the record's end
    rec.resize(14);  // pid and old_pid cut off; the string now starts past the end
    EXPECT_TRUE(ksurf::decode_tracepoint(fmt, rec).empty());
}

TEST(TracepointRecord, DecodesCharArrayAndPointerAsHex) {
    auto fmt = ksurf::tracefs::parse_format("sched", "sched_switch", kSwitchFormat);
    std::vector<std::uint8_t> rec(48);
    std::memcpy(rec.data() + 8, "swapper/1", 10);
    put<std::int32_t>(rec, 24, 0);
    put<std::int32_t>(rec, 28, 120);
    put<std::int64_t>(rec, 32, 2);
    put<std::uint64_t>(rec, 40, 0xffff888012345678ull);
    EXPECT_EQ(text_of(ksurf::decode_tracepoint(fmt, rec)),
              "prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=2 ptr=0xffff888012345678 ");
}

// A reader decodes every record into the same vector: what the last record left there,
// longer strings, other fields, other value types, never shows through.
TEST(TracepointRecord, DecodingIntoAReusedVectorLeavesOnlyTheNewRecord) {
    auto exec = ksurf::tracefs::parse_format("sched", "sched_process_exec", kExecFormat);
    auto sw = ksurf::tracefs::parse_format("sched", "sched_switch", kSwitchFormat);
    std::vector<std::uint8_t> switch_rec(48);
    std::memcpy(switch_rec.data() + 8, "a-much-longer-c", 16);
    put<std::int32_t>(switch_rec, 24, 7);
    std::vector<std::uint8_t> exec_rec(20);
    const char path[] = "/x";
    put<std::uint32_t>(exec_rec, 8, (sizeof path << 16) | 20);
    put<std::int32_t>(exec_rec, 12, 1);
    put<std::int32_t>(exec_rec, 16, -2);
    exec_rec.insert(exec_rec.end(), path, path + sizeof path);

    std::vector<ksurf::FieldValue> fields;
    ksurf::decode_tracepoint(sw, switch_rec, fields);
    ASSERT_EQ(fields.size(), 5u);
    ksurf::decode_tracepoint(exec, exec_rec, fields);
    EXPECT_EQ(text_of(fields), "filename=/x pid=1 old_pid=-2 ");
    ksurf::decode_tracepoint(sw, switch_rec, fields);
    EXPECT_EQ(text_of(fields), text_of(ksurf::decode_tracepoint(sw, switch_rec)));
    exec_rec.resize(14);  // nothing decodable: the vector ends up empty
    ksurf::decode_tracepoint(exec, exec_rec, fields);
    EXPECT_TRUE(fields.empty());
}

ksurf::Event event(std::uint64_t ts, std::uint32_t pid, std::uint32_t tgid, std::uint32_t cpu, std::string comm,
                   std::string probe, std::vector<ksurf::FieldValue> fields) {
    ksurf::Event ev;
    ev.ts_ns = ts;
    ev.pid = pid;
    ev.tgid = tgid;
    ev.cpu = cpu;
    ev.comm = std::move(comm);
    ev.probe = std::move(probe);
    ev.fields = std::move(fields);
    return ev;
}

TEST(Format, TextLineLooksLikeFtrace) {
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* mem = open_memstream(&buf, &len);
    auto f = ksurf::text_formatter(mem, mem);
    ksurf::Event ev = event(1234567890123ull, 42, 40, 1, "bash", "sched_process_exec",
                            {{"filename", {std::string("/bin/true"), ksurf::Display::String}},
                             {"ip_src", {std::uint64_t{0x0100007f}, ksurf::Display::IPv4}},
                             {"flags", {std::uint64_t{255}, ksurf::Display::Hex}}});
    f->write(ev);
    ev.fields.clear();
    ev.stack = {"do_sys_openat2+0x0/0x90", "do_syscall_64+0x3a/0xb0"};
    f->write(ev);
    f->summary({1, 2, 3});
    std::fclose(mem);
    EXPECT_EQ(std::string(buf, len),
              "bash-42 [001] 1234.567890: sched_process_exec: filename=/bin/true ip_src=127.0.0.1 flags=0xff\n"
              "bash-42 [001] 1234.567890: sched_process_exec:\n"
              " => do_sys_openat2+0x0/0x90\n"
              " => do_syscall_64+0x3a/0xb0\n"
              "1 events, 2 filtered, 3 dropped\n");
    free(buf);
}

TEST(Format, JsonLinesKeepNumbersNumeric) {
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* mem = open_memstream(&buf, &len);
    auto f = ksurf::json_formatter(mem);
    auto ev = event(2000000000ull, 7, 7, 0, "a\x01", "ev", {{"n", {std::int64_t{-5}}}, {"s", {std::string("x\"y")}}});
    f->write(ev);
    ev.stack = {"f+0x1/0x2"};
    f->write(ev);
    std::fclose(mem);
    EXPECT_EQ(std::string(buf, len),
              R"({"ts":2.0,"comm":"a\u0001","pid":7,"tgid":7,"cpu":0,"probe":"ev","fields":{"n":-5,"s":"x\"y"}})"
              "\n"
              R"({"ts":2.0,"comm":"a\u0001","pid":7,"tgid":7,"cpu":0,"probe":"ev","fields":{"n":-5,"s":"x\"y"},"stack":["f+0x1/0x2"]})"
              "\n");
    free(buf);
}

}  // namespace
