"""The chat protocol as a sans-IO state machine: bytes in, (recipient, bytes) out.

Everything the chat server *decides* lives here: line framing with a maximum length,
UTF-8 decoding after framing, nickname rules, command parsing, routing, flood
control, coalesced online lists and the error codes. The selectors loop in
:mod:`tcplab.chat.server` only moves bytes between sockets and this object, and the
tests drive it with byte strings and a fake clock.

This module must never touch a socket, a file, a clock or a logger: time comes in as
``now`` arguments and notable happenings go out as :class:`Note` records that the
caller may log.

Wire format (full grammar in ``docs/protocol.md``), one UTF-8 line per message, ``\\n``
terminated (``\\r\\n`` accepted):

* client → server: first line the nickname; then ``Target: text`` (private),
  ``*: text`` (everyone), or a ``/command``;
* server → client: ``Sender: text`` (private), ``* Sender: text`` (broadcast),
  ``ONLINE_USERS:a,b,c`` and ``System: text`` notices and errors — the report's exact
  wording; a client that sends ``/codes on`` gets ``System: NNN text`` with a numeric code.
"""

from __future__ import annotations

import hmac
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from tcplab.chat.nickname import MAX_NICK_CHARS, nick_problem, skeleton
from tcplab.chat.sanitize import strip_escapes

# --- limits -------------------------------------------------------------------------------

#: Longest accepted line in bytes, excluding the line ending. IRC allows 512 bytes; we allow
#: more because chat text in Hebrew or emoji takes 2–4 bytes per character, yet keep it small
#: enough that a peer that never sends a newline costs at most this much memory.
DEFAULT_MAX_LINE = 4096
#: Flood control: sustained messages per second per client, and the burst allowed above it.
DEFAULT_RATE = 20.0
DEFAULT_BURST = 40.0
#: Online lists are coalesced: a client gets at most one list per interval. The interval grows
#: with the cost of a full list round (clients × list size) and all list sending together is
#: held to about LIST_BYTES_PER_SECOND, so a login storm of thousands of clients costs a few
#: lists per client instead of one per join (the seed's design is quadratic).
LIST_MIN_INTERVAL = 0.05
LIST_MAX_INTERVAL = 10.0
LIST_BYTES_PER_SECOND = 100e6
#: A newcomer gets the list together with the welcome while it is this small (the report's
#: client shows it at once); a larger one is queued and sent under the byte budget above.
LIST_INLINE_MAX = 8192
#: Wrong passwords: an address may get this many wrong in a row answered at once (typos);
#: after that each further attempt from it waits 1 s, 2 s, 4 s … up to a minute before it is
#: even looked at — on a timer, never by stalling the loop. 200 guesses then take hours,
#: not the 0.18 s they took unthrottled. An address's record is forgotten after
#: PASS_FORGET quiet seconds or a correct password.
PASS_FREE_FAILURES = 3
PASS_DELAY_BASE = 1.0
PASS_DELAY_MAX = 60.0
PASS_FORGET = 900.0
#: Attempts from one address that may wait their turn; more are refused without a look.
PASS_MAX_WAITING = 8
#: Addresses remembered at once (oldest forgotten first): bounded memory under a botnet.
PASS_TRACKED_ADDRESSES = 10_000
#: Lines a client may send while its password waits its turn (e.g. the nickname right
#: behind ``/pass``); they are processed in order once the password is accepted.
PASS_HELD_LINES = 16

# --- wire constants -----------------------------------------------------------------------

SYSTEM = "System"
ONLINE_PREFIX = b"ONLINE_USERS:"
BROADCAST_TARGET = "*"
#: Broadcasts are delivered as ``* Sender: text``; no nickname may start with ``*`` so a
#: receiver can always tell a broadcast from a private message.
BROADCAST_MARK = b"* "
#: Every command, with the help line the server's ``421`` answer and the clients show, so
#: the list exists once.
COMMANDS = (
    ("/users", "show who is online"),
    ("/deltas", "get join/leave notices instead of full lists"),
    ("/codes", "'/codes on': numeric codes on System lines (for programs)"),
    ("/ping", "check the connection"),
    ("/quit", "leave"),
    ("/pass", "'/pass PASSWORD' before the nickname, on servers that need one"),
)
#: What relayed chat text may not carry, as UTF-8 byte patterns (the text is known to be
#: valid UTF-8, so a pattern can only match whole characters): C0 controls but TAB, DEL,
#: C1 controls (U+0080–U+009F), the line/paragraph separators U+2028/U+2029 and the bidi
#: embeddings, overrides and isolates U+202A–U+202E, U+2066–U+2069. A bare CR, ESC or BEL
#: would let a message overwrite the sender's name or drive the reader's terminal in any
#: client, not only ours; an override could make the rest of a line read backwards.
#: Hebrew and Arabic display correctly without them (LRM/RLM stay allowed).
_RELAY_CONTROLS = re.compile(
    rb"[\x00-\x08\x0a-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")
_RELAY_CONTROLS_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")


class Code:
    """Stable numeric codes carried by every ``System:`` line (IRC numerics where one exists)."""

    WELCOME = 1  # login accepted
    PONG = 2  # reply to /ping
    PASSWORD_OK = 3  # password accepted, now send the nickname
    JOINED = 201  # delta notice: a user joined (only to clients that sent /deltas)
    LEFT = 202  # delta notice: a user left
    DELTAS_ON = 203  # /deltas accepted
    CODES_ON = 204  # /codes on accepted
    INVALID_UTF8 = 400  # the line is not valid UTF-8
    NO_SUCH_NICK = 401  # IRC ERR_NOSUCHNICK: target not connected (scenario B)
    NOT_DELIVERED = 404  # accepted message could not be delivered (target dropped)
    IDLE_TIMEOUT = 408  # nothing received for too long
    NO_RECIPIENT = 411  # IRC ERR_NORECIPIENT: no "Target:" part (scenario C)
    NO_TEXT = 412  # IRC ERR_NOTEXTTOSEND: empty name or message (scenario D)
    LINE_TOO_LONG = 417  # IRC ERR_INPUTTOOLONG
    UNKNOWN_COMMAND = 421  # IRC ERR_UNKNOWNCOMMAND
    FLOOD = 429  # flood limit reached; messages dropped (count reported)
    BAD_NICK = 432  # IRC ERR_ERRONEUSNICKNAME (invalid or reserved)
    NICK_IN_USE = 433  # IRC ERR_NICKNAMEINUSE (scenario E)
    PASSWORD = 464  # IRC ERR_PASSWDMISMATCH: password missing or wrong
    SERVER_FULL = 503  # maximum number of clients reached
    TOO_MANY_FROM_ADDRESS = 505  # per-address connection limit reached
    SHUTTING_DOWN = 550  # the server is stopping


def system_line(code: int, text: str) -> bytes:
    """Encode a ``System: NNN text`` line (for ``/codes on`` clients); three digits, so it is
    easy to parse."""
    return f"{SYSTEM}: {code:03d} {text}\n".encode()


def plain_system_line(text: str) -> bytes:
    """Encode a ``System: text`` line, the report's own form (the default)."""
    return f"{SYSTEM}: {text}\n".encode()


class ListLine(bytes):
    """An ``ONLINE_USERS`` line among the outputs. It is bytes like any other line; the class
    tells the I/O shell that this one may exceed the per-client output limit (a list of
    10,000 long names does) and that a newer list supersedes an unsent one."""

    __slots__ = ()


def online_line(names: Iterable[str]) -> ListLine:
    """``ONLINE_USERS:a,b,c`` exactly as the report's server sent it."""
    return ListLine(ONLINE_PREFIX + ",".join(names).encode() + b"\n")


#: Every C0 control but TAB, and DEL: deleted by bytes.translate() to count them at C speed.
_C0_AND_DEL = bytes(b for b in range(0x20) if b != 0x09) + b"\x7f"
#: The UTF-8 forms of the non-ASCII characters _RELAY_CONTROLS matches: (lead bytes, range
#: of the byte after them). Found with bytes.find(), which is far faster than a regex scan.
_UTF8_CONTROLS = ((b"\xc2", 0x80, 0x9f), (b"\xe2\x80", 0xa8, 0xae), (b"\xe2\x81", 0xa6, 0xa9))


def has_controls(data: bytes, line_ends: bool = False) -> bool:
    """True when ``data`` holds something :func:`clean_text` would change. With
    ``line_ends`` the ``\n`` and ``\r\n`` that end lines are allowed (a whole read is
    checked at once, so clean traffic costs a few C-speed passes per read, not a regex per
    line)."""
    n = len(data) - len(data.translate(None, _C0_AND_DEL))
    if n and (not line_ends or n != data.count(b"\n") + data.count(b"\r\n")):
        return True
    if data.isascii():
        return False
    for lead, lo, hi in _UTF8_CONTROLS:
        i = data.find(lead)
        while i >= 0:
            j = i + len(lead)
            if j < len(data) and lo <= data[j] <= hi:
                return True
            i = data.find(lead, j)
    return False


def clean_text(text: bytes) -> bytes:
    """Relayed chat text without terminal escape sequences (removed whole, as the tcplab
    client removes them, so no ``[2J`` residue shows) and without any other control
    character or bidi override (each shown as U+FFFD, so the reader sees something was
    there).

    Text without anything to clean, the usual case, costs no decode and no regex.
    """
    if not has_controls(text):
        return text
    cleaned = strip_escapes(text.decode("utf-8", "replace"))
    return _RELAY_CONTROLS_TEXT.sub("\ufffd", cleaned).encode()


#: The report's wording of each notice, for telling the code of a line that came without one
#: (a server that was not asked for codes, or the report's own server).
_WORDING = (
    (re.compile(r"^Welcome, "), Code.WELCOME),
    (re.compile(r"^Pong\.$"), Code.PONG),
    (re.compile(r"(Password accepted|No password needed)\.$"), Code.PASSWORD_OK),
    (re.compile(r"Join/leave notices on"), Code.DELTAS_ON),
    (re.compile(r"Numeric codes on\.$"), Code.CODES_ON),
    (re.compile(r"Invalid UTF-8"), Code.INVALID_UTF8),
    (re.compile(r"^User .* is not connected\.$"), Code.NO_SUCH_NICK),
    (re.compile(r"\d+ message\(s\) to .* not delivered"), Code.NOT_DELIVERED),
    (re.compile(r"(Idle for more than|No login within) "), Code.IDLE_TIMEOUT),
    (re.compile(r"^Invalid format!"), Code.NO_RECIPIENT),
    (re.compile(r"^Name or message cannot be empty\.$"), Code.NO_TEXT),
    (re.compile(r"Line too long"), Code.LINE_TOO_LONG),
    (re.compile(r"(Unknown command|Log in first|Use '/codes on')"), Code.UNKNOWN_COMMAND),
    (re.compile(r"(Flood limit|\d+ message\(s\) were dropped by the flood limit)"), Code.FLOOD),
    (re.compile(r"(Nickname .*already taken|Nickname already taken)"), Code.NICK_IN_USE),
    (re.compile(r"(Choose another nickname\.$|Invalid nickname)"), Code.BAD_NICK),
    (re.compile(r"(Password required|Wrong password|Too many password attempts)"), Code.PASSWORD),
    (re.compile(r"^Server full"), Code.SERVER_FULL),
    (re.compile(r"Too many connections from your address"), Code.TOO_MANY_FROM_ADDRESS),
    (re.compile(r"Server is shutting down"), Code.SHUTTING_DOWN),
)


def guess_code(text: str) -> int:
    """The code of an uncoded ``System:`` notice, recognised by its wording (0 if unknown)."""
    for pattern, code in _WORDING:
        if pattern.search(text):
            return code
    return 0


def nick_key(nick: str) -> str:
    """The identity of a nickname (its confusable skeleton, see :mod:`tcplab.chat.nickname`)."""
    return skeleton(nick)


# --- framing ------------------------------------------------------------------------------


#: Stands in the list returned by :meth:`LineFramer.feed` for a line that was too long.
OVERLONG = None


class LineFramer:
    """Split a byte stream into lines without ever holding more than ``max_line`` bytes.

    TCP delivers a byte stream, not messages: one ``recv`` may hold half a line or ten lines
    (the report's one-``recv``-per-message design breaks under load). Bytes are kept until
    the newline arrives, and decoding is left to the caller so a multi-byte character split
    across two reads is reassembled intact. A line longer than ``max_line`` yields
    :data:`OVERLONG` once and the rest of it is discarded as it streams in.
    """

    __slots__ = ("max_line", "_buf", "_discarding", "ascii")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = b""
        self._discarding = False
        #: True when everything the last feed() returned is ASCII (hence valid UTF-8), which
        #: lets the caller skip decoding line by line in the common case.
        self.ascii = True

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held right now (always ≤ ``max_line``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | None]:
        """Return the complete lines in ``data`` (without ``\\n``/``\\r\\n``), OVERLONG for each overlong one."""
        if self._buf:
            data = self._buf + data
        self.ascii = data.isascii()
        lines: list[bytes | None] = data.split(b"\n")  # type: ignore[assignment]
        rest: bytes = lines.pop()  # type: ignore[assignment]
        if self._discarding:
            if not lines:
                self._buf = b""
                return []
            del lines[0]  # the tail of the overlong line, already reported
            self._discarding = False
        limit = self.max_line
        if len(data) > limit:
            lines = [OVERLONG if len(ln) > limit + 1 or (len(ln) > limit and ln[-1] != 13)  # type: ignore[arg-type, index]
                     else ln for ln in lines]
        for i, ln in enumerate(lines):
            if ln and ln[-1] == 13:  # "\r" of a "\r\n" ending
                lines[i] = ln[:-1]
        if len(rest) > limit + 1 or (len(rest) > limit and rest[-1] != 13):
            lines.append(OVERLONG)
            self._discarding = True
            rest = b""
        self._buf = rest
        return lines


# --- notes (for logging) and commands -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth logging: metadata only, never message text (unless ``text`` is set
    because the operator asked for ``--log-messages``)."""

    event: str
    conn: int
    fields: dict = field(default_factory=dict)


class Close:
    """Output action: close this connection after what is queued has been sent."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Close({self.reason!r})"


Output = tuple[int, "bytes | Close"]


class Session:
    """Protocol state of one connection (logged in or not)."""

    __slots__ = (
        "conn", "framer", "nick", "key", "prefix", "bcast_prefix", "authenticated", "deltas",
        "tokens", "stamp", "dropped", "last_seen", "connected_at", "list_gen", "list_sent_at",
        "closing", "codes", "peer", "held", "tail_dirty",
    )

    def __init__(self, conn: int, max_line: int, burst: float, now: float, authenticated: bool,
                 peer: str = ""):
        self.conn = conn
        self.framer = LineFramer(max_line)
        self.nick: str | None = None
        self.key: str | None = None
        self.prefix = b""  # b"Nick: " stamped on every private message this user sends
        self.bcast_prefix = b""
        self.authenticated = authenticated
        self.deltas = False
        self.tokens = burst
        self.stamp = now
        self.dropped = 0
        self.last_seen = now
        self.connected_at = now
        self.list_gen = -1
        self.list_sent_at = -1e18
        self.closing = False
        self.codes = False  # "/codes on": System lines carry numeric codes
        self.peer = peer  # the address as the I/O shell counts it (for password throttling)
        # Lines received while a password waits its turn; None when nothing is waiting.
        self.held: list[bytes | None] | None = None
        # The unfinished line at the end of the last read holds a control character.
        self.tail_dirty = False


class _Guesses:
    """Wrong passwords from one address: how many, and when the next attempt may be judged."""

    __slots__ = ("failures", "last_failure", "next_allowed", "waiting")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0
        self.next_allowed = 0.0
        self.waiting: deque[tuple[Session, str]] = deque()


def password_delay(failures: int) -> float:
    """Seconds an address waits before its next attempt after ``failures`` wrong in a row."""
    if failures < PASS_FREE_FAILURES:
        return 0.0
    return min(PASS_DELAY_MAX, PASS_DELAY_BASE * 2.0 ** (failures - PASS_FREE_FAILURES))


@dataclass
class Limits:
    """Every tunable of the protocol in one place (the server's flags map onto these)."""

    max_line: int = DEFAULT_MAX_LINE
    rate: float = DEFAULT_RATE  # messages/s per client; 0 disables flood control
    burst: float = DEFAULT_BURST
    idle_timeout: float = 0.0  # seconds; 0 disables
    login_timeout: float = 0.0  # seconds from connect to a nickname; 0 disables
    password: str | None = None
    log_messages: bool = False


class ChatCore:
    """The whole server-side protocol for every connection, without I/O.

    Call :meth:`connect`, :meth:`receive` and :meth:`disconnect` as things happen on the
    wire and :meth:`tick` now and then; each returns ``[(conn_id, bytes | Close), ...]`` to
    carry out in order. The ``ONLINE_USERS`` list is not pushed on every join: the roster
    has a generation number and :meth:`due_lists` hands each client the current list only
    when its output has drained and its coalescing interval has passed, so 10,000 joins
    cost a few lists per client rather than 10,000. Lists are :class:`ListLine` outputs.
    Call :meth:`timers` often (every few tens of ms): delayed password answers come out there.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.sessions: dict[int, Session] = {}
        self.users: dict[str, Session] = {}  # nick_key -> session, logged-in only, join order
        self._by_bytes: dict[bytes, Session] = {}  # exact UTF-8 nick -> session (fast path)
        self.roster_gen = 0
        self._list_cache: tuple[int, ListLine] = (-1, ListLine())
        self._synced_gen = 0
        self._awaiting: dict[int, Session] = {}  # logged in, a list is owed as soon as drained
        # Logged-in clients that asked for join/leave notices (a dict keeps join order), so
        # a join costs O(deltas clients), not a scan of everyone.
        self._delta_conns: dict[int, Session] = {}
        self._last_due = 0.0
        # Length of the ONLINE_USERS line, kept up to date so a join never has to build it.
        self._list_bytes = len(ONLINE_PREFIX)
        self._guesses: dict[str, _Guesses] = {}  # address -> wrong passwords (oldest first)
        self._guess_waiting: dict[str, _Guesses] = {}  # addresses with attempts waiting
        self.notes: list[Note] = []

    # -- System lines in the form each client asked for ------------------------------------

    @staticmethod
    def _sys(sess: Session, code: int, text: str) -> bytes:
        return system_line(code, text) if sess.codes else plain_system_line(text)

    # -- connection lifecycle ------------------------------------------------------------

    def connect(self, conn: int, now: float, peer: str = "") -> list[Output]:
        """A TCP connection was accepted (``peer``: its address, for per-address rules);
        nothing is sent until the client speaks."""
        lim = self.limits
        self.sessions[conn] = Session(conn, lim.max_line, lim.burst, now, lim.password is None,
                                      peer)
        return []

    def disconnect(self, conn: int, reason: str) -> list[Output]:
        """The connection is gone (FIN, RST, timeout, overflow): forget it and tell the others."""
        sess = self.sessions.pop(conn, None)
        if sess is None:
            return []
        sess.closing = True  # a password waiting its turn for it is skipped
        if sess.key is None:
            return []
        del self.users[sess.key]
        self._list_bytes -= len(sess.prefix) - 1
        self._awaiting.pop(conn, None)
        self._delta_conns.pop(conn, None)
        self._by_bytes.pop(sess.prefix[:-2], None)
        self.roster_gen += 1
        self.notes.append(Note("leave", conn, {"nick": sess.nick, "reason": reason,
                                               "online": len(self.users)}))
        return self._notify_deltas(Code.LEFT, f"{sess.nick} left.", conn)

    def _notify_deltas(self, code: int, text: str, skip: int) -> list[Output]:
        coded = plain = b""
        out: list[Output] = []
        for c, s in self._delta_conns.items():
            if c == skip:
                continue
            if s.codes:
                coded = coded or system_line(code, text)
                out.append((c, coded))
            else:
                plain = plain or plain_system_line(text)
                out.append((c, plain))
        return out

    def close_all(self, text: str = "Server is shutting down.") -> list[Output]:
        """Graceful shutdown: tell every connection why, then close it."""
        out: list[Output] = []
        for conn, sess in self.sessions.items():
            out.append((conn, self._sys(sess, Code.SHUTTING_DOWN, text)))
            out.append((conn, Close("shutdown")))
        return out

    # -- incoming bytes ------------------------------------------------------------------

    def receive(self, conn: int, data: bytes, now: float) -> list[Output]:
        """Bytes arrived from ``conn``; return what to send where."""
        sess = self.sessions.get(conn)
        if sess is None or sess.closing:
            return []
        sess.last_seen = now
        lines = sess.framer.feed(data)
        # One look at the whole read decides whether lines need checking for control
        # characters one by one; the unfinished tail carries its verdict to the next read.
        dirty = sess.tail_dirty or has_controls(data, line_ends=True)
        if dirty:
            cut = data.rfind(b"\n")
            sess.tail_dirty = has_controls(data[cut + 1:]) if cut >= 0 else True
        if not lines:
            return []
        held = sess.held
        if held is not None:  # a password is waiting its turn: keep order, keep it bounded
            held.extend(lines[:PASS_HELD_LINES - len(held)])
            return []
        return self._lines(sess, lines, now, not sess.framer.ascii, dirty)

    def _lines(self, sess: Session, lines: list[bytes | None], now: float,
               check_utf8: bool, check_controls: bool = True) -> list[Output]:
        conn = sess.conn
        out: list[Output] = []
        lim = self.limits
        rate = lim.rate
        if rate > 0.0:
            tokens = sess.tokens + (now - sess.stamp) * rate
            sess.tokens = tokens if tokens < lim.burst else lim.burst
            sess.stamp = now
        by_bytes = self._by_bytes
        codes = sess.codes
        pending = iter(lines)  # an iterator, so /pass can hold back the rest at no cost
        for line in pending:
            if rate > 0.0:
                if sess.tokens < 1.0:
                    if sess.dropped == 0:
                        out.append((conn, self._sys(
                            sess, Code.FLOOD,
                            f"Flood limit: at most {rate:g} messages per second; "
                            "messages are dropped until you slow down.")))
                        self.notes.append(Note("flood", conn, {"nick": sess.nick}))
                    sess.dropped += 1
                    continue
                sess.tokens -= 1.0
                if sess.dropped:
                    out.append((conn, self._sys(
                        sess, Code.FLOOD,
                        f"{sess.dropped} message(s) were dropped by the flood limit.")))
                    sess.dropped = 0
            if line is None:
                out.append((conn, self._sys(
                    sess, Code.LINE_TOO_LONG, f"Line too long (max {lim.max_line} bytes); discarded.")))
                self.notes.append(Note("error", conn, {"code": Code.LINE_TOO_LONG}))
                continue
            if check_utf8:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    out.append((conn, self._sys(
                        sess, Code.INVALID_UTF8,
                        f"Invalid UTF-8 at byte {exc.start} of the line; discarded.")))
                    self.notes.append(Note("error", conn, {"code": Code.INVALID_UTF8}))
                    continue
            if line[:1] == b"/":
                out.extend(self._command(sess, line.decode().strip(), now))
                codes = sess.codes
                if sess.closing:
                    break
                if sess.held is not None:  # /pass must wait: so does everything after it
                    sess.held.extend(islice(pending, PASS_HELD_LINES))
                    break
                continue
            if sess.key is None:
                out.extend(self._login(sess, line.decode(), now))
                if sess.closing:
                    break
                continue
            # -- the hot path: "Target: text" ------------------------------------------
            colon = line.find(b":")
            if colon < 0:
                out.append((conn, _ERR_FORMAT[codes]))
                continue
            target = line[:colon].strip(b" \t")
            text = line[colon + 1:].strip(b" \t")
            if not target or not text:
                out.append((conn, _ERR_EMPTY[codes]))
                continue
            if check_controls and has_controls(text):
                text = clean_text(text)
            dest = by_bytes.get(target)
            if dest is None:
                if target == b"*":
                    msg = sess.bcast_prefix + text + b"\n"
                    out.extend((s.conn, msg) for s in self.users.values() if s is not sess)
                    if lim.log_messages:
                        self.notes.append(Note("message", conn, {"from": sess.nick, "to": "*",
                                                                 "text": text.decode()}))
                    continue
                # No nickname is longer than MAX_NICK_CHARS × 4 bytes: skip the skeleton.
                if len(target) <= 4 * MAX_NICK_CHARS:
                    dest = self.users.get(nick_key(target.decode()))
                if dest is None:
                    out.append((conn, self._sys(
                        sess, Code.NO_SUCH_NICK,
                        f"User '{clean_text(target).decode()}' is not connected.")))
                    continue
            out.append((dest.conn, sess.prefix + text + b"\n"))
            if lim.log_messages:
                self.notes.append(Note("message", conn, {"from": sess.nick, "to": dest.nick,
                                                         "text": text.decode()}))
        return out

    def _login(self, sess: Session, nick: str, now: float) -> list[Output]:
        conn = sess.conn
        if not sess.authenticated:
            return [(conn, self._sys(
                sess, Code.PASSWORD,
                "Password required: send '/pass <password>' before the nickname."))]
        problem = nick_problem(nick)
        if problem is not None:
            self.notes.append(Note("error", conn, {"code": Code.BAD_NICK}))
            return [(conn, self._sys(sess, Code.BAD_NICK, problem + " Choose another nickname."))]
        key = nick_key(nick)
        if key in self.users:
            self.notes.append(Note("error", conn, {"code": Code.NICK_IN_USE}))
            return [(conn, self._sys(
                sess, Code.NICK_IN_USE,
                f"Nickname '{nick}' is already taken. Choose another nickname."))]
        sess.nick = nick
        sess.key = key
        raw = nick.encode()
        sess.prefix = raw + b": "
        sess.bcast_prefix = BROADCAST_MARK + raw + b": "
        self.users[key] = sess
        self._by_bytes[raw] = sess
        self._list_bytes += len(raw) + 1
        if sess.deltas:
            self._delta_conns[conn] = sess
        self.roster_gen += 1
        self.notes.append(Note("join", conn, {"nick": nick, "online": len(self.users)}))
        out: list[Output] = [(conn, self._sys(
            sess, Code.WELCOME,
            f"Welcome, {nick}! Usage: 'TargetName: Your Message'; '*: Message' for everyone."))]
        # The newcomer gets a small list at once (the report's client shows it right after
        # connecting); a large one, and everybody else's, goes through due_lists().
        if self._list_bytes <= LIST_INLINE_MAX:
            out.append((conn, self.online_line()))
            sess.list_gen = self.roster_gen
            sess.list_sent_at = now
        else:
            self._awaiting[conn] = sess
        out.extend(self._notify_deltas(Code.JOINED, f"{nick} joined.", conn))
        return out

    def _command(self, sess: Session, line: str, now: float) -> list[Output]:
        conn = sess.conn
        name, _, arg = line.partition(" ")
        name = name.lower()
        if name == "/pass":
            return self._password(sess, arg, now)
        if name == "/ping":
            return [(conn, self._sys(sess, Code.PONG, "Pong."))]
        if name == "/quit":
            sess.closing = True
            return [(conn, Close("quit"))]
        if name == "/codes":
            arg = arg.strip().lower()
            if arg in ("", "on"):
                sess.codes = True
                return [(conn, system_line(Code.CODES_ON, "Numeric codes on."))]
            if arg == "off":
                sess.codes = False
                return [(conn, plain_system_line("Numeric codes off."))]
            return [(conn, self._sys(sess, Code.UNKNOWN_COMMAND, "Use '/codes on' or '/codes off'."))]
        if name == "/deltas":
            sess.deltas = True
            if sess.key is not None:
                self._delta_conns[conn] = sess
            out: list[Output] = [(conn, self._sys(
                sess, Code.DELTAS_ON, "Join/leave notices on: lists are sent only on /users."))]
            if sess.key is not None:
                out.append((conn, self.online_line()))
                sess.list_gen = self.roster_gen
            return out
        if name == "/users":
            if sess.key is None:
                return [(conn, self._sys(sess, Code.UNKNOWN_COMMAND,
                                         "Log in first: send your nickname."))]
            sess.list_gen = self.roster_gen
            sess.list_sent_at = now
            return [(conn, self.online_line())]
        return [(conn, self._sys(
            sess, Code.UNKNOWN_COMMAND,
            f"Unknown command {name!r}; commands: {' '.join(c for c, _ in COMMANDS)}."))]

    # -- passwords -----------------------------------------------------------------------

    def _password(self, sess: Session, attempt: str, now: float) -> list[Output]:
        conn = sess.conn
        if self.limits.password is None:
            sess.authenticated = True
            return [(conn, self._sys(sess, Code.PASSWORD_OK, "No password needed."))]
        g = self._guesses.get(sess.peer)
        if g is not None and (g.waiting or now < g.next_allowed):
            if len(g.waiting) >= PASS_MAX_WAITING:
                sess.closing = True
                self.notes.append(Note("password_refused", conn, {"peer": sess.peer,
                                                                  "failures": g.failures}))
                return [(conn, self._sys(sess, Code.PASSWORD,
                                         "Too many password attempts from your address; "
                                         "try again later.")),
                        (conn, Close("too many password attempts"))]
            g.waiting.append((sess, attempt))
            self._guess_waiting[sess.peer] = g
            sess.held = []
            self.notes.append(Note("password_delayed", conn, {
                "peer": sess.peer, "failures": g.failures,
                "wait": round(max(0.0, g.next_allowed - now), 3)}))
            return []
        return self._judge(sess, attempt, now)

    def _judge(self, sess: Session, attempt: str, now: float) -> list[Output]:
        conn = sess.conn
        peer = sess.peer
        if hmac.compare_digest(attempt.encode(), self.limits.password.encode()):  # type: ignore[union-attr]
            sess.authenticated = True
            g = self._guesses.get(peer)
            if g is not None and not g.waiting:
                del self._guesses[peer]  # a correct password clears the address's record
            return [(conn, self._sys(sess, Code.PASSWORD_OK, "Password accepted."))]
        g = self._guesses.pop(peer, None) or _Guesses()
        self._guesses[peer] = g  # re-inserted: the dict is oldest-first for eviction
        if len(self._guesses) > PASS_TRACKED_ADDRESSES:
            for old in list(self._guesses)[:len(self._guesses) - PASS_TRACKED_ADDRESSES]:
                if not self._guesses[old].waiting:
                    del self._guesses[old]
        g.failures += 1
        g.last_failure = now
        delay = password_delay(g.failures)
        g.next_allowed = now + delay
        sess.closing = True
        self.notes.append(Note("password_failed", conn, {"peer": peer, "failures": g.failures,
                                                         "next_delay": delay}))
        return [(conn, self._sys(sess, Code.PASSWORD, "Wrong password.")),
                (conn, Close("wrong password"))]

    def timers(self, now: float) -> list[Output]:
        """Judge the password attempts whose turn has come (see PASS_DELAY_BASE) and go on
        with what their clients sent behind them."""
        if not self._guess_waiting:
            return []
        out: list[Output] = []
        for peer, g in list(self._guess_waiting.items()):
            while g.waiting and now >= g.next_allowed:
                sess, attempt = g.waiting.popleft()
                if sess.closing or self.sessions.get(sess.conn) is not sess:
                    continue  # gone while it waited
                held, sess.held = sess.held, None
                out.extend(self._judge(sess, attempt, now))
                if sess.authenticated and held:
                    out.extend(self._lines(sess, held, now, True))
            if not g.waiting:
                del self._guess_waiting[peer]
        return out

    # -- time-driven work ----------------------------------------------------------------

    def online_line(self) -> ListLine:
        """The current ``ONLINE_USERS:`` line, built once per roster generation."""
        gen, line = self._list_cache
        if gen != self.roster_gen:
            line = online_line(s.nick for s in self.users.values())  # type: ignore[misc]
            self._list_cache = (self.roster_gen, line)
        return line

    def defer_list(self, conn: int) -> None:
        """The I/O shell could not queue a list now (another is still going out): send the
        then-current list to ``conn`` as soon as its output has drained."""
        sess = self.sessions.get(conn)
        if sess is None or sess.key is None:
            return
        sess.list_gen = -1
        self._awaiting[conn] = sess
        self._synced_gen = -1

    def list_interval(self) -> float:
        """Seconds between two lists to one client, from the cost of a full round."""
        cost = len(self.users) * self._list_bytes / LIST_BYTES_PER_SECOND
        return min(LIST_MAX_INTERVAL, max(LIST_MIN_INTERVAL, cost))

    def due_lists(self, now: float, drained: Callable[[int], bool]) -> list[Output]:
        """Send the current list to logged-in clients whose copy is stale, whose output queue
        is empty (``drained``) and whose coalescing interval has passed — newcomers first,
        and no more list bytes than the budget for the time since the last call."""
        gen = self.roster_gen
        if self._synced_gen == gen:
            self._last_due = now
            return []
        line = self.online_line()
        size = len(line)
        budget = max(size, LIST_BYTES_PER_SECOND * min(0.25, max(0.0, now - self._last_due)))
        self._last_due = now
        earliest = now - self.list_interval()
        out: list[Output] = []
        pending = False
        if self._awaiting:
            for conn, s in list(self._awaiting.items()):
                if budget < size:
                    pending = True
                    break
                if drained(conn):
                    del self._awaiting[conn]
                    out.append((conn, line))
                    s.list_gen = gen
                    s.list_sent_at = now
                    budget -= size
                else:
                    pending = True
        for s in self.users.values():
            if s.list_gen == gen or s.deltas:
                continue
            if budget >= size and s.list_sent_at <= earliest and drained(s.conn):
                self._awaiting.pop(s.conn, None)
                out.append((s.conn, line))
                s.list_gen = gen
                s.list_sent_at = now
                budget -= size
            else:
                pending = True
        if not pending:
            self._synced_gen = gen
        return out

    def idle(self, now: float) -> list[Output]:
        """Close connections that have said nothing for ``idle_timeout`` seconds — this is how
        a half-open connection (peer vanished without FIN or RST) is noticed — and those that
        have not logged in within ``login_timeout`` (silent sockets cannot hoard client slots).
        Also forgets the wrong passwords of addresses quiet for PASS_FORGET seconds."""
        if self._guesses:
            forget = now - PASS_FORGET
            for peer in [p for p, g in self._guesses.items()
                         if g.last_failure < forget and not g.waiting]:
                del self._guesses[peer]
        timeout = self.limits.idle_timeout
        login_timeout = self.limits.login_timeout
        if timeout <= 0 and login_timeout <= 0:
            return []
        idle_limit = now - timeout if timeout > 0 else -1e18
        login_limit = now - login_timeout if login_timeout > 0 else -1e18
        out: list[Output] = []
        for s in self.sessions.values():
            if s.closing:
                continue
            if s.last_seen < idle_limit:
                text = f"Idle for more than {timeout:g} s; disconnecting."
                reason = "idle timeout"
            elif s.key is None and s.connected_at < login_limit:
                text = f"No login within {login_timeout:g} s; disconnecting."
                reason = "login timeout"
            else:
                continue
            s.closing = True
            out.append((s.conn, self._sys(s, Code.IDLE_TIMEOUT, text)))
            out.append((s.conn, Close(reason)))
        return out

    # -- delivery failures ---------------------------------------------------------------

    def undelivered(self, conn: int, pending: bytes, recipient: str | None = None) -> list[Output]:
        """Tell the senders of messages still queued for a connection that is being dropped.

        ``pending`` is the unsent output (starting at a line boundary). The sender of each
        line is recovered from the line itself: a nickname cannot contain ``:``, so
        everything before the first ``": "`` is the sender the server stamped.
        """
        sess = self.sessions.get(conn)
        name = recipient or (sess.nick if sess is not None and sess.nick else "the recipient")
        counts: dict[Session, int] = {}
        for line in _split_lines(pending):
            if line.startswith(ONLINE_PREFIX) or line.startswith(b"System: "):
                continue
            if line.startswith(BROADCAST_MARK):
                line = line[2:]
            colon = line.find(b": ")
            if colon <= 0:
                continue
            sender = self._by_bytes.get(line[:colon])
            if sender is not None and sender.conn != conn:
                counts[sender] = counts.get(sender, 0) + 1
        return [(s.conn, self._sys(
            s, Code.NOT_DELIVERED,
            f"{n} message(s) to '{name}' not delivered: {name} was disconnected."))
            for s, n in counts.items()]


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: a partial line, no sender to tell
    return lines


# The two scenario errors of the hot path, built once: [uncoded, coded] (index: sess.codes).
_ERR_FORMAT = (plain_system_line("Invalid format! Use: TargetName: Message"),
               system_line(Code.NO_RECIPIENT, "Invalid format! Use: TargetName: Message"))
_ERR_EMPTY = (plain_system_line("Name or message cannot be empty."),
              system_line(Code.NO_TEXT, "Name or message cannot be empty."))
