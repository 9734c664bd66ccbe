// Records → graphs → text and JSON. Each recording's records arrive in the order the kernel
// reserved them, which is the order of its calls: a stack per graph rebuilds the tree, and
// anything that does not nest is counted rather than guessed at.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "ksurf/error.h"
#include "ksurf/format.h"
#include "ksurf/graph.h"

namespace ksurf {

std::string_view context_name(std::uint8_t context) {
    switch (context) {
    case KSURF_CTX_TASK: return "task";
    case KSURF_CTX_SOFTIRQ: return "softirq";
    case KSURF_CTX_HARDIRQ: return "hardirq";
    case KSURF_CTX_NMI: return "nmi";
    }
    return "?";
}

GraphBuilder::Building* GraphBuilder::find(std::uint32_t graph) {
    for (auto& b : open_)
        if (b->g.id == graph) return b.get();
    return nullptr;
}

void GraphBuilder::add_root_event(const Event& ev, std::uint32_t graph) {
    if (Building* b = find(graph)) b->g.root = ev;
}

std::optional<Graph> GraphBuilder::add(const ksurf_graph_rec& r) {
    if (r.kind == KSURF_GRAPH_OPEN) {
        auto b = std::make_unique<Building>();
        b->g.id = r.graph;
        b->g.context = r.context;
        b->g.start_ns = r.ts_ns;
        open_.push_back(std::move(b));
        return std::nullopt;
    }
    Building* b = find(r.graph);
    if (!b) return std::nullopt;  // opened before the host read the ring
    auto& stack = b->stack;
    switch (r.kind) {
    case KSURF_GRAPH_ENTRY: {
        if (r.depth != stack.size() + 1) b->g.mismatched++;
        auto& siblings = stack.empty() ? b->g.calls : stack.back()->calls;
        siblings.push_back({r.func, r.ts_ns, 0, false, {}});
        stack.push_back(&siblings.back());
        break;
    }
    case KSURF_GRAPH_EXIT:
        if (stack.empty() || r.depth != stack.size() || stack.back()->func != r.func) {
            b->g.mismatched++;
            break;
        }
        stack.back()->exit_ns = r.ts_ns;
        stack.back()->returned = true;
        stack.pop_back();
        break;
    case KSURF_GRAPH_CLOSE: {
        if (!stack.empty()) b->g.mismatched++;
        Graph g = std::move(b->g);
        g.end_ns = r.ts_ns;
        g.retval = r.value;
        std::erase_if(open_, [&](const auto& p) { return p.get() == b; });
        return g;
    }
    }
    return std::nullopt;
}

namespace {

std::string us(std::uint64_t ns) { return fmt::format("{:.3f} us", static_cast<double>(ns) / 1000.0); }

std::string header(const Graph& g, const std::vector<std::string>& names) {
    const Event& e = g.root;
    std::string args;
    for (const auto& f : e.fields) args += fmt::format("{}{}={}", args.empty() ? "" : " ", f.name, format_value(f.value));
    return fmt::format("graph {}: {}-{} [{:03}] {} {}.{:06}: {}({})", g.id, e.comm, e.pid, e.cpu, context_name(g.context),
                       g.start_ns / 1000000000, g.start_ns / 1000 % 1000000, names.at(0), args);
}

void text_calls(std::string& out, const std::vector<GraphCall>& calls, unsigned depth, const std::vector<std::string>& names) {
    const std::string indent(2 * depth + 2, ' ');
    for (const auto& c : calls) {
        const std::string& name = c.func < names.size() ? names[c.func] : "?";
        const std::string dur = c.returned ? us(c.exit_ns - c.entry_ns) : "";
        if (c.calls.empty()) {
            out += fmt::format("{:>14} |{}{}();{}\n", dur, indent, name, c.returned ? "" : " /* no return */");
            continue;
        }
        out += fmt::format("{:>14} |{}{}() {{\n", "", indent, name);
        text_calls(out, c.calls, depth + 1, names);
        out += fmt::format("{:>14} |{}}}{}\n", dur, indent, c.returned ? "" : " /* no return */");
    }
}

nlohmann::json json_calls(const std::vector<GraphCall>& calls, std::uint64_t start, const std::vector<std::string>& names) {
    auto arr = nlohmann::json::array();
    for (const auto& c : calls) {
        nlohmann::json j{{"func", c.func < names.size() ? names[c.func] : "?"}, {"at_ns", c.entry_ns - start}};
        if (c.returned) j["duration_ns"] = c.exit_ns - c.entry_ns;
        if (!c.calls.empty()) j["calls"] = json_calls(c.calls, start, names);
        arr.push_back(std::move(j));
    }
    return arr;
}

}  // namespace

std::string format_graph(const Graph& g, const std::vector<std::string>& names) {
    std::string out = header(g, names) + "\n";
    out += fmt::format("{:>14} |  {}() {{\n", "", names.at(0));
    text_calls(out, g.calls, 1, names);
    out += fmt::format("{:>14} |  }}{}{}\n", us(g.end_ns - g.start_ns),
                       g.retval ? fmt::format(" = {} ({:#x})", static_cast<std::int64_t>(*g.retval), *g.retval) : "",
                       g.mismatched ? fmt::format(" /* {} records did not nest */", g.mismatched) : "");
    return out;
}

std::string graph_json(const Graph& g, const std::vector<std::string>& names) {
    nlohmann::json args = nlohmann::json::object();
    for (const auto& f : g.root.fields) {
        if (std::holds_alternative<Absent>(f.value.v)) continue;
        if (const auto* s = std::get_if<std::string>(&f.value.v)) args[f.name] = *s;
        else if (f.value.display == Display::Hex || f.value.display == Display::IPv4) args[f.name] = format_value(f.value);
        else if (const auto* i = std::get_if<std::int64_t>(&f.value.v)) args[f.name] = *i;
        else args[f.name] = std::get<std::uint64_t>(f.value.v);
    }
    nlohmann::json j{{"graph", g.id},
                     {"root", names.at(0)},
                     {"ts", static_cast<double>(g.start_ns) / 1e9},
                     {"comm", g.root.comm},
                     {"pid", g.root.tgid},
                     {"tid", g.root.pid},
                     {"cpu", g.root.cpu},
                     {"context", context_name(g.context)},
                     {"args", std::move(args)},
                     {"duration_ns", g.end_ns - g.start_ns},
                     {"calls", json_calls(g.calls, g.start_ns, names)}};
    if (g.retval) j["retval"] = static_cast<std::int64_t>(*g.retval);
    if (g.mismatched) j["mismatched"] = g.mismatched;
    return j.dump();
}

}  // namespace ksurf
