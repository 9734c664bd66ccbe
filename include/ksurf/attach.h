// The attach engine: every BPF program ksurf runs is loaded and attached through here, for
// trace, graph and skb alike.
//
// A BPF object is opened and loaded by libbpf once per run (its template), which relocates
// it against the maps the caller shares; the relocated instructions are kept and the object,
// its ELF image and its BTF are freed. Each probe then loads the same instructions again
// (a clone) with its own frozen read-only data, program type and attach target: the
// verifier still sees the probe's configuration as constants and walks only the paths it
// uses, but nothing is parsed or relocated per probe. The program types differ only in
// what the kernel lets them call and where they attach, so one instruction stream serves
// fentry, kprobes and tracepoints alike. (retsnoop's mass attacher works the same way.)
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ksurf/fd.h"

struct bpf_map;

namespace ksurf {

enum class BpfAttach : std::uint8_t {
    Fentry, Fexit, Kprobe, Kretprobe, KprobeMulti, KretprobeMulti,
    Tracepoint,  // e probes reading the record (format-file fields)
    TpBtf,       // e probes reading TP_PROTO arguments (%N), typed by btf_trace_<event>
    RawTp,       // the same without BTF attach, read with bpf_probe_read
    Uprobe, Uretprobe,  // P/R: a function of a user-space binary, through the uprobe PMU
};
std::string_view bpf_attach_name(BpfAttach a);  // "fentry", "kretprobe.multi", ...

// Where one clone attaches.
struct AttachTarget {
    std::string name;              // function (kprobes may say "module:function"), or event
    std::string subsystem;         // tracepoint
    std::uint64_t offset = 0;      // kprobe: bytes into the function; uprobe: into the binary's file
    std::string binary;            // uprobe: the executable or library, an absolute path
    std::uint32_t btf_id = 0;      // fentry/fexit: the function's BTF id; tp_btf: btf_trace_<event>'s
    std::string btf_module;        // the module whose BTF holds btf_id; empty: vmlinux
};

// The BPF object a bpftool skeleton embeds (S: its C++ struct, e.g. probe_bpf): what a
// template is made from.
template <class S>
std::span<const std::uint8_t> elf_of() {
    std::size_t size = 0;
    const void* data = S::elf_bytes(&size);
    return {static_cast<const std::uint8_t*>(data), size};
}

// One BPF object's programs, loaded once and cloned per configuration and target.
class BpfTemplate {
public:
    // ELF is the object (a skeleton's elf_bytes()); PROGRAMS the ones to keep. SETUP sees
    // each map before the load: to size it, or to reuse a map of the caller's. Every clone
    // shares the template's maps; only .rodata is each clone's own.
    using MapSetup = std::function<void(bpf_map*)>;
    BpfTemplate(std::span<const std::uint8_t> elf, const std::vector<std::string>& programs, const MapSetup& setup = {});
    ~BpfTemplate();
    BpfTemplate(const BpfTemplate&) = delete;
    BpfTemplate& operator=(const BpfTemplate&) = delete;

    // The fd of the template's map NAME (one SETUP did not replace), for the host's reads.
    int map(std::string_view name) const;
    // PROGRAM as the template loaded it (its ELF section's type, the .rodata SETUP gave
    // it): for programs that attach to many targets with one configuration.
    int loaded(std::string_view program) const { return program_of(program).fd.get(); }
    // The .rodata the template was compiled with: the starting point of a clone's.
    const std::vector<std::uint8_t>& rodata() const { return rodata_; }
    // A frozen read-only data map holding DATA (rodata()'s size), for one or more clones.
    Fd make_rodata(std::span<const std::uint8_t> data) const;
    // PROGRAM as a program of attach type A, reading RODATA (a make_rodata() map) as its
    // .rodata, for TARGET where A names its target at load (fentry, fexit, tp_btf).
    // PREFIX (src/codegen's compiled filter) runs first and calls PROGRAM, placed right
    // behind it, as a subprogram with the context in r1; BPF jumps and calls are
    // relative, so PROGRAM's code is unchanged behind it. Clones carry no BTF or
    // func_info, which would have to describe the added instructions.
    // Throws "cannot load the kprobe program: ..." with the verifier's last words.
    Fd load(std::string_view program, BpfAttach a, int rodata, const AttachTarget& target = {},
            std::span<const bpf_insn> prefix = {}) const;
    // CODE alone (src/codegen's whole program, which addresses the template's maps by fd)
    // loaded under PROGRAM's name as A for TARGET: none of PROGRAM's instructions run.
    Fd load_code(std::string_view program, BpfAttach a, std::span<const bpf_insn> code, const AttachTarget& target = {}) const;

    // Loaded with the verifier's whole log to stderr when a load fails (-vv).
    static void set_verbose(bool v);

private:
    struct Program {
        std::string name;
        Fd fd;
        std::vector<std::uint64_t> insns;        // struct bpf_insn, as loaded
        std::vector<std::size_t> rodata_refs;   // indexes of the ld_imm64 that address .rodata
    };
    const Program& program_of(std::string_view name) const;
    Fd load_insns(const Program& prog, BpfAttach a, std::span<const bpf_insn> insns, const AttachTarget& target) const;

    std::vector<Program> programs_;
    std::vector<std::uint8_t> rodata_;
    std::uint32_t rodata_flags_ = 0;
    std::map<std::string, Fd, std::less<>> maps_;  // the object's own, kept for the clones (not .rodata)
};

// ---- attaching ----

// One attachment. Tracepoints and kprobes are perf events: their BPF link (from 5.15) is
// kept apart from the event, because closing the link detaches the program at once while
// closing the event waits for an RCU grace period under a kernel-wide mutex (tens of ms
// each, one after another). On 5.10 the event holds the program and the link is empty;
// the program's fd is kept then, so that the run's programs show among its fds.
struct Link {
    Fd link;
    Fd event;
    Fd prog;
};

// Attaches the loaded program PROG as A to TARGET. Throws "cannot attach kprobe vfs_read: ...".
Link attach(int prog, BpfAttach a, const AttachTarget& target);
// One kprobe.multi (RET: kretprobe.multi) link on SYMS, each function's cookie its
// COOKIES entry (none: 0). Throws with the count and the kernel's reason.
Link attach_multi(int prog, bool ret, const std::vector<const char*>& syms, const std::vector<std::uint64_t>& cookies);

// What stays attached for a run, detached all at once on destruction: every program first,
// from many threads (each trampoline or raw tracepoint detach waits for RCU, and those
// waits overlap). Perf events left without a program are inert; many of them go to a
// detached child process that closes them after ksurf has exited, since the kernel
// unregisters them one after another.
class Links {
public:
    Links() = default;
    Links(Links&&) = default;
    Links& operator=(Links&&) = default;
    ~Links() { clear(); }
    void add(Link l) { links_.push_back(std::move(l)); }
    std::size_t size() const { return links_.size(); }
    void clear();

private:
    std::vector<Link> links_;
};

// The sums over CPUs of the first N u64 counters of KEY's value in the per-CPU map FD.
std::vector<std::uint64_t> sum_per_cpu(int fd, std::uint32_t key, std::size_t n);

// The BTF object fd of a kernel module, for a clone attaching into it (cached per run).
int module_btf_fd(std::string_view module);

}  // namespace ksurf
