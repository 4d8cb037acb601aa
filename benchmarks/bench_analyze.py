"""Benchmark: every ``tcplab analyze`` view beside its tshark 4.0 equivalent, in one run.

Builds one capture of realistic TCP traffic (many connections on Ethernet: handshakes with
options, data segments carrying the kernel's NOP,NOP,Timestamps, HTTP requests and 1 KB
responses, ACKs, FIN teardowns, some retransmissions), then times whole processes on the
same file, output to /dev/null, tcplab and tshark alternately, median of N rounds:

=====================  =========================================  ===================
view                   tcplab                                     tshark
=====================  =========================================  ===================
list, one pass         ``tcplab analyze F``                       ``tshark -r F``
list, two pass         ``tcplab analyze F -2``                    ``tshark -2 -r F``
display filter         ``tcplab analyze F -Y EXPR``               ``tshark -r F -Y EXPR``
conversations          ``tcplab analyze F --conversations``       ``tshark -q -z conv,tcp -r F``
HTTP                   ``tcplab analyze F --http``                ``tshark -q -z http,tree -r F``
JSON                   ``tcplab analyze F --json``                ``tshark -T ek -r F``
=====================  =========================================  ===================

Times are CPU seconds (user + system, as the kernel accounts the child): the machine
this runs on is shared, and CPU time moves less with other people's load than wall time
(both are printed, with the load average before and after). It also prints the list
view's rate in-process beside a dpkt parse-only loop, and checks memory stays flat: peak
RSS of each view on a capture ``--rss-packets`` long against the main one.

    python benchmarks/bench_analyze.py                  # 200,000 packets, RSS at 2,000,000
    python benchmarks/bench_analyze.py --quick          # 20,000 packets, one round
    python benchmarks/bench_analyze.py --rss-packets 0  # skip the memory check
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from tcplab.packet import ipv4, link, stack, tcp
from tcplab.pcap import open_writer

SYN_OPTS = tcp.pack_options([tcp.mss(1460), tcp.sack_permitted(), tcp.timestamps(1, 0), tcp.NOP,
                             tcp.window_scale(7)])
FILTER = "tcp.flags.reset == 1 || tcp.analysis.retransmission"

#: (view, tcplab arguments after the file, tshark arguments with F for the file, target ratio)
VIEWS: tuple[tuple[str, list[str], list[str], float], ...] = (
    ("list, one pass", [], ["-r", "F"], 2.0),
    ("list, two pass", ["-2"], ["-2", "-r", "F"], 1.5),
    ("-Y filter", ["-Y", FILTER], ["-r", "F", "-Y", FILTER], 2.0),
    ("--conversations", ["--conversations"], ["-q", "-z", "conv,tcp", "-r", "F"], 1.5),
    ("--http", ["--http"], ["-q", "-z", "http,tree", "-r", "F"], 1.5),
    ("--json", ["--json"], ["-T", "ek", "-r", "F"], 3.0),
)
TIME_BIN = "/usr/bin/time"


def _ts_opts(tsval: int, tsecr: int) -> bytes:
    return tcp.pack_options([tcp.NOP, tcp.NOP, tcp.timestamps(tsval, tsecr)])


def build(path: str, packets: int, seed: int = 1, *, exchanges: int = 1) -> int:
    """Write ``packets`` frames of TCP traffic to ``path``; return the count written.

    ``exchanges`` multiplies the request/response exchanges per connection: the same
    packet count in fewer, longer conversations.
    """
    rng = random.Random(seed)
    written = 0
    t = 1_700_000_000.0
    payloads = [b"GET /product/%d HTTP/1.1\r\nHost: shop\r\n\r\n" % i for i in range(50)]
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    with open_writer(path, link.LINKTYPE_ETHERNET) as w:
        conn = 0
        while written < packets:
            conn += 1
            c = ipv4.addr(f"10.{conn // 250 % 250}.{conn % 250}.2")
            s = ipv4.addr("10.99.0.1")
            cport, sport = 30000 + conn % 30000, 80
            cs, ss = rng.randrange(1 << 32), rng.randrange(1 << 32)
            frames = []

            def seg(src, dst, sp, dp, seq, ack, flags, data=b"", opts=b"", win=502, frames=frames):
                frames.append(stack.tcp_packet(src, dst, sp, dp, data, seq=seq & 0xFFFFFFFF,
                                               ack=ack & 0xFFFFFFFF, flags=flags, window=win,
                                               options=opts))

            seg(c, s, cport, sport, cs, 0, tcp.SYN, opts=SYN_OPTS, win=64240)
            seg(s, c, sport, cport, ss, cs + 1, tcp.SYN | tcp.ACK, opts=SYN_OPTS, win=65160)
            cs += 1
            ss += 1
            seg(c, s, cport, sport, cs, ss, tcp.ACK, opts=_ts_opts(2, 1))
            for i in range(rng.randrange(5, 25) * exchanges):
                req = payloads[i % len(payloads)]
                seg(c, s, cport, sport, cs, ss, tcp.PSH | tcp.ACK, req, _ts_opts(3 + i, 2 + i))
                if rng.random() < 0.03:  # a retransmission now and then
                    seg(c, s, cport, sport, cs, ss, tcp.PSH | tcp.ACK, req, _ts_opts(4 + i, 2 + i))
                cs += len(req)
                seg(s, c, sport, cport, ss, cs, tcp.PSH | tcp.ACK, body, _ts_opts(5 + i, 3 + i))
                ss += len(body)
                seg(c, s, cport, sport, cs, ss, tcp.ACK, b"", _ts_opts(6 + i, 5 + i))
            seg(c, s, cport, sport, cs, ss, tcp.FIN | tcp.ACK, opts=_ts_opts(90, 80))
            seg(s, c, sport, cport, ss, cs + 1, tcp.FIN | tcp.ACK, opts=_ts_opts(91, 90))
            seg(c, s, cport, sport, cs + 1, ss + 1, tcp.ACK, opts=_ts_opts(92, 91))
            for f in frames:
                if written >= packets:
                    break
                t += 0.0001
                w.write(link.frame(link.LINKTYPE_ETHERNET, f), int(t * 1e9))
                written += 1
    return written


@dataclass(slots=True)
class Run:
    cpu_s: float
    wall_s: float
    maxrss_kb: int


def measure(cmd: list[str]) -> Run:
    """One whole process, stdout to /dev/null: its CPU time, wall time and peak RSS."""
    with tempfile.NamedTemporaryFile(mode="r", suffix=".time") as report:
        full = [TIME_BIN, "-f", "%U %S %e %M", "-o", report.name, *cmd]
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
        user, system, wall, rss = report.read().split()[-4:]
    return Run(float(user) + float(system), float(wall), int(rss))


def compile_bytecode() -> str:
    """Compile tcplab's modules to bytecode first, as installing the package does.

    An installed wheel has its ``.pyc`` files; a source checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (common in CI and containers) would otherwise compile
    every module from source in every timed process — about 40 ms of CPU that no
    user of an installed ``tcplab`` pays.
    """
    import compileall

    import tcplab

    root = os.path.dirname(tcplab.__file__)
    ok = compileall.compile_dir(root, quiet=1)
    return f"tcplab bytecode {'compiled' if ok else 'NOT fully compiled'} under {root}"


def interpreter() -> str:
    """Which Python runs tcplab: builds of the same version differ by a fifth in speed.

    Debian's own ``/usr/bin/python3.11`` has the interpreter built into the executable
    (and is built with profile-guided optimisation); a pyenv or source build with
    ``--enable-shared`` calls into ``libpython3.11.so`` and runs the same bytecode
    slower. The ratios are only comparable between runs on the same build.
    """
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            shared = "libpython" in maps.read()
        linked = "libpython shared library" if shared else "interpreter in the executable"
    except OSError:
        linked = "linkage unknown"
    return f"Python {sys.version.split()[0]} at {os.path.realpath(sys.executable)} ({linked})"


def tcplab_cmd(path: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "tcplab", "analyze", path, *args]


def tshark_cmd(exe: str, path: str, args: list[str]) -> list[str]:
    return [exe, *(path if a == "F" else a for a in args)]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def time_list_in_process(path: str) -> tuple[float, int]:
    """The list view in-process (no interpreter start): read, analyse, format every line."""
    from tcplab.analyze.session import AnalysisSession

    start = time.process_time()
    n = 0
    for block in AnalysisSession(path, two_pass=False).run().list_blocks():
        n += len(block)
    return time.process_time() - start, n


def time_dpkt(path: str) -> float | None:
    try:
        import dpkt
    except ImportError:
        return None
    start = time.process_time()
    n = 0
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            seg = ip.data
            n += seg.sport > 0
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 packets, one round, no RSS")
    parser.add_argument("--packets", type=int, default=None, help="packets in the capture")
    parser.add_argument("--rounds", type=int, default=None, help="median of N rounds per command")
    parser.add_argument("--rss-packets", type=int, default=None,
                        help="packets in the capture for the memory check (0: skip; "
                             "default 2,000,000, none with --quick)")
    parser.add_argument("--views", default="", help="comma-separated subset of view numbers (1-6)")
    args = parser.parse_args()
    packets = args.packets or (20_000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 3)
    rss_packets = args.rss_packets if args.rss_packets is not None else (
        0 if args.quick else 2_000_000)
    chosen = [VIEWS[int(i) - 1] for i in args.views.split(",") if i] or list(VIEWS)
    tshark = shutil.which("tshark")
    if not os.path.exists(TIME_BIN):
        raise SystemExit(f"{TIME_BIN} is needed to measure whole processes (apt-get install time)")

    with tempfile.TemporaryDirectory(prefix="bench_analyze_") as tmp:
        path = os.path.join(tmp, "traffic.pcap")
        t0 = time.perf_counter()
        n = build(path, packets)
        print(f"capture: {n:,} packets, {os.path.getsize(path) / 1e6:.1f} MB "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        if tshark:
            version = subprocess.run([tshark, "--version"], capture_output=True, text=True)
            print(version.stdout.splitlines()[0])
        print(interpreter())
        print(compile_bytecode())
        print(f"load average before: {load()}  (1 / 5 / 15 min, {os.cpu_count()} CPUs)")
        print(f"CPU seconds, median of {rounds} (wall seconds in brackets)")
        print(f"{'view':<16} {'tshark':>15} {'tcplab':>15} {'ratio':>7} {'target':>7}  met")
        results = []
        for view, ours, theirs, target in chosen:
            mine, peer = [], []
            for _ in range(rounds):  # alternate, so drifting load hits both alike
                mine.append(measure(tcplab_cmd(path, ours)))
                if tshark:
                    peer.append(measure(tshark_cmd(tshark, path, theirs)))
            t_cpu = statistics.median(r.cpu_s for r in mine)
            t_wall = statistics.median(r.wall_s for r in mine)
            if peer:
                s_cpu = statistics.median(r.cpu_s for r in peer)
                s_wall = statistics.median(r.wall_s for r in peer)
                ratio = s_cpu / t_cpu
                print(f"{view:<16} {s_cpu:>6.2f} ({s_wall:>6.2f}) {t_cpu:>6.2f} ({t_wall:>6.2f}) "
                      f"{ratio:>6.2f}x {target:>6.1f}x  {'yes' if ratio >= target else 'NO'}")
            else:
                print(f"{view:<16} {'(no tshark)':>15} {t_cpu:>6.2f} ({t_wall:>6.2f})")
            results.append((view, ours, max(r.maxrss_kb for r in mine)))
        print(f"load average after: {load()}")

        ours_list, lines = time_list_in_process(path)
        print(f"in-process list view: {lines / ours_list:,.0f} packets/CPU-s", end="")
        dp = time_dpkt(path)
        if dp is not None:
            print(f"; dpkt parse-only loop {n / dp:,.0f} packets/CPU-s "
                  f"(tcplab/dpkt {dp / ours_list:.2f}x)")
        else:
            print()

        if rss_packets:
            # Per-conversation state is all the analysis keeps (as Wireshark does), so two
            # captures of rss_packets: as many more conversations as packets (the
            # benchmark's mix, longer), and as many conversations as the main capture,
            # each that much longer (packets only).
            scale = max(1, round(rss_packets / n))
            for label, exchanges in ((f"{scale}x packets, {scale}x conversations", 1),
                                     (f"{scale}x packets, same conversations", scale)):
                big = os.path.join(tmp, "big.pcap")
                t0 = time.perf_counter()
                build(big, rss_packets, exchanges=exchanges)
                print(f"memory, {label}: {rss_packets:,} packets built in "
                      f"{time.perf_counter() - t0:.0f} s ({os.path.getsize(big) / 1e6:.0f} MB); "
                      f"peak RSS at {n:,} and at {rss_packets:,}")
                for view, ours, small in results:
                    large = measure(tcplab_cmd(big, ours)).maxrss_kb
                    growth = large / small - 1
                    print(f"  {view:<16} {small / 1024:>7.1f} MiB  {large / 1024:>7.1f} MiB  "
                          f"{growth:+6.1%}  {'flat' if growth <= 0.10 else 'GROWS'}")
                if tshark and exchanges == 1:  # for scale: tshark keeps state per frame
                    small = measure(tshark_cmd(tshark, path, ["-r", "F"])).maxrss_kb
                    large = measure(tshark_cmd(tshark, big, ["-r", "F"])).maxrss_kb
                    print(f"  {'tshark -r F':<16} {small / 1024:>7.1f} MiB  {large / 1024:>7.1f} "
                          f"MiB  {large / small - 1:+6.1%}")
                os.unlink(big)
    return 0


if __name__ == "__main__":
    sys.exit(main())
