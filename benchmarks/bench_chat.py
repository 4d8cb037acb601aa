"""Chat server benchmark: tcplab's server against the report's thread-per-client design.

Usage::

    python benchmarks/bench_chat.py              # full run (about 6 minutes)
    python benchmarks/bench_chat.py --quick      # seconds: small sizes, smoke test
    python benchmarks/bench_chat.py --clients 1000 --servers tcplab,thread --procs 2
    python benchmarks/bench_chat.py --cluster    # one server beside 2 nodes on Redis

Scenarios, each run against every server in turn in this one process run:

* ``pairs``: N clients in N/2 sender → receiver pairs, each sender keeping
  ``--window`` messages in flight. Delivered messages/s, p50/p99 latency (time
  stamp carried in every message), losses (sent − received after a drain) and
  server RSS per connection (``VmRSS`` before connecting and after login).
* ``idle``: N connections opened and left silent (RSS per idle connection), then
  every one sends its nickname at once: time until all are logged in, and RSS per
  logged-in idle connection.

Servers: ``tcplab`` (``python -m tcplab server``), ``thread`` (the report's
design, ``baselines/thread_chat_server.py``) and ``bare`` (a minimal selectors
relay, ``baselines/bare_relay.py``: no validation, no limits — a reference point
for what a plain selectors loop costs per message, and a check that the load
generator can drive a server that does almost nothing).

``--cluster`` compares instead one ``tcplab server`` with two ``tcplab server --cluster``
nodes on a private ``redis-server``, the same pairs load placed four ways (``single``,
``local``: every pair on one node, ``cross``: every pair across nodes, ``half``: half of
each, the cluster issue's load) and reports **CPU seconds of the servers plus Redis per
100,000 delivered messages** beside msg/s, p50/p99 and loss: on a machine where the load
generator shares the cores, that efficiency figure is what scales, not msg/s.

The load runs in separate ``chat_loadgen.py`` processes (``--procs``); each
reports its own CPU time so a reader can see whether it, rather than the
server, was saturated. Everything is bounded in count and time, and all traffic
stays on 127.0.0.1. Benchmark code only: never imported by ``src/tcplab``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "chat_loadgen.py"
SERVERS = ("tcplab", "thread", "bare")
#: Flags that take tcplab's server out of its protective defaults for a load test:
#: the benchmark's clients deliberately send faster than a person and there are
#: thousands of them. Filled in from ``tcplab server --help`` (see tcplab_flags).
TCPLAB_BENCH_FLAGS: dict[str, str] = {
    "--rate": "0",              # flood control off: load clients send far faster than people
    "--max-clients": "20000",   # the idle scenario opens 10,000 at once
    "--max-per-address": "0",   # ... all of them from 127.0.0.1
    "--quiet": "",              # no per-join log lines: the baseline logs nothing either
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


#: Niceness for servers and generators (``--nice``); 0 leaves scheduling alone.
NICE = 0


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies, so no server outlives it."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def prioritize(pid: int) -> None:
    """Apply ``--nice`` to a child that runs in its own session.

    With the kernel's autogroup scheduling (``sched_autogroup_enabled``), CPU is shared
    between sessions first and ``nice`` only orders processes inside one, so each child
    gets its own session and its autogroup is given the niceness too.
    """
    if not NICE:
        return
    with contextlib.suppress(ProcessLookupError):
        os.setpriority(os.PRIO_PROCESS, pid, NICE)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as fh:
        fh.write(str(NICE))


class BenchError(Exception):
    """A benchmark step failed (server would not start, generator died...)."""


# -- measuring the server process --------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (KB) and thread count from /proc/PID/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0])
    return values


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    # fields[11], fields[12] are utime and stime (stat fields 14 and 15).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_seconds() -> tuple[float, float]:
    """(process-context busy, interrupt) CPU seconds of all processors since boot.

    From /proc/stat: user+nice+system+steal, and irq+softirq apart, because loopback
    TCP is mostly processed in softirq — time charged to no process, yet caused by
    the benchmark's own traffic rather than by other work on the machine.
    """
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(x) for x in fh.readline().split()[1:9])
    return (user + nice + system + steal) / CLK_TCK, (irq + softirq) / CLK_TCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcplab_flags(command: list[str]) -> list[str]:
    """Options of ``tcplab server`` that lift per-client limits, if it offers them.

    Read from its ``--help`` so the harness keeps working while the server's
    options evolve; ``--tcplab-args`` adds or overrides anything.
    """
    helptext = server_help(command)
    flags: list[str] = []
    for option, value in TCPLAB_BENCH_FLAGS.items():
        if option in helptext:
            flags += [option] + ([value] if value else [])
    return flags


def server_help(command: list[str]) -> str:
    """``--help`` text of the tcplab server command, or "" if it cannot be run."""
    try:
        proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


@dataclass
class Server:
    kind: str
    extra: list[str]
    profile: Path | None = None
    tcplab_command: list[str] | None = None
    port: int = 0
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def command(self) -> list[str]:
        port = str(self.port)
        if self.kind == "tcplab":
            base = self.tcplab_command or [sys.executable, "-m", "tcplab", "server"]
            if self.profile:
                # cProfile wraps the interpreter: "python -m cProfile -o F -m tcplab server"
                base = [base[0], "-m", "cProfile", "-o", str(self.profile), *base[1:]]
            return [*base, "--host", "127.0.0.1", "--port", port, *self.extra]
        script = "thread_chat_server.py" if self.kind == "thread" else "bare_relay.py"
        return [sys.executable, str(HERE / "baselines" / script), "--host", "127.0.0.1",
                "--port", port]

    def start(self, logdir: Path) -> None:
        for _attempt in range(3):
            self.port = free_port()
            self.log = logdir / f"{self.kind}-{self.port}.log"
            with open(self.log, "wb") as logfile:
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                             stdout=logfile, stderr=subprocess.STDOUT,
                                             start_new_session=bool(NICE),
                                             preexec_fn=die_with_parent)
            prioritize(self.proc.pid)
            if self.wait_listening(15.0):
                return
            self.stop()
        raise BenchError(f"{self.kind} server did not start; see {self.log}:\n" + self.log_tail())

    def wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            # /proc/net/tcp shows the listening socket without connecting to it,
            # so the server's statistics never include a probe connection.
            if self.listening():
                return True
            time.sleep(0.05)
        return False

    def listening(self) -> bool:
        needle = f":{self.port:04X} 00000000:0000 0A"
        with open("/proc/net/tcp") as fh:
            return any(needle in line for line in fh)

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-2000:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGINT lets tcplab shut down gracefully (and cProfile write its file).
            self.proc.send_signal(signal.SIGINT if self.kind == "tcplab" else signal.SIGTERM)
            try:
                # A profiled server closes thousands of connections slowly, then writes its stats.
                self.proc.wait(timeout=60 if self.profile else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# -- driving load generators ------------------------------------------------------------
class Generator:
    """One chat_loadgen.py process and its line-oriented JSON conversation."""

    def __init__(self, args: list[str], loadgen: Path = LOADGEN) -> None:
        self.proc = subprocess.Popen([sys.executable, str(loadgen), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=bool(NICE),
                                     preexec_fn=die_with_parent)
        prioritize(self.proc.pid)
        self.buffer = b""

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"load generator gave no '{event}' within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise BenchError(f"load generator exited before '{event}':\n{err[-2000:]}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message = json.loads(line)
        if message.get("event") != event:
            raise BenchError(f"load generator said {message.get('event')!r}, expected {event!r}")
        return message

    def stop(self) -> None:
        self.send("quit")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                with contextlib.suppress(OSError):
                    stream.close()


@dataclass
class Row:
    scenario: str
    server: str
    clients: int
    values: dict = field(default_factory=dict)


def merged_quantiles(results: list[dict]) -> dict[str, float | None]:
    if str(HERE) not in sys.path:  # run as a script, benchmarks/ is already there
        sys.path.insert(0, str(HERE))
    from chat_loadgen import Histogram

    hist = Histogram()
    for result in results:
        for index, count in result.get("hist", {}).items():
            hist.counts[int(index)] += count
            hist.total += count
        hist.max_us = max(hist.max_us, int(result.get("max_ms", 0) * 1000))
    return {"p50_ms": hist.quantile(0.5), "p99_ms": hist.quantile(0.99),
            "max_ms": round(hist.max_us / 1000, 3)}


def run_pairs(server: Server, clients: int, opts: argparse.Namespace,
              loadgen: Path = LOADGEN) -> Row:
    pairs = clients // 2
    procs = max(1, min(opts.procs, pairs))
    row = Row("pairs", server.kind, 2 * pairs)
    rss0 = proc_status(server.pid)["VmRSS"]
    gens = []
    first = 0
    try:
        for n in range(procs):
            share = pairs // procs + (1 if n < pairs % procs else 0)
            gens.append(Generator([
                "--port", str(server.port), "--mode", "pairs", "--pairs", str(share),
                "--first-index", str(first), "--window", str(opts.window),
                "--phase-timeout", str(opts.phase_timeout)], loadgen))
            first += 2 * share
        ready = [g.expect("ready", 3 * opts.phase_timeout) for g in gens]
        status = proc_status(server.pid)
        logged_in = sum(r["logged_in"] for r in ready)
        row.values.update(
            logged_in=logged_in, login_s=max(r["login_s"] for r in ready),
            rss_base_kb=rss0, rss_kb=status["VmRSS"], threads=status.get("Threads"),
            rss_per_conn_kb=round((status["VmRSS"] - rss0) / max(1, logged_in), 2))
        for g in gens:
            g.send(f"go {opts.warmup} {opts.duration} {opts.drain}")
        time.sleep(opts.warmup)
        cpu0, (busy0, irq0) = proc_cpu_seconds(server.pid), machine_seconds()
        t0 = time.monotonic()
        time.sleep(opts.duration)
        elapsed = time.monotonic() - t0
        server_cpu = (proc_cpu_seconds(server.pid) - cpu0) / elapsed
        busy1, irq1 = machine_seconds()
        machine_busy = (busy1 - busy0) / elapsed
        softirq = (irq1 - irq0) / elapsed
        results = [g.expect("result", opts.duration + opts.drain + opts.phase_timeout)
                   for g in gens]
    finally:
        for g in gens:
            g.stop()
    status = proc_status(server.pid) if server.alive() else {}
    row.values.update(
        msg_per_s=round(sum(r["msg_per_s"] for r in results)),
        **merged_quantiles(results),
        sent=sum(r["sent"] for r in results), received=sum(r["received"] for r in results),
        lost=sum(r["lost"] for r in results),
        misattributed=sum(r["misattributed"] for r in results),
        other_lines=sum(r["other_lines"] for r in results),
        errors=merge_counts(r["errors"] for r in ready + results),
        system_samples=sorted({s for r in results for s in r["system_samples"]})[:5],
        server_cpu=round(server_cpu, 2),
        # Messages per CPU-second of the server: what one dedicated core would sustain
        # if the server is CPU-bound; far less sensitive to other load than msg/s.
        msg_per_cpu_s=round(sum(r["msg_per_s"] for r in results) / server_cpu)
        if server_cpu > 0.01 else None,
        loadgen_cpu=[r["loadgen_cpu_share"] for r in results],
        # Cores busy with anything but this server and these generators: other
        # people's work on the machine, which makes the figures noisy.
        softirq_cpu=round(softirq, 2),
        other_cpu=round(max(0.0, machine_busy - server_cpu
                            - sum(r["loadgen_cpu_share"] for r in results)), 2),
        rss_peak_kb=status.get("VmHWM"),
    )
    return row


def best_runs(rows: list[Row]) -> list[Row]:
    """One row per (scenario, clients, server): the repeat with the highest throughput.

    Every repeat's throughput is kept in ``runs`` so the spread stays visible; losses
    and errors are summed over all repeats, so a bad repeat is never hidden.
    """
    best: dict[tuple, Row] = {}
    for row in rows:
        key = (row.scenario, row.clients, row.server)
        if row.scenario != "pairs":
            best[key] = row
            continue
        kept = best.get(key)
        if kept is None:
            kept = best[key] = Row(row.scenario, row.server, row.clients, dict(row.values))
            kept.values["runs"] = []
            kept.values["lost_all_runs"] = 0
            kept.values["misattributed_all_runs"] = 0
        elif row.values["msg_per_s"] > kept.values["msg_per_s"]:
            carried = {k: kept.values[k] for k in ("runs", "lost_all_runs",
                                                     "misattributed_all_runs")}
            kept.values = dict(row.values, **carried)
        kept.values["runs"].append(row.values["msg_per_s"])
        kept.values["lost_all_runs"] += row.values["lost"]
        kept.values["misattributed_all_runs"] += row.values["misattributed"]
    return list(best.values())


def merge_counts(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + value
    return total


def run_idle(server: Server, clients: int, opts: argparse.Namespace) -> Row:
    row = Row("idle", server.kind, clients)
    rss0 = proc_status(server.pid)["VmRSS"]
    gen = Generator(["--port", str(server.port), "--mode", "idle", "--clients", str(clients),
                     "--connect-concurrency", "512", "--phase-timeout", str(opts.login_timeout)])
    try:
        connected = gen.expect("connected", 3 * opts.login_timeout)
        time.sleep(0.3)  # let the server finish accepting what the kernel queued
        rss1 = proc_status(server.pid)["VmRSS"]
        n = max(1, connected["connected"])
        row.values.update(connected=connected["connected"], connect_s=connected["connect_s"],
                          rss_base_kb=rss0, rss_connected_kb=rss1,
                          rss_per_idle_conn_kb=round((rss1 - rss0) / n, 2))
        gen.send("login")
        done = gen.expect("logged_in", 3 * opts.login_timeout + 30)
        status = proc_status(server.pid)
        row.values.update(
            logged_in=done["logged_in"], login_s=done["login_s"], login_complete=done["complete"],
            login_p50_ms=done["login_p50_ms"], login_p99_ms=done["login_p99_ms"],
            rss_logged_in_kb=status["VmRSS"], rss_peak_kb=status.get("VmHWM"),
            threads=status.get("Threads"),
            rss_per_logged_in_kb=(round((status["VmRSS"] - rss0) / max(1, done["logged_in"]), 2)
                                  if done["complete"] else None),
            errors=merge_counts([connected["errors"], done["errors"]]),
            system_samples=done["system_samples"])
    finally:
        gen.stop()
    return row


# -- reporting ---------------------------------------------------------------------------
def fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def print_tables(rows: list[Row], opts: argparse.Namespace) -> None:
    pair_rows = [r for r in rows if r.scenario == "pairs"]
    if pair_rows:
        print(f"\nThroughput/latency: sender→receiver pairs, window {opts.window}, "
              f"{opts.duration:g} s measured, {opts.procs} load generator process(es); "
              f"best of {opts.repeat} interleaved run(s); 'lost' sums all runs")
        print(f"{'clients':>7} {'server':<7} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'max ms':>8} {'lost':>5} {'KB/conn':>8} {'srv CPU':>7} {'msg/CPU-s':>9} "
              f"{'gen CPU':>11} {'irq':>4} {'other':>5} {'login s':>7}  all runs (k msg/s)")
        for r in pair_rows:
            v = r.values
            gen_cpu = "/".join(f"{x:.2f}" for x in v.get("loadgen_cpu", []))
            print(f"{r.clients:>7} {r.server:<7} {fmt(v.get('msg_per_s'), ',d'):>9} "
                  f"{fmt(v.get('p50_ms')):>8} {fmt(v.get('p99_ms')):>8} {fmt(v.get('max_ms')):>8} "
                  f"{fmt(v.get('lost_all_runs', v.get('lost'))):>5} "
                  f"{fmt(v.get('rss_per_conn_kb')):>8} "
                  f"{fmt(v.get('server_cpu')):>7} {fmt(v.get('msg_per_cpu_s'), ',d'):>9} "
                  f"{gen_cpu:>11} {fmt(v.get('softirq_cpu')):>4} {fmt(v.get('other_cpu')):>5} "
                  f"{fmt(v.get('login_s')):>7}  "
                  + "/".join(str(round(x / 1000)) for x in v.get("runs", [])))
    idle_rows = [r for r in rows if r.scenario == "idle"]
    if idle_rows:
        print("\nIdle connections and login burst")
        print(f"{'clients':>7} {'server':<7} {'connect s':>9} {'KB/idle':>8} {'logged in':>9} "
              f"{'login s':>10} {'p99 ms':>8} {'KB/user':>8} {'peak MB':>8} {'threads':>7}")
        for r in idle_rows:
            v = r.values
            login = fmt(v.get("login_s")) + ("" if v.get("login_complete") else " DNF")
            peak = v.get("rss_peak_kb")
            print(f"{r.clients:>7} {r.server:<7} {fmt(v.get('connect_s')):>9} "
                  f"{fmt(v.get('rss_per_idle_conn_kb')):>8} {fmt(v.get('logged_in')):>9} "
                  f"{login:>10} {fmt(v.get('login_p99_ms')):>8} "
                  f"{fmt(v.get('rss_per_logged_in_kb')):>8} "
                  f"{fmt(round(peak / 1024, 1) if peak else None):>8} {fmt(v.get('threads')):>7}")
    for r in rows:
        v = r.values
        notes = []
        if v.get("errors"):
            notes.append(f"errors {v['errors']}")
        if v.get("misattributed"):
            notes.append(f"{v['misattributed']} messages with the wrong sender")
        if v.get("system_samples"):
            notes.append(f"server said {v['system_samples']}")
        if v.get("other_cpu", 0) > 0.25:
            notes.append(f"other processes kept {v['other_cpu']} cores busy during the "
                         "measurement: figures are noisy")
        if any(x > 0.9 for x in v.get("loadgen_cpu", [])):
            notes.append("a load generator used >90% of a core: it may be the bottleneck "
                         "(try --procs 2)")
        if notes:
            print(f"  note [{r.scenario} {r.clients} {r.server}]: " + "; ".join(notes))
    print_ratios(rows)


def print_ratios(rows: list[Row]) -> None:
    by_key = {(r.scenario, r.clients, r.server): r.values for r in rows}
    lines = []
    for (scenario, clients, server), ours in by_key.items():
        if server != "tcplab":
            continue
        base = by_key.get((scenario, clients, "thread"))
        if not base:
            continue
        parts = []
        for key, label in (("msg_per_s", "throughput"), ("msg_per_cpu_s", "msg/CPU-s"),
                           ("p99_ms", "p99"),
                           ("rss_per_conn_kb", "KB/conn"), ("rss_per_idle_conn_kb", "KB/idle"),
                           ("login_s", "login time")):
            a, b = ours.get(key), base.get(key)
            if isinstance(a, int | float) and isinstance(b, int | float) and b:
                parts.append(f"{label} {a / b:.2f}×")
        if scenario == "idle" and not base.get("login_complete"):
            parts.append("baseline login did not finish")
        if parts:
            lines.append(f"  {scenario} {clients:>6} clients: " + ", ".join(parts))
    if lines:
        print("\nRatios tcplab / thread-per-client baseline (same run):")
        print("\n".join(lines))


def check_targets(rows: list[Row]) -> None:
    """The issue's targets, printed as PASS/FAIL lines for tcplab's server."""
    checks = []
    for r in rows:
        if r.server != "tcplab":
            continue
        v = r.values
        if r.scenario == "pairs" and r.clients >= 1000:
            base = next((b.values for b in rows if b.server == "thread"
                         and b.scenario == "pairs" and b.clients == r.clients), None)
            runs = v.get("runs") or [v["msg_per_s"]]
            checks.append((f"{r.clients} clients ≥ 200,000 msg/s", v["msg_per_s"] >= 200_000,
                           f"{v['msg_per_s']:,} best of {len(runs)}, median "
                           f"{round(statistics.median(runs)):,}, slowest {min(runs):,}"))
            checks.append((f"{r.clients} clients p99 < 50 ms",
                           v["p99_ms"] is not None and v["p99_ms"] < 50, f"{v['p99_ms']} ms"))
            if base:
                ratio = v["msg_per_s"] / max(1, base["msg_per_s"])
                checks.append((f"{r.clients} clients ≥ 3× baseline", ratio >= 3, f"{ratio:.2f}×"))
        if r.scenario == "pairs":
            lost = v.get("lost_all_runs", v["lost"])
            checks.append((f"{r.clients} clients zero loss", lost == 0, str(lost)))
        if r.scenario == "idle" and r.clients >= 10_000:
            per = v.get("rss_per_logged_in_kb")
            state = "logged in"
            if per is None:  # the login burst did not finish: judge the silent connections
                per, state = v.get("rss_per_idle_conn_kb"), "connected, not logged in"
            checks.append((f"{r.clients} idle connections ≤ 10 KB each",
                           per is not None and per <= 10, f"{per} KB ({state})"))
            checks.append((f"{r.clients} logins within 10 s",
                           bool(v.get("login_complete")) and v["login_s"] <= 10,
                           f"{v.get('login_s')} s"))
    if checks:
        print("\nTargets (issue 5) for tcplab's server:")
        for label, ok, got in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {got}")


# -- cluster mode (--cluster): one server beside two --cluster nodes on Redis ---------------
#: The runs of ``--cluster``; every one has the same load (N clients in N/2 pairs), placed
#: differently: ``single`` one plain server (the reference), ``local`` two nodes with every
#: pair on one node, ``cross`` every pair across the nodes (every message crosses Redis),
#: ``half`` half the pairs across nodes (the issue's load).
CLUSTER_RUNS = ("single", "local", "cross", "half")
CLUSTER_NODES = 2
TARGET_CLUSTER_P99_MS = 50.0
TARGET_CROSS_RATIO = 2.0


class RedisServer:
    """A private ``redis-server``: 127.0.0.1 only, a free port, no persistence."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise BenchError("redis-server is not installed (sudo apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=bool(NICE), preexec_fn=die_with_parent)
        prioritize(self.proc.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not answer PING within 10 s")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_cluster_pairs(name: str, ports: list[int], pids: list[int], redis_pid: int | None,
                      opts: argparse.Namespace) -> Row:
    """One ``--cluster`` run: the pairs load over ``ports`` in layout ``name``; CPU of the
    servers (and Redis) from /proc over the measured window."""
    pairs = opts.clients[0] // 2
    row = Row("cluster", name, 2 * pairs)
    args = ["--port", str(ports[0]), "--mode", "pairs", "--pairs", str(pairs),
            "--window", str(opts.window), "--phase-timeout", str(opts.phase_timeout)]
    if len(ports) > 1:
        args += ["--ports", ",".join(map(str, ports)), "--layout", name]
    gen = Generator(args)
    try:
        ready = gen.expect("ready", 3 * opts.phase_timeout)
        if ready["logged_in"] != 2 * pairs:
            raise BenchError(f"{name}: only {ready['logged_in']} of {2 * pairs} clients logged "
                             f"in: {ready['errors']}")
        gen.send(f"go {opts.warmup} {opts.duration} {opts.drain}")
        time.sleep(opts.warmup)
        watched = pids + ([redis_pid] if redis_pid else [])
        cpu0 = [proc_cpu_seconds(p) for p in watched]
        t0 = time.monotonic()
        time.sleep(opts.duration)
        elapsed = time.monotonic() - t0
        cpu = [proc_cpu_seconds(p) - c for p, c in zip(watched, cpu0, strict=True)]
        result = gen.expect("result", opts.duration + opts.drain + opts.phase_timeout)
    finally:
        gen.stop()
    delivered = result["msg_per_s"] * elapsed
    nodes_cpu = sum(cpu[:len(pids)])
    redis_cpu = cpu[len(pids)] if redis_pid else 0.0
    row.values.update(
        msg_per_s=round(result["msg_per_s"]), **merged_quantiles([result]),
        sent=result["sent"], received=result["received"], lost=result["lost"],
        misattributed=result["misattributed"], errors=result["errors"],
        system_samples=result["system_samples"],
        nodes_cpu=round(nodes_cpu / elapsed, 3), redis_cpu=round(redis_cpu / elapsed, 3),
        loadgen_cpu=result["loadgen_cpu_share"],
        # What a deployment pays per message whatever the machine: CPU seconds of every
        # server process plus Redis per 100,000 delivered messages.
        cpu_s_per_100k=round((nodes_cpu + redis_cpu) / delivered * 100_000, 3) if delivered else None,
        redis_cpu_s_per_100k=round(redis_cpu / delivered * 100_000, 4) if delivered else None)
    return row


def start_cluster_nodes(redis: RedisServer, extra: list[str], command: list[str],
                        logdir: Path) -> list[Server]:
    nodes: list[Server] = []
    try:
        for i in range(1, CLUSTER_NODES + 1):
            node = Server("tcplab", [*extra, "--cluster", redis.url, "--node-name", f"bench{i}"],
                          None, command)
            node.start(logdir)
            nodes.append(node)
    except BenchError:
        for node in nodes:
            node.stop()
        raise
    return nodes


def median_cluster_runs(rows: list[Row]) -> list[Row]:
    """One row per run name: the repeat with the median CPU per message (one coherent
    repeat, not a mix of figures); losses are summed over every repeat."""
    out: list[Row] = []
    for name in dict.fromkeys(r.server for r in rows):
        repeats = sorted((r for r in rows if r.server == name),
                         key=lambda r: r.values["cpu_s_per_100k"] or 0.0)
        kept = repeats[(len(repeats) - 1) // 2]
        values = dict(kept.values)
        values["lost_all_runs"] = sum(r.values["lost"] for r in repeats)
        values["cpu_all_runs"] = [r.values["cpu_s_per_100k"] for r in rows if r.server == name]
        out.append(Row(kept.scenario, name, kept.clients, values))
    return out


def cluster_ratio(by: dict[str, dict], a: str, b: str) -> float | None:
    x, y = by.get(a, {}).get("cpu_s_per_100k"), by.get(b, {}).get("cpu_s_per_100k")
    return x / y if x and y else None


def print_cluster_report(rows: list[Row], opts: argparse.Namespace) -> None:
    print(f"\nCluster: {opts.clients[0]} clients in pairs, {CLUSTER_NODES} nodes on one Redis, "
          f"window {opts.window}, {opts.duration:g} s measured; median of {opts.repeat} "
          "interleaved repeat(s) by CPU per message; 'lost' sums all repeats")
    print(f"  {'run':<7} {'msg/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} {'nodes CPU':>9} "
          f"{'Redis CPU':>9} {'loadgen':>7} {'CPU s/100k msg':>14}  all repeats")
    for r in rows:
        v = r.values
        print(f"  {r.server:<7} {v['msg_per_s']:>8,} {fmt(v['p50_ms']):>7} {fmt(v['p99_ms']):>7} "
              f"{v['lost_all_runs']:>5} {v['nodes_cpu']:>9.2f} {v['redis_cpu']:>9.2f} "
              f"{v['loadgen_cpu']:>7.2f} {fmt(v['cpu_s_per_100k']):>14}  "
              + "/".join(fmt(x) for x in v["cpu_all_runs"]))
        if v.get("errors") or v.get("system_samples") or v.get("misattributed"):
            print(f"    note [{r.server}]: errors {v.get('errors')}, server said "
                  f"{v.get('system_samples')}, {v.get('misattributed')} with the wrong sender")
    by = {r.server: r.values for r in rows}
    print("\nRatios of CPU seconds per 100k delivered messages (servers + Redis):")
    for a, b in (("cross", "local"), ("half", "single"), ("local", "single"), ("cross", "single")):
        ratio = cluster_ratio(by, a, b)
        if ratio is not None:
            print(f"  {a} / {b}: {ratio:.2f}")
    print("\nTargets (issue 13) for the cluster:")
    for r in rows:
        if r.server == "single":
            continue
        v = r.values
        print(f"  {'PASS' if v['lost_all_runs'] == 0 else 'FAIL'}  {r.server}: zero loss "
              f"({v['lost_all_runs']})")
        p99 = v["p99_ms"]
        print(f"  {'PASS' if p99 is not None and p99 < TARGET_CLUSTER_P99_MS else 'FAIL'}  "
              f"{r.server}: p99 < {TARGET_CLUSTER_P99_MS:g} ms ({fmt(p99)})")
    ratio = cluster_ratio(by, "cross", "local")
    if ratio is not None:
        print(f"  {'PASS' if ratio <= TARGET_CROSS_RATIO else 'FAIL'}  a cross-node message costs "
              f"≤ {TARGET_CROSS_RATIO:g}× the CPU of a local one, Redis included ({ratio:.2f}×)")


def cluster_main(opts: argparse.Namespace, command: list[str], extra: list[str],
                 logdir: Path) -> tuple[int, list[Row]]:
    """``--cluster``: every run of ``opts.runs`` ``opts.repeat`` times, interleaved, each on
    a fresh Redis and fresh processes so no run inherits another's state."""
    if shutil.which("redis-server") is None:
        print("bench_chat: error: --cluster needs redis-server "
              "(sudo apt-get install redis-server)", file=sys.stderr)
        return 2, []
    rows: list[Row] = []
    for _ in range(opts.repeat):
        for name in opts.runs:
            print(f"  cluster {opts.clients[0]:>6} clients  {name:<7}", end=" ", flush=True)
            started = time.monotonic()
            redis: RedisServer | None = None
            servers: list[Server] = []
            try:
                if name == "single":
                    servers = [Server("tcplab", extra, None, command)]
                    servers[0].start(logdir)
                else:
                    redis = RedisServer()
                    servers = start_cluster_nodes(redis, extra, command, logdir)
                row = run_cluster_pairs(name, [s.port for s in servers], [s.pid for s in servers],
                                        redis.pid if redis else None, opts)
                for s in servers:
                    if not s.alive():
                        raise BenchError(f"a server of the {name} run died:\n{s.log_tail()}")
            finally:
                for s in servers:
                    s.stop()
                if redis is not None:
                    redis.stop()
            rows.append(row)
            print(f"done in {time.monotonic() - started:.1f} s, {row.values['msg_per_s']:,} msg/s, "
                  f"{fmt(row.values['cpu_s_per_100k'])} CPU s/100k", flush=True)
    return 0, rows


# -- main --------------------------------------------------------------------------------
def raise_fd_limit() -> None:
    """Children inherit this: 10,000 connections need 10,000+ descriptors on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark tcplab's chat server against a thread-per-client baseline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and short windows: a smoke run of a few seconds")
    parser.add_argument("--clients", type=int, nargs="*", default=None,
                        help="client counts for the pairs scenario [100 1000; quick: 20]; "
                             "give no number to skip it")
    parser.add_argument("--idle", type=int, nargs="*", default=None,
                        help="connection counts for the idle/login scenario "
                             "[10000; quick: 200]; give no number to skip it")
    parser.add_argument("--servers", default="tcplab,thread,bare",
                        help=f"comma-separated, from {', '.join(SERVERS)}")
    parser.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--repeat", type=int, default=None,
                        help="pairs runs per server, interleaved; the best is reported "
                             "[3; quick 1]")
    parser.add_argument("--warmup", type=float, default=None, help="seconds [1; quick 0.3]")
    parser.add_argument("--duration", type=float, default=None,
                        help="measured seconds [5; quick 1]")
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds allowed for in-flight messages to arrive after sending stops")
    parser.add_argument("--phase-timeout", type=float, default=None,
                        help="seconds allowed to connect/log in/settle [60; quick 15]")
    parser.add_argument("--login-timeout", type=float, default=None,
                        help="seconds allowed for the idle scenario's login burst [30; quick 10]")
    parser.add_argument("--tcplab-args", default="",
                        help="extra arguments for 'tcplab server' (shell-quoted string)")
    parser.add_argument("--tcplab-command", default=None,
                        help="command that starts tcplab's server, before --host/--port "
                             "[python -m tcplab server]; e.g. another checkout's interpreter")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run tcplab's server under cProfile; write stats to this file "
                             "(slows it down: use for finding hot spots, not for figures)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the servers and generators, each in its own "
                             "session/autogroup; negative (root only) keeps other work on a "
                             "shared machine from distorting the figures")
    parser.add_argument("--cluster", action="store_true",
                        help="instead of the servers above: one tcplab server beside two "
                             "'tcplab server --cluster' nodes on a private redis-server, the "
                             "pairs placed as --runs says; CPU of nodes + Redis per 100k "
                             "delivered messages [clients 1000; quick 100]")
    parser.add_argument("--runs", default=",".join(CLUSTER_RUNS),
                        help="with --cluster: which runs, from "
                             f"{', '.join(CLUSTER_RUNS)} (single server; pairs on one node; "
                             "every pair across nodes; half the pairs across nodes)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--logdir", type=Path, default=None,
                        help="keep the servers' output here [a temporary directory, "
                             "removed after a successful run]")
    opts = parser.parse_args(argv)
    quick = opts.quick
    if opts.cluster:
        if opts.clients is None:
            opts.clients = [100] if quick else [1000]
        if len(opts.clients) != 1 or opts.clients[0] < 4:
            parser.error("--cluster takes one --clients count of at least 4")
        if opts.procs != 1 or opts.profile:
            parser.error("--cluster runs one load generator and no --profile")
        if opts.idle is not None or opts.servers != parser.get_default("servers"):
            parser.error("--cluster runs its own servers (see --runs): leave out --servers and --idle")
        opts.runs = [r.strip() for r in opts.runs.split(",") if r.strip()]
        for name in opts.runs:
            if name not in CLUSTER_RUNS:
                parser.error(f"unknown --runs entry {name!r}; choose from {', '.join(CLUSTER_RUNS)}")
        opts.idle = []
        opts.servers = "tcplab"
    if opts.clients is None:
        opts.clients = [20] if quick else [100, 1000]
    if opts.idle is None:
        opts.idle = [200] if quick else [10_000]
    opts.repeat = opts.repeat or (1 if quick else 3)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if quick else 1.0)
    opts.duration = opts.duration if opts.duration is not None else (1.0 if quick else 5.0)
    if quick and opts.drain == 5.0:
        opts.drain = 3.0
    opts.phase_timeout = opts.phase_timeout or (15.0 if quick else 60.0)
    opts.login_timeout = opts.login_timeout or (10.0 if quick else 30.0)
    opts.servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    for name in opts.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    for n in opts.clients:
        if n < 2:
            parser.error("--clients needs at least 2 (one sender, one receiver)")
    if any(n > 15_000 for n in [*opts.clients, *opts.idle]):
        parser.error("at most 15,000 clients per scenario (descriptor limit on both sides)")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_fd_limit()
    if opts.nice < 0 and os.geteuid() != 0:
        print("bench_chat: error: a negative --nice needs root", file=sys.stderr)
        return 2
    global NICE
    NICE = opts.nice
    command = shlex.split(opts.tcplab_command) if opts.tcplab_command else [
        sys.executable, "-m", "tcplab", "server"]
    if "tcplab" in opts.servers and not server_help(command):
        print(f"bench_chat: error: '{' '.join(command)} --help' failed: tcplab's chat server "
              "is not available in this installation", file=sys.stderr)
        return 2
    extra = tcplab_flags(command) + shlex.split(opts.tcplab_args)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    if opts.cluster:
        return main_cluster(opts, command, extra, load)
    print(f"bench_chat: servers {', '.join(opts.servers)}; pairs {opts.clients}; "
          f"idle {opts.idle}; tcplab server flags: {' '.join(extra) or '(defaults)'}; "
          f"{os.cpu_count()} CPUs, load average {load}, nice {opts.nice}",
          flush=True)
    keep_logs = opts.logdir is not None
    logdir = opts.logdir or Path(tempfile.mkdtemp(prefix="bench_chat_"))
    logdir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    # Pairs runs are repeated with the servers interleaved, so a burst of other work on
    # a shared machine hits every server alike; the best run of each is kept.
    plan = [("pairs", n) for n in opts.clients for _ in range(opts.repeat)]
    plan += [("idle", n) for n in opts.idle]
    try:
        for scenario, clients in plan:
            for kind in opts.servers:
                profile = opts.profile if kind == "tcplab" else None
                server = Server(kind, extra if kind == "tcplab" else [], profile, command)
                print(f"  {scenario:<5} {clients:>6} clients  {kind:<7}", end=" ", flush=True)
                started = time.monotonic()
                server.start(logdir)
                try:
                    if scenario == "pairs":
                        row = run_pairs(server, clients, opts)
                    else:
                        row = run_idle(server, clients, opts)
                    if not server.alive():
                        raise BenchError(f"{kind} server died:\n{server.log_tail()}")
                finally:
                    server.stop()
                rows.append(row)
                print(f"done in {time.monotonic() - started:.1f} s"
                      + (f", {row.values['msg_per_s']:,} msg/s" if scenario == "pairs" else ""),
                      flush=True)
    except BenchError as exc:
        print(f"\nbench_chat: error: {exc}\n(server output kept in {logdir})", file=sys.stderr)
        print_tables(best_runs(rows), opts)
        return 1
    except KeyboardInterrupt:
        print(f"\nbench_chat: interrupted (server output kept in {logdir})", file=sys.stderr)
        return 130
    if not keep_logs:
        shutil.rmtree(logdir, ignore_errors=True)
    best = best_runs(rows)
    print_tables(best, opts)
    check_targets(best)
    if opts.json:
        opts.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    if opts.profile and opts.profile.exists():
        import pstats

        print(f"\ncProfile of tcplab's server (last scenario), top functions by own time "
              f"({opts.profile}):")
        pstats.Stats(str(opts.profile)).sort_stats("tottime").print_stats(20)
    return 0


def main_cluster(opts: argparse.Namespace, command: list[str], extra: list[str], load: str) -> int:
    print(f"bench_chat --cluster: runs {', '.join(opts.runs)} x {opts.repeat}; "
          f"{opts.clients[0]} clients; tcplab server flags: {' '.join(extra) or '(defaults)'}; "
          f"{os.cpu_count()} CPUs, load average {load}, nice {opts.nice}", flush=True)
    keep_logs = opts.logdir is not None
    logdir = opts.logdir or Path(tempfile.mkdtemp(prefix="bench_chat_cluster_"))
    logdir.mkdir(parents=True, exist_ok=True)
    try:
        status, rows = cluster_main(opts, command, extra, logdir)
    except BenchError as exc:
        print(f"\nbench_chat: error: {exc}\n(server output kept in {logdir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nbench_chat: interrupted (server output kept in {logdir})", file=sys.stderr)
        return 130
    if status:
        return status
    if not keep_logs:
        shutil.rmtree(logdir, ignore_errors=True)
    print_cluster_report(median_cluster_runs(rows), opts)
    if opts.json:
        opts.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
