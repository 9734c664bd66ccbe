#!/usr/bin/env python3
"""Per-hit kernel cost of counting by comm in the kernel: ksurf --count comm against
bpftrace's @[comm] = count(), both on syscalls/sys_enter_getppid, measured by the kernel's
own BPF statistics (sysctl kernel.bpf_stats_enabled: run_time_ns / run_cnt of the tracer's
programs, from `bpftool prog show --json`), interleaved over a few rounds. Root; prints a
Markdown row per tracer and the ratio.

    sudo bench/agg_cost.py [--ksurf build/src/ksurf] [--calls 2000000] [--rounds 3]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def build_trigger(scratch):
    exe = os.path.join(scratch, "trigger")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "trigger.c")], check=True)
    return exe


def programs():
    return json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], check=True, capture_output=True, text=True).stdout)


def cost(ids):
    """Run time and count summed over the BPF programs IDS."""
    ns = cnt = 0
    for p in programs():
        if p["id"] in ids:
            ns += p.get("run_time_ns", 0)
            cnt += p.get("run_cnt", 0)
    return ns, cnt


def wait_attached(proc, needle, timeout_s=60):
    """Reads PROC's stderr (ksurf) or stdout (bpftrace) until NEEDLE."""
    deadline = time.time() + timeout_s
    stream = proc.stderr if needle.startswith("Tracing") else proc.stdout
    seen = ""
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return
    raise RuntimeError(f"tracer did not attach: {seen}")


def measure(cmd, needle, trigger, calls):
    # The tracer's programs are those that appear while it starts (bpftool here lists no
    # owning pids): on a machine others trace on too, run it where nobody loads programs.
    before = {p["id"] for p in programs()}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(proc, needle)
        time.sleep(0.5)  # bpftrace says "Attaching" before it has
        ids = {p["id"] for p in programs() if p["id"] not in before and p.get("type") == "tracepoint"}
        ns0, cnt0 = cost(ids)
        subprocess.run([trigger, "getppid", str(calls)], check=True, capture_output=True)
        ns1, cnt1 = cost(ids)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    hits = cnt1 - cnt0
    return (ns1 - ns0) / hits if hits else float("nan"), hits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ksurf", default=os.path.join(HERE, "..", "build", "src", "ksurf"))
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("agg_cost: run as root (kernel.bpf_stats_enabled, bpftool)")
    tracers = {
        "ksurf --count comm": ([args.ksurf, "e syscalls/sys_enter_getppid", "--count", "comm"], "Tracing"),
        "bpftrace @[comm] = count()": (["bpftrace", "-e", "tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); }"],
                                       "Attaching"),
    }
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    results = {name: [] for name in tracers}
    with tempfile.TemporaryDirectory() as scratch:
        trigger = build_trigger(scratch)
        try:
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write("1")
            for _ in range(args.rounds):
                for name, (cmd, needle) in tracers.items():
                    results[name].append(measure(cmd, needle, trigger, args.calls))
        finally:
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write(old)
    print("| tracer | ns per hit (median of rounds) | rounds | hits per round |")
    print("|---|---|---|---|")
    medians = {}
    for name, rs in results.items():
        medians[name] = statistics.median(r[0] for r in rs)
        print(f"| {name} | {medians[name]:.1f} | {', '.join(f'{r[0]:.1f}' for r in rs)} | {rs[0][1]} |")
    k, b = medians.values()
    print(f"\nksurf / bpftrace per-hit cost: {k / b:.2f}")


if __name__ == "__main__":
    main()
