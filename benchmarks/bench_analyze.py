"""Benchmark: ``tcplab analyze`` list view vs ``tshark -r`` vs a dpkt parse-only loop.

Builds one capture of realistic TCP traffic (many connections on Ethernet: handshakes with
options, data segments carrying the kernel's NOP,NOP,Timestamps, ACKs, FIN teardowns,
some retransmissions), then times, on the same file and in one run:

* tcplab: the packet-list view with full TCP analysis (the ``tcplab analyze FILE`` loop:
  read, dissect, analyse, format every line), in-process and as the CLI end to end; and,
  for reference, the same lines built from one field dict per packet (the path JSON,
  display filters and summaries use);
* tshark: ``tshark -r FILE`` (its default one-pass list view) to /dev/null;
* dpkt: read the pcap and parse Ethernet/IP/TCP objects, nothing else.

It prints packets/s and the ratios, and checks memory stays flat: peak RSS of the CLI on
the file and on one twice as large must not grow with the packet count.

    python benchmarks/bench_analyze.py            # 200,000 packets
    python benchmarks/bench_analyze.py --quick    # 20,000 packets, a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from tcplab.packet import ipv4, link, stack, tcp
from tcplab.pcap import open_writer

SYN_OPTS = tcp.pack_options([tcp.mss(1460), tcp.sack_permitted(), tcp.timestamps(1, 0), tcp.NOP,
                             tcp.window_scale(7)])


def _ts_opts(tsval: int, tsecr: int) -> bytes:
    return tcp.pack_options([tcp.NOP, tcp.NOP, tcp.timestamps(tsval, tsecr)])


def build(path: str, packets: int, seed: int = 1) -> int:
    """Write ``packets`` frames of TCP traffic to ``path``; return the count written."""
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
            for i in range(rng.randrange(5, 25)):
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


# Times are CPU seconds (user + system) of the work measured, not wall-clock: the machine
# this runs on is often shared, and CPU time is what the tools compare on.


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_cpu(cmd: list[str]) -> float:
    before = _children_cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _children_cpu() - before


def time_tcplab(path: str) -> tuple[float, int]:
    """The list view in-process, as ``tcplab analyze FILE`` runs it: the dict-free fast path."""
    from tcplab.analyze.listview import packet_lines

    start = time.process_time()
    n = 0
    for chunk in packet_lines(path):
        n += chunk.count("\n")
    return time.process_time() - start, n


def time_tcplab_dicts(path: str) -> tuple[float, int]:
    """The same lines from the field-dict path (what JSON, -Y and the summaries build on)."""
    from tcplab.analyze import analyze, render

    line = render.packet_line
    start = time.process_time()
    n = 0
    for d in analyze(path, two_pass=False, checksums=False, payload=False):
        line(d)
        n += 1
    return time.process_time() - start, n


def time_cli(path: str) -> float:
    return _run_cpu([sys.executable, "-m", "tcplab", "analyze", path])


def peak_rss_cli(path: str) -> int:
    """Peak resident memory (KiB) of one ``tcplab analyze`` run on ``path``."""
    code = ("import resource, subprocess, sys;"
            "subprocess.run([sys.executable, '-m', 'tcplab', 'analyze', sys.argv[1]],"
            " stdout=subprocess.DEVNULL, check=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


def time_tshark(path: str) -> float | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    return _run_cpu([exe, "-r", path])


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 packets, one round")
    parser.add_argument("--packets", type=int, default=None, help="packets in the capture")
    parser.add_argument("--rounds", type=int, default=None, help="best of N rounds per tool")
    args = parser.parse_args()
    packets = args.packets or (20_000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="bench_analyze_") as tmp:
        path = os.path.join(tmp, "traffic.pcap")
        t0 = time.perf_counter()
        n = build(path, packets)
        print(f"capture: {n:,} packets, {os.path.getsize(path) / 1e6:.1f} MB "
              f"(built in {time.perf_counter() - t0:.1f} s)")

        ours = min(time_tcplab(path)[0] for _ in range(rounds))
        dicts = min(time_tcplab_dicts(path)[0] for _ in range(rounds))
        cli = min(time_cli(path) for _ in range(rounds))
        ts = [t for t in (time_tshark(path) for _ in range(rounds)) if t is not None]
        dp = [t for t in (time_dpkt(path) for _ in range(rounds)) if t is not None]

        rate = n / ours
        print(f"{'tool':<44} {'CPU s':>8} {'packets/s':>12}")
        print(f"{'tcplab list view + TCP analysis (in-process)':<44} {ours:>8.2f} {rate:>12,.0f}")
        print(f"{'  same lines via field dicts (in-process)':<44} {dicts:>8.2f} {n / dicts:>12,.0f}")
        print(f"{'tcplab analyze FILE > /dev/null (CLI)':<44} {cli:>8.2f} {n / cli:>12,.0f}")
        if ts:
            print(f"{'tshark -r FILE > /dev/null':<44} {min(ts):>8.2f} {n / min(ts):>12,.0f}")
        if dp:
            print(f"{'dpkt parse-only loop':<44} {min(dp):>8.2f} {n / min(dp):>12,.0f}")
        if ts:
            print(f"ratio tcplab/tshark: {min(ts) / ours:.2f}x in-process, "
                  f"{min(ts) / cli:.2f}x CLI (target >= 5x)")
        if dp:
            print(f"ratio tcplab/dpkt:   {min(dp) / ours:.2f}x (target > 1x)")

        if not args.quick:
            half = os.path.join(tmp, "half.pcap")
            build(half, n // 2)
            small, big = peak_rss_cli(half), peak_rss_cli(path)
            print(f"peak RSS: {small / 1024:.1f} MiB for {n // 2:,} packets, {big / 1024:.1f} MiB "
                  f"for {n:,} ({'flat' if big < small * 1.15 + 2048 else 'GROWS'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
