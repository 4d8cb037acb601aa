"""Shared CLI helpers: the progress bar shows only on a terminal and cleans up after itself."""

from __future__ import annotations

import io

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
