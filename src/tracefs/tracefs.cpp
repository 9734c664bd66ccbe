#include "ksurf/tracefs.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "ksurf/file.h"
#include "ksurf/error.h"
#include "ksurf/suggest.h"

namespace ksurf::tracefs {
namespace {

constexpr const char* kDefaultMount = "/sys/kernel/tracing";

std::string slurp(const std::string& path) { return read_file(path).value_or(""); }

std::uint32_t number_after(std::string_view line, std::string_view key) {
    auto at = line.find(key);
    if (at == std::string_view::npos) return 0;
    std::uint32_t v = 0;
    auto s = line.substr(at + key.size());
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

struct PlainInt {
    std::uint32_t size;
    bool is_signed;
};

// The width and signedness of TYPE when it is a C integer type named without typedefs
// ("int", "unsigned long", "s32"); nullopt otherwise (pid_t, umode_t: only BTF knows).
std::optional<PlainInt> plain_int(std::string_view type) {
    static constexpr std::pair<std::string_view, PlainInt> kTypes[] = {
        {"char", {1, true}},        {"signed char", {1, true}},     {"unsigned char", {1, false}},
        {"short", {2, true}},       {"unsigned short", {2, false}}, {"int", {4, true}},
        {"unsigned int", {4, false}}, {"unsigned", {4, false}},     {"long", {8, true}},
        {"unsigned long", {8, false}}, {"long long", {8, true}},    {"unsigned long long", {8, false}},
        {"s8", {1, true}},  {"u8", {1, false}},  {"s16", {2, true}}, {"u16", {2, false}},
        {"s32", {4, true}}, {"u32", {4, false}}, {"s64", {8, true}}, {"u64", {8, false}},
    };
    if (type.starts_with("__")) type.remove_prefix(2);  // __s32, __u64
    for (const auto& [name, i] : kTypes)
        if (name == type) return i;
    return std::nullopt;
}

// "field:__data_loc char[] filename;" / "field:char comm[16];" / "field:const char * name;"
Field parse_field_line(std::string_view line) {
    Field f;
    auto decl_begin = line.find("field:") + 6;
    auto decl_end = line.find(';', decl_begin);
    std::string decl(line.substr(decl_begin, decl_end - decl_begin));
    f.offset = number_after(line, "offset:");
    f.size = number_after(line, "size:");
    f.is_signed = number_after(line, "signed:") != 0;
    for (auto [key, flag] : {std::pair{"__data_loc ", &f.data_loc}, std::pair{"__rel_loc ", &f.rel_loc}}) {
        if (decl.starts_with(key)) {
            *flag = true;
            decl.erase(0, std::string_view(key).size());
        }
    }
    auto name_at = decl.find_last_of(" *");
    f.name = decl.substr(name_at + 1);
    f.type = decl.substr(0, name_at + 1);
    while (!f.type.empty() && f.type.back() == ' ') f.type.pop_back();
    if (auto bracket = f.name.find('['); bracket != std::string::npos) {
        f.type += f.name.substr(bracket);
        f.name.erase(bracket);
    }
    // Syscall events store each argument in a long, whatever its type, and say signed:0
    // (`int dfd; size:8; signed:0`): the argument is the low bytes (x86 is little-endian),
    // of its own type's signedness, so AT_FDCWD reads -100 as the syscall saw it.
    if (const auto i = plain_int(f.type); i && !f.data_loc && !f.rel_loc && i->size < f.size) {
        f.size = i->size;
        f.is_signed = i->is_signed;
    }
    return f;
}

}  // namespace

bool Field::is_string() const {
    return type.starts_with("char[") || type.starts_with("const char[");
}

bool Field::is_pointer() const { return type.find('*') != std::string::npos; }

const Field* EventFormat::field(std::string_view n) const {
    for (const auto& f : fields)
        if (f.name == n) return &f;
    return nullptr;
}

bool EventFormat::has_dynamic() const {
    for (const auto& f : fields)
        if (f.data_loc || f.rel_loc) return true;
    return false;
}

std::uint32_t EventFormat::fixed_size() const {
    std::uint32_t end = 0;
    for (const auto& f : fields) end = std::max(end, f.offset + f.size);
    return end;
}

EventFormat parse_format(std::string_view system, std::string_view name, std::string_view text) {
    EventFormat ev{std::string(system), std::string(name), 0, {}};
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("ID:"))
            ev.id = number_after(line, "ID:");
        else if (line.find("field:") != std::string::npos)
            ev.fields.push_back(parse_field_line(line));
    }
    if (ev.fields.empty()) fail("tracepoint '{}/{}': format file lists no fields", system, name);
    return ev;
}

std::optional<std::string> find_mount() {
    auto dirs = mount_points("tracefs");
    if (dirs.empty()) return std::nullopt;
    return std::move(dirs.front());
}

std::string root(bool* mounted_now) {
    if (mounted_now) *mounted_now = false;
    if (auto dir = find_mount()) return *dir;
    if (::mount("nodev", kDefaultMount, "tracefs", 0, nullptr) != 0)
        fail("cannot mount tracefs at {}: {}", kDefaultMount, errno_text(errno));
    if (mounted_now) *mounted_now = true;
    return kDefaultMount;
}

std::vector<std::string> available_filter_functions(std::string* why_not) {
    std::vector<std::string> lines;
    std::string path;
    try {
        path = root() + "/available_filter_functions";
    } catch (const Error& e) {
        // No tracefs to mount: nothing is listed.
        if (why_not) *why_not = e.what();
        return lines;
    }
    const auto text = read_file(path);
    if (!text || text->empty()) {
        if (why_not) *why_not = fmt::format("cannot read {}: {}", path, errno_text(text ? EIO : errno));
        return lines;
    }
    // Tens of thousands of lines: one read, then split (a stream read them a line at a time).
    lines.reserve(std::count(text->begin(), text->end(), '\n') + 1);
    for (std::string_view rest = *text; !rest.empty();) {
        const std::size_t nl = rest.find('\n');
        lines.emplace_back(rest.substr(0, nl));
        rest.remove_prefix(nl == rest.npos ? rest.size() : nl + 1);
    }
    return lines;
}

std::vector<std::string> events(const std::string& root, std::string* why_not) {
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    std::error_code ec;
    const fs::path dir = fs::path(root) / "events";
    for (fs::directory_iterator sys(dir, ec), end; !ec && sys != end; sys.increment(ec)) {
        if (!sys->is_directory(ec)) continue;
        std::error_code inner;
        for (const auto& ev : fs::directory_iterator(sys->path(), inner))
            if (ev.is_directory(inner)) out.push_back(sys->path().filename().string() + "/" + ev.path().filename().string());
    }
    if (ec && why_not) *why_not = fmt::format("cannot read {}: {}", dir.string(), errno_text(ec.value()));
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> threads_of(std::uint32_t pid) {
    std::vector<std::string> tids;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(std::filesystem::path("/proc") / std::to_string(pid) / "task", ec))
        tids.push_back(t.path().filename());
    if (tids.empty()) fail("no process {}", pid);
    return tids;
}

EventFormat read_format(const std::string& root, std::string_view system, std::string_view event) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(root) / "events" / system / event;
    std::string text = slurp(dir / "format");
    if (text.empty() && errno == EACCES) fail("cannot read {}: {}", (dir / "format").string(), errno_text(errno));
    if (text.empty()) {
        // The names beside the one asked for, for a suggestion: events/ holds directories
        // and control files, which no typo comes close to. Sorted: of two as close, the
        // first by name, whatever order the directory lists them in.
        auto names = [](const fs::path& dir) {
            std::vector<std::string> out;
            std::error_code ec;
            for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
            std::sort(out.begin(), out.end());
            return out;
        };
        std::error_code ec;
        if (!fs::exists(fs::path(root) / "events" / system, ec))
            fail("tracepoint '{}/{}' not found: no event system '{}' in {}/events{}", system, event, system, root,
                 did_you_mean(system, names(fs::path(root) / "events")));
        fail("tracepoint '{}/{}' not found in {}/events/{}{}", system, event, root, system,
             did_you_mean(event, names(fs::path(root) / "events" / system)));
    }
    return parse_format(system, event, text);
}

}  // namespace ksurf::tracefs
