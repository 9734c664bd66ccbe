#include "ksurf/kallsyms.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "ksurf/file.h"
#include "ksurf/error.h"

namespace ksurf {

Kallsyms Kallsyms::load(const std::string& path, const std::vector<std::string>& variables, bool data) {
    const auto text = read_file(path);
    if (!text) fail("cannot read {}: {}", path, errno_text(errno));
    Kallsyms k = parse(*text, variables, data);
    if (k.syms_.empty()) fail("{} lists no kernel text addresses (kptr_restrict hides them without CAP_SYSLOG)", path);
    return k;
}

// Lines are "ADDR TYPE NAME[\t[MODULE]]".
Kallsyms Kallsyms::parse(std::string_view text, const std::vector<std::string>& variables, bool data) {
    Kallsyms k;
    for (const auto& v : variables) k.variables_.emplace_back(v, 0);
    std::vector<std::uint64_t> all;  // every symbol's address bounds the text one before it
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == text.npos ? text.size() : nl + 1);
        std::uint64_t addr = 0;
        auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), addr, 16);
        if (ec != std::errc() || p + 3 > line.data() + line.size() || addr == 0) continue;
        const char type = p[1];
        std::string_view rest = line.substr(p + 3 - line.data());
        std::string_view module;
        if (auto tab = rest.find('\t'); tab != rest.npos) {
            module = rest.substr(tab + 1);
            rest = rest.substr(0, tab);
            if (module.size() >= 2 && module.front() == '[') module = module.substr(1, module.size() - 2);
        }
        all.push_back(addr);
        if (type == 't' || type == 'T') k.syms_.push_back({addr, 0, std::string(rest), std::string(module)});
        if (type == 'd' || type == 'b') k.static_data_ = true;
        if (data && std::string_view("dDbBrR").find(type) != std::string_view::npos)
            k.data_.push_back({addr, 0, std::string(rest), std::string(module)});
        for (auto& [name, at] : k.variables_)
            if (!at && module.empty() && rest == name) at = addr;
    }
    std::sort(all.begin(), all.end());
    std::stable_sort(k.syms_.begin(), k.syms_.end(), [](const auto& a, const auto& b) { return a.addr < b.addr; });
    for (auto& s : k.syms_) {
        auto next = std::upper_bound(all.begin(), all.end(), s.addr);
        s.end = next == all.end() ? s.addr + 1 : *next;
    }
    return k;
}

std::uint64_t Kallsyms::variable(std::string_view name) const {
    for (const auto& [n, at] : variables_)
        if (n == name) return at;
    return 0;
}

std::vector<const KernelSymbol*> Kallsyms::find_data(std::string_view name) const {
    std::vector<const KernelSymbol*> out;
    for (const auto& s : data_)
        if (s.name == name) out.push_back(&s);
    return out;
}

const KernelSymbol* Kallsyms::at(std::uint64_t addr) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr, [](std::uint64_t a, const auto& s) { return a < s.addr; });
    if (it == syms_.begin()) return nullptr;
    --it;
    return addr < it->end ? &*it : nullptr;
}

std::string Kallsyms::describe(std::uint64_t addr) const {
    const KernelSymbol* s = at(addr);
    if (!s) return fmt::format("{:#x}", addr);
    return fmt::format("{}+{:#x}/{:#x}{}", s->name, addr - s->addr, s->end - s->addr,
                       s->module.empty() ? "" : " [" + s->module + "]");
}

std::vector<const KernelSymbol*> Kallsyms::find(std::string_view name) const {
    std::string_view module;
    if (auto colon = name.find(':'); colon != name.npos) {
        module = name.substr(0, colon);
        name = name.substr(colon + 1);
    }
    std::vector<const KernelSymbol*> out;
    for (const auto& s : syms_)
        if (s.name == name && (module.empty() || s.module == module)) out.push_back(&s);
    return out;
}

}  // namespace ksurf
