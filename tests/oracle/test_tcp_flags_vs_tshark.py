"""flags_text and flags_str against tshark: every combination of the 9 flags and 3 reserved bits."""

from __future__ import annotations

import re

from tcplab.packet import ipv4, link, stack, tcp
from tcplab.pcap import PcapWriter
from tests.support import tshark

LO = ipv4.addr("127.0.0.1")


def test_every_flag_combination_reads_as_tshark_shows_it(tmp_path) -> None:
    path = tmp_path / "flags.pcap"
    combos = range(1 << 12)  # reserved(3) | flags(9)
    with PcapWriter(path, link.LINKTYPE_ETHERNET) as w:
        for value in combos:
            # A distinct connection per packet keeps tshark's sequence analysis quiet.
            seg = tcp.build_segment(LO, LO, 10000 + value, 80, b"", seq=1000, ack=5,
                                    flags=value & tcp.FLAG_MASK, reserved=value >> 9)
            w.write(stack.frame(link.LINKTYPE_ETHERNET, ipv4.build_header(LO, LO, len(seg)) + seg),
                    1_700_000_000_000_000_000 + value * 1000)
    out = tshark("-r", str(path), "-o", "tcp.analyze_sequence_numbers:FALSE", "-T", "fields",
                 "-e", "tcp.flags", "-e", "tcp.flags.str", "-e", "_ws.col.Info")
    lines = out.splitlines()
    assert len(lines) == len(combos)
    for value, line in zip(combos, lines):
        hex_flags, flag_str, info = line.split("\t")
        assert int(hex_flags, 16) == value
        assert tcp.flags_str(value) == flag_str, hex_flags
        bracket = re.search(r"→ 80 \[([^\]]*)\]", info)
        assert bracket is not None, info
        assert tcp.flags_text(value) == bracket.group(1), hex_flags
        parsed = tcp.parse(tcp.build_segment(LO, LO, 1, 2, flags=value & 0x1FF,
                                             reserved=value >> 9))
        assert (parsed.reserved << 9 | parsed.flags) == value
