"""Walk down the stack: transport segment → IP packet → link frame. No I/O here.

These are the functions the encapsulator and ``RawTCPTransport`` call; each layer's
bytes come from that layer's own module, so a reader can follow one message from
application payload to the frame in a pcap file.
"""

from __future__ import annotations

import struct

from tcplab.packet import ipv4, ipv6, link, tcp, udp


def ip_address(text: str) -> bytes:
    """IPv4 or IPv6 text → 4 or 16 bytes (a colon means IPv6); ValueError names the text."""
    return ipv6.addr(text) if ":" in text else ipv4.addr(text)


def ip_packet(
    src: bytes,
    dst: bytes,
    protocol: int,
    transport: bytes,
    *,
    identification: int = 0,
    ttl: int = ipv4.DEFAULT_TTL,
    df: bool = False,
) -> bytes:
    """Wrap a transport segment in an IPv4 (4-byte addresses) or IPv6 (16-byte) header."""
    if len(src) == 4:
        return (
            ipv4.build_header(
                src, dst, len(transport), protocol=protocol, identification=identification,
                ttl=ttl, df=df,
            )
            + transport
        )
    return ipv6.build_header(src, dst, len(transport), next_header=protocol, hop_limit=ttl) + transport


def tcp_packet(
    src: bytes,
    dst: bytes,
    src_port: int,
    dst_port: int,
    payload: bytes = b"",
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = tcp.PSH | tcp.ACK,
    window: int = 8192,
    options: bytes = b"",
    identification: int = 0,
    ttl: int = ipv4.DEFAULT_TTL,
    df: bool = False,
) -> bytes:
    """A complete IP packet carrying one TCP segment, both checksums computed."""
    segment = tcp.build_segment(
        src, dst, src_port, dst_port, payload, seq=seq, ack=ack, flags=flags, window=window,
        options=options,
    )
    return ip_packet(src, dst, tcp.PROTOCOL_NUMBER, segment, identification=identification, ttl=ttl, df=df)


def udp_packet(
    src: bytes,
    dst: bytes,
    src_port: int,
    dst_port: int,
    payload: bytes,
    *,
    identification: int = 0,
    ttl: int = ipv4.DEFAULT_TTL,
    df: bool = False,
) -> bytes:
    """A complete IP packet carrying one UDP datagram, both checksums computed."""
    datagram = udp.build_datagram(src, dst, src_port, dst_port, payload)
    return ip_packet(src, dst, udp.PROTOCOL_NUMBER, datagram, identification=identification, ttl=ttl, df=df)


def frame(linktype: int, packet: bytes) -> bytes:
    """Put the link header for ``linktype`` in front of an IP packet."""
    return link.frame(linktype, packet, version=packet[0] >> 4)


_IPV4_TCP = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")


class TCPv4Flow:
    """Fast builder for many packets in one direction of one IPv4 TCP connection.

    Produces exactly the bytes of :func:`tcp_packet` (a test holds it to that), but
    precomputes the checksum contribution of everything constant in the direction —
    addresses, ports, TTL, protocol, flags word of the IP header — so each packet costs
    one ``struct.pack`` and a few integer additions. The encapsulator writes hundreds of
    thousands of packets a second through this path. The sums rely on the same identity
    as :mod:`tcplab.packet.checksum`: a big-endian integer mod 65535 is the
    one's-complement sum of its 16-bit words.
    """

    __slots__ = ("_dport", "_dst", "_ip_const", "_sport", "_src", "_tcp_const", "_tos", "_frag", "_ttl")

    def __init__(
        self,
        src: bytes,
        dst: bytes,
        src_port: int,
        dst_port: int,
        *,
        ttl: int = ipv4.DEFAULT_TTL,
        df: bool = True,
    ) -> None:
        self._src, self._dst = src, dst
        self._sport, self._dport = src_port, dst_port
        self._ttl = ttl
        self._tos = 0
        self._frag = ipv4.FLAG_DF if df else 0
        addr_sum = int.from_bytes(src, "big") % 0xFFFF + int.from_bytes(dst, "big") % 0xFFFF
        self._ip_const = 0x4500 + self._frag + ((ttl << 8) | tcp.PROTOCOL_NUMBER) + addr_sum
        self._tcp_const = addr_sum + tcp.PROTOCOL_NUMBER + src_port + dst_port

    def packet(
        self,
        payload: bytes,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        identification: int,
        options: bytes = b"",
    ) -> bytes:
        """One complete IPv4+TCP packet, byte-identical to :func:`tcp_packet`."""
        olen = len(options)
        plen = len(payload)
        tcp_len = 20 + olen + plen
        total = 20 + tcp_len
        s = self._ip_const + total + identification
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip_csum = ~s & 0xFFFF
        offflags = ((5 + (olen >> 2)) << 12) | flags
        t = self._tcp_const + tcp_len + seq + (seq >> 16) * 0xFFFF + ack + (ack >> 16) * 0xFFFF
        # (x >> 16) * 0xFFFF adds the high word and removes 65536·high: x ≡ high + low (mod 65535).
        t += offflags + window
        if olen:
            t += int.from_bytes(options, "big")
        if plen:
            p = int.from_bytes(payload, "big")
            t += p << 8 if plen & 1 else p
        t %= 0xFFFF
        tcp_csum = ~(t or 0xFFFF) & 0xFFFF
        head = _IPV4_TCP.pack(
            0x45, self._tos, total, identification, self._frag, self._ttl, 6, ip_csum,
            self._src, self._dst, self._sport, self._dport, seq, ack, offflags, window, tcp_csum, 0,
        )
        if olen:
            return head + options + payload
        return head + payload
