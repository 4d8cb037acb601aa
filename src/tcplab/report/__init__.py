"""Captures → report sections → HTML and Markdown: the document a student hands in.

The report is a pure function of captures and run facts: :func:`build_demo_report` and
:func:`build_capture_report` read the captures through the analyzer
(:mod:`~tcplab.report.facts`, the package's one door to it), word the sections
(:mod:`~tcplab.report.sections`) and return a :class:`~tcplab.report.model.Report`;
:func:`write_report` renders it as a self-contained ``report.html`` and a ``report.md``
whose pictures sit in ``images/`` beside it. Python API::

    from tcplab.report import build_capture_report, write_report
    html_path, md_path = write_report(build_capture_report(["chat.pcap"]), "out/")

What this package must never do: run captures or commands (the demo does that), fetch
anything from the network, or put script in the page.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from tcplab.analyze import CHAT_PORTS
from tcplab.errors import InputError
from tcplab.report import html as _html
from tcplab.report import markdown as _markdown
from tcplab.report.facts import CaptureFacts
from tcplab.report.model import Report
from tcplab.report.run import ChatRun, RunFacts, Scenario
from tcplab.report.sections import capture_report, demo_report

__all__ = ["ChatRun", "Report", "RunFacts", "Scenario", "build_capture_report",
           "build_demo_report", "environment", "write_report"]


def environment() -> list[tuple[str, str]]:
    """What the report was made on: tcplab, kernel, Python and (if present) tshark versions."""
    from tcplab import __version__

    out = [("tcplab", __version__), ("Kernel", f"{platform.system()} {platform.release()}"),
           ("Python", platform.python_version())]
    tshark = shutil.which("tshark")
    if tshark:
        try:
            first = subprocess.run([tshark, "--version"], capture_output=True, text=True,
                                   timeout=20).stdout.splitlines()
            out.append(("tshark", first[0].replace("TShark (Wireshark) ", "") if first else "?"))
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_demo_report(run: RunFacts) -> Report:
    """The course report from the demo's captures (``run.captures``: role → path)."""
    captures = {}
    chat_ports = frozenset({run.chat.port}) if run.chat else CHAT_PORTS
    for role, path in run.captures.items():
        captures[role] = CaptureFacts.load(path, chat_ports=chat_ports if role == "chat"
                                           else CHAT_PORTS)
    return demo_report(run, captures)


def build_capture_report(paths: Iterable[str | os.PathLike[str]], *,
                         chat_ports: frozenset[int] = CHAT_PORTS,
                         command: str | None = None) -> Report:
    """An analysis report of any captures (``tcplab report CAPTURE...``)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("give at least one capture file")
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    run = RunFacts(command or "tcplab report " + " ".join(map(str, paths)), now(), environment())
    return capture_report(run, [CaptureFacts.load(p, chat_ports=chat_ports) for p in paths])


def write_report(report: Report, out_dir: str | os.PathLike[str], *,
                 html_name: str = "report.html", md_name: str = "report.md") -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` + ``images/`` into ``out_dir``.

    A file name that is not UTF-8 (``os.fsdecode`` keeps its stray bytes as lone
    surrogates) is written with a backslash escape for each such byte.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path = out / html_name
        html_path.write_text(_html.render(report), encoding="utf-8", errors="backslashreplace")
        text, files = _markdown.render(report)
        for rel, content in files.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8", errors="backslashreplace")
        md_path = out / md_name
        md_path.write_text(text, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        raise InputError(f"{exc.filename or out}: cannot write the report: {exc.strerror}") from None
    return html_path, md_path


