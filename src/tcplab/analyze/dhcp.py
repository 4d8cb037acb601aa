"""BOOTP/DHCP on UDP ports 67 and 68 (RFC 951, RFC 2131/2132): the Protocol and Info columns.

tshark's wording: a message whose options carry a DHCP Message Type (option 53) is
``DHCP`` with ``DHCP Discover - Transaction ID 0x3d1d`` (the type padded to eight
characters); any other is ``BOOTP`` with ``Boot Request from <client MAC> (<vendor>_xx:xx:xx)``
or ``Boot Reply``. tshark looks for option 53 before it names the message, so a message
whose options the snapshot length cut before the End option stays ``BOOTP``, with
``[Packet size limited during capture]`` appended.

The vendor name is Wireshark's own (its ``manuf`` file, when installed, read once); without
that file the client address is shown alone.
"""

from __future__ import annotations

from tcplab.analyze.wsdata import vendors

PORTS = frozenset({67, 68})
_MAGIC = b"\x63\x82\x53\x63"
_OPTIONS_AT = 240  # op..file (236 bytes) and the magic cookie (RFC 2131 §3)
_TYPES = {1: "Discover", 2: "Offer", 3: "Request", 4: "Decline", 5: "ACK", 6: "NAK", 7: "Release",
          8: "Inform", 9: "Force Renew", 10: "Lease query", 11: "Lease Unassigned",
          12: "Lease Unknown", 13: "Lease Active"}
CUT = "[Packet size limited during capture]"


def resolved_mac(mac: bytes) -> str:
    """``00:0b:82:01:fc:42 (Grandstr_01:fc:42)`` as tshark's address-with-resolution text."""
    text = ":".join(f"{b:02x}" for b in mac)
    name = vendors().get(mac[:3])
    return f"{text} ({name}_{text[9:]})" if name else text


def message(payload: bytes, d: dict, cut: bool) -> None:
    """A BOOTP/DHCP message (the UDP payload as captured) into ``d``'s columns and protocols."""
    d["frame.protocols"] += ":dhcp"
    if len(payload) < 1:
        return
    op = payload[0]
    if op == 1 and len(payload) >= 34 and payload[1:3] == b"\x01\x06":  # Ethernet, 6-byte address
        words = f"Boot Request from {resolved_mac(payload[28:34])}"
    else:
        words = "Boot Request" if op == 1 else "Boot Reply"
    kind, complete = _message_type(payload)
    if kind is not None and complete and len(payload) >= 8:
        xid = int.from_bytes(payload[4:8], "big")
        name = _TYPES.get(kind, f"Unknown Message Type (0x{kind:02x})")
        d["_ws.col.Protocol"] = "DHCP"
        d["_ws.col.Info"] = f"DHCP {name:<8} - Transaction ID 0x{xid:04x}"
        return
    d["_ws.col.Protocol"] = "BOOTP"
    d["_ws.col.Info"] = words + (CUT if cut and not complete else "")


def _message_type(payload: bytes) -> tuple[int | None, bool]:
    """(option 53's value or None, whether the options could be read to their end)."""
    if len(payload) < _OPTIONS_AT:
        return None, False
    if payload[236:240] != _MAGIC:
        return None, True
    pos, kind = _OPTIONS_AT, None
    while pos < len(payload):
        code = payload[pos]
        if code == 255:
            return kind, True
        if code == 0:
            pos += 1
            continue
        if pos + 2 > len(payload) or pos + 2 + payload[pos + 1] > len(payload):
            return kind, False
        if code == 53 and payload[pos + 1] >= 1:
            kind = payload[pos + 2]
        pos += 2 + payload[pos + 1]
    return kind, False
