"""Capture files made by other tools are read as tshark reads them; ours are read by tshark.

The oracle throughout is tshark's own reading of the same file: frame.time_epoch,
frame.len, frame.cap_len, frame.interface_id (and frame.comment where present).
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from tcplab.packet import link
from tcplab.pcap import PcapngWriter, open_capture, open_writer
from tests.pcap import craft
from tests.pcap.captools import (
    BASE_NS,
    our_frames,
    read_all,
    run,
    sample_frame,
    tshark_frames,
)
from tests.support import require_program, require_root, require_tshark, tshark

VARIANTS = [(fmt, ns, order) for fmt in ("pcap", "pcapng") for ns in (False, True)
            for order in ("little", "big")]


def _hexdump(frames: list[bytes]) -> str:
    """The ``od -Ax -tx1`` layout that text2pcap reads, one block per packet."""
    out = []
    for frame in frames:
        for off in range(0, len(frame), 16):
            out.append(f"{off:06x} " + " ".join(f"{b:02x}" for b in frame[off:off + 16]))
        out.append("")
    return "\n".join(out) + "\n"


@pytest.fixture
def frames() -> list[bytes]:
    return [sample_frame(i) for i in range(40)]


@pytest.mark.parametrize(("fmt", "ns", "order"), VARIANTS)
def test_tshark_reads_our_files_with_same_timestamps(tmp_path, fmt, ns, order, frames) -> None:
    require_tshark()
    path = tmp_path / f"ours.{fmt}"
    with open_writer(path, link.LINKTYPE_ETHERNET, nanosecond=ns, byteorder=order) as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i * 777_777, comment=f"note {i}" if i % 3 == 0 else None)
    info = run("capinfos", "-M", "-c", str(path))
    assert re.search(r"Number of packets:\s+40\n", info), info
    theirs = tshark_frames(path, "frame.comment")
    ours = [(r.timestamp_ns, r.orig_len, len(r.data), r.interface, r.comment or "")
            for r in read_all(path)]
    if fmt == "pcap":
        theirs = [row[:4] + ("",) for row in theirs]
    assert ours == theirs
    assert theirs[1][0] == BASE_NS + 777_777 if ns else (BASE_NS + 777_777) // 1000 * 1000


def test_tshark_finds_no_problem_in_our_frames(tmp_path, frames) -> None:
    require_tshark()
    path = tmp_path / "check.pcapng"
    with PcapngWriter(path, link.LINKTYPE_ETHERNET) as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i * 1_000_000)
    out = tshark("-r", str(path), "-T", "fields", "-e", "ip.checksum.status",
                 "-e", "tcp.checksum.status", "-e", "_ws.malformed")
    lines = out.splitlines()
    assert len(lines) == len(frames)
    for line in lines:
        ip_status, tcp_status, malformed = line.split("\t")
        assert (ip_status, tcp_status, malformed) == ("1", "1", "")  # 1 = Good


@pytest.mark.parametrize("editcap_format", ["pcap", "nsecpcap", "pcapng"])
def test_files_converted_by_editcap(tmp_path, frames, editcap_format) -> None:
    require_tshark()
    source = tmp_path / "source.pcapng"
    with PcapngWriter(source, link.LINKTYPE_ETHERNET, interface_name="lo") as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i * 1_111_111)
    converted = tmp_path / f"converted.{editcap_format}"
    run("editcap", "-F", editcap_format, str(source), str(converted))
    assert our_frames(converted) == tshark_frames(converted)
    assert [r.data for r in read_all(converted)] == frames
    with open_capture(converted) as reader:
        assert reader.format == ("pcapng" if editcap_format == "pcapng" else "pcap")
        assert reader.linktype == link.LINKTYPE_ETHERNET


def test_editcap_truncation_and_comments(tmp_path, frames) -> None:
    require_tshark()
    source = tmp_path / "source.pcap"
    with open_writer(source, link.LINKTYPE_ETHERNET) as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i * 10_000)
    cut = tmp_path / "cut.pcapng"
    run("editcap", "-F", "pcapng", "-s", "40", "-a", "2:first comment", "-a", "5:second",
        str(source), str(cut))
    records = read_all(cut)
    assert our_frames(cut) == tshark_frames(cut)
    assert all(len(r.data) == 40 for r in records)
    assert [r.orig_len for r in records] == [len(f) for f in frames]
    assert records[1].comment == "first comment" and records[4].comment == "second"
    assert [r.comment for r in records].count(None) == len(frames) - 2


@pytest.mark.parametrize("out_format", ["pcap", "pcapng"])
def test_files_made_by_text2pcap(tmp_path, out_format) -> None:
    require_tshark()
    packets = [sample_frame(i, link.LINKTYPE_RAW) for i in range(12)]
    dump = tmp_path / "dump.txt"
    dump.write_text(_hexdump(packets))
    out = tmp_path / f"t2p.{out_format}"
    run("text2pcap", "-q", "-F", out_format, "-l", "101", str(dump), str(out))
    records = read_all(out)
    assert [r.data for r in records] == packets
    assert {r.linktype for r in records} == {link.LINKTYPE_RAW}
    assert our_frames(out) == tshark_frames(out)


def test_mergecap_interfaces_of_different_link_types(tmp_path) -> None:
    require_tshark()
    eth, null = tmp_path / "eth.pcap", tmp_path / "null.pcap"
    with open_writer(eth, link.LINKTYPE_ETHERNET) as w:
        for i in range(5):
            w.write(sample_frame(i), BASE_NS + i * 2_000)
    with open_writer(null, link.LINKTYPE_NULL, nanosecond=True) as w:
        for i in range(5):
            w.write(sample_frame(i, link.LINKTYPE_NULL), BASE_NS + i * 2_000 + 1_000)
    merged = tmp_path / "merged.pcapng"
    run("mergecap", "-F", "pcapng", "-w", str(merged), str(eth), str(null))
    with open_capture(merged) as reader:
        records = list(reader)
        assert sorted(i.linktype for i in reader.interfaces) == [0, 1]
    assert our_frames(merged) == tshark_frames(merged)
    by_iface = {r.interface: r.linktype for r in records}
    assert len(by_iface) == 2
    for r in records:
        assert link.parse(r.linktype, r.data).network == "IPv4"


def test_multi_section_file_matches_tshark(tmp_path, frames) -> None:
    require_tshark()
    parts = []
    for k, order in enumerate(("little", "big", "little")):
        p = tmp_path / f"part{k}.pcapng"
        with PcapngWriter(p, link.LINKTYPE_ETHERNET, byteorder=order, nanosecond=k != 1) as w:
            if k == 2:
                w.add_interface(link.LINKTYPE_RAW)
            for i in range(4):
                w.write(sample_frame(i + 10 * k), BASE_NS + k * 10**9 + i * 1_000)
            if k == 2:
                w.write(sample_frame(99, link.LINKTYPE_RAW), BASE_NS + 5, interface=1)
        parts.append(p.read_bytes())
    whole = tmp_path / "sections.pcapng"
    whole.write_bytes(b"".join(parts))
    with open_capture(whole) as reader:
        records = list(reader)
        assert len(reader.sections) == 3
        assert [i.section for i in reader.interfaces] == [0, 1, 2, 2]
        first_of_section = {}
        for g, iface in enumerate(reader.interfaces):
            first_of_section.setdefault(iface.section, g)
        # Our interface numbers index the file-wide list; tshark 4.0 numbers them per section.
        local = [r.interface - first_of_section[reader.interfaces[r.interface].section]
                 for r in records]
    assert [(r.timestamp_ns, r.orig_len, len(r.data), i) for r, i in zip(records, local)] == \
        tshark_frames(whole)
    assert [r.interface for r in records] == [0] * 4 + [1] * 4 + [2] * 4 + [3]


def test_handcrafted_pcapng_resolutions_offsets_and_block_kinds(tmp_path) -> None:
    """2^-20 s ticks, if_tsoffset, big-endian, SPB and the obsolete PB, all as tshark reads them."""
    require_tshark()
    e = ">"
    raw = [sample_frame(i, link.LINKTYPE_RAW) for i in range(5)]
    data = (
        craft.shb(e, [(4, b"handmade")])
        + craft.idb(101, 0, e, [(2, b"eth7"), (9, bytes([0x80 | 20])),
                                (14, struct.pack(">q", 1000))])
        + craft.idb(101, 128, e, [(9, bytes([12]))])  # picoseconds
        + craft.epb(raw[0], ts=(1_700_000_000 << 20) + 12345, endian=e, opts=[(1, b"hello")])
        + craft.spb(raw[1], endian=e)
        + craft.packet_block(raw[2], ts=(5 << 20) + 7, endian=e)
        + craft.block(5, b"\x00" * 20, e)  # interface statistics: skipped
        # 64 bits of picoseconds span ~213 days; tshark 4.0 multiplies the sub-second
        # remainder by 10^9 in 64 bits, so keep it below 18 ms for the comparison to hold.
        + craft.epb(raw[3], ts=86_400_012_345_678_912, ifid=1, endian=e)
        + craft.epb(raw[4], ts=99, endian=e)
    )
    path = tmp_path / "hand.pcapng"
    path.write_bytes(data)
    assert our_frames(path) == tshark_frames(path)
    records = read_all(path)
    assert records[0].comment == "hello"
    assert records[3].timestamp_ns == 86_400_012_345_678
    with open_capture(path) as reader:
        assert reader.sections[0].application == "handmade"
        assert reader.interfaces[0].name == "eth7"
        assert reader.interfaces[0].tsoffset == 1000


def test_scapy_wrpcap_and_pcapng_writer(tmp_path) -> None:
    require_tshark()
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import PcapNgWriter, wrpcap

    pkts = []
    for i in range(10):
        p = Ether() / IP(dst="127.0.0.1") / TCP(sport=1000 + i, dport=80) / Raw(b"x" * i)
        p.time = 1_700_000_000 + i / 7
        pkts.append(p)
    classic = tmp_path / "scapy.pcap"
    wrpcap(str(classic), pkts)
    nano = tmp_path / "scapy_ns.pcap"
    wrpcap(str(nano), pkts, nano=True)
    ng = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(ng))
    for p in pkts:
        writer.write(p)
    writer.close()
    for path in (classic, nano, ng):
        assert our_frames(path) == tshark_frames(path), path.name
        assert [r.data for r in read_all(path)] == [bytes(p) for p in pkts]


def test_dumpcap_live_capture_is_read(tmp_path) -> None:
    """A real capture on lo by dumpcap (pcapng with if_name, if_tsresol, ISB at the end)."""
    import socket
    import time

    require_root()
    exe = require_program("dumpcap")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    out = tmp_path / "live.pcapng"
    proc = subprocess.Popen([exe, "-q", "-i", "lo", "-f", f"udp port {port}", "-c", "3",
                             "-w", str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            sender.sendto(b"hello capture", ("127.0.0.1", port))
            time.sleep(0.2)
        sender.close()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.close()
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    with open_capture(out) as reader:
        records = list(reader)
        assert reader.interfaces[0].name == "lo"
        assert reader.linktype == link.LINKTYPE_ETHERNET
    assert len(records) == 3
    assert our_frames(out) == tshark_frames(out)
    assert all(r.data.endswith(b"hello capture") for r in records)


def test_cli_tools_accept_our_big_endian_pcapng(tmp_path: Path, frames) -> None:
    require_tshark()
    path = tmp_path / "be.pcapng"
    with PcapngWriter(path, link.LINKTYPE_ETHERNET, byteorder="big") as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i)
    converted = tmp_path / "be_to_pcap.pcap"
    run("editcap", "-F", "nsecpcap", str(path), str(converted))
    assert read_all(converted) and [r.data for r in read_all(converted)] == frames
    assert [r.timestamp_ns for r in read_all(converted)] == [BASE_NS + i for i in range(len(frames))]


def test_kuznetzov_modified_pcap_matches_tshark(tmp_path) -> None:
    """Red Hat's patched libpcap: magic 0xa1b2cd34 and 24-byte record headers."""
    require_tshark()
    frames = [sample_frame(i) for i in range(6)]
    body = b"".join(
        craft.pcap_record(f, sec=1_700_000_000 + i, frac=i * 1000)[:16]
        + struct.pack("<IHBx", 1, 0x0800, 0) + f
        for i, f in enumerate(frames)
    )
    path = tmp_path / "modified.pcap"
    path.write_bytes(craft.pcap_header(magic=0xA1B2CD34) + body)
    assert [r.data for r in read_all(path)] == frames
    assert our_frames(path) == tshark_frames(path)


@pytest.mark.parametrize("tshark_format", ["pcapng", "pcap", "nsecpcap"])
def test_files_written_by_tshark(tmp_path, frames, tshark_format) -> None:
    exe = require_tshark()
    source = tmp_path / "source.pcap"
    with open_writer(source, link.LINKTYPE_ETHERNET, nanosecond=True) as w:
        for i, frame in enumerate(frames):
            w.write(frame, BASE_NS + i * 3_333)
    out = tmp_path / f"tshark_out.{tshark_format}"
    proc = subprocess.run([exe, "-r", str(source), "-F", tshark_format, "-w", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert our_frames(out) == tshark_frames(out)
    assert [r.data for r in read_all(out)] == frames
    if tshark_format == "pcapng":
        with open_capture(out) as reader:
            assert reader.sections[0].application and "Wireshark" in reader.sections[0].application
