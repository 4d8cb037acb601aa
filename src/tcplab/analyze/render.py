"""The one home for analyzer output: packet-list lines, detail trees, hex dumps, JSON Lines.

Every view of a packet is drawn from its field dictionary (Wireshark display-filter names,
see :mod:`tcplab.analyze`), so ``tcplab analyze``, live capture and the demo print the
same way. For a live capture, feed each record to an incremental analyzer and print
one line per packet::

    from tcplab.analyze import Analyzer
    from tcplab.analyze import render

    analyzer = Analyzer(linktype)
    print(render.LIST_HEADER)
    for record in records:
        print(render.packet_line(analyzer.feed(record)))

What this module must never do: decide anything about the protocol (that is
:mod:`~tcplab.analyze.dissect` and :mod:`~tcplab.analyze.tcp_analysis`) or print peer
bytes unescaped — :func:`safe_text` strips terminal control sequences first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tcplab.packet import checksum as _checksum
from tcplab.packet import link as _link
from tcplab.packet import tcp as _tcp
from tcplab.pcap.records import arrival_time_text

# C0 controls (ESC starts terminal escape sequences), DEL, C1 controls (0x9b is a one-byte
# CSI on some terminals) and Unicode bidirectional overrides, which can disguise text.
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_UNSAFE.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_UNSAFE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                            0x200E, 0x200F, 0x061C)})


def add_field(d: dict, name: str, value: object) -> None:
    """Add a value to a field, making it a list when the frame repeats the field (a second
    TLS record, the IP header quoted in an ICMP error): tshark's repeated fields, which
    ``--json`` writes as lists and filters match value by value."""
    old = d.get(name)
    if old is None:
        d[name] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        d[name] = [old, value]


def safe_text(text: str) -> str:
    """``text`` with every control character shown as an escape, safe to print on a terminal."""
    # Every character escaped is non-printable (Cc or Cf), and most text has none: the
    # check costs a tenth of the translation, which runs for every HTTP line listed.
    if text.isprintable():
        return text
    return text.translate(_UNSAFE)


LIST_HEADER = f"{'No.':>6} {'Time':>11} {'Source':>15}   {'Destination':<15} {'Protocol':<8} {'Length':>6} Info"


def packet_line(d: dict) -> str:
    """One packet-list line in Wireshark's column order: No. Time Source Destination Protocol Length Info."""
    # %-formatting: one C call for the whole line, about twice as fast as an f-string with
    # per-field format specs, and this runs for every packet of the list view.
    if "_untimed" in d:  # a block with no time of its own: tshark leaves the column empty
        return "%6d %11s %15s → %-15s %-8s %6d %s" % (  # noqa: UP031
            d["frame.number"], "", d["_ws.col.Source"], d["_ws.col.Destination"],
            d["_ws.col.Protocol"], d["frame.len"], d["_ws.col.Info"])
    return "%6d %11.6f %15s → %-15s %-8s %6d %s" % (  # noqa: UP031 - measured faster
        d["frame.number"], d["frame.time_relative"], d["_ws.col.Source"],
        d["_ws.col.Destination"], d["_ws.col.Protocol"], d["frame.len"], d["_ws.col.Info"])


def hexdump(data: bytes) -> str:
    """Wireshark's byte pane: ``0000  02 00 00 00 45 00 …   ....E...`` (as ``tshark -x`` prints it)."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:04x}  {hexpart:<47}   {text}")
    return "\n".join(lines)


def _payload_hex(raw: bytes) -> str:
    """tshark's colon-separated byte notation (``tcp.payload`` in ``-T fields``)."""
    return raw.hex(":")


def _make_encoder(obj: object) -> str:
    """Build the JSON encoder on first use: :mod:`json` is imported only by views that print it."""
    global _encode, _quote
    import json
    from json.encoder import encode_basestring

    _encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    _quote = encode_basestring  # the encoder's own string escaping (ensure_ascii=False)
    return _encode(obj)


_encode: Callable[[object], str] = _make_encoder
_quote: Callable[[str], str] = _make_encoder
_LAYOUTS_MAX = 512
# (key layout, value types, payload) → the object as one bytes %-format with each shown
# key already encoded, the getter of the shown positions' values, and the positions among
# those whose values need a word of their own (see _plan).
_Plan = tuple[bytes, Callable[[list], tuple], tuple[int, ...], tuple[int, ...],
              tuple[int, ...], tuple[int, ...], tuple[int, ...]]
_plans: dict[tuple[tuple, tuple, bool], _Plan | None] = {}


def _hidden(key: str, untimed: bool) -> bool:
    """A key --json leaves out: private (``_raw``, ``_linktype``…, not ``_ws.*``), and a
    frame without a time of its own has no time fields in tshark's JSON either."""
    return ((key[0] == "_" and not key.startswith("_ws."))
            or (untimed and key in ("frame.time_epoch", "frame.time_relative")))


def _plan(layout: tuple, types: tuple[type, ...], payload: bool) -> _Plan | None:
    """How to write every dict with these keys and value types (None: use the encoder).

    Written as ``json`` writes them: ``"key":value`` joined by commas, ints as ``%d``
    (``int.__repr__``), floats as ``%a`` (``float.__repr__``), strings escaped by the
    encoder's own function, True/False/None as JSON words, anything else by the encoder.
    The format is bytes (UTF-8): bytes formatting copies the text between fields with one
    ``memcpy`` and writes ints without a temporary ``str``, where ``str`` formatting
    scans it a character at a time (a JSON object is mostly its keys). Hidden keys are
    not in it: ``pick`` takes the shown values out of the dict's in one C call, and
    ``tcp.payload`` is hidden or, with ``payload``, written in hex (``hexes``).
    """
    from operator import itemgetter

    untimed = "_untimed" in layout
    parts: list[str] = []
    shown: list[int] = []
    strs: list[int] = []
    bools: list[int] = []
    floats: list[int] = []
    others: list[int] = []
    hexes: list[int] = []
    for i, (key, kind) in enumerate(zip(layout, types, strict=True)):
        if type(key) is not str:
            return None  # json's rules for other keys (numbers, True) are left to it
        payload_bytes = key == "tcp.payload" and kind in _BYTES
        at = len(shown)  # the value's place among the shown ones
        if payload_bytes and payload:
            slot = "%s"
            hexes.append(at)
        elif payload_bytes or _hidden(key, untimed):
            continue
        elif kind in _BYTES:
            return None  # bytes under another name (tls.app_data): the general path
        elif kind is int:
            slot = "%d"
        elif kind is float:
            slot = "%a"  # ascii(repr()): a float's repr is ASCII
            floats.append(at)
        else:
            slot = "%s"
            (strs if kind is str else bools if kind is bool else others).append(at)
        parts.append(("," if shown else "") + _quote(key).replace("%", "%%") + ":" + slot)
        shown.append(i)
    if not shown:
        pick: Callable[[list], tuple] = lambda values: ()  # noqa: E731
    elif len(shown) == 1:
        one = itemgetter(shown[0])
        pick = lambda values: (one(values),)  # noqa: E731
    else:
        pick = itemgetter(*shown)
    return (("{" + "".join(parts) + "}").encode(), pick, tuple(strs), tuple(bools),
            tuple(floats), tuple(others), tuple(hexes))


def json_line(d: dict, *, payload: bool = False) -> str:
    """One JSON object for ``--json``: private keys dropped, bytes only when asked (hex)."""
    return json_bytes(d, payload=payload).decode()


def json_bytes(d: dict, *, payload: bool = False) -> bytes:
    """:func:`json_line` as UTF-8, which is what ``--json`` writes.

    This runs for every packet of --json, and a dict holds ~60 fields. The C encoder
    escapes and copies every key of every packet; here packets of one kind share one key
    layout (a capture has a few dozen), whose keys are encoded once and whose hidden keys
    are found once, and only the string values are escaped per packet — the same text
    (tests/analyze/test_json_line.py compares the two on every golden capture).
    """
    if _quote is _make_encoder:
        _make_encoder(None)
    values = list(d.values())
    types = tuple(map(type, values))
    key = (tuple(d), types, payload)
    plan = _plans.get(key, False)
    if plan is False:
        if len(_plans) >= _LAYOUTS_MAX:
            _plans.clear()
        plan = _plans[key] = _plan(key[0], types, payload)
    if plan is None:
        return _general(d, payload).encode()
    fmt, pick, strs, bools, floats, others, hexes = plan
    args = list(pick(values))
    for i in floats:
        v = args[i]
        if v - v:  # NaN or an infinity: the encoder's words for them
            return _general(d, payload).encode()
    quote = _quote
    for i in strs:
        args[i] = quote(args[i]).encode()
    for i in bools:
        args[i] = b"true" if args[i] else b"false"
    for i in hexes:
        args[i] = quote(_payload_hex(bytes(args[i]))).encode()
    try:
        for i in others:
            args[i] = _encode(args[i]).encode()  # None, lists (SACK edges), subclasses…
    except TypeError:  # bytes inside a list (one tls.app_data per record)
        return _general(d, payload).encode()
    return fmt % tuple(args)


def _general(d: dict, payload: bool) -> str:
    """json_line by the encoder itself, for what its plan does not cover."""
    untimed = "_untimed" in d
    return _encode({k: _hex_values(v) for k, v in d.items()
                    if not _hidden(k, untimed) and (payload or not _is_bytes(v))})


_BYTES = (bytes, bytearray, memoryview)


def _is_bytes(value: object) -> bool:
    """A bytes field, or a repeated one (one ``tls.app_data`` per record): shown only with --payload."""
    if isinstance(value, list):
        return bool(value) and isinstance(value[0], _BYTES)
    return isinstance(value, _BYTES)


def _hex_values(value: object) -> object:
    if isinstance(value, list):
        return [_payload_hex(bytes(v)) if isinstance(v, _BYTES) else v for v in value]
    return _payload_hex(bytes(value)) if isinstance(value, _BYTES) else value


def json_lines(packets: Iterable[dict], *, payload: bool = False) -> Iterable[str]:
    for d in packets:
        yield json_line(d, payload=payload)


# ----------------------------------------------------------------------------- detail tree

_IND = "    "


def _flag_line(bits: int, width: int, mask: int, label: str, value: bool) -> str:
    """A Wireshark bit-field line, e.g. ``.... ...1 .... = Acknowledgment: Set``."""
    chars = []
    for i in range(width - 1, -1, -1):
        bit = 1 << i
        chars.append(("1" if bits & bit else "0") if mask & bit else ".")
        if i and i % 4 == 0:
            chars.append(" ")
    return f"{''.join(chars)} = {label}: {'Set' if value else 'Not set'}"


def _arrival_time(epoch: float) -> str:
    """The detail pane's arrival time; a capture may hold any 64-bit time stamp (year 401704
    included), which :mod:`datetime` cannot represent, so those fall back to calendar
    arithmetic on integers."""
    import datetime as _dt  # only the detail view needs it (start-up time)

    try:
        return f"{_dt.datetime.fromtimestamp(epoch, _dt.UTC):%b %d, %Y %H:%M:%S.%f} UTC"
    except (ValueError, OverflowError, OSError):
        return arrival_time_text(int(epoch * 1e9))


def _frame_section(d: dict) -> list[str]:
    n, cap = d["frame.len"], d["frame.cap_len"]
    iface = d.get("frame.interface_name")
    head = (f"Frame {d['frame.number']}: {n} bytes on wire ({n * 8} bits), {cap} bytes captured "
            f"({cap * 8} bits)" + (f" on interface {iface}" if iface else ""))
    lines = [head]
    if "_untimed" not in d:  # a Simple Packet Block or custom block has no time (tshark -V)
        lines += [f"{_IND}Arrival Time: {_arrival_time(d['frame.time_epoch'])}",
                  f"{_IND}Epoch Time: {d['frame.time_epoch']:.6f} seconds",
                  f"{_IND}[Time since first frame: {d['frame.time_relative']:.6f} seconds]"]
    lines += [f"{_IND}Frame Number: {d['frame.number']}",
              f"{_IND}Frame Length: {n} bytes ({n * 8} bits)",
              f"{_IND}Capture Length: {cap} bytes ({cap * 8} bits)",
              f"{_IND}[Protocols in frame: {d.get('frame.protocols', '')}]"]
    if "frame.comment" in d:
        lines.append(f"{_IND}Comment: {safe_text(str(d['frame.comment']))}")
    return lines


def _link_section(d: dict, data: bytes) -> list[str]:
    linktype = d.get("_linktype")
    if linktype is None:
        return []
    try:
        hdr = _link.parse(linktype, data)
    except Exception as exc:  # noqa: BLE001 - already reported as malformed by the dissector
        return [f"Link layer ({_link.LINKTYPE_NAMES.get(linktype, linktype)}): {exc}"]
    if linktype in (_link.LINKTYPE_NULL, _link.LINKTYPE_LOOP):
        fam = hdr.fields["Family"]
        name = {2: "IP"}.get(fam, "IPv6" if fam in _link.AF_INET6_VALUES else "unknown")
        return ["Null/Loopback", f"{_IND}Family: {name} ({fam})"]
    if linktype == _link.LINKTYPE_ETHERNET:
        f = hdr.fields
        return [f"Ethernet II, Src: {f['Source']}, Dst: {f['Destination']}",
                f"{_IND}Destination: {f['Destination']}", f"{_IND}Source: {f['Source']}",
                f"{_IND}Type: {_ETHERTYPE_NAMES.get(f['Type'], hdr.network or 'unknown')} (0x{f['Type']:04x})"]
    if hdr.header_len == 0:
        return ["Raw packet data", f"{_IND}No link information available"]
    title = "Linux cooked capture v2" if linktype == _link.LINKTYPE_LINUX_SLL2 else "Linux cooked capture v1"
    return [title] + [f"{_IND}{k}: {v}" for k, v in hdr.fields.items()]


#: tshark's names of the EtherTypes tcplab dissects (the detail tree's "Type:" line names the
#: Ethernet header's own type: a PPPoE or VLAN frame is not "IPv4" there, whatever it carries).
_ETHERTYPE_NAMES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q Virtual LAN",
                    0x8863: "PPPoE Discovery", 0x8864: "PPPoE Session"}


def _ipv4_section(d: dict, data: bytes) -> list[str]:
    from tcplab.analyze.dissect import protocol_name

    if "ip.src" not in d:
        return []
    hl = d["ip.hdr_len"]
    lines = [f"Internet Protocol Version 4, Src: {d['ip.src']}, Dst: {d['ip.dst']}",
             f"{_IND}0100 .... = Version: 4",
             f"{_IND}.... {hl // 4:04b} = Header Length: {hl} bytes ({hl // 4})",
             f"{_IND}Differentiated Services Field: 0x{d['ip.dsfield']:02x} "
             f"(DSCP: {d['ip.dsfield'] >> 2}, ECN: {d['ip.dsfield'] & 3})",
             f"{_IND}Total Length: {d['ip.len']}",
             f"{_IND}Identification: 0x{d['ip.id']:04x} ({d['ip.id']})",
             f"{_IND}Flags: 0x{d['ip.flags']:x}" + (" (Don't fragment)" if d["ip.flags"] & 2 else "")
             + (" (More fragments)" if d["ip.flags"] & 1 else ""),
             f"{_IND}Fragment Offset: {d['ip.frag_offset'] * 8}",  # the field is 8-byte units
             f"{_IND}Time to Live: {d['ip.ttl']}",
             f"{_IND}Protocol: {protocol_name(d['ip.proto'])} ({d['ip.proto']})"]
    status = d.get("ip.checksum.status")
    off = d.get("_ip_offset")
    if status is None or off is None:
        lines.append(f"{_IND}Header Checksum: 0x{d['ip.checksum']:04x} [validation disabled]")
    else:
        verdict = _checksum.verify_ipv4_header(data[off : off + hl])
        lines.append(f"{_IND}Header Checksum: {verdict}")
        lines.append(f"{_IND}[Header checksum status: {status.capitalize()}]")
    lines += [f"{_IND}Source Address: {d['ip.src']}", f"{_IND}Destination Address: {d['ip.dst']}"]
    return lines


def _tcp_flags_lines(flags: int) -> list[str]:
    names = ((_tcp.NS, "Accurate ECN / Nonce"), (_tcp.CWR, "Congestion Window Reduced"),
             (_tcp.ECE, "ECN-Echo"), (_tcp.URG, "Urgent"), (_tcp.ACK, "Acknowledgment"),
             (_tcp.PSH, "Push"), (_tcp.RST, "Reset"), (_tcp.SYN, "Syn"), (_tcp.FIN, "Fin"))
    out = [f"{_IND}Flags: 0x{flags:03x} ({_tcp.flags_text(flags)})"]
    for bit, label in names:
        out.append(_IND * 2 + _flag_line(flags, 12, bit, label, bool(flags & bit)))
    out.append(f"{_IND * 2}[TCP Flags: {_tcp.flags_str(flags)}]")
    return out


def _tcp_section(d: dict, data: bytes) -> list[str]:
    from tcplab.analyze import tcp_analysis as ta

    if "tcp.srcport" not in d:
        return []
    if "tcp.hdr_len" not in d:  # the start of a TCP header quoted in an ICMP error
        return [f"Transmission Control Protocol, Src Port: {d['tcp.srcport']}, Dst Port: "
                f"{d['tcp.dstport']}" + (f", Seq: {d['tcp.seq']}" if "tcp.seq" in d else "")]
    seg = d.get("tcp.len", 0)
    head = (f"Transmission Control Protocol, Src Port: {d['tcp.srcport']}, Dst Port: "
            f"{d['tcp.dstport']}, Seq: {d.get('tcp.seq', d['tcp.seq_raw'])}")
    if d["tcp.flags.ack"]:
        head += f", Ack: {d.get('tcp.ack', d['tcp.ack_raw'])}"
    head += f", Len: {seg}"
    lines = [head, f"{_IND}Source Port: {d['tcp.srcport']}", f"{_IND}Destination Port: {d['tcp.dstport']}"]
    if "tcp.stream" in d:
        lines.append(f"{_IND}[Stream index: {d['tcp.stream']}]")
        comp = d.get("tcp.completeness", 0)
        lines.append(f"{_IND}[Conversation completeness: {ta.completeness_text(comp)}]")
    lines.append(f"{_IND}[TCP Segment Len: {seg}]")
    if "tcp.seq" in d:
        lines.append(f"{_IND}Sequence Number: {d['tcp.seq']}    (relative sequence number)")
    lines.append(f"{_IND}Sequence Number (raw): {d['tcp.seq_raw']}")
    if "tcp.nxtseq" in d:
        lines.append(f"{_IND}[Next Sequence Number: {d['tcp.nxtseq']}    (relative sequence number)]")
    if d["tcp.flags.ack"] and "tcp.ack" in d:
        lines.append(f"{_IND}Acknowledgment Number: {d['tcp.ack']}    (relative ack number)")
    lines.append(f"{_IND}Acknowledgment number (raw): {d['tcp.ack_raw']}")
    hl = d["tcp.hdr_len"]
    lines.append(f"{_IND}{hl // 4:04b} .... = Header Length: {hl} bytes ({hl // 4})")
    lines += _tcp_flags_lines(d["tcp.flags"])
    lines.append(f"{_IND}Window: {d['tcp.window_size_value']}")
    lines.append(f"{_IND}[Calculated window size: {d.get('tcp.window_size', d['tcp.window_size_value'])}]")
    factor = d.get("tcp.window_size_scalefactor")
    if factor is not None:
        word = {-1: " (unknown)", -2: " (no window scaling used)"}.get(factor, "")
        lines.append(f"{_IND}[Window size scaling factor: {factor}{word}]")
    status = d.get("tcp.checksum.status")
    if status is None:
        lines.append(f"{_IND}Checksum: 0x{d['tcp.checksum']:04x} [unverified]")
    elif status == "good":
        lines.append(f"{_IND}Checksum: 0x{d['tcp.checksum']:04x} [correct]")
        lines.append(f"{_IND}[Checksum Status: Good]")
    else:
        lines.append(f"{_IND}Checksum: 0x{d['tcp.checksum']:04x} incorrect, should be "
                     f"0x{d.get('tcp.checksum_calculated', 0):04x}")
        lines.append(f"{_IND}[Checksum Status: Bad] — normal for packets the capturing host sent "
                     "(checksum offload: the kernel leaves the sum to the NIC, and loopback never "
                     "computes it), so on 'lo' this is not an error")
    lines.append(f"{_IND}Urgent Pointer: {d['tcp.urgent_pointer']}")
    raw_opts = d.get("_tcp.options")
    if raw_opts:
        lines.append(f"{_IND}Options: ({len(raw_opts)} bytes), {d.get('_tcp.options_summary', '')}")
        # Offsets in the frame, as the dissector words a fault: one fault, one byte offset.
        base = d.get("_tcp.options_offset", 20)
        sack_base = d.get("_tcp.sack_base", 0)
        try:
            for opt in _tcp.parse_options(raw_opts, base):
                value = opt.value
                if opt.kind == _tcp.OPT_TIMESTAMP and isinstance(value, tuple):
                    text = f"TSval {value[0]}, TSecr {value[1]}"
                elif opt.kind == _tcp.OPT_SACK and isinstance(value, list):
                    edges = [((le - sack_base) & 0xFFFFFFFF, (re - sack_base) & 0xFFFFFFFF)
                             for le, re in value]
                    word = " (relative)" if sack_base else ""
                    lines.append(f"{_IND * 2}TCP Option - SACK "
                                 + " ".join(f"{le}-{re}" for le, re in edges))
                    for le, re in edges:
                        lines.append(f"{_IND * 3}left edge = {le}{word}")
                        lines.append(f"{_IND * 3}right edge = {re}{word}")
                    lines.append(f"{_IND * 3}[TCP SACK Count: {len(edges)}]")
                    continue
                elif opt.kind in (_tcp.OPT_EOL, _tcp.OPT_NOP, _tcp.OPT_SACK_PERMITTED):
                    text = ""
                elif opt.kind == _tcp.OPT_WSCALE and isinstance(value, int):
                    text = f"shift {value} (multiply by {1 << min(value, 14)})"
                else:
                    text = str(value)
                lines.append(f"{_IND * 2}TCP Option - {opt.name}{': ' + text if text else ''}")
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            known = (d.get("_ws.malformed") or "", d.get("_ws.expert.message") or "")
            if not any(str(exc) in text for text in known):  # said once, below
                lines.append(f"{_IND * 2}[Malformed options: {exc}]")
    tags = [(field, text) for bit, field, text in ta.TAGS if d.get("tcp.analysis." + field)]
    if tags:
        lines.append(f"{_IND}[SEQ/ACK analysis]")
        for _field, text in reversed(tags):
            if _field == "duplicate_ack":
                lines.append(f"{_IND * 2}[{text} #{d['tcp.analysis.duplicate_ack_num']} of frame "
                             f"{d['tcp.analysis.duplicate_ack_frame']}]")
            else:
                lines.append(f"{_IND * 2}[{text}]")
    payload = d.get("tcp.payload")
    if seg:
        lines.append(f"{_IND}TCP payload ({seg} byte{'s' if seg != 1 else ''})")
        if isinstance(payload, bytes | bytearray):
            lines.append(f"{_IND * 2}Text: {safe_text(bytes(payload[:512]).decode('utf-8', 'replace'))}")
    return lines


def _app_section(d: dict) -> list[str]:
    if "http.request.method" in d:
        lines = ["Hypertext Transfer Protocol",
                 f"{_IND}{d['http.request.method']} {d['http.request.uri']} {d['http.request.version']}",
                 f"{_IND * 2}Request Method: {d['http.request.method']}",
                 f"{_IND * 2}Request URI: {d['http.request.uri']}",
                 f"{_IND * 2}Request Version: {d['http.request.version']}"]
    elif "http.response.code" in d:
        lines = ["Hypertext Transfer Protocol",
                 f"{_IND}{d.get('http.response.version', '')} {d['http.response.code']} "
                 f"{d.get('http.response.phrase', '')}",
                 f"{_IND * 2}Status Code: {d['http.response.code']}",
                 f"{_IND * 2}Response Phrase: {d.get('http.response.phrase', '')}"]
    elif d.get("_ws.col.Protocol") == "CHAT":
        return ["tcplab chat line", f"{_IND}{d['_ws.col.Info']}"]
    else:
        return []
    if "http.host" in d:
        lines.append(f"{_IND}Host: {d['http.host']}")
    if "http.content_length" in d:
        lines.append(f"{_IND}Content-Length: {d['http.content_length']}")
    return lines


def _layers(d: dict, data: bytes) -> list[str]:
    """The sections from the network layer down; a tunnel's outer layers, then what it carries."""
    from tcplab.analyze import l2tp as _l2tp
    from tcplab.analyze import network as _network

    if "_tunnel.outer" in d:
        outer, inner = _l2tp.views(d)
        return _layers(outer, data) + _layers(inner, data)
    lines = []
    outer = _network.outer_fields(d)  # an ICMP error's fields hold two IP layers' values
    if "ipv6.src" in d:
        lines += [f"Internet Protocol Version 6, Src: {outer['ipv6.src']}, Dst: {outer['ipv6.dst']}"]
    lines += _ipv4_section(outer, data)
    lines += _network.detail_lines(d)
    if "udp.srcport" in d:
        lines += [f"User Datagram Protocol, Src Port: {d['udp.srcport']}, Dst Port: {d['udp.dstport']}",
                  f"{_IND}Length: {d['udp.length']}"]
    if "l2tp.flags" in d:
        lines += _l2tp.detail_lines(d)
    lines += _tcp_section(d, data)
    lines += _app_section(d)
    if "tls.record.version" in d or "dns.id" in d:
        from tcplab.analyze.tls_dns import detail_lines

        lines += detail_lines(d)
    return lines


def detail_tree(d: dict) -> str:
    """The packet-detail pane: Frame, link layer, IP, TCP/UDP, application, as Wireshark lays it out."""
    data = d.get("_raw", b"")
    lines = _frame_section(d) + _link_section(d, data) + _layers(d, data)
    from tcplab.analyze import expert as _expert

    # Wireshark's Expert Info items: the handshake, close and analysis findings, HTTP lines.
    lines += [info.line() for info in _expert.infos(d, faults=False)]
    for message in (d.get("_ws.expert.message") or "").split("; "):
        if message:  # faults the dissection went on after (tshark's expert infos)
            lines.append(f"[Expert Info (Warning/Protocol): {message}]")
    if "_ws.malformed" in d:
        lines.append(f"[Malformed Packet: {d['_ws.malformed']}]")
        lines.append(f"{_IND}[Expert Info (Error/Malformed): {d['_ws.malformed']}]")
    return "\n".join(lines)
