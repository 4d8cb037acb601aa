"""``tcplab demo --gui``: real client windows under the demo's own Xvfb, their screenshots in the
report; without what it needs, a note that says what is missing and how to get them.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tcplab.gui import shots
from tests.support import IN_CI, require_program

REPO = Path(__file__).resolve().parents[2]


def _require_gui_tools() -> None:
    try:
        import tkinter  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("CI must provide this: tkinter (apt-get install python3-tk)")
        pytest.skip("tkinter is not installed (apt-get install python3-tk)")
    require_program("Xvfb")
    problem = shots.import_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI must provide this: {problem}")
        pytest.skip(problem)


def _colours(png: bytes) -> int:
    """How many distinct pixel colours an 8-bit RGB/RGBA PNG has (decoded with zlib only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and ctype in (2, 6), f"unexpected PNG format depth={depth} type={ctype}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        row = raw[y * (stride + 1): (y + 1) * (stride + 1)]
        ftype, line = row[0], bytearray(row[1:])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))
        prev = line
    return len(seen)


def test_demo_gui_puts_real_screenshots_in_the_report(tmp_path: Path) -> None:
    _require_gui_tools()
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # the demo starts its own Xvfb
    proc = subprocess.run([sys.executable, "-m", "tcplab", "demo", "--gui", "--no-live",
                           "--out", str(out)], capture_output=True, text=True, timeout=240,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    pngs = sorted((out / "images").glob("gui-*.png"))
    assert [p.name for p in pngs] == ["gui-alice-error.png", "gui-isabelleeee-hebrew.png"]
    page = (out / "report.html").read_text(encoding="utf-8")
    s6 = page[page.index("<section id='s6'>"):page.index("<section id='s7'>")]
    inline = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", s6)
    assert len(inline) == 2, "both screenshots inline in section 6"
    assert "No GUI screenshots" not in page
    import base64

    for path, data in zip(pngs, inline, strict=True):
        png = path.read_bytes()
        assert base64.b64decode(data) == png
        assert len(png) > 5000, f"{path.name} is suspiciously small"
        assert _colours(png) > 20, f"{path.name} is (nearly) one colour: no window was drawn"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "](images/gui-alice-error.png)" in md
    # The demo's own Xvfb is stopped afterwards: its socket is gone.
    number = re.search(r"client windows on display :(\d+)", proc.stdout)
    assert number, proc.stdout[-2000:]
    assert not Path(f"/tmp/.X11-unix/X{number.group(1)}").exists()


def test_colour_count_tells_a_blank_picture() -> None:
    def png(rows: list[bytes], width: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        raw = b"".join(b"\x00" + r for r in rows)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    assert _colours(png([b"\xff\xff\xff" * 64] * 8, 64)) == 1
    gradient = [b"".join(bytes([x * 3, y * 30, 7]) for x in range(64)) for y in range(8)]
    assert _colours(png(gradient, 64)) > 20


def test_without_gui_the_note_says_how() -> None:
    from tcplab.demo import _gui_note

    assert "--gui" in _gui_note(False)


def test_gui_without_import_says_why(monkeypatch, tmp_path: Path) -> None:
    """An ``import`` on PATH that is not ImageMagick's (or none) is named in the note."""
    from tcplab.demo import _gui_note

    fake = tmp_path / "import"
    fake.write_text("#!/bin/sh\necho 'import: some other program'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":99")
    assert "is not ImageMagick's 'import'" in shots.import_problem()
    note = _gui_note(True)
    assert "--gui" in note and "were not taken" not in note
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert "'import' is missing" in shots.import_problem()
    assert "imagemagick" in shots.import_problem()
