"""The record path's two kinds of record agree: one-unpack records equal full-dissector ones.

Every capture the analyzer and oracle tests use (and random, lossy, damaged and hostile
ones) is read twice: by :meth:`Analyzer.packets` (the one-``struct`` records for common
frames, the full dissector for the rest) and frame by frame through
:meth:`Analyzer.packet` (the full dissector for every frame). For every frame the
attributes, the packet-list line and the rendered field dictionary must be identical,
and every field name a fast record answers without rendering must give what its rendered
dictionary says.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.analyze import CaptureDamage, analyze, render
from tcplab.analyze.record import _HELD, Analyzer, Packet
from tcplab.analyze.session import AnalysisSession
from tcplab.cli import main
from tcplab.packet import ipv4, ipv6, link, stack, tcp
from tcplab.pcap import CaptureFormatError, open_capture, open_writer
from tests.analyze import scenarios
from tests.analyze.golden.make_golden import HERE as GOLDEN_DIR

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = ROOT / "examples" / "http_ecommerce.csv"
LO = ipv4.addr("127.0.0.1")
ATTRS = ("number", "ts_ns", "time_relative", "frame_len", "cap_len", "linktype", "comment",
         "src", "dst", "sport", "dport", "flags", "seglen", "seq_raw", "ack_raw",
         "window_value", "stream", "aflags", "completeness")
TCP_ATTRS = ("fbase", "rbase", "scale", "seq", "ack", "nxtseq", "window", "payload")


def _analyzer(reader, final, **kw) -> Analyzer:
    return Analyzer(reader.linktype, interfaces=reader.interfaces, final=final, **kw)


def fast_records(path: str, final=None, **kw) -> list[Packet]:
    reader = open_capture(path)
    out: list[Packet] = []
    try:
        for p in _analyzer(reader, final, **kw).packets(reader):
            out.append(p)
    except CaptureDamage:
        pass
    finally:
        reader.close()
    return out


def block_lines(path: str, final=None, block: int = 3, **kw) -> list[str]:
    """The list as :meth:`Analyzer.list_blocks` writes it (most lines without a record)."""
    reader = open_capture(path)
    out: list[str] = []
    try:
        for lines in _analyzer(reader, final, **kw).list_blocks(reader, block=block):
            assert 0 < len(lines) <= block
            out.extend(line.decode() for line in lines)
    except CaptureDamage:
        pass
    finally:
        reader.close()
    return out


def full_records(path: str, final=None, **kw) -> list[Packet]:
    reader = open_capture(path)
    a = _analyzer(reader, final, **kw)
    out: list[Packet] = []
    try:
        for ts, data, orig_len, lt, iface, _off, comment in reader:
            out.append(a.packet(data, ts, orig_len, lt, comment, iface))
    except CaptureFormatError:
        pass
    finally:
        reader.close()
    return out


def assert_identical(path: str, *, two_pass: bool = False, **kw) -> None:
    final = AnalysisSession(path)._skim() if two_pass else None
    fast = fast_records(path, final, **kw)
    full = full_records(path, final, **kw)
    assert len(fast) == len(full)
    # The list written without records is the list of the full dissector's records.
    assert block_lines(path, final, **kw) == [g.list_line() for g in full]
    for f, g in zip(fast, full, strict=True):
        held_fast = f._fields is None
        if held_fast:
            answers = {k: (f.get(k), k in f) for k in _HELD}
        line = f.list_line()
        assert line == g.list_line(), f"frame {f.number}:\n fast: {line}\n full: {g.list_line()}"
        for name in ATTRS:
            assert getattr(f, name) == getattr(g, name), (f.number, name)
        if g.stream is not None:
            for name in TCP_ATTRS:
                assert getattr(f, name) == getattr(g, name), (f.number, name)
        d = f.fields()
        assert list(d.items()) == list(g.fields().items()), f"frame {f.number}"
        if held_fast:
            for k, (value, present) in answers.items():
                assert value == d.get(k) and type(value) is type(d.get(k)), (f.number, k)
                assert present == (k in d), (f.number, k)


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


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN_DIR.iterdir()
                                         if p.suffix in (".pcap", ".pcapng")))
@pytest.mark.parametrize("options", [{}, {"absolute": True, "payload": False, "checksums": False},
                                     {"two_pass": True}])
def test_golden_captures(name, options):
    assert_identical(str(GOLDEN_DIR / name), **options)


def test_list_blocks_hold_at_least_one_line(tmp_path):
    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    reader = open_capture(path)
    try:
        with pytest.raises(ValueError, match="at least one line"):
            _analyzer(reader, None).list_blocks(reader, block=0)
    finally:
        reader.close()
    with pytest.raises(ValueError, match="at least one line"):
        next(AnalysisSession(path).run().list_blocks(0))
    # A block of one is a line at a time, the same lines.
    assert block_lines(path, block=1) == [p.list_line() for p in full_records(path)]


def test_count_limit(tmp_path):
    path = scenarios.random_conversations(3, 500).write(str(tmp_path / "long.pcap"))
    lines = list(AnalysisSession(path, two_pass=False, max_packets=5).list_lines())
    assert lines == [p.list_line() for p in fast_records(path)[:5]]
    assert len(list(AnalysisSession(path, max_packets=300).packets())) == 300


def test_damage_after_good_packets_is_raised_after_their_lines(tmp_path):
    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(path).read_bytes()[:-10])
    got: list[str] = []
    with pytest.raises(CaptureDamage) as exc:
        for line in AnalysisSession(str(cut), two_pass=False).list_lines():
            got.append(line)
    assert got == [p.list_line() for p in full_records(str(cut))] and len(got) == 36
    assert exc.value.packets_read == 36 and "after 36 good packets" in str(exc.value)
    with pytest.raises(CaptureDamage) as dict_exc:
        list(analyze(str(cut)))
    assert dict_exc.value.as_packet() == exc.value.as_packet()


def test_cli_plain_list_and_two_pass(tmp_path, capsys):
    path = scenarios.lossy_connections(11, 10).write(str(tmp_path / "l.pcap"))
    assert main(["analyze", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [render.LIST_HEADER, *(p.list_line() for p in full_records(path))]
    assert main(["analyze", path, "--absolute", "-c", "20", "--chat-port", "8001"]) == 0
    out = capsys.readouterr().out.splitlines()
    want = full_records(path, absolute=True, chat_ports=frozenset({8001}))[:20]
    assert out == [render.LIST_HEADER, *(p.list_line() for p in want)]
    # --two-pass shows tshark -2's final values.
    assert main(["analyze", path, "--two-pass"]) == 0
    out = capsys.readouterr().out.splitlines()
    final = AnalysisSession(path)._skim()
    assert out == [render.LIST_HEADER, *(p.list_line() for p in full_records(path, final))]
