// The functions of a user-space ELF binary, where uprobes (`P PATH:FUNC`) attach: both the
// uprobe PMU and uprobe_events take a file offset, not an address.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ksurf {

struct ElfFunction {
    std::string name;
    std::uint64_t file_offset = 0;  // of its first instruction
    std::uint64_t size = 0;
};

// The defined FUNC symbols of PATH (.symtab, else .dynsym), their addresses turned into
// file offsets through the segment that loads them. Throws "cannot read ELF PATH: ...".
std::vector<ElfFunction> elf_functions(const std::filesystem::path& path);

}  // namespace ksurf
