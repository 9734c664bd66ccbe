// The loader of bpf/skb.bpf.c: one program per sk_buff argument position on every function
// (kprobe.multi, one link per position; else a kprobe per function), the clone and free
// probes, and the ring buffer of records.
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "ksurf/bpf_backend.h"
#include "ksurf/bpf_config.h"
#include "ksurf/skb_record.h"
// After the types its rodata uses.
#include "skb.skel.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/pcap.h"
#include "ksurf/skb.h"

namespace ksurf {
namespace {

struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

class Tracer final : public SkbTracer {
public:
    Tracer(SkbTracerOptions opt, std::function<void(const ksurf_skb_rec&)> on_record)
        : opt_(std::move(opt)), on_record_(std::move(on_record)), skel_(skb_bpf::open(), skb_bpf::destroy) {
        if (!skel_) fail("cannot open the skb BPF object: {}", errno_text(errno));
        if (!opt_.pcap.empty()) encode_cbpf(compile_pcap(opt_.pcap), opt_.pcap, skel_->rodata->cfg);
        skel_->rodata->cfg.layout = kernel_layout(*opt_.btf);
    }

    void attach(const SkbFunctions& set) override {
        const auto& functions = set.functions;
        Features& f = *opt_.features;
        const bool multi = opt_.attach == SkbAttach::KprobeMulti || (opt_.attach == SkbAttach::Auto && f.has(Feature::KprobeMulti));
        if (multi && !f.has(Feature::KprobeMulti)) fail("cannot attach with kprobe.multi: {}", f.get(Feature::KprobeMulti).reason);
        returns_ = multi && opt_.returns;
        if (opt_.returns && !multi)
            note(fmt::format("no return values: they need kretprobe.multi ({})",
                             opt_.attach == SkbAttach::Kprobe ? "--attach kprobe" : f.get(Feature::KprobeMulti).reason));

        std::map<unsigned, std::vector<const char*>> by_arg;
        for (const auto& fn : functions) by_arg[fn.arg].push_back(fn.name.c_str());
        bpf_program* p = nullptr;
        bpf_object__for_each_program(p, skel_->obj) bpf_program__set_autoload(p, false);
        for (const auto& [arg, names] : by_arg) bpf_program__set_autoload(program(arg, multi), true);
        bpf_program__set_autoload(skel_->progs.skb_multi_return, returns_);
        for (bpf_program* q : {skel_->progs.skb_clone_entry, skel_->progs.skb_clone_return, skel_->progs.skb_free})
            bpf_program__set_autoload(q, true);
        skel_->rodata->scfg.returns = returns_;
        if (int err = skb_bpf::load(skel_.get()))
            fail("cannot load the skb programs: {}{}", errno_text(err), err == -EACCES || err == -EINVAL ? " (-v shows the verifier's log)" : "");
        rb_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), on_ring, this, nullptr));
        if (!rb_) fail("cannot read the BPF ring buffer: {}", errno_text(errno));

        const auto t0 = std::chrono::steady_clock::now();
        attach_ends(set.frees);
        if (multi) {
            note(fmt::format("attaching {} functions with kprobe.multi{}", functions.size(), returns_ ? " and kretprobe.multi" : ""));
            for (const auto& [arg, names] : by_arg) links_.push_back(attach_multi(program(arg, true), names, false));
            std::vector<const char*> valued;  // a void function has nothing to return
            for (const auto& fn : functions)
                if (fn.ret != SkbReturn::Void) valued.push_back(fn.name.c_str());
            if (returns_ && !valued.empty()) links_.push_back(attach_multi(skel_->progs.skb_multi_return, valued, true));
            attached_ = functions.size();
        } else {
            for (std::size_t i = 0; i < functions.size(); i++) {
                // A line per tenth: enough to see a long attach move, few enough for a log.
                if (functions.size() >= 20 && i % (functions.size() / 10) == 0)
                    note(fmt::format("attaching kprobes: {}/{}", i, functions.size()));
                const auto& fn = functions[i];
                if (bpf_link* l = bpf_program__attach_kprobe(program(fn.arg, false), false, fn.name.c_str())) {
                    links_.emplace_back(l);
                    attached_++;
                } else {
                    failed_.emplace_back(fn.name, errno_text(errno));
                }
            }
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        note(fmt::format("attached {} of {} functions ({}) in {:.2f} s", attached_, functions.size(), multi ? "kprobe.multi" : "kprobes", s));
    }

    std::size_t attached() const override { return attached_; }
    std::vector<std::pair<std::string, std::string>> failed() const override { return failed_; }
    bool returns() const override { return returns_; }

    bool poll(int timeout_ms) override {
        int n = ring_buffer__poll(rb_.get(), timeout_ms);
        if (n == -EINTR) return false;
        if (n < 0) fail("reading the BPF ring buffer: {}", errno_text(n));
        return true;
    }

    SkbStats stats() const override {
        const int ncpu = libbpf_num_possible_cpus();
        std::vector<std::uint64_t> per_cpu(ncpu > 0 ? ncpu : 1);
        auto sum = [&](std::uint32_t key) {
            std::uint64_t total = 0;
            if (bpf_map__lookup_elem(skel_->maps.skb_counts, &key, sizeof key, per_cpu.data(), per_cpu.size() * 8, 0) == 0)
                for (auto v : per_cpu) total += v;
            return total;
        };
        return {sum(KSURF_SKB_HITS), sum(KSURF_SKB_MATCHED), sum(KSURF_SKB_DROPPED)};
    }

private:
    void note(const std::string& line) const {
        if (opt_.note) opt_.note(line);
    }

    bpf_program* program(unsigned arg, bool multi) const {
        bpf_program* const multis[] = {skel_->progs.skb_multi_arg0, skel_->progs.skb_multi_arg1, skel_->progs.skb_multi_arg2,
                                       skel_->progs.skb_multi_arg3, skel_->progs.skb_multi_arg4};
        bpf_program* const kprobes[] = {skel_->progs.skb_kprobe_arg0, skel_->progs.skb_kprobe_arg1, skel_->progs.skb_kprobe_arg2,
                                        skel_->progs.skb_kprobe_arg3, skel_->progs.skb_kprobe_arg4};
        return multi ? multis[arg] : kprobes[arg];
    }

    static Link attach_multi(bpf_program* p, const std::vector<const char*>& syms, bool ret) {
        LIBBPF_OPTS(bpf_kprobe_multi_opts, o, .syms = const_cast<const char**>(syms.data()), .cnt = syms.size(), .retprobe = ret);
        bpf_link* l = bpf_program__attach_kprobe_multi_opts(p, nullptr, &o);
        if (!l)
            fail("cannot attach {} functions with {}: {} (--attach kprobe attaches them one by one)", syms.size(),
                 ret ? "kretprobe.multi" : "kprobe.multi", errno_text(errno));
        return Link(l);
    }

    // skb_clone and FREES: without them paths would not follow clones, and a freed skb's
    // address would be taken for the packet when reused.
    void attach_ends(const std::vector<std::string>& frees) {
        auto kprobe = [&](bpf_program* p, const char* name, bool ret) {
            bpf_link* l = bpf_program__attach_kprobe(p, ret, name);
            if (!l) fail("cannot attach a {} to {}: {}", ret ? "kretprobe" : "kprobe", name, errno_text(errno));
            links_.emplace_back(l);
        };
        kprobe(skel_->progs.skb_clone_entry, kSkbCloneFunction, false);
        kprobe(skel_->progs.skb_clone_return, kSkbCloneFunction, true);
        for (const auto& name : frees) kprobe(skel_->progs.skb_free, name.c_str(), false);
    }

    static int on_ring(void* ctx, void* data, std::size_t size) {
        if (size < sizeof(ksurf_skb_rec)) return 0;
        ksurf_skb_rec r;
        std::memcpy(&r, data, sizeof r);
        static_cast<Tracer*>(ctx)->on_record_(r);
        return 0;
    }

    SkbTracerOptions opt_;
    std::function<void(const ksurf_skb_rec&)> on_record_;
    // In this order: links go before their programs.
    std::unique_ptr<skb_bpf, void (*)(skb_bpf*)> skel_;
    std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> rb_{nullptr, ring_buffer__free};
    std::vector<Link> links_;
    std::size_t attached_ = 0;
    std::vector<std::pair<std::string, std::string>> failed_;
    bool returns_ = false;
};

}  // namespace

std::unique_ptr<SkbTracer> make_skb_tracer(SkbTracerOptions opt, std::function<void(const ksurf_skb_rec&)> on_record) {
    return std::make_unique<Tracer>(std::move(opt), std::move(on_record));
}

}  // namespace ksurf
