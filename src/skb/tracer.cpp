// The loader of bpf/skb.bpf.c, through the attach engine: one program per sk_buff argument
// position on every function (kprobe.multi, one link per position; else a kprobe per
// function), the clone and free probes, and the ring buffer of records.
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "ksurf/attach.h"
#include "ksurf/bpf_backend.h"
#include "ksurf/bpf_config.h"
#include "ksurf/skb_record.h"
// After the types its rodata uses.
#include "skb.skel.h"
#include "ksurf/error.h"
#include "ksurf/features.h"
#include "ksurf/pcap.h"
#include "ksurf/ring_reader.h"
#include "ksurf/run_loop.h"
#include "ksurf/skb.h"

namespace ksurf {
namespace {

// The program per sk_buff argument position, on kprobe.multi or on single kprobes.
std::string program(unsigned arg, bool multi) { return fmt::format("skb_{}_arg{}", multi ? "multi" : "kprobe", arg); }

class Tracer final : public SkbTracer {
public:
    Tracer(SkbTracerOptions opt, std::function<void(const ksurf_skb_rec&)> on_record)
        : opt_(std::move(opt)), on_record_(std::move(on_record)) {
        if (!opt_.pcap.empty()) encode_cbpf(compile_pcap(opt_.pcap), opt_.pcap, rodata_.cfg);
        rodata_.cfg.layout = kernel_layout(*opt_.btf);
    }

    ~Tracer() override {
        links_.clear();
        rb_.reset();
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
        std::vector<std::string> programs{"skb_clone_entry", "skb_clone_return", "skb_free"};
        for (const auto& [arg, names] : by_arg) programs.push_back(program(arg, multi));
        if (returns_) programs.push_back("skb_multi_return");
        rodata_.scfg.returns = returns_;
        // One load for the run: every program then attaches to all of its functions.
        tmpl_.emplace(elf_of<skb_bpf>(), programs, [this](bpf_map* m) {
            std::size_t size = 0;
            void* ro = const_cast<void*>(bpf_map__initial_value(m, &size));
            if (std::string_view(bpf_map__name(m)).ends_with(".rodata") && ro && size >= sizeof rodata_)
                std::memcpy(ro, &rodata_, sizeof rodata_);
        });
        rb_.emplace(tmpl_->map("events"), [this](std::span<const std::uint8_t> rec) {
            if (rec.size() < sizeof(ksurf_skb_rec)) return;
            ksurf_skb_rec r;
            std::memcpy(&r, rec.data(), sizeof r);
            on_record_(r);
        });

        const auto t0 = std::chrono::steady_clock::now();
        attach_ends(set.frees);
        if (multi) {
            note(fmt::format("attaching {} functions with kprobe.multi{}", functions.size(), returns_ ? " and kretprobe.multi" : ""));
            for (const auto& [arg, names] : by_arg) links_.add(attach_multi(tmpl_->loaded(program(arg, true)), false, names, {}));
            std::vector<const char*> valued;  // a void function has nothing to return
            for (const auto& fn : functions)
                if (fn.ret != SkbReturn::Void) valued.push_back(fn.name.c_str());
            if (returns_ && !valued.empty()) links_.add(attach_multi(tmpl_->loaded("skb_multi_return"), true, valued, {}));
            attached_ = functions.size();
        } else {
            for (std::size_t i = 0; i < functions.size() && !stop_requested(); i++) {
                // A line per tenth: enough to see a long attach move, few enough for a log.
                if (functions.size() >= 20 && i % (functions.size() / 10) == 0)
                    note(fmt::format("attaching kprobes: {}/{}", i, functions.size()));
                const auto& fn = functions[i];
                AttachTarget t;
                t.name = fn.name;
                try {
                    links_.add(ksurf::attach(tmpl_->loaded(program(fn.arg, false)), BpfAttach::Kprobe, t));
                    attached_++;
                } catch (const Error& e) {
                    failed_.emplace_back(fn.name, e.what());
                }
            }
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        note(fmt::format("attached {} of {} functions ({}) in {:.2f} s", attached_, functions.size(), multi ? "kprobe.multi" : "kprobes", s));
    }

    std::size_t attached() const override { return attached_; }
    std::vector<std::pair<std::string, std::string>> failed() const override { return failed_; }
    bool returns() const override { return returns_; }

    bool poll(int timeout_ms) override { return rb_->poll(timeout_ms); }

    SkbStats stats() const override {
        auto sum = [&](std::uint32_t key) { return sum_per_cpu(tmpl_->map("skb_counts"), key, 1)[0]; };
        return {sum(KSURF_SKB_HITS), sum(KSURF_SKB_MATCHED), sum(KSURF_SKB_DROPPED)};
    }

private:
    void note(const std::string& line) const {
        if (opt_.note) opt_.note(line);
    }

    // skb_clone and FREES: without them paths would not follow clones, and a freed skb's
    // address would be taken for the packet when reused.
    void attach_ends(const std::vector<std::string>& frees) {
        auto kprobe = [&](const char* prog, const std::string& name, bool ret) {
            AttachTarget t;
            t.name = name;
            links_.add(ksurf::attach(tmpl_->loaded(prog), ret ? BpfAttach::Kretprobe : BpfAttach::Kprobe, t));
        };
        kprobe("skb_clone_entry", kSkbCloneFunction, false);
        kprobe("skb_clone_return", kSkbCloneFunction, true);
        for (const auto& name : frees) kprobe("skb_free", name, false);
    }

    SkbTracerOptions opt_;
    std::function<void(const ksurf_skb_rec&)> on_record_;
    skb_bpf::skb_bpf__rodata rodata_{};
    std::optional<BpfTemplate> tmpl_;
    std::optional<RingReader> rb_;
    Links links_;
    std::size_t attached_ = 0;
    std::vector<std::pair<std::string, std::string>> failed_;
    bool returns_ = false;
};

}  // namespace

std::unique_ptr<SkbTracer> make_skb_tracer(SkbTracerOptions opt, std::function<void(const ksurf_skb_rec&)> on_record) {
    return std::make_unique<Tracer>(std::move(opt), std::move(on_record));
}

}  // namespace ksurf
