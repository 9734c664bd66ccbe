#include "ksurf/elf.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <fmt/format.h>

#include <memory>
#include <optional>

#include "ksurf/error.h"
#include "ksurf/fd.h"

namespace ksurf {
namespace {

struct ElfDeleter {
    void operator()(Elf* e) const { elf_end(e); }
};

// The file offset of virtual address ADDR: through the PT_LOAD segment that maps it.
std::optional<std::uint64_t> file_offset(Elf* elf, std::uint64_t addr) {
    std::size_t n = 0;
    if (elf_getphdrnum(elf, &n) != 0) return std::nullopt;
    for (std::size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
        if (addr >= ph.p_vaddr && addr < ph.p_vaddr + ph.p_filesz) return addr - ph.p_vaddr + ph.p_offset;
    }
    return std::nullopt;
}

}  // namespace

std::vector<ElfFunction> elf_functions(const std::filesystem::path& path) {
    auto failed = [&](std::string_view why) { return Error(fmt::format("cannot read ELF {}: {}", path.string(), why)); };
    if (elf_version(EV_CURRENT) == EV_NONE) throw failed(elf_errmsg(-1));
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw failed(errno_text(errno));
    std::unique_ptr<Elf, ElfDeleter> elf(elf_begin(fd.get(), ELF_C_READ, nullptr));
    if (!elf || elf_kind(elf.get()) != ELF_K_ELF) throw failed("not an ELF file");
    std::vector<ElfFunction> out;
    // A stripped binary keeps only .dynsym: its exported functions.
    for (Elf64_Word wanted : {SHT_SYMTAB, SHT_DYNSYM}) {
        for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf.get(), scn));) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh) || sh.sh_type != wanted || !sh.sh_entsize) continue;
            Elf_Data* data = elf_getdata(scn, nullptr);
            for (std::size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
                GElf_Sym sym;
                if (!gelf_getsym(data, static_cast<int>(i), &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                    sym.st_shndx == SHN_UNDEF || !sym.st_value)
                    continue;
                const char* name = elf_strptr(elf.get(), sh.sh_link, sym.st_name);
                auto off = file_offset(elf.get(), sym.st_value);
                if (name && *name && off) out.push_back({name, *off, sym.st_size});
            }
        }
        if (!out.empty()) break;
    }
    return out;
}

}  // namespace ksurf
