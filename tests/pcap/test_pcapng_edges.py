"""pcapng blocks without a time of their own, as the analyzer shows them next to tshark 4.0.

A Simple Packet Block carries no timestamp and a custom block (0x00000BAD / 0x40000BAD) is
a frame of its own: tshark leaves their Time column empty and their time fields out, and
lists a custom block as ``PCAPNG  Custom Block: PEN = … (n), will [not] be copied``.
Also here: ``tcplab analyze -`` reading pcap, pcapng and gzip from standard input as
``tshark -r -`` does, and a truncated gzip on stdin still showing every good packet.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.analyze import analyze
from tcplab.pcap import NoTimestamp, open_capture
from tests.pcap import craft
from tests.pcap.captools import sample_frame
from tests.support import require_program, require_tshark

T0 = 1_700_000_000_000_000  # µs: the default if_tsresol
PEN_DOC = 32473  # RFC 5612's documentation enterprise number


def _custom(pen: int, payload: bytes, copyable: bool = True) -> bytes:
    return craft.block(0x00000BAD if copyable else 0x40000BAD,
                       struct.pack("<I", pen) + craft.pad4(payload))


@pytest.fixture
def edges(tmp_path: Path) -> Path:
    """An SPB first (the reference time is then 0, as tshark takes it), EPBs, SPBs, custom blocks."""
    data = (craft.shb() + craft.idb() + craft.spb(sample_frame(1))
            + craft.epb(sample_frame(0), ts=T0) + craft.spb(sample_frame(1))
            + _custom(PEN_DOC, b"hello!!\x00") + craft.epb(sample_frame(2), ts=T0 + 2 * 10**6)
            + _custom(9, b"nocopy\x00\x00", copyable=False) + _custom(0xD97E0000, b"")
            + craft.spb(sample_frame(3)))
    path = tmp_path / "edges.pcapng"
    path.write_bytes(data)
    return path


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcplab", "analyze", *args], input=stdin,
                          capture_output=True, timeout=120)


def _tshark_rows(path: Path, *fields: str) -> list[list[str]]:
    exe = require_tshark()
    cmd = [exe, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


def test_reader_marks_blocks_without_a_time(edges: Path) -> None:
    with open_capture(edges) as reader:
        records = list(reader)
    untimed = [type(r.timestamp_ns) is NoTimestamp for r in records]
    assert untimed == [True, False, True, True, False, True, True, True]
    custom = [r.data for r in records if r.linktype == -1]
    assert [(d.pen, d.copyable) for d in custom] == [(PEN_DOC, True), (9, False), (0xD97E0000, True)]


def test_time_column_and_fields_match_tshark(edges: Path) -> None:
    theirs = _tshark_rows(edges, "frame.time_relative", "frame.time_epoch", "_ws.col.Protocol",
                          "_ws.col.Info", "frame.cb_pen", "frame.cb_copy", "data.len",
                          "frame.protocols")
    ours = list(analyze(edges, two_pass=False))
    assert len(ours) == len(theirs)
    lines = _cli(str(edges)).stdout.decode().splitlines()[1:]
    for d, line, (rel, _epoch, proto, info, pen, copy, dlen, layers) in zip(
            ours, lines, theirs, strict=True):
        n = d["frame.number"]
        assert (line[7:18].strip() == "") == (rel == ""), f"frame {n}: {line}"
        if rel:
            assert f"{float(line[7:18]):.6f}" == f"{float(rel):.6f}", n
        if proto == "PCAPNG":  # the TCP frames' Info differs by HTTP reassembly on port 80
            assert (d["_ws.col.Protocol"], d["_ws.col.Info"]) == (proto, info), n
            assert str(d.get("frame.cb_pen", "")) == pen and str(d.get("frame.cb_copy", "")) == copy
            assert str(d.get("data.len", "")) == dlen and d["frame.protocols"] == layers, n


def test_json_leaves_out_the_time_a_block_does_not_have(edges: Path) -> None:
    rows = [json.loads(line) for line in _cli("--json", str(edges)).stdout.decode().splitlines()]
    timed = ["frame.time_relative" in r and "frame.time_epoch" in r for r in rows]
    assert timed == [False, True, False, False, True, False, False, False]
    assert not any(k.startswith("_") and not k.startswith("_ws.") for r in rows for k in r)
    detail = _cli("--packet", "1", str(edges)).stdout.decode()
    assert "Arrival Time" not in detail and "Frame Number: 1" in detail
    assert "Arrival Time" in _cli("--packet", "2", str(edges)).stdout.decode()


@pytest.mark.parametrize("fmt", ["pcap", "pcapng", "pcap.gz", "pcapng.gz"])
def test_analyze_reads_standard_input_like_tshark(tmp_path: Path, fmt: str) -> None:
    exe = require_tshark()
    path = tmp_path / "real.pcap"
    path.write_bytes((Path(__file__).parents[1] / "data" / "tls12-lo.pcap").read_bytes())
    if fmt.startswith("pcapng"):
        subprocess.run([require_program("editcap"), "-F", "pcapng", str(path),
                        str(tmp_path / "real.pcapng")], check=True, capture_output=True)
        path = tmp_path / "real.pcapng"
    raw = path.read_bytes()
    stdin = gzip.compress(raw) if fmt.endswith(".gz") else raw
    got = _cli("-", stdin=stdin)
    assert got.returncode == 0, got.stderr
    assert got.stdout == _cli(str(path)).stdout
    theirs = subprocess.run([exe, "-r", "-", "-T", "fields", "-e", "_ws.col.Info"], input=stdin,
                            capture_output=True, timeout=60).stdout.decode().splitlines()
    ours = [json.loads(line)["_ws.col.Info"]
            for line in _cli("--json", "-", stdin=stdin).stdout.decode().splitlines()]
    assert ours == theirs


def test_truncated_gzip_on_standard_input_shows_the_good_packets_then_the_damage() -> None:
    raw = (Path(__file__).parents[1] / "data" / "tls13-lo.pcap").read_bytes()
    packed = gzip.compress(raw)
    got = _cli("-", stdin=packed[: len(packed) // 2])
    assert got.returncode == 1
    lines = got.stdout.decode().splitlines()
    assert len(lines) > 3 and "[Malformed Packet: capture record at byte" in lines[-1]
    err = got.stderr.decode()
    assert "<stdin>: byte offset" in err and "compressed data is damaged" in err
    assert "Traceback" not in err


def test_standard_input_is_read_once() -> None:
    raw = (Path(__file__).parents[1] / "data" / "dns-tcp-lo.pcap").read_bytes()
    got = _cli("-", "--flow-svg", "out.svg", "--streams", "0", stdin=raw)
    assert got.returncode == 1 and b"standard input" in got.stderr
    assert b"Traceback" not in got.stderr
    # Views that would read twice from a file read once from a pipe and still agree.
    assert _cli("-", "--conversations", stdin=raw).returncode == 0
