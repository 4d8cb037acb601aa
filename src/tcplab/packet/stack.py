"""Walk down the stack: transport segment → IP packet → link frame. No I/O here.

These are the functions the encapsulator and ``RawTCPTransport`` call; each layer's
bytes come from that layer's own module, so a reader can follow one message from
application payload to the frame in a pcap file.
"""

from __future__ import annotations

from tcplab.packet import ipv4, ipv6, link, tcp, udp


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
