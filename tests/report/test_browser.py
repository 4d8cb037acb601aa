"""The report in a real browser: headless Chromium loads it from disk, prints it, screenshots it.

The layout probe (see :mod:`tests.report.chromium`) is checked both ways: the report
fits the A4 width and draws every picture, and a page that overflows or has a broken
picture is caught by the same probe.
"""

from __future__ import annotations

from pathlib import Path

from tcplab.report import build_capture_report, write_report

from .chromium import check_page, probe


def test_capture_report_renders_in_chromium(captures: dict[str, Path], tmp_path: Path) -> None:
    html_path, _md = write_report(build_capture_report(
        [captures["seed"], captures["stream"], captures["tiny"]]), tmp_path / "out")
    measured = check_page(html_path, tmp_path)
    assert measured["svgs"] >= 6  # three flow graphs, three layer pictures


def test_probe_catches_overflow_and_broken_pictures(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><div style='width:1400px'>wide</div>"
                    "<img alt='gone' src='missing.png'><svg width='0' height='0'></svg>"
                    "</body></html>", encoding="utf-8")
    measured = probe(page)
    assert measured["scrollWidth"] > measured["clientWidth"]
    assert any(w.startswith("DIV") for w in measured["wide"])
    assert "img gone" in measured["broken"] and "svg #0" in measured["broken"]
