#include "ksurf/btf.h"

#include "ksurf/error.h"
#include "ksurf/fd.h"
#include "ksurf/suggest.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <numeric>
#include <unordered_map>

namespace ksurf {
namespace {

using Kind = Type::Kind;

const btf_type* type_of(const struct btf* b, std::uint32_t id) {
    const btf_type* t = btf__type_by_id(b, id);
    if (!t) fail("BTF type id {} out of range", id);
    return t;
}

std::string_view name_of(const struct btf* b, std::uint32_t name_off) {
    const char* s = btf__name_by_offset(b, name_off);
    return s ? s : "";
}

std::uint32_t skip_mods(const struct btf* b, std::uint32_t id) {
    while (id) {
        const btf_type* t = type_of(b, id);
        if (!btf_is_mod(t) && !btf_is_typedef(t)) break;
        id = t->type;
    }
    return id;
}

// The first id of a module's own types in split BTF; 1 (the first id) in base BTF.
std::uint32_t own_start(const struct btf* b) {
    const struct btf* base = btf__base_btf(b);
    return base ? btf__type_cnt(base) : 1;
}

// Names to ids of one BTF's own types, built at its kScans-th lookup: vmlinux has 100k+
// types and a glob resolves hundreds of functions, each a lookup; but the index takes 18 ms
// to build (vmlinux, 6.18), and a probe that names a struct or two would pay that for
// them. The lookups before it scan the types in order and stop at their match: the
// structs probes read (task_struct, sk_buff) come early in vmlinux.
constexpr unsigned kScans = 8;
struct Names {
    unsigned lookups = 0;
    std::unordered_multimap<std::string_view, std::uint32_t> index;
};
std::unordered_map<const struct btf*, Names>& names_of() {
    static std::unordered_map<const struct btf*, Names> names;
    return names;
}

// The first of B's own types (not its base's) named NAME of KIND; 0 when none is.
std::uint32_t find_own(const struct btf* b, std::string_view name, int kind) {
    Names& n = names_of()[b];
    const std::uint32_t first = own_start(b), end = btf__type_cnt(b);
    if (n.lookups < kScans) {
        n.lookups++;
        for (std::uint32_t id = first; id < end; ++id)
            if (const btf_type* t = type_of(b, id); btf_kind(t) == kind && t->name_off && name_of(b, t->name_off) == name) return id;
        return 0;
    }
    if (n.lookups == kScans) {
        n.lookups++;
        for (std::uint32_t id = first; id < end; ++id)
            if (const btf_type* t = type_of(b, id); t->name_off) n.index.emplace(name_of(b, t->name_off), id);
    }
    std::uint32_t best = 0;
    auto [from, to] = n.index.equal_range(name);
    for (auto it = from; it != to; ++it)
        if (btf_kind(type_of(b, it->second)) == kind && (!best || it->second < best)) best = it->second;
    return best;
}

// A module's own definition of a name shadows vmlinux's.
std::uint32_t find_named(const struct btf* b, std::string_view name, int kind) {
    if (std::uint32_t id = find_own(b, name, kind)) return id;
    const struct btf* base = btf__base_btf(b);
    return base ? find_own(base, name, kind) : 0;
}

std::vector<std::string_view> words_of(std::string_view s) {
    std::vector<std::string_view> words;
    for (std::size_t i = 0; (i = s.find_first_not_of(' ', i)) != s.npos;) {
        std::size_t end = std::min(s.find(' ', i), s.size());
        words.push_back(s.substr(i, end - i));
        i = end;
    }
    return words;
}

// C integer specifiers in any order, reduced to one spelling: casts say "unsigned long",
// gcc-built BTF says "long unsigned int", clang-built BTF "unsigned long".
std::optional<std::string> int_key(const std::vector<std::string_view>& words) {
    int longs = 0, shorts = 0, chars = 0, ints = 0, sign = 0, unsign = 0, bools = 0;
    for (std::string_view w : words) {
        if (w == "long")
            ++longs;
        else if (w == "short")
            ++shorts;
        else if (w == "char")
            ++chars;
        else if (w == "int")
            ++ints;
        else if (w == "signed")
            ++sign;
        else if (w == "unsigned")
            ++unsign;
        else if (w == "_Bool" || w == "bool")
            ++bools;
        else
            return std::nullopt;
    }
    if (bools) return words.size() == 1 ? std::optional<std::string>("_Bool") : std::nullopt;
    if (sign + unsign > 1 || ints > 1 || longs > 2 || shorts + chars > 1 || (longs && shorts + chars) ||
        (chars && ints))
        return std::nullopt;
    std::string prefix = unsign ? "unsigned " : "";
    if (chars) return (sign ? "signed " : prefix) + "char";
    return prefix + (shorts ? "short" : longs == 2 ? "long long" : longs ? "long" : "int");
}

std::uint32_t find_int(const struct btf* b, const std::string& key) {
    for (std::uint32_t id = 1, n = btf__type_cnt(b); id < n; ++id) {
        const btf_type* t = type_of(b, id);
        if (btf_is_int(t) && int_key(words_of(name_of(b, t->name_off))) == key) return id;
    }
    return 0;
}

// A type named without pointers or qualifiers: "struct sk_buff", "u32", "unsigned long".
std::uint32_t find_base(const struct btf* b, const std::vector<std::string_view>& words) {
    if (words.size() == 2 && words[0] == "struct") return find_named(b, words[1], BTF_KIND_STRUCT);
    if (words.size() == 2 && words[0] == "union") return find_named(b, words[1], BTF_KIND_UNION);
    if (words.size() == 2 && words[0] == "enum") {
        std::uint32_t id = find_named(b, words[1], BTF_KIND_ENUM);
        return id ? id : find_named(b, words[1], BTF_KIND_ENUM64);
    }
    if (words.size() == 1)
        for (int kind : {int(BTF_KIND_TYPEDEF), int(BTF_KIND_INT), int(BTF_KIND_FLOAT)})
            if (std::uint32_t id = find_named(b, words[0], kind)) return id;
    std::optional<std::string> key = int_key(words);
    return key ? find_int(b, *key) : 0;
}

// Pointers to arrays and functions need parentheses: int (*)[4], void (*)(int).
bool binds_tighter(const struct btf* b, std::uint32_t id) {
    if (!id) return false;
    const btf_type* t = type_of(b, id);
    return btf_is_array(t) || btf_is_func_proto(t);
}

// Spells type `id` around the declarator text `inner` built so far, C's inside-out way.
std::string render(const struct btf* b, std::uint32_t id, const std::string& inner) {
    auto with = [&](std::string base) {
        if (inner.empty()) return base;
        return base + (inner.front() == '[' ? "" : " ") + inner;
    };
    if (!id) return with("void");
    const btf_type* t = type_of(b, id);
    std::string_view name = name_of(b, t->name_off);
    auto tagged = [&](std::string_view keyword) {
        return with(fmt::format("{} {}", keyword, name.empty() ? "{...}" : name));
    };
    switch (btf_kind(t)) {
    case BTF_KIND_INT:
    case BTF_KIND_FLOAT:
    case BTF_KIND_TYPEDEF:
        return with(std::string(name));
    case BTF_KIND_STRUCT:
        return tagged("struct");
    case BTF_KIND_UNION:
        return tagged("union");
    case BTF_KIND_FWD:
        return tagged(btf_kflag(t) ? "union" : "struct");
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
        return tagged("enum");
    case BTF_KIND_TYPE_TAG:
        return render(b, t->type, inner);
    case BTF_KIND_CONST:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_RESTRICT: {
        std::string_view qual = btf_is_const(t) ? "const" : btf_is_volatile(t) ? "volatile" : "restrict";
        // A qualified pointer is "char *const"; anything else is "const char".
        if (t->type && btf_is_ptr(type_of(b, t->type)))
            return render(b, t->type, inner.empty() ? std::string(qual) : fmt::format("{} {}", qual, inner));
        return fmt::format("{} {}", qual, render(b, t->type, inner));
    }
    case BTF_KIND_PTR:
        return render(b, t->type, binds_tighter(b, t->type) ? "(*" + inner + ")" : "*" + inner);
    case BTF_KIND_ARRAY:
        return render(b, btf_array(t)->type, fmt::format("{}[{}]", inner, btf_array(t)->nelems));
    case BTF_KIND_FUNC_PROTO: {
        std::string params;
        const btf_param* p = btf_params(t);
        for (int i = 0; i < btf_vlen(t); ++i, ++p)
            params += fmt::format("{}{}", i ? ", " : "", p->type ? render(b, p->type, "") : "...");
        return render(b, t->type, fmt::format("{}({})", inner, params.empty() ? "void" : params));
    }
    }
    fail("BTF type id {} (kind {}) is not a C type", id, btf_kind(t));
}

struct NamedMember {
    std::string_view name;
    MemberLayout member;
};

// Every member reachable by name from struct/union `id`: anonymous struct/union members
// contribute their own members, at their offset.
void flatten(const struct btf* b, std::uint32_t id, std::uint32_t base_bits, std::vector<NamedMember>& out) {
    const btf_type* t = type_of(b, id);
    const btf_member* m = btf_members(t);
    for (std::uint32_t i = 0; i < btf_vlen(t); ++i, ++m) {
        std::uint32_t bits = base_bits + btf_member_bit_offset(t, i);
        if (std::string_view name = name_of(b, m->name_off); !name.empty()) {
            out.push_back({name, {Type(b, m->type), bits / 8, bits, btf_member_bitfield_size(t, i)}});
        } else if (std::uint32_t inner = skip_mods(b, m->type);
                   inner && btf_is_composite(type_of(b, inner))) {
            flatten(b, inner, bits, out);
        }
    }
}

const btf_type* own_type(const Type& s) {
    return s.depth() || !s.id() ? nullptr : type_of(s.btf(), s.id());
}

Function make_function(const struct btf* b, std::uint32_t proto, std::string_view name, std::string module,
                       std::size_t skip) {
    const btf_type* t = type_of(b, proto);
    Function f{std::string(name), std::move(module), Type(b, t->type), {}, false};
    const btf_param* p = btf_params(t);
    for (std::size_t i = 0; i < btf_vlen(t); ++i, ++p) {
        if (!p->type)
            f.variadic = true;  // the "..." marker, always last
        else if (i >= skip)
            f.params.push_back({std::string(name_of(b, p->name_off)), Type(b, p->type)});
    }
    return f;
}

// Raw base BTF mapped and parsed from memory, where the file can be mapped (the kernel's,
// from 6.16): reading vmlinux's 5.5 MB from sysfs took 11-17 ms of the 41 its load took
// (6.18). Null where it cannot be; an ELF file is not raw BTF either. (Modules' split BTF
// is small, and Debian's libbpf 1.1 exports no btf__new_split().)
struct btf* parse_mapped(const std::filesystem::path& file) {
    const Fd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st{};
    if (!fd || fstat(fd.get(), &st) || st.st_size <= 0) return nullptr;
    const auto size = static_cast<std::size_t>(st.st_size);
    void* data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (data == MAP_FAILED) return nullptr;
    // Copied: the BTF owns its data.
    struct btf* b = btf__new(data, static_cast<__u32>(size));
    munmap(data, size);
    return b;
}

struct btf* parse(const std::filesystem::path& file, struct btf* base) {
    struct btf* b = base ? nullptr : parse_mapped(file);
    if (b) return b;
    b = base ? btf__parse_split(file.c_str(), base) : btf__parse(file.c_str(), nullptr);
    if (!b) {
        int err = errno;
        // libbpf's own codes (4000 and up) say what is wrong with the file.
        char text[128];
        fail("cannot load BTF from {}: {}", file.string(),
             err >= __LIBBPF_ERRNO__START && libbpf_strerror(err, text, sizeof text) == 0 ? std::string(text) : errno_text(err));
    }
    return b;
}

}  // namespace

Type::Kind Type::kind() const {
    if (depth_) return Kind::Pointer;
    const btf_type* t = own_type(strip());
    if (!t) return Kind::Void;
    switch (btf_kind(t)) {
    case BTF_KIND_INT:
        if (btf_int_encoding(t) & BTF_INT_BOOL) return Kind::Bool;
        // clang and pahole leave BTF_INT_CHAR unset; plain char is the 1-byte int so named.
        if ((btf_int_encoding(t) & BTF_INT_CHAR) || (t->size == 1 && name_of(btf_, t->name_off) == "char"))
            return Kind::Char;
        return Kind::Int;
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64: return Kind::Enum;
    case BTF_KIND_FLOAT: return Kind::Float;
    case BTF_KIND_PTR: return Kind::Pointer;
    case BTF_KIND_ARRAY: return Kind::Array;
    case BTF_KIND_STRUCT: return Kind::Struct;
    case BTF_KIND_UNION: return Kind::Union;
    case BTF_KIND_FWD: return btf_kflag(t) ? Kind::Union : Kind::Struct;
    case BTF_KIND_FUNC_PROTO: return Kind::FuncProto;
    }
    fail("BTF type id {} (kind {}) is not a C type", strip().id_, btf_kind(t));
}

std::size_t Type::size() const {
    if (depth_) {
        std::size_t ptr = btf_ ? btf__pointer_size(btf_) : 0;
        return ptr ? ptr : sizeof(void*);
    }
    long long size = id_ ? btf__resolve_size(btf_, id_) : 0;
    return size > 0 ? static_cast<std::size_t>(size) : 0;
}

bool Type::is_signed() const {
    const btf_type* t = own_type(strip());
    if (!t) return false;
    if (btf_is_int(t)) return btf_int_encoding(t) & BTF_INT_SIGNED;
    return btf_is_any_enum(t) && btf_kflag(t);
}

Type Type::strip() const {
    return depth_ ? *this : Type(btf_, skip_mods(btf_, id_));
}

Type Type::pointee() const {
    if (depth_) return {btf_, id_, depth_ - 1};
    const btf_type* t = own_type(strip());
    if (!t || !btf_is_ptr(t)) fail("'{}' is not a pointer", name());
    return {btf_, t->type};
}

Type Type::elem() const {
    const btf_type* t = own_type(strip());
    if (!t || !btf_is_array(t)) fail("'{}' is not an array", name());
    return {btf_, btf_array(t)->type};
}

std::uint32_t Type::count() const {
    const btf_type* t = own_type(strip());
    if (!t || !btf_is_array(t)) fail("'{}' is not an array", name());
    return btf_array(t)->nelems;
}

std::string Type::name() const {
    std::string stars(depth_, '*');
    return render(btf_, id_, depth_ && binds_tighter(btf_, id_) ? "(" + stars + ")" : stars);
}

std::string Type::declaration(std::string_view var) const {
    std::string inner(depth_, '*');
    inner += var;
    return render(btf_, id_, depth_ && binds_tighter(btf_, id_) ? "(" + inner + ")" : inner);
}

MemberLayout member(Type agg, std::string_view name) {
    Type s = agg.strip();
    const btf_type* t = own_type(s);
    if (t && btf_is_fwd(t))
        fail("cannot take member '{}' of {}: only declared in BTF, no layout", name, agg.name());
    if (!t || !btf_is_composite(t))
        fail("cannot take member '{}' of '{}': not a struct or union", name, agg.name());
    std::vector<NamedMember> all;
    flatten(s.btf(), s.id(), 0, all);
    std::vector<std::string_view> names;
    for (const NamedMember& m : all) {
        if (m.name == name) return m.member;
        names.push_back(m.name);
    }
    fail("{} has no member '{}'{}", agg.name(), name, did_you_mean(name, names));
}

std::vector<DeclaredMember> declared_members(Type agg) {
    Type s = agg.strip();
    const btf_type* t = own_type(s);
    if (!t || !btf_is_composite(t)) fail("'{}' is not a struct or union with a layout in BTF", agg.name());
    std::vector<DeclaredMember> out;
    const btf_member* m = btf_members(t);
    for (std::uint32_t i = 0; i < btf_vlen(t); ++i, ++m) {
        const std::uint32_t bits = btf_member_bit_offset(t, i);
        out.push_back({std::string(name_of(s.btf(), m->name_off)),
                       {Type(s.btf(), m->type), bits / 8, bits, btf_member_bitfield_size(t, i)}});
    }
    return out;
}

std::optional<Type> wrapped_scalar(Type agg) {
    bool wrapped = false;
    for (Type t = agg;; wrapped = true) {
        Type s = t.strip();
        switch (s.kind()) {
        case Type::Kind::Int:
        case Type::Kind::Bool:
        case Type::Kind::Char:
        case Type::Kind::Enum:
        case Type::Kind::Pointer:
            if (wrapped) return t;
            return std::nullopt;
        case Type::Kind::Struct:
        case Type::Kind::Union:
            break;
        default:
            return std::nullopt;
        }
        const btf_type* own = own_type(s);
        if (!own || !btf_is_composite(own) || btf_vlen(own) != 1 || btf_member_bitfield_size(own, 0) ||
            btf_member_bit_offset(own, 0))
            return std::nullopt;
        Type inner(s.btf(), btf_members(own)->type);
        if (inner.size() != s.size()) return std::nullopt;
        t = inner;
    }
}

bool has_enumerator(Type e, std::string_view name) {
    Type s = e.strip();
    const btf_type* t = own_type(s);
    if (!t) return false;
    const std::uint32_t n = btf_vlen(t);
    if (btf_is_enum(t)) {
        for (std::uint32_t i = 0; i < n; i++)
            if (name_of(s.btf(), btf_enum(t)[i].name_off) == name) return true;
    } else if (btf_is_enum64(t)) {
        for (std::uint32_t i = 0; i < n; i++)
            if (name_of(s.btf(), btf_enum64(t)[i].name_off) == name) return true;
    }
    return false;
}

std::size_t Function::param_index(std::string_view param) const {
    std::vector<std::string_view> names;
    for (const Param& p : params) {
        if (p.name == param) return names.size();
        names.push_back(p.name);
    }
    fail("function '{}' has no parameter '{}'{}", name, param, did_you_mean(param, names));
}

void Btf::Deleter::operator()(struct btf* b) const {
    names_of().erase(b);
    btf__free(b);
}

Btf Btf::kernel(const std::filesystem::path& dir) {
    std::filesystem::path vmlinux = dir / "vmlinux";
    std::error_code ec;
    if (!std::filesystem::exists(vmlinux, ec))
        fail("kernel BTF not found at {} (CONFIG_DEBUG_INFO_BTF); pass --btf FILE", vmlinux.string());
    return Btf(vmlinux, dir);
}

Btf Btf::from_file(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) fail("BTF file {} not found", file.string());
    // Parsed now: an explicit file may be gone by the time a type is looked up.
    Btf b(file, {});
    b.base();
    return b;
}

const struct btf* Btf::base() const {
    if (!base_) base_.reset(parse(base_file_, nullptr));
    return base_.get();
}

const struct btf* Btf::btf_of(std::string_view module) const {
    if (module.empty() || module == "vmlinux") return base();
    if (modules_dir_.empty()) fail("module '{}': no module BTF with an explicit BTF file", module);
    if (auto it = modules_.find(module); it != modules_.end()) return it->second.get();
    std::filesystem::path file = modules_dir_ / module;
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) fail("module '{}' has no BTF at {}", module, file.string());
    return modules_.emplace(module, Ptr(parse(file, const_cast<struct btf*>(base())))).first->second.get();
}

std::optional<Btf::Found> Btf::locate(std::string_view module, std::string_view name, int kind) const {
    auto search = [&](std::string_view mod) -> std::optional<Found> {
        const struct btf* b = btf_of(mod);
        if (std::uint32_t id = find_own(b, name, kind))
            return Found{b, id, b == base() ? "" : std::string(mod)};
        return std::nullopt;
    };
    if (!module.empty() || modules_dir_.empty()) return search(module);
    if (auto found = search({})) return found;
    std::vector<std::string> modules;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(modules_dir_, ec))
        if (entry.path().filename() != "vmlinux") modules.push_back(entry.path().filename().string());
    std::sort(modules.begin(), modules.end());
    for (const std::string& mod : modules)
        if (auto found = search(mod)) return found;
    return std::nullopt;
}

Type Btf::find_type(std::string_view c_name, std::string_view module) const {
    const struct btf* b = btf_of(module);
    std::string spaced;  // "struct file**" as "struct file * *"
    for (char c : c_name) {
        if (c == '*')
            spaced += " * ";
        else
            spaced += c == '\t' ? ' ' : c;
    }
    std::vector<std::string_view> words;
    unsigned depth = 0;
    bool trailing = false;  // a name after a '*': "char *p"
    for (std::string_view w : words_of(spaced)) {
        if (w == "*")
            ++depth;
        else if (w == "const" || w == "volatile" || w == "restrict")
            continue;
        else if (depth)
            trailing = true;
        else
            words.push_back(w);
    }
    if (words.size() == 1 && words[0] == "void" && !trailing) return Type(b, 0, depth);
    std::uint32_t id = words.empty() || trailing ? 0 : find_base(b, words);
    if (!id) fail("unknown type '{}'", fmt::join(words_of(c_name), " "));
    return Type(b, id, depth);
}

Function Btf::find_function(std::string_view name) const {
    std::size_t colon = name.find(':');
    std::string_view module = colon == name.npos ? "" : name.substr(0, colon);
    std::string_view func = colon == name.npos ? name : name.substr(colon + 1);
    auto found = locate(module, func, BTF_KIND_FUNC);
    if (!found && module.empty()) fail("function '{}' not found in BTF", func);
    if (!found) fail("function '{}' not found in BTF of module '{}'", func, module);
    Function f = make_function(found->btf, type_of(found->btf, found->id)->type, func, std::move(found->module), 0);
    f.btf_id = found->id;
    return f;
}

std::optional<Variable> Btf::find_variable(std::string_view name) const {
    const struct btf* b = base();
    const std::uint32_t id = find_own(b, name, BTF_KIND_VAR);
    if (!id) return std::nullopt;
    Variable v{Type(b, type_of(b, id)->type), false};
    const std::uint32_t n = btf__type_cnt(b);
    for (std::uint32_t i = 1; i < n; i++) {
        const struct btf_type* t = type_of(b, i);
        if (!btf_is_datasec(t)) continue;
        const struct btf_var_secinfo* info = btf_var_secinfos(t);
        for (std::uint16_t j = 0; j < btf_vlen(t); j++)
            if (info[j].type == id) v.per_cpu = std::string_view(btf__name_by_offset(b, t->name_off)) == ".data..percpu";
    }
    return v;
}

Function Btf::find_tracepoint_proto(std::string_view event) const {
    auto found = locate({}, fmt::format("btf_trace_{}", event), BTF_KIND_TYPEDEF);
    if (!found) fail("tracepoint '{}' not found in BTF (no btf_trace_{})", event, event);
    Type ptr = Type(found->btf, found->id).strip();
    if (ptr.kind() != Kind::Pointer || ptr.pointee().kind() != Kind::FuncProto)
        fail("btf_trace_{} is not a function pointer typedef", event);
    // Skip the `void *__data` every tracepoint callback takes first.
    Function f = make_function(found->btf, ptr.pointee().strip().id(), event, std::move(found->module), 1);
    f.btf_id = found->id;
    return f;
}

std::vector<Function> Btf::functions(bool modules, const std::function<bool(std::string_view)>& keep) const {
    std::vector<Function> out;
    auto add = [&](const struct btf* b, std::uint32_t first, std::string module) {
        for (std::uint32_t id = first, n = btf__type_cnt(b); id < n; ++id)
            if (const btf_type* t = type_of(b, id); btf_is_func(t) && (!keep || keep(name_of(b, t->name_off)))) {
                out.push_back(make_function(b, t->type, name_of(b, t->name_off), module, 0));
                out.back().btf_id = id;
            }
    };
    add(base(), 1, "");
    if (!modules || modules_dir_.empty()) return out;
    const std::uint32_t own = btf__type_cnt(base());  // module ids continue vmlinux's
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(modules_dir_, ec)) {
        const std::string mod = entry.path().filename().string();
        if (mod != "vmlinux") add(btf_of(mod), own, mod);
    }
    return out;
}

std::vector<std::string> Btf::function_names() const {
    std::vector<std::string> names;
    for (Function& f : functions(false)) names.push_back(std::move(f.name));
    return names;
}

bool is_skb_pointer(const Type& t) {
    const Type s = t.strip();
    return s.kind() == Type::Kind::Pointer && s.pointee().strip().name() == "struct sk_buff";
}

}  // namespace ksurf
