#include "ksurf/tracefs_reader.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "ksurf/error.h"
#include "ksurf/file.h"
#include "libtracefs.h"

namespace ksurf::tracefs {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) { return read_file(path).value_or(""); }

}  // namespace

std::optional<std::uint64_t> Record::number(std::uint32_t offset, std::uint32_t size) const {
    if (std::size_t{offset} + size > data.size()) return std::nullopt;
    std::uint64_t v = 0;
    std::memcpy(&v, data.data() + offset, std::min<std::uint32_t>(size, 8));
    return v;
}

void Reader::TepFree::operator()(tep_handle* t) const { tep_free(t); }
void Reader::InstanceFree::operator()(tracefs_instance* i) const { tracefs_instance_free(i); }

Reader::Reader(std::string root, const std::string& instance, const std::vector<const EventFormat*>& events,
               OnRecord on_record, std::function<void()> after_pass)
    : root_(std::move(root)), on_record_(std::move(on_record)), after_pass_(std::move(after_pass)) {
    if (tracefs_set_tracing_dir(root_.data()) != 0) fail("libtracefs cannot use {}", root_);
    dir_ = root_;
    if (!instance.empty()) {
        instance_.reset(tracefs_instance_alloc(root_.c_str(), instance.c_str()));
        if (!instance_) fail("cannot open the tracefs instance {}: {}", instance, errno_text(errno));
        dir_ = (fs::path(root_) / "instances" / instance).string();
    }
    tep_.reset(tep_alloc());
    if (!tep_) fail("out of memory");
    // Record headers (sizes, timestamps) are laid out as header_page says, whatever the event.
    std::string header = slurp(fs::path(root_) / "events/header_page");
    if (tep_parse_header_page(tep_.get(), header.data(), header.size(), sizeof(long)) != 0)
        fail("cannot parse {}/events/header_page", root_);
    for (const EventFormat* e : events) {
        std::string format = slurp(fs::path(root_) / "events" / e->system / e->name / "format");
        if (tep_parse_event(tep_.get(), format.data(), format.size(), e->system.c_str()) != 0)
            fail("cannot parse the format of {}/{}", e->system, e->name);
    }
}

Reader::~Reader() = default;

int Reader::on_raw(tep_event* event, tep_record* record, int cpu, void* ctx) {
    auto* self = static_cast<Reader*>(ctx);
    try {
        Record r;
        r.id = static_cast<std::uint32_t>(event->id);
        r.ts_ns = record->ts;
        r.tid = static_cast<std::uint32_t>(tep_data_pid(self->tep_.get(), record));
        r.cpu = static_cast<std::uint32_t>(cpu);
        r.flags = static_cast<std::uint8_t>(tep_data_flags(self->tep_.get(), record));
        r.data = {static_cast<const std::uint8_t*>(record->data), static_cast<std::size_t>(record->size)};
        self->read_++;
        self->on_record_(r);
        return 0;
    } catch (...) {
        // C frames are in between: stop the iteration and rethrow once out of them.
        self->error_ = std::current_exception();
        return 1;
    }
}

std::size_t Reader::drain() {
    const std::size_t before = read_;
    tasks_.clear();
    saved_loaded_ = false;
    const int rc = tracefs_iterate_raw_events(tep_.get(), instance_.get(), nullptr, 0, on_raw, this);
    const int err = errno;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    if (after_pass_) after_pass_();
    if (rc < 0) fail("cannot read the ring buffers of {}: {}", dir_, errno_text(err));
    return read_ - before;
}

bool Reader::poll(int timeout_ms) {
    if (drain() > 0 || timeout_ms <= 0) return true;
    if (::poll(nullptr, 0, timeout_ms) < 0 && errno == EINTR) return false;
    drain();
    return true;
}

std::uint64_t Reader::dropped() const {
    std::uint64_t n = 0;
    std::error_code ec;
    for (const auto& cpu : fs::directory_iterator(fs::path(dir_) / "per_cpu", ec)) {
        std::istringstream in(slurp(cpu.path() / "stats"));
        for (std::string line; std::getline(in, line);)
            for (std::string_view key : {"overrun: ", "commit overrun: ", "dropped events: "})
                if (line.starts_with(key)) n += std::stoull(line.substr(key.size()));
    }
    return n;
}

const Task& Reader::task(std::uint32_t tid) {
    auto [it, fresh] = tasks_.try_emplace(tid);
    if (fresh) it->second = lookup(tid);
    return it->second;
}

Task Reader::lookup(std::uint32_t tid) {
    if (tid == 0) return {"<idle>", 0};
    const fs::path proc = fs::path("/proc") / std::to_string(tid);
    // A task reaped between the open and the read reads as nothing: then it is gone, and
    // what ftrace saved of it is what is left.
    Task t;
    if (std::ifstream comm(proc / "comm"); comm && std::getline(comm, t.comm)) {
        std::istringstream status(slurp(proc / "status"));
        for (std::string line; std::getline(status, line);)
            if (line.starts_with("Tgid:")) t.tgid = std::stoul(line.substr(5));
        return t;
    }
    if (!saved_loaded_) load_saved();
    t = {"<...>", 0};  // as ftrace prints a task it did not save
    if (auto c = saved_comm_.find(tid); c != saved_comm_.end()) t.comm = c->second;
    if (auto g = saved_tgid_.find(tid); g != saved_tgid_.end()) t.tgid = g->second;
    return t;
}

void Reader::load_saved() {
    saved_loaded_ = true;
    saved_comm_.clear();
    saved_tgid_.clear();
    std::istringstream cmdlines(slurp(fs::path(root_) / "saved_cmdlines"));
    std::uint32_t pid = 0, tgid = 0;
    for (std::string comm; cmdlines >> pid && std::getline(cmdlines >> std::ws, comm);) saved_comm_[pid] = comm;
    std::istringstream tgids(slurp(fs::path(root_) / "saved_tgids"));
    while (tgids >> pid >> tgid) saved_tgid_[pid] = tgid;
}

}  // namespace ksurf::tracefs
