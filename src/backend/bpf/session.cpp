#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "ksurf/bpf_backend.h"
#include "ksurf/error.h"
#include "ksurf/event.h"
#include "tracepoint.skel.h"

namespace ksurf {

struct BpfSession::Impl {
    struct Probe {
        tracepoint_bpf* skel = nullptr;
        tracefs::EventFormat fmt;
    };

    Sink sink;
    std::vector<Probe> probes;
    ring_buffer* rb = nullptr;
    std::uint64_t delivered = 0;

    // Maps the first instance creates and every later instance reuses.
    int shared_fd(bpf_map* (*pick)(tracepoint_bpf*)) const { return bpf_map__fd(pick(probes.front().skel)); }

    static int on_event(void* ctx, void* data, std::size_t size) {
        auto* self = static_cast<Impl*>(ctx);
        if (size < sizeof(ksurf_event)) return 0;
        ksurf_event hdr;
        std::memcpy(&hdr, data, sizeof hdr);
        if (hdr.probe_id >= self->probes.size()) return 0;
        const auto& probe = self->probes[hdr.probe_id];
        auto payload = std::span(static_cast<const std::uint8_t*>(data) + sizeof hdr,
                                 std::min<std::size_t>(hdr.data_len, size - sizeof hdr));
        Event ev{hdr.ts_ns, hdr.pid, hdr.tgid, hdr.cpu,
                 std::string(hdr.comm, strnlen(hdr.comm, sizeof hdr.comm)), probe.fmt.name,
                 decode_tracepoint(probe.fmt, payload)};
        self->delivered++;
        self->sink(ev);
        return 0;
    }

    ~Impl() {
        ring_buffer__free(rb);
        for (auto& p : probes) tracepoint_bpf__destroy(p.skel);
    }
};

BpfSession::BpfSession(Sink sink) : impl_(std::make_unique<Impl>()) { impl_->sink = std::move(sink); }

BpfSession::~BpfSession() = default;

void BpfSession::add_tracepoint(const tracefs::EventFormat& fmt) {
    auto& I = *impl_;
    const std::string what = fmt.system + "/" + fmt.name;
    tracepoint_bpf* skel = tracepoint_bpf__open();
    if (!skel) fail("{}: cannot open the BPF object: {}", what, errno_text(errno));
    I.probes.push_back({skel, fmt});
    skel->rodata->probe_id = static_cast<std::uint32_t>(I.probes.size() - 1);
    // Dynamic (__data_loc) payloads follow the fixed fields; 256 bytes covers paths and
    // names without copying a whole kilobyte per event.
    skel->rodata->record_size = std::min<std::uint32_t>(fmt.fixed_size() + (fmt.has_dynamic() ? 256 : 0),
                                                        KSURF_MAX_DATA);
    if (I.probes.size() > 1) {
        for (auto pick : {+[](tracepoint_bpf* s) { return s->maps.events; },
                          +[](tracepoint_bpf* s) { return s->maps.stats; },
                          +[](tracepoint_bpf* s) { return s->maps.scratch; }}) {
            if (int err = bpf_map__reuse_fd(pick(skel), I.shared_fd(pick)))
                fail("{}: cannot share BPF maps: {}", what, errno_text(err));
        }
    }
    if (int err = tracepoint_bpf__load(skel)) fail("{}: BPF program load failed: {}", what, errno_text(err));
    skel->links.ksurf_tp = bpf_program__attach_tracepoint(skel->progs.ksurf_tp, fmt.system.c_str(), fmt.name.c_str());
    if (!skel->links.ksurf_tp) fail("{}: cannot attach the tracepoint: {}", what, errno_text(errno));
    if (!I.rb) {
        I.rb = ring_buffer__new(bpf_map__fd(skel->maps.events), Impl::on_event, &I, nullptr);
        if (!I.rb) fail("cannot read the BPF ring buffer: {}", errno_text(errno));
    }
}

bool BpfSession::poll(int timeout_ms) {
    if (!impl_->rb) return false;
    int n = ring_buffer__poll(impl_->rb, timeout_ms);
    if (n == -EINTR) return false;
    if (n < 0) fail("reading the BPF ring buffer: {}", errno_text(n));
    return true;
}

RunStats BpfSession::stats() const {
    RunStats s;
    s.events = impl_->delivered;
    if (impl_->probes.empty()) return s;
    const int fd = impl_->shared_fd([](tracepoint_bpf* t) { return t->maps.stats; });
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<std::uint64_t> per_cpu(ncpu > 0 ? ncpu : 1);
    auto sum = [&](std::uint32_t key) {
        std::uint64_t total = 0;
        if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) == 0)
            for (auto v : per_cpu) total += v;
        return total;
    };
    s.filtered = sum(KSURF_STAT_FILTERED);
    s.dropped = sum(KSURF_STAT_DROPPED);
    return s;
}

}  // namespace ksurf
