"""IRC benchmark: tcplab's IRC listener against ngIRCd and InspIRCd, the same load on each.

Usage::

    python benchmarks/bench_irc.py               # 1,000 clients, best of 3 (about 2 minutes)
    python benchmarks/bench_irc.py --quick       # seconds: a smoke run
    python benchmarks/bench_irc.py --servers tcplab,ngircd --clients 100 1000

Load (``irc_loadgen.py``, the chat benchmark's generator speaking IRC): N clients
register (``NICK``/``USER``) and ``JOIN #lobby`` — on tcplab everyone is in ``#lobby``
anyway, so the daemons hold the same state — then N/2 senders keep ``--window`` private
messages in flight to their receivers. Reported per server: delivered msg/s, p50/p99
latency, loss after a drain, server CPU (cores while measuring), messages per server
CPU-second, RSS per connection.

The daemons are started by this script from the Debian packages (``/usr/sbin/ngircd``,
``/usr/sbin/inspircd``) with configurations written to a temporary directory, listening
on free loopback ports, their flood limits lifted as far as their configuration allows:

* ngIRCd: ``MaxPenaltyTime = 0`` (no command penalties, so no throttling), no connection
  limits, DNS and ident off. Not liftable (compile-time constants in ``conn.c`` and
  ``defines.h``): at most 3 commands per client per event-loop pass, 2 KB read buffer per
  client, 32 KB write buffer per client, listen backlog 10 (hence the generator's modest
  connect pace, the same for every server).
* InspIRCd: a connect class with ``fakelag="no"``, ``commandrate`` and ``threshold`` at
  their maxima, 10 MB receive and soft send queues, 100 MB hard send queue, no per-IP
  limits, no DNS. Not liftable: the penalty accounting itself still runs per command.
* tcplab: ``--irc-only --rate 0`` (flood control off), ``--max-clients 20000``,
  ``--max-per-address 0`` (every client comes from 127.0.0.1).

Benchmark code only: never imported by ``src/tcplab``; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_chat  # noqa: E402
from bench_chat import BenchError, Row, best_runs, run_pairs  # noqa: E402

LOADGEN = HERE / "irc_loadgen.py"
SERVERS = ("tcplab", "ngircd", "inspircd")
PROGRAMS = {"ngircd": "/usr/sbin/ngircd", "inspircd": "/usr/sbin/inspircd"}
#: What could not be lifted, printed with the results (docs/performance.md repeats it).
LIMITS_KEPT = {
    "tcplab": "none (--rate 0: no flood control; --max-per-address 0: no per-address limit)",
    "ngircd": "compile-time: 3 commands per client per loop pass, 2 KB read buffer, "
              "32 KB write buffer, listen backlog 10",
    "inspircd": "per-command penalty accounting still runs (limits at their maxima)",
}

NGIRCD_CONF = """\
[Global]
Name = bench.ngircd
Info = tcplab IRC benchmark
Listen = 127.0.0.1
Ports = {port}
PidFile = {dir}/ngircd.pid
MotdPhrase = "benchmark"
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
IdleTimeout = 0
[Options]
DNS = no
Ident = no
PAM = no
"""

INSPIRCD_CONF = """\
<server name="bench.inspircd" description="tcplab IRC benchmark" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="127.0.0.1" timeout="60" pingfreq="600"
         hardsendq="100M" softsendq="10M" recvq="10M"
         threshold="4294967295" commandrate="4294967295" fakelag="no"
         localmax="100000" globalmax="100000" limit="100000" maxchans="20"
         resolvehostnames="no" useident="no">
<pid file="{dir}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd.log">
<performance netbuffersize="65536" somaxconn="4096" softlimit="100000"
             clonesonconnect="no" quietbursts="yes">
<dns timeout="1">
"""


@dataclass
class IrcServer(bench_chat.Server):
    """One IRC server process: tcplab's listener or a Debian daemon with a generated config."""

    workdir: Path | None = None

    def command(self) -> list[str]:
        port = str(self.port)
        if self.kind == "tcplab":
            base = self.tcplab_command or [sys.executable, "-m", "tcplab", "server"]
            return [*base, "--host", "127.0.0.1", "--irc-only", "--irc-port", port,
                    "--rate", "0", "--max-clients", "20000", "--max-per-address", "0",
                    "--quiet", *self.extra]
        assert self.workdir is not None
        conf_dir = self.workdir / f"{self.kind}-{port}"
        conf_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(conf_dir, 0o777)  # ngIRCd drops to nobody after reading its config
        if self.kind == "ngircd":
            conf = conf_dir / "ngircd.conf"
            conf.write_text(NGIRCD_CONF.format(port=port, dir=conf_dir))
            return [PROGRAMS["ngircd"], "--nodaemon", "--config", str(conf)]
        conf = conf_dir / "inspircd.conf"
        conf.write_text(INSPIRCD_CONF.format(port=port, dir=conf_dir))
        root = ["--runasroot"] if os.geteuid() == 0 else []
        return [PROGRAMS["inspircd"], "--nofork", *root, f"--config={conf}"]


def fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "–"
    return format(value, spec) if spec else str(value)


def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'clients':>7} {'server':<9} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} "
          f"{'srv cores':>9} {'msg/CPU-s':>10} {'KB/conn':>8} {'gen cores':>9} "
          f"{'other':>6} {'login s':>7}  runs (k msg/s)")
    for row in sorted(rows, key=lambda r: (r.clients, SERVERS.index(r.server))):
        v = row.values
        runs = "/".join(str(round(x / 1000)) for x in v.get("runs", []))
        gen = sum(v.get("loadgen_cpu") or [0])
        print(f"{row.clients:>7} {row.server:<9} {fmt(v.get('msg_per_s'), ',d'):>9} "
              f"{fmt(v.get('p50_ms')):>8} {fmt(v.get('p99_ms')):>8} "
              f"{fmt(v.get('lost_all_runs', v.get('lost'))):>5} {fmt(v.get('server_cpu')):>9} "
              f"{fmt(v.get('msg_per_cpu_s'), ',d'):>10} {fmt(v.get('rss_per_conn_kb')):>8} "
              f"{gen:>9.2f} {fmt(v.get('other_cpu')):>6} {fmt(v.get('login_s')):>7}  {runs}")
        if v.get("logged_in") != row.clients:
            print(f"{'':>17} only {v.get('logged_in')} of {row.clients} clients registered")
        if v.get("errors") or v.get("system_samples") or v.get("misattributed_all_runs"):
            print(f"{'':>17} errors {v.get('errors')}, misattributed "
                  f"{v.get('misattributed_all_runs')}, samples {v.get('system_samples')}")
    print("\nlimits that could not be lifted:")
    for server in sorted({r.server for r in rows}, key=SERVERS.index):
        print(f"  {server:<9} {LIMITS_KEPT[server]}")


def print_verdict(rows: list[Row]) -> None:
    """Target (issue 12): within 2× of the faster C/C++ daemon's throughput per CPU-second,
    with zero loss."""
    for clients in sorted({r.clients for r in rows}):
        by = {r.server: r.values for r in rows if r.clients == clients}
        ours = by.get("tcplab", {}).get("msg_per_cpu_s")
        others = {k: v.get("msg_per_cpu_s") for k, v in by.items() if k != "tcplab"}
        others = {k: v for k, v in others.items() if v}
        if not ours or not others:
            continue
        short = [k for k, v in by.items() if v.get("logged_in") != clients]
        if short:
            print(f"{clients} clients: not comparable, {', '.join(short)} did not register "
                  "every client")
            continue
        best_name = max(others, key=others.__getitem__)
        ratio = ours / others[best_name]
        lost = sum(v.get("lost_all_runs", 0) or 0 for v in by.values())
        verdict = "met" if ratio >= 0.5 and not by["tcplab"].get("lost_all_runs") else "NOT met"
        print(f"{clients} clients: tcplab {ours:,} msg per CPU-s = {ratio:.2f}× {best_name} "
              f"({others[best_name]:,}); target ≥ 0.5× with zero loss: {verdict} "
              f"(losses, all servers and runs: {lost})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark tcplab's IRC listener against ngIRCd and InspIRCd.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--clients", type=int, nargs="+", default=None,
                        help="client counts [1000; quick: 20]")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, from {', '.join(SERVERS)}")
    parser.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--repeat", type=int, default=None, help="runs per server [3; quick 1]")
    parser.add_argument("--warmup", type=float, default=None, help="seconds [1; quick 0.3]")
    parser.add_argument("--duration", type=float, default=None, help="seconds [5; quick 1]")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds for in-flight messages")
    parser.add_argument("--phase-timeout", type=float, default=None,
                        help="seconds to connect/register/settle [180; quick 15]")
    parser.add_argument("--tcplab-command", default=None,
                        help="command that starts tcplab's server [python -m tcplab server]")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of servers and generators (negative needs root)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    opts = parser.parse_args(argv)
    quick = opts.quick
    opts.clients = opts.clients or ([20] if quick else [1000])
    opts.repeat = opts.repeat or (1 if quick else 3)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if quick else 1.0)
    opts.duration = opts.duration if opts.duration is not None else (1.0 if quick else 5.0)
    if quick and opts.drain == 5.0:
        opts.drain = 3.0
    opts.phase_timeout = opts.phase_timeout or (15.0 if quick else 180.0)
    opts.servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    for name in opts.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    if any(n < 2 or n > 15_000 for n in opts.clients):
        parser.error("--clients: from 2 to 15,000")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    bench_chat.raise_fd_limit()
    bench_chat.NICE = opts.nice
    missing = [s for s in opts.servers if s in PROGRAMS and not Path(PROGRAMS[s]).exists()]
    if missing:
        print(f"bench_irc: error: {', '.join(missing)} not installed "
              f"(apt-get install {' '.join(missing)})", file=sys.stderr)
        return 2
    command = opts.tcplab_command.split() if opts.tcplab_command else None
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"bench_irc: servers {', '.join(opts.servers)}; clients {opts.clients}; window "
          f"{opts.window}; {os.cpu_count()} CPUs, load average {load} at start", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_irc_"))
    rows: list[Row] = []
    plan = [n for n in opts.clients for _ in range(opts.repeat)]
    try:
        for clients in plan:
            for kind in opts.servers:
                server = IrcServer(kind, [], None, command, workdir=workdir)
                print(f"  pairs {clients:>6} clients  {kind:<9}", end=" ", flush=True)
                started = time.monotonic()
                server.start(workdir)
                try:
                    row = run_pairs(server, clients, opts, LOADGEN)
                    if not server.alive():
                        raise BenchError(f"{kind} died:\n{server.log_tail()}")
                finally:
                    server.stop()
                rows.append(row)
                print(f"done in {time.monotonic() - started:.1f} s, "
                      f"{row.values['msg_per_s']:,} msg/s, lost {row.values['lost']}", flush=True)
    except BenchError as exc:
        print(f"\nbench_irc: error: {exc}\n(output kept in {workdir})", file=sys.stderr)
        print_table(best_runs(rows))
        return 1
    except KeyboardInterrupt:
        print(f"\nbench_irc: interrupted (output kept in {workdir})", file=sys.stderr)
        return 130
    shutil.rmtree(workdir, ignore_errors=True)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    best = best_runs(rows)
    print_table(best)
    print(f"\nload average {load} at the end")
    print_verdict(best)
    if opts.json:
        opts.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
