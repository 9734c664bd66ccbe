// The call-graph fallback without BPF: ftrace's function_graph tracer, started in ROOT by
// set_graph_function and limited to ROOT and its callees by set_ftrace_filter, read back
// from the top-level per-CPU buffers by the tracefs reader and rebuilt into the same Graph
// as the BPF recorder's.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "ksurf/file.h"
#include "ksurf/error.h"
#include "ksurf/graph.h"
#include "ksurf/kallsyms.h"
#include "ksurf/tracefs.h"
#include "ksurf/tracefs_reader.h"

namespace ksurf {
namespace {

namespace fs = std::filesystem;

const std::string kStateDir = "/run/ksurf";
const std::string kStateFile = kStateDir + "/function_graph";

// What a run changes in the top-level instance, in the order it is put back: the tracer
// first, so that nothing is traced while the filters change.
constexpr const char* kSaved[] = {"current_tracer", "tracing_on",      "trace_clock",   "max_graph_depth",
                                  "set_ftrace_filter", "set_graph_function", "set_ftrace_pid",
                                  "set_ftrace_notrace_pid"};

// The trace flags of a record's header (include/linux/trace_events.h, stable since 2.6).
constexpr unsigned long kFlagHardirq = 0x08, kFlagSoftirq = 0x10, kFlagNmi = 0x40;

std::string slurp(const fs::path& path) { return read_file(path).value_or(""); }

// A tracefs file's value as words to write back: the selected one of "[local] global ...",
// the names of a filter list ("#### all functions enabled ####" and "no pid" are none).
std::vector<std::string> words(const std::string& file, const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.starts_with("#") || line == "no pid") continue;
        if (file == "trace_clock") {
            const auto open = line.find('['), close = line.find(']');
            if (open != std::string::npos && close > open) out.push_back(line.substr(open + 1, close - open - 1));
            continue;
        }
        out.push_back(line.substr(0, line.find_first_of(" \t")));  // "func [module]": the name
    }
    return out;
}

bool is_list(std::string_view file) { return file.starts_with("set_"); }

// Writes WORDS to ROOT/FILE: a list file is emptied first and gets one word per write, so
// that a name the kernel refuses does not take the others with it. Returns the refused.
std::vector<std::string> write_words(const std::string& root, const std::string& file, const std::vector<std::string>& ws) {
    const std::string path = root + "/" + file;
    const int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) fail("cannot open {}: {}", path, errno_text(errno));
    std::vector<std::string> refused;
    if (!is_list(file)) {
        const std::string v = ws.empty() ? "" : ws[0];
        const bool ok = write(fd, v.data(), v.size()) == ssize_t(v.size());
        const int err = errno;
        close(fd);
        if (!ok) fail("cannot write '{}' to {}: {}", v, path, errno_text(err));
        return refused;
    }
    // The newline ends the name: the kernel's parser carries a token on to the next write.
    for (const auto& w : ws)
        if (const std::string line = w + "\n"; write(fd, line.data(), line.size()) != ssize_t(line.size())) refused.push_back(w);
    close(fd);
    return refused;
}

// Whether PID is a running ksurf: alive and its comm is ours (a reused pid runs another program).
bool live_ksurf(pid_t pid) {
    if (kill(pid, 0) != 0 && errno != EPERM) return false;
    const std::string theirs = slurp(fs::path("/proc") / std::to_string(pid) / "comm");
    return !theirs.empty() && theirs == slurp("/proc/self/comm");
}

// The state file: "pid N", then one line per saved file: its name and its words.
struct SavedState {
    pid_t pid = 0;
    std::vector<std::pair<std::string, std::vector<std::string>>> files;

    static SavedState parse(const std::string& text) {
        SavedState s;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
            std::istringstream l(line);
            std::string name;
            l >> name;
            if (name == "pid") {
                l >> s.pid;
                continue;
            }
            auto& ws = s.files.emplace_back(name, std::vector<std::string>{}).second;
            for (std::string w; l >> w;) ws.push_back(w);
        }
        return s;
    }

    std::string text() const {
        std::string t = fmt::format("pid {}\n", pid);
        for (const auto& [name, ws] : files) t += fmt::format("{} {}\n", name, fmt::join(ws, " "));
        return t;
    }

    // Puts every file back; a value the kernel refuses does not stop the others.
    void restore(const std::string& root) const {
        for (const auto& [name, ws] : files) {
            try {
                write_words(root, name, ws);
            } catch (const Error&) {
            }
        }
    }
};

// Ownership of the top-level instance for one run: taken with the state file (O_EXCL),
// given back with what it saved.
class TopLevel {
public:
    TopLevel(std::string root, const std::function<void(const std::string&)>& note) : root_(std::move(root)) {
        mkdir(kStateDir.c_str(), 0700);
        for (int attempt = 0;; attempt++) {
            const int fd = open(kStateFile.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd >= 0) {
                take(fd);
                return;
            }
            if (errno != EEXIST || attempt > 0) fail("cannot create {}: {}", kStateFile, errno_text(errno));
            const SavedState old = SavedState::parse(slurp(kStateFile));
            if (live_ksurf(old.pid))
                fail("the function_graph tracer is in use by ksurf (pid {}): one graph at a time on tracefs, "
                     "set_graph_function is global",
                     old.pid);
            old.restore(root_);
            unlink(kStateFile.c_str());
            if (note) note(fmt::format("restored the top-level tracefs setup left by a killed run (pid {})", old.pid));
        }
    }

    ~TopLevel() {
        saved_.restore(root_);
        unlink(kStateFile.c_str());
    }

    TopLevel(const TopLevel&) = delete;
    TopLevel& operator=(const TopLevel&) = delete;

    const std::string& root() const { return root_; }

private:
    // Refuses a top level someone else uses, then saves it before anything changes.
    void take(int fd) {
        std::string why;
        if (const auto t = words("current_tracer", slurp(root_ + "/current_tracer")); t != std::vector<std::string>{"nop"})
            why = fmt::format("its current_tracer is {}, not nop", t.empty() ? "unreadable" : t[0]);
        else if (!slurp(root_ + "/events/enable").starts_with("0"))
            why = "events are enabled in it";
        std::string text;
        if (why.empty()) {
            saved_.pid = getpid();
            for (const char* f : kSaved)
                if (fs::exists(root_ + "/" + f)) saved_.files.emplace_back(f, words(f, slurp(root_ + "/" + f)));
            text = saved_.text();
        }
        const bool ok = why.empty() && write(fd, text.data(), text.size()) == ssize_t(text.size());
        close(fd);
        if (ok) return;
        unlink(kStateFile.c_str());
        if (!why.empty()) fail("the top-level tracefs instance {} is in use ({}): the function_graph fallback needs it", root_, why);
        fail("cannot write {}", kStateFile);
    }

    std::string root_;
    SavedState saved_;
};

class FunctionGraphRecorder final : public GraphRecorder {
public:
    FunctionGraphRecorder(const std::string& root, const std::vector<std::string>& callees, FunctionGraphOptions opt,
                          std::function<void(const Graph&)> on_graph)
        : opt_(std::move(opt)), on_graph_(std::move(on_graph)) {
        names_.push_back(root);
        names_.insert(names_.end(), callees.begin(), callees.end());
        for (std::uint32_t i = 0; i < names_.size(); i++)
            for (const KernelSymbol* s : opt_.syms->find(names_[i])) index_.emplace(s->addr, i);
    }

    void attach() override {
        std::string dir = tracefs::root();
        open_reader(dir);
        top_ = std::make_unique<TopLevel>(dir, opt_.note);
        // The filters first: switching the tracer on with them empty would trace the whole
        // kernel, which a TCG guest does not survive.
        const auto refused = write_words(dir, "set_ftrace_filter", names_);
        for (const auto& r : refused) {
            if (r == names_[0]) fail("ftrace refused ROOT {} in set_ftrace_filter", r);
            failed_.emplace_back(r, "refused by set_ftrace_filter");
        }
        if (!write_words(dir, "set_graph_function", {names_[0]}).empty()) fail("ftrace refused ROOT {} in set_graph_function", names_[0]);
        if (words("set_ftrace_filter", slurp(dir + "/set_ftrace_filter")).empty())
            fail("set_ftrace_filter stayed empty: not starting a tracer on every function");
        std::vector<std::string> tids;
        for (auto pid : opt_.pids)
            for (auto& t : tracefs::threads_of(pid)) tids.push_back(std::move(t));
        write_words(dir, "set_ftrace_pid", tids);
        // ksurf reads files to print graphs: were its own opens traced, a graph under
        // do_sys_openat2 would cause the next one, without end (set_ftrace_notrace_pid: 5.8).
        if (fs::exists(dir + "/set_ftrace_notrace_pid")) write_words(dir, "set_ftrace_notrace_pid", {std::to_string(getpid())});
        if (fs::exists(dir + "/max_graph_depth")) write_words(dir, "max_graph_depth", {std::to_string(opt_.config.max_depth + 1)});
        write_words(dir, "trace_clock", {"mono"});
        write_words(dir, "tracing_on", {"1"});
        write_words(dir, "current_tracer", {"function_graph"});
        if (opt_.note)
            opt_.note(fmt::format("function_graph tracer on ROOT {} and {} of {} callees (set_graph_function, set_ftrace_filter{})",
                                  names_[0], attached(), names_.size() - 1, tids.empty() ? "" : ", set_ftrace_pid"));
    }

    std::size_t attached() const override { return names_.size() - 1 - failed_.size(); }
    std::vector<std::pair<std::string, std::string>> failed() const override { return failed_; }

    bool poll(int timeout_ms) override { return top_ && reader_->poll(timeout_ms); }

    RecorderStats stats() const override {
        RecorderStats s = stats_;
        if (reader_) s.dropped = reader_->dropped();
        return s;
    }

    const std::vector<std::string>& names() const override { return names_; }

private:
    // Where funcgraph_entry and funcgraph_exit records hold what a graph needs.
    struct Layout {
        std::uint32_t id = 0;
        tracefs::Field func, depth;
        std::optional<tracefs::Field> retval;  // exit, with CONFIG_FUNCTION_GRAPH_RETVAL (6.5)

        static Layout of(const tracefs::EventFormat& f) {
            auto field = [&](const char* name) {
                const tracefs::Field* x = f.field(name);
                if (!x) fail("ftrace/{} has no field '{}'", f.name, name);
                return *x;
            };
            Layout l{f.id, field("func"), field("depth"), std::nullopt};
            if (const tracefs::Field* r = f.field("retval")) l.retval = *r;
            return l;
        }
    };

    void open_reader(const std::string& dir) {
        const auto entry = tracefs::read_format(dir, "ftrace", "funcgraph_entry");
        const auto exit = tracefs::read_format(dir, "ftrace", "funcgraph_exit");
        entry_ = Layout::of(entry);
        exit_ = Layout::of(exit);
        reader_.emplace(dir, "", std::vector{&entry, &exit}, [this](const tracefs::Record& r) { add(r); });
    }

    static std::uint8_t context_of(std::uint8_t flags) {
        return flags & kFlagNmi ? KSURF_CTX_NMI : flags & kFlagHardirq ? KSURF_CTX_HARDIRQ : flags & kFlagSoftirq ? KSURF_CTX_SOFTIRQ : KSURF_CTX_TASK;
    }

    std::optional<std::uint32_t> func_index(std::uint64_t addr) const {
        const KernelSymbol* s = opt_.syms->at(addr);
        if (!s) return std::nullopt;
        auto it = index_.find(s->addr);
        if (it == index_.end()) return std::nullopt;
        return it->second;
    }

    // The graph's task: a record names only the thread.
    Event root_event(const tracefs::Record& rec) {
        Event ev;
        ev.ts_ns = rec.ts_ns;
        ev.pid = rec.tid;
        ev.cpu = rec.cpu;
        ev.probe = names_[0];
        const tracefs::Task& task = reader_->task(rec.tid);
        ev.comm = task.comm;
        ev.tgid = task.tgid ? task.tgid : rec.tid;
        return ev;
    }

    void add(const tracefs::Record& rec) {
        const bool entry = rec.id == entry_.id;
        const Layout& l = entry ? entry_ : exit_;
        const auto func = func_index(rec.number(l.func).value_or(0));
        if (!func) return;
        const auto depth = static_cast<long long>(rec.number(l.depth).value_or(0));
        const std::uint32_t pid = rec.tid;
        ksurf_graph_rec r{};
        r.ts_ns = rec.ts_ns;  // trace_clock mono
        r.func = *func;
        r.context = context_of(rec.flags);
        Open& open = open_[key(r.context, pid, rec.cpu)];
        // ROOT entered again no deeper than the open graph's ROOT: that one's end was lost.
        if (open.graph && entry && *func == 0 && depth <= open.base) open = {};
        if (!open.graph) {
            // A graph starts at ROOT's entry; records of one whose start was lost are left out.
            if (!entry || *func != 0) return;
            open.graph = ++next_id_;
            open.base = depth;
            stats_.root_hits++;
            r.graph = open.graph;
            r.kind = KSURF_GRAPH_OPEN;
            builder_.add(r);
            builder_.add_root_event(root_event(rec), open.graph);
            return;
        }
        r.graph = open.graph;
        r.depth = static_cast<std::uint16_t>(depth - open.base);
        const bool close = !entry && *func == 0 && depth == open.base;
        r.kind = entry ? KSURF_GRAPH_ENTRY : close ? KSURF_GRAPH_CLOSE : KSURF_GRAPH_EXIT;
        if (close) r.value = l.retval ? rec.number(*l.retval).value_or(0) : 0;
        auto g = builder_.add(r);
        if (!close) return;
        open = {};
        if (!g) return;
        if (!l.retval) g->retval.reset();
        const std::uint32_t n = opt_.config.sample > 1 ? opt_.config.sample : 1;
        if (completed_++ % n) {
            stats_.counts[KSURF_GCOUNT_SAMPLED_OUT]++;
            return;
        }
        on_graph_(*g);
    }

    // Where a graph's records come from: its task, wherever it runs (it may sleep and
    // migrate), or the interrupt context of one CPU, which is not mixed with the task it
    // interrupted (the ftrace return stack is the task's, so their depths continue it).
    static std::uint64_t key(std::uint8_t context, std::uint32_t pid, std::uint32_t cpu) {
        if (context == KSURF_CTX_TASK && pid) return 1ULL << 63 | pid;
        return static_cast<std::uint64_t>(cpu) << 8 | context;
    }

    struct Open {
        std::uint32_t graph = 0;  // 0: none on this CPU
        long long base = 0;       // ROOT's depth in the task's ftrace return stack
    };

    FunctionGraphOptions opt_;
    std::function<void(const Graph&)> on_graph_;
    std::vector<std::string> names_;
    std::unordered_map<std::uint64_t, std::uint32_t> index_;  // function address → names_ index
    std::vector<std::pair<std::string, std::string>> failed_;
    Layout entry_, exit_;
    std::optional<tracefs::Reader> reader_;
    // After the reader: the tracer stops (TopLevel restores) before the reader goes.
    std::unique_ptr<TopLevel> top_;
    std::map<std::uint64_t, Open> open_;  // by key()
    GraphBuilder builder_;
    RecorderStats stats_;
    std::uint32_t next_id_ = 0;
    std::uint64_t completed_ = 0;
};

}  // namespace

std::unique_ptr<GraphRecorder> make_function_graph_recorder(const std::string& root, const std::vector<std::string>& callees,
                                                            FunctionGraphOptions opt, std::function<void(const Graph&)> on_graph) {
    return std::make_unique<FunctionGraphRecorder>(root, callees, std::move(opt), std::move(on_graph));
}

}  // namespace ksurf
