// Kernel symbols from /proc/kallsyms: addresses to names for stacks and call graphs, names
// to address ranges for caller predicates. Addresses read as 0 without CAP_SYSLOG
// (kptr_restrict); load() then fails rather than symbolizing everything as one name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksurf {

struct KernelSymbol {
    std::uint64_t addr = 0;
    std::uint64_t end = 0;   // the next symbol's address: where this one's code may end
    std::string name;
    std::string module;      // empty for vmlinux
};

class Kallsyms {
public:
    // Text symbols only (t/T), sorted by address, and the addresses of the VARIABLES named
    // (any type: the data a BPF program reads), from one read of the file; with DATA, every
    // data symbol too (d/D, b/B, r/R), for probes that name kernel variables.
    static Kallsyms load(const std::string& path = "/proc/kallsyms", const std::vector<std::string>& variables = {},
                         bool data = false);
    static Kallsyms parse(std::string_view text, const std::vector<std::string>& variables = {}, bool data = false);

    // The symbol whose [addr, end) holds ADDR; nullptr outside kernel text.
    const KernelSymbol* at(std::uint64_t addr) const;
    // "func+0x1a/0x90 [module]", or the address in hex when no symbol holds it.
    std::string describe(std::uint64_t addr) const;
    // Every text symbol named NAME ("module:name" restricts it to one module); several for
    // static functions that share a name.
    std::vector<const KernelSymbol*> find(std::string_view name) const;
    const std::vector<KernelSymbol>& symbols() const { return syms_; }
    // The address of VARIABLE, one of those load() was asked for; 0 when the kernel has none.
    std::uint64_t variable(std::string_view name) const;
    // Every data symbol named NAME (`end` unset), when loaded with DATA; several for
    // static variables that share a name.
    std::vector<const KernelSymbol*> find_data(std::string_view name) const;
    const std::vector<KernelSymbol>& data_symbols() const { return data_; }
    // Whether the file lists static data (d, b): only kernels built with
    // CONFIG_KALLSYMS_ALL list variables at all, beyond a few exported markers.
    bool lists_variables() const { return static_data_; }

private:
    std::vector<KernelSymbol> syms_;
    std::vector<std::pair<std::string, std::uint64_t>> variables_;
    std::vector<KernelSymbol> data_;
    bool static_data_ = false;
};

}  // namespace ksurf
