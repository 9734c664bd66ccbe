#include "ksurf/kallsyms.h"

#include <gtest/gtest.h>

#include "ksurf/error.h"

namespace ksurf {
namespace {

// Out of order, with data symbols bounding text ones and a module's static function that
// shares its name with one of vmlinux.
constexpr std::string_view kText =
    "ffffffff81000200 T tcp_v4_rcv\n"
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 t helper\n"
    "ffffffff81000180 D some_data\n"
    "0000000000000000 T hidden_by_kptr_restrict\n"
    "ffffffffc0001000 t helper\t[nf_conntrack]\n"
    "ffffffffc0001040 t other\t[nf_conntrack]\n";

TEST(Kallsyms, SymbolsEndWhereAnySymbolStarts) {
    const auto k = Kallsyms::parse(kText);
    ASSERT_EQ(k.symbols().size(), 5u);
    const KernelSymbol* s = k.at(0xffffffff81000110);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->name, "helper");
    EXPECT_EQ(s->end, 0xffffffff81000180u);  // the data symbol, not tcp_v4_rcv
    EXPECT_EQ(k.at(0xffffffff81000190), nullptr);
    EXPECT_EQ(k.describe(0xffffffff81000110), "helper+0x10/0x80");
    EXPECT_EQ(k.describe(0xffffffffc0001004), "helper+0x4/0x40 [nf_conntrack]");
    EXPECT_EQ(k.describe(0x1234), "0x1234");
}

TEST(Kallsyms, FindByNameAndModule) {
    const auto k = Kallsyms::parse(kText);
    EXPECT_EQ(k.find("helper").size(), 2u);
    auto in_module = k.find("nf_conntrack:helper");
    ASSERT_EQ(in_module.size(), 1u);
    EXPECT_EQ(in_module[0]->addr, 0xffffffffc0001000u);
    EXPECT_TRUE(k.find("hidden_by_kptr_restrict").empty());
}

// Variables asked for are found whatever their type, but not a module's namesake; one not
// in the file reads as 0.
TEST(Kallsyms, VariablesAskedForByName) {
    const auto k = Kallsyms::parse(std::string(kText) + "0000000000021c10 A __preempt_count\n"
                                                        "ffffffffc0002000 d some_data\t[nf_conntrack]\n",
                                   {"some_data", "__preempt_count", "absent"});
    EXPECT_EQ(k.variable("some_data"), 0xffffffff81000180u);
    EXPECT_EQ(k.variable("__preempt_count"), 0x21c10u);
    EXPECT_EQ(k.variable("absent"), 0u);
    EXPECT_EQ(k.variable("tcp_v4_rcv"), 0u);  // not asked for
    EXPECT_EQ(k.symbols().size(), 5u);        // still only text
}

TEST(Kallsyms, LoadFailsWithoutAddresses) {
    EXPECT_THROW(Kallsyms::load("/nonexistent/kallsyms"), Error);
}

}  // namespace
}  // namespace ksurf
