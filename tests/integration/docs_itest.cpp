// The man page and the bash completion that `ksurf --generate` writes for the build: every
// option --help lists is in both, the page renders without groff warnings, and bash
// completes options and their values from the script.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "process.h"

namespace ksurf::test {
namespace {

const std::vector<std::string> kCommands{"features", "graph", "skb", "list", "lat"};

// The options `ksurf [COMMAND] --help` lists, long names where there is one ("--json"),
// by the heading they are under ("Options", "Options of every command").
std::map<std::string, std::set<std::string>> help_options(const std::string& command) {
    std::vector<std::string> argv{ksurf_bin()};
    if (!command.empty()) argv.push_back(command);
    argv.push_back("--help");
    const Result r = run(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    std::map<std::string, std::set<std::string>> out;
    std::string heading;
    static const std::regex option(R"(^  (-\w|--[\w.-]+)(,(--[\w.-]+))?[ {])");
    for (const auto& l : lines(r.out)) {
        std::smatch m;
        if (!l.empty() && l[0] != ' ' && l.back() == ':') heading = l.substr(0, l.size() - 1);
        else if (heading.starts_with("Options") && std::regex_search(l, m, option))
            out[heading].insert(m[3].matched ? m[3].str() : m[1].str());
    }
    EXPECT_FALSE(out.empty()) << r.out;
    return out;
}

std::string generated(const std::string& kind) {
    const Result r = run({ksurf_bin(), "--generate", kind});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return r.out;
}

// A file holding TEXT, removed with the object.
class TempFile {
public:
    explicit TempFile(const std::string& text) : path_(fmt::format("/tmp/ksurf-docs-{}-{}", getpid(), counter_++)) {
        std::ofstream(path_) << text;
    }
    ~TempFile() { unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    static inline int counter_ = 0;
    std::string path_;
};

// The man page's part from the line starting with FROM to the next line starting with
// UNTIL (or the end).
std::string part(const std::string& page, const std::string& from, const std::string& until) {
    const auto start = page.find("\n" + from);
    if (start == std::string::npos) return "";
    const auto end = page.find("\n" + until, start + 1);
    return page.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string roff_option(const std::string& name) { return "\\fB" + std::regex_replace(name, std::regex("-"), "\\-") + "\\fR"; }

TEST(ManPage, HasEveryOptionOfEveryCommandInItsSection) {
    const std::string page = generated("man");
    for (const char* section : {".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", ".SH COMMANDS",
                                ".SH EXAMPLES", ".SH EXIT STATUS", ".SH SEE ALSO"})
        EXPECT_NE(page.find(std::string("\n") + section + "\n"), std::string::npos) << section;
    const std::string options = part(page, ".SH OPTIONS", ".SH ");
    for (const auto& [heading, names] : help_options(""))
        for (const auto& n : names) EXPECT_NE(options.find(roff_option(n)), std::string::npos) << heading << ": " << n;
    for (const auto& c : kCommands) {
        const std::string section = part(page, ".SS ksurf " + c, ".S");
        ASSERT_FALSE(section.empty()) << c;
        for (const auto& [heading, names] : help_options(c))
            for (const auto& n : names) EXPECT_NE(section.find(roff_option(n)), std::string::npos) << c << ": " << n;
    }
    // Each command's own examples, under it; the exit statuses as the code documents them.
    EXPECT_NE(part(page, ".SS ksurf graph", ".S").find("ksurf graph tcp_v4_rcv \\-\\-where"), std::string::npos);
    EXPECT_NE(part(page, ".SS ksurf skb", ".S").find("ksurf skb \\-\\-pcap"), std::string::npos);
    const std::string status = part(page, ".SH EXIT STATUS", ".SH ");
    EXPECT_NE(status.find("\n  1   ksurf could not do what was asked"), std::string::npos) << status;
    EXPECT_NE(status.find("127 not found, 126 not runnable"), std::string::npos) << status;
}

TEST(ManPage, RendersWithoutWarnings) {
    const TempFile page(generated("man"));
    const Result groff = run({"/usr/bin/groff", "-man", "-Tutf8", "-ww", page.path()});
    EXPECT_EQ(groff.status, 0);
    EXPECT_EQ(groff.err, "") << "groff warns";
    const Result man = run({"/usr/bin/env", "MANWIDTH=80", "man", "-l", page.path()});
    EXPECT_EQ(man.status, 0) << man.err;
    EXPECT_EQ(man.err, "");
    EXPECT_NE(man.out.find("EXIT STATUS"), std::string::npos) << man.out;
}

// The words _ksurf offers for WORDS with the cursor on the last one; the script runs the
// ksurf under test for names.
std::set<std::string> complete(const TempFile& script, const std::vector<std::string>& words) {
    std::string array;
    for (const auto& w : words) array += " '" + std::regex_replace(w, std::regex("'"), "'\\''") + "'";
    const std::string bin = ksurf_bin();
    const Result r = run({"/bin/bash", "-c",
                          fmt::format("PATH={}:$PATH && source {} && COMP_WORDS=({}) && COMP_CWORD={} && _ksurf && "
                                      "printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                                      bin.substr(0, bin.rfind('/')), script.path(), array, words.size() - 1)});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    std::set<std::string> out;
    for (const auto& l : lines(r.out))
        if (!l.empty()) out.insert(l);
    return out;
}

TEST(BashCompletion, CompletesCommandsOptionsAndTheirValues) {
    const TempFile script(generated("bash-completion"));
    const Result registered = run({"/bin/bash", "-c", "source " + script.path() + " && complete -p ksurf"});
    EXPECT_EQ(registered.out, "complete -F _ksurf ksurf\n") << registered.err;

    using Words = std::set<std::string>;
    EXPECT_EQ(complete(script, {"ksurf", "--back"}), Words{"--backend"});
    EXPECT_EQ(complete(script, {"ksurf", "--backend", ""}), (Words{"auto", "bpf", "fentry", "kprobe", "tracefs"}));
    EXPECT_EQ(complete(script, {"ksurf", "graph", "--attach", "k"}), (Words{"kprobe", "kprobe.multi"}));
    EXPECT_EQ(complete(script, {"ksurf", "skb", "--attach", ""}), (Words{"auto", "kprobe", "kprobe.multi"}));
    EXPECT_EQ(complete(script, {"ksurf", "-d", "5", "gr"}), Words{"graph"});
    EXPECT_EQ(complete(script, {"ksurf", "-c", "tru"}).count("true"), 1u);
    // Probe targets and functions, as `ksurf list` names them.
    EXPECT_EQ(complete(script, {"ksurf", "'e sched/sched_proc"}).count("e sched/sched_process_exec"), 1u);
    EXPECT_EQ(complete(script, {"ksurf", "list", "sched/sched_proc"}).count("sched/sched_process_fork"), 1u);
    EXPECT_EQ(complete(script, {"ksurf", "lat", "do_nanosl"}), Words{"do_nanosleep"});

    // Every option --help lists, for its command; the common options for each command too.
    const auto top = help_options("");
    const Words common = top.at("Options of every command");
    auto expect_offered = [&](const std::vector<std::string>& words, const Words& names) {
        const Words offered = complete(script, words);
        for (const auto& n : names)
            EXPECT_TRUE(!n.starts_with("--") || offered.count(n)) << words.at(1) << ": " << n;
        return offered;
    };
    for (const auto& [heading, names] : top) expect_offered({"ksurf", "--"}, names);
    for (const auto& c : kCommands) {
        for (const auto& [heading, names] : help_options(c)) expect_offered({"ksurf", c, "--"}, names);
        // features takes none of them (its --json is its own); tracing's own options are not
        // a command's.
        const Words offered = c == "features" ? complete(script, {"ksurf", c, "--"}) : expect_offered({"ksurf", c, "--"}, common);
        EXPECT_EQ(offered.count("--json"), 1u) << c;
        EXPECT_EQ(offered.count("--buffer-size"), c == "features" ? 0u : 1u) << c;
        EXPECT_EQ(offered.count("--snaplen"), 0u) << c;
    }
}

TEST(Generate, AnotherKindIsOneLine) {
    const Result r = run({ksurf_bin(), "--generate", "zsh"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "ksurf: --generate takes man or bash-completion, not 'zsh'\n");
}

}  // namespace
}  // namespace ksurf::test
