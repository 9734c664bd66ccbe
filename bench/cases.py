"""What bench/run measures. To add a case, add an entry to one of the lists below:

  HitGroup        per-hit cost of rejecting and accepting probes around a trigger loop,
                  all tracers interleaved with an untraced baseline
  AttachCase      time to attached / detached and peak RSS of a tracer with many probes
  ThroughputCase  formatted events per second and drops at offered rates

`needs` names a capability of the ksurf build (see CAPABILITIES); a case whose
capability is missing is reported as "not available in this build".
"""
import json
import os
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from tracers import TRIGGER_COMM, Command, RawTracefs

NO_COMM = "no-such-comm"  # the rejecting filters' constant: never a real comm

# Capability → regex over `ksurf --help`.
CAPABILITIES = {
    "pcap": r"--pcap\b",
    "skb": r"^\s+skb\b",
    "graph": r"^\s+graph\b",
    "lat": r"^\s+lat\b",
}


def capabilities(help_text):
    return {name for name, rx in CAPABILITIES.items() if re.search(rx, help_text, re.M)}


@dataclass
class Env:
    """Where a case runs: the binaries and the kernel."""

    ksurf: str
    trigger: str
    kernel: str  # "host" or 5.10/6.1/6.12
    caps: set
    timeout_s: float


def ksurf(env, label, args, count="summary"):
    return Command(label, [env.ksurf, *args], r"Tracing (\d+) (?:probes?|functions)", count, env.timeout_s)


# bpftrace prints "Attaching N probes" before it attaches, and runs BEGIN after.
BPFTRACE_READY = "ksurf-bench-ready"


def nofile_limit():
    """The most open files bpftrace can be given here: 65536 with CAP_SYS_RESOURCE (what ksurf
    raises its own limit to), else the hard limit (a container without the capability)."""
    with open("/proc/self/status") as status:
        cap_eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status.read(), re.M).group(1), 16)
    cap_sys_resource = 24
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or cap_eff >> cap_sys_resource & 1:
        return 65536
    return hard


def bpftrace(env, label, program):
    program = f'BEGIN {{ printf("{BPFTRACE_READY}\\n"); }} {program}'
    nofile = nofile_limit()
    # bpftrace refuses more than 512 probes unless told (BPFTRACE_MAX_PROBES), and holds
    # several files per probe (ksurf raises its own limit): the 1000-function rows compare
    # with it at the same count. prlimit and env exec it in place, so its pid is measured.
    return Command(label, ["prlimit", f"--nofile={nofile}:{nofile}", "env", "BPFTRACE_MAX_PROBES=4096", "bpftrace", "-e", program],
                   BPFTRACE_READY, "lines", env.timeout_s)


def comm_filter(comm):
    return f'f:comm=="{comm}"'


@dataclass
class Tracer:
    label: str
    # comm → tracer: the filter passes exactly the events of that comm.
    make: Callable
    needs: Optional[str] = None
    tool: Optional[str] = None  # an outside program it needs, e.g. bpftrace


@dataclass
class HitGroup:
    title: str
    where: str  # "host" or "guest"
    workload: list  # trigger arguments before N
    tracers: Callable  # env → [Tracer]
    needs: Optional[str] = None
    kernels: tuple = ()  # guest kernels it is meaningful on; empty: all
    n: int = 0  # calls per run where the mode's default will not do
    rss_mode: str = "rejecting"  # whose peak RSS the start-up table shows


@dataclass
class AttachCase:
    title: str
    where: str
    make: Callable  # (env, scratch) → tracer
    needs: Optional[str] = None
    kernels: tuple = ()
    size: int = 0  # functions attached, for --quick to keep the small sizes only
    slow: bool = False  # minutes under TCG: only with --slow


@dataclass
class ThroughputCase:
    title: str
    where: str
    make: Callable  # env → tracer whose filter accepts the trigger
    rates: list = field(default_factory=list)  # offered ops/s; 0 = as fast as it goes


# ---- per-hit cost -------------------------------------------------------------

def host_tracepoint(env):
    probe = "e syscalls/sys_enter_getppid"
    return [
        Tracer("ksurf (BPF tracepoint)", lambda c: ksurf(env, "ksurf", ["--backend", "bpf", f"{probe} {comm_filter(c)}"])),
        Tracer("bpftrace", lambda c: bpftrace(
            env, "bpftrace", f'tracepoint:syscalls:sys_enter_getppid /comm == "{c}"/ {{ printf("%s %d\\n", comm, pid); }}'),
            tool="bpftrace"),
        Tracer("ksurf --backend tracefs", lambda c: ksurf(env, "ksurf tracefs", ["--backend", "tracefs", f"{probe} {comm_filter(c)}"])),
        Tracer("raw tracefs (by hand)", lambda c: RawTracefs("raw tracefs", "e syscalls/sys_enter_getppid", f'comm == "{c}"')),
    ]


def host_pid_filter(env):
    """common_pid against a constant: pid 1 (init) never runs the loop; `!=` passes it all."""
    op = lambda c: "==" if c == NO_COMM else "!="  # noqa: E731
    return [
        Tracer("ksurf (BPF tracepoint)", lambda c: ksurf(env, "ksurf", ["--backend", "bpf", f"e syscalls/sys_enter_getppid f:common_pid{op(c)}1"])),
        Tracer("bpftrace", lambda c: bpftrace(
            env, "bpftrace", f'tracepoint:syscalls:sys_enter_getppid /pid {op(c)} 1/ {{ printf("%s %d\\n", comm, pid); }}'),
            tool="bpftrace"),
    ]


def host_record_field(env):
    """A record field against a constant: raw_syscalls/sys_enter's id (getppid is 110 on
    x86-64; 999 is no syscall). Every syscall of the machine hits the program."""
    nr = lambda c: 999 if c == NO_COMM else 110  # noqa: E731
    return [
        Tracer("ksurf (BPF tracepoint)", lambda c: ksurf(env, "ksurf", ["--backend", "bpf", f"e raw_syscalls/sys_enter nr=id f:id=={nr(c)}"])),
        Tracer("bpftrace", lambda c: bpftrace(
            env, "bpftrace", f'tracepoint:raw_syscalls:sys_enter /args->id == {nr(c)}/ {{ printf("%s %d %d\\n", comm, pid, args->id); }}'),
            tool="bpftrace"),
    ]


def host_count_comm(env):
    """Issue #15: counting by comm in the kernel. Accepting runs have no filter, as the issue
    states its bound (per hit, at most 1.0x bpftrace's, by *prog ns/hit*); rejecting ones a
    comm filter that never matches. No events reach the output."""
    probe = "e syscalls/sys_enter_getppid"

    def counting_ksurf(c):
        gated = f"{probe} {comm_filter(c)}" if c == NO_COMM else probe
        return ksurf(env, "ksurf --count comm", ["--backend", "bpf", gated, "--count", "comm"], count="none")

    def counting_bpftrace(c):
        gate = f'/comm == "{c}"/ ' if c == NO_COMM else ""
        program = f"tracepoint:syscalls:sys_enter_getppid {gate}{{ @[comm] = count(); }}"
        return replace(bpftrace(env, "bpftrace", program), count="none")

    return [Tracer("ksurf --count comm", counting_ksurf), Tracer("bpftrace", counting_bpftrace, tool="bpftrace")]


def host_distinct_keys(env):
    """Issue #15: memory stays bounded when every hit brings a new key (1 M offsets, one
    per lseek). ksurf's map holds --map-size keys (default 10 240) and counts the updates
    it refused in its summary; bpftrace's holds 4 096 (BPFTRACE_MAP_KEYS_MAX) and drops
    the rest. Both print their map every 200 ms, so the peak RSS the start-up table shows
    (of the accepting runs) includes reading a full map."""
    probe = "e syscalls/sys_enter_lseek"

    def counting_ksurf(c):
        return ksurf(env, "ksurf --count offset",
                     ["--backend", "bpf", f"{probe} {comm_filter(c)}", "--count", "offset", "--interval", "200ms"], count="none")

    def counting_bpftrace(c):
        program = (f'tracepoint:syscalls:sys_enter_lseek /comm == "{c}"/ {{ @[args->offset] = count(); }} '
                   "interval:ms:200 { print(@); }")
        return replace(bpftrace(env, "bpftrace", program), count="none")

    return [Tracer("ksurf --count offset", counting_ksurf), Tracer("bpftrace", counting_bpftrace, tool="bpftrace")]


# The function every getppid() calls, with BTF on all three guest kernels.
GETPPID_FN = "__do_sys_getppid"


def guest_function(env):
    probe = f"p {GETPPID_FN}"
    bt = f'/comm == "{{c}}"/ {{{{ printf("%s %d\\n", comm, pid); }}}}'
    return [
        Tracer("ksurf --backend fentry", lambda c: ksurf(env, "ksurf fentry", ["--backend", "fentry", f"{probe} {comm_filter(c)}"])),
        Tracer("ksurf --backend kprobe", lambda c: ksurf(env, "ksurf kprobe", ["--backend", "kprobe", f"{probe} {comm_filter(c)}"])),
        Tracer("bpftrace kfunc", lambda c: bpftrace(env, "bpftrace kfunc", f"kfunc:{GETPPID_FN} " + bt.format(c=c)), tool="bpftrace"),
        Tracer("bpftrace kprobe", lambda c: bpftrace(env, "bpftrace kprobe", f"kprobe:{GETPPID_FN} " + bt.format(c=c)), tool="bpftrace"),
        Tracer("ksurf --backend tracefs", lambda c: ksurf(env, "ksurf tracefs", ["--backend", "tracefs", f"{probe} {comm_filter(c)}"])),
        Tracer("raw tracefs kprobe (by hand)", lambda c: RawTracefs("raw tracefs", f"p {GETPPID_FN}", f'comm == "{c}"')),
    ]


# Issue #6: an in-kernel pcap filter that rejects every packet, against a plain filter
# and no filter, on the receive path of the trigger's own loopback datagrams. The
# "accepting" row of --pcap passes UDP, the trigger's traffic.
def guest_pcap(env):
    probe = "p ip_rcv"
    return [
        Tracer("ksurf, f: filter", lambda c: ksurf(env, "ksurf", [f"{probe} {comm_filter(c)}"])),
        Tracer("ksurf --pcap", lambda c: ksurf(env, "ksurf --pcap", ["--pcap", "udp" if c == TRIGGER_COMM else "tcp port 1", probe]),
               needs="pcap"),
    ]


# Issue #7: a graph whose root the loop calls; rejecting: its predicate never matches.
def guest_graph(env):
    return [
        Tracer("ksurf graph", lambda c: ksurf(env, "ksurf graph", ["graph", f"p {GETPPID_FN} {comm_filter(c)}"], count="none"),
               needs="graph"),
    ]


# Issue #15: `ksurf lat` pairs entry and return in the kernel (fentry/fexit where the kernel
# has them, and on kprobes as asked) against bpftrace pairs keeping the entry time in a map
# by tid, each program type against its like. Rejecting: the predicate never matches, so
# only the entry's test and the return's lookup run.
def guest_latency(env):
    ready = r"Timing \S+ on"

    def lat(name, backend, c):
        return Command(name, [env.ksurf, "--backend", backend, "lat", "vfs_read", "--where", comm_filter(c)[2:]], ready, "none",
                       env.timeout_s)

    def pair(entry, ret, c):
        return replace(bpftrace(env, f"bpftrace {entry}/{ret}",
                                f'{entry}:vfs_read /comm == "{c}"/ {{ @s[tid] = nsecs; }} '
                                f"{ret}:vfs_read /@s[tid]/ {{ @h = hist(nsecs - @s[tid]); delete(@s[tid]); }}"),
                       count="none")

    return [
        Tracer("ksurf lat", lambda c: lat("ksurf lat", "bpf", c), needs="lat"),
        Tracer("ksurf lat --backend kprobe", lambda c: lat("ksurf lat --backend kprobe", "kprobe", c), needs="lat"),
        Tracer("bpftrace kprobe/kretprobe", lambda c: pair("kprobe", "kretprobe", c), tool="bpftrace"),
        Tracer("bpftrace kfunc/kretfunc", lambda c: pair("kfunc", "kretfunc", c), tool="bpftrace"),
    ]


HIT_GROUPS = [
    HitGroup("tracepoint syscalls/sys_enter_getppid", "host", ["getppid"], host_tracepoint),
    HitGroup("tracepoint syscalls/sys_enter_getppid, common_pid filter", "host", ["getppid"], host_pid_filter),
    HitGroup("tracepoint raw_syscalls/sys_enter, record field filter", "host", ["getppid"], host_record_field),
    HitGroup("tracepoint syscalls/sys_enter_getppid, --count comm against @[comm] = count()", "host", ["getppid"], host_count_comm),
    HitGroup("tracepoint syscalls/sys_enter_lseek, --count offset against @[args->offset] = count(): a new key per call",
             "host", ["lseek"], host_distinct_keys, n=1_000_000, rss_mode="accepting"),
    HitGroup(f"function {GETPPID_FN}", "guest", ["getppid"], guest_function),
    HitGroup("packet filter on ip_rcv (loopback UDP)", "guest", ["udp"], guest_pcap, needs="pcap"),
    HitGroup(f"graph rooted at {GETPPID_FN}", "guest", ["getppid"], guest_graph, needs="graph"),
    HitGroup("latency of vfs_read: ksurf lat against bpftrace entry/return pairs", "guest", ["read"], guest_latency,
             needs="lat"),
]


# ---- attach time for many functions ----------------------------------------------

# Globs over networking code an idle guest never runs, so attaching is all that is timed.
COLD_GLOBS = ["tcp_*", "udp*", "inet_*", "ip6_*", "ipv6_*", "xfrm*", "fib*", "neigh_*", "nf_*"]


def function_list(env, count, scratch):
    """COUNT traceable functions with BTF, as ksurf expands COLD_GLOBS, in a probe file."""
    path = os.path.join(scratch, f"functions-{count}.probes")
    if not os.path.exists(path):
        names = cold_functions(env)
        if len(names) < count:
            raise RuntimeError(f"only {len(names)} cold functions with BTF, {count} wanted")
        with open(path, "w") as f:
            f.writelines(f"p {n}\n" for n in names[:count])
    return path


_cold = {}


def cold_functions(env):
    if env.ksurf not in _cold:
        # -S prints the tracefs translation of the expanded globs, a "# FUNC: PROBE" comment each.
        script = subprocess.run([env.ksurf, "-S", *(f"p {g}" for g in COLD_GLOBS)], capture_output=True, text=True)
        if script.returncode:
            raise RuntimeError(f"ksurf -S: {script.stderr.strip()}")
        names = set(re.findall(r"^# (\S+): p ", script.stdout, re.M))
        _cold[env.ksurf] = sorted(names & fentry_attachable())
    return _cold[env.ksurf]


def fentry_attachable():
    """Functions of the running kernel's BTF that every attach type takes: at most six
    arguments, none of them (nor the return value) a struct or union by value, which
    fentry refuses (ENOTSUPP) on older kernels."""
    if not shutil.which("bpftool"):
        raise RuntimeError("bpftool is needed to pick functions (apt-get install bpftool)")
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "-j"],
                          capture_output=True, text=True, check=True).stdout
    types = {t["id"]: t for t in json.loads(dump)["types"]}

    def by_value_aggregate(tid):
        while tid and types[tid]["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            tid = types[tid]["type_id"]
        return tid and types[tid]["kind"] in ("STRUCT", "UNION")

    ok = set()
    for t in types.values():
        if t["kind"] != "FUNC":
            continue
        proto = types[t["type_id"]]
        args = [p["type_id"] for p in proto.get("params", [])]
        if len(args) <= 6 and 0 not in args and not any(map(by_value_aggregate, [proto["ret_type_id"], *args])):
            ok.add(t["name"])
    return ok


def patient(run, count):
    """RUN given minutes to stop when it holds COUNT >= 1000 probes: a thousand trampolines or
    kprobes leave one by one under TCG, which is slow, not a hang."""
    return replace(run, stop_timeout_s=900) if count >= 1000 else run


def graph_funcs(attach, count):
    def make(env, scratch):
        names = open(function_list(env, count, scratch)).read().replace("p ", "").split()
        return patient(ksurf(env, f"ksurf graph {attach}",
                             ["graph", "icmp_rcv", "--depth", "0", "--attach", attach, "--funcs", *names], count="none"), count)
    return make


def tracepoint_list(scratch, count):
    """COUNT syscall tracepoints, as ksurf probe lines and bpftrace probe names."""
    names = sorted(n for n in os.listdir("/sys/kernel/tracing/events/syscalls") if n.startswith("sys_enter_"))[:count]
    if len(names) < count:
        raise RuntimeError(f"only {len(names)} syscall tracepoints, {count} wanted")
    path = os.path.join(scratch, f"tracepoints-{count}.probes")
    with open(path, "w") as f:
        f.writelines(f"e syscalls/{n} f:common_pid==0\n" for n in names)
    return path, names


def many_tracepoints(count):
    def make(env, scratch):
        return ksurf(env, "ksurf", ["-f", tracepoint_list(scratch, count)[0]])
    return make


def bpftrace_tracepoints(count):
    def make(env, scratch):
        names = tracepoint_list(scratch, count)[1]
        return bpftrace(env, "bpftrace", ",".join(f"tracepoint:syscalls:{n}" for n in names) + " /pid == 0/ { }")
    return make


def bpftrace_kfuncs(count):
    def make(env, scratch):
        names = open(function_list(env, count, scratch)).read().replace("p ", "").split()
        return patient(bpftrace(env, "bpftrace kfunc", ",".join(f"kfunc:{n}" for n in names) + " { }"), count)
    return make


def many(backend, count):
    def make(env, scratch):
        return patient(ksurf(env, f"ksurf {backend}", ["--backend", backend, "-f", function_list(env, count, scratch)]), count)
    return make


# One BPF program per function (fentry, and kprobe: `--backend kprobe` never groups into
# kprobe.multi) makes 1000 probes take minutes under TCG: those run only with --slow.
ATTACH_CASES = [
    AttachCase("100 syscall tracepoints, ksurf (BPF)", "host", many_tracepoints(100), size=100),
    AttachCase("100 syscall tracepoints, bpftrace", "host", bpftrace_tracepoints(100), size=100),
    *(AttachCase(f"{n} functions, bpftrace kfunc", "guest", bpftrace_kfuncs(n), size=n, slow=n >= 1000) for n in (100, 1000)),
    *(AttachCase(f"{n} functions, --backend {b}", "guest", many(b, n), size=n,
                 slow=n >= 1000 and b != "tracefs")
      for n in (100, 1000) for b in ("fentry", "kprobe", "tracefs")),
    # `ksurf graph ROOT --funcs F...` attaches the listed functions as callees, the one way
    # to ask for kprobe.multi (6.12 only) by name; ROOT is never called in an idle guest.
    *(AttachCase(f"{n} functions, graph --funcs, --attach {a}", "guest", graph_funcs(a, n), needs="graph", size=n,
                 kernels=("6.12",) if a == "kprobe.multi" else (), slow=n >= 1000 and a != "kprobe.multi")
      for n in (100, 1000) for a in ("kprobe.multi", "fentry", "kprobe")),
    # Issue #6: path mode attaches to every function that takes an sk_buff (about 1 600):
    # two kprobe.multi links on 6.12, else a kprobe each (6.1: what auto does there), whose
    # one-by-one removal takes minutes under TCG.
    AttachCase("ksurf skb (all sk_buff functions), --attach kprobe.multi", "guest",
               lambda env, scratch: ksurf(env, "ksurf skb kprobe.multi", ["skb", "--attach", "kprobe.multi"], count="none"),
               needs="skb", kernels=("6.12",)),
    AttachCase("ksurf skb (all sk_buff functions), --attach kprobe", "guest",
               lambda env, scratch: replace(ksurf(env, "ksurf skb kprobe", ["skb", "--attach", "kprobe"], count="none"),
                                            stop_timeout_s=600),
               needs="skb", kernels=("6.1",)),
]


# ---- throughput ------------------------------------------------------------------

THROUGHPUT_CASES = [
    ThroughputCase("ksurf (BPF tracepoint) → file", "host",
                   lambda env: ksurf(env, "ksurf", ["--backend", "bpf", f"e syscalls/sys_enter_getppid {comm_filter(TRIGGER_COMM)}"]),
                   [50_000, 200_000, 1_000_000, 0]),
    ThroughputCase("ksurf --backend tracefs → file", "host",
                   lambda env: ksurf(env, "ksurf tracefs", ["--backend", "tracefs", f"e syscalls/sys_enter_getppid {comm_filter(TRIGGER_COMM)}"]),
                   [50_000, 200_000, 1_000_000, 0]),
]
