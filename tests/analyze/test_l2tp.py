"""Tunnelled packets through every part of the analyzer: conversations, filters, fragments, nesting.

The field-by-field agreement with tshark is tests/fidelity/test_network_layers.py's
(``l2tp-crafted.pcap``) and the corpus test's (dpkt's ``nb6-http.pcap``); these are the cases
a capture of real tunnels rarely holds: tunnels inside tunnels (bounded), an L2TP datagram
the outer IP layer fragmented, a hostile Length field, and the invariants after each.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.analyze import filter as display_filter
from tcplab.analyze import render
from tcplab.analyze.l2tp import MAX_DEPTH
from tcplab.analyze.session import AnalysisSession
from tcplab.packet import ipv4, l2tp, ppp, stack, tcp, udp
from tcplab.pcap import PcapWriter

ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
LAC, LNS = ipv4.addr("192.0.2.10"), ipv4.addr("192.0.2.20")
CLIENT, SERVER = ipv4.addr("10.64.0.2"), ipv4.addr("198.51.100.7")


def _tunnel(packet: bytes, depth: int = 1) -> bytes:
    """``packet`` (an IPv4 packet) inside ``depth`` L2TP tunnels, each over IPv4/UDP 1701."""
    for _ in range(depth):
        packet = stack.udp_packet(LAC, LNS, 1701, 1701,
                                  l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_IPV4, packet)))
    return packet


def _write(path: Path, packets: list[bytes]) -> Path:
    with PcapWriter(path, 1) as w:
        for i, p in enumerate(packets):
            w.write(ETH + p, 1_700_000_000_000_000_000 + i * 1_000_000)
    return path


def _exchange() -> list[bytes]:
    req = b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n"
    resp = b"HTTP/1.1 204 No Content\r\n\r\n"
    c, s = 100, 900
    return [stack.tcp_packet(CLIENT, SERVER, 41000, 80, b"", seq=c, flags=tcp.SYN),
            stack.tcp_packet(SERVER, CLIENT, 80, 41000, b"", seq=s, ack=c + 1, flags=tcp.SYN | tcp.ACK),
            stack.tcp_packet(CLIENT, SERVER, 41000, 80, req, seq=c + 1, ack=s + 1, flags=tcp.PSH | tcp.ACK),
            stack.tcp_packet(SERVER, CLIENT, 80, 41000, resp, seq=s + 1, ack=c + 1 + len(req),
                             flags=tcp.PSH | tcp.ACK)]


def test_tunnelled_tcp_is_one_conversation_of_the_inner_addresses(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.pcap", [_tunnel(p) for p in _exchange()])
    run = AnalysisSession(path).run(conversations=True, http=True)
    packets = list(run)
    result = run.finish()
    [conv] = result.conversations
    assert {conv.address_a, conv.address_b} == {"10.64.0.2", "198.51.100.7"}
    assert conv.packets_ab + conv.packets_ba == 4
    assert [p.stream for p in packets] == [0, 0, 0, 0]
    assert result.http.requests_by_method == {"GET": 1}
    d = packets[2].fields()
    assert d["ip.src"] == ["192.0.2.10", "10.64.0.2"] and d["udp.srcport"] == 1701
    assert d["_ws.col.Source"] == "10.64.0.2" and d["_ws.col.Protocol"] == "HTTP"
    for expr, frames in (("ip.src == 10.64.0.2", [1, 3]), ("ip.src == 192.0.2.10", [1, 2, 3, 4]),
                         ("l2tp.session == 5 && http.request", [3]), ("tcp.stream == 0", [1, 2, 3, 4])):
        keep = display_filter.compile_filter(expr)
        assert [p.number for p in packets if keep(p)] == frames, expr


def test_tunnels_inside_tunnels_stop_at_the_depth_bound(tmp_path: Path) -> None:
    inner = stack.tcp_packet(CLIENT, SERVER, 41000, 80, b"", seq=1, flags=tcp.SYN)
    packets = [_tunnel(inner, depth) for depth in (1, MAX_DEPTH, MAX_DEPTH + 1, 40)]
    path = _write(tmp_path / "nested.pcap", packets)
    rows = [p.fields() for p in AnalysisSession(path).packets()]
    assert [r["frame.protocols"].count(":l2tp") for r in rows] == [1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 1]
    assert [r["_ws.col.Protocol"] for r in rows] == ["TCP", "TCP", "L2TP", "L2TP"]
    assert rows[2]["frame.protocols"].endswith(":l2tp:ppp:data")
    for r in rows:  # every renderer copes with the nesting, JSON lists stay flat
        tree = render.detail_tree(r)
        assert tree.count("Layer 2 Tunneling Protocol") == r["frame.protocols"].count(":l2tp")
        assert all(not isinstance(v, list) or not any(isinstance(x, list) for x in v)
                   for k, v in r.items() if not k.startswith("_"))
        assert render.json_line(r)


def test_l2tp_in_a_fragmented_datagram_reaches_the_tcp_analysis(tmp_path: Path) -> None:
    """The outer IPv4 layer fragments the tunnel's datagram: the inner segment is analysed on
    the fragment that completes it, from the reassembled bytes (not the frame's)."""
    segment = _exchange()[2]
    message = l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_IPV4, segment))
    dgram = udp.build_datagram(LAC, LNS, 1701, 1701, message)
    first, rest = dgram[:32], dgram[32:]
    frames = [ipv4.build_header(LAC, LNS, len(first), protocol=17, identification=7, mf=True) + first,
              ipv4.build_header(LAC, LNS, len(rest), protocol=17, identification=7,
                                fragment_offset=4) + rest]
    path = _write(tmp_path / "frag.pcap", frames)
    rows = [p.fields() for p in AnalysisSession(path).packets()]
    assert rows[1]["_ws.col.Protocol"] == "HTTP" and rows[1]["http.request.uri"] == "/t"
    assert rows[1]["tcp.stream"] == 0 and rows[1]["ip.reassembled.length"] == len(dgram)
    assert "l2tp.version" not in rows[0]


def test_hostile_lengths_are_named_and_the_run_goes_on(tmp_path: Path) -> None:
    good = _tunnel(_exchange()[0])
    bad_length = stack.udp_packet(LAC, LNS, 1701, 1701, struct.pack("!HHHH", 0x4002, 0xFFFF, 1, 2))
    bad_pad = stack.udp_packet(LAC, LNS, 1701, 1701, struct.pack("!HHHH", 0x0202, 1, 2, 0xFFFF))
    bad_inner = stack.udp_packet(LAC, LNS, 1701, 1701, l2tp.build_data(1, 2, b"\xff\x03\x00\x21\x45\x00"))
    path = _write(tmp_path / "bad.pcap", [bad_length, bad_pad, bad_inner, good])
    rows = [p.fields() for p in AnalysisSession(path).packets()]
    assert "L2TP: length at byte 44: 65535 does not fit" in rows[0]["_ws.malformed"]
    assert "L2TP: offset size at byte 48: 65535 bytes of padding" in rows[1]["_ws.malformed"]
    assert "IPv4: header at byte 52: needs 20 bytes, only 2" in rows[2]["_ws.malformed"]
    assert rows[3]["_ws.col.Protocol"] == "TCP" and rows[3]["tcp.stream"] == 0
    assert all(render.detail_tree(r) for r in rows)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([b"", b"\x00\x02\x00\x07\x00\x05\xff\x03\x00\x21",
                                                 b"\x00\x02\x00\x07\x00\x05\x00\x57",
                                                 b"\xc8\x02\x00\x14\x00\x01\x00\x00\x00\x01\x00\x02"]))
def test_any_bytes_after_udp_1701_are_dissected_without_raising(tail: bytes, head: bytes) -> None:
    """Whatever a hostile peer puts in an L2TP datagram (a valid-looking header or none), every
    renderer copes, and a frame's fields stay flat lists."""
    from tcplab.analyze.record import Analyzer

    packet = stack.udp_packet(LAC, LNS, 1701, 1701, head + tail)
    d = Analyzer(linktype=1).feed_frame(ETH + packet, 1_700_000_000_000_000_000)
    assert render.detail_tree(d) and render.json_line(d) and render.packet_line(d)
    assert d["frame.protocols"].startswith("eth:ethertype:ip:udp")
