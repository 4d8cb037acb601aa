"""Seeded mutations of real captures through ``tcplab analyze``: no traceback, no hang, damage named.

2,000 mutants of the tests/data captures, of the fidelity corpus (tests/data/corpus/: files
written by tcpdump, dumpcap, dpkt and the pcapng test suites of gopacket and python-pcapng;
half of all mutants start from one) and of hand-built pcapng edge cases (custom blocks,
Simple Packet Blocks, odd block lengths), plain and inside gzip: truncations, bit flips,
byte overwrites, extreme length words, splices of one file into another, and damage to the
compressed bytes themselves. Each mutant runs through the real CLI entry
point (in-process, so the run stays fast) in one of its views. Every run must:

* end with exit status 0 or 1 — never a traceback (any other exception fails the test);
* finish within 10 s (SIGALRM turns a hang into a failure);
* when the reader stops at damage: exit 1, name the damage with ``byte offset N``, and
  show every packet the reader handed out before it (the list view is checked line by
  line against an independent read of the same bytes).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import re
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tcplab.cli import main
from tcplab.pcap import CaptureFormatError, open_capture
from tests.fidelity.oracle import DATA
from tests.pcap import craft
from tests.pcap.captools import sample_frame
from tests.support import require_tshark

MUTANTS = 2000
CORPUS = DATA / "corpus"
#: Corpus files larger than this stay out of the mutation pool: compressing and analysing a
#: 200 kB capture 500 times would triple the run time and reach no path a small file misses
#: (the truncated-gzip test below still reads the largest one).
FUZZ_MAX_BYTES = 100_000
SEED = 1414
HANG_SECONDS = 10

#: Views each mutant may go through (``--packet 1`` included: a flipped timestamp bit can
#: mean a year past 9999, which the detail view must still date).
VIEWS = [
    ["--packet", "1"],  # judged on exit status, traceback and hang only
    [],
    ["-2"],
    ["--json"],
    ["--conversations"],
    ["--http"],
    ["--explain"],
    ["-Y", "tcp.flags.reset == 1 || tcp.analysis.retransmission"],
    ["-Y", "ip.src == 127.0.0.1 && tcp.len > 0", "--json"],
]


def _edge_pcapng() -> bytes:
    t0 = 1_700_000_000_000_000
    return (craft.shb() + craft.idb(opts=[(2, b"lo")]) + craft.epb(sample_frame(0), ts=t0)
            + craft.block(0x0BAD, struct.pack("<I", 32473) + b"custom!!")
            + craft.spb(sample_frame(1)) + craft.epb(sample_frame(2), ts=t0 + 1, opts=[(1, b"hi")])
            + craft.shb(">") + craft.idb(101, endian=">") + craft.epb(sample_frame(3, 101), ts=t0 + 2, endian=">"))


def corpus() -> list[bytes]:
    files = [p.read_bytes() for p in sorted(DATA.glob("*.pcap"))]
    assert len(files) >= 5
    return [*files, _edge_pcapng()]


def fidelity_corpus() -> list[bytes]:
    """The corpus files up to FUZZ_MAX_BYTES, uncompressed (the gzip modes compress them again,
    or damage the result)."""
    files = []
    for p in sorted(CORPUS.iterdir()):
        if p.stat().st_size > FUZZ_MAX_BYTES:
            continue
        if p.name.endswith((".pcap", ".pcapng")):
            files.append(p.read_bytes())
        elif p.name.endswith((".pcap.gz", ".pcapng.gz")):
            files.append(gzip.decompress(p.read_bytes()))
    assert len(files) >= 60, "tests/data/corpus/ is missing files (see its SOURCES.md)"
    return [f for f in files if f]


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind = rng.choice(["cut", "flip", "set", "word", "splice", "cut"])
        pos = rng.randrange(len(buf))
        if kind == "cut":
            del buf[pos:]
        elif kind == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "set":
            buf[pos] = rng.randrange(256)
        elif kind == "word":
            buf[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x0a\x0d\x0d\x0a",
                                           b"\x00\x00\x01\x00", b"\x7f\xff\xff\xff", b"\x45\x00\xff\xff"])
        else:
            other = rng.choice(others)
            start = rng.randrange(len(other))
            buf[pos:pos] = other[start:start + rng.randint(1, 200)]
    return bytes(buf)


def _alarm(_signum, _frame):
    raise TimeoutError(f"tcplab analyze took more than {HANG_SECONDS} s")


def reader_view(data: bytes) -> tuple[int, CaptureFormatError | None]:
    """How many records the reader hands out, and the damage it stops at (independent of the CLI)."""
    count = 0
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for _rec in reader:
                count += 1
    except CaptureFormatError as exc:
        return count, exc
    return count, None


def run_cli(path: Path, view: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["analyze", str(path), *view])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, out.getvalue(), err.getvalue()


def test_mutated_captures_through_the_cli(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    files, others = corpus(), fidelity_corpus()
    donors = files + others
    kinds = {"plain": 0, "gzip": 0, "gzip-damaged": 0}
    damaged = from_corpus = 0
    for i in range(MUTANTS):
        pool = rng.choice((files, others))
        from_corpus += pool is others
        base = rng.choice(pool)
        mode = rng.choice(["plain", "plain", "gzip", "gzip-damaged"])
        if mode == "plain":
            data = mutate(rng, base, donors)
        elif mode == "gzip":
            data = gzip.compress(mutate(rng, base, donors), compresslevel=1)
        else:  # damage the compressed stream itself
            data = mutate(rng, gzip.compress(base, compresslevel=1), donors)
        kinds[mode] += 1
        path = tmp_path / f"m{i % 8}.pcap"
        path.write_bytes(data)
        view = VIEWS[i % len(VIEWS)]
        good, damage = reader_view(data)
        rc, out, err = run_cli(path, view)
        context = f"mutant {i} ({mode}, view {view}): rc={rc} stderr={err[-300:]!r}"
        assert rc in (0, 1), context
        assert "Traceback" not in err, context
        if view[0:1] == ["--packet"]:  # reads up to frame 1 only: later damage is not its business
            continue
        if damage is not None or (good == 0 and rc == 1):
            assert rc == 1, context
            assert re.search(r"byte offset \d+", err), context
            damaged += damage is not None
            if damage is not None and view == [] and good:
                # The plain list: a header, every good packet, then the damage in place.
                lines = out.splitlines()
                assert len(lines) == good + 2, context
                assert lines[-1].lstrip().startswith(str(good + 1)), context
    assert min(kinds.values()) > MUTANTS // 5
    assert from_corpus > MUTANTS // 3
    assert damaged > MUTANTS // 4  # the mutations do reach the damage paths


@pytest.mark.parametrize(("source", "fmt"), [("tls12-lo.pcap", "pcap"), ("tls12-lo.pcap", "pcapng"),
                                             ("corpus/http-keepalive-lo.pcap", "pcap")])
def test_truncated_gzip_shows_every_good_packet_then_the_offset(tmp_path: Path, source: str, fmt: str) -> None:
    plain = (DATA / source).read_bytes()
    if fmt == "pcapng":
        from tcplab.pcap import PcapngWriter

        out = io.BytesIO()
        with open_capture(io.BytesIO(plain)) as reader, PcapngWriter(out, 1) as w:
            for rec in reader:
                w.write(rec.data, rec.timestamp_ns)
        plain = out.getvalue()
    packed = gzip.compress(plain)
    path = tmp_path / f"cut.{fmt}.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    good, damage = reader_view(path.read_bytes())
    assert damage is not None and good >= 8
    # Every packet whose bytes survive in the decompressible prefix, counted on the plain bytes.
    prefix = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    assert good == reader_view(prefix)[0]
    rc, out, err = run_cli(path, [])
    assert rc == 1
    assert len(out.splitlines()) == good + 2
    assert f"byte offset {damage.offset}" in err and "compressed data is damaged" in err


@pytest.mark.parametrize("name", ["http-keepalive-lo.pcap", "zerowin-lo.pcap", "http-methods-lo.pcapng"])
def test_truncated_gzip_of_a_corpus_file_shows_the_packets_tshark_shows(tmp_path: Path, name: str) -> None:
    """A gzip capture cut short: every packet tshark reads from it, then the damage and exit 1."""
    exe = require_tshark()
    packed = gzip.compress((CORPUS / name).read_bytes())
    path = tmp_path / f"{name}.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    proc = subprocess.run([exe, "-r", str(path), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=60)
    theirs = len(proc.stdout.split())
    assert theirs >= 20
    rc, out, err = run_cli(path, [])
    lines = out.splitlines()
    assert rc == 1 and re.search(r"byte offset \d+", err)
    assert len(lines) == theirs + 2  # header, the packets, the damage in place
    assert lines[theirs].lstrip().startswith(f"{theirs} ")
