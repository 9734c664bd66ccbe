#include "ksurf/format.h"

#include "ksurf/error.h"

#include <fmt/compile.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

// Events are formatted straight into one owned buffer, written out in large blocks: at
// several hundred thousand events a second, run-time format parsing, a heap string per
// piece and a write per line cost more than the kernel's side of the event.
namespace ksurf {
namespace {

constexpr std::size_t kBufferBytes = 256 * 1024;
// Written out once an event ends past this: the slack left holds any usual event, so the
// buffer grows only for a single event larger than it.
constexpr std::size_t kHighWater = kBufferBytes - 32 * 1024;

constexpr char kHexDigits[] = "0123456789abcdef";

char* put(char* p, std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

char* put_decimal(char* p, std::uint64_t v) { return fmt::format_to(p, FMT_COMPILE("{}"), v); }
char* put_decimal(char* p, std::int64_t v) { return fmt::format_to(p, FMT_COMPILE("{}"), v); }

char* put_escape_x(char* p, unsigned char c) {
    *p++ = '\\';
    *p++ = 'x';
    *p++ = kHexDigits[c >> 4];
    *p++ = kHexDigits[c & 0xf];
    return p;
}

// printable(): bytes a terminal would act on as \xHH.
char* put_printable(char* p, std::string_view s) {
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f)
            *p++ = ch;
        else
            p = put_escape_x(p, c);
    }
    return p;
}

// Addresses are kept in network byte order, as the kernel stores them.
char* put_ipv4(char* p, std::uint64_t v) {
    for (int i = 0; i < 4; i++) {
        const unsigned octet = (v >> (8 * i)) & 0xff;
        if (i) *p++ = '.';
        if (octet >= 100) *p++ = static_cast<char>('0' + octet / 100);
        if (octet >= 10) *p++ = static_cast<char>('0' + octet / 10 % 10);
        *p++ = static_cast<char>('0' + octet % 10);
    }
    return p;
}

// The most bytes put_value() writes for V: a string's bytes may each become \xHH.
std::size_t value_bound(const Value& v) {
    if (const auto* s = std::get_if<std::string>(&v.v)) return 4 * s->size();
    return 24;
}

// format_value(V) at P.
char* put_value(char* p, const Value& v) {
    if (const auto* s = std::get_if<std::string>(&v.v)) return put_printable(p, *s);
    if (std::holds_alternative<Absent>(v.v)) {
        *p++ = '-';
        return p;
    }
    const auto* i = std::get_if<std::int64_t>(&v.v);
    const std::uint64_t bits = i ? static_cast<std::uint64_t>(*i) : std::get<std::uint64_t>(v.v);
    switch (v.display) {
    case Display::Hex: return fmt::format_to(p, FMT_COMPILE("0x{:x}"), bits);
    case Display::IPv4: return put_ipv4(p, bits);
    default: return i ? put_decimal(p, *i) : put_decimal(p, bits);
    }
}

// The length of the well-formed UTF-8 sequence at S (whose first byte is not ASCII), or
// minus the bytes an ill-formed one spans: its lead and the continuation bytes that fit
// it (at least one byte). The ranges are Unicode's Table 3-7, which nlohmann's decoder
// (Hoehrmann's DFA) also accepts.
std::ptrdiff_t utf8_sequence(std::string_view s) {
    const auto lead = static_cast<unsigned char>(s[0]);
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // of the second byte; the others are always 80..BF
    if (lead >= 0xc2 && lead <= 0xdf) {
        need = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        need = 3;
        if (lead == 0xe0) lo = 0xa0;  // overlong
        if (lead == 0xed) hi = 0x9f;  // surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        need = 4;
        if (lead == 0xf0) lo = 0x90;  // overlong
        if (lead == 0xf4) hi = 0x8f;  // beyond U+10FFFF
    } else {
        return -1;
    }
    for (std::size_t j = 1; j < need; j++) {
        if (j >= s.size()) return -static_cast<std::ptrdiff_t>(j);
        const auto c = static_cast<unsigned char>(s[j]);
        if (c < lo || c > hi) return -static_cast<std::ptrdiff_t>(j);
        lo = 0x80;
        hi = 0xbf;
    }
    return static_cast<std::ptrdiff_t>(need);
}

// A JSON string's text as nlohmann's dump(-1, ' ', false, error_handler_t::replace)
// writes it: the short escapes, \u00XX for other control bytes, UTF-8 as it is, and
// U+FFFD for each ill-formed sequence, which ends before the first byte that cannot
// continue it (that byte starts the next one).
char* put_json_chars(char* p, std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::ptrdiff_t n = utf8_sequence(s.substr(i));
            if (n > 0) {
                p = put(p, s.substr(i, static_cast<std::size_t>(n)));
                i += static_cast<std::size_t>(n);
            } else {
                p = put(p, "\xEF\xBF\xBD");
                i += static_cast<std::size_t>(-n);
            }
            continue;
        }
        i++;
        switch (c) {
        case '\b': p = put(p, "\\b"); break;
        case '\t': p = put(p, "\\t"); break;
        case '\n': p = put(p, "\\n"); break;
        case '\f': p = put(p, "\\f"); break;
        case '\r': p = put(p, "\\r"); break;
        case '"': p = put(p, "\\\""); break;
        case '\\': p = put(p, "\\\\"); break;
        default:
            if (c < 0x20) {
                p = put(p, "\\u00");
                *p++ = kHexDigits[c >> 4];
                *p++ = kHexDigits[c & 0xf];
            } else {
                *p++ = static_cast<char>(c);
            }
        }
    }
    return p;
}

char* put_json_string(char* p, std::string_view s) {
    *p++ = '"';
    p = put_json_chars(p, s);
    *p++ = '"';
    return p;
}

// Writes P[0..N) to OUT: 0 or the errno of the failed write. A write a signal interrupts
// goes on, since its events were counted. A FILE without a descriptor (open_memstream)
// takes fwrite.
int write_out(std::FILE* out, const char* p, std::size_t n) {
    const int fd = fileno(out);
    if (fd < 0) return std::fwrite(p, 1, n, out) == n && std::fflush(out) == 0 ? 0 : errno;
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return 0;
}

[[noreturn]] void fail_writing(int err) { fail("writing the output: {}", errno_text(err)); }

// The output: the buffer and where it goes. A write error is kept for flush() to report,
// since write() runs inside the backends' callbacks (libbpf's C code among them), which
// an exception must not cross.
class Output {
public:
    explicit Output(std::FILE* out)
        : out_(out),
          fd_(fileno(out)),
          buf_(std::make_unique_for_overwrite<char[]>(kBufferBytes)),
          cap_(kBufferBytes) {}

    // Where the next N bytes go; end() takes the pointer past the last one written.
    char* room(std::size_t n) {
        if (n > cap_ - size_) grow(size_ + n);
        return buf_.get() + size_;
    }
    // A FILE without a descriptor (open_memstream) is memory already: it gets each event.
    void end(char* p) {
        size_ = static_cast<std::size_t>(p - buf_.get());
        if (size_ >= kHighWater || fd_ < 0) drain();
    }

    bool flush() {
        drain();
        if (error_) fail_writing(error_);
        return !gone_;
    }

private:
    void grow(std::size_t need) {
        const std::size_t cap = std::max(need, 2 * cap_);
        auto bigger = std::make_unique_for_overwrite<char[]>(cap);
        std::memcpy(bigger.get(), buf_.get(), size_);
        buf_ = std::move(bigger);
        cap_ = cap;
    }

    // Once the reader is gone (EPIPE) or writing failed, output is dropped.
    void drain() {
        const std::size_t n = std::exchange(size_, 0);
        if (n == 0 || gone_ || error_) return;
        const int err = write_out(out_, buf_.get(), n);
        if (err == EPIPE)
            gone_ = true;
        else
            error_ = err;
    }

    std::FILE* out_;
    int fd_;
    std::unique_ptr<char[]> buf_;
    std::size_t cap_;
    std::size_t size_ = 0;
    bool gone_ = false;
    int error_ = 0;
};

// The most bytes either format writes for EV: every string byte may become six (\u00XX),
// every number and the text around it fits in the constant.
std::size_t event_bound(const Event& ev) {
    std::size_t n = 160 + 6 * (ev.comm.size() + ev.probe.size());
    for (const auto& f : ev.fields) n += 48 + 6 * f.name.size() + 2 * value_bound(f.value);
    for (const auto& frame : ev.stack) n += 8 + 6 * frame.size();
    return n;
}

class TextFormatter : public Formatter {
public:
    TextFormatter(std::FILE* out, std::FILE* summary_out) : out_(out), summary_out_(summary_out) {}

    void write(const Event& ev) override {
        char* p = out_.room(event_bound(ev));
        p = put_printable(p, ev.comm);
        p = fmt::format_to(p, FMT_COMPILE("-{} [{:03}] {}.{:06}: "), ev.pid, ev.cpu, ev.ts_ns / 1000000000,
                           ev.ts_ns % 1000000000 / 1000);
        p = put(p, ev.probe);
        *p++ = ':';
        for (const auto& f : ev.fields) {
            *p++ = ' ';
            p = put(p, f.name);
            *p++ = '=';
            p = put_value(p, f.value);
        }
        *p++ = '\n';
        for (const auto& frame : ev.stack) {  // as ftrace's stacktrace
            p = put(p, " => ");
            p = put(p, frame);
            *p++ = '\n';
        }
        out_.end(p);
    }

    bool flush() override { return out_.flush(); }

    // After the events, which it follows on a terminal. A reader of it that is gone misses it.
    void summary(const RunStats& s) override {
        out_.flush();
        char line[96];
        const char* end = s.filtered ? fmt::format_to(line, FMT_COMPILE("{} events, {} filtered, {} dropped\n"), s.events,
                                                      *s.filtered, s.dropped)
                                     : fmt::format_to(line, FMT_COMPILE("{} events, {} dropped\n"), s.events, s.dropped);
        const int err = write_out(summary_out_, line, static_cast<std::size_t>(end - line));
        if (err && err != EPIPE) fail_writing(err);
    }

private:
    Output out_;
    std::FILE* summary_out_;
};

class JsonFormatter : public Formatter {
public:
    explicit JsonFormatter(std::FILE* out) : out_(out) {}

    void write(const Event& ev) override {
        char* p = out_.room(event_bound(ev));
        p = put(p, "{\"ts\":");
        // nlohmann's own conversion (Grisu2): not always the shortest text that reads back,
        // and its output is what the JSON has always been.
        p = nlohmann::detail::to_chars(p, p + 32, ev.ts_ns / 1e9);
        p = put(p, ",\"comm\":");
        p = put_json_string(p, ev.comm);
        p = fmt::format_to(p, FMT_COMPILE(",\"pid\":{},\"tgid\":{},\"cpu\":{},\"probe\":"), ev.pid, ev.tgid, ev.cpu);
        p = put_json_string(p, ev.probe);
        p = put(p, ",\"fields\":{");
        bool first = true;
        for (const auto& f : ev.fields) {
            if (std::holds_alternative<Absent>(f.value.v)) continue;
            if (!std::exchange(first, false)) *p++ = ',';
            p = put_json_string(p, f.name);
            *p++ = ':';
            p = put_json_value(p, f.value);
        }
        *p++ = '}';
        if (!ev.stack.empty()) {
            p = put(p, ",\"stack\":[");
            for (std::size_t i = 0; i < ev.stack.size(); i++) {
                if (i) *p++ = ',';
                p = put_json_string(p, ev.stack[i]);
            }
            *p++ = ']';
        }
        p = put(p, "}\n");
        out_.end(p);
    }

    bool flush() override { return out_.flush(); }

    void summary(const RunStats& s) override {
        char* p = out_.room(128);
        p = fmt::format_to(p, FMT_COMPILE("{{\"summary\":{{\"events\":{},"), s.events);
        if (s.filtered) p = fmt::format_to(p, FMT_COMPILE("\"filtered\":{},"), *s.filtered);
        out_.end(fmt::format_to(p, FMT_COMPILE("\"dropped\":{}}}}}\n"), s.dropped));
        out_.flush();
    }

private:
    // Decimal values are JSON numbers; strings are JSON's own escapes of their bytes (JSON
    // is read by programs: printable()'s \xHH would be a second escaping); others are their text.
    static char* put_json_value(char* p, const Value& v) {
        if (const auto* s = std::get_if<std::string>(&v.v)) return put_json_string(p, *s);
        if (v.display == Display::Decimal) {
            if (const auto* i = std::get_if<std::int64_t>(&v.v)) return put_decimal(p, *i);
            return put_decimal(p, std::get<std::uint64_t>(v.v));
        }
        // Hex, IPv4 and decimal digits: nothing to escape.
        *p++ = '"';
        p = put_value(p, v);
        *p++ = '"';
        return p;
    }

    Output out_;
};

}  // namespace

std::string format_value(const Value& v) {
    std::string text(value_bound(v), '\0');
    text.resize(static_cast<std::size_t>(put_value(text.data(), v) - text.data()));
    return text;
}

std::unique_ptr<Formatter> text_formatter(std::FILE* out, std::FILE* summary_out) {
    return std::make_unique<TextFormatter>(out, summary_out);
}

std::unique_ptr<Formatter> json_formatter(std::FILE* out) { return std::make_unique<JsonFormatter>(out); }

}  // namespace ksurf
