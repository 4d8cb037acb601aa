"""Capture-file benchmark: writing and reading N records with tcplab, dpkt and scapy.

Usage::

    python benchmarks/bench_pcap.py                 # 1,000,000 records (scapy: 200,000)
    python benchmarks/bench_pcap.py --quick         # seconds: a smoke run
    python benchmarks/bench_pcap.py -n 300000 --reps 5 --peers tcplab,dpkt

Every measurement runs in a fresh ``python`` process (so one peer's imports, garbage or
heap never slow another) that times only its write or read loop, both in CPU time
(``process_time``: user + system, so the file I/O counts) and wall time; the parent also
takes that process's peak RSS from ``wait4``. Rates are records per CPU-second: on this
shared two-core machine, with other work running, wall time mostly measures how long
the scheduler kept the worker waiting, while CPU time measures the code. Runs are
interleaved (tcplab, dpkt, scapy, tcplab, …) and the best of ``--reps`` counts.

The records are 64 different Ethernet/IPv4/TCP frames (54–150 bytes, built by tcplab's
packet engine), cycled, with timestamps 1 µs apart. What each peer does:

* **write pcap** — tcplab ``PcapWriter.write(frame, ts_ns)``; dpkt
  ``dpkt.pcap.Writer.writepkt(frame, ts=seconds)``; scapy
  ``RawPcapWriter.write_packet(frame, sec=, usec=)`` (raw bytes, no Packet objects).
* **read pcap** — every peer reads the same tcplab-written file and touches each record's
  bytes: tcplab ``open_capture``; dpkt ``dpkt.pcap.Reader``; scapy ``RawPcapReader``.
* **write pcapng** — tcplab ``PcapngWriter`` (ns resolution); dpkt ``dpkt.pcapng.Writer``.
  (scapy's raw pcapng writer cannot write bytes without a Packet in 2.6, so it sits out.)
* **read pcapng** — tcplab ``open_capture``; dpkt ``dpkt.pcapng.Reader``; scapy
  ``RawPcapNgReader``, all on the same tcplab-written file.

Before any figure counts, every output is checked: each file a peer wrote is read back by
tcplab and must hold the same N records (data and µs timestamps), and every reader must
report the same record count and byte total. tshark's ``capinfos`` must accept each
written file when it is installed.

Benchmark code only: never imported by ``src/tcplab``; scapy and dpkt are imported only
inside the worker processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CommandFailed, fmt_int, machine_line, run_measured  # noqa: E402

PEERS = ("tcplab", "dpkt", "scapy")
OPS = ("write-pcap", "read-pcap", "write-pcapng", "read-pcapng")
BASE_S = 1_700_000_000
SCAPY_CANNOT = {("scapy", "write-pcapng")}


def frames() -> list[bytes]:
    from tcplab.packet import ipv4, link, stack, tcp

    lo = ipv4.addr("127.0.0.1")
    out = []
    for i in range(64):
        payload = (b"GET /item/%d HTTP/1.1\r\nHost: shop\r\n\r\n" % i)[: (i * 3) % 97]
        pkt = stack.tcp_packet(lo, lo, 40000 + i, 80, payload, seq=i * 1000, ack=7,
                               flags=tcp.PSH | tcp.ACK, identification=i)
        out.append(stack.frame(link.LINKTYPE_ETHERNET, pkt))
    return out


# --- worker side: one peer, one operation, timed in-process ---------------------------------


def _write_tcplab(path: str, n: int, ng: bool) -> None:
    from tcplab.pcap import PcapngWriter, PcapWriter

    fr = frames()
    cls = PcapngWriter if ng else PcapWriter
    with cls(path, 1) as w:
        write = w.write
        base = BASE_S * 1_000_000_000
        for i in range(n):
            write(fr[i & 63], base + i * 1000)


def _write_dpkt(path: str, n: int, ng: bool) -> None:
    import dpkt

    fr = frames()
    with open(path, "wb") as f:
        w = dpkt.pcapng.Writer(f, snaplen=262144) if ng else dpkt.pcap.Writer(f, linktype=1)
        writepkt = w.writepkt
        for i in range(n):
            writepkt(fr[i & 63], ts=BASE_S + i / 1_000_000)


def _write_scapy(path: str, n: int, ng: bool) -> None:
    from scapy.utils import RawPcapWriter

    fr = frames()
    w = RawPcapWriter(path, linktype=1)
    w.write_header(None)  # what scapy's write() does before its first record
    write = w.write_packet
    for i in range(n):
        sec, usec = divmod(i, 1_000_000)
        write(fr[i & 63], sec=BASE_S + sec, usec=usec)
    w.close()


def _read_tcplab(path: str) -> tuple[int, int]:
    from tcplab.pcap import open_capture

    count = total = 0
    with open_capture(path) as reader:
        for rec in reader:
            count += 1
            total += len(rec.data)
    return count, total


def _read_dpkt(path: str) -> tuple[int, int]:
    import dpkt

    count = total = 0
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if path.endswith(".pcapng") else dpkt.pcap.Reader(f)
        for _ts, buf in reader:
            count += 1
            total += len(buf)
    return count, total


def _read_scapy(path: str) -> tuple[int, int]:
    from scapy.utils import RawPcapNgReader, RawPcapReader

    count = total = 0
    cls = RawPcapNgReader if path.endswith(".pcapng") else RawPcapReader
    with cls(path) as reader:
        for data, _meta in reader:
            count += 1
            total += len(data)
    return count, total


def worker(peer: str, op: str, path: str, n: int) -> None:
    import time

    # Import the peer's library before the clock starts: we time the loop, not the import.
    if peer == "dpkt":
        import dpkt  # noqa: F401
    elif peer == "scapy":
        import scapy.utils  # noqa: F401
    else:
        import tcplab.pcap  # noqa: F401
    kind, fmt = op.split("-")
    start = time.perf_counter()
    cpu_start = time.process_time()
    if kind == "write":
        {"tcplab": _write_tcplab, "dpkt": _write_dpkt, "scapy": _write_scapy}[peer](
            path, n, fmt == "pcapng")
        result = {"count": n}
    else:
        count, total = {"tcplab": _read_tcplab, "dpkt": _read_dpkt, "scapy": _read_scapy}[peer](path)
        result = {"count": count, "total": total}
    result["cpu_seconds"] = time.process_time() - cpu_start
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))


# --- parent side ----------------------------------------------------------------------------


def digest(path: str) -> tuple[int, int, str]:
    """(records, data bytes, hash of data and µs timestamps) of a capture, as tcplab reads it."""
    from tcplab.pcap import open_capture

    h = hashlib.sha256()
    count = total = 0
    with open_capture(path) as reader:
        for rec in reader:
            count += 1
            total += len(rec.data)
            h.update(rec.data)
            h.update((rec.timestamp_ns // 1000).to_bytes(8, "little"))
    return count, total, h.hexdigest()


def measure(peer: str, op: str, path: str, n: int) -> tuple[float, float, int, dict]:
    m = run_measured([sys.executable, __file__, "--worker", peer, op, path, str(n)],
                     timeout=1800)
    if m.returncode != 0:
        raise CommandFailed(f"{peer} {op} failed:\n{m.stderr[-2000:]}")
    result = json.loads(m.stdout.strip().splitlines()[-1])
    return result["cpu_seconds"], result["seconds"], m.maxrss_kb, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="records per file (tcplab, dpkt)")
    ap.add_argument("--scapy-n", type=int, default=200_000, help="records for scapy (slower)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions; best counts")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of peers")
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of operations")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20,000 records, 1 rep")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--worker", nargs=4, metavar=("PEER", "OP", "PATH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        peer, op, path, n = args.worker
        worker(peer, op, path, int(n))
        return 0
    if args.quick:
        args.n, args.scapy_n, args.reps = 20_000, 5_000, 1
    peers = [p for p in args.peers.split(",") if p]
    ops = [o for o in args.ops.split(",") if o]
    for name in peers:
        if name not in PEERS:
            ap.error(f"unknown peer {name!r} (choose from {', '.join(PEERS)})")
    for name in ops:
        if name not in OPS:
            ap.error(f"unknown operation {name!r} (choose from {', '.join(OPS)})")

    print(f"# bench_pcap: {machine_line()}")
    print(f"# N = {args.n:,} records (scapy {args.scapy_n:,}), best of {args.reps}")
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_pcap_") as tmp:
        # The files every reader reads: written once by tcplab, checked by capinfos.
        inputs = {}
        for fmt in ("pcap", "pcapng"):
            for label, count in (("n", args.n), ("scapy", args.scapy_n)):
                p = os.path.join(tmp, f"input_{label}.{fmt}")
                _write_tcplab(p, count, fmt == "pcapng")
                inputs[(fmt, label)] = p
        for op in ops:
            kind, fmt = op.split("-")
            for rep in range(args.reps):
                for peer in peers:
                    if (peer, op) in SCAPY_CANNOT:
                        continue
                    n = args.scapy_n if peer == "scapy" else args.n
                    if kind == "write":
                        path = os.path.join(tmp, f"{peer}_{op}.{fmt}")
                    else:
                        path = inputs[(fmt, "scapy" if peer == "scapy" else "n")]
                    cpu, wall, rss, detail = measure(peer, op, path, n)
                    if kind == "write":
                        check_written(path, n, fmt)
                    else:
                        check_read(detail, path)
                    best = results.get((peer, op))
                    if best is None or cpu < best["cpu_seconds"]:
                        results[(peer, op)] = {"cpu_seconds": cpu, "seconds": wall, "n": n,
                                               "rss_kb": rss, "rate": n / cpu,
                                               "wall_rate": n / wall}
                    print(f"  {op:13s} {peer:7s} rep {rep + 1}: {n / cpu:>12,.0f} records/CPU-s"
                          f" {n / wall:>12,.0f} records/s wall", flush=True)
    report(results, peers, ops)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {f"{p}/{o}": v for (p, o), v in results.items()}, indent=2))
    return 0


_expected_cache: dict[tuple[int, str], tuple[int, int, str]] = {}


def check_written(path: str, n: int, fmt: str) -> None:
    """Every peer must have written the same records as tcplab does for this N."""
    key = (n, fmt)
    if key not in _expected_cache:
        with tempfile.TemporaryDirectory() as tmp:
            ref = os.path.join(tmp, f"ref.{fmt}")
            _write_tcplab(ref, n, fmt == "pcapng")
            _expected_cache[key] = digest(ref)
    got = digest(path)
    if got != _expected_cache[key]:
        raise SystemExit(f"{path}: records differ from the reference ({got[0]} records)")
    capinfos = shutil.which("capinfos")
    if capinfos:
        proc = subprocess.run([capinfos, "-M", "-c", path], capture_output=True, text=True,
                              timeout=600)
        found = re.search(r"Number of packets:\s+(\d+)", proc.stdout)
        if proc.returncode != 0 or not found or int(found.group(1)) != n:
            raise SystemExit(f"capinfos rejects {path}: {proc.stderr or proc.stdout}")


def check_read(detail: dict, path: str) -> None:
    count, total, _hash = digest(path)
    if (detail["count"], detail["total"]) != (count, total):
        raise SystemExit(f"a reader saw {detail['count']} records / {detail['total']} bytes in "
                         f"{path}, expected {count} / {total}")


def report(results: dict, peers: list[str], ops: list[str]) -> None:
    print()
    print("records per CPU-second of the worker (user + system), best run;")
    print("wall-clock rates are printed per run above and kept in --json")
    print(f"{'operation':14s}" + "".join(f"{p + ' rec/s':>16s}" for p in peers)
          + "".join(f"{'tcplab/' + p:>14s}" for p in peers if p != "tcplab")
          + f"{'tcplab MB':>11s}")
    for op in ops:
        row = f"{op:14s}"
        for p in peers:
            r = results.get((p, op))
            row += f"{fmt_int(r['rate']) if r else '—':>16s}"
        mine = results.get(("tcplab", op))
        for p in peers:
            if p == "tcplab":
                continue
            r = results.get((p, op))
            ratio = f"{mine['rate'] / r['rate']:.1f}×" if mine and r else "—"
            row += f"{ratio:>14s}"
        rss = f"{mine['rss_kb'] / 1024:.0f}" if mine else "—"
        row += f"{rss:>11s}"
        print(row)


if __name__ == "__main__":
    sys.exit(main())
