"""Link-layer framing that pcap link types put in front of IP. No I/O here.

Supported link types (tcpdump.org "LINK-LAYER HEADER TYPES"):

* ``NULL`` (0): BSD loopback — a 4-byte address family in the *capturing host's* byte
  order. The seed's frames carry ``02 00 00 00`` (AF_INET, little-endian). Readers must
  accept either order: scapy has written it big-endian on little-endian hosts.
* ``ETHERNET`` (1): 14 bytes, what Linux ``lo`` captures carry (all-zero MAC addresses);
  802.1Q tags and PPPoE sessions (:mod:`tcplab.packet.pppoe`) inside are walked, so the
  IP packet in a DSL capture is reached.
* ``RAW`` (101, also DLT 12 and 14 on some platforms): no header, IP version nibble decides.
* ``LOOP`` (108): OpenBSD loopback, the family always big-endian.
* ``LINUX_SLL`` (113) and ``LINUX_SLL2`` (276): Linux "cooked" captures (``-i any``).
* :data:`~tcplab.pcap.records.LINKTYPE_PCAPNG_CUSTOM` (-1, not a real link type): a pcapng
  custom block that the reader hands out as a frame, as tshark does; it carries no IP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet import pppoe
from tcplab.packet.errors import ParseError
from tcplab.pcap.records import LINKTYPE_PCAPNG_CUSTOM

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW as some platforms number it inside pcap files (OpenBSD 14, others 12).
LINKTYPE_RAW_ALIASES = (12, 14)

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    LINKTYPE_RAW: "RAW",
    12: "RAW",
    14: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
    LINKTYPE_PCAPNG_CUSTOM: "PCAPNG",
}

# Names users type on the command line (``--linktype``).
LINKTYPE_BY_NAME = {
    "null": LINKTYPE_NULL,
    "loopback": LINKTYPE_NULL,
    "ethernet": LINKTYPE_ETHERNET,
    "raw": LINKTYPE_RAW,
    "sll": LINKTYPE_LINUX_SLL,
    "sll2": LINKTYPE_LINUX_SLL2,
}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_IPV6 = 0x86DD

AF_INET = 2
AF_INET6_VALUES = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

ETHERNET_HEADER = struct.Struct("!6s6sH")
SLL_HEADER = struct.Struct("!HHH8sH")
SLL2_HEADER = struct.Struct("!HHIHBB8s")
ZERO_MAC = b"\x00" * 6

_NULL_IPV4 = struct.pack("<I", AF_INET)
_NULL_IPV6 = struct.pack("<I", 30)


@dataclass(slots=True)
class LinkHeader:
    """What the link header says: its length, the network protocol it carries, and details."""

    linktype: int
    header_len: int
    #: "IPv4", "IPv6", or None when the frame carries something else (ARP, unknown family).
    network: str | None
    #: Field name → value, in wire order, for the packet-detail view.
    fields: dict[str, object]

    @property
    def name(self) -> str:
        return LINKTYPE_NAMES.get(self.linktype, f"LINKTYPE {self.linktype}")


def frame(linktype: int, packet: bytes, *, version: int = 4) -> bytes:
    """Prepend the link header for ``linktype`` to an IP ``packet``.

    NULL frames use little-endian family values, as captured on the seed's host; Ethernet
    frames use all-zero MACs, as Linux ``lo`` does; SLL/SLL2 describe an outgoing packet
    on a loopback device (ARPHRD_LOOPBACK 772).
    """
    if linktype == LINKTYPE_NULL:
        return (_NULL_IPV4 if version == 4 else _NULL_IPV6) + packet
    ethertype = ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6
    if linktype == LINKTYPE_ETHERNET:
        return ETHERNET_HEADER.pack(ZERO_MAC, ZERO_MAC, ethertype) + packet
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return packet
    if linktype == LINKTYPE_LOOP:
        return struct.pack("!I", AF_INET if version == 4 else 24) + packet
    if linktype == LINKTYPE_LINUX_SLL:
        return SLL_HEADER.pack(4, 772, 6, ZERO_MAC + b"\x00\x00", ethertype) + packet
    if linktype == LINKTYPE_LINUX_SLL2:
        return SLL2_HEADER.pack(ethertype, 0, 1, 772, 4, 6, ZERO_MAC + b"\x00\x00") + packet
    raise ValueError(f"cannot build frames for link type {linktype}")


def header_for(linktype: int, version: int = 4) -> bytes:
    """The constant link header that :func:`frame` would prepend (for fast builders)."""
    return frame(linktype, b"", version=version)


def _family_network(family: int) -> str | None:
    if family == AF_INET:
        return "IPv4"
    if family in AF_INET6_VALUES:
        return "IPv6"
    return None


def _ethertype_network(ethertype: int) -> str | None:
    if ethertype == ETHERTYPE_IPV4:
        return "IPv4"
    if ethertype == ETHERTYPE_IPV6:
        return "IPv6"
    return None


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse(linktype: int, buf: bytes | memoryview) -> LinkHeader:
    """Parse the link header of a captured frame; errors name the field and offset."""
    n = len(buf)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            raise ParseError("Null/Loopback", "family", 0, f"needs 4 bytes, only {n} captured")
        if linktype == LINKTYPE_LOOP:
            family = struct.unpack_from("!I", buf, 0)[0]
        else:
            le = struct.unpack_from("<I", buf, 0)[0]
            # A family is a small number; if the little-endian reading is huge, the writer
            # used big-endian (Wireshark accepts both for this reason).
            family = le if le <= 0xFFFF else struct.unpack_from("!I", buf, 0)[0]
        return LinkHeader(linktype, 4, _family_network(family), {"Family": family})
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            raise ParseError("Ethernet", "header", 0, f"needs 14 bytes, only {n} captured")
        dst, src, ethertype = ETHERNET_HEADER.unpack_from(buf, 0)
        hlen = 14
        fields: dict[str, object] = {"Destination": _mac(dst), "Source": _mac(src)}
        while ethertype == ETHERTYPE_VLAN:
            if n < hlen + 4:
                raise ParseError("Ethernet", "802.1Q tag", hlen, "truncated")
            tci, ethertype = struct.unpack_from("!HH", buf, hlen)
            fields["VLAN"] = tci & 0x0FFF
            hlen += 4
        fields["Type"] = ethertype
        if ethertype == pppoe.ETHERTYPE_SESSION:
            session = pppoe.parse(buf, hlen)
            fields["PPPoE Session ID"] = session.session_id
            fields["PPP Protocol"] = session.ppp_protocol
            return LinkHeader(linktype, hlen + session.header_len, session.network, fields)
        return LinkHeader(linktype, hlen, _ethertype_network(ethertype), fields)
    if linktype in (LINKTYPE_RAW, *LINKTYPE_RAW_ALIASES, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if n < 1:
            raise ParseError("Raw IP", "version", 0, "empty frame")
        version = buf[0] >> 4
        network = "IPv4" if version == 4 else "IPv6" if version == 6 else None
        return LinkHeader(linktype, 0, network, {})
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            raise ParseError("Linux cooked (SLL)", "header", 0, f"needs 16 bytes, only {n} captured")
        ptype, hatype, alen, address, proto = SLL_HEADER.unpack_from(buf, 0)
        fields = {"Packet type": ptype, "Link-layer address type": hatype,
                  "Source": _mac(address[: min(alen, 8)]), "Protocol": proto}
        return LinkHeader(linktype, 16, _ethertype_network(proto), fields)
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            raise ParseError("Linux cooked (SLL2)", "header", 0, f"needs 20 bytes, only {n} captured")
        proto, _res, ifindex, hatype, ptype, alen, address = SLL2_HEADER.unpack_from(buf, 0)
        fields = {"Protocol": proto, "Interface index": ifindex, "Link-layer address type": hatype,
                  "Packet type": ptype, "Source": _mac(address[: min(alen, 8)])}
        return LinkHeader(linktype, 20, _ethertype_network(proto), fields)
    if linktype == LINKTYPE_PCAPNG_CUSTOM:
        return LinkHeader(linktype, 0, None, {"Custom Block": len(buf)})
    raise ParseError("Link", "link type", 0, f"link type {linktype} is not supported")
