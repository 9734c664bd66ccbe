#include <pcap/pcap.h>

#include <fmt/format.h>

#include <memory>

#include "ksurf/error.h"
#include "ksurf/pcap.h"

namespace ksurf {

std::vector<CbpfInsn> compile_pcap(std::string_view expr) {
    // What `ret` returns for a match; any non-zero value means "take it".
    constexpr int kSnaplen = 262144;
    std::unique_ptr<pcap_t, decltype(&pcap_close)> p(pcap_open_dead(DLT_RAW, kSnaplen), pcap_close);
    if (!p) fail("--pcap: libpcap cannot open a DLT_RAW handle");
    bpf_program prog{};
    const std::string text(expr);
    if (pcap_compile(p.get(), &prog, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
        fail("--pcap '{}': {}", text, pcap_geterr(p.get()));
    std::vector<CbpfInsn> out;
    for (unsigned i = 0; i < prog.bf_len; i++) {
        const bpf_insn& in = prog.bf_insns[i];
        out.push_back({in.code, in.jt, in.jf, in.k});
    }
    pcap_freecode(&prog);
    return out;
}

std::string dump_cbpf(const std::vector<CbpfInsn>& program) {
    std::string out;
    for (const CbpfInsn& in : program)
        out += fmt::format("{{ 0x{:02x}, {}, {}, 0x{:08x} }}\n", in.code, in.jt, in.jf, in.k);
    return out;
}

}  // namespace ksurf
