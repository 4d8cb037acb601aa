"""Shared helpers for the capture-file tests: sample frames and tshark's view of a file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tcplab.packet import ipv4, link, stack
from tcplab.pcap import Record, open_capture
from tests.support import require_program, require_tshark

LOOPBACK = ipv4.addr("127.0.0.1")
BASE_NS = 1_700_000_000_123_456_789


def sample_frame(i: int, linktype: int = link.LINKTYPE_ETHERNET, size: int = 0) -> bytes:
    """A valid TCP/IPv4 frame whose payload encodes ``i`` (so records differ)."""
    payload = f"message {i} ".encode() + b"x" * (size or i % 50)
    packet = stack.tcp_packet(LOOPBACK, LOOPBACK, 40000 + i % 1000, 80, payload, seq=i, ack=1,
                              identification=i & 0xFFFF)
    return stack.frame(linktype, packet)


def read_all(path: str | Path) -> list[Record]:
    with open_capture(path) as reader:
        return list(reader)


def epoch_to_ns(text: str) -> int:
    """tshark's frame.time_epoch ("1700000000.123456789") → integer nanoseconds, exactly."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def tshark_frames(path: str | Path, *extra_fields: str) -> list[tuple]:
    """(time_ns, frame.len, frame.cap_len, interface_id, *extra) per frame, as tshark reads them."""
    exe = require_tshark()
    fields = ["frame.time_epoch", "frame.len", "frame.cap_len", "frame.interface_id", *extra_fields]
    cmd = [exe, "-r", str(path), "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"tshark could not read {path}: {proc.stderr}"
    rows = []
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        iface = int(cols[3]) if cols[3] else 0
        # tshark leaves the time empty for blocks that carry none (SPB, custom blocks).
        rows.append((epoch_to_ns(cols[0]) if cols[0] else None, int(cols[1]), int(cols[2]), iface,
                     *cols[4:]))
    return rows


def our_frames(path: str | Path) -> list[tuple]:
    return [(r.timestamp_ns if r.has_timestamp else None, r.orig_len, len(r.data), r.interface)
            for r in read_all(path)]


def run(*cmd: str) -> str:
    require_program(cmd[0])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr}"
    return proc.stdout
