"""Live-wire benchmark: injection rate against tcpreplay, capture loss against tcpdump/dumpcap.

    python benchmarks/bench_wire.py            # full run (~1 minute), needs root
    python benchmarks/bench_wire.py --quick    # smoke run (a few seconds)

1. Injection: the same pcap (the course sample, seed style, repeated) is sent onto ``lo``
   by ``tcpreplay --topspeed`` and by ``tcplab inject --topspeed``, interleaved, several
   rounds; the best rate of each is compared (best-of filters out other load on the box).
   tcplab runs twice: ``--device lo`` takes tcpreplay's kernel path (AF_PACKET frames,
   which Linux drops as martians before IP), the default raw IP socket is routed, so the
   stack handles each segment and answers it with RST — the report's experiment, and
   more kernel work per packet. The target applies to the like-for-like pair.
2. Capture loss: one burst is injected at full speed (or ``--rate``) while
   ``tcplab capture``, ``tcpdump`` and ``dumpcap`` all capture it at the same time; each
   reports the frames it wrote and the kernel drops it saw.

Targets (docs/performance.md, "Wire"): injection ≥ 50 % of tcpreplay's rate; zero capture
drops at 100,000 packets/s. Every child process runs under a timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tcplab.encap import EncapOptions, build, read_messages
from tcplab.packet import link
from tcplab.pcap import PcapWriter, open_capture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "examples", "http_ecommerce.csv")
TIMEOUT = 300


def free_port_pair() -> tuple[int, int]:
    ports = []
    socks = []
    while len(ports) < 2:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        if s.getsockname()[1] > 30000:
            ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports[0], ports[1]


def make_pcap(path: str, packets: int, client: int, server: int) -> int:
    """The sample CSV, seed style, repeated to ``packets`` frames (only client→server)."""
    options = EncapOptions(style="seed", client_port=client, server_port=server)
    one_pass = [e.packet for e in build(read_messages(SAMPLE), options)
                if int.from_bytes(e.packet[22:24], "big") == server]
    header = link.header_for(link.LINKTYPE_ETHERNET)
    with PcapWriter(path, link.LINKTYPE_ETHERNET) as writer:
        for i in range(packets):
            writer.write(header + one_pass[i % len(one_pass)], i * 1000)
    return packets


def tcplab(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcplab", *args]


def run_tcpreplay(path: str, loops: int) -> float:
    proc = subprocess.run(["tcpreplay", "--topspeed", "-i", "lo", f"--loop={loops}", path],
                          capture_output=True, text=True, timeout=TIMEOUT)
    match = re.search(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds", proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"tcpreplay failed: {proc.stdout}{proc.stderr}")
    return int(match.group(1)) / float(match.group(2))


def run_tcplab_inject(path: str, loops: int, device: str | None) -> float:
    extra = ["--device", device] if device else []
    proc = subprocess.run(tcplab("inject", path, "--topspeed", "--no-watch", "--loop", str(loops),
                                 "-q", *extra), capture_output=True, text=True, timeout=TIMEOUT)
    match = re.search(r"sent +([\d,]+) packets .* in ([\d.]+) s", proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"tcplab inject failed: {proc.stdout}{proc.stderr}")
    return int(match.group(1).replace(",", "")) / float(match.group(2))


SCAPY_SEND = """
import sys, time
from scapy.all import IP, L3RawSocket, rdpcap
packets = [p[IP] for p in rdpcap(sys.argv[1])]
sock = L3RawSocket()
start = time.perf_counter()
for packet in packets:
    sock.send(packet)
print(len(packets) / (time.perf_counter() - start))
"""


def run_scapy_raw(path: str) -> float | None:
    """scapy sending the same packets through its raw IP socket (the raw IP path's peer)."""
    proc = subprocess.run([sys.executable, "-c", SCAPY_SEND, path], capture_output=True,
                          text=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        return None  # scapy not installed: the row is left out
    return float(proc.stdout.split()[-1])


def martian_drops() -> int:
    """Linux's count of packets dropped for a martian destination (all CPUs)."""
    with open("/proc/net/stat/rt_cache", encoding="ascii") as fh:
        lines = fh.read().split("\n")
    column = lines[0].split().index("in_martian_dst")
    return sum(int(line.split()[column], 16) for line in lines[1:] if line.strip())


def bench_injection(folder: str, packets: int, loops: int, rounds: int) -> None:
    client, server = free_port_pair()
    path = os.path.join(folder, "inject.pcap")
    make_pcap(path, packets, client, server)
    best = {"tcpreplay": 0.0, "device": 0.0, "raw": 0.0}
    before = martian_drops()
    best["tcpreplay"] = max(best["tcpreplay"], run_tcpreplay(path, 1))
    replay_martians = martian_drops() - before
    for _ in range(rounds):
        # Interleaved, best of each: other load on the machine hits all three alike.
        best["tcpreplay"] = max(best["tcpreplay"], run_tcpreplay(path, loops))
        best["device"] = max(best["device"], run_tcplab_inject(path, loops, "lo"))
        best["raw"] = max(best["raw"], run_tcplab_inject(path, loops, None))
    scapy_rate = run_scapy_raw(path)
    total = packets * loops
    print(f"injection: {total:,} packets per run on lo, best of {rounds} interleaved rounds")
    print(f"  tcpreplay --topspeed -i lo            {best['tcpreplay']:>10,.0f} packets/s")
    print(f"  tcplab inject --topspeed --device lo  {best['device']:>10,.0f} packets/s  "
          f"ratio {best['device'] / best['tcpreplay']:.2f} (same kernel path; target >= 0.50)")
    print(f"  tcplab inject --topspeed (raw IP)     {best['raw']:>10,.0f} packets/s  "
          f"ratio {best['raw'] / best['tcpreplay']:.2f}")
    if scapy_rate is not None:
        print(f"  scapy L3RawSocket (raw IP)            {scapy_rate:>10,.0f} packets/s  "
              f"tcplab raw IP is {best['raw'] / scapy_rate:.1f}x scapy "
              f"({packets:,} packets, one run)")
    print(f"  note: Linux counted {replay_martians:,} martian-destination drops during tcpreplay's "
          f"run of {packets:,} frames")
    print("        (127.0.0.1 arriving on a device has no route); the raw IP path is routed,")
    print("        so the stack processes every segment and sends an RST back — more work "
          "per packet.")


def _wait_stderr(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> None:
    import selectors

    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stderr.readline()
            if not line:
                break
            if needle in line:
                return
    proc.kill()
    raise SystemExit(f"{proc.args[0]} did not start capturing")


def _count(path: str) -> int:
    with open_capture(path) as records:
        return sum(1 for _ in records)


def bench_capture_loss(folder: str, total: int, rate: int, peers: bool,
                       generator: str) -> None:
    client, server = free_port_pair()
    source = os.path.join(folder, "burst.pcap")
    make_pcap(source, min(total, 20_000), client, server)
    loops = -(-total // min(total, 20_000))
    expression = f"tcp dst port {server}"
    captures: dict[str, tuple[subprocess.Popen[str], str]] = {}
    out = os.path.join(folder, "tcplab.pcap")
    proc = subprocess.Popen(tcplab("capture", "-q", "-o", out, *expression.split()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_stderr(proc, "capturing on")
    captures["tcplab capture"] = (proc, out)
    if peers and shutil.which("tcpdump"):
        out = os.path.join(folder, "tcpdump.pcap")
        proc = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-B", "65536", "-w", out, expression],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_stderr(proc, "listening on")
        captures["tcpdump"] = (proc, out)
    if peers and shutil.which("dumpcap"):
        out = os.path.join(folder, "dumpcap.pcapng")
        proc = subprocess.Popen(["dumpcap", "-i", "lo", "-B", "64", "-f", expression, "-w", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_stderr(proc, "Capturing on")
        captures["dumpcap"] = (proc, out)
    time.sleep(0.5)
    if generator == "tcpreplay":
        # tcpreplay paces in C, so the burst really runs at the target rate even on a busy
        # machine; what is measured is the capture side.
        pace = [f"--pps={rate}"] if rate else ["--topspeed"]
        sent = subprocess.run(["tcpreplay", *pace, "-i", "lo", f"--loop={loops}",
                               f"--limit={total}", source],
                              capture_output=True, text=True, timeout=TIMEOUT)
        match = re.search(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds", sent.stdout)
    else:
        pace = ["--rate", str(rate)] if rate else ["--topspeed"]
        sent = subprocess.run(tcplab("inject", source, *pace, "--count", str(total),
                                     "--loop", str(loops), "--no-watch", "-q"),
                              capture_output=True, text=True, timeout=TIMEOUT)
        match = re.search(r"sent +([\d,]+) packets .* in ([\d.]+) s", sent.stdout)
    if sent.returncode != 0 or not match:
        raise SystemExit(f"{generator} failed: {sent.stdout}{sent.stderr}")
    n_sent = int(match.group(1).replace(",", ""))
    achieved = n_sent / float(match.group(2))
    time.sleep(1.0)
    verdict = "" if achieved >= 100_000 else " — below 100,000/s: the target is not tested"
    print(f"capture loss: burst of {n_sent:,} packets sent by {generator} at {achieved:,.0f} "
          f"packets/s (asked: {f'{rate:,}/s' if rate else 'full speed'}){verdict}; captured "
          "at the same time by:")
    for name, (proc, path) in captures.items():
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        drops = _drops(name, err)
        written = _count(path)
        print(f"  {name:<15} wrote {written:>9,}  kernel drops {drops:>9}  "
              f"missing {n_sent - written:>9,}")


def _drops(name: str, err: str) -> str:
    if name == "tcplab capture":
        match = re.search(r"([\d,]+) packets dropped by kernel", err)
    elif name == "tcpdump":
        match = re.search(r"(\d+) packets? dropped by kernel", err)
    else:
        match = re.search(r"Packets received/dropped on interface '[^']+': \d+/(\d+)", err)
    return match.group(1) if match else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    parser.add_argument("--rate", type=int, default=0,
                        help="capture-loss burst rate in packets/s (0 = full speed, the default: "
                             "the target is zero drops at 100,000 packets/s or more)")
    parser.add_argument("--burst", type=int, default=300_000, metavar="PACKETS",
                        help="packets in the capture-loss burst (more than the 64 MiB ring "
                             "holds, e.g. 1500000, tests sustained capture, not buffering)")
    parser.add_argument("--no-peers", action="store_true",
                        help="capture-loss run without tcpdump/dumpcap beside tcplab")
    parser.add_argument("--generator", choices=("tcpreplay", "tcplab"), default="tcpreplay",
                        help="what sends the capture-loss burst (tcpreplay holds the rate best)")
    parser.add_argument("--nice", type=int, default=None, metavar="N",
                        help="run this script and every peer at this niceness (e.g. -10, root), "
                             "so other jobs on a shared machine disturb the figures less")
    args = parser.parse_args()
    if args.nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # children inherit it
    if os.geteuid() != 0:
        print("bench_wire needs root (raw sockets and packet capture)", file=sys.stderr)
        return 2
    if not shutil.which("tcpreplay"):
        print("bench_wire needs tcpreplay (apt-get install tcpreplay)", file=sys.stderr)
        return 2
    packets, loops, rounds = (5_000, 1, 1) if args.quick else (20_000, 5, 3)
    burst = 50_000 if args.quick else args.burst
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(figures from a busy machine are low and noisy)")
    with tempfile.TemporaryDirectory(prefix="bench-wire-") as folder:
        bench_injection(folder, packets, loops, rounds)
        bench_capture_loss(folder, burst, args.rate, not args.no_peers, args.generator)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
