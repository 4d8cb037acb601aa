"""Display filters against tshark: the same expression must select the same frames.

tshark dissects a capture built here; its fields become analyzer-style dicts; our compiled
filter runs over those dicts and must pick exactly the frames ``tshark -Y`` picks. This pins
Wireshark's semantics (missing fields, ``!=`` over multi-value fields, precedence, CIDR...)
rather than our reading of the manual.
"""

from __future__ import annotations

import pytest

from tcplab.analyze.filter import compile_filter
from tests.analyze_extras.captures import mixed_packets, tshark_dicts, tshark_filter, write_pcap
from tests.support import require_tshark

FILTERS = [
    "tcp.port == 80",
    "tcp.port != 80",
    "!(tcp.port == 80)",
    "tcp.port !== 80",
    "tcp.port ~= 80",
    "tcp.port === 80",
    "tcp.port eq 12345 and tcp.flags.reset eq 1",
    "tcp.flags.reset == 1",
    "tcp.flags.reset",
    "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "tcp.flags == 0x012",
    "tcp.flags & 0x04",
    "tcp.flags & 0x03 && !tcp.flags.ack == 1",
    "ip.addr == 127.0.0.1",
    "ip.addr != 127.0.0.1",
    "ip.addr == 10.0.0.0/8",
    "ip.src == 192.168.0.0/16 || ip.dst == 192.168.1.7",
    "ip.addr == 10.0.0.2/32 and not ip.addr == 192.168.1.7",
    "ipv6.addr == fe80::2",
    "ipv6.addr == fe80::/10",
    "ipv6",
    "ip",
    "ip && tcp",
    "udp",
    "udp.port == 53",
    "udp.port in {53, 9999}",
    "tcp.port in {79..81, 443}",
    "tcp.port in {1000 .. 60000}",
    "dns",
    "data",
    "!data && tcp.len > 0",
    "http",
    "!http && tcp.len > 0",
    "http.request.method == \"GET\"",
    "http.request.method == GET",
    "http.request.uri contains \"blo\"",
    "http.response.code == 404",
    "http.response.code >= 400 or http.request",
    "http.host == \"shop.example\"",
    "tcp.analysis.retransmission",
    "!tcp.analysis.retransmission && tcp.len > 0",
    "tcp.analysis.zero_window || tcp.analysis.duplicate_ack",
    "tcp.analysis.duplicate_ack_num >= 2",
    "tcp.analysis.window_update",
    "tcp.analysis.flags",
    "tcp.checksum.status == 0",
    "tcp.checksum.status == 1",
    "tcp.completeness == 31",
    "tcp.completeness < 31",
    "tcp.stream == 1",
    "tcp.stream gt 1 and tcp.stream le 3",
    "tcp.len > 0 and tcp.len <= 18",
    "tcp.seq == 1 && tcp.ack == 1",
    "tcp.seq_raw == 0",
    "tcp.window_size == 0",
    "tcp.srcport > tcp.dstport",
    "tcp.srcport == tcp.dstport",
    "ip.src == ip.dst",
    "frame.len > 60",
    "frame.time_relative >= 0.5",
    "frame.number <= 3 || frame.number == 0x10",
    "udp || tcp && tcp.flags.reset == 1",
    "tcp.flags.reset == 1 && tcp || udp",
    "not tcp.port == 80 or udp",
    "!(tcp || udp)",
    "((tcp.port == 80) || (tcp.port == 443)) && tcp.flags.syn == 1",
    "ip.ttl == 64 && ip.id == 1",
    "tcp.port > 50000",
    "ip.flags.df == 1",
    "ip.flags.df == 0 && ip.flags.mf == 0",
    "tcp.flags.cwr == 1 || tcp.flags.ece == 1",
    "tcp.flags.urg == 1",
    "tcp.flags.ae == 0 && tcp.flags.ece",
    "tcp.payload contains \"GET\"",
    "tcp.payload contains 47:45:54 && !http",
    "tcp.payload == \"Alice: hi\"",
    "tcp.payload != \"Alice: hi\"",
]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory):
    require_tshark()
    path = write_pcap(tmp_path_factory.mktemp("filter") / "mixed.pcap", mixed_packets())
    return path, tshark_dicts(path)


@pytest.mark.parametrize("expr", FILTERS)
def test_same_frames_as_tshark(capture, expr: str) -> None:
    path, packets = capture
    predicate = compile_filter(expr)
    ours = [d["frame.number"] for d in packets if predicate(d)]
    assert ours == tshark_filter(path, expr), expr


def test_capture_exercises_every_branch(capture) -> None:
    """The differential test is only as good as its capture: make sure it has each case."""
    _, packets = capture
    keys = set().union(*packets)
    for needed in ("ipv6.src", "udp.srcport", "http.request.method", "http.response.code",
                   "tcp.analysis.retransmission", "tcp.analysis.zero_window",
                   "tcp.analysis.duplicate_ack", "tcp.analysis.window_update"):
        assert needed in keys, needed
    assert any(d.get("tcp.checksum.status") == 0 for d in packets)
