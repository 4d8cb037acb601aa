"""Helpers shared by the subcommand modules: help formatting, argument types, progress."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep hand-written example blocks as written and show meaningful defaults beside options.

    "(default: None)" and "(default: False)" say nothing to a reader, so they are left out,
    as is a default the help text already states.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def writes_utf8(stream: object) -> bool:
    """Whether ``stream`` encodes its text as UTF-8, however its encoding is spelled
    (``utf-8``, ``UTF8``, ``utf_8``); a stream without an encoding is taken for ASCII."""
    import codecs

    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    """Add a subcommand parser with our house style (summary, description, examples)."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=HelpFormatter,
    )


def port_number(text: str) -> int:
    """argparse type: a TCP/UDP port 0–65535."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0–65535")
    return value


def ip_address(text: str) -> str:
    """argparse type: an IPv4 or IPv6 address (kept as text)."""
    from tcplab.packet.stack import ip_address as parse

    try:
        parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0 (0 usually meaning "no limit")."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


class Progress:
    """A single-line progress indicator on stderr, shown only when stderr is a terminal.

    Redrawn at most ten times a second so it never costs measurable time in hot loops:
    callers invoke :meth:`update` freely and the clock check does the throttling.
    """

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None,
                 *, bytes: bool = False) -> None:
        self.label = label
        self.bytes = bytes
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_draw = 0.0
        self._drawn = False

    def update(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + 0.1
        if self.total:
            pct = min(100.0, 100.0 * done / self.total)
            width = 30
            filled = int(width * pct / 100)
            bar = "█" * filled + "·" * (width - filled)
            text = f"\r{self.label} {bar} {pct:5.1f}% ({_size(done)}/{_size(self.total)})" if self.bytes \
                else f"\r{self.label} {bar} {pct:5.1f}% ({done:,}/{self.total:,})"
        else:
            text = f"\r{self.label} {done:,}"
        self.stream.write(text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
