// The list command (src/cli/list.cpp): `ksurf list [GLOB...]`, and `ksurf -l GLOB` as
// bpftrace users type it.
#pragma once

#include <string>
#include <vector>

#include "ksurf/cli.h"

namespace CLI {
class App;
}

namespace ksurf {

struct ListOptions {
    std::vector<std::string> globs;  // probe globs or type names; none: everything
};

CLI::App* add_list_command(CLI::App& app, ListOptions& opt);
int run_list(const CommonOptions& common, const ListOptions& opt);

}  // namespace ksurf
