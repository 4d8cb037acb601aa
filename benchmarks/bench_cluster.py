"""Cluster benchmark: the chat on one server vs. two ``--cluster`` nodes on Redis, in one run.

Usage::

    python benchmarks/bench_cluster.py              # 1,000 clients, about 2 minutes
    python benchmarks/bench_cluster.py --quick      # 100 clients, seconds: a smoke run

Runs, each with the same load (N clients in N/2 sender → receiver pairs, ``--window``
messages in flight per sender, ``chat_loadgen.py`` in a separate process):

* ``single``: one ``tcplab server`` (the reference);
* ``local``: two nodes, every pair on one node (no message crosses Redis);
* ``cross``: two nodes, every pair across nodes (every message is a Redis PUBLISH);
* ``half``: two nodes, half the pairs across nodes (the issue's load).

Figures: delivered msg/s, p50/p99 latency, loss, and **CPU seconds per 100k delivered
messages** of the servers plus Redis (from ``/proc/PID/stat`` over the measured window),
which is what a deployment pays per message whatever the machine. On a 2-core machine the
load generator competes for the same cores, so absolute throughput does not show scaling;
the efficiency figure does. Only 127.0.0.1 is ever used; Redis is a private instance on a
free port, with no persistence. Benchmark code only: never imported by ``src/tcplab``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_chat  # noqa: E402 - benchmarks/ is not a package
from bench_chat import (  # noqa: E402
    BenchError,
    Generator,
    Server,
    free_port,
    merged_quantiles,
    proc_cpu_seconds,
    raise_fd_limit,
)

FLAGS = ["--rate", "0", "--max-clients", "20000", "--max-per-address", "0", "--quiet"]
TARGET_P99_MS = 50.0
TARGET_CROSS_RATIO = 2.0


@dataclass
class Run:
    name: str
    clients: int
    values: dict = field(default_factory=dict)


class Redis:
    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=bool(bench_chat.NICE))
        bench_chat.prioritize(self.proc.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def measure(name: str, ports: list[int], layout: str, pids: list[int], redis_pid: int | None,
            opts: argparse.Namespace) -> Run:
    pairs = opts.clients // 2
    run = Run(name, 2 * pairs)
    args = ["--port", str(ports[0]), "--mode", "pairs", "--pairs", str(pairs),
            "--window", str(opts.window), "--phase-timeout", str(opts.phase_timeout)]
    if len(ports) > 1:
        args += ["--ports", ",".join(map(str, ports)), "--layout", layout]
    gen = Generator(args)
    try:
        ready = gen.expect("ready", 3 * opts.phase_timeout)
        if ready["logged_in"] != 2 * pairs:
            raise BenchError(f"{name}: only {ready['logged_in']} of {2 * pairs} logged in: {ready['errors']}")
        gen.send(f"go {opts.warmup} {opts.duration} {opts.drain}")
        time.sleep(opts.warmup)
        watched = pids + ([redis_pid] if redis_pid else [])
        cpu0 = [proc_cpu_seconds(p) for p in watched]
        t0 = time.monotonic()
        time.sleep(opts.duration)
        elapsed = time.monotonic() - t0
        cpu = [(proc_cpu_seconds(p) - c) for p, c in zip(watched, cpu0, strict=True)]
        result = gen.expect("result", opts.duration + opts.drain + opts.phase_timeout)
    finally:
        gen.stop()
    delivered = result["msg_per_s"] * elapsed
    total_cpu = sum(cpu)
    run.values.update(
        msg_per_s=round(result["msg_per_s"]), **merged_quantiles([result]),
        sent=result["sent"], received=result["received"], lost=result["lost"],
        errors=result["errors"], nodes_cpu=round(sum(cpu[:len(pids)]) / elapsed, 2),
        redis_cpu=round(cpu[len(pids)] / elapsed, 2) if redis_pid else 0.0,
        loadgen_cpu=result["loadgen_cpu_share"],
        cpu_s_per_100k=round(total_cpu / delivered * 100_000, 2) if delivered else None)
    return run


def start_nodes(redis: Redis, logdir: Path) -> list[Server]:
    nodes = []
    for i in (1, 2):
        node = Server("tcplab", [*FLAGS, "--cluster", redis.url, "--node-name", f"bench{i}"])
        node.start(logdir)
        nodes.append(node)
    return nodes


def print_report(runs: list[Run], opts: argparse.Namespace) -> None:
    print(f"\nPairs, {opts.clients} clients, window {opts.window}, {opts.duration:g} s measured:")
    head = (f"  {'run':<7} {'msg/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} "
            f"{'nodes CPU':>9} {'Redis CPU':>9} {'loadgen':>7} {'CPU s/100k msg':>14}")
    print(head)
    for r in runs:
        v = r.values
        print(f"  {r.name:<7} {v['msg_per_s']:>8,} {v['p50_ms'] or 0:>7.2f} {v['p99_ms'] or 0:>7.2f} "
              f"{v['lost']:>5} {v['nodes_cpu']:>9.2f} {v['redis_cpu']:>9.2f} "
              f"{v['loadgen_cpu']:>7.2f} {v['cpu_s_per_100k'] or 0:>14.2f}")
    by = {r.name: r.values for r in runs}
    print("\nRatios (CPU seconds per 100k delivered messages, servers + Redis):")
    for a, b in (("cross", "local"), ("half", "single"), ("local", "single"), ("cross", "single")):
        if a in by and b in by and by[a]["cpu_s_per_100k"] and by[b]["cpu_s_per_100k"]:
            print(f"  {a} / {b}: {by[a]['cpu_s_per_100k'] / by[b]['cpu_s_per_100k']:.2f}")
    print("\nTargets (issue 13):")
    for r in runs:
        if r.name == "single":
            continue
        v = r.values
        print(f"  {'PASS' if v['lost'] == 0 else 'FAIL'}  {r.name}: zero loss ({v['lost']})")
        p99 = v["p99_ms"] or 0
        print(f"  {'PASS' if p99 < TARGET_P99_MS else 'FAIL'}  {r.name}: p99 < {TARGET_P99_MS:g} ms ({p99:.1f})")
    if "cross" in by and "local" in by and by["local"]["cpu_s_per_100k"]:
        ratio = by["cross"]["cpu_s_per_100k"] / by["local"]["cpu_s_per_100k"]
        print(f"  {'PASS' if ratio <= TARGET_CROSS_RATIO else 'FAIL'}  cross-node message costs "
              f"≤ {TARGET_CROSS_RATIO:g}× a local one, Redis included ({ratio:.2f}×)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 clients, short windows")
    parser.add_argument("--clients", type=int, default=None, help="clients per run [1000; quick 100]")
    parser.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    parser.add_argument("--runs", default="single,local,cross,half", help="which runs, in order")
    parser.add_argument("--warmup", type=float, default=None, help="seconds [1; quick 0.3]")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds [5; quick 1]")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds for in-flight messages")
    parser.add_argument("--phase-timeout", type=float, default=60.0)
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of servers, Redis and generator, each in its own session; "
                             "negative (root only) keeps other work on a shared machine from "
                             "distorting latency figures")
    opts = parser.parse_args(argv)
    opts.clients = opts.clients or (100 if opts.quick else 1000)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if opts.quick else 1.0)
    opts.duration = opts.duration if opts.duration is not None else (1.0 if opts.quick else 5.0)
    opts.runs = [r.strip() for r in opts.runs.split(",") if r.strip()]
    for r in opts.runs:
        if r not in ("single", "local", "cross", "half"):
            parser.error(f"unknown run {r!r}")
    if opts.clients < 4 or opts.clients > 15_000:
        parser.error("--clients must be 4-15000")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_fd_limit()
    if opts.nice < 0 and os.geteuid() != 0:
        print("bench_cluster: error: a negative --nice needs root", file=sys.stderr)
        return 2
    bench_chat.NICE = opts.nice
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"bench_cluster: runs {', '.join(opts.runs)}; {opts.clients} clients; "
          f"{os.cpu_count()} CPUs, load average {load}, nice {opts.nice}", flush=True)
    logdir = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    runs: list[Run] = []
    redis: Redis | None = None
    nodes: list[Server] = []
    try:
        for name in opts.runs:
            print(f"  {name:<7}", end=" ", flush=True)
            started = time.monotonic()
            if name == "single":
                server = Server("tcplab", FLAGS)
                server.start(logdir)
                try:
                    run = measure(name, [server.port], "local", [server.pid], None, opts)
                finally:
                    server.stop()
            else:
                # A fresh Redis and fresh nodes per run: no run inherits another's state.
                redis = Redis()
                nodes = start_nodes(redis, logdir)
                try:
                    run = measure(name, [n.port for n in nodes], name, [n.pid for n in nodes],
                                  redis.proc.pid, opts)
                    for n in nodes:
                        if not n.alive():
                            raise BenchError(f"a node died:\n{n.log_tail()}")
                finally:
                    for n in nodes:
                        n.stop()
                    redis.stop()
                    nodes, redis = [], None
            runs.append(run)
            print(f"done in {time.monotonic() - started:.1f} s, {run.values['msg_per_s']:,} msg/s",
                  flush=True)
    except BenchError as exc:
        print(f"\nbench_cluster: error: {exc}\n(server output kept in {logdir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench_cluster: interrupted", file=sys.stderr)
        return 130
    finally:
        for n in nodes:
            n.stop()
        if redis is not None:
            redis.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    print_report(runs, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
