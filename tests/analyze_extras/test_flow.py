"""Flow graphs: the terminal ladder and the SVG picture of one TCP stream."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tcplab.analyze import flow
from tcplab.errors import InputError

SVG_NS = "{http://www.w3.org/2000/svg}"


def _pkt(n: int, t: float, src: str, sport: int, dst: str, dport: int, flags: int,
         seq: int, ack: int, length: int = 0, stream: int = 0, **extra) -> dict:
    d = {"frame.number": n, "frame.time_relative": t, "ip.src": src, "ip.dst": dst,
         "tcp.stream": stream, "tcp.srcport": sport, "tcp.dstport": dport, "tcp.flags": flags,
         "tcp.seq": seq, "tcp.ack": ack, "tcp.len": length, "_ws.col.Protocol": "TCP"}
    d.update(extra)
    return d


C, S = "10.0.0.1", "10.0.0.2"
HANDSHAKE = [
    _pkt(1, 0.0, C, 4000, S, 80, 0x02, 0, 0),
    _pkt(2, 0.001, S, 80, C, 4000, 0x12, 0, 1),
    _pkt(3, 0.002, C, 4000, S, 80, 0x10, 1, 1),
    _pkt(4, 0.003, C, 4000, S, 80, 0x18, 1, 1, 18, **{
        "_ws.col.Protocol": "HTTP", "_ws.col.Info": "GET /blog HTTP/1.1"}),
    _pkt(5, 0.004, S, 80, C, 4000, 0x04, 1, 0),
    _pkt(6, 0.005, C, 4001, S, 80, 0x02, 0, 0, stream=1),
]


def test_ladder_columns_and_arrows() -> None:
    text = flow.render_ladder(HANDSHAKE, 0)
    lines = text.splitlines()
    assert lines[0] == "TCP stream 0: 10.0.0.1:4000 (client) ⇄ 10.0.0.2:80 (server)"
    rows = [line for line in lines if line.lstrip()[:1].isdigit()]
    assert len(rows) == 5  # stream 1's packet is not drawn
    syn, synack, _ack, data, rst = rows
    assert "[SYN] Seq=0 Len=0" in syn and syn.rstrip().endswith("►│")
    assert "[SYN, ACK] Seq=0 Ack=1 Len=0" in synack and "│◄" in synack
    assert "[PSH, ACK] Seq=1 Ack=1 Len=18" in data and data.endswith("HTTP: GET /blog HTTP/1.1")
    assert "[RST] Seq=1 Len=0" in rst and "Ack=" not in rst  # no ACK flag → no Ack shown
    assert data.split()[0:2] == ["4", "0.003000"]
    # Both lifelines stay in the same columns on every row.
    left = {line.index("│") for line in rows}
    right = {line.rindex("│") if "HTTP" not in line else line.index("│", line.index("│") + 1)
             for line in rows}
    assert len(left) == 1 and len(right) == 1


def test_client_is_the_syn_sender_even_if_not_first() -> None:
    packets = [_pkt(1, 0.0, S, 80, C, 4000, 0x10, 5, 5), *HANDSHAKE[:3]]
    text = flow.render_ladder(packets, 0)
    assert "10.0.0.1:4000 (client)" in text.splitlines()[0]


def test_analysis_tags_become_notes_and_ascii_mode() -> None:
    packets = [
        _pkt(1, 0.0, C, 5074, S, 12345, 0x18, 1, 1, 18),
        _pkt(2, 0.1, C, 5074, S, 12345, 0x18, 1, 1, 18, **{"tcp.analysis.retransmission": True}),
        _pkt(3, 0.2, S, 12345, C, 5074, 0x10, 1, 19, **{
            "tcp.analysis.duplicate_ack": True, "tcp.analysis.duplicate_ack_num": 2,
            "tcp.analysis.duplicate_ack_frame": 1}),
    ]
    text = flow.render_ladder(packets, 0, ascii_only=True)
    assert "[TCP Retransmission]" in text
    assert "[TCP Dup ACK 1#2]" in text
    assert all(ord(ch) < 128 or ch == "⇄" for ch in text)
    assert "|<" in text and ">|" in text


def test_unknown_stream_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"TCP stream 7 is not in the capture .*streams in this capture: 0, 1"):
        flow.render_ladder(HANDSHAKE, 7)
    with pytest.raises(InputError, match="no TCP in this capture"):
        flow.render_ladder([{"frame.number": 1, "udp.srcport": 1}], 0)


def test_rows_are_capped() -> None:
    many = [_pkt(i, i * 0.001, C, 1, S, 2, 0x10, 1, 1) for i in range(1, 51)]
    text = flow.render_ladder(many, 0, max_rows=10)
    assert text.count("[ACK]") == 10
    assert "40 more packets in this stream not drawn" in text


def test_svg_is_well_formed_and_escapes_hostile_text(tmp_path) -> None:
    evil = dict(HANDSHAKE[3])
    evil["_ws.col.Info"] = "GET /<script>&\x1b[31m\x00 HTTP/1.1"
    packets = [*HANDSHAKE[:3], evil, HANDSHAKE[4]]
    path = tmp_path / "flow.svg"
    assert flow.write_svg(packets, 0, path) == 5
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x00" not in raw and "<script>" not in raw
    root = ET.fromstring(raw)  # parses: well-formed XML
    assert root.tag == SVG_NS + "svg"
    texts = ["".join(t.itertext()) for t in root.iter(SVG_NS + "text")]
    assert any("GET /<script>&" in t for t in texts)
    assert any(t == "[SYN] Seq=0 Len=0" for t in texts)
    lines = [e for e in root.iter(SVG_NS + "line") if e.get("marker-end")]
    assert len(lines) == 5
    # Client → server arrows run left to right, replies right to left.
    assert float(lines[0].get("x1")) < float(lines[0].get("x2"))
    assert float(lines[1].get("x1")) > float(lines[1].get("x2"))
    assert lines[4].get("stroke") == "#c62828"  # RST in red
    assert not root.findall(".//" + SVG_NS + "script")
    assert "href" not in raw  # standalone: nothing external


def test_svg_unwritable_path_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        flow.write_svg(HANDSHAKE, 0, tmp_path / "missing-dir" / "x.svg")
