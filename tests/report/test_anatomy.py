"""One packet taken apart: layer ranges, coloured hex dump, checksums worked by hand."""

from __future__ import annotations

import random

from tcplab.analyze import Analyzer
from tcplab.analyze.anatomy import checksum_workings, coloured_hexdump, layers, nesting_svg
from tcplab.analyze.render import hexdump
from tcplab.demo import FRAME_351
from tcplab.packet import link, stack


def _dissect(frame: bytes, linktype: int = link.LINKTYPE_NULL) -> dict:
    return Analyzer(linktype).feed_frame(frame, 0)


def test_frame_351_layers_and_checksums() -> None:
    d = _dissect(FRAME_351)
    got = [(layer.key, layer.start, layer.header_end, layer.end) for layer in layers(d)]
    assert got == [("link", 0, 4, 62), ("ip", 4, 24, 62), ("tcp", 24, 44, 62), ("app", 44, 62, 62)]
    ip, tcp = checksum_workings(d)
    assert (ip.result, ip.stored, ip.correct) == (0x7CBB, 0x7CBB, True)
    assert (tcp.result, tcp.stored, tcp.correct) == (0xB54E, 0xB54E, True)
    assert ip.groups[0][1][5] == 0  # the checksum word is summed as zero
    assert tcp.groups[0][1] == [0x7F00, 0x0001, 0x7F00, 0x0001, 0x0006, 38]  # the pseudo-header
    # The shown sum and folds lead to the result.
    value = tcp.total
    for v, high, low in tcp.folds:
        assert v == value and (high, low) == (v >> 16, v & 0xFFFF)
        value = high + low
    assert value == tcp.folded and (~value & 0xFFFF) == tcp.result


def test_coloured_dump_is_the_hexdump_and_colours_every_byte_once() -> None:
    d = _dissect(FRAME_351)
    runs = coloured_hexdump(FRAME_351, layers(d))
    assert ["".join(t for t, _k in line) for line in runs] == hexdump(FRAME_351).splitlines()
    keys = []
    for line in runs:
        text_keys = [k for t, k in line for _ch in t]
        line_text = "".join(t for t, _k in line)
        for i in range(6, 6 + 47, 3):
            if line_text[i:i + 2].strip():
                keys.append(text_keys[i])
    assert keys == ["link"] * 4 + ["ip"] * 20 + ["tcp"] * 20 + ["app"] * 18


def test_random_segments_check_against_the_checksum_module() -> None:
    rng = random.Random(11)
    for _ in range(50):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        packet = stack.tcp_packet(bytes([10, 1, 2, 3]), bytes([10, 3, 2, 1]), rng.randrange(1, 65536),
                                  rng.randrange(1, 65536), payload, seq=rng.randrange(2**32),
                                  flags=0x18)
        d = _dissect(link.frame(link.LINKTYPE_ETHERNET, packet), link.LINKTYPE_ETHERNET)
        for w in checksum_workings(d):
            assert w.correct, (w.what, payload)
        assert layers(d)[-1].size == len(payload) or not payload
        assert "<svg" in nesting_svg(layers(d), title="<&>")
