"""The filter compiler against tcpdump: same expression, same frames, same verdicts.

A corpus of Ethernet frames (TCP/UDP/SCTP/ICMP over IPv4 and IPv6, IPv4 options and
fragments, an IPv6 fragment header, ARP/RARP, truncated frames) is written to a pcap;
tcpdump reads it with each expression and our program runs over the same frames in
:mod:`tests.wire.bpfvm`. Both must accept exactly the same frames.
"""

from __future__ import annotations

import struct
import subprocess

import pytest

from tcplab.errors import InputError
from tcplab.packet import ipv4, ipv6, link, stack, tcp
from tcplab.wire import bpf
from tests.support import require_program
from tests.wire import bpfvm

LO4 = ipv4.addr("127.0.0.1")
OTHER4 = ipv4.addr("10.1.2.3")
LO6 = ipv6.addr("::1")
OTHER6 = ipv6.addr("2001:db8::7")


def _eth(packet: bytes, ethertype: int | None = None) -> bytes:
    if ethertype is None:
        return stack.frame(link.LINKTYPE_ETHERNET, packet)
    return link.ETHERNET_HEADER.pack(b"\x02" * 6, b"\x04" * 6, ethertype) + packet


def _arp(sender: bytes, target: bytes, ethertype: int = link.ETHERTYPE_ARP) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02" * 6, sender, b"\0" * 6,
                       target)
    return _eth(body, ethertype)


def _fragment(packet: bytes, offset_units: int, more: bool) -> bytes:
    """Rewrite the IPv4 flags/offset word (checksum recomputed)."""
    head = ipv4.parse(packet)
    head.fragment_offset = offset_units
    head.mf = more
    return head.pack(len(packet) - 20) + packet[20:]


def _with_ip_options(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    segment = tcp.build_segment(src, dst, sport, dport, b"opt")
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    return ipv4.build_header(src, dst, len(segment), options=options) + segment


def _ipv6_fragment(src: bytes, dst: bytes, proto: int, sport: int, dport: int) -> bytes:
    transport = tcp.build_segment(src, dst, sport, dport, b"frag6")
    frag = struct.pack("!BBHI", proto, 0, 0, 0x1234)
    return ipv6.build_header(src, dst, len(frag) + len(transport), next_header=44) + frag + transport


def corpus() -> list[bytes]:
    frames: list[bytes] = []
    ports = [(5074, 12345), (12345, 5074), (80, 40000), (40000, 80), (53, 53), (15, 2000),
             (2000, 20), (55555, 1), (9, 9)]
    for src, dst in ((LO4, LO4), (OTHER4, LO4), (LO4, OTHER4), (OTHER4, OTHER4)):
        for sport, dport in ports:
            frames.append(_eth(stack.tcp_packet(src, dst, sport, dport, b"x")))
            frames.append(_eth(stack.udp_packet(src, dst, sport, dport, b"y")))
        sctp = stack.ip_packet(src, dst, 132, struct.pack("!HHII", 80, 999, 0, 0))
        frames.append(_eth(sctp))
        icmp = stack.ip_packet(src, dst, 1, b"\x08\x00\xf7\xff\x00\x00\x00\x00")
        frames.append(_eth(icmp))
        frames.append(_eth(_with_ip_options(src, dst, 80, 5074)))
        first = stack.tcp_packet(src, dst, 5074, 80, b"z" * 16)
        frames.append(_eth(_fragment(first, 0, True)))
        frames.append(_eth(_fragment(first, 3, False)))
    for src, dst in ((LO6, LO6), (OTHER6, LO6), (LO6, OTHER6)):
        for sport, dport in ports:
            frames.append(_eth(stack.tcp_packet(src, dst, sport, dport, b"6")))
            frames.append(_eth(stack.udp_packet(src, dst, sport, dport, b"6")))
        frames.append(_eth(stack.ip_packet(src, dst, 58, b"\x80\x00\x00\x00\x00\x00\x00\x00")))
        frames.append(_eth(_ipv6_fragment(src, dst, 6, 80, 5074)))
        frames.append(_eth(_ipv6_fragment(src, dst, 17, 53, 53)))
    frames.append(_arp(LO4, OTHER4))
    frames.append(_arp(OTHER4, LO4))
    frames.append(_arp(OTHER4, LO4, 0x8035))
    frames.append(_arp(OTHER4, OTHER4))
    good = _eth(stack.tcp_packet(LO4, LO4, 5074, 12345, b"GET /blog HTTP/1.1"))
    for cut in (10, 13, 20, 30, 34, 36, 38):
        frames.append(good[:cut])
    frames.append(_eth(b"\x00" * 46, 0x88CC))  # LLDP-like: neither IP nor ARP
    return frames


EXPRESSIONS = [
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "host 127.0.0.1",
    "src host 127.0.0.1",
    "dst host 10.1.2.3",
    "host ::1",
    "src host 2001:db8::7",
    "dst host ::1",
    "port 80",
    "port 5074",
    "src port 5074",
    "dst port 12345",
    "tcp port 80",
    "udp port 53",
    "tcp dst port 80",
    "udp src port 53",
    "portrange 10-20",
    "tcp portrange 1-100",
    "dst portrange 2000-40000",
    "not tcp",
    "! port 80",
    "tcp port 5074 and host 127.0.0.1",
    "tcp port 55555 and host 127.0.0.1",
    "tcp and (port 80 or port 53)",
    "(tcp || udp) && not host 10.1.2.3",
    "udp or icmp or arp",
    "not (ip6 and port 80)",
    "ip and not src host 127.0.0.1 and tcp",
]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[bytes]]:
    from tcplab.pcap.pcap import PcapWriter

    frames = corpus()
    path = str(tmp_path_factory.mktemp("bpf") / "corpus.pcap")
    with PcapWriter(path, link.LINKTYPE_ETHERNET) as writer:
        for index, frame in enumerate(frames):
            writer.write(frame, (index + 1) * 1_000_000_000)
    return path, frames


def tcpdump_accepts(path: str, expression: str) -> set[int]:
    exe = require_program("tcpdump")
    proc = subprocess.run([exe, "-r", path, "-n", "-tt", "-q", expression],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {int(line.split(".", 1)[0]) - 1 for line in proc.stdout.splitlines() if line}


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_same_verdicts_as_tcpdump(corpus_file: tuple[str, list[bytes]], expression: str) -> None:
    path, frames = corpus_file
    program = bpf.compile_filter(expression)
    ours = {i for i, frame in enumerate(frames) if bpfvm.run(program, frame)}
    expected = tcpdump_accepts(path, expression)
    assert ours == expected, (
        f"only ours: {sorted(ours - expected)}, only tcpdump: {sorted(expected - ours)}"
    )
    assert 0 < len(expected) < len(frames), "the corpus must separate this expression"


IDENTICAL_TO_LIBPCAP = ["tcp", "udp", "icmp", "icmp6", "ip6", "arp", "host 127.0.0.1",
                        "src host 127.0.0.1", "dst host 127.0.0.1", "host ::1", "port 80",
                        "src port 80", "tcp port 80", "udp dst port 53"]


@pytest.mark.parametrize("expression", IDENTICAL_TO_LIBPCAP)
def test_single_primitives_compile_to_libpcaps_program(expression: str) -> None:
    """For one primitive, our program is libpcap's, instruction for instruction: `tcpdump -d`
    and `tcplab capture -d` print the same text. (Combinations differ only in jump layout,
    libpcap's optimiser merging blocks; their verdicts are held equal above.)"""
    exe = require_program("tcpdump")
    proc = subprocess.run([exe, "-d", "-y", "EN10MB", expression], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert bpf.disassemble(bpf.compile_filter(expression)) == proc.stdout.rstrip("\n")


def test_sll_layout_uses_cooked_offsets() -> None:
    frame = link.frame(link.LINKTYPE_LINUX_SLL, stack.tcp_packet(LO4, LO4, 5074, 80, b"a"))
    program = bpf.compile_filter("tcp port 80", link.LINKTYPE_LINUX_SLL)
    assert bpfvm.run(program, frame) == bpf.DEFAULT_SNAPLEN
    assert bpfvm.run(bpf.compile_filter("udp", link.LINKTYPE_LINUX_SLL), frame) == 0


def test_drop_outgoing_rejects_only_the_sent_copy() -> None:
    frame = _eth(stack.tcp_packet(LO4, LO4, 5074, 12345, b"x"))
    program = bpf.compile_filter("tcp", drop_outgoing=True)
    assert bpfvm.run(program, frame, pkttype=0) == bpf.DEFAULT_SNAPLEN
    assert bpfvm.run(program, frame, pkttype=bpf.PACKET_OUTGOING) == 0
    everything = bpf.compile_filter(None, drop_outgoing=True)
    assert bpfvm.run(everything, b"\x00" * 14, pkttype=0) == bpf.DEFAULT_SNAPLEN
    assert bpfvm.run(everything, b"\x00" * 14, pkttype=bpf.PACKET_OUTGOING) == 0


def test_packed_program_round_trips() -> None:
    program = bpf.compile_filter("tcp port 5074 and host 127.0.0.1", drop_outgoing=True)
    assert bpfvm.unpack(bpf.pack_program(program)) == [
        bpf.Instruction(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in program
    ]


def test_options_become_one_expression() -> None:
    text = bpf.expression_from_options(expression="not arp", ports=[80, 5074],
                                       hosts=["127.0.0.1"], protocol="tcp")
    assert text == "tcp and (port 80 or port 5074) and (host 127.0.0.1) and (not arp)"
    bpf.compile_filter(text)
    assert bpf.expression_from_options() is None


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("tcp port", "ends too early"),
        ("port 70000", "'70000' is not a port"),
        ("host 300.1.1.1", "'300.1.1.1' is not an IPv4 or IPv6 address"),
        ("tcp and (udp", "expected ')'"),
        ("net 10.0.0.0/8", "unsupported or missing primitive"),
        ("tcp udp", "expected 'and', 'or' or ')'"),
        ("portrange 5", "portrange needs LOW-HIGH"),
        ("tcp host 1.2.3.4", "expected 'and'"),
        ("", "filter is empty"),
    ],
)
def test_bad_expressions_name_the_problem(expression: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        bpf.parse(expression)
    assert fragment in str(info.value)
    assert "filter" in str(info.value)


def test_disassembly_reads_like_tcpdump() -> None:
    text = bpf.disassemble(bpf.compile_filter("ip"))
    assert text.splitlines() == [
        "(000) ldh      [12]",
        "(001) jeq      #0x800           jt 2\tjf 3",
        "(002) ret      #262144",
        "(003) ret      #0",
    ]
