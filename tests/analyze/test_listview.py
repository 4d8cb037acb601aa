"""The packet list's fast path prints exactly what the field-dict path prints, line for line.

Every capture the analyzer and oracle tests use (and random, lossy, damaged and hostile
ones) goes through both :func:`tcplab.analyze.listview.packet_lines` and
``render.packet_line(d)`` for the dicts of :func:`tcplab.analyze.analyze` in one pass
with checksums off (the plain list's settings); the two must be identical.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.analyze import CaptureDamage, analyze, render
from tcplab.analyze.listview import CHUNK_LINES, packet_lines
from tcplab.cli import main
from tcplab.packet import ipv4, ipv6, link, stack, tcp
from tcplab.pcap import open_writer
from tests.analyze import scenarios

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = ROOT / "examples" / "http_ecommerce.csv"
LO = ipv4.addr("127.0.0.1")


def dict_lines(path: str, **kw) -> list[str]:
    return [render.packet_line(d)
            for d in analyze(path, two_pass=False, checksums=False, payload=False, **kw)]


def fast_lines(path: str, **kw) -> list[str]:
    chunks = list(packet_lines(path, **kw))
    assert all(c.endswith("\n") for c in chunks)
    return "".join(chunks).splitlines()


def assert_identical(path: str, **kw) -> None:
    expected = dict_lines(path, **kw)
    got = fast_lines(path, **kw)
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected, strict=True), 1):
        assert a == b, f"frame {i} differs:\n fast: {a}\n dict: {b}"


LINKTYPES = [link.LINKTYPE_ETHERNET, link.LINKTYPE_NULL, 101, link.LINKTYPE_LINUX_SLL]


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_every_analysis_tag_scenario(tmp_path, linktype):
    for name, builder in (("anomalies", scenarios.anomalies()),
                          ("window_full", scenarios.window_full())):
        path = builder.write(str(tmp_path / f"{name}.pcap"), linktype)
        assert_identical(path)
        assert_identical(path, absolute=True)


def test_pcapng_and_ipv6(tmp_path):
    assert_identical(scenarios.anomalies().write(str(tmp_path / "a.pcapng"), link.LINKTYPE_NULL))
    b = scenarios.anomalies(ipv6.addr("2001:db8::1"), ipv6.addr("2001:db8::2"))
    assert_identical(b.write(str(tmp_path / "a6.pcap")))


@pytest.mark.parametrize("seed", range(6))
def test_random_and_lossy_conversations(tmp_path, seed):
    lt = LINKTYPES[seed % len(LINKTYPES)]
    assert_identical(scenarios.random_conversations(seed, 400).write(
        str(tmp_path / "r.pcap"), lt))
    assert_identical(scenarios.lossy_connections(seed, 8).write(
        str(tmp_path / "l.pcap"), lt), absolute=seed % 2 == 1)


@pytest.mark.parametrize("style", [("seed.pcap", "--style", "seed", "--linktype", "null"),
                                   ("stream.pcapng",)])
def test_encapsulated_sample_captures(tmp_path, style):
    out = tmp_path / style[0]
    proc = subprocess.run([sys.executable, "-m", "tcplab", "encap", str(SAMPLE_CSV), "-q", "-o",
                           str(out), *style[1:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_identical(str(out))


def test_http_chat_options_urgent_and_unusual_headers(tmp_path):
    """Frames the fast path takes and frames it must hand to the full dissector."""
    b = scenarios.Builder()
    a, c = scenarios.A, scenarios.B
    opts_sack = tcp.pack_options([tcp.NOP, tcp.NOP, tcp.sack([(5, 9)])])
    b.seg(a, c, 40000, 80, 1, 0, scenarios.S, opts=scenarios.SYN_OPTIONS)
    b.seg(c, a, 80, 40000, 9, 2, scenarios.SA, opts=scenarios.SYNACK_OPTIONS)
    b.seg(a, c, 40000, 80, 2, 10, scenarios.PA, b"GET /a\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n")
    b.seg(c, a, 80, 40000, 10, 40, scenarios.PA, b"HTTP/1.1 404 Not \x07Found\r\n\r\n")
    b.seg(c, a, 80, 40000, 10, 40, scenarios.PA, b"HTTP/1.1 404 Not \x07Found\r\n\r\n")
    b.seg(a, c, 40000, 80, 40, 38, scenarios.AK | tcp.URG, b"!")
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=opts_sack)
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=tcp.pack_options([tcp.NOP] * 4))
    b.seg(a, c, 40000, 80, 41, 38, scenarios.AK, opts=b"\x02\x09\x00\x00")  # bad MSS length
    b.seg(a, c, 40000, 55555, 7, 0, scenarios.PA, b"bob: hi \x1b]0;x\x07\nalice: yo\n")
    b.seg(c, a, 55555, 40000, 3, 0, scenarios.PA, b"ONLINE_USERS:bob,alice\n")
    b.seg(a, c, 40000, 80, 41, 38, scenarios.R)
    good = stack.tcp_packet(a, c, 1, 2, b"data", seq=5, flags=scenarios.PA)
    opt = bytearray(good[:20])
    opt[0] = 0x46  # IHL 24: IP options (a NOP and an EOL word)
    opt[2:4] = (len(good) + 4).to_bytes(2, "big")
    b.raw(bytes(opt) + b"\x01\x01\x01\x00" + good[20:])
    b.raw(good[:6] + b"\x20\x00" + good[8:])  # MF set: a fragment
    b.raw(good[:9] + b"\x11" + good[10:])  # protocol UDP on TCP bytes
    b.raw(good[:2] + b"\x00\x10" + good[4:])  # total length below the headers
    b.raw(good[:32] + b"\xf0" + good[33:])  # data offset past the end
    b.raw(good + b"trailer")  # Ethernet padding style: bytes after the IP packet
    path = b.write(str(tmp_path / "mixed.pcap"))
    assert_identical(path)
    assert_identical(path, chat_ports=frozenset({80}))


def test_hostile_and_cut_frames(tmp_path):
    rng = random.Random(7)
    payloads = [b"GET / HTTP/1.1\r\nHost: \x1b[31mred\r\n\r\n", b"HTTP/1.1 200 \x00\x9b2J\r\n",
                b"eve: \x1b]0;owned\x07\n", b""]
    for linktype in (link.LINKTYPE_ETHERNET, link.LINKTYPE_NULL, 101):
        path = str(tmp_path / f"hostile{linktype}.pcap")
        with open_writer(path, linktype) as w:
            for i in range(1200):
                opts = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 4, 12, 40])))
                pkt = bytearray(stack.tcp_packet(
                    LO, LO, rng.randrange(65536), rng.choice([80, 55555]), rng.choice(payloads),
                    seq=rng.randrange(1 << 32), flags=rng.randrange(512), options=opts))
                for _ in range(rng.randrange(3)):
                    pkt[rng.randrange(len(pkt))] = rng.randrange(256)
                frame = pkt if linktype == 101 else link.frame(linktype, bytes(pkt))
                orig = len(frame)
                if rng.random() < 0.2:
                    frame = frame[: rng.randrange(len(frame) + 1)]
                    orig = len(frame) if rng.random() < 0.5 else orig  # damaged or a snaplen cut
                w.write(bytes(frame), i * 1000, orig_len=orig)
        assert_identical(path)


def test_many_chunks_and_count_limit(tmp_path):
    b = scenarios.random_conversations(3, CHUNK_LINES * 2 + 100)
    path = b.write(str(tmp_path / "long.pcap"))
    assert len(list(packet_lines(path))) == 3
    assert_identical(path)
    assert fast_lines(path, max_packets=CHUNK_LINES) == dict_lines(path, max_packets=CHUNK_LINES)
    assert len(fast_lines(path, max_packets=5)) == 5


def test_damage_after_good_packets_is_raised_after_their_lines(tmp_path):
    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(path).read_bytes()[:-10])
    got: list[str] = []
    with pytest.raises(CaptureDamage) as fast_exc:
        for chunk in packet_lines(str(cut)):
            got += chunk.splitlines()
    expected: list[str] = []
    with pytest.raises(CaptureDamage) as dict_exc:
        for d in analyze(str(cut), two_pass=False, checksums=False, payload=False):
            expected.append(render.packet_line(d))
    assert got == expected and len(got) == 36
    assert str(fast_exc.value) == str(dict_exc.value)
    assert fast_exc.value.as_packet() == dict_exc.value.as_packet()


def test_cli_plain_list_equals_the_dict_path(tmp_path, capsys):
    path = scenarios.lossy_connections(11, 10).write(str(tmp_path / "l.pcap"))
    assert main(["analyze", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [render.LIST_HEADER, *dict_lines(path)]
    assert main(["analyze", path, "--absolute", "-c", "20", "--chat-port", "8001"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [render.LIST_HEADER, *dict_lines(path, absolute=True, max_packets=20,
                                                   chat_ports=frozenset({8001}))]
    # --two-pass keeps the dict path (tshark -2's final values).
    assert main(["analyze", path, "--two-pass"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [render.LIST_HEADER,
                   *(render.packet_line(d) for d in analyze(path, checksums=False, payload=False))]
