#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ksurf/events.h"

namespace ksurf {
namespace {

std::string c_string(std::span<const std::uint8_t> bytes) {
    auto end = std::find(bytes.begin(), bytes.end(), std::uint8_t{0});
    return std::string(bytes.begin(), end);
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
    for (const auto& f : fmt.fields) {
        if (f.is_common() || f.offset + f.size > record.size()) continue;
        const std::uint8_t* at = record.data() + f.offset;
        if (f.data_loc || f.rel_loc) {
            auto loc = static_cast<std::uint32_t>(load_unsigned(at, 4));
            std::uint32_t off = (loc & 0xffff) + (f.rel_loc ? f.offset + f.size : 0);
            std::uint32_t len = loc >> 16;
            if (off > record.size()) continue;
            len = std::min<std::uint32_t>(len, record.size() - off);
            out.push_back({f.name, {c_string(record.subspan(off, len)), Display::String}});
        } else if (f.is_string()) {
            out.push_back({f.name, {c_string(record.subspan(f.offset, f.size)), Display::String}});
        } else if (f.size == 1 || f.size == 2 || f.size == 4 || f.size == 8) {
            std::uint64_t raw = load_unsigned(at, f.size);
            Value v = f.is_signed ? Value{sign_extend(raw, f.size)} : Value{raw};
            if (f.is_pointer()) v.display = Display::Hex;
            out.push_back({f.name, v});
        } else {
            // Arrays of integers and odd-sized fields print as their raw bytes in hex.
            std::string hex = "0x";
            for (std::uint32_t i = 0; i < f.size; i++) hex += fmt::format("{:02x}", at[i]);
            out.push_back({f.name, {hex, Display::String}});
        }
    }
    return out;
}

}  // namespace ksurf
