"""Per-frame dissection: the seed's frame 351, link types, damaged frames, renderers."""

from __future__ import annotations

import json
import struct

import pytest

from tcplab.analyze import Analyzer, render
from tcplab.packet import ipv4, link, stack, tcp

# The report's frame 351 (SEED.md), byte for byte.
FRAME_351 = bytes.fromhex(
    "0200000045000 03a000100004006 7cbb7f0000017f000001 13d23039 00000000 00000000 5018 2000 b54e 0000"
    .replace(" ", "")
) + b"GET /blog HTTP/1.1"

LO = ipv4.addr("127.0.0.1")


def feed(frame: bytes, linktype: int = link.LINKTYPE_NULL, **kw) -> dict:
    return Analyzer(linktype).feed_frame(frame, 1_700_000_000_000_000_000, **kw)


def test_frame_351_fields_match_the_report():
    d = feed(FRAME_351)
    assert d["frame.len"] == 62
    assert d["ip.src"] == d["ip.dst"] == "127.0.0.1"
    assert d["ip.id"] == 1 and d["ip.ttl"] == 64 and d["ip.len"] == 58
    assert d["ip.checksum"] == 0x7CBB and d["ip.checksum.status"] == "good"
    assert (d["tcp.srcport"], d["tcp.dstport"]) == (5074, 12345)
    assert d["tcp.seq_raw"] == 0 and d["tcp.seq"] == 1 and d["tcp.ack"] == 1
    assert d["tcp.flags"] == 0x018 and d["tcp.flags.push"] == 1 and d["tcp.flags.ack"] == 1
    assert d["tcp.window_size_value"] == 8192 and d["tcp.window_size"] == 8192
    assert d["tcp.checksum"] == 0xB54E and d["tcp.checksum.status"] == "good"
    assert d["tcp.len"] == 18 and d["tcp.payload"] == b"GET /blog HTTP/1.1"
    assert d["http.request.method"] == "GET" and d["http.request.uri"] == "/blog"
    assert d["_ws.col.Protocol"] == "HTTP" and d["_ws.col.Info"] == "GET /blog HTTP/1.1"
    assert d["frame.protocols"] == "null:ip:tcp:http"


def test_repeated_seq_zero_is_a_retransmission_with_relative_numbers():
    a = Analyzer(link.LINKTYPE_NULL)
    first = a.feed_frame(FRAME_351, 0)
    again = a.feed_frame(FRAME_351, 100_000_000)
    assert "tcp.analysis.retransmission" not in first
    assert again["tcp.analysis.retransmission"] is True
    assert again["_ws.col.Protocol"] == "TCP"  # resent data is not handed to HTTP
    assert again["_ws.col.Info"] == ("[TCP Retransmission] 5074 → 12345 [PSH, ACK] Seq=1 Ack=1 "
                                     "Win=8192 Len=18")


@pytest.mark.parametrize("linktype", [link.LINKTYPE_NULL, link.LINKTYPE_ETHERNET, link.LINKTYPE_RAW,
                                      12, 14, link.LINKTYPE_LOOP, link.LINKTYPE_LINUX_SLL,
                                      link.LINKTYPE_LINUX_SLL2])
def test_every_link_type_reaches_tcp(linktype):
    pkt = stack.tcp_packet(LO, LO, 1000, 2000, b"hi", seq=5, ack=9)
    framed = pkt if linktype in (12, 14) else link.frame(linktype, pkt)
    d = feed(framed, linktype)
    assert d["tcp.srcport"] == 1000 and d["tcp.len"] == 2 and "_ws.malformed" not in d


def test_null_family_in_big_endian_is_accepted():
    # scapy wrote the BSD loopback family big-endian on little-endian hosts; Wireshark reads both.
    pkt = stack.tcp_packet(LO, LO, 1000, 2000, b"x")
    d = feed(struct.pack("!I", 2) + pkt)
    assert d["ip.src"] == "127.0.0.1" and d["tcp.len"] == 1


def test_ipv6_tcp():
    from tcplab.packet import ipv6

    a, b = ipv6.addr("::1"), ipv6.addr("fe80::1")
    pkt = stack.tcp_packet(a, b, 1, 2, b"abc", flags=tcp.SYN)
    d = feed(link.frame(link.LINKTYPE_ETHERNET, pkt, version=6), link.LINKTYPE_ETHERNET)
    assert d["ipv6.src"] == "::1" and d["ipv6.dst"] == "fe80::1"
    assert d["tcp.len"] == 3 and d["tcp.checksum.status"] == "good"


@pytest.mark.parametrize(("frame", "words"), [
    (FRAME_351[:14], "IPv4: header at byte 4: needs 20 bytes, only 10 captured"),
    (FRAME_351[:4] + b"\x43" + FRAME_351[5:], "IPv4: header length (IHL) at byte 4: 12 bytes"),
    (FRAME_351[:36] + b"\x30" + FRAME_351[37:], "TCP: data offset at byte 36: 12 bytes"),
    (FRAME_351[:6] + b"\x00\x1a" + FRAME_351[8:30], "TCP: header at byte 24: needs 20 bytes, only 6"),
    (FRAME_351[:36] + b"\xf0" + FRAME_351[37:], "TCP: data offset at byte 36: header of 60 bytes"),
    (FRAME_351[:2], "Null/Loopback: family at byte 0"),
])
def test_damaged_frames_are_malformed_packets_not_errors(frame, words):
    d = feed(frame)
    assert words in d["_ws.malformed"]
    assert d["_ws.col.Info"].startswith("[Malformed Packet: ")
    assert words in d["_ws.col.Info"]


def test_an_ip_total_length_beyond_the_frame_is_analysed_with_the_bytes_there_are():
    # tshark: "IPv4 total length exceeds packet length", then TCP over the captured bytes.
    d = feed(FRAME_351[:50])
    assert "_ws.malformed" not in d
    assert d["_ws.expert.message"] == "IPv4: total length at byte 6: 58 bytes but only 46 captured"
    assert d["tcp.len"] == 6 and d["tcp.stream"] == 0
    assert d["tcp.checksum.status"] == "unverified"


def test_a_snaplen_cut_is_not_called_malformed():
    d = feed(FRAME_351[:30], orig_len=62)
    assert "_ws.malformed" not in d
    assert d["_ws.col.Info"] == "[Packet size limited during capture]"


def test_analysis_goes_on_after_a_malformed_frame():
    a = Analyzer(link.LINKTYPE_NULL)
    a.feed_frame(FRAME_351, 0)
    bad = a.feed_frame(FRAME_351[:14], 1000)
    after = a.feed_frame(FRAME_351, 2000)
    assert "_ws.malformed" in bad and bad["frame.number"] == 2
    assert after["frame.number"] == 3 and after["tcp.analysis.retransmission"] is True


def test_bad_checksums_are_reported_and_explained_in_the_tree():
    broken = FRAME_351[:40] + b"\x00\x00" + FRAME_351[42:]
    d = feed(broken)
    assert d["tcp.checksum.status"] == "bad" and d["tcp.checksum_calculated"] == 0xB54E
    tree = render.detail_tree(d)
    assert "incorrect, should be 0xb54e" in tree and "checksum offload" in tree


def test_tcp_options_in_info_as_wireshark_writes_them():
    opts = tcp.pack_options([tcp.mss(65495), tcp.sack_permitted(), tcp.timestamps(7, 0), tcp.NOP,
                             tcp.window_scale(7)])
    pkt = stack.tcp_packet(LO, LO, 40000, 55555, seq=100, flags=tcp.SYN, window=65495, options=opts)
    d = feed(link.frame(0, pkt))
    assert d["_ws.col.Info"] == ("40000 → 55555 [SYN] Seq=0 Win=65495 Len=0 MSS=65495 SACK_PERM "
                                 "TSval=7 TSecr=0 WS=128")
    assert d["tcp.options.mss_val"] == 65495 and d["tcp.options.wscale.shift"] == 7


def test_chat_lines_are_shown_readably_and_safely():
    pkt = stack.tcp_packet(LO, LO, 53393, 55555, b"isabelleeee: how are youuu\n", seq=1, ack=1)
    d = feed(link.frame(0, pkt))
    assert d["_ws.col.Protocol"] == "CHAT"
    assert d["_ws.col.Info"] == "isabelleeee → how are youuu"
    back = stack.tcp_packet(LO, LO, 55555, 53359, b"alice: hi\nONLINE_USERS:a,b\n", seq=1, ack=1)
    assert feed(link.frame(0, back))["_ws.col.Info"] == "from alice: hi | online: a, b"
    evil = stack.tcp_packet(LO, LO, 53393, 55555, b"bob: \x1b[2Jgotcha\x07\n", seq=1, ack=1)
    info = feed(link.frame(0, evil))["_ws.col.Info"]
    assert "\x1b" not in info and "\x07" not in info and "\\x1b[2J" in info


def test_http_response_fields():
    body = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nHost: shop.example\r\n\r\nnot found"
    pkt = stack.tcp_packet(LO, LO, 80, 40000, body, seq=1, ack=1)
    d = feed(link.frame(0, pkt))
    assert d["http.response.code"] == 404 and d["http.response.phrase"] == "Not Found"
    assert d["http.content_length"] == 9 and d["http.host"] == "shop.example"
    assert d["_ws.col.Info"] == "HTTP/1.1 404 Not Found"


def test_packet_line_and_json_line():
    d = feed(FRAME_351)
    line = render.packet_line(d)
    assert "127.0.0.1 → 127.0.0.1" in line and line.endswith("62 GET /blog HTTP/1.1")
    obj = json.loads(render.json_line(d))
    assert obj["tcp.seq"] == 1 and "tcp.payload" not in obj and "_raw" not in obj
    assert json.loads(render.json_line(d, payload=True))["tcp.payload"].startswith("47:45:54")


def test_hexdump_layout():
    assert render.hexdump(FRAME_351).splitlines()[0] == (
        "0000  02 00 00 00 45 00 00 3a 00 01 00 00 40 06 7c bb   ....E..:....@.|.")
    assert render.hexdump(FRAME_351).splitlines()[-1] == (
        "0030  2f 62 6c 6f 67 20 48 54 54 50 2f 31 2e 31         /blog HTTP/1.1")


def test_safe_text_neutralises_terminal_controls():
    assert render.safe_text("a\x1b]0;pwned\x07b\u202ec") == "a\\x1b]0;pwned\\x07b\\u202ec"


@pytest.mark.parametrize("linktype", [0, 1, 101, 113, 276])
def test_hostile_bytes_never_raise_and_never_reach_the_terminal_raw(linktype):
    import random

    rng = random.Random(linktype)
    analyzer = Analyzer(linktype)
    payloads = [b"GET / HTTP/1.1\r\nHost: \x1b[31mred\r\n\r\n", b"HTTP/1.1 200 \x00\x9b2J\r\n",
                b"eve: \x1b]0;owned\x07\n", b""]
    for i in range(1500):
        opts = bytes(rng.randrange(256) for _ in range(rng.choice([0, 4, 8, 40])))
        pkt = bytearray(stack.tcp_packet(LO, LO, rng.randrange(65536), rng.choice([80, 55555]),
                                         rng.choice(payloads), seq=rng.randrange(1 << 32),
                                         flags=rng.randrange(512), options=opts))
        for _ in range(rng.randrange(3)):
            pkt[rng.randrange(len(pkt))] = rng.randrange(256)
        if rng.random() < 0.3:
            pkt = pkt[: rng.randrange(len(pkt) + 1)]
        frame = pkt if linktype == 101 else link.frame(linktype, bytes(pkt))
        d = analyzer.feed_frame(bytes(frame), i * 1000)
        shown = render.packet_line(d) + render.detail_tree(d) + render.json_line(d)
        assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown


def test_linux_handshake_options_shortcut_equals_the_option_walk():
    import random

    from tcplab.analyze import dissect

    rng = random.Random(5)
    for _ in range(500):
        raw = tcp.pack_options([tcp.mss(rng.randrange(65536)), tcp.sack_permitted(),
                                tcp.timestamps(rng.randrange(1 << 32), rng.randrange(1 << 32)),
                                tcp.NOP, tcp.window_scale(rng.randrange(256))])
        fast, walked = dissect._options(raw, 20), dissect._walk_options(raw, 20)
        assert fast[:2] == walked[:2] and list(fast[2].items()) == list(walked[2].items())
        # Any other 20-byte layout takes the walk.
        other = bytearray(raw)
        other[rng.choice([0, 1, 4, 5, 6, 7, 16, 17, 18])] ^= 1 << rng.randrange(8)
        try:
            walked = dissect._walk_options(bytes(other), 20)
        except Exception as exc:  # noqa: BLE001 - the same error either way
            with pytest.raises(type(exc)):
                dissect._options(bytes(other), 20)
        else:
            fast = dissect._options(bytes(other), 20)
            assert fast[:2] == walked[:2] and list(fast[2].items()) == list(walked[2].items())
