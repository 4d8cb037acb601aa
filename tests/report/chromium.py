"""Headless Chromium for the report tests: print to PDF, screenshot, and probe the layout.

The report itself has no script, so the probe runs on a *copy* of the page with a small
script appended that writes what the browser measured (page width against the window,
pictures that failed to draw) into the DOM, which ``--dump-dom`` then prints.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from tests.support import require_program

#: A4 width at 96 px per inch (210 mm).
A4_WIDTH_PX = 794
A4_HEIGHT_PX = 1123

_PROBE = """
<script>
(function () {
  var d = document.documentElement;
  var broken = [];
  document.querySelectorAll('img').forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) broken.push('img ' + (img.alt || img.src.slice(0, 40)));
  });
  document.querySelectorAll('svg').forEach(function (svg, i) {
    var r = svg.getBoundingClientRect();
    var drawn = svg.querySelectorAll('text, line, rect, path').length;
    if (r.width < 10 || r.height < 10 || drawn === 0) broken.push('svg #' + i);
  });
  var wide = [];
  document.querySelectorAll('body *').forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.right > d.clientWidth + 1) wide.push(el.tagName + (el.id ? '#' + el.id : ''));
  });
  var out = {scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, scrollHeight: d.scrollHeight,
             broken: broken, wide: wide.slice(0, 10), svgs: document.querySelectorAll('svg').length};
  var pre = document.createElement('pre');
  pre.id = 'tcplab-probe';
  pre.textContent = 'PROBE' + JSON.stringify(out) + 'EBORP';
  document.body.appendChild(pre);
})();
</script>
"""


def chromium() -> str:
    return require_program("chromium")


def _run(url: str, *extra: str, width: int = A4_WIDTH_PX, height: int = A4_HEIGHT_PX,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="tcplab-chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
               f"--window-size={width},{height}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def probe(page: Path, *, width: int = A4_WIDTH_PX) -> dict:
    """Load a copy of ``page`` with the probe script and return what the browser measured."""
    copy = page.with_name(page.stem + ".probe.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                    encoding="utf-8")
    try:
        proc = _run(copy.resolve().as_uri(), "--dump-dom", "--virtual-time-budget=5000",
                    width=width)
    finally:
        copy.unlink()
    m = re.search(r"PROBE(\{.*?\})EBORP", proc.stdout, re.S)
    if m is None:
        raise AssertionError(f"chromium printed no probe result (status {proc.returncode}):\n"
                             f"{proc.stderr[-2000:]}")
    return json.loads(m.group(1))


def print_pdf(page: Path, pdf: Path) -> bytes:
    proc = _run(page.resolve().as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    if not pdf.is_file():
        raise AssertionError(f"no PDF written (status {proc.returncode}):\n{proc.stderr[-2000:]}")
    return pdf.read_bytes()


def screenshot(url_or_page: Path | str, png: Path, *, width: int = A4_WIDTH_PX,
               height: int = A4_HEIGHT_PX) -> Path:
    url = url_or_page.resolve().as_uri() if isinstance(url_or_page, Path) else url_or_page
    proc = _run(url, f"--screenshot={png}", width=width, height=height)
    if not png.is_file():
        raise AssertionError(f"no screenshot written (status {proc.returncode}):\n{proc.stderr[-2000:]}")
    return png


def png_size(png: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def check_page(page: Path, tmp_path: Path) -> dict:
    """The assertions every report page must pass; returns the probe for more checks."""
    measured = probe(page)
    assert measured["broken"] == [], measured
    assert measured["scrollWidth"] <= measured["clientWidth"] == A4_WIDTH_PX, measured
    assert measured["wide"] == [], measured
    pdf = print_pdf(page, tmp_path / "report.pdf")
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2
    height = min(int(measured["scrollHeight"]), 16000)
    png = screenshot(page, tmp_path / "full.png", height=height)
    assert png_size(png) == (A4_WIDTH_PX, height)
    return measured
