// Integer widths as kprobe_events and filters see them, shared by translation and decoding.
#pragma once

#include <cstdint>

namespace ksurf::tracefs {

inline std::uint64_t low_bits(std::uint64_t v, unsigned bits) {
    return bits >= 64 ? v : v & ((std::uint64_t{1} << bits) - 1);
}

// V's low BITS as a signed number.
inline std::int64_t sign_extend(std::uint64_t v, unsigned bits) {
    if (bits == 0 || bits >= 64) return static_cast<std::int64_t>(v);
    const unsigned shift = 64 - bits;
    return static_cast<std::int64_t>(v << shift) >> shift;
}

}  // namespace ksurf::tracefs
