"""The GUIs' presentation model: what the windows show, decided without Tk.

The chat window's state — one conversation per peer plus "Everyone", unread counts, which
conversation a server error belongs to, who is online, the colour of each sender, how a
message is cut into display lines — and the server console's counters live here as plain
Python, so they are unit-tested without a display and the Tk views only draw them. Text is
kept in logical order (as typed, as sent on the wire); only :func:`body_lines` produces the
visual order a left-to-right-only renderer such as Tk on X11 needs.

This module must never import tkinter, touch a socket or read a clock it was not given.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import unicodedata
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.chat.display import graphemes, has_rtl, layout, visual
from tcplab.chat.protocol import Code, nick_key
from tcplab.chat.sanitize import sanitize
from tcplab.chat.server import format_event

#: Conversation key of the broadcast conversation (``*`` is the wire's broadcast target and
#: no nickname may start with it, so it can never collide with a peer).
EVERYONE = "*"
EVERYONE_TITLE = "Everyone"
#: Messages kept per conversation; older ones are forgotten (and removed from the screen).
DEFAULT_HISTORY = 1000
#: A server error this soon after a send belongs to the conversation that sent it (the
#: server answers in order and at once; an old error is shown where the user is now).
ERROR_CONTEXT_SECONDS = 10.0
#: Sender colours: dark enough for black-on-white legibility (WCAG AA on white), distinct
#: enough to tell ten people apart. Own messages use their own style, not a palette colour.
PALETTE = (
    "#1f5fbf", "#b3261e", "#1e7b34", "#8a4baf", "#b35900", "#00758f",
    "#a3367a", "#5b6b00", "#6b4f2a", "#3d4fd6", "#c2185b", "#2e7d6b",
)

#: More joins and leaves than this in one list update are summed up in one notice.
MAX_PRESENCE_NOTICES = 20

_NOT_CONNECTED = re.compile(r"^User '(.*)' is not connected")


def colour_for(nick: str) -> str:
    """The sender's colour, the same in every window and every run (a hash of the name as
    the server compares it, so ``Alice`` and ``alice`` — one user — share a colour)."""
    return PALETTE[zlib.crc32(nick_key(nick).encode("utf-8")) % len(PALETTE)]


# --- emoji and Tk indices -----------------------------------------------------------------


def is_emoji_cluster(cluster: str) -> bool:
    """True for a grapheme cluster a colour emoji font should draw (pictographs, flags,
    sequences with VS16 or ZWJ); the views give such clusters the emoji font."""
    cp = ord(cluster[0])
    if "\ufe0f" in cluster or "\u200d" in cluster:
        return True
    return (0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF
            or 0x1F1E6 <= cp <= 0x1F1FF)


#: Characters drawn with the emoji font: pictographs, dingbats, regional indicators, and the
#: joiners and selectors that glue emoji sequences (ZWJ, VS16, keycap, tags). Decided per
#: character, not per cluster, so a run's font and its measured width always agree.
_EMOJI_RUN = re.compile("[\u200d\ufe0f\u20e3\u2600-\u27bf\u2b00-\u2bff"
                        "\U0001f000-\U0001faff\U000e0020-\U000e007f]+")


def is_emoji_char(ch: str) -> bool:
    return _EMOJI_RUN.fullmatch(ch) is not None


def has_emoji(text: str) -> bool:
    """True when ``text`` holds a character for the emoji font."""
    return not text.isascii() and _EMOJI_RUN.search(text) is not None


def emoji_runs(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(run, is_emoji)`` pieces, so each run gets its own font."""
    if not has_emoji(text):
        return [(text, False)] if text else []
    runs: list[tuple[str, bool]] = []
    pos = 0
    for match in _EMOJI_RUN.finditer(text):
        if match.start() > pos:
            runs.append((text[pos:match.start()], False))
        runs.append((match.group(), True))
        pos = match.end()
    if pos < len(text):
        runs.append((text[pos:], False))
    return runs


def tk_length(text: str) -> int:
    """Length of ``text`` in Tk 8.6 index units: Tcl 8.6 stores strings as UTF-16, so a
    character outside the BMP (most emoji) counts as two in a Text ``line.column`` index and
    an Entry position (``"+N chars"`` offsets count characters). The views avoid column
    arithmetic (they insert at "end"/"insert" and use tag ranges); use this where one is
    needed, never ``len()``."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def codepoint_names(text: str) -> str:
    """The last-resort rendering of emoji when no font has them: ``[GRINNING FACE]``."""
    out = []
    for g in graphemes(text):
        if is_emoji_cluster(g):
            names = [unicodedata.name(ch, f"U+{ord(ch):04X}") for ch in g
                     if ch not in "\u200d\ufe0f"]
            out.append("[" + " + ".join(names) + "]")
        else:
            out.append(g)
    return "".join(out)


# --- bidi line layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayLine:
    """One line as drawn: visual order, and whether to right-align it."""

    text: str
    rtl: bool


def body_lines(text: str, width: float, measure: Callable[[str], float]) -> list[DisplayLine]:
    """A message body as display lines: wrapped to ``width`` (``measure``'s unit, pixels in
    the GUI) in logical order, then each line reordered for a left-to-right renderer.
    Multi-line bodies (none today on the wire) keep their breaks as paragraph breaks."""
    out: list[DisplayLine] = []
    for paragraph in text.split("\n"):
        direction, lines = layout(paragraph, width, measure)
        out.extend(DisplayLine(line, direction == "rtl") for line in lines)
    return out


def display_name(nick: str) -> str:
    """A nickname as a left-to-right renderer must draw it (Hebrew names reordered)."""
    return visual(nick) if has_rtl(nick) else nick


# --- the chat window ----------------------------------------------------------------------

#: Entry kinds: a peer's message, my own, a server error, a server notice, a join/leave notice.
INCOMING, OWN, ERROR, SYSTEM, NOTICE = "in", "own", "error", "system", "notice"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message in a conversation's history, in logical order."""

    seq: int
    when: float
    kind: str
    sender: str
    text: str

    def clock(self) -> str:
        return time.strftime("%H:%M", time.localtime(self.when))

    def copy_text(self) -> str:
        """What copying this entry puts on the clipboard: logical order, one line."""
        who = f"{self.sender}: " if self.sender else ""
        return f"[{self.clock()}] {who}{self.text}"


@dataclass
class Conversation:
    key: str
    cap: int = DEFAULT_HISTORY
    entries: deque[Entry] = field(default_factory=deque)
    unread: int = 0
    online: bool = True

    @property
    def title(self) -> str:
        return EVERYONE_TITLE if self.key == EVERYONE else self.key

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        while len(self.entries) > self.cap:
            self.entries.popleft()


@dataclass(frozen=True)
class UserRow:
    """A row of the users list: a conversation and/or an online user."""

    key: str
    label: str  # display form (bidi-reordered), with markers
    unread: int
    online: bool
    me: bool


class ChatModel:
    """Conversations, users and unread counts of one logged-in user.

    Every mutator returns the conversation that changed (or None) so a view redraws only
    that. ``clock`` is injected for tests.
    """

    def __init__(self, me: str, *, history: int = DEFAULT_HISTORY,
                 clock: Callable[[], float] = time.time) -> None:
        if history < 1:
            raise ValueError("history must keep at least one message")
        self.me = me
        self.history = history
        self.clock = clock
        self._seq = itertools.count(1)
        self.conversations: dict[str, Conversation] = {}
        self.users: tuple[str, ...] = ()
        self._have_list = False
        self.active = EVERYONE
        self._last_sent: tuple[str, float] | None = None
        self.conversation(EVERYONE)

    # -- conversations -------------------------------------------------------------------

    def conversation(self, key: str) -> Conversation:
        """The conversation with ``key``, opened if needed."""
        conv = self.conversations.get(key)
        if conv is None:
            conv = Conversation(key, self.history, online=key == EVERYONE or key in self.users)
            self.conversations[key] = conv
        return conv

    def switch(self, key: str) -> Conversation:
        """Show ``key``'s conversation: it is read now."""
        conv = self.conversation(key)
        conv.unread = 0
        self.active = key
        return conv

    def close(self, key: str) -> str:
        """Close a conversation (its history goes); returns the conversation now active.
        "Everyone" cannot be closed."""
        if key != EVERYONE:
            self.conversations.pop(key, None)
        if self.active == key or self.active not in self.conversations:
            self.switch(EVERYONE)
        return self.active

    @property
    def total_unread(self) -> int:
        return sum(c.unread for c in self.conversations.values())

    def title(self) -> str:
        """The window title: who I am and what is waiting."""
        unread = self.total_unread
        return f"{display_name(self.me)} — tcplab chat" + (f" ({unread} unread)" if unread else "")

    def _add(self, key: str, kind: str, sender: str, text: str, *, count: bool) -> Conversation:
        conv = self.conversation(key)
        conv.add(Entry(next(self._seq), self.clock(), kind, sender, text))
        if count and key != self.active:
            conv.unread += 1
        return conv

    # -- what happens --------------------------------------------------------------------

    def incoming(self, sender: str, text: str, *, broadcast: bool = False) -> Conversation:
        """A peer's message (sanitized here: peer text never reaches a widget raw)."""
        sender, text = sanitize(sender), sanitize(text)
        return self._add(EVERYONE if broadcast else sender, INCOMING, sender, text, count=True)

    def sent(self, key: str, text: str) -> Conversation:
        """My own message to ``key`` (EVERYONE for a broadcast), shown at once."""
        self._last_sent = (key, self.clock())
        return self._add(key, OWN, self.me, text, count=False)

    def sent_raw(self, key: str) -> None:
        """A line typed for the server itself (``/users``, a raw line): its answer belongs to
        the conversation it was typed in."""
        self._last_sent = (key, self.clock())

    def server_notice(self, code: int, text: str) -> Conversation:
        """A ``System:`` line: errors go to the conversation they answer (scenarios B–D)."""
        text = sanitize(text)
        key = self._notice_home(code, text)
        kind = ERROR if code >= 400 else SYSTEM
        return self._add(key, kind, "System", text, count=key != self.active)

    def _notice_home(self, code: int, text: str) -> str:
        if code == Code.SHUTTING_DOWN:
            return EVERYONE
        if code == Code.NO_SUCH_NICK:
            m = _NOT_CONNECTED.match(text)
            if m and m.group(1) in self.conversations:
                return m.group(1)
        if self._last_sent is not None:
            key, when = self._last_sent
            if self.clock() - when <= ERROR_CONTEXT_SECONDS and key in self.conversations:
                return key
        return self.active if self.active in self.conversations else EVERYONE

    def local_notice(self, key: str, text: str) -> Conversation:
        """A note from this program itself (not from the server), e.g. "not sent"."""
        return self._add(key, NOTICE, "", text, count=False)

    def set_users(self, users: Iterable[str]) -> list[Conversation]:
        """A new online list: join/leave notices for the changes (none for the first list
        after login), peers' conversations marked online or offline (scenario F)."""
        new = tuple(sanitize(u) for u in users)
        old = set(self.users)
        self.users = new
        changed: list[Conversation] = []
        if self._have_list:
            now = set(new)
            joined = [u for u in new if u not in old and u != self.me]
            left = sorted(old - now - {self.me}, key=str.casefold)
            if len(joined) + len(left) > MAX_PRESENCE_NOTICES:
                # A login storm: one summary line, not thousands (peers' conversations
                # still get their own line).
                changed.append(self.local_notice(
                    EVERYONE, f"{len(joined)} users joined, {len(left)} left."))
                for nick in joined + left:
                    if nick in self.conversations:
                        changed.append(self.local_notice(
                            nick, f"{nick} {'joined' if nick in now else 'left'}."))
            else:
                for nick in joined:
                    changed.extend(self._presence(nick, f"{nick} joined.", True))
                for nick in left:
                    changed.extend(self._presence(nick, f"{nick} left.", False))
        self._have_list = True
        online = set(new)
        for key, conv in self.conversations.items():
            if key != EVERYONE:
                conv.online = key in online
        return changed

    def _presence(self, nick: str, text: str, online: bool) -> list[Conversation]:
        if nick == self.me:
            return []
        changed = [self.local_notice(EVERYONE, text)]
        if nick in self.conversations:
            self.conversations[nick].online = online
            changed.append(self.local_notice(nick, text))
        return changed

    def disconnected(self) -> None:
        """The connection is gone: nobody is known to be online any more."""
        self._have_list = False
        self.users = ()
        for key, conv in self.conversations.items():
            if key != EVERYONE:
                conv.online = False

    # -- the users list ------------------------------------------------------------------

    def rows(self, query: str = "") -> list[UserRow]:
        """The users list: Everyone first, then online users and open conversations sorted
        by name, own name marked; ``query`` filters by case-insensitive substring."""
        q = query.strip().casefold()
        everyone = self.conversations[EVERYONE]
        rows = [UserRow(EVERYONE, EVERYONE_TITLE, everyone.unread, True, False)]
        names = set(self.users) | (set(self.conversations) - {EVERYONE}) | {self.me}
        online = set(self.users)
        for nick in sorted(names, key=lambda n: (n.casefold(), n)):
            if q and q not in nick.casefold():
                continue
            conv = self.conversations.get(nick)
            me = nick == self.me
            label = display_name(nick) + (" (you)" if me else "")
            if nick not in online and not me:
                label += " (offline)"
            rows.append(UserRow(nick, label, conv.unread if conv else 0, nick in online, me))
        return rows


# --- the server console -------------------------------------------------------------------


@dataclass
class ConnectedUser:
    nick: str
    peer: str
    since: float
    messages: int = 0


#: Console events that count as errors (refusals included: an operator wants to see them).
_ERROR_EVENTS = frozenset({"error", "flood", "slow_consumer", "accept_failed", "refused"})
_REFUSAL_CODES = frozenset({Code.BAD_NICK, Code.NICK_IN_USE, Code.PASSWORD, Code.SERVER_FULL})


class ConsoleModel:
    """What the "System Logs" window shows, fed with the server's observer events."""

    def __init__(self, *, max_log: int = 5000, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.log: deque[str] = deque(maxlen=max_log)
        self.reset()

    def reset(self) -> None:
        """A new server run: counters start again (the log is kept)."""
        self.peers: dict[int, tuple[str, float]] = {}
        self.users: dict[int, ConnectedUser] = {}
        self.peak = 0
        self.routed = 0
        self.errors = 0
        self.started: float | None = None
        self.running = False

    def apply(self, event: str, conn: int, fields: dict) -> str | None:
        """Take one observer event; return the log line to show (None for ``stats``)."""
        now = self.clock()
        if event == "stats":
            sent = fields.get("sent", {})
            for cid, user in self.users.items():
                user.messages = sent.get(cid, user.messages)
            self.routed = fields.get("routed", self.routed)
            return None
        if event == "listening":
            self.reset()
            self.started = now
            self.running = True
        elif event == "stopped":
            self.running = False
            self.peers.clear()
            self.users.clear()
        elif event == "connect":
            self.peers[conn] = (str(fields.get("peer", "?")), now)
        elif event == "join":
            peer, since = self.peers.get(conn, ("?", now))
            self.users[conn] = ConnectedUser(sanitize(str(fields.get("nick", "?"))), peer, since)
            self.peak = max(self.peak, len(self.users))
        elif event == "leave":
            self.users.pop(conn, None)
        elif event == "disconnect":
            self.users.pop(conn, None)
            self.peers.pop(conn, None)
        if event in _ERROR_EVENTS:
            self.errors += 1
        line = f"{time.strftime('%H:%M:%S', time.localtime(now))}  {self.describe(event, conn, fields)}"
        self.log.append(line)
        return line

    @staticmethod
    def describe(event: str, conn: int, fields: dict) -> str:
        """The CLI server's log line (one formatter for both), refusals named as such."""
        if event == "error" and fields.get("code") in _REFUSAL_CODES:
            event = "login_refused"
        return format_event(event, conn, fields)

    def uptime(self) -> str:
        if self.started is None or not self.running:
            return "—"
        secs = int(self.clock() - self.started)
        return f"{secs // 3600:d}:{secs // 60 % 60:02d}:{secs % 60:02d}"

    def table(self) -> list[tuple[int, str, str, str, int]]:
        """Rows of the connected-users table: (conn, nick, address, since, messages)."""
        return [(cid, display_name(u.nick), u.peer,
                 time.strftime("%H:%M:%S", time.localtime(u.since)), u.messages)
                for cid, u in sorted(self.users.items())]


# --- remembered settings ------------------------------------------------------------------


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/tcplab/gui.json`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tcplab" / "gui.json"


def load_settings(path: Path | None = None) -> dict:
    """The remembered host/port (an unreadable or foreign file is ignored, never fatal)."""
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict = {}
    if isinstance(data.get("host"), str) and 0 < len(data["host"]) <= 255:
        out["host"] = data["host"]
    if isinstance(data.get("port"), int) and 0 < data["port"] < 65536:
        out["port"] = data["port"]
    return out


def save_settings(settings: dict, path: Path | None = None) -> None:
    path = path or config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # remembering is a convenience; a read-only home must not stop the chat


__all__ = [
    "EVERYONE", "DEFAULT_HISTORY", "PALETTE", "ChatModel", "ConsoleModel", "Conversation",
    "DisplayLine", "Entry", "UserRow", "body_lines", "codepoint_names", "colour_for",
    "display_name", "emoji_runs", "has_emoji", "is_emoji_char", "is_emoji_cluster", "load_settings", "save_settings",
    "tk_length",
]
