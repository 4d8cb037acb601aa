"""TCP analysis details against tshark 4.0, one pass and ``-2``, field by field.

The cases of issue 14's "TCP analysis" and "Malformed packets" findings, each built with
the packet engine so the bytes are known: SACK edges (relative to the peer's ISN, in the
fields, the Info column and ``-Y``), a resend of acknowledged data inside the
out-of-order threshold (Spurious Retransmission, not Out-Of-Order), ``tcp.completeness``
in one pass (the value before the frame) and with ``-2``, an IP total length beyond the
captured bytes (still analysed), and damaged SYNs (their stream kept).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tcplab.analyze.session import AnalysisSession
from tcplab.packet import checksum, stack, tcp
from tests.analyze import scenarios
from tests.analyze.scenarios import AK, FA, PA, SA, SYN_OPTIONS, SYNACK_OPTIONS, A, B, Builder, S
from tests.fidelity.oracle import tshark_fields
from tests.support import require_tshark

GOLDEN = Path(__file__).resolve().parents[1] / "analyze" / "golden"
FIELDS = ("tcp.stream", "tcp.len", "tcp.seq", "tcp.ack", "tcp.completeness",
          "tcp.options.sack_le", "tcp.options.sack_re", "tcp.options.sack.count",
          "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
          "tcp.analysis.retransmission", "tcp.analysis.keep_alive", "_ws.col.Protocol",
          "_ws.col.Info")
PORT = 5074  # not an HTTP port for tshark: no reassembly notes in its Info column


def _sack(blocks: list[tuple[int, int]]) -> bytes:
    return tcp.pack_options([tcp.NOP, tcp.NOP, tcp.sack(blocks)])


def sack_and_spurious() -> Builder:
    """Handshake, data, an early resend of ACKed data, a hole and SACK blocks (a D-SACK too)."""
    b = Builder()
    b.seg(A, B, 40000, PORT, 1000, 0, S, opts=SYN_OPTIONS)
    b.seg(B, A, PORT, 40000, 5000, 1001, SA, opts=SYNACK_OPTIONS, dt=0.001)
    b.seg(A, B, 40000, PORT, 1001, 5001, AK, dt=0.001)
    b.seg(A, B, 40000, PORT, 1001, 5001, PA, b"x" * 100)
    b.seg(A, B, 40000, PORT, 1101, 5001, PA, b"y" * 100, dt=0.0001)
    b.seg(B, A, PORT, 40000, 5001, 1201, AK, dt=0.0001)
    # Already acknowledged, 0.1 ms after the newest segment (inside the RTT threshold).
    b.seg(A, B, 40000, PORT, 1001, 5001, PA, b"x" * 100, dt=0.0001)
    b.seg(A, B, 40000, PORT, 1301, 5001, PA, b"z" * 100)
    b.seg(B, A, PORT, 40000, 5001, 1201, AK, opts=_sack([(1301, 1401)]), dt=0.0001)
    b.seg(B, A, PORT, 40000, 5001, 1201, AK, opts=_sack([(1001, 1101), (1301, 1401)]),
          dt=0.0001)
    b.seg(A, B, 40000, PORT, 1201, 5001, PA, b"w" * 100, dt=0.3)
    b.seg(B, A, PORT, 40000, 5001, 1401, AK)
    b.seg(A, B, 40000, PORT, 1401, 5001, FA)
    b.seg(B, A, PORT, 40000, 5001, 1402, FA)
    b.seg(A, B, 40000, PORT, 1402, 5002, AK)
    return b


def midstream_pieces() -> Builder:
    """Conversations that open without a SYN (completeness from the second frame on)."""
    b = Builder()
    b.seg(A, B, 40000, PORT, 1000, 7000, PA, b"hello")
    b.seg(B, A, PORT, 40000, 7000, 1005, scenarios.R)
    b.seg(A, B, 40001, PORT, 2000, 8000, FA)
    b.seg(B, A, PORT, 40001, 8000, 2001, AK)
    b.seg(B, A, PORT, 40001, 8000, 2001, FA)
    return b


def _ip_longer_than_frame(pkt: bytes, extra: int) -> bytes:
    """The packet with an IPv4 total length ``extra`` bytes beyond it (header sum redone)."""
    raw = bytearray(pkt)
    struct.pack_into("!H", raw, 2, len(raw) + extra)
    struct.pack_into("!H", raw, 10, 0)
    struct.pack_into("!H", raw, 10, ~checksum.ones_complement_sum(bytes(raw[:20])) & 0xFFFF)
    return bytes(raw)


def damaged() -> Builder:
    """A SYN whose window-scale option overruns, a keep-alive and a data segment whose IP
    total length exceeds the frame, SYNs with a data offset below 5 and past the packet."""
    b = Builder()
    b.seg(A, B, 40000, PORT, 1000, 0, S, opts=b"\x02\x04\x05\xb4\x03\x09\x07\x00")
    b.seg(B, A, PORT, 40000, 5000, 1001, SA, opts=SYNACK_OPTIONS, dt=0.001)
    b.seg(A, B, 40000, PORT, 1001, 5001, AK, dt=0.001)
    b.raw(_ip_longer_than_frame(stack.tcp_packet(A, B, 40000, PORT, b"", seq=1000, ack=5001,
                                                 flags=AK, window=8192), 1))
    b.raw(_ip_longer_than_frame(stack.tcp_packet(A, B, 40000, PORT, b"data", seq=1001,
                                                 ack=5001, flags=PA, window=8192), 10))
    b.seg(B, A, PORT, 40000, 5001, 1005, AK)
    for sport, offset_byte in ((40001, 0x30), (40002, 0xF0)):
        syn = bytearray(stack.tcp_packet(A, B, sport, PORT, b"", seq=1000, ack=0, flags=S,
                                         window=8192))
        syn[32] = offset_byte
        b.raw(bytes(syn))
        b.seg(B, A, PORT, sport, 5000, 1001, SA, dt=0.001)
        b.seg(A, B, sport, PORT, 1001, 5001, AK, dt=0.001)
    return b


def _ours(path: Path, two_pass: bool) -> list[dict[str, str]]:
    """tcplab's values in tshark's ``-T fields`` text (lists joined by ',', flags as 1)."""
    rows = []
    for p in AnalysisSession(path, two_pass=two_pass).run():
        d = p.fields()
        row = {"frame.number": str(p.number)}
        for f in FIELDS:
            v = d.get(f)
            if v is None or v is False:
                row[f] = ""
            elif v is True:
                row[f] = "1"
            elif isinstance(v, list):
                row[f] = ",".join(str(x) for x in v)
            else:
                row[f] = str(v)
        rows.append(row)
    return rows


def _disagreements(path: Path, two_pass: bool, skip: dict[int, set[str]] | None = None,
                   ) -> list[str]:
    extra = ("-2",) if two_pass else ()
    theirs = tshark_fields(path, *FIELDS, extra=extra)
    mine = _ours(path, two_pass)
    assert len(theirs) == len(mine)
    problems = []
    for t, m in zip(theirs, mine, strict=True):
        n = int(t["frame.number"])
        for f in FIELDS:
            if skip and f in skip.get(n, ()):
                continue
            if f in ("_ws.col.Info", "_ws.col.Protocol") and (
                    t["_ws.col.Protocol"] != "TCP" or "Malformed" in t["_ws.col.Info"]
                    or "bogus" in t["_ws.col.Info"]):
                continue  # wording of damage differs on purpose (field and byte offset)
            want, got = t[f], m[f]
            if f == "_ws.col.Info":
                # tshark takes any payload on port 80 for HTTP and waits for its line end;
                # tcplab recognises HTTP by content (tests/fidelity/test_reassembly.py
                # compares the notes on real HTTP exactly): the note is not compared here.
                want = want.replace(" [TCP segment of a reassembled PDU]", "")
                got = got.replace(" [TCP segment of a reassembled PDU]", "")
            if got != want:
                problems.append(f"frame {n} {f}: ours {got!r} != tshark {want!r}")
    return problems


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("scenario", [sack_and_spurious, midstream_pieces, damaged,
                                      scenarios.anomalies])
def test_fields_agree_with_tshark(tmp_path, scenario, two_pass):
    require_tshark()
    path = scenario().write(str(tmp_path / f"{scenario.__name__}.pcap"))
    # tcplab shows no sequence numbers on a frame it calls malformed (tshark shows raw or
    # relative ones, depending on the fault). Listed in docs/analyze.md.
    # tshark also shows a length and sequence numbers on the malformed SYNs (frames 7, 10).
    skip = ({7: {"tcp.seq", "tcp.ack", "tcp.len"}, 10: {"tcp.seq", "tcp.ack"}}
            if scenario is damaged else None)
    problems = _disagreements(Path(path), two_pass, skip)
    assert not problems, "\n".join(problems)


def test_the_cases_really_occur(tmp_path):
    """The scenarios hold what they are meant to test (not only agreement on empty fields)."""
    rows = _ours(Path(sack_and_spurious().write(str(tmp_path / "s.pcap"))), False)
    assert rows[6]["tcp.analysis.spurious_retransmission"] == "1"
    assert rows[6]["tcp.analysis.out_of_order"] == ""
    assert rows[8]["tcp.options.sack_le"] == "301" and "SLE=301 SRE=401" in rows[8]["_ws.col.Info"]
    assert [r["tcp.completeness"] for r in rows[:4]] == ["0", "1", "3", "7"]
    rows = _ours(Path(damaged().write(str(tmp_path / "d.pcap"))), False)
    assert rows[0]["_ws.col.Info"].endswith("Len=0 MSS=1460") and rows[0]["tcp.stream"] == "0"
    assert rows[3]["tcp.analysis.keep_alive"] == "1" and rows[4]["tcp.len"] == "4"
    assert rows[6]["tcp.stream"] == "1" and rows[9]["tcp.stream"] == "2"


@pytest.mark.parametrize("expression", [
    "tcp.options.sack_le == 301", "tcp.options.sack_re == 401", "tcp.options.sack.count == 2",
    "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
    "tcp.completeness == 31", "tcp.completeness == 15", "tcp.options.sack.dsack",
])
@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_display_filters_select_the_same_frames(tmp_path, expression, two_pass):
    require_tshark()
    path = Path(sack_and_spurious().write(str(tmp_path / "s.pcap")))
    extra = ("-2",) if two_pass else ()
    theirs = [r["frame.number"] for r in tshark_fields(path, extra=(*extra, "-Y", expression))]
    session = AnalysisSession(path, two_pass=two_pass, display_filter=expression)
    assert [str(p.number) for p in session.run()] == theirs


def test_detail_tree_names_an_option_fault_once(tmp_path):
    path = damaged().write(str(tmp_path / "d.pcap"))
    tree = AnalysisSession(path).detail(1)
    assert tree.count("option kind 3 claims 9 bytes") == 1
    assert "at byte 59" in tree


def test_detail_tree_shows_sack_edges_relative(tmp_path):
    path = sack_and_spurious().write(str(tmp_path / "s.pcap"))
    tree = AnalysisSession(path).detail(10)
    assert "TCP Option - SACK 1-101 301-401" in tree
    assert "left edge = 301 (relative)" in tree


@pytest.mark.parametrize("name", ["mixed_eth.pcap", "lossy_eth.pcap", "anomalies_eth.pcap"])
def test_golden_captures_one_pass_completeness_and_sack(name):
    require_tshark()
    fields = ("tcp.completeness", "tcp.options.sack_le", "tcp.options.sack_re")
    path = GOLDEN / name
    theirs = tshark_fields(path, *fields)
    ours = _ours(path, False)
    for t, m in zip(theirs, ours, strict=True):
        for f in fields:
            assert m[f] == t[f], f"frame {t['frame.number']} {f}"
