"""docs/BENCHMARKS.md from bench/run's results: medians, and ratios to the untraced loop
and to ksurf's default tracer of the same table."""
from statistics import median


def render(results, machine, command):
    host, guests = results["host"], results["guests"]
    out = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (see `bench/run --help`); do not edit by hand. Raw figures are in",
        "`BUILD/bench/results.json` after a run.",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {machine['cpu']}, {machine['cores']} cores |",
        f"| host kernel | {machine['kernel']} |",
        f"| guest kernels | {', '.join(g['kernel'] + ' (' + g.get('uname', 'failed') + ')' for g in guests) or 'not run'} |",
        f"| date | {machine['date']} |",
        f"| ksurf | {machine['ksurf']}, commit {machine['commit']} |",
        f"| bpftrace | {machine['bpftrace']} |",
        f"| load average (1/5/15 min) | {load_line(host, guests)} |",
        f"| wall time | {results['wall_s'] / 60:.1f} min |",
        f"| reproduce | `sudo {command}` (after `tools/build`; `--quick` for a smoke run) |",
        "",
        "The machine is a shared build host: other builds ran during the measurement, so",
        "absolute figures are noisy. Every table runs its variants interleaved (one of each per",
        "repetition, in rotating order) and reports medians; compare the ratios, not the",
        "nanoseconds. Guests run under QEMU TCG (emulated CPU): their times are emulation",
        "times, many times the native ones, and only their ratios carry over to real hardware.",
        "",
    ]
    errors = [f"- guest {g['kernel']}: {g['error']}" for g in guests if g.get("error")]
    if errors:
        out += ["**Incomplete run:**", "", *errors, ""]
    parts = [host] + guests if host else guests
    out += hit_section([h for p in parts if p for h in p.get("hits", [])])
    out += startup_section([h for p in parts if p for h in p.get("hits", [])])
    out += throughput_section([t for p in parts if p for t in p.get("throughput", [])])
    out += attach_section([a for p in parts if p for a in p.get("attach", [])])
    return "\n".join(out) + "\n"


def load_line(host, guests):
    loads = [p[k] for p in ([host] if host else []) + guests for k in ("load_before", "load_after") if p and k in p]
    if not loads:
        return "?"
    fmt = lambda l: "/".join(f"{x:.1f}" for x in l)  # noqa: E731
    hi = max(loads, key=lambda l: l[0])
    return f"{fmt(loads[0])} at the start, {fmt(loads[-1])} at the end, 1-min peak {hi[0]:.1f} (host view)"


def where(kernel):
    return "host" if kernel == "host" else f"guest {kernel} (TCG)"


def hit_section(groups):
    out = ["## Per-hit cost", "",
           "A C loop (`bench/trigger.c`) makes N calls; each tracer is attached with a filter on",
           "the loop's comm that never matches (**rejecting**: the kernel-side filter's cost) or",
           "always matches (**accepting**: every call becomes an event, formatted and written to a",
           "file on tmpfs; formatting happens in user space, on the other core). *added* is",
           "ns/op minus the untraced loop's (negative: within the noise); *× ksurf* divides a",
           "tracer's added cost by the first ksurf row's, same filter mode; *min–max* is the",
           "spread over the repetitions. *prog ns/hit* is the kernel's own BPF statistics",
           "(`kernel.bpf_stats_enabled`: run_time_ns / run_cnt of the tracer's programs), steady",
           "where the wall clock is not, and *× bpftrace* divides it by bpftrace's (same filter;",
           "kfunc for fentry, kprobe for kprobes, the kprobe/kretprobe pair for `ksurf lat`).", ""]
    for g in groups:
        title = f"### {g['title']}: {where(g['kernel'])}"
        if g.get("unavailable"):
            out += [title, "", "Not available in this build.", ""]
            continue
        out += [title, "", f"{g['n']:,} calls × {g['reps']} repetitions, medians.", "",
                "| tracer | filter | ns/op | min–max | added ns/hit | × untraced | × ksurf | prog ns/hit | × bpftrace | events (accepting) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        rows = g["rows"]
        base = med(rows[0]["ns"])
        ref = {}
        for r in rows[1:]:
            if r["ns"] and r["mode"] not in ref:
                ref[r["mode"]] = med(r["ns"]) - base
        prog = {(r["label"], r["mode"]): med([x.get("prog_ns", 0) for x in r["runs"] if x.get("prog_ns")])
                for r in rows if r["mode"] and r["runs"]}
        for r in rows:
            if r["error"]:
                out.append(f"| {r['label']} | {r['mode'] or '—'} | failed: {r['error']} | | | | | | | |")
                continue
            ns = med(r["ns"])
            spread = f"{min(r['ns']):,.0f}–{max(r['ns']):,.0f}"
            if r["mode"] is None:
                out.append(f"| {r['label']} | — | {ns:,.0f} | {spread} | 0 | 1.00 | | | | |")
                continue
            added = ns - base
            rel = f"{added / ref[r['mode']]:.2f}" if ref.get(r["mode"], 0) > 0 else "—"
            ev = ""
            if r["mode"] == "accepting" and r["runs"]:
                events = median_int([x["events"] for x in r["runs"]])
                dropped = median_int([x["dropped"] for x in r["runs"]])
                ev = "not counted" if events < 0 else f"{events:,}" + (f" ({dropped:,} dropped)" if dropped else "")
            p_ns = prog.get((r["label"], r["mode"]), float("nan"))
            # The bpftrace row of the same attach type: kfunc for fentry, kprobe for kprobes.
            # `ksurf lat` against the pair issue #15 names.
            peer = ("bpftrace kfunc" if "fentry" in r["label"] else "bpftrace kprobe" if "kprobe" in r["label"]
                    else "bpftrace kprobe/kretprobe" if r["label"] == "ksurf lat" else "bpftrace")
            bt = prog.get((peer, r["mode"]), float("nan"))
            p_txt = f"{p_ns:,.1f}" if p_ns == p_ns else "—"
            bt_txt = f"{p_ns / bt:.2f}" if p_ns == p_ns and bt == bt and bt > 0 else "—"
            out.append(f"| {r['label']} | {r['mode']} | {ns:,.0f} | {spread} | {added:,.0f} | {ns / base:.2f} | {rel} | {p_txt} | {bt_txt} | {ev} |")
        for label, why in g.get("skipped", {}).items():
            out.append(f"| {label} | | {why} | | | | | | | |")
        out.append("")
    return out


def startup_section(groups):
    out = ["## Start-up and peak RSS", "",
           "One probe with a rejecting filter (or, where the title says so, an accepting one),",
           "from the per-hit runs: *attached* is spawn to the",
           "tracer's own \"attached\" line (`Tracing N probe(s)` for ksurf; for bpftrace its",
           "BEGIN probe's output, which runs once every probe is attached; for raw tracefs the",
           "time to write the probe, filter and enable), *detach* is SIGINT to exit, peak RSS is",
           "the tracer process's VmHWM just before it is stopped.", "",
           "| where | tracer | attached (s) | detach (s) | peak RSS (MiB) |",
           "|---|---|---:|---:|---:|"]
    for g in groups:
        mode = g.get("rss_mode", "rejecting")
        for r in g.get("rows", []):
            if r["mode"] != mode or not r["runs"]:
                continue
            rs = r["runs"]
            rss = median([x["rss_kib"] for x in rs]) / 1024
            title = g["title"] if mode == "rejecting" else f"{g['title']} ({mode})"
            out.append(f"| {where(g['kernel'])}, {title} | {r['label']} | {med([x['attach_s'] for x in rs]):.3f} | "
                       f"{med([x['detach_s'] for x in rs]):.3f} | {f'{rss:.1f}' if rss else '— (cat)'} |")
    return out + [""]


def throughput_section(cases):
    if not cases:
        return []
    out = ["## Throughput", "",
           "The loop paced to an offered rate, every call an event formatted to a file on tmpfs.",
           "*written/s* is events written over the loop's duration; *dropped* is the tracer's own",
           "count (ring buffer full).", "",
           "| where | tracer | offered calls/s | achieved calls/s | events written | written/s | dropped |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for c in cases:
        for p in c["points"]:
            offered = f"{p['rate']:,}" if p["rate"] else "max"
            if p["error"]:
                out.append(f"| {where(c['kernel'])} | {c['title']} | {offered} | failed: {p['error']} | | | |")
                continue
            out.append(f"| {where(c['kernel'])} | {c['title']} | {offered} | {p['n'] / p['elapsed']:,.0f} | "
                       f"{p['events']:,} | {p['events'] / p['elapsed']:,.0f} | {p['dropped']:,} |")
    return out + [""]


def attach_section(cases):
    if not cases:
        return []
    out = ["## Attaching many functions", "",
           "Probe files of N `p FUNC` lines over networking functions an idle guest never calls",
           "(ksurf's own expansion of `tcp_*`, `udp*`, ... , so each has BTF), no fields; time",
           "to `Tracing N probes` and from SIGINT to exit, one run each. `--backend kprobe`",
           "attaches one kprobe per function (ksurf groups functions into kprobe.multi only",
           "under `auto`, which prefers fentry); kprobe.multi is measured through",
           "`ksurf graph icmp_rcv --depth 0 --attach kprobe.multi --funcs F...` on 6.12, the",
           "only guest kernel with it.", "",
           "| where | case | probes | attached (s) | detach (s) | peak RSS (MiB) |",
           "|---|---|---:|---:|---:|---:|"]
    for c in cases:
        if c["error"]:
            out.append(f"| {where(c['kernel'])} | {c['title']} | {c['error']} | | | |")
            continue
        rs = c["runs"]
        out.append(f"| {where(c['kernel'])} | {c['title']} | {rs[0]['probes']:,} | {med([x['attach_s'] for x in rs]):.2f} | "
                   f"{med([x['detach_s'] for x in rs]):.2f} | {median([x['rss_kib'] for x in rs]) / 1024:.1f} |")
    return out + [""]


def med(xs):
    return median(xs) if xs else float("nan")


def median_int(xs):
    return int(median(xs)) if xs else 0
