"""tshark's fields per frame, and the same values from tcplab.packet, for the layer differential tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tcplab.packet import ipv4, ipv6, link
from tcplab.pcap import open_capture
from tests.support import require_tshark

DATA = Path(__file__).resolve().parent.parent / "data"


def tshark_fields(path: Path | str, *fields: str, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """One dict per frame: field → tshark's text ('' when absent; several values joined by ',')."""
    exe = require_tshark()
    cmd = [exe, "-r", str(path), "-T", "fields", "-E", "separator=|", *extra]
    for f in ("frame.number", *fields):
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        cols = line.split("|")
        rows.append(dict(zip(("frame.number", *fields), cols, strict=True)))
    return rows


def network_layers(path: Path | str):
    """Yield (frame number, record, IP version, IP header, IP offset) for every frame with IP."""
    with open_capture(path) as reader:
        for number, rec in enumerate(reader, 1):
            hdr = link.parse(rec.linktype, rec.data)
            off = hdr.header_len
            if hdr.network == "IPv4":
                yield number, rec, 4, ipv4.parse(rec.data, off), off
            elif hdr.network == "IPv6":
                yield number, rec, 6, ipv6.parse(rec.data, off), off
            else:
                yield number, rec, 0, None, off
