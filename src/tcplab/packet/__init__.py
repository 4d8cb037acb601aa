"""Protocol headers as plain bytes ⇄ fields, one module per protocol. No I/O here.

``checksum`` (RFC 1071), ``ipv4`` (RFC 791), ``ipv6`` (RFC 8200), ``tcp`` (RFC 9293 and
its option RFCs), ``udp`` (RFC 768), ``dns`` (RFC 1035) and ``link`` (the frame headers
that pcap link types put in front of IP: BSD Null/Loopback, Ethernet, Linux SLL/SLL2).
Builders are plain functions or small dataclasses so a reader can follow every byte.
"""

from tcplab.packet.errors import ParseError

__all__ = ["ParseError"]
