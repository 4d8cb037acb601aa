"""Protocol headers as plain bytes ⇄ fields, one module per protocol. No I/O here.

``checksum`` (RFC 1071), ``ipv4`` (RFC 791), ``ipv6`` (RFC 8200, extension and fragment
headers walked), ``tcp`` (RFC 9293 and its option RFCs), ``udp`` (RFC 768), ``icmp``
(RFC 792), ``icmpv6`` (RFC 4443, RFC 4861), ``dns`` (RFC 1035, and its TCP framing),
``tls`` (the record layer and handshake headers), ``pppoe`` (RFC 2516), ``link`` (the
frame headers that pcap link types put in front of IP: BSD Null/Loopback, Ethernet with
802.1Q and PPPoE, Linux SLL/SLL2) and ``defrag`` (bounded IPv4/IPv6 reassembly, sans-IO).
Builders are plain functions or small dataclasses so a reader can follow every byte.
"""

from tcplab.packet.errors import ParseError

__all__ = ["ParseError"]
