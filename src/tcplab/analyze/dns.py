"""DNS messages as tshark 4.0 shows them: the Info column and the ``dns.*`` fields.

What this module is for: one DNS message (RFC 1035 §4.1) → the words Wireshark puts in
the Info column (``Standard query 0x1a2b A example.com``, ``Standard query response
0x1a2b No such name A nope.example SOA ns.example``) and the display-filter fields
(``dns.id``, ``dns.flags.response``, ``dns.qry.name``, ``dns.a`` …). Over UDP a datagram
is one message (:func:`udp_message`); over TCP the framing (a 2-byte length before each
message, RFC 1035 §4.2.2) lives in :mod:`~tcplab.analyze.tls_dns`, which hands each
whole message here.

Wireshark's Info lists every question and then every record of the answer, authority and
additional sections (``… A 93.184.216.34 NS ns1.example.com A 5.6.7.8 OPT``), with the
record's data for the types it summarises (addresses, names, MX, SRV, SOA) and only the
type for the others (TXT, CAA, OPT…). A message that runs out of bytes keeps the words
made so far and gains ``[Malformed Packet]``, as tshark's does.

What it must never do: I/O, or keep state between messages.
"""

from __future__ import annotations

import socket
import struct

from tcplab.packet.dns import read_name
from tcplab.packet.errors import ParseError

#: Ports Wireshark 4.0 hands to its DNS dissector: UDP 53; TCP 53 and 5353 (UDP 5353 is mDNS).
UDP_PORTS = frozenset({53})
TCP_PORTS = frozenset({53, 5353})

_RR_FIXED = struct.Struct("!HHIH")
_QUESTION_FIXED = struct.Struct("!HH")

_OPCODES = {0: "Standard query", 1: "Inverse query", 2: "Server status request",
            4: "Zone change notification", 5: "Dynamic update"}
_RCODES = {1: "Format error", 2: "Server failure", 3: "No such name", 4: "Not implemented",
           5: "Refused", 6: "Name exists", 7: "RRset exists", 8: "RRset does not exist",
           9: "Not authoritative", 10: "Name out of zone", 11: "DSO-Type not implemented",
           16: "Bad OPT Version or TSIG Signature Failure", 17: "Key not recognized",
           18: "Signature out of time window", 19: "Bad TKEY mode", 20: "Duplicate key name",
           21: "Algorithm not supported", 22: "Bad truncation", 23: "Bad/missing server cookie"}

#: Type mnemonics as tshark 4.0 prints them (checked type by type; it names 253 MAILA and
#: 254 MAILB, the reverse of RFC 1035, and leaves SMIMEA (53) unnamed).
TYPE_NAMES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG",
    25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID",
    32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6",
    39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM",
    52: "TLSA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64",
    107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    253: "MAILA", 254: "MAILB", 255: "ANY", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV",
}

_OPCODE_UPDATE = 5
_QUERY_COUNTS = ("dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr")
_UPDATE_COUNTS = ("dns.count.zones", "dns.count.prerequisites",
                  "dns.count.updates", "dns.count.add_rr")

_A, _NS, _CNAME, _SOA, _PTR, _MX, _TXT, _AAAA, _SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33


def type_name(rtype: int) -> str:
    """A record type as tshark names it (``Unknown (1000)`` for one it has no name for)."""
    return TYPE_NAMES.get(rtype) or f"Unknown ({rtype})"


def _shown_name(name: str) -> str:
    return name or "<Root>"


class _Fields:
    """Field name → values in message order; several values become a list, as tshark repeats them."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, list] = {}

    def add(self, name: str, value: object) -> None:
        bucket = self.values.get(name)
        if bucket is None:
            self.values[name] = [value]
        else:
            bucket.append(value)


def _rdata_text(buf: bytes, rtype: int, start: int, rdlen: int, f: _Fields) -> str:
    """The record's data as Info shows it ('' for types tshark lists by type only); adds its fields."""
    end = start + rdlen
    if rtype == _A and rdlen == 4:
        text = socket.inet_ntoa(buf[start:end])
        f.add("dns.a", text)
        return text
    if rtype == _AAAA and rdlen == 16:
        text = socket.inet_ntop(socket.AF_INET6, buf[start:end])
        f.add("dns.aaaa", text)
        return text
    if rtype in (_CNAME, _NS, _PTR):
        name = _shown_name(read_name(buf, start)[0])
        f.add({_CNAME: "dns.cname", _NS: "dns.ns", _PTR: "dns.ptr.domain_name"}[rtype], name)
        return name
    if rtype == _MX and rdlen >= 3:
        pref = int.from_bytes(buf[start : start + 2], "big")
        name = _shown_name(read_name(buf, start + 2)[0])
        f.add("dns.mx.preference", pref)
        f.add("dns.mx.mail_exchange", name)
        return f"{pref} {name}"
    if rtype == _SRV and rdlen >= 7:
        prio, weight, port = struct.unpack_from("!HHH", buf, start)
        target = _shown_name(read_name(buf, start + 6)[0])
        f.add("dns.srv.priority", prio)
        f.add("dns.srv.weight", weight)
        f.add("dns.srv.port", port)
        f.add("dns.srv.target", target)
        return f"{prio} {weight} {port} {target}"
    if rtype == _SOA:
        mname, pos = read_name(buf, start)
        rname, _ = read_name(buf, pos)
        f.add("dns.soa.mname", _shown_name(mname))
        f.add("dns.soa.rname", _shown_name(rname))
        return _shown_name(mname)
    if rtype == _TXT:
        pos = start
        while pos < end:
            n = buf[pos]
            f.add("dns.txt", buf[pos + 1 : min(pos + 1 + n, end)].decode("utf-8", "replace"))
            pos += 1 + n
    return ""


def _need(buf: bytes, pos: int, size: int, what: str) -> None:
    if pos + size > len(buf):
        raise ParseError("DNS", what, pos, f"needs {size} bytes, only {max(len(buf) - pos, 0)} left")


def dissect_message(buf: bytes) -> tuple[str, dict[str, list], str | None]:
    """One DNS message → (Info text, fields as name → list of values, malformed reason or None).

    The Info text is tshark's, ``[Malformed Packet]`` appended when the message is cut
    or a name points outside it; the fields are those read before the damage.
    """
    f = _Fields()
    words: list[str] = []
    try:
        _need(buf, 0, 4, "header")
        txid, flags = struct.unpack_from("!HH", buf, 0)
        response = flags >> 15
        opcode = (flags >> 11) & 0xF
        rcode = flags & 0xF
        kind = _OPCODES.get(opcode) or f"Unknown operation ({opcode})"
        words.append(f"{kind}{' response' if response else ''} 0x{txid:04x}")
        if response and rcode:
            words.append(_RCODES.get(rcode) or f"Unknown error ({rcode})")
        f.add("dns.id", txid)
        f.add("dns.flags", flags)
        f.add("dns.flags.response", response)
        f.add("dns.flags.opcode", opcode)
        if response:
            f.add("dns.flags.authoritative", (flags >> 10) & 1)
        f.add("dns.flags.truncated", (flags >> 9) & 1)
        f.add("dns.flags.recdesired", (flags >> 8) & 1)
        if response:
            f.add("dns.flags.recavail", (flags >> 7) & 1)
        f.add("dns.flags.z", (flags >> 6) & 1)
        if response:
            f.add("dns.flags.authenticated", (flags >> 5) & 1)
        f.add("dns.flags.checkdisable", (flags >> 4) & 1)
        if response:
            f.add("dns.flags.rcode", rcode)
        # An UPDATE (RFC 2136 §2.2) names its sections zones, prerequisites and updates.
        names = _UPDATE_COUNTS if opcode == _OPCODE_UPDATE else _QUERY_COUNTS
        counts = []
        for i, name in enumerate(names):  # one at a time: tshark shows those it could read
            _need(buf, 4 + 2 * i, 2, "header counts")
            counts.append(int.from_bytes(buf[4 + 2 * i : 6 + 2 * i], "big"))
            f.add(name, counts[-1])
        qd, an, ns, ar = counts
        pos = 12
        for _ in range(qd):
            name, pos = read_name(buf, pos)
            _need(buf, pos, 4, "question type and class")
            qtype, qclass = _QUESTION_FIXED.unpack_from(buf, pos)
            pos += 4
            f.add("dns.qry.name", _shown_name(name))
            f.add("dns.qry.name.len", len(_shown_name(name)))
            f.add("dns.count.labels", name.count(".") + 1 if name else 0)
            f.add("dns.qry.type", qtype)
            f.add("dns.qry.class", qclass)
            words.append(f"{type_name(qtype)} {_shown_name(name)}")
        for _ in range(an + ns + ar):
            name, pos = read_name(buf, pos)
            _need(buf, pos, 10, "resource record header")
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(buf, pos)
            pos += 10
            _need(buf, pos, rdlen, "resource record data")
            srv = name.split(".", 2) if rtype == _SRV else ()
            if len(srv) == 3:  # _service._proto.name: tshark splits the owner name (RFC 2782)
                f.add("dns.srv.service", srv[0])
                f.add("dns.srv.proto", srv[1])
                f.add("dns.srv.name", srv[2])
            else:
                f.add("dns.resp.name", _shown_name(name))
            f.add("dns.resp.type", rtype)
            if rtype != 41:  # OPT (RFC 6891) reuses class and TTL for the UDP size and flags
                f.add("dns.resp.class", rclass)
                f.add("dns.resp.ttl", ttl)
            f.add("dns.resp.len", rdlen)
            data = _rdata_text(buf, rtype, pos, rdlen, f)
            words.append(f"{type_name(rtype)} {data}" if data else type_name(rtype))
            pos += rdlen
    except ParseError as err:
        return " ".join(words) + "[Malformed Packet]", f.values, str(err)
    return " ".join(words), f.values, None


def merge(into: dict, values: dict[str, list]) -> None:
    """Add one message's fields to a packet's dict (a field seen once is a value, else a list)."""
    for name, vals in values.items():
        old = into.get(name)
        if old is None:
            into[name] = vals[0] if len(vals) == 1 else list(vals)
        else:
            into[name] = (old if isinstance(old, list) else [old]) + vals


def udp_message(payload: bytes, d: dict, cut: bool = False) -> None:
    """A DNS datagram into ``d``: Protocol, Info, ``dns.*`` fields and the protocol chain.

    ``cut``: the capture's snapshot length cut the datagram. Like tshark, the records
    captured whole are still shown, and running out of bytes is "Packet size limited
    during capture", not a malformed message.
    """
    info, values, malformed = dissect_message(payload)
    if malformed and cut:
        info = info.removesuffix("[Malformed Packet]") + "[Packet size limited during capture]"
        d["_ws.short"] = True
        malformed = None
    merge(d, values)
    d["frame.protocols"] += ":dns"
    d["_ws.col.Protocol"] = "DNS"
    d["_ws.col.Info"] = info
    if malformed:
        d["_ws.malformed"] = malformed
        d["_ws.expert"] = "Malformed Packet"
