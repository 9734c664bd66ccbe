// Kernel types from BTF: the only source of struct layout in ksurf. Offsets are never
// hard-coded; everything a probe reads is bound here to a BTF type and a byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct btf;

namespace ksurf {

// A C type: a type id in one BTF object plus `depth` extra levels of pointer on top of it,
// so that "struct iphdr *" or "struct file **" exist even when the BTF holds no PTR to
// them (a cast names such types freely). Default-constructed, it is void. A Type borrows
// the BTF of the Btf that made it and must not outlive that Btf.
class Type {
public:
    // Bool and Char are integers too (size() and is_signed() apply). Char is plain `char`,
    // which holds text; `signed char`/`unsigned char` (u8, s8) are Int.
    enum class Kind { Void, Int, Bool, Char, Enum, Float, Pointer, Array, Struct, Union, FuncProto };

    Type() = default;
    Type(const struct btf* btf, std::uint32_t id, unsigned depth = 0) : btf_(btf), id_(id), depth_(depth) {}

    // The kind under typedefs and qualifiers. A forward-declared struct/union (no layout in
    // this BTF) is Struct/Union of size 0.
    Kind kind() const;
    // Bytes; 0 for void and functions.
    std::size_t size() const;
    // A signed integer, char or enum (an enum is signed when its BTF says so).
    bool is_signed() const;
    // Without typedefs, const, volatile, restrict and type tags.
    Type strip() const;
    // The pointed-to type (not stripped) of a Pointer.
    Type pointee() const;
    Type pointer_to() const { return {btf_, id_, depth_ + 1}; }
    // The element type (not stripped) and element count of an Array.
    Type elem() const;
    std::uint32_t count() const;
    // C text as a declaration would spell it, keeping typedef names: "struct sk_buff *",
    // "char[16]", "const char *", "__be32", "int (*)(int, char *)".
    std::string name() const;
    // A declaration of VAR of this type: "char comm[16]", "void (*fn)(int)", "struct sk_buff *skb".
    std::string declaration(std::string_view var) const;

    const struct btf* btf() const { return btf_; }
    std::uint32_t id() const { return id_; }
    unsigned depth() const { return depth_; }

private:
    const struct btf* btf_ = nullptr;
    std::uint32_t id_ = 0;
    unsigned depth_ = 0;
};

// A struct/union member found by name, possibly inside nested anonymous structs/unions.
// (Not `Member`: that is the `a->b` node of ast.h, and the resolver includes both.)
struct MemberLayout {
    Type type;                        // as declared: typedef names kept
    std::size_t offset = 0;           // bytes from the start of the outer struct (a
                                      // bitfield: the byte holding its first bit)
    std::uint32_t bit_offset = 0;     // bits from the start of the outer struct
    std::uint32_t bitfield_size = 0;  // 0 unless a bitfield
};

// A member as declared: anonymous struct/union members keep their place (empty name).
struct DeclaredMember {
    std::string name;
    MemberLayout layout;
};

// The members of struct/union AGG in declaration order, offsets from AGG's start: what a
// layout listing shows, where member() looks through anonymous members.
std::vector<DeclaredMember> declared_members(Type agg);

// `agg` is a struct or union, possibly behind typedefs/qualifiers. Throws "struct sk_buff
// has no member 'lenn'; did you mean 'len'?".
MemberLayout member(Type agg, std::string_view name);

// The scalar a struct or union of one member wraps, through nested wrappers: int for
// atomic_t, atomic_t's int for refcount_t, uid_t for kuid_t. nullopt unless AGG is such a
// wrapper of an integer, enum or pointer (a bitfield or padding is not a plain wrapper).
std::optional<Type> wrapped_scalar(Type agg);

// Whether enum type E (typedefs stripped) has an enumerator NAME: what a kernel's BTF
// tells of the features it was built with (BPF_FUNC_* in enum bpf_func_id).
bool has_enumerator(Type e, std::string_view name);

// "struct sk_buff *", under typedefs and qualifiers: the packets ksurf reads.
bool is_skb_pointer(const Type& t);

struct Param {
    std::string name;  // empty when BTF has none (tracepoint protos)
    Type type;
};

struct Function {
    std::string name;
    std::string module;  // empty: vmlinux (or the --btf file)
    Type ret;
    std::vector<Param> params;
    bool variadic = false;
    // The FUNC's type id in its BTF (a tracepoint's: its btf_trace_<event> typedef's): what
    // a tracing program names as its attach target.
    std::uint32_t btf_id = 0;

    // Index into params; throws "function 'f' has no parameter 'x'; did you mean 'y'?".
    std::size_t param_index(std::string_view param) const;
};

// A kernel variable vmlinux's BTF describes (BTF_KIND_VAR), and whether it lives in the
// per-CPU section (.data..percpu), where its address is an offset into each CPU's area.
struct Variable {
    Type type;
    bool per_cpu = false;
};

// Owns the BTF objects: vmlinux (or an explicit file) and, loaded on first need, the
// split BTF of kernel modules. Lookups are const even when they load a module (its
// answers were there all along); not thread-safe.
class Btf {
public:
    // vmlinux BTF from `dir`/vmlinux; modules from `dir`/<module> as split BTF over it.
    static Btf kernel(const std::filesystem::path& dir = "/sys/kernel/btf");
    // Raw BTF or an ELF object/vmlinux with a .BTF section (--btf FILE); no modules.
    static Btf from_file(const std::filesystem::path& file);

    // A C type name as written in a cast: "struct iphdr *", "union foo", "u32",
    // "unsigned long", "const char *", "struct file **". Looked up in `module`'s BTF
    // (which includes vmlinux) when given. Throws "unknown type 'struct foo'".
    Type find_type(std::string_view c_name, std::string_view module = {}) const;

    // "func" (vmlinux, then each module with BTF) or "module:func". Throws "function 'foo'
    // not found in BTF".
    Function find_function(std::string_view name) const;

    // The tp_btf prototype of a tracepoint from its btf_trace_<event> typedef, without the
    // leading `void *__data`; BTF does not name these parameters.
    Function find_tracepoint_proto(std::string_view event) const;
    // The variable NAME of vmlinux's BTF; nullopt when it has none (Debian's BTF lists
    // only per-CPU variables).
    std::optional<Variable> find_variable(std::string_view name) const;
    // Every function of vmlinux's BTF and, with MODULES, of each loaded module's; with
    // KEEP, only those whose name it accepts (the others are never built).
    std::vector<Function> functions(bool modules, const std::function<bool(std::string_view)>& keep = {}) const;
    // Every function vmlinux's BTF describes: what globs expand over when the kernel's own
    // list of traceable functions cannot be read.
    std::vector<std::string> function_names() const;

    // Loaded by kernel(): the running kernel's own BTF, which the verifier checks the
    // programs' BTF-typed pointers against; not a --btf file, which may describe another.
    bool of_running_kernel() const { return !modules_dir_.empty(); }

private:
    struct Deleter {
        void operator()(struct btf* b) const;
    };
    using Ptr = std::unique_ptr<struct btf, Deleter>;
    struct Found {
        const struct btf* btf;
        std::uint32_t id;
        std::string module;
    };

    Btf(std::filesystem::path base_file, std::filesystem::path modules_dir)
        : base_file_(std::move(base_file)), modules_dir_(std::move(modules_dir)) {}
    // vmlinux's (or the file's) BTF, parsed on first use: a run whose probes need no type
    // (tracepoint record fields) never pays its 10 ms and 10 MB.
    const struct btf* base() const;
    // vmlinux for "" and "vmlinux", else the module's split BTF, loaded on first use.
    const struct btf* btf_of(std::string_view module) const;
    // The type of BTF kind `kind` named `name`: in `module` when given, else in vmlinux and
    // then in each module.
    std::optional<Found> locate(std::string_view module, std::string_view name, int kind) const;

    // base_ is declared first so that it outlives the split module BTF built on it.
    mutable Ptr base_;
    std::filesystem::path base_file_;
    std::filesystem::path modules_dir_;  // empty: no module BTF
    mutable std::map<std::string, Ptr, std::less<>> modules_;
};

}  // namespace ksurf
