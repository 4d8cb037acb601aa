"""Wireshark's expert information for one packet, derived from its fields on demand.

tshark attaches an expert item (severity, group, message) not only to faults but to every
finding its dissectors report — the "Chat" items of a TCP handshake, a FIN or an HTTP
request line, the "Note"/"Warning" items of TCP analysis, a capture comment. ``-Y
_ws.expert`` selects every frame with at least one, and ``_ws.expert.message`` /
``.severity`` / ``.group`` are their fields. The items follow from fields the dissectors
already write, so nothing here runs while a packet is dissected: :func:`infos` is called only
when a filter or the detail view asks (the plain list never pays for it).

Severities and groups are epan's numeric codes (``tshark -T fields`` writes them so); the
messages are packet-tcp.c's, packet-http.c's and the frame dissector's texts in tshark 4.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

COMMENT, CHAT, NOTE, WARNING, ERROR = 0x00100000, 0x00200000, 0x00400000, 0x00600000, 0x00800000
SEQUENCE, MALFORMED, PROTOCOL, COMMENTS = 0x02000000, 0x07000000, 0x09000000, 0x0B000000
SEVERITY_NAMES = {COMMENT: "Comment", CHAT: "Chat", NOTE: "Note", WARNING: "Warning", ERROR: "Error"}
GROUP_NAMES = {SEQUENCE: "Sequence", MALFORMED: "Malformed", PROTOCOL: "Protocol", COMMENTS: "Comment"}

#: The expert fields, each answered by :func:`values`.
FIELDS = ("_ws.expert", "_ws.expert.message", "_ws.expert.severity", "_ws.expert.group")

#: TCP analysis tags in packet-tcp.c's order of reporting, with their items.
_ANALYSIS = (
    ("tcp.analysis.retransmission", NOTE, "This frame is a (suspected) retransmission"),
    ("tcp.analysis.fast_retransmission", NOTE, "This frame is a (suspected) fast retransmission"),
    ("tcp.analysis.spurious_retransmission", NOTE, "This frame is a (suspected) spurious retransmission"),
    ("tcp.analysis.out_of_order", WARNING, "This frame is a (suspected) out-of-order segment"),
    ("tcp.analysis.lost_segment", WARNING, "Previous segment(s) not captured (common at capture start)"),
    ("tcp.analysis.ack_lost_segment", WARNING, "ACKed segment that wasn't captured (common at capture start)"),
    ("tcp.analysis.keep_alive", NOTE, "TCP keep-alive segment"),
    ("tcp.analysis.keep_alive_ack", NOTE, "ACK to a TCP keep-alive segment"),
    ("tcp.analysis.window_update", CHAT, "TCP window update"),
    ("tcp.analysis.window_full", WARNING, "TCP window specified by the receiver is now completely full"),
    ("tcp.analysis.zero_window", WARNING, "TCP Zero Window segment"),
    ("tcp.analysis.zero_window_probe", NOTE, "TCP Zero Window Probe"),
    ("tcp.analysis.zero_window_probe_ack", NOTE, "ACK to a TCP Zero Window Probe"),
    ("tcp.analysis.reused_ports", NOTE,
     "A new tcp session is started with the same ports as an earlier session in this trace"),
)


class Info(NamedTuple):
    """One expert item, as Wireshark's Expert Info lists it."""

    severity: int
    group: int
    message: str

    def line(self) -> str:
        """The detail pane's text: ``[Expert Info (Chat/Sequence): Connection finish (FIN)]``."""
        return (f"[Expert Info ({SEVERITY_NAMES[self.severity]}/{GROUP_NAMES[self.group]}): "
                f"{self.message.rstrip()}]")


def _listed(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _set(value: Any) -> bool:
    return value is not None and value is not False


def infos(d: Mapping[str, Any], *, faults: bool = True) -> list[Info]:
    """Every expert item tshark reports for the packet whose fields are ``d``, in its order.

    ``faults=False`` leaves out the damage items (``_ws.expert.message``, a malformed
    packet), which the detail view writes beside the fault itself.
    """
    out: list[Info] = []
    for comment in _listed(d.get("frame.comment")):
        out.append(Info(COMMENT, COMMENTS, str(comment)))
    flags = d.get("tcp.flags")
    if type(flags) is int:
        if flags & 0x02:
            if flags & 0x10:
                out.append(Info(CHAT, SEQUENCE, "Connection establish acknowledge (SYN+ACK): server port "
                                                f"{d.get('tcp.srcport')}"))
            else:
                out.append(Info(CHAT, SEQUENCE, "Connection establish request (SYN): server port "
                                                f"{d.get('tcp.dstport')}"))
        if flags & 0x01:
            out.append(Info(CHAT, SEQUENCE, "Connection finish (FIN)"))
        if flags & 0x04:
            out.append(Info(WARNING, SEQUENCE, "Connection reset (RST)"))
    if _set(d.get("tcp.options.sack.dsack")):
        out.append(Info(WARNING, SEQUENCE, "D-SACK Sequence"))
    for name, severity, message in _ANALYSIS:
        if _set(d.get(name)):
            out.append(Info(severity, SEQUENCE, message))
    if _set(d.get("tcp.analysis.duplicate_ack")):
        for n in _listed(d.get("tcp.analysis.duplicate_ack_num")) or [""]:
            out.append(Info(NOTE, SEQUENCE, f"Duplicate ACK (#{n})"))
    methods, uris = _listed(d.get("http.request.method")), _listed(d.get("http.request.uri"))
    versions = _listed(d.get("http.request.version"))
    for i, method in enumerate(methods):
        uri = uris[i] if i < len(uris) else ""
        version = versions[i] if i < len(versions) else "HTTP/1.1"
        out.append(Info(CHAT, SEQUENCE, f"{method} {uri} {version}\r\n"))
    codes, phrases = _listed(d.get("http.response.code")), _listed(d.get("http.response.phrase"))
    rversions = _listed(d.get("http.response.version"))
    for i, code in enumerate(codes):
        version = rversions[i] if i < len(rversions) else "HTTP/1.1"
        phrase = phrases[i] if i < len(phrases) else ""
        out.append(Info(CHAT, SEQUENCE, f"{version} {code} {phrase}\r\n"))
    # Known in the second pass only (tshark's one pass has not seen the rest of the file yet).
    if _set(d.get("icmp.resp_not_found")):
        out.append(Info(WARNING, SEQUENCE, "No response seen to ICMP request"))
    if _set(d.get("icmpv6.resp_not_found")):
        out.append(Info(WARNING, SEQUENCE, "No response seen to ICMPv6 request"))
    if not faults:
        return out
    for reason in str(d.get("_ws.expert.message") or "").split("; "):
        if reason:
            out.append(Info(ERROR, PROTOCOL, reason))
    if _set(d.get("_ws.malformed")):
        out.append(Info(ERROR, MALFORMED, f"Malformed Packet: {d.get('_ws.malformed')}"))
    return out


def values(d: Mapping[str, Any], name: str) -> tuple:
    """The values of expert field ``name`` (one of :data:`FIELDS`) in ``d``, one per item."""
    items = infos(d)
    if name == "_ws.expert.severity":
        return tuple(i.severity for i in items)
    if name == "_ws.expert.group":
        return tuple(i.group for i in items)
    return tuple(i.message for i in items)
