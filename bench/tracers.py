"""The things a benchmark case runs: a tracer started and stopped around the trigger.

A tracer is either a command that prints a line once it is attached (ksurf, bpftrace),
or raw tracefs driven by hand. Both give the same Run record, so the harness measures
them the same way.
"""
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field

TRACEFS = "/sys/kernel/tracing"
# The trigger's comm: every per-hit filter compares against it.
TRIGGER_COMM = "ksurf-trigger"
# "filtered" only with --count-filtered, which the benchmarks leave off as users do.
SUMMARY_RE = re.compile(r"(\d+) events, (?:\d+ filtered, )?(\d+) dropped")


@dataclass
class Run:
    attach_s: float = 0.0  # spawn to "attached"
    detach_s: float = 0.0  # stop request to exit
    rss_kib: int = 0  # peak RSS of the tracer process (VmHWM before it is stopped)
    events: int = 0  # events that reached the output
    dropped: int = 0
    probes: int = 0  # probes the tracer said it attached
    # The kernel's own BPF statistics (kernel.bpf_stats_enabled): run time of the tracer's
    # programs per hit, steady where wall-clock loops are not. 0 when not measured.
    prog_ns: float = 0.0
    prog_hits: int = 0
    error: str = ""


class Failed(Exception):
    """The tracer did not attach or did not stop cleanly; the message is one line."""


@dataclass
class Command:
    """A tracer process: ready once READY matches its stdout or stderr."""

    label: str
    argv: list
    ready: str
    # "summary": ksurf's stderr summary line; "lines": stdout lines naming the trigger;
    # "none": not counted.
    count: str = "summary"
    timeout_s: float = 120.0  # to attach
    # bpftrace 0.17 has taken over 60 s to exit after SIGINT, in the guests and on the host.
    stop_timeout_s: float = 180.0
    env: dict = field(default_factory=dict)

    def start(self, scratch):
        self.out = os.path.join(scratch, "tracer.out")
        self.err = os.path.join(scratch, "tracer.err")
        self.run = Run()
        t0 = time.monotonic()
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env})
        ready = re.compile(self.ready)
        while True:
            m = ready.search(_tail(self.err)) or ready.search(_head(self.out))
            if m:
                break
            if self.proc.poll() is not None:
                raise Failed(f"{self.label} exited ({self.proc.returncode}) before attaching: {_last_line(self.err)}")
            if time.monotonic() - t0 > self.timeout_s:
                self.kill()
                raise Failed(f"{self.label} not attached after {self.timeout_s:.0f} s: {_last_line(self.err)}")
            time.sleep(0.002)
        self.run.attach_s = time.monotonic() - t0
        self.run.probes = int(m.group(1)) if m.groups() else 1

    def stop(self):
        _settle(self.out)
        self.run.prog_ns, self.run.prog_hits = bpf_cost(self.proc.pid)
        # Not wait4's ru_maxrss: that counts the harness's own pages, shared by the fork
        # that became the tracer until its exec.
        self.run.rss_kib = _vm_hwm(self.proc.pid)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            _, status, usage = _wait4(self.proc, self.stop_timeout_s)
        except TimeoutError:
            self.kill()
            raise Failed(f"{self.label} did not exit within {self.stop_timeout_s:.0f} s of SIGINT (killed)")
        run = self.run
        run.detach_s = time.monotonic() - t0
        with open(self.err, errors="replace") as f:
            err = f.read()
        if self.count == "summary":
            m = SUMMARY_RE.search(err)
            if not m:
                raise Failed(f"{self.label}: no summary line at exit (status {status}): {_last_line(self.err)}")
            run.events, run.dropped = int(m.group(1)), int(m.group(2))
        elif self.count == "none":
            run.events = -1
        else:
            run.events = _count(self.out, TRIGGER_COMM)
            run.dropped = sum(int(x) for x in re.findall(r"Lost (\d+) events", err))
        return run

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class RawTracefs:
    """ftrace by hand: a kprobe_events line (or a tracepoint), a filter, a private
    instance and `cat trace_pipe` as the reader. ATTACH is "p FUNC" or "e SUBSYS/EVENT"."""

    label: str
    attach: str
    filter: str
    timeout_s: float = 60.0

    def start(self, scratch):
        self.run = Run()
        t0 = time.monotonic()
        group = f"kbench_{os.getpid()}"
        self.instance = f"{TRACEFS}/instances/{group}"
        kind, target = self.attach.split(" ", 1)
        self.kprobe = None
        event = target
        if kind == "p":
            event = f"{group}/hit"
            # A kprobe event's filter sees comm only as a fetched argument on some kernels.
            _append(f"{TRACEFS}/kprobe_events", f"p:{event} {target} comm=$comm")
            self.kprobe = event
        os.mkdir(self.instance)
        self.event_dir = f"{self.instance}/events/{event}"
        _write(f"{self.event_dir}/filter", self.filter)
        _write(f"{self.event_dir}/enable", "1")
        self.out = os.path.join(scratch, "tracer.out")
        with open(self.out, "wb") as out:
            self.reader = subprocess.Popen(["cat", f"{self.instance}/trace_pipe"], stdout=out)
        self.run.attach_s = time.monotonic() - t0
        self.run.probes = 1

    def stop(self):
        _settle(self.out)
        t0 = time.monotonic()
        self.reader.terminate()
        self.reader.wait()
        self.run.dropped = sum(int(m) for m in re.findall(r"overrun: (\d+)", _read_stats(self.instance)))
        self.teardown()
        self.run.detach_s = time.monotonic() - t0
        self.run.events = _count(self.out, TRIGGER_COMM)
        return self.run

    def teardown(self):
        if getattr(self, "reader", None) and self.reader.poll() is None:
            self.reader.kill()
            self.reader.wait()
        if os.path.isdir(getattr(self, "instance", "")):
            try:
                _write(f"{self.event_dir}/enable", "0")
            except (AttributeError, OSError):
                pass  # never enabled
            os.rmdir(self.instance)
        if getattr(self, "kprobe", None):
            _append(f"{TRACEFS}/kprobe_events", f"-:{self.kprobe}")
            self.kprobe = None

    kill = teardown


def bpf_cost(pid):
    """Run time per hit of the BPF programs process PID holds (directly or through links):
    their summed run_time_ns over the busiest one's run_cnt, so that a kprobe/kretprobe
    pair counts as one hit's cost. (0, 0) without programs or statistics."""
    ids = set()
    fdinfo = f"/proc/{pid}/fdinfo"
    try:
        for fd in os.listdir(fdinfo):
            try:
                with open(f"{fdinfo}/{fd}") as f:
                    ids.update(int(m) for m in re.findall(r"^prog_id:\s+(\d+)", f.read(), re.M))
            except OSError:
                pass
    except OSError:
        return 0.0, 0
    time_ns, hits = 0, 0
    for i in ids:
        out = subprocess.run(["bpftool", "prog", "show", "id", str(i), "--json"], capture_output=True, text=True)
        if out.returncode:
            continue
        info = json.loads(out.stdout)
        time_ns += info.get("run_time_ns", 0)
        hits = max(hits, info.get("run_cnt", 0))
    return (time_ns / hits if hits else 0.0), hits


def _vm_hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def _wait4(proc, timeout_s):
    """wait4() with a timeout, which reaps the child and gives its exit status."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.005)


def _read_stats(instance):
    text = ""
    base = f"{instance}/per_cpu"
    for cpu in os.listdir(base):
        with open(f"{base}/{cpu}/stats") as f:
            text += f.read()
    return text


def _write(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")


def _append(path, text):
    # Not open(path, "a"): Python seeks to the end, and kprobe_events refuses SEEK_END.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def _head(path, size=4096):
    with open(path, "rb") as f:
        return f.read(size).decode(errors="replace")


def _tail(path, size=4096):
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - size))
        return f.read().decode(errors="replace")


def _last_line(path):
    lines = [l for l in _tail(path).splitlines() if l.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _settle(path, quiet_s=0.2, limit_s=30):
    """Waits until the tracer has written out what it buffered: the output stops growing.
    Stopping earlier would count events still in flight as lost."""
    deadline = time.monotonic() + limit_s
    size = -1
    while time.monotonic() < deadline and os.path.getsize(path) != size:
        size = os.path.getsize(path)
        time.sleep(quiet_s)


def _count(path, word):
    """Occurrences of WORD (the trigger's comm: one per event line)."""
    n, needle, carry = 0, word.encode(), b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            buf = carry + chunk
            n += buf.count(needle)
            carry = buf[-(len(needle) - 1):]
    return n
