"""Captures for the analyze-extras tests: small pcaps built here, and tshark's view of them.

The pcap is written with ``struct`` (classic pcap, raw-IP link type) so these tests depend only
on the packet engine. :func:`tshark_dicts` turns ``tshark -T fields`` output into the same
field-name dicts the analyzer produces, so filter/summary code can be checked against tshark's
own dissection independently of tcplab's analyzer.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tcplab.packet import ipv4, ipv6, stack, tcp
from tests.support import tshark

LINKTYPE_RAW = 101

LO = ipv4.addr("127.0.0.1")
NET_A = ipv4.addr("10.0.0.2")
NET_B = ipv4.addr("192.168.1.7")
V6_A = ipv6.addr("::1")
V6_B = ipv6.addr("fe80::2")


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """Classic pcap, microsecond timestamps, raw IP (link type 101)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for ts, pkt in packets:
            sec = int(ts)
            usec = round((ts - sec) * 1e6)
            f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)))
            f.write(pkt)
    return path


def _corrupt_tcp_checksum(pkt: bytes) -> bytes:
    ihl = (pkt[0] & 0x0F) * 4
    b = bytearray(pkt)
    b[ihl + 16] ^= 0xFF
    return bytes(b)


def mixed_packets() -> list[tuple[float, bytes]]:
    """A bit of everything a display filter distinguishes.

    Frames (1-based): 1–8 an HTTP conversation with handshake and FIN teardown (10.0.0.2:40000 →
    192.168.1.7:80); 9–14 the seed pattern (data with seq 0 answered by RST, on loopback);
    15–16 UDP (DNS port); 17–19 TCP over IPv6; 20 a segment with a bad checksum; 21–26
    chat-port data, a zero window, a window update and duplicate ACKs; 27–28 an ECN-setup
    handshake with DF set.
    """
    t = 1000.0
    pk: list[tuple[float, bytes]] = []

    def add(dt: float, pkt: bytes) -> None:
        nonlocal t
        t += dt
        pk.append((t, pkt))

    c, s = NET_A, NET_B
    add(0, stack.tcp_packet(c, s, 40000, 80, seq=100, ack=0, flags=tcp.SYN, window=64240))
    add(.01, stack.tcp_packet(s, c, 80, 40000, seq=500, ack=101, flags=tcp.SYN | tcp.ACK))
    add(.01, stack.tcp_packet(c, s, 40000, 80, seq=101, ack=501, flags=tcp.ACK))
    req = b"GET /blog HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    add(.01, stack.tcp_packet(c, s, 40000, 80, req, seq=101, ack=501))
    resp = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    add(.01, stack.tcp_packet(s, c, 80, 40000, resp, seq=501, ack=101 + len(req)))
    cfin, sfin = 101 + len(req), 501 + len(resp)
    add(.01, stack.tcp_packet(c, s, 40000, 80, seq=cfin, ack=sfin, flags=tcp.FIN | tcp.ACK))
    add(.01, stack.tcp_packet(s, c, 80, 40000, seq=sfin, ack=cfin + 1, flags=tcp.FIN | tcp.ACK))
    add(.01, stack.tcp_packet(c, s, 40000, 80, seq=cfin + 1, ack=sfin + 1, flags=tcp.ACK))
    for msg in (b"GET /blog HTTP/1.1", b"POST /cart HTTP/1.1", b"GET /img HTTP/1.1"):
        add(.1, stack.tcp_packet(LO, LO, 5074, 12345, msg, seq=0, ack=0, identification=1))
        add(.00004, stack.tcp_packet(LO, LO, 12345, 5074, seq=0, ack=0, flags=tcp.RST, window=0))
    add(.1, stack.udp_packet(LO, LO, 5353, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                             b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"))
    add(.1, stack.udp_packet(NET_A, LO, 40001, 9999, b"hello"))
    add(.1, stack.tcp_packet(V6_A, V6_B, 50000, 443, seq=7, flags=tcp.SYN))
    add(.01, stack.tcp_packet(V6_B, V6_A, 443, 50000, seq=9, ack=8, flags=tcp.SYN | tcp.ACK))
    add(.01, stack.tcp_packet(V6_A, V6_B, 50000, 443, seq=8, ack=10, flags=tcp.ACK))
    add(.1, _corrupt_tcp_checksum(stack.tcp_packet(LO, LO, 33000, 33001, b"bad sum", seq=1, ack=1)))
    c2, s2 = NET_A, LO
    add(.1, stack.tcp_packet(c2, s2, 41000, 55555, b"Alice: hi", seq=1000, ack=2000))
    add(.01, stack.tcp_packet(s2, c2, 55555, 41000, seq=2000, ack=1009, flags=tcp.ACK, window=0))
    for _ in range(4):
        add(.01, stack.tcp_packet(s2, c2, 55555, 41000, seq=2000, ack=1009, flags=tcp.ACK))
    # An ECN-setup SYN with DF (RFC 3168 §6.1.1) and its SYN-ACK: the rarer flag bits.
    add(.1, stack.tcp_packet(NET_A, NET_B, 42000, 8080, seq=1, flags=tcp.SYN | tcp.ECE | tcp.CWR,
                             df=True))
    add(.01, stack.tcp_packet(NET_B, NET_A, 8080, 42000, seq=9, ack=2,
                              flags=tcp.SYN | tcp.ACK | tcp.ECE, df=True))
    return pk


#: Conversation shapes for completeness/verdict tests: steps S (SYN), SA (SYN-ACK), A (ACK),
#: D (data A→B), d (data B→A), F (FIN A→B), f (FIN B→A), R (RST B→A).
SHAPES: dict[str, list[str]] = {
    "syn": ["S"], "syn_synack": ["S", "SA"], "established": ["S", "SA", "A"],
    "data": ["S", "SA", "A", "D"], "full": ["S", "SA", "A", "D", "d", "F", "f"],
    "data_rst": ["S", "SA", "A", "D", "R"], "nodata_fin": ["S", "SA", "A", "F"],
    "nodata_rst": ["S", "SA", "A", "R"], "fin_rst": ["S", "SA", "A", "D", "F", "R"],
    "only_data": ["D"], "seed": ["D", "R", "D", "R"], "refused": ["S", "R"],
    "data_fin": ["D", "F"], "nodata_fin_rst": ["S", "SA", "A", "F", "R"],
    "no_final_ack": ["S", "SA", "D"],
}


def shape_packets(shapes: dict[str, list[str]] = SHAPES) -> list[tuple[float, bytes]]:
    """One TCP stream per shape, client ports 20001, 20002... in order, server port 80."""
    a, b = NET_A, NET_B
    out: list[tuple[float, bytes]] = []
    t = 2000.0
    for i, steps in enumerate(shapes.values()):
        port, cseq, sseq = 20001 + i, 1000, 5000
        for step in steps:
            t += 0.01
            if step == "S":
                pkt = stack.tcp_packet(a, b, port, 80, seq=cseq, flags=tcp.SYN)
                cseq += 1
            elif step == "SA":
                pkt = stack.tcp_packet(b, a, 80, port, seq=sseq, ack=cseq, flags=tcp.SYN | tcp.ACK)
                sseq += 1
            elif step == "A":
                pkt = stack.tcp_packet(a, b, port, 80, seq=cseq, ack=sseq, flags=tcp.ACK)
            elif step == "D":
                pkt = stack.tcp_packet(a, b, port, 80, b"hello", seq=cseq, ack=sseq)
                cseq += 5
            elif step == "d":
                pkt = stack.tcp_packet(b, a, 80, port, b"hi", seq=sseq, ack=cseq)
                sseq += 2
            elif step == "F":
                pkt = stack.tcp_packet(a, b, port, 80, seq=cseq, ack=sseq, flags=tcp.FIN | tcp.ACK)
                cseq += 1
            elif step == "f":
                pkt = stack.tcp_packet(b, a, 80, port, seq=sseq, ack=cseq, flags=tcp.FIN | tcp.ACK)
                sseq += 1
            else:  # "R"
                pkt = stack.tcp_packet(b, a, 80, port, seq=sseq, ack=cseq,
                                       flags=tcp.RST | tcp.ACK, window=0)
            out.append((t, pkt))
    return out


# tshark field → how to store it in the packet dict (like the analyzer's --json).
_INT, _FLOAT, _STR, _FLAG, _BYTES = int, float, str, "flag", bytes
EXPORT_FIELDS: dict[str, object] = {
    "frame.number": _INT, "frame.len": _INT, "frame.time_epoch": _FLOAT,
    "frame.time_relative": _FLOAT, "frame.comment": _STR, "frame.protocols": _STR,
    "ip.src": _STR, "ip.dst": _STR, "ip.proto": _INT, "ip.ttl": _INT, "ip.len": _INT,
    "ip.flags": _INT,
    "ip.id": _INT,
    "ipv6.src": _STR, "ipv6.dst": _STR,
    "udp.srcport": _INT, "udp.dstport": _INT,
    "tcp.stream": _INT, "tcp.srcport": _INT, "tcp.dstport": _INT, "tcp.len": _INT,
    "tcp.seq": _INT, "tcp.seq_raw": _INT, "tcp.nxtseq": _INT, "tcp.ack": _INT,
    "tcp.ack_raw": _INT, "tcp.flags": _INT,
    "tcp.flags.syn": _INT, "tcp.flags.ack": _INT, "tcp.flags.fin": _INT,
    "tcp.flags.reset": _INT, "tcp.flags.push": _INT,
    "tcp.window_size": _INT, "tcp.checksum.status": _INT, "tcp.completeness": _INT,
    "tcp.analysis.retransmission": _FLAG, "tcp.analysis.fast_retransmission": _FLAG,
    "tcp.analysis.out_of_order": _FLAG, "tcp.analysis.lost_segment": _FLAG,
    "tcp.analysis.ack_lost_segment": _FLAG, "tcp.analysis.keep_alive": _FLAG,
    "tcp.analysis.window_update": _FLAG, "tcp.analysis.window_full": _FLAG,
    "tcp.analysis.zero_window": _FLAG, "tcp.analysis.duplicate_ack": _FLAG,
    "tcp.analysis.duplicate_ack_num": _INT,
    "http.request.method": _STR, "http.request.uri": _STR, "http.request.version": _STR,
    "http.response.code": _INT, "http.response.phrase": _STR, "http.host": _STR,
    "dns.id": _INT, "dns.qry.name": _STR, "tcp.payload": _BYTES,
    "_ws.col.Protocol": _STR, "_ws.col.Info": _STR,
}


def tshark_dicts(path: Path) -> list[dict]:
    """tshark's two-pass dissection of ``path`` as analyzer-style field dicts."""
    names = list(EXPORT_FIELDS)
    args = ["-2", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for name in names:
        args += ["-e", name]
    out = tshark(*args)
    packets = []
    for line in out.splitlines():
        cells = line.split("\t")
        d: dict = {}
        for name, cell in zip(names, cells):
            if cell == "":
                continue
            kind = EXPORT_FIELDS[name]
            if kind is _FLAG:
                d[name] = True
            elif kind is _INT:
                d[name] = int(cell, 0)
            elif kind is _BYTES:
                d[name] = bytes.fromhex(cell.replace(":", ""))
            elif kind is _FLOAT:
                d[name] = float(cell)
            else:
                d[name] = cell.strip()
        packets.append(d)
    return packets


def tshark_filter(path: Path, expr: str) -> list[int]:
    """Frame numbers tshark's display filter selects (two-pass, like the dicts)."""
    out = tshark("-2", "-r", str(path), "-Y", expr, "-T", "fields", "-e", "frame.number")
    return [int(x) for x in out.split()]
