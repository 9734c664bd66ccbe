#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ksurf/events.h"

namespace ksurf {
namespace {

// BYTES up to their first NUL, into OUT's storage.
void assign_c_string(std::string& out, std::span<const std::uint8_t> bytes) {
    out.assign(bytes.begin(), std::find(bytes.begin(), bytes.end(), std::uint8_t{0}));
}

std::uint64_t load_unsigned(const std::uint8_t* p, std::uint32_t size) {
    switch (size) {
    case 1: return *p;
    case 2: { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
    default: { std::uint64_t v; std::memcpy(&v, p, 8); return v; }
    }
}

std::int64_t sign_extend(std::uint64_t v, std::uint32_t size) {
    if (size >= 8) return static_cast<std::int64_t>(v);
    const unsigned shift = 64 - size * 8;
    return static_cast<std::int64_t>(v << shift) >> shift;
}

}  // namespace

std::vector<FieldValue> decode_tracepoint(const tracefs::EventFormat& fmt, std::span<const std::uint8_t> record) {
    std::vector<FieldValue> out;
    decode_tracepoint(fmt, record, out);
    return out;
}

void decode_tracepoint(const tracefs::EventFormat& fmt, std::span<const std::uint8_t> record, std::vector<FieldValue>& out) {
    FieldWriter w(out);
    for (const auto& f : fmt.fields) {
        if (f.is_common() || f.offset + f.size > record.size()) continue;
        const std::uint8_t* at = record.data() + f.offset;
        if (f.data_loc || f.rel_loc) {
            auto loc = static_cast<std::uint32_t>(load_unsigned(at, 4));
            std::uint32_t off = (loc & 0xffff) + (f.rel_loc ? f.offset + f.size : 0);
            std::uint32_t len = loc >> 16;
            if (off > record.size()) continue;
            len = std::min<std::uint32_t>(len, record.size() - off);
            assign_c_string(w.text(f.name), record.subspan(off, len));
        } else if (f.is_string()) {
            assign_c_string(w.text(f.name), record.subspan(f.offset, f.size));
        } else if (f.size == 1 || f.size == 2 || f.size == 4 || f.size == 8) {
            const std::uint64_t raw = load_unsigned(at, f.size);
            Value& v = w.next(f.name, f.is_pointer() ? Display::Hex : Display::Decimal);
            if (f.is_signed)
                v.v = sign_extend(raw, f.size);
            else
                v.v = raw;
        } else {
            // Arrays of integers and odd-sized fields print as their raw bytes in hex.
            std::string& hex = w.text(f.name);
            hex.assign("0x");
            for (std::uint32_t i = 0; i < f.size; i++) fmt::format_to(std::back_inserter(hex), "{:02x}", at[i]);
        }
    }
}

}  // namespace ksurf
