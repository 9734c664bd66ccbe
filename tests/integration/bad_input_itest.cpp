// Malformed and hostile probe texts through the real binary: each one ends the run with
// exit status 1 (not a signal, not a sanitizer report) and one error line naming the
// problem, or that line plus the source and caret lines the parser renders. Nothing the
// user typed reaches the terminal raw: control and non-ASCII bytes come back escaped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "process.h"

namespace ksurf::test {
namespace {

std::string repeat(std::string_view s, std::size_t n) {
    std::string r;
    for (std::size_t i = 0; i < n; i++) r += s;
    return r;
}

struct Case {
    const char* name;
    std::string probe;
    std::string error;     // a substring of the first line
    bool in_file = false;  // through -f: argv cannot carry megabytes
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const std::string kExec = "e sched/sched_process_exec";

std::vector<Case> cases() {
    return {
        {"Empty", "", "expected probe kind 'p', 'r', 'e', 'P' or 'R', found end of input"},
        {"OnlySpaces", "     ", "expected probe kind 'p', 'r', 'e', 'P' or 'R', found end of input"},
        {"BadKind", "x vfs_read", "unknown probe kind 'x'"},
        {"KindAlone", "p", "expected function name, found end of input"},
        {"ArgumentAsTarget", "p %9", "expected function name, found '%'"},
        {"ArgumentOutOfRange", "p vfs_read x=%9", "argument index 9 out of range (%0..%5)"},
        {"BadFormatPrefix", "p vfs_read x=Z%0", "expected '->', '.', '[' or whitespace after field 'x', found '%'"},
        {"DoubleFormatPrefix", "p vfs_read x=SS%0", "after field 'x', found '%'"},
        {"DuplicateField", "p vfs_read x=%0 x=%1", "duplicate field name 'x'"},
        {"RetvalAtEntry", "p vfs_read x=$retval", "$retval is only available in return probes ('r')"},
        {"ReturnWithOffset", "r vfs_read+4", "return probes take no offset"},
        {"EmptyFilter", "p vfs_read f:", "empty filter"},
        {"TrailingJunkInFilter", kExec + " f:pid==1 junk", "expected '&&', '||' or the end of the filter, found 'j'"},
        {"DanglingArrow", "p vfs_read x=%0->", "expected member name after '->', found end of input"},
        {"TracepointWithoutEvent", "e sched", "expected '/' after tracepoint subsystem 'sched'"},
        {"UnterminatedDoubleQuote", kExec + " f:comm==\"abc", "unterminated string"},
        {"UnterminatedSingleQuote", kExec + " f:comm=='abc", "unterminated string"},
        // numbers
        {"OffsetOver64Bits", "p vfs_read+99999999999999999999", "number '99999999999999999999' does not fit in 64 bits"},
        {"IndexOver64Bits", "p vfs_read x=%0[18446744073709551616]", "does not fit in 64 bits"},
        {"LiteralIsTwoTo64", kExec + " f:pid==18446744073709551616", "integer '18446744073709551616' does not fit in 64 bits"},
        {"LiteralBelowInt64", kExec + " f:pid==-9223372036854775809", "integer '-9223372036854775809' does not fit in 64 bits"},
        {"LiteralOutOfFieldRange", kExec + " f:pid==18446744073709551615", "is out of range: 'pid' is pid_t"},
        // names the kernel does not have
        {"UnknownFunction", "p no_such_function_xyz", "function 'no_such_function_xyz' not found in BTF"},
        {"UnknownMember", "p vfs_read x=%0->no_such_member", "struct file has no member 'no_such_member'"},
        {"UnknownStruct", "p vfs_read x=(struct no_such_struct *)%0", "unknown type 'struct no_such_struct *'"},
        {"UnknownTracepointField", kExec + " x=nosuch", "sched/sched_process_exec has no field 'nosuch'"},
        {"UnknownPacketHeader", "p vfs_read x=@(struct nohdr *)%0", "unknown packet header 'struct nohdr *'"},
        // nesting and size
        {"DeepParentheses", "p vfs_read x=" + repeat("(", 1000) + "%0", "nested deeper than 32 levels"},
        {"DeepCasts", "p vfs_read x=" + repeat("(struct file *)", 200) + "%0", "nested deeper than 32 levels"},
        {"DeepFilter", kExec + " f:" + repeat("(", 1000) + "pid==1" + repeat(")", 1000), "nested deeper than 32 levels"},
        {"ManyNots", kExec + " f:" + repeat("!", 1000) + "pid==1", "nested deeper than 32 levels"},
        {"LongChain", "p vfs_read x=%0" + repeat("->f_path", 100), "chain longer than 64 members and indexes"},
        {"TenThousandParentheses", "p vfs_read x=" + repeat("(", 10000) + "%0", "longer than 4096 characters"},
        {"OneMegabyteLine", "p vfs_read x=" + std::string(1 << 20, 'a'), "longer than 4096 characters", true},
        // bytes a terminal would act on
        {"NonUtf8", "p vfs_read x=\xff\xfe", "non-ASCII byte 0xff at offset 13"},
        {"EscapeSequence", "p vfs_read\x1b[2J", "non-printable byte 0x1b at offset 10"},
        {"NulInFile", kExec + "\np vfs_read x=%0" + std::string(1, '\0'), ":2: non-printable byte 0x00 at offset 15", true},
        {"NonAsciiInAQuotedLiteral", kExec + " f:pid==\"\xff\xfe\"", "'pid' is pid_t, a number; \"\\xff\\xfe\" is not one"},
    };
}

class BadInput : public testing::TestWithParam<Case> {};

// Whether TEXT is only printable ASCII and newlines.
bool printable_lines(const std::string& text) {
    for (unsigned char c : text)
        if (c != '\n' && (c < 0x20 || c >= 0x7f)) return false;
    return true;
}

TEST_P(BadInput, OneErrorAndStatusOne) {
    const Case& c = GetParam();
    std::vector<std::string> argv{ksurf_bin(), "-d", "1"};
    std::string file;
    if (c.in_file) {
        file = "/tmp/ksurf-bad-input-" + std::to_string(getpid()) + ".probes";
        std::ofstream(file, std::ios::binary) << c.probe;
        argv.insert(argv.end(), {"-f", file});
    } else {
        argv.push_back(c.probe);
    }
    auto r = run(argv);
    if (!file.empty()) unlink(file.c_str());
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_TRUE(printable_lines(r.err)) << r.err;
    const auto l = lines(r.err);
    ASSERT_FALSE(l.empty());
    EXPECT_TRUE(l[0].starts_with("ksurf: ")) << r.err;
    EXPECT_NE(l[0].find(c.error), std::string::npos) << r.err;
    // The error alone, or with the source (cut to a window) and a caret line under it.
    ASSERT_TRUE(l.size() == 1 || l.size() == 3) << r.err;
    if (l.size() == 3) {
        EXPECT_TRUE(l[1].starts_with("  ")) << r.err;
        EXPECT_LE(l[1].size(), 130u) << "the source line is not cut: " << l[1].size() << " columns";
        EXPECT_EQ(l[2].find_first_not_of(' '), l[2].find('^')) << r.err;
        EXPECT_EQ(l[2].find_first_not_of("^", l[2].find('^')), std::string::npos) << r.err;
        EXPECT_LE(l[2].size(), l[1].size() + 1) << "the caret is past the text:\n" << r.err;
    }
}

INSTANTIATE_TEST_SUITE_P(Probes, BadInput, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// The caret still points at the offending token when the line is cut and bytes are escaped.
TEST(BadInputCaret, PointsAtTheTokenInACutEscapedLine) {
    const std::string probe = kExec + " f:comm==\"" + repeat("\xff", 300) + "\" && nosuch==1";
    auto r = run({ksurf_bin(), "-d", "1", probe});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(printable_lines(r.err)) << r.err;
    const auto l = lines(r.err);
    ASSERT_EQ(l.size(), 3u) << r.err;
    EXPECT_TRUE(l[1].starts_with("  ...\\xff\\xff")) << l[1];
    const auto caret = l[2].find('^');
    ASSERT_LT(caret, l[1].size()) << r.err;
    EXPECT_EQ(l[1].substr(caret, 6), "nosuch") << r.err;
    EXPECT_EQ(l[2].substr(caret), "^^^^^^") << r.err;
}

// Files that are not what the option wants: one line naming the file.
TEST(BadInputFiles, NotABtfFile) {
    auto r = run({ksurf_bin(), "--btf", "/etc/passwd", "p vfs_read"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("cannot load BTF from /etc/passwd: "), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Unknown error"), std::string::npos) << r.err;
}

TEST(BadInputFiles, AnEmptyProbeFile) {
    auto r = run({ksurf_bin(), "-f", "/dev/null"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err, "ksurf: no probe given (try 'ksurf --help')\n");
}

}  // namespace
}  // namespace ksurf::test
