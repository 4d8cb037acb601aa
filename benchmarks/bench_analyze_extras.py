"""Benchmark: what the analyzer's extras cost on top of the packet analysis, beside tshark.

Each stage runs as a whole child process over the same pcap (HTTP conversations with
handshake, request, response and FIN teardown, plus seed-style segments answered by RST):

* ``core``           — ``tcplab.analyze.analyze()`` alone (two passes, every packet's dict);
* ``filter``         — core + a compiled ``-Y`` display filter on every packet;
* ``conversations``  — core + the conversations table;
* ``http``           — core + the HTTP summary;
* ``explain``        — core + the explanation notes;
* ``flow``           — core + the ladder diagram of one stream.

Peers, same file, whole commands: ``tshark -2 -r F -Y FILTER``, ``tshark -2 -r F -q -z
conv,tcp`` and ``tshark -2 -r F -q -z http,tree``. Printed: packets/s of each, the extra
microseconds per packet a stage adds over ``core``, peak RSS, and tcplab/tshark ratios.

    python benchmarks/bench_analyze_extras.py --quick     # a few seconds
    python benchmarks/bench_analyze_extras.py             # 200,000 packets
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import CommandFailed, machine_line, run_measured  # noqa: E402

FILTER = "tcp.port == 80 && (http.response.code >= 200 || tcp.flags.syn == 1) && !ip.addr == 10.9.9.9"
STAGES = ("core", "filter", "conversations", "http", "explain", "flow")


def build_capture(path: str, packets: int) -> int:
    """Write ``packets`` (rounded to whole conversations) to a raw-IP pcap; return the count."""
    from tcplab.packet import ipv4, stack, tcp
    from tcplab.pcap import PcapWriter

    c, s = ipv4.addr("10.0.0.1"), ipv4.addr("10.0.0.2")
    lo = ipv4.addr("127.0.0.1")
    req = b"GET /product/1042 HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    written = 0
    t = 1_700_000_000 * 10**9
    with PcapWriter(path, 101) as w:
        conv = 0
        while written < packets:
            port = 1024 + conv % 60000
            conv += 1
            cs, ss = 1000, 5000
            segs = [
                (c, s, port, 80, b"", cs, 0, tcp.SYN),
                (s, c, 80, port, b"", ss, cs + 1, tcp.SYN | tcp.ACK),
                (c, s, port, 80, b"", cs + 1, ss + 1, tcp.ACK),
                (c, s, port, 80, req, cs + 1, ss + 1, tcp.PSH | tcp.ACK),
                (s, c, 80, port, resp, ss + 1, cs + 1 + len(req), tcp.PSH | tcp.ACK),
                (c, s, port, 80, b"", cs + 1 + len(req), ss + 1 + len(resp), tcp.FIN | tcp.ACK),
                (s, c, 80, port, b"", ss + 1 + len(resp), cs + 2 + len(req), tcp.FIN | tcp.ACK),
                (c, s, port, 80, b"", cs + 2 + len(req), ss + 2 + len(resp), tcp.ACK),
                (lo, lo, 5074, 12345, b"GET /blog HTTP/1.1", 0, 0, tcp.PSH | tcp.ACK),
                (lo, lo, 12345, 5074, b"", 0, 0, tcp.RST),
            ]
            for src, dst, sp, dp, payload, seq, ack, flags in segs:
                pkt = stack.tcp_packet(src, dst, sp, dp, payload, seq=seq, ack=ack, flags=flags)
                t += 1_000_000
                w.write(pkt, t)
                written += 1
    return written


def _stage(stage: str) -> tuple[Callable[[dict], object], Callable[[], str]]:
    """(per-packet function, finish function) for one stage."""
    if stage == "core":
        return (lambda d: None), (lambda: "")
    if stage == "filter":
        from tcplab.analyze.filter import compile_filter

        pred = compile_filter(FILTER)
        hits = [0]

        def count(d: dict) -> None:
            hits[0] += pred(d)

        return count, (lambda: f"{hits[0]} match")
    if stage == "conversations":
        from tcplab.analyze import conversations

        table = conversations.ConversationTable()
        return table.add, (lambda: conversations.render(table.summaries()).splitlines()[-1])
    if stage == "http":
        from tcplab.analyze import http_summary

        http = http_summary.HttpTable()
        return http.add, (lambda: http_summary.render(http.finish()).splitlines()[0])
    if stage == "explain":
        from tcplab.analyze import explain

        explainer = explain.Explainer()
        return explainer.add, (lambda: f"{len(explainer.notes())} notes")
    if stage == "flow":
        from tcplab.analyze import flow

        kept: list[dict] = []

        def keep(d: dict) -> None:
            if d.get("tcp.stream") == 0:
                kept.append(d)

        return keep, (lambda: f"{len(flow.render_ladder(kept, 0).splitlines())} lines")
    raise SystemExit(f"unknown stage {stage}")


def worker(stage: str, path: str) -> None:
    """One measured stage: analyze the file, feed each packet to the stage under test.

    Packets are handed over in batches so the stage's own CPU time can be measured apart
    from the analyzer's (``process_time``: what this process ran, whatever the machine load).
    """
    from tcplab.analyze import analyze

    feed, finish = _stage(stage)
    core_cpu = stage_cpu = 0.0
    n = 0
    batch: list[dict] = []
    mark = time.process_time()
    for d in analyze(path):
        batch.append(d)
        if len(batch) == 4096:
            now = time.process_time()
            core_cpu += now - mark
            for item in batch:
                feed(item)
            n += len(batch)
            batch.clear()
            mark = time.process_time()
            stage_cpu += mark - now
    now = time.process_time()
    core_cpu += now - mark
    for item in batch:
        feed(item)
    n += len(batch)
    result = finish()
    stage_cpu += time.process_time() - now
    print(f"packets={n} core_cpu={core_cpu:.4f} stage_cpu={stage_cpu:.4f} {result}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small file, smoke run")
    parser.add_argument("--packets", type=int, default=None, help="packets in the test file")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    n_wanted = args.packets or (10_000 if args.quick else 200_000)
    timeout = 120 if args.quick else 1800
    tmp = tempfile.mkdtemp(prefix="bench-extras-")
    try:
        path = os.path.join(tmp, "extras.pcap")
        n = build_capture(path, n_wanted)
        print(f"analyze extras benchmark: {n:,} packets ({os.path.getsize(path) / 1e6:.1f} MB)")
        print(machine_line())
        results: dict[str, tuple[float, float, float, int]] = {}  # wall, cpu, stage cpu, rss
        for stage in STAGES:
            m = run_measured([sys.executable, __file__, "--worker", stage, path], timeout=timeout)
            if m.returncode != 0:
                raise CommandFailed(f"{stage}: {m.stderr.strip()[-400:]}")
            found = re.search(r"stage_cpu=([\d.]+)", m.stdout)
            stage_cpu = float(found.group(1)) if found else float("nan")
            results[stage] = (m.wall_s, m.cpu_s, stage_cpu, m.maxrss_kb)
        peers: dict[str, tuple[float, int] | None] = {}
        tshark = shutil.which("tshark")
        peer_cmds = {
            "filter": ["-Y", FILTER],
            "conversations": ["-q", "-z", "conv,tcp"],
            "http": ["-q", "-z", "http,tree"],
        }
        for stage, extra in peer_cmds.items():
            if tshark is None:
                peers[stage] = None
                continue
            m = run_measured([tshark, "-2", "-r", path, *extra], timeout=timeout)
            peers[stage] = (m.cpu_s, m.maxrss_kb) if m.returncode == 0 else None

        print()
        print(f"{'stage':<14} {'wall s':>7} {'CPU s':>7} {'pkt/CPU-s':>10} {'stage µs/pkt':>13} "
              f"{'stage pkt/s':>12} {'RSS MB':>7}   {'tshark peer (CPU)':<24} {'pkt/CPU-s':>10} "
              f"{'ratio':>6}")
        for stage in STAGES:
            wall, cpu, stage_cpu, rss = results[stage]
            per_pkt = "" if stage == "core" else f"{stage_cpu / n * 1e6:13.2f}"
            stage_rate = "" if stage == "core" or stage_cpu <= 0 else f"{n / stage_cpu:12,.0f}"
            line = (f"{stage:<14} {wall:7.2f} {cpu:7.2f} {n / cpu:10,.0f} {per_pkt:>13} "
                    f"{stage_rate:>12} {rss / 1024:7.1f}")
            if stage in peer_cmds:
                name = "tshark -2 " + " ".join(peer_cmds[stage])[:14]
                peer = peers.get(stage)
                if peer is None:
                    line += f"   {name:<24} {'(n/a)':>10}"
                else:
                    line += f"   {name:<24} {n / peer[0]:10,.0f} {peer[0] / cpu:5.1f}×"
            print(line)
        print()
        print("CPU s: user+system time of the whole command (start-up included), which machine "
              "load does not inflate the way it inflates wall time. stage µs/pkt: CPU time "
              "inside the stage alone (analysis excluded), per packet; stage pkt/s = its "
              "inverse. ratio = tcplab pkt/CPU-s ÷ tshark pkt/CPU-s for the same question.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
