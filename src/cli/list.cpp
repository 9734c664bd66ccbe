// ksurf list: what probes can name here, with the types they read (src/discover).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ksurf/btf.h"
#include "ksurf/discover.h"
#include "ksurf/list.h"

namespace ksurf {
namespace {

void print_listing(const Listing& l, bool verbose) {
    for (const ListedFunction& f : l.functions) {
        const std::string name = f.module.empty() ? f.name : fmt::format("{}:{}", f.module, f.name);
        fmt::print("p {}  {}{}\n", name, f.prototype.empty() ? "(no BTF)" : f.prototype,
                   f.not_traceable.empty() ? "" : "  [not traceable: " + f.not_traceable + "]");
    }
    for (const ListedTracepoint& tp : l.tracepoints) {
        std::vector<std::string> names, args;
        for (const auto& f : tp.fields) names.push_back(f.name);
        for (std::size_t i = 0; i < tp.args.size(); i++) args.push_back(fmt::format("%{} {}", i, tp.args[i]));
        if (!verbose) {
            fmt::print("e {}  fields: {}{}{}\n", tp.name, names.empty() ? "-" : fmt::to_string(fmt::join(names, " ")),
                       args.empty() ? "" : "  args: " + fmt::to_string(fmt::join(args, ", ")),
                       tp.missing.empty() ? "" : "  [" + tp.missing + "]");
            continue;
        }
        fmt::print("e {}\n", tp.name);
        for (const auto& f : tp.fields)
            fmt::print("    {:<40} offset {:3} size {:3}{}\n", fmt::format("{}{} {};", f.data_loc ? "__data_loc " : "", f.type, f.name),
                       f.offset, f.size, f.is_signed ? " signed" : "");
        for (const auto& a : args) fmt::print("    {}\n", a);
        if (!tp.missing.empty()) fmt::print("    [{}]\n", tp.missing);
    }
    for (const std::string& m : l.missing) fmt::print(stderr, "ksurf: {}\n", m);
}

}  // namespace

CLI::App* add_list_command(CLI::App& app, ListOptions& opt) {
    auto* list = app.add_subcommand("list", "List traceable functions and tracepoints with their types, or a struct's layout");
    list->fallthrough();  // the common options (-v, --btf), as for tracing
    list->footer(R"(GLOB: tcp_* (functions and tracepoint events), sched/* (tracepoints), mod:glob (a module's
functions), p/r/e GLOB (one kind), or a type: 'struct sk_buff' (its layout, as pahole's).
-v lists each tracepoint's record fields with their types and offsets, one per line.

Examples:
  ksurf list 'tcp_v4_*'
  ksurf list -v 'e sched/sched_switch'
  ksurf list 'struct sk_buff'
  ksurf -l 'vfs_*'                      # as bpftrace -l)");
    list->add_option("glob", opt.globs, "Probe globs or type names; none lists everything")->type_name("GLOB");
    return list;
}

int run_list(const CommonOptions& common, const ListOptions& opt) {
    const Btf btf = common.btf_file.empty() ? Btf::kernel() : Btf::from_file(common.btf_file);
    const std::vector<std::string> globs = opt.globs.empty() ? std::vector<std::string>{""} : opt.globs;
    for (const std::string& g : globs) {
        if (names_type(g))
            fmt::print("{}", type_layout(btf, g));
        else
            print_listing(list_probes(btf, g), common.verbose > 0);
    }
    return 0;
}

}  // namespace ksurf
