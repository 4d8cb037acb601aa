"""What a run did, beside its captures: the facts the report states but cannot read from packets.

The demo fills a :class:`RunFacts` as it goes (which captures it wrote, which steps it
skipped and why, what each chat user saw); ``tcplab report`` fills one from the command
line. Plain data: no I/O, no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Scenario:
    """One chat scenario as run: what was done and the lines the user's CLI client showed."""

    letter: str
    title: str
    user: str  # whose screen the transcript is
    action: str
    transcript: list[str]
    ok: bool


@dataclass(slots=True)
class ChatRun:
    port: int
    users: list[str]
    scenarios: list[Scenario] = field(default_factory=list)
    #: The scenario-A message: (sender, target, text), to follow it on the wire.
    message: tuple[str, str, str] | None = None
    #: The user whose connection was reset (scenario F), if any.
    aborted: str | None = None
    #: Why there are no GUI screenshots, or the screenshots taken (PNG paths).
    gui_note: str = ""
    gui_images: list[tuple[str, Path]] = field(default_factory=list)


@dataclass(slots=True)
class RunFacts:
    command: str
    started: str  # ISO time, UTC
    environment: list[tuple[str, str]]  # (what, version): tcplab, kernel, Python, tshark
    csv: Path | None = None
    #: role → capture file: "frame351", "seed", "stream", "inject", "replay", "chat".
    captures: dict[str, Path] = field(default_factory=dict)
    live: bool = False
    live_reason: str = ""  # why the live steps were skipped
    chat: ChatRun | None = None
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
