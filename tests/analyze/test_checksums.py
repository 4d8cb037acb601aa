"""Checksum verdicts and computed values as tshark 4.0 writes them with validation on.

tshark writes ``*.checksum_calculated`` beside every good or bad verdict (not only a bad
one), judges a zero UDP checksum from the field alone ("not present" over IPv4, "illegal"
over IPv6, even on a cut frame), and leaves a checksum it cannot sum because the snapshot
length cut the frame "unverified". The expected values were read from tshark 4.0 on these
very frames; the differential test holds every frame to a live tshark.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tcplab.analyze import Analyzer
from tcplab.packet import link
from tcplab.packet.checksum import internet_checksum, ipv4_pseudo_header, ipv6_pseudo_header
from tests.support import tshark

A4, B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
ETH4, ETH6 = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00", b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd"


def _ipv4(proto: int, body: bytes) -> bytes:
    head = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, A4, B4))
    head[10:12] = struct.pack("!H", internet_checksum(bytes(head)))
    return ETH4 + bytes(head) + body


def _ipv6(nxt: int, body: bytes) -> bytes:
    return ETH6 + struct.pack("!IHBB16s16s", 6 << 28, len(body), nxt, 64, A6, B6) + body


def _with_sum(segment: bytes, at: int, pseudo: bytes, fixed: int | None = None) -> bytes:
    csum = internet_checksum(pseudo + segment) if fixed is None else fixed
    return segment[:at] + struct.pack("!H", csum) + segment[at + 2 :]


def _udp(v6: bool, checksum: int | None = None) -> bytes:
    seg = struct.pack("!HHHH", 1000, 2000, 12, 0) + b"abcd"
    pseudo = (ipv6_pseudo_header(A6, B6, 17, 12) if v6 else ipv4_pseudo_header(A4, B4, 17, 12))
    seg = _with_sum(seg, 6, pseudo, checksum)
    return _ipv6(17, seg) if v6 else _ipv4(17, seg)


def _tcp(v6: bool) -> bytes:
    seg = struct.pack("!HHIIBBHHH", 20, 80, 0, 0, 0x50, 0x02, 8192, 0, 0) + b"abcdefgh"
    pseudo = (ipv6_pseudo_header(A6, B6, 6, len(seg)) if v6 else ipv4_pseudo_header(A4, B4, 6, len(seg)))
    seg = _with_sum(seg, 16, pseudo)
    return _ipv6(6, seg) if v6 else _ipv4(6, seg)


def _icmp(v6: bool) -> bytes:
    if v6:
        msg = struct.pack("!BBHHH", 128, 0, 0, 0, 0) + b"abcdefgh"
        return _ipv6(58, _with_sum(msg, 2, ipv6_pseudo_header(A6, B6, 58, len(msg))))
    msg = struct.pack("!BBHHH", 8, 0, 0, 0, 0) + b"abcdefgh"
    return _ipv4(1, _with_sum(msg, 2, b""))


FRAMES = [_udp(False, 0), _udp(True, 0), _udp(True), _udp(False, 0x1234), _icmp(False), _icmp(True),
          _tcp(False), _tcp(True)]
VERDICT_FIELDS = ("ip.checksum.status", "ip.checksum_calculated", "tcp.checksum.status",
                  "tcp.checksum_calculated", "udp.checksum.status", "udp.checksum_calculated",
                  "icmp.checksum.status", "icmpv6.checksum.status")


def _verdicts(frame: bytes, cut: int = 0) -> dict:
    d = Analyzer(link.LINKTYPE_ETHERNET).feed_frame(frame[: len(frame) - cut], 1_700_000_000_000_000_000,
                                                     orig_len=len(frame))
    return {k: d[k] for k in VERDICT_FIELDS if k in d}


def test_whole_frames_carry_the_computed_value_beside_every_verdict():
    ip_sum = int.from_bytes(FRAMES[0][24:26], "big")
    udp4_zero, udp6_zero, udp6, udp4_bad, icmp4, icmp6, tcp4, tcp6 = (_verdicts(f) for f in FRAMES)
    assert udp4_zero == {"ip.checksum.status": "good", "ip.checksum_calculated": ip_sum,
                         "udp.checksum.status": "not present"}
    assert udp6_zero == {"udp.checksum.status": "illegal"}
    assert udp6 == {"udp.checksum.status": "good",
                    "udp.checksum_calculated": int.from_bytes(FRAMES[2][60:62], "big")}
    assert udp4_bad["udp.checksum.status"] == "bad"
    assert udp4_bad["udp.checksum_calculated"] == 0x1B55  # tshark: "Bad checksum [should be 0x1b55]"
    assert icmp4["icmp.checksum.status"] == "good" and icmp6 == {"icmpv6.checksum.status": "good"}
    assert tcp4["tcp.checksum.status"] == "good"
    assert tcp4["tcp.checksum_calculated"] == int.from_bytes(FRAMES[6][50:52], "big")
    assert tcp6 == {"tcp.checksum.status": "good",
                    "tcp.checksum_calculated": int.from_bytes(FRAMES[7][70:72], "big")}


def test_a_frame_cut_by_the_snapshot_length_is_unverified_but_a_zero_udp_checksum_still_judged():
    got = [_verdicts(f, cut=3) for f in FRAMES]
    assert got[0]["udp.checksum.status"] == "not present"
    assert got[1] == {"udp.checksum.status": "illegal"}
    assert got[2] == {"udp.checksum.status": "unverified"}
    assert got[3]["udp.checksum.status"] == "unverified" and "udp.checksum_calculated" not in got[3]
    assert got[4]["icmp.checksum.status"] == "unverified" and got[5] == {"icmpv6.checksum.status": "unverified"}
    assert got[6]["tcp.checksum.status"] == "unverified" and "tcp.checksum_calculated" not in got[6]
    assert got[7] == {"tcp.checksum.status": "unverified"}
    assert got[4]["ip.checksum.status"] == "good"  # the IPv4 header itself was captured whole


STATUS_CODES = {"bad": "0", "good": "1", "unverified": "2", "not present": "3", "illegal": "4"}


@pytest.mark.parametrize("cut", [0, 3])
def test_verdicts_are_tsharks(tmp_path: Path, cut: int):
    path = tmp_path / "checksums.pcap"
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link.LINKTYPE_ETHERNET)
    for f in FRAMES:
        out += struct.pack("<IIII", 1_700_000_000, 0, len(f) - cut, len(f)) + f[: len(f) - cut]
    path.write_bytes(out)
    args = ["-r", str(path), "-T", "fields", "-E", "separator=/t"]
    for name in VERDICT_FIELDS:
        args += ["-e", name]
    rows = [line.split("\t") for line in tshark(*args).splitlines()]
    for frame, row in zip(FRAMES, rows, strict=True):
        theirs = {k: v for k, v in zip(VERDICT_FIELDS, row, strict=True) if v}
        ours = {k: STATUS_CODES[v] if k.endswith("status") else f"0x{v:04x}"
                for k, v in _verdicts(frame, cut).items()}
        assert ours == theirs
