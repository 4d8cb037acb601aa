"""Display filters (``-Y``): a Wireshark display-filter subset compiled to a Python predicate.

The analyzer describes every packet by Wireshark field names (absent = field not present):
a :class:`~tcplab.analyze.record.Packet` record answers the names it holds from its own
attributes and renders the rest on demand, and a plain ``dict`` (tshark's fields, a test's)
works the same. :func:`compile_filter` turns an expression such as
``tcp.port == 80 && !tcp.analysis.retransmission`` into a predicate over that mapping, so
users can paste the filters they already type into Wireshark and get the same packets.

Semantics follow tshark 4.0 (checked by a differential test against it):

* a comparison with a field the packet lacks is false — for ``!=`` too
  (``tcp.port != 80`` does not match UDP packets), while ``!(tcp.port == 80)`` does;
* multi-value fields (``tcp.port``, ``ip.addr``…) match if *any* value matches, except
  ``!=`` which since Wireshark 3.6 means "all differ" (``!==``/``~=`` is "any differs",
  ``===`` "all equal");
* ``&&`` binds tighter than ``||``; ``!`` tighter than both;
* a bare field is a presence test, so ``tcp.flags.syn`` matches every TCP packet (the field is
  there with value 0) while ``tcp.flags.syn == 1`` matches SYNs.

What it must never do: evaluate anything (no ``eval``), look at packet bytes, or print. Every
unsupported construct raises :class:`~tcplab.errors.InputError` with a caret under the column.
"""

from __future__ import annotations

import difflib
import ipaddress
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from tcplab.analyze import expert as _expert
from tcplab.analyze import l2tp as _l2tp
from tcplab.analyze import network as _network
from tcplab.analyze import record as _record
from tcplab.errors import InputError

Packet = dict
Predicate = Callable[[Packet], bool]

# Longer than any filter a person types; keeps hostile input from costing real time.
MAX_EXPRESSION_LENGTH = 4096
# Parentheses/negation nesting limit: the parser recurses, so bound it well below Python's.
MAX_NESTING = 64

# ---------------------------------------------------------------------------------------------
# Field catalogue.  Types follow Wireshark's (FT_UINT*, FT_IPv4, FT_STRING, FT_NONE...).

UINT, INT, FLOAT, STR, IPV4, IPV6, BOOL, FLAG, STATUS, PROTO, ANY, BYTES = (
    "unsigned integer", "integer", "number", "string", "IPv4 address", "IPv6 address",
    "boolean", "flag", "checksum status", "protocol", "value", "byte sequence",
)

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFFFFFF

#: name → (type, largest value for unsigned fields or None)
FIELDS: dict[str, tuple[str, int | None]] = {
    "frame.number": (UINT, _U32),
    "frame.len": (UINT, _U32),
    "frame.cap_len": (UINT, _U32),
    "frame.time_epoch": (FLOAT, None),
    "frame.time_relative": (FLOAT, None),
    "frame.comment": (STR, None),
    "frame.protocols": (STR, None),
    "_ws.col.Protocol": (STR, None),
    "_ws.col.Info": (STR, None),
    "_ws.col.Source": (STR, None),
    "_ws.col.Destination": (STR, None),
    "_ws.expert": (STR, None),
    "_ws.expert.message": (STR, None),
    "_ws.expert.severity": (UINT, None),
    "_ws.expert.group": (UINT, None),
    "frame.interface_name": (STR, None),
    "icmp.type": (UINT, _U8),
    "icmp.code": (UINT, _U8),
    "eth.src": (STR, None),
    "eth.dst": (STR, None),
    "eth.type": (UINT, _U16),
    "ip.version": (UINT, 15),
    "ip.hdr_len": (UINT, _U8),
    "ip.dsfield": (UINT, _U8),
    "ip.len": (UINT, _U16),
    "ip.id": (UINT, _U16),
    "ip.flags": (UINT, _U8),
    "ip.flags.rb": (BOOL, None),
    "ip.flags.df": (BOOL, None),
    "ip.flags.mf": (BOOL, None),
    "ip.frag_offset": (UINT, _U16),
    "ip.ttl": (UINT, _U8),
    "ip.proto": (UINT, _U8),
    "ip.checksum": (UINT, _U16),
    "ip.checksum.status": (STATUS, None),
    "ip.checksum_calculated": (UINT, _U16),
    "ip.src": (IPV4, None),
    "ip.dst": (IPV4, None),
    "ipv6.src": (IPV6, None),
    "ipv6.dst": (IPV6, None),
    "ipv6.nxt": (UINT, _U8),
    "ipv6.hlim": (UINT, _U8),
    "ipv6.plen": (UINT, _U16),
    "udp.srcport": (UINT, _U16),
    "udp.dstport": (UINT, _U16),
    "udp.length": (UINT, _U16),
    "udp.checksum": (UINT, _U16),
    "udp.checksum.status": (STATUS, None),
    "udp.checksum_calculated": (UINT, _U16),
    "tcp.stream": (UINT, _U32),
    "tcp.srcport": (UINT, _U16),
    "tcp.dstport": (UINT, _U16),
    "tcp.len": (UINT, _U32),
    "tcp.seq": (UINT, _U32),
    "tcp.seq_raw": (UINT, _U32),
    "tcp.nxtseq": (UINT, _U32),
    "tcp.ack": (UINT, _U32),
    "tcp.ack_raw": (UINT, _U32),
    "tcp.hdr_len": (UINT, _U8),
    "tcp.flags": (UINT, 0xFFF),
    "tcp.flags.fin": (BOOL, None),
    "tcp.flags.syn": (BOOL, None),
    "tcp.flags.reset": (BOOL, None),
    "tcp.flags.push": (BOOL, None),
    "tcp.flags.ack": (BOOL, None),
    "tcp.flags.urg": (BOOL, None),
    "tcp.flags.ece": (BOOL, None),
    "tcp.flags.cwr": (BOOL, None),
    "tcp.flags.ns": (BOOL, None),
    "tcp.flags.ae": (BOOL, None),
    "tcp.flags.str": (STR, None),
    "tcp.window_size": (UINT, _U32),
    "tcp.window_size_value": (UINT, _U16),
    "tcp.window_size_scalefactor": (INT, None),
    "tcp.checksum": (UINT, _U16),
    "tcp.checksum.status": (STATUS, None),
    "tcp.urgent_pointer": (UINT, _U16),
    "tcp.options.mss_val": (UINT, _U16),
    "tcp.options.wscale.shift": (UINT, _U8),
    "tcp.options.timestamp.tsval": (UINT, _U32),
    "tcp.options.timestamp.tsecr": (UINT, _U32),
    "tcp.options.wscale.multiplier": (UINT, None),
    "tcp.options.sack_perm": (FLAG, None),
    "tcp.options.sack_le": (UINT, _U32),
    "tcp.options.sack_re": (UINT, _U32),
    "tcp.options.sack.count": (UINT, None),
    "tcp.options.sack.dsack_le": (UINT, _U32),
    "tcp.options.sack.dsack_re": (UINT, _U32),
    "tcp.options.sack.dsack": (FLAG, None),
    "tcp.checksum_calculated": (UINT, _U16),
    "tcp.completeness": (UINT, _U8),
    "tcp.payload": (BYTES, None),
    "tcp.reassembled_in": (UINT, _U32),
    "tcp.segment": (UINT, _U32),
    "tcp.segment.count": (UINT, _U32),
    "tcp.reassembled.length": (UINT, _U32),
    "tcp.analysis.retransmission": (FLAG, None),
    "tcp.analysis.fast_retransmission": (FLAG, None),
    "tcp.analysis.spurious_retransmission": (FLAG, None),
    "tcp.analysis.out_of_order": (FLAG, None),
    "tcp.analysis.lost_segment": (FLAG, None),
    "tcp.analysis.ack_lost_segment": (FLAG, None),
    "tcp.analysis.keep_alive": (FLAG, None),
    "tcp.analysis.keep_alive_ack": (FLAG, None),
    "tcp.analysis.window_update": (FLAG, None),
    "tcp.analysis.window_full": (FLAG, None),
    "tcp.analysis.zero_window": (FLAG, None),
    "tcp.analysis.zero_window_probe": (FLAG, None),
    "tcp.analysis.zero_window_probe_ack": (FLAG, None),
    "tcp.analysis.duplicate_ack": (FLAG, None),
    "tcp.analysis.reused_ports": (FLAG, None),
    "tcp.analysis.duplicate_ack_num": (UINT, _U32),
    "tcp.analysis.duplicate_ack_frame": (UINT, _U32),
    "http.request.method": (STR, None),
    "http.request.uri": (STR, None),
    "http.request.version": (STR, None),
    "http.response.code": (UINT, _U16),
    "http.response.phrase": (STR, None),
    "http.response.version": (STR, None),
    "http.host": (STR, None),
    "http.content_length": (UINT, None),
}

# TLS records and DNS messages (tcplab.analyze.tls, tcplab.analyze.dns), typed as tshark 4.0
# types them; repeated ones (a field per record, question or answer) are lists.
FIELDS.update({
    "tls.record.content_type": (UINT, _U8),
    "tls.record.opaque_type": (UINT, _U8),
    "tls.record.version": (UINT, _U16),
    "tls.record.length": (UINT, _U16),
    "tls.handshake.type": (UINT, _U8),
    "tls.handshake.length": (UINT, 0xFFFFFF),
    "tls.handshake.version": (UINT, _U16),
    "tls.handshake.ciphersuite": (UINT, _U16),
    "tls.handshake.extensions_server_name": (STR, None),
    "tls.handshake.extensions.supported_version": (UINT, _U16),
    "tls.change_cipher_spec": (FLAG, None),
    "tls.alert_message": (FLAG, None),
    "tls.alert_message.level": (UINT, _U8),
    "tls.alert_message.desc": (UINT, _U8),
    "tls.app_data": (BYTES, None),
    "dns.length": (UINT, _U16),
    "dns.id": (UINT, _U16),
    "dns.flags": (UINT, _U16),
    **{f"dns.flags.{bit}": (BOOL, None) for bit in (
        "response", "authoritative", "truncated", "recdesired", "recavail", "z",
        "authenticated", "checkdisable")},
    "dns.flags.opcode": (UINT, 15),
    "dns.flags.rcode": (UINT, 15),
    **{f"dns.count.{n}": (UINT, _U16) for n in ("queries", "answers", "auth_rr", "add_rr",
                                                "labels", "zones", "prerequisites", "updates")},
    "dns.qry.name": (STR, None),
    "dns.qry.name.len": (UINT, _U16),
    "dns.qry.type": (UINT, _U16),
    "dns.qry.class": (UINT, _U16),
    "dns.resp.name": (STR, None),
    "dns.resp.type": (UINT, _U16),
    "dns.resp.class": (UINT, _U16),
    "dns.resp.ttl": (UINT, _U32),
    "dns.resp.len": (UINT, _U16),
    "dns.a": (IPV4, None),
    "dns.aaaa": (IPV6, None),
    **{name: (STR, None) for name in ("dns.cname", "dns.ns", "dns.ptr.domain_name",
                                      "dns.mx.mail_exchange", "dns.srv.target",
                                      "dns.soa.mname", "dns.soa.rname", "dns.txt",
                                      "dns.srv.service", "dns.srv.proto", "dns.srv.name")},
    **{f"dns.{name}": (UINT, _U16) for name in ("mx.preference", "srv.priority",
                                                "srv.weight", "srv.port")},
})

# The fragment, ICMP/ICMPv6 and PPPoE fields, declared beside the code that writes them.
FIELDS.update(_network.FILTER_FIELDS)
FIELDS.update(_l2tp.FILTER_FIELDS)

#: One-bit fields read from their flags word when the packet dict has only the word
#: (``ip.flags`` holds the 3 IPv4 flag bits, ``tcp.flags`` the 9 TCP ones).
DERIVED_BITS: dict[str, tuple[str, int]] = {
    "ip.flags.rb": ("ip.flags", 0x4),
    "ip.flags.df": ("ip.flags", 0x2),
    "ip.flags.mf": ("ip.flags", 0x1),
    "tcp.flags.fin": ("tcp.flags", 0x001),
    "tcp.flags.syn": ("tcp.flags", 0x002),
    "tcp.flags.reset": ("tcp.flags", 0x004),
    "tcp.flags.push": ("tcp.flags", 0x008),
    "tcp.flags.ack": ("tcp.flags", 0x010),
    "tcp.flags.urg": ("tcp.flags", 0x020),
    "tcp.flags.ece": ("tcp.flags", 0x040),
    "tcp.flags.cwr": ("tcp.flags", 0x080),
    "tcp.flags.ns": ("tcp.flags", 0x100),
    "tcp.flags.ae": ("tcp.flags", 0x100),  # tshark 4.0's name for the NS bit (AccECN)
}

#: Wireshark's convenience fields that stand for several real ones ("any of them").
VIRTUAL_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tcp.port": (UINT, ("tcp.srcport", "tcp.dstport")),
    "udp.port": (UINT, ("udp.srcport", "udp.dstport")),
    "ip.addr": (IPV4, ("ip.src", "ip.dst")),
    "ip.host": (STR, ("ip.src", "ip.dst")),
    "ip.src_host": (STR, ("ip.src",)),
    "ip.dst_host": (STR, ("ip.dst",)),
    "ipv6.addr": (IPV6, ("ipv6.src", "ipv6.dst")),
    "ipv6.host": (STR, ("ipv6.src", "ipv6.dst")),
    "eth.addr": (STR, ("eth.src", "eth.dst")),
    # The whole frame's bytes, as the analyzer keeps them (``frame contains "GET"``).
    "frame": (BYTES, ("_raw",)),
}

#: Presence-only names: protocol layers and Wireshark's umbrella items.
PROTOCOLS = (
    "frame", "eth", "null", "sll", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6", "arp",
    "http", "dns", "tls", "data", "chat", "_ws.malformed", "ipv6.fraghdr", "pppoes", "pppoed", "ppp",
    "l2tp", "lcp", "db-lsp-disc",
    "tcp.analysis.flags", "http.request",
    "http.response",
    # an HTTP body's layer (tcplab.analyze.http.body_layer)
    "data-text-lines", "xml", "json", "media", "urlencoded-form",
)

# A key that is always there when the layer is (fast path instead of scanning every key).
_PROTOCOL_MARKER = {
    "ip": "ip.src",
    "ipv6": "ipv6.src",
    "tcp": "tcp.srcport",
    "udp": "udp.srcport",
    "http.request": "http.request.method",
    "http.response": "http.response.code",
    # A Length field past the datagram stops Wireshark before L2TP's tree item: no match,
    # though frame.protocols names the layer (the header's fields are written with the item).
    "l2tp": "l2tp.version",
}

# A field a fast-path record always holds (held_source) when it carries the protocol.
_ALWAYS_HELD = {"ip": "ip.version"}

_STATUS_WORDS = {"bad": 0, "good": 1, "unverified": 2, "not present": 3, "illegal": 4}


def known_field_names() -> list[str]:
    """Every name a filter may use (for help text and "did you mean" suggestions)."""
    return sorted({*FIELDS, *VIRTUAL_FIELDS, *PROTOCOLS})


# ---------------------------------------------------------------------------------------------
# Tokens

_OPERATOR_WORDS = {
    "eq": "==", "ne": "!=", "gt": ">", "lt": "<", "ge": ">=", "le": "<=",
    "any_eq": "==", "all_ne": "!=", "all_eq": "===", "any_ne": "!==",
    "contains": "contains", "in": "in",
}
_UNSUPPORTED_OPERATOR_WORDS = {"matches", "bitand", "xor", "^^"}
_LOGIC_WORDS = {"and": "&&", "or": "||", "not": "!"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*"?)
    | (?P<op>===|!==|==|!=|~=|>=|<=|&&|\|\||[<>!&(){},])
    | (?P<word>[A-Za-z0-9_.:/\-]+)
    """,
    re.VERBOSE,
)


_CLOSED_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "op", "word", "string", "end"
    text: str
    pos: int


def _error(
    expr: str, pos: int, message: str, length: int = 1, option: str = "-Y", hint: str = ""
) -> InputError:
    """Wireshark-style message: what is wrong, the column, the expression with a caret under it."""
    caret = "^" + "~" * max(0, length - 1)
    tail = f"; {hint}" if hint else ""
    return InputError(
        f"{option}: {message} at column {pos + 1}{tail}\n  {expr}\n  {' ' * pos}{caret}"
    )


def _tokenize(expr: str, option: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            ch = expr[pos]
            hint = {
                "[": "field slices like 'eth.src[0:3]' are not supported",
                "~": "unsupported operator '~' (regular expressions are not supported)",
                "=": "use '==' to compare",
                "|": "use '||' (or 'or') to combine tests",
                "^": "unsupported operator '^^' (use '||' and '&&')",
            }.get(ch, f"unexpected character {ch!r}")
            raise _error(expr, pos, hint, option=option)
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "string" and not _CLOSED_STRING.fullmatch(text):
                raise _error(expr, pos, "string literal has no closing '\"'", len(text), option)
        if kind == "op" and text == "~=":
            text = "!=="
        if kind != "ws":
            tokens.append(_Tok(kind, text, pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(expr)))
    return tokens


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "0": "\0", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Value access


@lru_cache(maxsize=8192)
def _ip_int(text: str) -> int | None:
    """Address text → int (cached: captures repeat the same few addresses endlessly)."""
    try:
        return int(ipaddress.ip_address(text))
    except ValueError:
        return None


def _field_getter(name: str, ftype: str) -> Callable[[Packet], tuple]:
    """A function returning the field's values in a packet as a tuple (empty = absent)."""
    if name in _expert.FIELDS:  # derived from the other fields only when a filter asks
        return lambda d: _expert.values(d, name)
    if name in VIRTUAL_FIELDS:
        keys = VIRTUAL_FIELDS[name][1]

        def get_many(d: Packet) -> tuple:
            out = tuple(v for k in keys if (v := d.get(k)) is not None)
            if any(type(v) is list for v in out):  # an ICMP error's two IP layers
                return tuple(x for v in out for x in (v if type(v) is list else (v,)))
            return out

        return get_many

    if ftype == FLAG:
        def get_flag(d: Packet) -> tuple:
            v = d.get(name)
            return () if v is None or v is False else (v,)

        return get_flag

    if name in DERIVED_BITS:
        word, mask = DERIVED_BITS[name]

        def get_bit(d: Packet) -> tuple:
            v = d.get(name)
            if v is not None:
                return (v,)
            w = d.get(word)
            if type(w) is list:  # an ICMP error's two IP headers
                return tuple(1 if x & mask else 0 for x in w)
            return (1 if w & mask else 0,) if type(w) is int else ()

        return get_bit

    if ftype == STATUS:
        def get_status(d: Packet) -> tuple:
            v = d.get(name)
            if v is None:
                return ()
            if isinstance(v, str):
                return (_STATUS_WORDS.get(v.lower(), v),)
            return (int(v),)

        return get_status

    def get_one(d: Packet) -> tuple:
        v = d.get(name)
        if v is None:
            return ()
        # Repeated fields (SACK block edges) are lists: each element is one value.
        return tuple(v) if isinstance(v, list) else (v,)

    return get_one


def _protocol_present(name: str) -> Predicate:
    if name == "frame":
        return _on_record(lambda d: True, "True")
    if name == "tcp.analysis.flags":
        flags = [f for f, (t, _) in FIELDS.items() if t == FLAG and f.startswith("tcp.analysis.")]
        return lambda d: any(d.get(f) not in (None, False) for f in flags)
    if name == "_ws.malformed":
        return lambda d: d.get(name) not in (None, False)
    if name == "lcp":  # an LCP header the snapshot length cut is named but has no tree item
        def lcp(d: Packet) -> bool:
            layers = d.get("frame.protocols")
            return isinstance(layers, str) and ":lcp" in layers and "ppp.code" in d
        return lcp
    marker = _PROTOCOL_MARKER.get(name)
    if marker is not None:
        present: Predicate = lambda d: marker in d  # noqa: E731
        if _record.held_source(_ALWAYS_HELD.get(name, marker)) is not None:
            _on_record(present, "True")  # ip and tcp: every fast-path record is both
        return present
    if name == "data-text-lines":
        # Text that is an XML document goes on to XML before the text layer adds its tree
        # item: tshark lists the layer in frame.protocols, but -Y does not find it.
        def text(d: Packet) -> bool:
            layers = d.get("frame.protocols")
            return isinstance(layers, str) and ":data-text-lines" in layers and (
                ":data-text-lines:xml" not in layers)
        return text
    prefix = name + "."

    def layered(d: Packet) -> bool:
        # "frame.protocols" (e.g. "eth:ethertype:ip:tcp:http") names every layer dissected.
        layers = d.get("frame.protocols")
        if isinstance(layers, str) and name in layers.split(":"):
            return True
        return name in d or any(k.startswith(prefix) for k in d)

    return layered


# ---------------------------------------------------------------------------------------------
# Literal parsing, per field type

_OCTAL = re.compile(r"-?0[0-7]+")


def _parse_int(text: str) -> int | None:
    t = text.lower()
    try:
        if re.fullmatch(r"-?0x[0-9a-f]+", t):
            return int(t, 16)
        if re.fullmatch(r"-?0b[01]+", t):
            return int(t, 2)
        if _OCTAL.fullmatch(t):
            return int(t, 8)
        if re.fullmatch(r"-?[0-9]+", t):
            return int(t, 10)
    except ValueError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class _Literal:
    value: object
    network: tuple[int, int] | None = None  # (network int, mask) for CIDR literals


class _Compiler:
    def __init__(self, expr: str, option: str, extra_fields: frozenset[str]) -> None:
        self.expr = expr
        self.option = option
        self.extra = extra_fields
        self.tokens = _tokenize(expr, option)
        self.i = 0
        self.depth = 0
        self.used: set[str] = set()  # every field/protocol name the expression reads

    # -- token access and errors --------------------------------------------------------------
    def err(self, tok: _Tok, message: str, hint: str = "") -> InputError:
        return _error(self.expr, tok.pos, message, max(1, len(tok.text)), self.option, hint)

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_logic(self, tok: _Tok, op: str) -> bool:
        if tok.kind == "op":
            return tok.text == op
        return tok.kind == "word" and _LOGIC_WORDS.get(tok.text.lower()) == op

    def field_type(self, name: str) -> str | None:
        if name in FIELDS:
            return FIELDS[name][0]
        if name in VIRTUAL_FIELDS:
            return VIRTUAL_FIELDS[name][0]
        if name in PROTOCOLS:
            return PROTO
        if name in self.extra:
            return ANY
        return None

    def unknown_field(self, tok: _Tok) -> InputError:
        names = sorted({*FIELDS, *VIRTUAL_FIELDS, *PROTOCOLS, *self.extra})
        close = difflib.get_close_matches(tok.text, names, n=4, cutoff=0.6)
        if not close:
            prefix = tok.text.split(".")[0] + "."
            close = [n for n in names if n.startswith(prefix)][:6]
        hint = f"similar known names: {', '.join(close)}" if close else ""
        return self.err(tok, f"unknown field {tok.text!r}", hint)

    # -- grammar -----------------------------------------------------------------------------
    def compile(self) -> Predicate:
        if self.peek().kind == "end":
            raise _error(self.expr, 0, "empty filter expression", option=self.option)
        pred = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.err(tok, f"unexpected {tok.text!r} (missing '&&' or '||'?)")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_logic(self.peek(), "||"):
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return _joined(lambda d: a(d) or b(d), " or ", parts)
        return _joined(lambda d: any(p(d) for p in parts), " or ", parts)

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.is_logic(self.peek(), "&&"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return _joined(lambda d: a(d) and b(d), " and ", parts)
        return _joined(lambda d: all(p(d) for p in parts), " and ", parts)

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.err(tok, f"expression nested deeper than {MAX_NESTING} levels")

    def not_expr(self) -> Predicate:
        tok = self.peek()
        if self.is_logic(tok, "!"):
            self.take()
            self.nest(tok)
            inner = self.not_expr()
            self.depth -= 1
            negated: Predicate = lambda d: not inner(d)  # noqa: E731
            source = _record_source(inner)
            if source is not None:
                _on_record(negated, f"(not {source[0]})", source[1])
            return negated
        return self.primary()

    def primary(self) -> Predicate:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            self.nest(tok)
            pred = self.or_expr()
            self.depth -= 1
            close = self.take()
            if close.kind != "op" or close.text != ")":
                if close.kind == "end":
                    raise _error(self.expr, tok.pos, "'(' is never closed", option=self.option)
                raise self.err(close, f"expected ')' but found {close.text!r}")
            return pred
        if tok.kind == "end":
            raise self.err(tok, "unexpected end of filter expression")
        if tok.kind == "string":
            raise self.err(tok, "a test must start with a field name, not a string")
        if tok.kind == "op":
            raise self.err(tok, f"unexpected {tok.text!r}")
        return self.test(tok)

    def operator(self) -> _Tok | None:
        tok = self.peek()
        if tok.kind == "op" and tok.text in {"==", "!=", "===", "!==", ">", "<", ">=", "<=", "&"}:
            return self.take()
        if tok.kind == "word":
            low = tok.text.lower()
            if low in _OPERATOR_WORDS:
                self.take()
                return _Tok("op", _OPERATOR_WORDS[low], tok.pos)
            if low in _UNSUPPORTED_OPERATOR_WORDS:
                raise self.err(tok, f"unsupported operator {tok.text!r}")
        return None

    def test(self, tok: _Tok) -> Predicate:
        name = tok.text
        self.used.add(name)
        ftype = self.field_type(name)
        if ftype is None:
            if _parse_int(name) is not None or _ip_int(name.split("/")[0]) is not None:
                raise self.err(tok, "a test must start with a field name, not a value")
            raise self.unknown_field(tok)
        op_tok = self.operator()
        if op_tok is None:
            nxt = self.peek()
            if nxt.kind == "word" and not any(self.is_logic(nxt, x) for x in ("&&", "||", "!")):
                raise self.err(
                    nxt, f"unexpected {nxt.text!r} after {name!r}",
                    "expected an operator (==, !=, >, <, >=, <=, contains, in) or '&&'/'||'",
                )
            if nxt.kind == "op" and nxt.text in {"{", "}", ","}:
                raise self.err(nxt, f"unexpected {nxt.text!r}")
            return self.presence(name, PROTO if name in PROTOCOLS else ftype)
        op = op_tok.text
        if ftype == PROTO and op == "contains":
            raise self.err(tok, f"'{name} contains' is not supported",
                           "search the bytes with 'tcp.payload contains' or 'frame contains'")
        if ftype == PROTO:
            raise self.err(
                tok,
                f"{name!r} is a protocol: test its presence alone, or compare one of its "
                f"fields (e.g. {self.example_field(name)})",
            )
        if ftype == FLAG:
            raise self.err(
                tok, f"{name!r} is a flag with no value: test it alone, e.g. -Y {name}"
            )
        getter = _field_getter(name, ftype)
        if op == "in":
            return self.membership(getter, ftype, name)
        rhs = self.take()
        if rhs.kind == "end":
            raise self.err(rhs, "unexpected end of filter expression")
        if rhs.kind == "op":
            raise self.err(rhs, f"expected a value after {op_tok.text!r}, found {rhs.text!r}")
        if rhs.kind == "word" and self.field_type(rhs.text) not in (None, PROTO, FLAG):
            self.used.add(rhs.text)
            other_type = self.field_type(rhs.text) or ANY
            other = _field_getter(rhs.text, other_type)
            return _compare_fields(getter, other, op)
        lit = self.literal(rhs, ftype, name, op)
        if lit.network is not None and op not in ("==", "!=", "===", "!=="):
            raise self.err(rhs, f"a network ({rhs.text}) can only be compared with == or !=")
        slow = _compare(getter, op, lit, ftype)
        return _fast_compare(name, ftype, op, lit, slow) or slow

    def example_field(self, proto: str) -> str:
        for candidate in (f"{proto}.port", f"{proto}.addr", f"{proto}.srcport", f"{proto}.src"):
            if candidate in FIELDS or candidate in VIRTUAL_FIELDS:
                return candidate
        return f"{proto}.<field>"

    def presence(self, name: str, ftype: str) -> Predicate:
        if ftype == PROTO:
            return _protocol_present(name)
        getter = _field_getter(name, ftype)
        bits = _record.analysis_bits(name) if ftype == FLAG else None
        if bits is not None:
            record = _record.Packet

            def flag_set(d: Packet) -> bool:
                # An analyzer record answers from its analysis bits (the common case, -Y
                # 'tcp.analysis.retransmission'); anything else through the mapping.
                if type(d) is record and d._fields is None:  # type: ignore[attr-defined]
                    return bool(d.aflags & bits)  # type: ignore[attr-defined]
                return bool(getter(d))

            return _on_record(flag_set, f"(p.aflags & {bits!r} != 0)")
        present: Predicate = lambda d: bool(getter(d))  # noqa: E731
        if _record.held_source(name) is not None:  # always there on a fast-path record
            _on_record(present, "True")
        return present

    def membership(self, getter: Callable[[Packet], tuple], ftype: str, name: str) -> Predicate:
        brace = self.take()
        if brace.kind != "op" or brace.text != "{":
            raise self.err(brace, "expected '{' after 'in'")
        singles: list[object] = []
        ranges: list[tuple[object, object]] = []
        while True:
            tok = self.take()
            if tok.kind == "op" and tok.text == "}" and (singles or ranges):
                break
            if tok.kind in ("end",) or tok.kind == "op":
                raise self.err(tok, "expected a value or '}' in the set")
            if tok.kind == "word" and ".." in tok.text and ftype in (UINT, INT, FLOAT, ANY):
                lo_text, _, hi_text = tok.text.partition("..")
                lo_tok = _Tok("word", lo_text, tok.pos)
                hi_tok = _Tok("word", hi_text, tok.pos + len(lo_text) + 2)
                if not hi_text:
                    hi_tok = self.take()
                ranges.append((self.literal(lo_tok, ftype, name, ">=").value,
                               self.literal(hi_tok, ftype, name, "<=").value))
            else:
                lit = self.literal(tok, ftype, name, "==")
                nxt = self.peek()
                if nxt.kind == "word" and nxt.text.startswith(".."):
                    self.take()
                    hi_tok = self.take() if nxt.text == ".." else _Tok("word", nxt.text[2:], nxt.pos + 2)
                    ranges.append((lit.value, self.literal(hi_tok, ftype, name, "<=").value))
                else:
                    singles.append(lit)
            sep = self.peek()
            if sep.kind == "op" and sep.text == ",":
                self.take()
            elif not (sep.kind == "op" and sep.text == "}"):
                raise self.err(sep, "set elements must be separated by ','")
        tests = [_compare(getter, "==", lit, ftype) for lit in singles]
        norm = _normalizer(ftype)
        for lo, hi in ranges:

            def in_range(d: Packet, lo: object = lo, hi: object = hi) -> bool:
                for v in getter(d):
                    n = norm(v)
                    if n is not None and lo <= n <= hi:  # type: ignore[operator]
                        return True
                return False

            tests.append(in_range)
        return lambda d: any(t(d) for t in tests)

    def literal(self, tok: _Tok, ftype: str, name: str, op: str) -> _Literal:
        text = _unquote(tok.text) if tok.kind == "string" else tok.text
        if ftype == BYTES:
            if op not in ("contains", "==", "!=", "===", "!=="):
                raise self.err(tok, f"{name} (bytes) can only be compared with contains, == or !=")
            if tok.kind == "string":
                return _Literal(text.encode("utf-8"))
            hex_text = text.replace(":", "").replace("-", "").replace(".", "")
            try:
                return _Literal(bytes.fromhex(hex_text))
            except ValueError:
                raise self.err(tok, f"{text!r} is not a byte string (use \"text\" or "
                                    f"hex like 47:45:54)") from None
        if op == "contains":
            if ftype not in (STR, ANY):
                raise self.err(tok, f"{name} ({ftype}) cannot be used with 'contains'")
            return _Literal(text)
        if ftype in (UINT, INT, BOOL):
            if tok.kind == "string" or (value := _parse_int(text)) is None:
                if ftype == BOOL and text.lower() in ("true", "false"):
                    return _Literal(1 if text.lower() == "true" else 0)
                raise self.err(tok, f"{text!r} is not a valid number for {name}")
            limit = FIELDS.get(name, (None, None))[1] if name in FIELDS else (
                _U16 if VIRTUAL_FIELDS.get(name, (None,))[0] == UINT else None)
            if limit is not None and value > limit:
                raise self.err(tok, f"{text!r} is too big for {name}, maximum {limit}")
            return _Literal(value)
        if ftype == FLOAT:
            try:
                return _Literal(float(text))
            except ValueError:
                raise self.err(tok, f"{text!r} is not a valid number for {name}") from None
        if ftype == STATUS:
            if text.lower() in _STATUS_WORDS:
                return _Literal(_STATUS_WORDS[text.lower()])
            value = _parse_int(text) if tok.kind == "word" else None
            if value is None:
                raise self.err(tok, f"{text!r} is not a checksum status (use Good, Bad or 0–4)")
            return _Literal(value)
        if ftype in (IPV4, IPV6):
            return self.address_literal(tok, text, ftype, name)
        if ftype == ANY:
            if tok.kind == "word" and (value := _parse_int(text)) is not None:
                return _Literal(value)
            return _Literal(text)
        return _Literal(text)  # STR

    def address_literal(self, tok: _Tok, text: str, ftype: str, name: str) -> _Literal:
        if tok.kind == "string":
            raise self.err(tok, f"{name} takes an address without quotes, e.g. {name} == "
                                f"{'127.0.0.1' if ftype == IPV4 else '::1'}")
        version = 4 if ftype == IPV4 else 6
        addr_text, slash, prefix_text = text.partition("/")
        try:
            address = ipaddress.ip_address(addr_text)
        except ValueError:
            raise self.err(tok, f"{text!r} is not a valid {ftype}") from None
        if address.version != version:
            raise self.err(tok, f"{text!r} is not a valid {ftype}")
        bits = 32 if version == 4 else 128
        if not slash:
            return _Literal(int(address))
        if not prefix_text.isdigit() or int(prefix_text) > bits:
            raise self.err(tok, f"netmask bits in {text!r} should be 0–{bits}")
        prefix = int(prefix_text)
        mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
        return _Literal(int(address) & mask, (int(address) & mask, mask))


# ---------------------------------------------------------------------------------------------
# Comparison closures


def _num(v: object) -> float | int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        parsed = _parse_int(v)
        if parsed is not None:
            return parsed
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _normalizer(ftype: str) -> Callable[[object], object]:
    """Map a packet value to the literal's domain (None = not comparable)."""
    if ftype in (IPV4, IPV6):
        return lambda v: _ip_int(v) if isinstance(v, str) else None
    if ftype in (UINT, INT, FLOAT, BOOL, STATUS):
        return _num
    if ftype == STR:
        return lambda v: v if isinstance(v, str) else str(v)
    return lambda v: v


def _compare(getter: Callable[[Packet], tuple], op: str, lit: _Literal, ftype: str) -> Predicate:
    norm = _normalizer(ftype)
    value = lit.value
    if ftype == ANY:
        def norm_any(v: object) -> object:
            if isinstance(value, int | float) and not isinstance(v, int | float):
                return _num(v)
            if isinstance(value, str) and not isinstance(v, str):
                return str(v)
            return v

        norm = norm_any

    if lit.network is not None:
        network, mask = lit.network

        def test(v: object) -> bool:
            n = norm(v)
            return n is not None and (n & mask) == network  # type: ignore[operator]

        return _quantify(getter, op, test)

    if ftype == BYTES:
        want = value if isinstance(value, bytes) else str(value).encode("utf-8")

        def as_bytes(v: object) -> bytes | None:
            return bytes(v) if isinstance(v, bytes | bytearray | memoryview) else None

        if op == "contains":
            return _quantify(getter, "==", lambda v: (b := as_bytes(v)) is not None and want in b)
        return _quantify(getter, op, lambda v: as_bytes(v) == want)

    if op == "contains":
        needle = str(value)

        def test_contains(v: object) -> bool:
            return needle in (v if isinstance(v, str) else str(v))

        return _quantify(getter, "==", test_contains)

    def eq(v: object) -> bool:
        return norm(v) == value

    if op in ("==", "!=", "===", "!=="):
        return _quantify(getter, op, eq)

    def ordered(v: object) -> bool:
        n = norm(v)
        if n is None:
            return False
        try:
            if op == ">":
                return n > value  # type: ignore[operator]
            if op == "<":
                return n < value  # type: ignore[operator]
            if op == ">=":
                return n >= value  # type: ignore[operator]
            if op == "<=":
                return n <= value  # type: ignore[operator]
            if op == "&":
                return bool(int(n) & int(value))  # type: ignore[call-overload]
        except TypeError:
            return False
        return False

    return _quantify(getter, "==", ordered)


# -- one generated function per filter ---------------------------------------------------------
# A test on a field every fast-path record holds as an int (record.held_source) also carries
# its Python source over the record ``p``; '&&', '||' and '!' join those sources, any part
# without one joining as a call of its own predicate. compile_filter turns the whole into one
# function, so that -Y on an ordinary TCP frame is one call, not a call per test and field.


def _on_record(pred: Predicate, source: str,
               calls: dict[str, Predicate] | None = None) -> Predicate:
    """Attach ``source``: what ``pred`` answers on a fast-path record without its fields.

    ``calls`` are the predicates the source calls by name (parts that have no source).
    """
    pred.on_record = (source, calls or {})  # type: ignore[attr-defined]
    return pred


def _record_source(pred: Predicate) -> tuple[str, dict[str, Predicate]] | None:
    return getattr(pred, "on_record", None)


def _joined(pred: Predicate, word: str, parts: list[Predicate]) -> Predicate:
    """``pred`` (the parts joined by ``word``) with the joined sources, if any part has one."""
    sources = [_record_source(part) for part in parts]
    if all(source is None for source in sources):
        return pred
    texts: list[str] = []
    calls: dict[str, Predicate] = {}
    for part, source in zip(parts, sources, strict=True):
        if source is None:
            name = f"_call{id(part):x}"
            calls[name] = part
            texts.append(f"{name}(p)")
        else:
            texts.append(source[0])
            calls.update(source[1])
    return _on_record(pred, "(" + word.join(texts) + ")", calls)


def _generated(pred: Predicate) -> Predicate:
    """One function: the joined source on a fast-path record, ``pred`` on anything else.

    The source is made only of attribute reads of ``p``, int literals, comparisons and
    boolean operators (no text of the expression is pasted in), so compiling it is safe;
    a source Python will not compile (nested deeper than its parser allows) keeps ``pred``.
    """
    source = _record_source(pred)
    if source is None or source[0] == "True":
        return pred
    code = ("def record_filter(p):\n"
            "    if type(p) is _record and p._fields is None:\n"
            f"        return {source[0]}\n"
            "    return _general(p)\n")
    namespace: dict = {"_record": _record.Packet, "_general": pred, **source[1]}
    try:
        exec(compile(code, "<display filter>", "exec"), namespace)  # noqa: S102
    except (SyntaxError, RecursionError, MemoryError):
        return pred
    generated = namespace["record_filter"]
    generated.general = pred  # the closures' answer, which tests hold equal to it
    generated.held_only = not source[1]  # calls no predicate of a part without source
    return generated


def reads_held_only(pred: Predicate) -> bool:
    """Whether ``pred``, on a fast-path record, reads only the ints its analysis gives.

    Such a filter is one generated function whose every test has a source over the
    record's held fields (:func:`tcplab.analyze.record.held_source`) or analysis bits; the
    analyzer tests it before the rest of a record is made, so a frame it rejects costs
    no more than its analysis (:meth:`tcplab.analyze.record.Analyzer.packets`).
    """
    return getattr(pred, "held_only", False) is True


_FAST_OPS = {
    "==": lambda v, w: v == w, "!=": lambda v, w: v != w, ">": lambda v, w: v > w,
    "<": lambda v, w: v < w, ">=": lambda v, w: v >= w, "<=": lambda v, w: v <= w,
}


def _fast_compare(name: str, ftype: str, op: str, lit: _Literal, slow: Predicate) -> Predicate | None:
    """The common case without tuples: plain int/str values under one or two keys.

    Any value of another type (or a missing one) takes the general path, so the answer is
    always the general path's answer; this only saves time on every ordinary packet.
    """
    value = lit.value
    if op not in _FAST_OPS or lit.network is not None or name in _expert.FIELDS:
        return None
    if ftype in (UINT, INT, BOOL) and type(value) is int:
        kind: type = int
    elif ftype == STR and type(value) is str and op in ("==", "!="):
        kind = str
    else:
        return None
    if name in FIELDS:
        keys: tuple[str, ...] = (name,)
    elif name in VIRTUAL_FIELDS and VIRTUAL_FIELDS[name][0] == ftype:
        keys = VIRTUAL_FIELDS[name][1]
    else:
        return None
    # An analyzer record without its dictionary answers a held field with one call of the
    # record's own getter (record.held_field), not through its mapping methods.
    record = _record.Packet
    if len(keys) == 1:
        (key,) = keys
        held = _record.held_field(key)
        if held is None:
            held = operator.methodcaller("get", key)
        source = _record.held_source(key) if kind is int else None
        code = f"({source} {op} {value!r})" if source is not None else None
        if op == "==":
            def one_eq(d: Packet) -> bool:
                v = held(d) if type(d) is record and d._fields is None else d.get(key)  # type: ignore[attr-defined]
                return v == value if type(v) is kind else slow(d)

            return _on_record(one_eq, code) if code else one_eq
        test = _FAST_OPS[op]

        def one(d: Packet) -> bool:
            v = held(d) if type(d) is record and d._fields is None else d.get(key)  # type: ignore[attr-defined]
            return test(v, value) if type(v) is kind else slow(d)

        return _on_record(one, code) if code else one
    if len(keys) == 2:
        k1, k2 = keys
        h1 = _record.held_field(k1) or operator.methodcaller("get", k1)
        h2 = _record.held_field(k2) or operator.methodcaller("get", k2)
        s1 = _record.held_source(k1) if kind is int else None
        s2 = _record.held_source(k2) if kind is int else None
        code = None
        if s1 is not None and s2 is not None:
            code = (f"({s1} {op} {value!r} and {s2} {op} {value!r})" if op == "!="
                    else f"({s1} {op} {value!r} or {s2} {op} {value!r})")
        if op == "==":
            def two_eq(d: Packet) -> bool:
                if type(d) is record and d._fields is None:  # type: ignore[attr-defined]
                    a, b = h1(d), h2(d)
                else:
                    a, b = d.get(k1), d.get(k2)
                if type(a) is kind and type(b) is kind:
                    return a == value or b == value
                return slow(d)

            return _on_record(two_eq, code) if code else two_eq
        test = _FAST_OPS[op]
        combine_all = op == "!="  # Wireshark 3.6+: "!=" means every value differs

        def two(d: Packet) -> bool:
            if type(d) is record and d._fields is None:  # type: ignore[attr-defined]
                a, b = h1(d), h2(d)
            else:
                a, b = d.get(k1), d.get(k2)
            if type(a) is kind and type(b) is kind:
                if combine_all:
                    return test(a, value) and test(b, value)
                return test(a, value) or test(b, value)
            return slow(d)

        return _on_record(two, code) if code else two
    return None


def _quantify(getter: Callable[[Packet], tuple], op: str, match: Callable[[object], bool]) -> Predicate:
    """Apply Wireshark's any/all rules over a field's values; no values → false."""
    if op == "==":
        def any_match(d: Packet) -> bool:
            return any(match(v) for v in getter(d))

        return any_match
    if op == "!=":
        def all_differ(d: Packet) -> bool:
            values = getter(d)
            return bool(values) and not any(match(v) for v in values)

        return all_differ
    if op == "===":
        def all_match(d: Packet) -> bool:
            values = getter(d)
            return bool(values) and all(match(v) for v in values)

        return all_match

    def any_differ(d: Packet) -> bool:  # "!==" / "~="
        return any(not match(v) for v in getter(d))

    return any_differ


def _compare_fields(left: Callable[[Packet], tuple], right: Callable[[Packet], tuple],
                    op: str) -> Predicate:
    """Field against field (``tcp.srcport > tcp.dstport``): any pair satisfying the test."""
    def pairs(d: Packet) -> list[tuple[object, object]]:
        return [(_key(a), _key(b)) for a in left(d) for b in right(d)]

    def test(a: object, b: object) -> bool:
        try:
            return {
                "==": a == b, "!=": a != b, "===": a == b, "!==": a != b,
                ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b,  # type: ignore[operator]
                "contains": str(b) in str(a),
            }.get(op, False)
        except TypeError:
            return False

    if op == "!=":
        return lambda d: bool(ps := pairs(d)) and all(test(a, b) for a, b in ps)
    if op == "===":
        return lambda d: bool(ps := pairs(d)) and all(test(a, b) for a, b in ps)
    return lambda d: any(test(a, b) for a, b in pairs(d))


def _key(v: object) -> object:
    """Comparable form of a value: addresses as ints, numeric text as numbers."""
    if isinstance(v, str):
        ip = _ip_int(v) if (":" in v or v.count(".") == 3) else None
        if ip is not None:
            return ip
        return v
    if isinstance(v, bool):
        return int(v)
    return v


# ---------------------------------------------------------------------------------------------


def compile_filter(
    expr: str, *, option: str = "-Y", known_fields: Iterable[str] = ()
) -> Callable[[dict], bool]:
    """Compile a display filter once so the per-packet test is a chain of small closures.

    The returned function also carries ``expression`` and ``fields`` (the names it reads).

    ``known_fields`` lets a caller admit extra field names its dicts carry (compared loosely,
    as numbers when the literal is a number, else as text); ``option`` names the flag in errors.
    """
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise InputError(f"{option}: filter is longer than {MAX_EXPRESSION_LENGTH} characters")
    compiler = _Compiler(expr, option, frozenset(known_fields))
    predicate = _generated(compiler.compile())
    # Callers read these: e.g. the analyzer keeps payload bytes only when a filter needs them.
    predicate.expression = expr  # type: ignore[attr-defined]
    predicate.fields = frozenset(compiler.used)  # type: ignore[attr-defined]
    return predicate


def needs_payload(predicate: Callable[[dict], bool]) -> bool:
    """Whether a compiled filter reads ``tcp.payload`` (dropped by the analyzer unless asked)."""
    return "tcp.payload" in getattr(predicate, "fields", ())
