"""The report package: sections as data, both renderers, ``tcplab report``, hostile capture text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tcplab.report import build_capture_report, write_report
from tcplab.report import html as html_renderer
from tcplab.report import markdown as md_renderer
from tcplab.report.model import Code, Figure, Items, Notice, Part, Ref, Report, Section, Table, para

from .conftest import REPO

HOSTILE = "<script>alert('x')</script> | **bold** `tick` \x1b[31m ](javascript:x)"


def _hostile_report() -> Report:
    s = Section("s1", "1. " + HOSTILE, [
        para(HOSTILE, Ref("s1", "<self>")), Notice(HOSTILE, "problem"), Code(HOSTILE + "\n```"),
        Table(("a|b", "<c>"), ((HOSTILE, "x"),), HOSTILE, mono=(0,)),
        Figure("pic", "<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='10' "
               "height='10'><rect width='10' height='10'/></svg>", HOSTILE),
        Items((para(HOSTILE),))])
    return Report(HOSTILE, HOSTILE, [(HOSTILE, HOSTILE)], [Notice(HOSTILE)], [Part(HOSTILE, [s])])


def test_html_escapes_every_text_and_has_no_script() -> None:
    page = html_renderer.render(_hostile_report())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert "<?xml" not in page  # inline SVG loses its declaration
    assert page.count("<svg") == 1


def test_markdown_escapes_markup_and_fences_code() -> None:
    text, files = md_renderer.render(_hostile_report())
    assert "<script>" not in text.replace("```\n<script>", "")  # only inside code fences
    assert "\\*\\*bold\\*\\*" in text and "\\|" in text
    assert "````" in text  # a fence longer than any run of backticks in the code
    assert files == {"images/pic.svg": _hostile_report().parts[0].sections[0].blocks[4].svg}


def test_capture_report_is_filled_from_the_capture(captures: dict[str, Path], tmp_path: Path) -> None:
    from tcplab.analyze import analyze

    report = build_capture_report([captures["seed"], captures["stream"]])
    html_path, md_path = write_report(report, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    md = md_path.read_text(encoding="utf-8")
    seed = list(analyze(captures["seed"]))
    retrans = [d["frame.number"] for d in seed if d.get("tcp.analysis.retransmission")]
    assert f"{len(seed)} packets" in md and f"{len(retrans)} retransmission tags" in md
    assert "Null/Loopback header" in page and "TCP checksum, step by step" in page
    assert (tmp_path / "images" / "c1-flow.svg").is_file()
    for name in re.findall(r"\]\((images/[^)]+)\)", md):
        assert (tmp_path / name).is_file(), name
    assert "<script" not in page.lower() and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "")


def test_report_command(captures: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sub" / "mine.html"
    proc = subprocess.run([sys.executable, "-m", "tcplab", "report", str(captures["stream"]),
                           "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and out.with_suffix(".md").is_file()
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_text("hello\n")
    for args in ([str(bad)], [str(tmp_path / "missing.pcap")]):
        proc = subprocess.run([sys.executable, "-m", "tcplab", "report", *args, "-o",
                               str(tmp_path / "x.html")], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert args[0] in proc.stderr and "Traceback" not in proc.stderr


def test_a_file_name_that_is_not_utf8_is_escaped_not_a_crash(
        captures: dict[str, Path], tmp_path: Path) -> None:
    """Linux file names are bytes: one with a stray 0xff (``os.fsdecode`` keeps it as a
    lone surrogate) used to stop the report half-written with a UnicodeEncodeError."""
    import os
    import shutil

    raw = os.path.join(os.fsencode(tmp_path), b"bad\xffname.pcap")
    shutil.copyfile(captures["stream"], raw)
    name = os.fsdecode(raw)
    html_path, md_path = write_report(build_capture_report([name]), tmp_path / "out")
    for path in (html_path, md_path):
        text = path.read_text(encoding="utf-8")
        assert "bad\\udcffname.pcap" in text and "packets" in text


def test_open_hands_the_page_to_the_browser(captures: dict[str, Path], tmp_path: Path) -> None:
    import os

    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f"#!/bin/sh\necho \"$1\" > {seen}\n")
    browser.chmod(0o755)
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "tcplab", "report", str(captures["seed"]), "-o",
                           str(out), "--open"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BROWSER": str(browser)})
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text().strip() == out.resolve().as_uri()


def test_large_capture_is_cut_and_says_so(captures: dict[str, Path]) -> None:
    from tcplab.report.facts import CaptureFacts
    from tcplab.report.run import RunFacts
    from tcplab.report.sections import capture_report

    cf = CaptureFacts.load(captures["stream"], max_packets=5)
    assert cf.truncated and len(cf.packets) == 5
    text, _files = md_renderer.render(capture_report(RunFacts("t", "now", []), [cf]))
    assert "Only the first 5 packets are analyzed" in text
    assert not CaptureFacts.load(captures["stream"]).truncated
