"""A tcpdump-style filter subset compiled to classic BPF (the kernel's socket filter). No I/O here.

``tcplab capture`` attaches the program with ``SO_ATTACH_FILTER`` so the kernel discards
unwanted frames before they cost a copy into Python. The accepted language is the part of
pcap-filter(7) a student needs for the course's captures::

    expr      := term { ("or" | "||") term }
    term      := factor { ("and" | "&&") factor }
    factor    := ("not" | "!") factor | "(" expr ")" | primitive
    primitive := "ip" | "ip6" | "arp" | "tcp" | "udp" | "icmp" | "icmp6"
               | ["tcp" | "udp"] ["src" | "dst"] ("port" N | "portrange" N-M)
               | ["src" | "dst"] "host" ADDRESS            (IPv4 or IPv6)

Every primitive generates the same tests libpcap 1.10 generates for it (``tcpdump -d``
shows them): ``host`` on IPv4 also matches ARP/RARP sender/target addresses, ``port``
skips IPv4 non-first fragments and reads IPv6 ports only right after the fixed header,
and ``tcp``/``udp`` on IPv6 look one fragment header deep. So a filter behaves here
exactly as the same words do in tcpdump or Wireshark's capture filter box; the tests hold
that against tcpdump on a shared corpus of frames.

This module only builds and explains programs; it must never open a socket or file.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

from tcplab.errors import InputError
from tcplab.packet import link

# Instruction classes and modes (linux/filter.h, from the BSD Packet Filter paper).
LD_W_ABS = 0x20  # A = word at [k]
LD_H_ABS = 0x28  # A = half-word at [k]
LD_B_ABS = 0x30  # A = byte at [k]
LD_W_IND = 0x40  # A = word at [X + k]
LD_H_IND = 0x48  # A = half-word at [X + k]
LD_B_IND = 0x50  # A = byte at [X + k]
LDX_B_MSH = 0xB1  # X = 4 * ([k] & 0x0f): the IPv4 header length
ALU_AND_K = 0x54  # A &= k
JMP_JA = 0x05  # jump always by k
JMP_JEQ_K = 0x15  # A == k ?
JMP_JGT_K = 0x25  # A > k ?
JMP_JGE_K = 0x35  # A >= k ?
JMP_JSET_K = 0x45  # A & k != 0 ?
RET_K = 0x06  # accept k bytes of the frame (0 = drop)

# Linux "ancillary data" loads: absolute loads at negative offsets read skb metadata.
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
PACKET_OUTGOING = 4  # sll_pkttype of a frame the host sends (linux/if_packet.h)

#: Bytes to keep of each accepted frame; tcpdump's default snapshot length.
DEFAULT_SNAPLEN = 262144

ETHERTYPE_IPV4 = link.ETHERTYPE_IPV4
ETHERTYPE_IPV6 = link.ETHERTYPE_IPV6
ETHERTYPE_ARP = link.ETHERTYPE_ARP
ETHERTYPE_RARP = 0x8035
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
# `port` without a protocol means "sctp, tcp or udp", in the order libpcap tests them.
PORT_PROTOCOLS = (IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP)

# The longest program the kernel accepts (BPF_MAXINSNS); our subset stays far below it.
MAX_INSTRUCTIONS = 4096

_PROTO_WORDS = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}


@dataclass(frozen=True, slots=True)
class Instruction:
    """One ``struct sock_filter``: opcode, jump-if-true, jump-if-false, constant."""

    code: int
    jt: int
    jf: int
    k: int

    def pack(self) -> bytes:
        return _SOCK_FILTER.pack(self.code, self.jt, self.jf, self.k & 0xFFFFFFFF)


_SOCK_FILTER = struct.Struct("=HBBI")


@dataclass(frozen=True, slots=True)
class LinkLayout:
    """Where the network header and its type field sit in a frame of one link type."""

    linktype: int
    ethertype_offset: int
    network_offset: int


LAYOUTS = {
    link.LINKTYPE_ETHERNET: LinkLayout(link.LINKTYPE_ETHERNET, 12, 14),
    link.LINKTYPE_LINUX_SLL: LinkLayout(link.LINKTYPE_LINUX_SLL, 14, 16),
}


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class Proto:
    """``ip``, ``ip6``, ``arp`` (an ethertype) or ``tcp``/``udp``/``icmp``/``icmp6``."""

    name: str


@dataclass(frozen=True, slots=True)
class Host:
    address: bytes  # 4 or 16 bytes
    direction: str  # "src", "dst" or "either"


@dataclass(frozen=True, slots=True)
class Port:
    low: int
    high: int
    direction: str
    protocols: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


Node = Proto | Host | Port | Not | And | Or

_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!&|]+)")


def _tokenize(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InputError(f"filter {text!r}: unexpected character at column {pos + 1}")
        tokens.append((m.group(1), m.start(1)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str) -> InputError:
        if self.i < len(self.tokens):
            where = f"at {self.tokens[self.i][0]!r} (column {self.tokens[self.i][1] + 1})"
        else:
            where = "at the end"
        return InputError(f"filter {self.text!r}: {message} {where}")

    def peek(self) -> str | None:
        return self.tokens[self.i][0].lower() if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise self.error("expression ends too early")
        word = self.tokens[self.i][0]
        self.i += 1
        return word

    def parse(self) -> Node:
        if not self.tokens:
            raise InputError("filter is empty")
        node = self.expr()
        if self.i != len(self.tokens):
            raise self.error("expected 'and', 'or' or ')'")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("or", "||"):
            self.i += 1
            node = Or(node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek() in ("and", "&&"):
            self.i += 1
            node = And(node, self.factor())
        return node

    def factor(self) -> Node:
        word = self.peek()
        if word in ("not", "!"):
            self.i += 1
            return Not(self.factor())
        if word == "(":
            self.i += 1
            node = self.expr()
            if self.peek() != ")":
                raise self.error("expected ')'")
            self.i += 1
            return node
        return self.primitive()

    def primitive(self) -> Node:
        word = self.peek()
        if word is None:
            raise self.error("expected a primitive (host, port, tcp, ...)")
        protocols: tuple[int, ...] | None = None
        if word in ("ip", "ip6", "arp", "icmp", "icmp6", "tcp", "udp"):
            self.i += 1
            if word in _PROTO_WORDS and self.peek() in ("src", "dst", "port", "portrange"):
                protocols = (_PROTO_WORDS[word],)
            else:
                return Proto(word)
        direction = "either"
        if self.peek() in ("src", "dst"):
            direction = self.take().lower()
        kind = self.peek()
        if kind == "host" and protocols is None:
            self.i += 1
            return Host(self._address(self.take()), direction)
        if kind == "port":
            self.i += 1
            port = self._port(self.take())
            return Port(port, port, direction, protocols or PORT_PROTOCOLS)
        if kind == "portrange":
            self.i += 1
            text = self.take()
            low_text, sep, high_text = text.partition("-")
            if not sep:
                self.i -= 1
                raise self.error("portrange needs LOW-HIGH")
            low, high = self._port(low_text), self._port(high_text)
            return Port(min(low, high), max(low, high), direction, protocols or PORT_PROTOCOLS)
        raise self.error("unsupported or missing primitive (supported: host, port, portrange, "
                         "ip, ip6, arp, tcp, udp, icmp, icmp6, not/and/or, parentheses)")

    def _port(self, text: str) -> int:
        if not text.isdigit() or int(text) > 65535:
            self.i -= 1
            raise self.error(f"{text!r} is not a port number 0-65535")
        return int(text)

    def _address(self, text: str) -> bytes:
        try:
            return ipaddress.ip_address(text).packed
        except ValueError:
            self.i -= 1
            raise self.error(f"{text!r} is not an IPv4 or IPv6 address") from None


def parse(text: str) -> Node:
    """Parse a filter expression; errors name the offending word and its column."""
    return _Parser(text).parse()


# ------------------------------------------------------------------------ code generation


class _Label:
    __slots__ = ("position",)

    def __init__(self) -> None:
        self.position: int | None = None


@dataclass(slots=True)
class _Pending:
    code: int
    k: int
    jt: _Label | None = None
    jf: _Label | None = None


class _Emitter:
    """Short-circuit code generation: every test jumps to a true or a false label."""

    def __init__(self, layout: LinkLayout) -> None:
        self.layout = layout
        self.code: list[_Pending | _Label] = []

    def label(self) -> _Label:
        return _Label()

    def place(self, label: _Label) -> None:
        self.code.append(label)

    def stmt(self, code: int, k: int) -> None:
        self.code.append(_Pending(code, k))

    def jump(self, code: int, k: int, jt: _Label, jf: _Label) -> None:
        self.code.append(_Pending(code, k, jt, jf))

    # --- tests on the frame, each ending in a jump to `yes` or `no`

    def ethertype(self, value: int, yes: _Label, no: _Label) -> None:
        self.stmt(LD_H_ABS, self.layout.ethertype_offset)
        self.jump(JMP_JEQ_K, value, yes, no)

    def gen(self, node: Node, yes: _Label, no: _Label) -> None:
        net = self.layout.network_offset
        if isinstance(node, And):
            mid = self.label()
            self.gen(node.left, mid, no)
            self.place(mid)
            self.gen(node.right, yes, no)
        elif isinstance(node, Or):
            mid = self.label()
            self.gen(node.left, yes, mid)
            self.place(mid)
            self.gen(node.right, yes, no)
        elif isinstance(node, Not):
            self.gen(node.operand, no, yes)
        elif isinstance(node, Proto):
            self._proto(node.name, yes, no)
        elif isinstance(node, Host):
            if len(node.address) == 4:
                self._host4(node, yes, no)
            else:
                is6 = self.label()
                self.ethertype(ETHERTYPE_IPV6, is6, no)
                self.place(is6)
                offsets = {"src": (net + 8,), "dst": (net + 24,), "either": (net + 8, net + 24)}
                self._match_words(offsets[node.direction], node.address, yes, no)
        elif isinstance(node, Port):
            self._port(node, yes, no)
        else:  # pragma: no cover - the parser builds only the node types above
            raise TypeError(node)

    def _proto(self, name: str, yes: _Label, no: _Label) -> None:
        net = self.layout.network_offset
        if name in ("ip", "ip6", "arp"):
            value = {"ip": ETHERTYPE_IPV4, "ip6": ETHERTYPE_IPV6, "arp": ETHERTYPE_ARP}[name]
            self.ethertype(value, yes, no)
            return
        number = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "icmp": IPPROTO_ICMP,
                  "icmp6": IPPROTO_ICMPV6}[name]
        if name != "icmp6":
            is4, not4 = self.label(), self.label()
            self.ethertype(ETHERTYPE_IPV4, is4, not4 if name != "icmp" else no)
            self.place(is4)
            self.stmt(LD_B_ABS, net + 9)
            self.jump(JMP_JEQ_K, number, yes, no)
            if name == "icmp":
                return
            self.place(not4)
            is6 = self.label()
            self.jump(JMP_JEQ_K, ETHERTYPE_IPV6, is6, no)
        else:
            is6 = self.label()
            self.ethertype(ETHERTYPE_IPV6, is6, no)
        # IPv6: the next header, or the one after a fragment header (libpcap's depth).
        self.place(is6)
        frag, in_frag = self.label(), self.label()
        self.stmt(LD_B_ABS, net + 6)
        self.jump(JMP_JEQ_K, number, yes, frag)
        self.place(frag)
        self.jump(JMP_JEQ_K, IPPROTO_IPV6_FRAGMENT, in_frag, no)
        self.place(in_frag)
        self.stmt(LD_B_ABS, net + 40)
        self.jump(JMP_JEQ_K, number, yes, no)

    def _host4(self, node: Host, yes: _Label, no: _Label) -> None:
        net = self.layout.network_offset
        value = int.from_bytes(node.address, "big")
        is4, not4, arp = self.label(), self.label(), self.label()
        ip_offsets = {"src": (net + 12,), "dst": (net + 16,), "either": (net + 12, net + 16)}
        # ARP/RARP: sender protocol address at 14, target at 24 (RFC 826 for Ethernet/IPv4).
        arp_offsets = {"src": (net + 14,), "dst": (net + 24,), "either": (net + 14, net + 24)}
        self.ethertype(ETHERTYPE_IPV4, is4, not4)
        self.place(is4)
        self._any_word(ip_offsets[node.direction], value, yes, no)
        self.place(not4)
        rarp = self.label()
        self.jump(JMP_JEQ_K, ETHERTYPE_ARP, arp, rarp)
        self.place(rarp)
        self.jump(JMP_JEQ_K, ETHERTYPE_RARP, arp, no)
        self.place(arp)
        self._any_word(arp_offsets[node.direction], value, yes, no)

    def _any_word(self, offsets: tuple[int, ...], value: int, yes: _Label, no: _Label) -> None:
        for index, offset in enumerate(offsets):
            nxt = self.label() if index + 1 < len(offsets) else no
            self.stmt(LD_W_ABS, offset)
            self.jump(JMP_JEQ_K, value, yes, nxt)
            if nxt is not no:
                self.place(nxt)

    def _match_words(self, offsets: tuple[int, ...], address: bytes, yes: _Label,
                     no: _Label) -> None:
        """Any of the 16-byte fields at ``offsets`` equals ``address`` (four word compares)."""
        words = struct.unpack("!4I", address)
        for index, offset in enumerate(offsets):
            nxt = self.label() if index + 1 < len(offsets) else no
            for w, word in enumerate(words):
                cont = self.label() if w < 3 else yes
                self.stmt(LD_W_ABS, offset + 4 * w)
                self.jump(JMP_JEQ_K, word, cont, nxt)
                if w < 3:
                    self.place(cont)
            if nxt is not no:
                self.place(nxt)

    def _protocol_in(self, protocols: tuple[int, ...], yes: _Label, no: _Label) -> None:
        for index, number in enumerate(protocols):
            nxt = self.label() if index + 1 < len(protocols) else no
            self.jump(JMP_JEQ_K, number, yes, nxt)
            if nxt is not no:
                self.place(nxt)

    def _port_value(self, load: int, offset: int, node: Port, yes: _Label, no: _Label) -> None:
        self.stmt(load, offset)
        if node.low == node.high:
            self.jump(JMP_JEQ_K, node.low, yes, no)
        else:
            ge = self.label()
            self.jump(JMP_JGE_K, node.low, ge, no)
            self.place(ge)
            self.jump(JMP_JGT_K, node.high, no, yes)

    def _ports(self, load: int, base: int, node: Port, yes: _Label, no: _Label) -> None:
        if node.direction == "src":
            self._port_value(load, base, node, yes, no)
        elif node.direction == "dst":
            self._port_value(load, base + 2, node, yes, no)
        else:
            other = self.label()
            self._port_value(load, base, node, yes, other)
            self.place(other)
            self._port_value(load, base + 2, node, yes, no)

    def _port(self, node: Port, yes: _Label, no: _Label) -> None:
        net = self.layout.network_offset
        is6, not6, six_proto, is4, four_proto, first = (self.label() for _ in range(6))
        self.ethertype(ETHERTYPE_IPV6, is6, not6)
        self.place(is6)
        self.stmt(LD_B_ABS, net + 6)
        self._protocol_in(node.protocols, six_proto, no)
        self.place(six_proto)
        self._ports(LD_H_ABS, net + 40, node, yes, no)
        self.place(not6)
        self.jump(JMP_JEQ_K, ETHERTYPE_IPV4, is4, no)
        self.place(is4)
        self.stmt(LD_B_ABS, net + 9)
        self._protocol_in(node.protocols, four_proto, no)
        self.place(four_proto)
        # Only the first fragment carries the transport header (fragment offset 0).
        self.stmt(LD_H_ABS, net + 6)
        self.jump(JMP_JSET_K, 0x1FFF, no, first)
        self.place(first)
        self.stmt(LDX_B_MSH, net)
        self._ports(LD_H_IND, net, node, yes, no)

    def assemble(self) -> list[Instruction]:
        position = 0
        for item in self.code:
            if isinstance(item, _Label):
                item.position = position
            else:
                position += 1
        program: list[Instruction] = []
        index = 0
        for item in self.code:
            if isinstance(item, _Label):
                continue
            jt = jf = 0
            if item.jt is not None and item.jf is not None:
                jt = _offset(item.jt, index)
                jf = _offset(item.jf, index)
            program.append(Instruction(item.code, jt, jf, item.k))
            index += 1
        if len(program) > MAX_INSTRUCTIONS:
            raise InputError(f"filter compiles to {len(program)} instructions; the kernel "
                             f"accepts at most {MAX_INSTRUCTIONS}")
        return program


def _offset(label: _Label, index: int) -> int:
    assert label.position is not None, "jump to a label never placed"
    delta = label.position - index - 1
    if not 0 <= delta <= 255:
        raise InputError("filter is too long for classic BPF's 8-bit jumps; simplify it")
    return delta


def compile_filter(
    expression: str | None,
    linktype: int = link.LINKTYPE_ETHERNET,
    *,
    snaplen: int = DEFAULT_SNAPLEN,
    drop_outgoing: bool = False,
) -> list[Instruction]:
    """Compile ``expression`` (None or "" = accept all) for frames of ``linktype``.

    ``drop_outgoing`` prepends a test of the packet type so that on ``lo``, where the
    kernel hands a packet socket every frame twice (once as sent, once as received), only
    the received copy survives — the copy libpcap keeps — and the duplicate never leaves
    the kernel.
    """
    layout = LAYOUTS.get(linktype)
    if layout is None:
        names = ", ".join(link.LINKTYPE_NAMES[t] for t in LAYOUTS)
        raise InputError(f"filters can be compiled for link types {names}, not {linktype}")
    emitter = _Emitter(layout)
    accept, reject = emitter.label(), emitter.label()
    if drop_outgoing:
        incoming = emitter.label()
        emitter.stmt(LD_W_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE)
        emitter.jump(JMP_JEQ_K, PACKET_OUTGOING, reject, incoming)
        emitter.place(incoming)
    if expression and expression.strip():
        emitter.gen(parse(expression), accept, reject)
    else:
        emitter.stmt(JMP_JA, 0)
    emitter.place(accept)
    emitter.stmt(RET_K, snaplen)
    emitter.place(reject)
    emitter.stmt(RET_K, 0)
    return emitter.assemble()


def pack_program(program: list[Instruction]) -> bytes:
    """The program as the array of ``struct sock_filter`` that ``SO_ATTACH_FILTER`` points to."""
    return b"".join(ins.pack() for ins in program)


def expression_from_options(
    *,
    expression: str | None = None,
    ports: list[int] | tuple[int, ...] = (),
    hosts: list[str] | tuple[str, ...] = (),
    protocol: str | None = None,
) -> str | None:
    """Combine ``--port``/``--host``/``--proto`` with a free expression into one filter.

    Several ports (or hosts) are alternatives; the groups are combined with ``and``.
    """
    parts: list[str] = []
    if protocol:
        parts.append(protocol)
    if ports:
        parts.append("(" + " or ".join(f"port {p}" for p in ports) + ")")
    if hosts:
        parts.append("(" + " or ".join(f"host {h}" for h in hosts) + ")")
    if expression and expression.strip():
        parts.append(f"({expression})")
    return " and ".join(parts) if parts else None


_MNEMONICS = {
    LD_W_ABS: "ld", LD_H_ABS: "ldh", LD_B_ABS: "ldb", LD_W_IND: "ld", LD_H_IND: "ldh",
    LD_B_IND: "ldb", LDX_B_MSH: "ldxb", ALU_AND_K: "and", JMP_JA: "ja", JMP_JEQ_K: "jeq",
    JMP_JGT_K: "jgt", JMP_JGE_K: "jge", JMP_JSET_K: "jset", RET_K: "ret",
}


def disassemble(program: list[Instruction]) -> str:
    """Text in ``tcpdump -d``'s format, so a student can set the two side by side."""
    lines = []
    for i, ins in enumerate(program):
        name = _MNEMONICS.get(ins.code, f"op{ins.code:#x}")
        if ins.code in (LD_W_ABS, LD_H_ABS, LD_B_ABS):
            if ins.k >= 0x80000000 or ins.k < 0:
                operand = "#pktyp" if ins.k & 0xFFFFFFFF == (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF \
                    else f"[{ins.k}]"
                text = f"{name:<8} {operand}"
            else:
                text = f"{name:<8} [{ins.k}]"
        elif ins.code in (LD_W_IND, LD_H_IND, LD_B_IND):
            text = f"{name:<8} [x + {ins.k}]"
        elif ins.code == LDX_B_MSH:
            text = f"{name:<8} 4*([{ins.k}]&0xf)"
        elif ins.code in (JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K):
            text = f"{name:<8} {'#' + hex(ins.k):<16} jt {i + 1 + ins.jt}\tjf {i + 1 + ins.jf}"
        elif ins.code == JMP_JA:
            text = f"{name:<8} {i + 1 + ins.k}"
        else:
            text = f"{name:<8} #{ins.k}"
        lines.append(f"({i:03d}) {text}")
    return "\n".join(lines)
