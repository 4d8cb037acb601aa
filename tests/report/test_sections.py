"""The demo report's wording comes from the packets: other captures, other (true) numbers."""

from __future__ import annotations

import csv
from pathlib import Path

from tcplab.analyze import analyze
from tcplab.encap import EncapOptions, encapsulate_csv
from tcplab.packet import link
from tcplab.report import RunFacts, build_demo_report
from tcplab.report import markdown as md_renderer

from .conftest import CSV


def _run(tmp: Path, csv_path: Path) -> tuple[str, dict[str, Path]]:
    caps = {"stream": tmp / "s.pcapng", "seed": tmp / "seed.pcap"}
    encapsulate_csv(csv_path, caps["stream"], EncapOptions(style="stream", seed=3))
    encapsulate_csv(csv_path, caps["seed"], EncapOptions(style="seed"), linktype=link.LINKTYPE_NULL)
    run = RunFacts("test", "now", [], csv=csv_path, captures=caps, live=False,
                   live_reason="no root", skipped=["live steps (no root)"])
    text, _files = md_renderer.render(build_demo_report(run))
    return text.replace("\\", ""), caps


def test_numbers_follow_the_input(tmp_path: Path) -> None:
    full, caps = _run(tmp_path, CSV)
    seed = list(analyze(caps["seed"]))
    retrans = [d["frame.number"] for d in seed if d.get("tcp.analysis.retransmission")]
    assert "holds 82 messages" in full
    assert f"{len(retrans)} segments tagged [TCP Retransmission]" in full
    assert "message no. 20" in full and "201 Created" in full
    assert "message no. 76" in full and "304 Not Modified" in full
    assert "Live injection skipped" in full and "Chat capture skipped" not in full  # no chat run

    # The first 30 rows only: fewer messages, no 304 (message 76) — and the text says so.
    short_csv = tmp_path / "short.csv"
    with open(CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(short_csv, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[:31])
    (tmp_path / "b").mkdir()
    short, caps = _run(tmp_path / "b", short_csv)
    seed = list(analyze(caps["seed"]))
    retrans = [d["frame.number"] for d in seed if d.get("tcp.analysis.retransmission")]
    assert "holds 30 messages" in short
    assert f"{len(retrans)} segments tagged [TCP Retransmission]" in short
    assert "304 Not Modified" not in short and "message no. 20" in short


def test_chat_login_skips_commands() -> None:
    from tcplab.report.facts import CaptureFacts
    from tcplab.report.sections import _nicknames

    def seg(n: int, stream: int, payload: bytes, dport: int = 55555) -> dict:
        return {"frame.number": n, "tcp.stream": stream, "tcp.len": len(payload),
                "tcp.dstport": dport, "tcp.payload": payload}

    packets = [seg(1, 0, b"/codes on\n"), seg(2, 0, b"Britney Spears\n"),
               seg(3, 1, b"/codes on\r\nAlice\nBob: hi\n"), seg(4, 1, b"System: x\n", 40000),
               seg(5, 2, b"\xff\xfe\n")]
    assert _nicknames(CaptureFacts(Path("c.pcap"), packets), 55555) == {
        0: "Britney Spears", 1: "Alice", 2: "\ufffd\ufffd"}
