// Decoded events: what a backend hands to the formatter, whichever backend it is.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ksurf/tracefs.h"

namespace ksurf {

// IPv6: a 16-byte address, decoded to its text (a string value) by the backend.
enum class Display { Decimal, Hex, IPv4, IPv6, String };

// A packet name of another protocol than the packet's (`udp.dport` of a TCP segment): text
// prints it as `-`, JSON leaves it out, as a filter's comparison of it is false.
struct Absent {};

struct Value {
    std::variant<std::int64_t, std::uint64_t, std::string, Absent> v;
    Display display = Display::Decimal;
};

struct FieldValue {
    std::string name;
    Value value;
};

struct Event {
    std::uint64_t ts_ns = 0;  // CLOCK_MONOTONIC
    std::uint32_t pid = 0;    // thread id
    std::uint32_t tgid = 0;
    std::uint32_t cpu = 0;
    std::string comm;
    std::string probe;        // event name as printed: the tracepoint or the probe's name
    std::vector<FieldValue> fields;
    std::vector<std::string> stack;  // -s: kernel frames, innermost first, "func+0x1a/0x90"
    // -w: the packet from its network header (at most the snap length), its length there
    // on the wire, and the struct sk_buff * it was read from.
    std::string packet{};
    std::uint32_t packet_len = 0;
    std::uint64_t skb = 0;
};

// The low BITS (16, 32, 64) of V byte-swapped: how b16_/B32_... fields turn network-order
// values into numbers. Other widths leave V as it is.
inline std::uint64_t swap_low(std::uint64_t v, unsigned bits) {
    switch (bits) {
    case 16: return __builtin_bswap16(static_cast<std::uint16_t>(v));
    case 32: return __builtin_bswap32(static_cast<std::uint32_t>(v));
    case 64: return __builtin_bswap64(v);
    default: return v;
    }
}

// The fields of a raw tracepoint record laid out as FMT says, in order, without the
// common_* header fields. Reads never leave RECORD: truncated fields are skipped.
std::vector<FieldValue> decode_tracepoint(const tracefs::EventFormat& fmt, std::span<const std::uint8_t> record);
// The same into OUT, whose storage a reader reuses from one event to the next.
void decode_tracepoint(const tracefs::EventFormat& fmt, std::span<const std::uint8_t> record, std::vector<FieldValue>& out);

// Writes one event's fields over the previous event's in OUT: names and strings keep their
// storage, so a steady stream of events allocates nothing. OUT holds exactly the fields
// written once the writer is gone.
class FieldWriter {
public:
    explicit FieldWriter(std::vector<FieldValue>& out) : out_(out) {}
    ~FieldWriter() { out_.resize(n_); }
    FieldWriter(const FieldWriter&) = delete;
    FieldWriter& operator=(const FieldWriter&) = delete;

    // The value of the next field, NAME, shown as DISPLAY; the caller sets its number.
    Value& next(const std::string& name, Display display = Display::Decimal) {
        if (n_ == out_.size()) out_.emplace_back();
        FieldValue& f = out_[n_++];
        if (f.name != name) f.name = name;
        f.value.display = display;
        return f.value;
    }
    // The next field as a string, cleared, for the caller to fill.
    std::string& text(const std::string& name, Display display = Display::String) {
        Value& v = next(name, display);
        if (auto* s = std::get_if<std::string>(&v.v)) {
            s->clear();
            return *s;
        }
        return v.v.emplace<std::string>();
    }

private:
    std::vector<FieldValue>& out_;
    std::size_t n_ = 0;
};

}  // namespace ksurf
