"""Conversation summaries: Wireshark 4.0 completeness wording, endpoints, counters, verdicts."""

from __future__ import annotations

import json
import re

import pytest

from tcplab.analyze import conversations as cv
from tests.analyze_extras.captures import (
    SHAPES,
    mixed_packets,
    shape_packets,
    tshark_dicts,
    write_pcap,
)
from tests.support import require_tshark, tshark


@pytest.fixture(scope="module")
def shapes_capture(tmp_path_factory: pytest.TempPathFactory):
    require_tshark()
    path = write_pcap(tmp_path_factory.mktemp("conv") / "shapes.pcap", shape_packets())
    return path, tshark_dicts(path)


def test_completeness_text_matches_tshark(shapes_capture) -> None:
    """Every stream's final completeness, worded exactly as tshark 4.0's detail pane."""
    path, packets = shapes_capture
    detail = tshark("-2", "-r", str(path), "-V")
    texts: dict[int, str] = {}
    for block in detail.split("\nFrame ")[0:]:
        stream = re.search(r"\[Stream index: (\d+)\]", block)
        comp = re.search(r"\[Conversation completeness: ([^\]]+)\]", block)
        if stream and comp:
            texts[int(stream.group(1))] = comp.group(1)
    summaries = cv.summarize(packets)
    assert len(summaries) == len(SHAPES) == len(texts)
    seen_values = set()
    for s in summaries:
        assert s.completeness_text == texts[s.stream], (s.stream, s.completeness)
        seen_values.add(s.completeness)
    # Each named 4.0 state and the bare "Incomplete (n)" form are covered.
    assert {1, 3, 7, 15, 31, 47, 23, 39, 63, 55} <= seen_values


@pytest.mark.parametrize("value, text", [
    (48, "Incomplete (48)"), (8, "Incomplete (8)"), (31, "Complete, WITH_DATA (31)"),
    (15, "Incomplete, DATA (15)"), (0, "Incomplete (0)"),
])
def test_completeness_text_values(value: int, text: str) -> None:
    assert cv.completeness_text(value) == text


def test_completeness_names() -> None:
    assert cv.completeness_names(40) == ["DATA", "RST"]
    assert cv.completeness_names(31) == ["SYN", "SYN-ACK", "ACK", "DATA", "FIN"]


EXPECTED_VERDICTS = {
    "syn": "SYN never answered",
    "syn_synack": "handshake without final ACK, no data, still open at end of capture",
    "established": "handshake, no data, still open at end of capture",
    "data": "handshake, 1 data segment, still open at end of capture",
    "full": "handshake, 2 data segments (1 A→B, 1 B→A), FIN teardown",
    "data_rst": "handshake, 1 data segment, reset by B",
    "nodata_fin": "handshake, no data, half-closed (FIN from A only)",
    "nodata_rst": "handshake, no data, reset by B",
    "fin_rst": "handshake, 1 data segment, reset by B",
    "only_data": "no handshake; 1 data segment, still open at end of capture",
    "seed": "no handshake; 2 data segments, every segment answered by RST",
    "refused": "SYN answered by RST: connection refused (nothing listening on port 80)",
    "data_fin": "no handshake; 1 data segment, half-closed (FIN from A only)",
    "nodata_fin_rst": "handshake, no data, reset by B",
    "no_final_ack": "handshake, 1 data segment, still open at end of capture",
}


def test_verdicts(shapes_capture) -> None:
    _, packets = shapes_capture
    summaries = cv.summarize(packets)
    for name, s in zip(SHAPES, summaries):
        assert s.verdict == EXPECTED_VERDICTS[name], name
        assert s.port_a == 20001 + list(SHAPES).index(name)
        assert s.port_b == 80


def test_seed_pattern_counts_retransmissions(tmp_path) -> None:
    require_tshark()
    packets = tshark_dicts(write_pcap(tmp_path / "m.pcap", mixed_packets()))
    seed = [s for s in cv.summarize(packets) if s.port_b == 12345][0]
    assert seed.verdict == ("no handshake; 3 data segments, 2 retransmissions, "
                            "every segment answered by RST")
    assert seed.completeness_text == "Incomplete (40)"
    assert (seed.packets_ab, seed.packets_ba) == (3, 3)
    assert seed.endpoint_a == "127.0.0.1:5074"
    v6 = [s for s in cv.summarize(packets) if s.port_b == 443][0]
    assert v6.endpoint_a == "[::1]:50000"


def _pkt(n: int, t: float, src: str, sport: int, dst: str, dport: int, flags: int,
         length: int = 0, **extra) -> dict:
    d = {"frame.number": n, "frame.time_relative": t, "frame.len": 40 + length,
         "ip.src": src, "ip.dst": dst, "tcp.stream": 0, "tcp.srcport": sport,
         "tcp.dstport": dport, "tcp.flags": flags, "tcp.len": length}
    d.update(extra)
    return d


def test_a_is_the_syn_sender_even_when_seen_second() -> None:
    # A stray segment from the server side is captured before the client's SYN.
    packets = [
        _pkt(1, 0.0, "10.0.0.9", 80, "10.0.0.1", 3333, 0x10),
        _pkt(2, 0.5, "10.0.0.1", 3333, "10.0.0.9", 80, 0x02),
        _pkt(3, 0.6, "10.0.0.9", 80, "10.0.0.1", 3333, 0x12),
        _pkt(4, 0.7, "10.0.0.1", 3333, "10.0.0.9", 80, 0x10),
        _pkt(5, 0.8, "10.0.0.1", 3333, "10.0.0.9", 80, 0x18, 100, **{"tcp.completeness": 15}),
    ]
    (s,) = cv.summarize(packets)
    assert (s.address_a, s.port_a) == ("10.0.0.1", 3333)
    assert (s.packets_ab, s.packets_ba) == (3, 2)
    assert (s.bytes_ab, s.bytes_ba) == (40 + 40 + 140, 80)
    assert s.start == 0.0 and s.duration == pytest.approx(0.8)
    assert s.completeness_text == "Incomplete, DATA (15)"
    assert s.verdict == "handshake, 1 data segment, still open at end of capture"
    assert (s.first_frame, s.last_frame) == (1, 5)


def test_non_tcp_packets_are_ignored_and_render_aligns() -> None:
    packets = [{"frame.number": 1, "udp.srcport": 53}, _pkt(2, 0.0, "1.1.1.1", 1, "2.2.2.2", 2, 2)]
    summaries = cv.summarize(packets)
    table = cv.render(summaries)
    lines = table.splitlines()
    assert lines[0].startswith("Stream") and "Completeness" in lines[0]
    assert lines[2].split()[0] == "0"
    assert "1.1.1.1:1" in lines[2] and "SYN never answered" in lines[2]
    assert lines[-1] == "1 TCP conversation, 1 packet"
    # The Verdict column starts at the same offset on the header and every row.
    assert lines[0].index("Verdict") == lines[2].index("SYN never")
    assert cv.render([]) == "No TCP conversations."


def test_to_json_is_serialisable() -> None:
    s = cv.summarize([_pkt(1, 0.0, "1.1.1.1", 1, "2.2.2.2", 2, 2)])
    obj = cv.to_json(s)
    assert obj["summary"] == "conversations"
    assert obj["conversations"][0]["tcp.stream"] == 0
    json.dumps(obj)


def test_hostile_addresses_are_escaped_in_the_table() -> None:
    d = _pkt(1, 0.0, "1.1.1.1\x1b[2J", 1, "2.2.2.2", 2, 2)
    assert "\x1b" not in cv.render(cv.summarize([d]))
