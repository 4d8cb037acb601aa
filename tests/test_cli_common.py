"""Shared CLI behaviour: the progress bar shows only on a terminal and cleans up after
itself; a stdout that is not UTF-8 gets escapes, not a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from tcplab.cli.common import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_erases_its_line() -> None:
    out = Terminal()
    p = Progress("encap", stream=out, bytes=True)
    p.update(5000, 20000)
    p.close()
    assert out.getvalue() == "\rencap ███████·······················  25.0% (4.9 KB/19.5 KB)\r\x1b[K"


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress("encap", stream=out)
    p.update(1, 2)
    p.close()
    assert out.getvalue() == ""


@pytest.mark.parametrize("argv", [["--help"], ["encap", "--help"], ["analyze", "--help"]])
def test_help_on_an_ascii_stdout_escapes_the_arrows(argv: list[str]) -> None:
    """The help texts have arrows (CSV → packets); an ASCII or Latin-1 stdout cannot hold
    them, and the help used to end in a UnicodeEncodeError instead of printing."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "tcplab", *argv], capture_output=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    text = proc.stdout.decode("ascii")
    assert "\\u2192" in text and "usage: tcplab" in text
