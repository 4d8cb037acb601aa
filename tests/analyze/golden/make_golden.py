"""Write the golden captures and every analyzer view's output on them (``views.json.gz``).

The outputs were first produced by the analyzer as it was before its views moved onto one
record path (commit dc70d77): ``tests/analyze/test_golden.py`` holds today's output
byte-identical to them. Re-run this only for a deliberate change of output, and say why
in the commit:

    python -m tests.analyze.golden.make_golden
    python -m tests.analyze.golden.make_golden --outputs-only   # keep the captures

(``--outputs-only`` re-records the views on the committed captures: the encapsulator's
captures carry the time they were made, so rebuilding them changes their bytes.)
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

from tcplab.packet import ipv6, link, stack, tcp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VIEWS_FILE = HERE / "views.json.gz"

FILTER_TARGET = "tcp.flags.reset == 1 || tcp.analysis.retransmission"

#: view id → arguments after the capture path. ``{svg}`` is replaced by a temporary path
#: whose content is recorded too.
VIEWS: dict[str, list[str]] = {
    "list": [],
    "list-2": ["-2"],
    "list-absolute": ["--absolute"],
    "list-count": ["-c", "7"],
    "list-chatport": ["--chat-port", "80"],
    "filter-target": ["-Y", FILTER_TARGET],
    "filter-target-2": ["-2", "-Y", FILTER_TARGET],
    "filter-http": ["-Y", "http || tcp.completeness == 31"],
    "filter-payload": ["-Y", 'tcp.payload contains "GET" || frame contains "HTTP"'],
    "filter-addr": ["-Y", "ip.addr == 10.0.0.0/8 && tcp.seq > 1 && !tcp.flags.syn == 1"],
    "filter-checksum": ["-Y", "tcp.checksum.status == 0 || tcp.window_size > 60000"],
    "filter-misc": ["-Y", "tcp.analysis.flags || _ws.malformed || udp || ipv6 || chat"],
    "filter-frame": ["-Y", "frame.protocols contains \"data\" || tcp.options.mss_val"],
    "conversations": ["--conversations"],
    "conversations-1": ["--conversations", "--one-pass"],
    "http": ["--http"],
    "explain": ["--explain"],
    "json": ["--json"],
    "json-payload": ["--json", "--payload"],
    "json-1": ["--json", "--one-pass", "--no-checksums"],
    "json-count": ["--json", "-c", "5", "--absolute"],
    "packet-1": ["--packet", "1", "--hex"],
    "packet-4": ["--packet", "4"],
    "packet-10-json": ["--packet", "10", "--json"],
    "packet-missing": ["--packet", "100000"],
    "packet-filter": ["--packet", "3", "-Y", "tcp.flags.syn == 1"],
    "flow-0": ["--flow"],
    "flow-1-svg": ["--flow", "1", "--flow-svg", "{svg}"],
    "flow-svg-json": ["--flow-svg", "{svg}", "--json"],
    "summaries": ["--conversations", "--http", "--explain"],
    "summaries-json": ["--conversations", "--http", "--explain", "--json", "-Y", "tcp"],
    "list-summaries": ["--list", "--conversations", "--http", "-Y", "tcp.port == 80"],
    "list-packet": ["--list", "--packet", "2", "--explain"],
    "everything": ["--list", "--conversations", "--http", "--explain", "--flow", "0",
                   "--packet", "5", "--hex"],
}


def _mixed(path: Path) -> None:
    """HTTP, chat, options, urgent data and frames the list's fast path must hand over."""
    from tests.analyze import scenarios

    b = scenarios.Builder()
    a, c = scenarios.A, scenarios.B
    opts_sack = tcp.pack_options([tcp.NOP, tcp.NOP, tcp.sack([(5, 9)])])
    b.seg(a, c, 40000, 80, 1, 0, scenarios.S, opts=scenarios.SYN_OPTIONS)
    b.seg(c, a, 80, 40000, 9, 2, scenarios.SA, opts=scenarios.SYNACK_OPTIONS)
    b.seg(a, c, 40000, 80, 2, 10, scenarios.PA, b"GET /a\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n")
    b.seg(c, a, 80, 40000, 10, 40, scenarios.PA, b"HTTP/1.1 404 Not \x07Found\r\n\r\n")
    b.seg(c, a, 80, 40000, 10, 40, scenarios.PA, b"HTTP/1.1 404 Not \x07Found\r\n\r\n")
    b.seg(a, c, 40000, 80, 40, 38, scenarios.AK | tcp.URG, b"!")
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=opts_sack)
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=tcp.pack_options([tcp.NOP] * 4))
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=b"\x02\x09\x00\x00")
    b.seg(a, c, 40000, 55555, 7, 0, scenarios.PA, b"bob: hi \x1b]0;x\x07\nalice: yo\n")
    b.seg(c, a, 55555, 40000, 3, 0, scenarios.PA, b"ONLINE_USERS:bob,alice\n")
    b.seg(a, c, 40000, 80, 41, 38, scenarios.R)
    good = stack.tcp_packet(a, c, 1, 2, b"data", seq=5, flags=scenarios.PA)
    opt = bytearray(good[:20])
    opt[0] = 0x46
    opt[2:4] = (len(good) + 4).to_bytes(2, "big")
    b.raw(bytes(opt) + b"\x01\x01\x01\x00" + good[20:])
    b.raw(good[:6] + b"\x20\x00" + good[8:])
    b.raw(good[:9] + b"\x11" + good[10:])
    b.raw(good[:2] + b"\x00\x10" + good[4:])
    b.raw(good[:32] + b"\xf0" + good[33:])
    b.raw(good + b"trailer")
    b.raw(stack.udp_packet(a, c, 5353, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"))
    b.write(str(path))


def _cut(path: Path, linktype: int) -> None:
    """Good records, then one cut short by the end of the file (damage after good packets)."""
    from tests.analyze import scenarios

    whole = path.with_suffix(".tmp")
    scenarios.anomalies().write(str(whole), linktype)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[:-10])


def captures(build: bool = True) -> dict[str, Path]:
    """Build the golden captures (once) and return them by name (``build=False``: the
    committed ones)."""
    if not build:
        return {p.stem: p for p in sorted(HERE.iterdir()) if p.suffix in (".pcap", ".pcapng")}
    from tests.analyze import scenarios
    from tests.analyze_extras import captures as extras

    out: dict[str, Path] = {}

    def keep(name: str) -> Path:
        p = HERE / name
        out[p.stem] = p
        return p

    scenarios.anomalies().write(str(keep("anomalies_eth.pcap")))
    scenarios.anomalies().write(str(keep("anomalies_null.pcapng")), link.LINKTYPE_NULL)
    scenarios.anomalies(ipv6.addr("2001:db8::1"), ipv6.addr("2001:db8::2")).write(
        str(keep("anomalies_v6.pcap")))
    scenarios.window_full().write(str(keep("window_full_sll.pcap")), link.LINKTYPE_LINUX_SLL)
    scenarios.random_conversations(1, 300).write(str(keep("random_raw.pcap")), 101)
    scenarios.lossy_connections(2, 6).write(str(keep("lossy_eth.pcap")))
    _mixed(keep("mixed_eth.pcap"))
    extras.write_pcap(keep("extras_mixed.pcap"), extras.mixed_packets())
    extras.write_pcap(keep("extras_shapes.pcap"), extras.shape_packets())
    _cut(keep("cut_eth.pcap"), link.LINKTYPE_ETHERNET)
    csv = ROOT / "examples" / "http_ecommerce.csv"
    for name, style in (("encap_seed.pcap", ["--style", "seed", "--linktype", "null"]),
                        ("encap_stream.pcapng", [])):
        target = keep(name)
        subprocess.run([sys.executable, "-m", "tcplab", "encap", str(csv), "-q", "-o",
                        str(target), *style], check=True)
    return out


def run_view(path: Path, args: list[str], svg: Path) -> dict:
    """One CLI run in-process: exit code, stdout, stderr and the SVG it wrote, if any."""
    from tcplab.cli import main

    argv = ["analyze", str(path), *(str(svg) if a == "{svg}" else a for a in args)]
    if svg.exists():
        svg.unlink()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    result = {"rc": code, "stdout": out.getvalue(),
              "stderr": err.getvalue().replace(str(svg), "{svg}").replace(str(path), "{capture}")}
    if svg.exists():
        result["svg"] = svg.read_text(encoding="utf-8")
    return result


def main() -> None:
    import tempfile

    caps = captures(build="--outputs-only" not in sys.argv[1:])
    views: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        svg = Path(tmp) / "flow.svg"
        for name, path in sorted(caps.items()):
            views[name] = {}
            for view, args in VIEWS.items():
                res = run_view(path, args, svg)
                res["stdout"] = res["stdout"].replace(str(path), "{capture}")
                views[name][view] = res
    with gzip.open(VIEWS_FILE, "wt", encoding="utf-8") as f:
        json.dump({"files": {n: p.name for n, p in caps.items()}, "views": VIEWS,
                   "outputs": views}, f, ensure_ascii=False, sort_keys=True)


if __name__ == "__main__":
    main()
