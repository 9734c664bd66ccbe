// The man page and the bash completion, written from the CLI11 tree that parses the
// command line and prints --help: an option added there is documented and completed.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cctype>
#include <sstream>

#include "ksurf/cli.h"
#include "ksurf/error.h"

namespace ksurf {
namespace {

// TEXT for groff: backslashes and hyphens escaped, and no line starting as a request.
std::string roff(std::string_view text) {
    std::string out;
    bool line_start = true;
    for (char c : text) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        line_start = c == '\n';
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
    }
    return out;
}

std::string joined(const std::vector<std::string>& words, std::string_view sep = " ") {
    return fmt::format("{}", fmt::join(words, sep));
}

bool hidden(const CLI::Option* o) { return o->get_group().empty(); }

// The values an option takes when they are a fixed set (one_of()); empty otherwise.
std::vector<std::string> values_of(CLI::Option* o) {
    try {
        std::string set = o->get_validator(kOneOf)->get_description();
        std::vector<std::string> out;
        std::istringstream in(set.substr(1, set.size() - 2));
        for (std::string v; std::getline(in, v, ',');) out.push_back(v);
        return out;
    } catch (const CLI::OptionNotFound&) {
        return {};
    }
}

bool takes_value(const CLI::Option* o) { return o->get_expected_max() > 0 && o->get_type_size() != 0; }

std::vector<std::string> names(const CLI::Option* o) {
    std::vector<std::string> out;
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
    return out;
}

// The options a command takes: its own, then those of every command it inherits.
std::vector<CLI::Option*> options_of(CLI::App& cmd) {
    std::vector<CLI::Option*> out;
    for (CLI::Option* o : cmd.get_options())
        if (!hidden(o) && !o->get_positional()) out.push_back(o);
    if (CLI::App* parent = cmd.get_parent(); parent && cmd.get_fallthrough())
        for (CLI::Option* o : parent->get_options())
            if (o->get_group() == kCommonGroup) out.push_back(o);
    return out;
}

// A footer split at its blank lines into blocks; a block's first line ending in ':' is
// its heading ("Examples:").
struct Block {
    std::string heading;
    std::string text;
};

std::vector<Block> blocks(const std::string& footer) {
    std::vector<Block> out;
    std::size_t at = 0;
    while (at < footer.size()) {
        std::size_t end = footer.find("\n\n", at);
        if (end == std::string::npos) end = footer.size();
        Block b{"", footer.substr(at, end - at)};
        const std::size_t nl = b.text.find('\n');
        if (nl != std::string::npos && nl > 0 && b.text[nl - 1] == ':' && b.text[0] != ' ') {
            b.heading = b.text.substr(0, nl - 1);
            b.text = b.text.substr(nl + 1);
        }
        out.push_back(std::move(b));
        at = end + 2;
    }
    return out;
}

std::string verbatim(const std::string& text) { return ".nf\n" + roff(text) + "\n.fi\n"; }

std::string man_options(const std::vector<CLI::Option*>& options) {
    std::string out;
    for (CLI::Option* o : options) {
        std::string label;
        for (const auto& n : names(o)) label += (label.empty() ? "" : ", ") + fmt::format("\\fB{}\\fR", roff(n));
        if (takes_value(o)) {
            const auto values = values_of(o);
            std::string type = o->get_type_name();
            if (const auto colon = type.find(':'); colon != std::string::npos) type.resize(colon);
            label += fmt::format(" \\fI{}\\fR", roff(values.empty() ? type : joined(values, "|")));
        }
        std::string text = o->get_description();
        if (!o->get_default_str().empty()) text += fmt::format(" (default {})", o->get_default_str());
        out += fmt::format(".TP\n{}\n{}\n", label, roff(text));
    }
    return out;
}

std::string usage(const CLI::App& cmd) {
    std::string out = fmt::format(".B ksurf{}\n[\\fIOPTIONS\\fR]", cmd.get_parent() ? " " + cmd.get_name() : "");
    for (const CLI::Option* o : cmd.get_options())
        if (o->get_positional()) {
            const std::string name = o->get_name(true);
            const std::string word = o->get_expected_max() > 1 ? name + "..." : name;
            out += o->get_required() ? fmt::format(" \\fI{}\\fR", roff(word)) : fmt::format(" [\\fI{}\\fR]", roff(word));
        }
    return out;
}

std::string man(CLI::App& app, std::string_view version) {
    std::string out = ".TH KSURF 1 \"\" \"" + roff(version) + "\" \"User Commands\"\n";
    std::string description = app.get_description();
    if (const auto colon = description.find(": "); colon != std::string::npos) description = description.substr(colon + 2);
    out += ".SH NAME\nksurf \\- " + roff(description) + "\n";
    out += ".SH SYNOPSIS\n" + usage(app) + " [\\fB\\-c\\fR \\fICMD\\fR [\\fIARGS\\fR...]]\n";
    const auto commands = app.get_subcommands([](CLI::App*) { return true; });
    for (CLI::App* c : commands) out += ".br\n" + usage(*c) + "\n";

    std::string examples, exit_status;
    std::string sentence = description;
    sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
    out += ".SH DESCRIPTION\n" + roff(sentence) + ".\n";
    for (const Block& b : blocks(app.get_footer())) {
        if (b.heading == "Examples") examples = verbatim(b.text);
        else if (b.heading == "Exit status") exit_status = verbatim(b.text);
        else out += (b.heading.empty() ? ".PP\n" : ".SS " + roff(b.heading) + "\n") + verbatim(b.text);
    }

    std::vector<CLI::Option*> own, common;
    for (CLI::Option* o : options_of(app)) (o->get_group() == kCommonGroup ? common : own).push_back(o);
    out += ".SH OPTIONS\n" + man_options(own) + ".SS " + roff(kCommonGroup) + "\n" + man_options(common);

    out += ".SH COMMANDS\n";
    for (CLI::App* c : commands) {
        out += ".SS ksurf " + roff(c->get_name()) + "\n" + roff(c->get_description()) + ".\n";
        std::vector<CLI::Option*> its;
        for (CLI::Option* o : c->get_options())
            if (!hidden(o) && !o->get_positional()) its.push_back(o);
        out += man_options(its);
        if (c->get_fallthrough()) out += ".PP\nIt also takes the " + roff(kCommonGroup) + " (see OPTIONS).\n";
        for (const Block& b : blocks(c->get_footer()))
            out += ".PP\n" + (b.heading.empty() ? "" : roff(b.heading) + ":\n") + verbatim(b.text);
    }
    out += ".SH EXAMPLES\n" + examples;
    out += ".SH EXIT STATUS\n" + exit_status;
    out += ".SH SEE ALSO\n.BR bpftrace (8),\n.BR perf (1),\n.BR pcap\\-filter (7)\n";
    return out;
}

// One command's case in _ksurf: the words after `-`, and how each option's value completes.
std::string completion_case(CLI::App& cmd, const std::string& label) {
    std::vector<std::string> all, plain;
    std::string values;
    for (CLI::Option* o : options_of(cmd)) {
        const auto n = names(o);
        all.insert(all.end(), n.begin(), n.end());
        // An option whose value may be left out (--count) lets the next word complete as usual.
        if (!takes_value(o) || o->get_expected_min() == 0) continue;
        const auto choices = values_of(o);
        const std::string reply = !choices.empty() ? fmt::format("($(compgen -W '{}' -- \"$cur\"))", joined(choices))
                                  : o->get_type_name().find("FILE") != std::string::npos ? "($(compgen -f -- \"$cur\"))"
                                                                                          : "()";
        values += fmt::format("        {}) COMPREPLY={}; return ;;\n", joined(n, "|"), reply);
    }
    // What its positional arguments are, for _ksurf_names: probe texts, functions or globs.
    std::string names;
    for (const CLI::Option* o : cmd.get_options())
        if (o->get_positional()) names = o->get_type_name();
    return fmt::format("    {})\n        case $prev in\n{}        esac\n        opts='{}' names={} ;;\n", label, values, joined(all),
                       names);
}

std::string completion(CLI::App& app) {
    std::string out = R"(# bash completion for ksurf; written by `ksurf --generate bash-completion`.

# What `ksurf list` names for the word being completed ($cur, its opening quote left out):
# PROBE completes a probe text's target ('e sched/sched_sw' to 'e sched/sched_switch'),
# FUNC a function, GLOB any name `ksurf list` takes.
_ksurf_names() {
    local word=${cur#[\"\']} IFS=$'\n'
    case $1 in
    PROBE) [[ $word == [pre]\ * ]] &&
        COMPREPLY=($(ksurf list "$word*" 2>/dev/null | awk -v kind="${word%% *}" '{print kind " " $2}')) ;;
    FUNC) COMPREPLY=($(ksurf list "p $word*" 2>/dev/null | awk '{print $2}')) ;;
    GLOB) COMPREPLY=($(ksurf list "$word*" 2>/dev/null | awk '{print $2}')) ;;
    esac
}

_ksurf() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i opts names
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
)";
    std::vector<std::string> command_names;
    for (CLI::App* c : app.get_subcommands([](CLI::App*) { return true; })) command_names.push_back(c->get_name());
    out += fmt::format("        {}) cmd=${{COMP_WORDS[i]}}; break ;;\n", joined(command_names, "|"));
    out += R"(        # -c takes the rest of the line: a command, then its own words.
        -c|--command)
            if ((i == COMP_CWORD - 1)); then COMPREPLY=($(compgen -c -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
            return ;;
        esac
    done
    case $cmd in
)";
    out += completion_case(app, "''");
    for (CLI::App* c : app.get_subcommands([](CLI::App*) { return true; })) out += completion_case(*c, c->get_name());
    out += fmt::format(R"(    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        _ksurf_names "$names"
        [[ -n $cmd || ${{#COMPREPLY[@]}} != 0 ]] || COMPREPLY=($(compgen -W '{}' -- "$cur"))
    fi
}}
complete -F _ksurf ksurf
)",
                       joined(command_names));
    return out;
}

}  // namespace

std::string generate(CLI::App& app, std::string_view kind, std::string_view version) {
    if (kind == "man") return man(app, version);
    if (kind == "bash-completion") return completion(app);
    fail("--generate takes man or bash-completion, not '{}'", printable(kind));
}

}  // namespace ksurf
