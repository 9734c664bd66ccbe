// Which functions a graph traces: ROOT's direct callees, read from the running kernel's
// own text (/proc/kcore, so alternatives and static calls are as patched) and decoded with
// Capstone, level by level, plus the --funcs globs.
#include <capstone/capstone.h>
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <unordered_set>

#include "ksurf/error.h"
#include "ksurf/graph.h"
#include "ksurf/kallsyms.h"
#include "ksurf/resolve.h"

namespace ksurf {
namespace {

// No function worth a graph is longer; it bounds what one bad symbol size costs.
constexpr std::size_t kMaxFunctionBytes = 64 * 1024;

class Capstone {
public:
    Capstone() {
        if (cs_open(CS_ARCH_X86, CS_MODE_64, &h_) != CS_ERR_OK) fail("cannot start the x86 decoder (Capstone)");
        cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
        insn_ = cs_malloc(h_);
    }
    ~Capstone() {
        cs_free(insn_, 1);
        cs_close(&h_);
    }
    Capstone(const Capstone&) = delete;
    Capstone& operator=(const Capstone&) = delete;

    csh h_ = 0;
    cs_insn* insn_ = nullptr;
};

bool branch(csh h, const cs_insn* insn) {
    return cs_insn_group(h, insn, CS_GRP_CALL) || cs_insn_group(h, insn, CS_GRP_JUMP);
}

std::string_view line_name(std::string_view line) { return line.substr(0, line.find_first_of(" \t")); }

}  // namespace

std::vector<std::uint64_t> call_targets(std::span<const std::uint8_t> code, std::uint64_t addr) {
    Capstone cs;
    std::vector<std::uint64_t> out;
    std::unordered_set<std::uint64_t> seen;
    const std::uint8_t* p = code.data();
    std::size_t left = code.size();
    std::uint64_t at = addr;
    while (left) {
        if (!cs_disasm_iter(cs.h_, &p, &left, &at, cs.insn_)) {
            // Padding or data between instructions: step over one byte.
            p++, left--, at++;
            continue;
        }
        if (!branch(cs.h_, cs.insn_)) continue;
        const cs_x86& x = cs.insn_->detail->x86;
        if (x.op_count != 1 || x.operands[0].type != X86_OP_IMM) continue;  // indirect
        const auto target = static_cast<std::uint64_t>(x.operands[0].imm);
        if (target >= addr && target < addr + code.size()) continue;  // a branch inside
        if (seen.insert(target).second) out.push_back(target);
    }
    return out;
}

KernelText KernelText::open(const std::string& path) {
    KernelText t;
    t.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (t.fd_ < 0) fail("cannot read kernel text from {}: {}", path, errno_text(errno));
    Elf64_Ehdr eh;
    if (pread(t.fd_, &eh, sizeof eh, 0) != ssize_t(sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        fail("{} is not a 64-bit ELF core", path);
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    const auto bytes = ph.size() * sizeof(Elf64_Phdr);
    if (pread(t.fd_, ph.data(), bytes, static_cast<off_t>(eh.e_phoff)) != ssize_t(bytes)) fail("cannot read {}'s program headers", path);
    for (const auto& p : ph)
        if (p.p_type == PT_LOAD) t.segments_.push_back({p.p_vaddr, p.p_memsz, p.p_offset});
    return t;
}

KernelText::KernelText(KernelText&& o) noexcept : fd_(std::exchange(o.fd_, -1)), segments_(std::move(o.segments_)) {}

KernelText::~KernelText() {
    if (fd_ >= 0) close(fd_);
}

std::vector<std::uint8_t> KernelText::read(std::uint64_t addr, std::size_t len) const {
    for (const auto& s : segments_) {
        if (addr < s.vaddr || addr + len > s.vaddr + s.size) continue;
        std::vector<std::uint8_t> out(len);
        if (pread(fd_, out.data(), len, static_cast<off_t>(s.offset + (addr - s.vaddr))) != ssize_t(len))
            fail("cannot read {} bytes of kernel text at {:#x}: {}", len, addr, errno_text(errno));
        return out;
    }
    fail("no kernel text at {:#x} in /proc/kcore", addr);
}

std::vector<std::string> disassemble(const std::string& name, const Kallsyms& syms, const std::string& kcore) {
    const auto found = syms.find(name);
    if (found.empty()) fail("'{}' is not a kernel function (not in /proc/kallsyms)", name);
    const KernelText text = KernelText::open(kcore);
    Capstone cs;
    cs_option(cs.h_, CS_OPT_DETAIL, CS_OPT_OFF);
    std::vector<std::string> out;
    for (const KernelSymbol* f : found) {
        if (found.size() > 1) out.push_back(fmt::format("{} at {:#x}:", name, f->addr));
        const auto code = text.read(f->addr, std::min<std::uint64_t>(f->end - f->addr, kMaxFunctionBytes));
        const std::uint8_t* p = code.data();
        std::size_t left = code.size();
        std::uint64_t at = f->addr;
        while (left) {
            const std::uint64_t off = at - f->addr;
            if (!cs_disasm_iter(cs.h_, &p, &left, &at, cs.insn_)) {
                out.push_back(fmt::format("{}+{:#x}: (bad) {:02x}", name, off, *p));
                p++, left--, at++;
                continue;
            }
            out.push_back(fmt::format("{}+{:#x}: {} {}", name, off, cs.insn_->mnemonic, cs.insn_->op_str));
        }
    }
    return out;
}

std::optional<std::string> untraceable(std::string_view name) {
    // A probe on these would run inside the probe itself (the kernel then skips the hit) or
    // is refused: BPF and its maps, RCU, preemption and migration control, spinlocks, the
    // ftrace/kprobe machinery, and the compiler's thunks.
    static constexpr std::array<std::string_view, 22> kOwnPath = {
        "bpf_", "__bpf", "htab_", "ringbuf", "__ringbuf", "rcu_", "__rcu", "migrate_", "preempt_", "__preempt",
        "_raw_spin", "_raw_read", "_raw_write", "queued_spin", "ftrace", "__ftrace", "kprobe", "__kprobe",
        "fprobe", "rethook", "__x86_", "__fentry__"};
    for (auto p : kOwnPath)
        if (name.starts_with(p)) return "on the tracer's own path";
    return std::nullopt;
}

CalleeSet find_callees(const std::string& root, unsigned depth, const std::vector<std::string>& globs,
                       const Kallsyms& syms, const std::optional<KernelText>& text,
                       const std::vector<std::string>& filter_functions) {
    std::unordered_set<std::string_view> traceable;
    for (const auto& l : filter_functions) traceable.insert(line_name(l));
    std::set<std::string> chosen;
    std::map<std::string, std::string> skipped;
    auto consider = [&](const std::string& name) {
        if (name == root || chosen.count(name) || skipped.count(name)) return false;
        if (!traceable.count(name)) {
            skipped.emplace(name, "not in available_filter_functions (notrace, or not a traceable function)");
            return false;
        }
        if (auto why = untraceable(name)) {
            skipped.emplace(name, *why);
            return false;
        }
        chosen.insert(name);
        return true;
    };

    const auto roots = syms.find(root);
    if (roots.empty()) fail("'{}' is not a kernel function (not in /proc/kallsyms)", root);
    std::vector<const KernelSymbol*> level(roots.begin(), roots.end());
    for (unsigned d = 0; d < depth && !level.empty(); d++) {
        std::vector<const KernelSymbol*> next;
        for (const KernelSymbol* f : level) {
            const auto code = text.value().read(f->addr, std::min<std::uint64_t>(f->end - f->addr, kMaxFunctionBytes));
            for (std::uint64_t t : call_targets(code, f->addr)) {
                const KernelSymbol* s = syms.at(t);
                if (!s || s->addr != t) continue;  // not a function's start: not a call of one
                if (consider(s->name)) next.push_back(s);
            }
        }
        level = std::move(next);
    }
    const auto matched = expand_globs(globs, filter_functions);
    for (std::size_t i = 0; i < globs.size(); i++) {
        if (matched[i].empty()) fail("--funcs '{}' matches no traceable function", globs[i]);
        for (const auto& name : matched[i]) consider(name);
    }
    CalleeSet out;
    out.functions.assign(chosen.begin(), chosen.end());
    out.skipped.assign(skipped.begin(), skipped.end());
    return out;
}

}  // namespace ksurf
