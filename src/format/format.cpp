#include "ksurf/format.h"

#include "ksurf/error.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace ksurf {
namespace {

std::string ipv4(std::uint64_t v) {
    // Addresses are kept in network byte order, as the kernel stores them.
    return fmt::format("{}.{}.{}.{}", v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff);
}

std::string timestamp(std::uint64_t ns) { return fmt::format("{}.{:06}", ns / 1000000000, ns % 1000000000 / 1000); }

class TextFormatter : public Formatter {
public:
    TextFormatter(std::FILE* out, std::FILE* summary_out) : out_(out), summary_out_(summary_out) {}

    void write(const Event& ev) override {
        std::string line = fmt::format("{}-{} [{:03}] {}: {}:", printable(ev.comm), ev.pid, ev.cpu,
                                       timestamp(ev.ts_ns), ev.probe);
        for (const auto& f : ev.fields) line += fmt::format(" {}={}", f.name, format_value(f.value));
        line += '\n';
        for (const auto& frame : ev.stack) line += fmt::format(" => {}\n", frame);  // as ftrace's stacktrace
        std::fwrite(line.data(), 1, line.size(), out_);
    }

    void summary(const RunStats& s) override {
        fmt::print(summary_out_, "{} events, {} filtered, {} dropped\n", s.events, s.filtered, s.dropped);
    }

private:
    std::FILE* out_;
    std::FILE* summary_out_;
};

class JsonFormatter : public Formatter {
public:
    explicit JsonFormatter(std::FILE* out) : out_(out) {}

    void write(const Event& ev) override {
        nlohmann::ordered_json j = {{"ts", ev.ts_ns / 1e9}, {"comm", ev.comm}, {"pid", ev.pid},
                                    {"tgid", ev.tgid},     {"cpu", ev.cpu},   {"probe", ev.probe}};
        auto& fields = j["fields"] = nlohmann::ordered_json::object();
        for (const auto& f : ev.fields) {
            const auto& v = f.value;
            if (v.display != Display::Decimal)
                fields[f.name] = format_value(v);
            else
                std::visit([&](const auto& x) { fields[f.name] = x; }, v.v);
        }
        if (!ev.stack.empty()) j["stack"] = ev.stack;
        emit(j);
    }

    void summary(const RunStats& s) override {
        emit({{"summary", {{"events", s.events}, {"filtered", s.filtered}, {"dropped", s.dropped}}}});
    }

private:
    void emit(const nlohmann::ordered_json& j) {
        std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
        std::fwrite(line.data(), 1, line.size(), out_);
    }

    std::FILE* out_;
};

}  // namespace

std::string format_value(const Value& v) {
    if (const auto* s = std::get_if<std::string>(&v.v)) return printable(*s);
    std::uint64_t bits = std::holds_alternative<std::int64_t>(v.v) ? static_cast<std::uint64_t>(std::get<std::int64_t>(v.v))
                                                                   : std::get<std::uint64_t>(v.v);
    switch (v.display) {
    case Display::Hex: return fmt::format("0x{:x}", bits);
    case Display::IPv4: return ipv4(bits);
    default:
        if (const auto* i = std::get_if<std::int64_t>(&v.v)) return std::to_string(*i);
        return std::to_string(bits);
    }
}

std::unique_ptr<Formatter> text_formatter(std::FILE* out, std::FILE* summary_out) {
    return std::make_unique<TextFormatter>(out, summary_out);
}

std::unique_ptr<Formatter> json_formatter(std::FILE* out) { return std::make_unique<JsonFormatter>(out); }

}  // namespace ksurf
