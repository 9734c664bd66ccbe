#include <fmt/format.h>

#include <algorithm>

#include "ksurf/btf.h"
#include "ksurf/discover.h"

namespace ksurf {
namespace {

constexpr int kDeclColumns = 48;  // where the offset/size comment starts, as pahole's

struct Printer {
    std::string out;
    unsigned holes = 0;
    std::size_t hole_bytes = 0;

    void line(int depth, const std::string& text, const std::string& comment = {}) {
        std::string s = std::string(depth * 4, ' ') + text;
        if (!comment.empty()) s = fmt::format("{:<{}} /* {} */", s, kDeclColumns, comment);
        out += s + "\n";
    }

    // The members of AGG, which starts BASE_BITS into the outermost type, at DEPTH.
    void members(Type agg, std::size_t base_bits, int depth) {
        const bool is_struct = agg.strip().kind() == Type::Kind::Struct;
        std::size_t end = base_bits / 8;  // the first byte no member before has used
        for (const DeclaredMember& m : declared_members(agg)) {
            const std::size_t bits = base_bits + m.layout.bit_offset;
            const std::size_t at = bits / 8, size = m.layout.type.size();
            if (is_struct && at > end) hole(depth, at - end);
            const std::string type = m.layout.type.name();
            // Anonymous structs and unions are shown in place, as they are declared.
            if (type.ends_with("{...}")) {
                line(depth, type.substr(0, type.size() - 5) + "{");
                members(m.layout.type, bits, depth + 1);
                line(depth, m.name.empty() ? "};" : fmt::format("}} {};", m.name), fmt::format("{:6} {:6}", at, size));
            } else if (m.layout.bitfield_size) {
                line(depth, fmt::format("{}:{};", m.layout.type.declaration(m.name), m.layout.bitfield_size),
                     fmt::format("{:4}:{:<2}{:5}", at, bits % 8, size));
            } else {
                line(depth, m.layout.type.declaration(m.name) + ";", fmt::format("{:6} {:6}", at, size));
            }
            const std::size_t used = m.layout.bitfield_size ? (bits + m.layout.bitfield_size + 7) / 8 : at + size;
            end = std::max(end, used);
        }
        if (is_struct && base_bits / 8 + agg.size() > end) hole(depth, base_bits / 8 + agg.size() - end, "padding");
    }

    void hole(int depth, std::size_t bytes, std::string_view what = "hole") {
        if (what == "hole") {
            holes++;
            hole_bytes += bytes;
        }
        line(depth, fmt::format("/* XXX {} byte{} {} */", bytes, bytes == 1 ? "" : "s", what));
    }
};

}  // namespace

std::string type_layout(const Btf& btf, std::string_view type) {
    const Type t = btf.find_type(type);
    Printer p;
    p.line(0, t.name() + " {");
    p.members(t, 0, 1);
    p.line(0, fmt::format("}};  /* size: {}, holes: {}, sum holes: {} */", t.size(), p.holes, p.hole_bytes));
    return p.out;
}

}  // namespace ksurf
