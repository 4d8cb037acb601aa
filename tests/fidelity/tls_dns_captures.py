"""Crafted TLS and DNS captures for the tshark differential tests (scapy builds the frames).

Each capture exercises one of tshark 4.0's rules the analyzer copies: the TLS heuristic on
ports no dissector owns, records and handshake messages cut across segments and records,
the encrypted-handshake guess, alerts, heartbeats and malformed records; DNS over UDP
with every record type Info summarises, and DNS over TCP cut at every awkward place.
The real-traffic captures (curl against openssl s_server, a DNS-over-TCP exchange) are in
``tests/data/``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

CLIENT, SERVER = 0, 1


def _tcp_conversation(path: Path, sport: int, dport: int,
                      payloads: list[tuple[int, bytes]]) -> None:
    """Handshake, then each (direction, bytes) as one PSH/ACK segment, in order."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    c, s = IP(src="10.0.0.1", dst="10.0.0.2"), IP(src="10.0.0.2", dst="10.0.0.1")
    cseq, sseq = 1000, 5000
    frames = [Ether() / c / TCP(sport=sport, dport=dport, flags="S", seq=cseq - 1),
              Ether() / s / TCP(sport=dport, dport=sport, flags="SA", seq=sseq - 1, ack=cseq),
              Ether() / c / TCP(sport=sport, dport=dport, flags="A", seq=cseq, ack=sseq)]
    for direction, data in payloads:
        if direction == CLIENT:
            frames.append(Ether() / c / TCP(sport=sport, dport=dport, flags="PA", seq=cseq,
                                            ack=sseq) / Raw(data))
            cseq += len(data)
        else:
            frames.append(Ether() / s / TCP(sport=dport, dport=sport, flags="PA", seq=sseq,
                                            ack=cseq) / Raw(data))
            sseq += len(data)
    for i, frame in enumerate(frames):
        frame.time = 1.0 + i / 1000
    wrpcap(str(path), frames)


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(htype: int, body: bytes) -> bytes:
    return bytes([htype]) + len(body).to_bytes(3, "big") + body


_SUPPORTED_13 = b"\x00\x2b\x00\x02\x03\x04"
CLIENT_HELLO = handshake(1, b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01"
                         + b"\x01\x00" + b"\x00\x00")
SERVER_HELLO = handshake(2, b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\x13\x01" + b"\x00"
                         + b"\x00\x00")
SERVER_HELLO_13 = handshake(2, b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\x13\x01" + b"\x00"
                            + len(_SUPPORTED_13).to_bytes(2, "big") + _SUPPORTED_13)
APP = record(23, b"\xaa" * 50)
BIG = record(23, b"\xbb" * 300)


def tls_cut_records(path: Path) -> None:
    """Port 443: a record over two segments, one over three, records sharing segments."""
    _tcp_conversation(path, 40000, 443, [
        (CLIENT, record(22, CLIENT_HELLO, 0x0301)), (CLIENT, BIG[:100]), (CLIENT, BIG[100:]),
        (CLIENT, APP + BIG[:50]), (CLIENT, BIG[50:] + APP), (SERVER, b"hello, not TLS"),
        (SERVER, APP), (CLIENT, BIG[:120]), (CLIENT, BIG[120:200]), (CLIENT, BIG[200:])])


def tls_heuristic(path: Path) -> None:
    """Port 4433, which no dissector owns: the record heuristic makes it TLS."""
    _tcp_conversation(path, 47001, 4433, [
        (CLIENT, record(22, CLIENT_HELLO, 0x0301)), (SERVER, record(22, SERVER_HELLO)),
        (CLIENT, APP), (CLIENT, b"garbage here"), (CLIENT, APP)])


def tls_heuristic_app_data(path: Path) -> None:
    """Port 4433, first payload an Application Data record (no hello seen)."""
    _tcp_conversation(path, 47002, 4433, [(CLIENT, APP), (SERVER, APP)])


def tls13(path: Path) -> None:
    """TLS 1.3 by supported_versions: opaque types, the compatibility CCS, a plain alert."""
    _tcp_conversation(path, 47003, 443, [
        (CLIENT, record(22, CLIENT_HELLO, 0x0301)), (SERVER, record(22, SERVER_HELLO_13)),
        (SERVER, record(20, b"\x01")), (SERVER, APP),
        (CLIENT, record(20, b"\x01") + APP), (CLIENT, record(21, b"\x01\x00"))])


def tls_oddities(path: Path) -> None:
    """Alerts plain and encrypted, a heartbeat, tls12_cid, and records tshark calls malformed."""
    _tcp_conversation(path, 47004, 443, [
        (CLIENT, record(22, CLIENT_HELLO, 0x0301)),
        (SERVER, record(22, SERVER_HELLO) + record(20, b"\x01") + record(22, b"\x55" * 40)),
        (CLIENT, record(21, b"\x02\x28")), (SERVER, record(21, b"\x33" * 26)),
        (CLIENT, record(24, b"\x01\x00\x10" + b"\x00" * 16)), (CLIENT, record(25, b"xx")),
        (CLIENT, record(23, b"")), (CLIENT, record(22, handshake(1, b"") + handshake(2, b""), 0x0301)),
        (CLIENT, b"\x17\x03\x03\x40\x00")])


def tls_handshake_guesses(path: Path) -> None:
    """Encrypted or not, handshake messages cut across records, a record over three segments."""
    finished = handshake(20, b"\x01" * 12)
    _tcp_conversation(path, 47005, 443, [
        (CLIENT, record(22, CLIENT_HELLO, 0x0301)), (SERVER, record(22, SERVER_HELLO)),
        (CLIENT, record(22, b"\x99\x00\x00\x01\x00")),
        (CLIENT, record(20, b"\x01") + record(22, finished)),
        (CLIENT, record(22, b"\x14\xff\xff\xff" + b"\x00" * 8)),
        (SERVER, record(20, b"\x01") + record(22, b"\x99" * 16)),
        (CLIENT, BIG[:100]), (CLIENT, BIG[100:200]), (CLIENT, BIG[200:]),
        (CLIENT, record(22, handshake(11, b"\x00" * 3) + handshake(14, b""), 0x0301)),
        (SERVER, record(22, handshake(11, b"\x07" * 60)[:30])),
        (SERVER, record(22, handshake(11, b"\x07" * 60)[30:50])),
        (SERVER, record(22, handshake(11, b"\x07" * 60)[50:] + handshake(14, b"")))])


def dns_udp(path: Path) -> None:
    """Queries and responses with every record type Info spells out, rcodes, opcodes, damage."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRMX, DNSRROPT, DNSRRSOA, DNSRRSRV
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    frames = []

    def udp(payload: object, reply: bool = False) -> None:
        ip = IP(src="10.0.0.2", dst="10.0.0.1") if reply else IP(src="10.0.0.1", dst="10.0.0.2")
        ports = UDP(sport=53, dport=33333) if reply else UDP(sport=33333, dport=53)
        frames.append(Ether() / ip / ports / payload)

    q = DNSQR
    udp(DNS(id=0x1234, rd=1, qd=q(qname="example.com", qtype="A")))
    udp(DNS(id=0x1234, qr=1, rd=1, ra=1, qd=q(qname="example.com", qtype="A"),
            an=[DNSRR(rrname="example.com", type="A", rdata="93.184.216.34"),
                DNSRR(rrname="example.com", type="A", rdata="1.2.3.4")],
            ns=[DNSRR(rrname="example.com", type="NS", rdata="ns1.example.com")],
            ar=[DNSRR(rrname="ns1.example.com", type="A", rdata="5.6.7.8"),
                DNSRROPT(rclass=1232)]), reply=True)
    udp(DNS(id=2, qr=1, rd=1, ra=1, qd=q(qname="www.example.com", qtype="AAAA"),
            an=[DNSRR(rrname="www.example.com", type="CNAME", rdata="example.com"),
                DNSRR(rrname="example.com", type="AAAA", rdata="2001:db8::1")]), reply=True)
    udp(DNS(id=3, qr=1, rd=1, ra=1, rcode=3, qd=q(qname="nope.example", qtype="A"),
            ns=[DNSRRSOA(rrname="example", mname="ns.example", rname="admin.example")]),
        reply=True)
    udp(DNS(id=4, qr=1, qd=q(qname="example.com", qtype="MX"),
            an=[DNSRRMX(rrname="example.com", exchange="mail.example.com", preference=10)]),
        reply=True)
    udp(DNS(id=5, qr=1, qd=q(qname="example.com", qtype="TXT"),
            an=[DNSRR(rrname="example.com", type="TXT", rdata=["hello world"])]), reply=True)
    udp(DNS(id=6, qr=1, qd=q(qname="4.3.2.1.in-addr.arpa", qtype="PTR"),
            an=[DNSRR(rrname="4.3.2.1.in-addr.arpa", type="PTR", rdata="host.example")]),
        reply=True)
    udp(DNS(id=8, qr=1, qd=q(qname="_sip._tcp.example.com", qtype="SRV"),
            an=[DNSRRSRV(rrname="_sip._tcp.example.com", target="sip.example.com", port=5060,
                         priority=1, weight=2)]), reply=True)
    for qid, qtype in ((9, 255), (0x10, 257), (0x11, 1000), (0x12, 65), (0x13, 253)):
        udp(DNS(id=qid, qd=q(qname="example.com", qtype=qtype)))
    udp(DNS(id=0xA, opcode=5, qd=q(qname="example.com", qtype="SOA")))
    udp(DNS(id=0xB, qr=1, rcode=2, qd=q(qname="example.com", qtype="A")), reply=True)
    udp(DNS(id=0xC, qr=1, rcode=12, qd=q(qname="example.com", qtype="A")), reply=True)
    udp(b"garbage!")
    udp(DNS(id=0xD, qd=[], qdcount=0))
    udp(DNS(id=0xE, qd=[q(qname="a.example", qtype="A"), q(qname="b.example", qtype="AAAA")],
            qdcount=2))
    udp(DNS(id=0xF, qd=q(qname=".", qtype="NS")))
    for i, frame in enumerate(frames):
        frame.time = 1.0 + i / 1000
    wrpcap(str(path), frames)


def _dns_pair() -> tuple[bytes, bytes]:
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    query = bytes(DNS(id=0x21, rd=1, qd=DNSQR(qname="x.example")))
    reply = bytes(DNS(id=0x21, qr=1, qd=DNSQR(qname="x.example"),
                      an=[DNSRR(rrname="x.example", rdata="1.1.1.1")]))
    return len(query).to_bytes(2, "big") + query, len(reply).to_bytes(2, "big") + reply


def dns_tcp_cut(path: Path) -> None:
    """DNS over TCP: a query over three segments, a response and half of another in one."""
    query, reply = _dns_pair()
    _tcp_conversation(path, 40000, 53, [
        (CLIENT, query[:1]), (CLIENT, query[1:5]), (CLIENT, query[5:]),
        (SERVER, reply + reply[:7]), (SERVER, reply[7:]), (CLIENT, query + query)])


def dns_tcp_5353(path: Path) -> None:
    query, reply = _dns_pair()
    _tcp_conversation(path, 40000, 5353, [(CLIENT, query), (SERVER, reply)])


def dns_tcp_garbage(path: Path) -> None:
    """Port 53 carrying bytes that are not DNS: tshark still frames and dissects them."""
    _tcp_conversation(path, 40000, 53, [(CLIENT, b"\x00"), (CLIENT, b"\x05hello"),
                                        (SERVER, b"xx")])


CRAFTED: dict[str, Callable[[Path], None]] = {
    "tls-cut-records": tls_cut_records,
    "tls-heuristic": tls_heuristic,
    "tls-heuristic-app-data": tls_heuristic_app_data,
    "tls13": tls13,
    "tls-oddities": tls_oddities,
    "tls-handshake-guesses": tls_handshake_guesses,
    "dns-udp": dns_udp,
    "dns-tcp-cut": dns_tcp_cut,
    "dns-tcp-5353": dns_tcp_5353,
    "dns-tcp-garbage": dns_tcp_garbage,
}
