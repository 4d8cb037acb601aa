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
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice

from tcplab.chat.dialect import Dialect
from tcplab.chat.nickmap import fold
from tcplab.chat.nickname import MAX_NICK_CHARS, nick_problem, skeleton
from tcplab.chat.sanitize import sanitize, strip_escapes

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
    ("/ping", "check the connection and measure its round-trip time"),
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
    """Stable numeric codes of the ``System:`` lines (IRC numerics where one exists), sent to
    clients that asked with ``/codes on``; the others get the same text without them."""

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


def has_controls(data: bytes, line_ends: bool = False, ascii: bool = False) -> bool:
    """True when ``data`` holds something :func:`clean_text` would change. With
    ``line_ends`` the ``\n`` and ``\r\n`` that end lines are allowed (a whole read is
    checked at once, so clean traffic costs a few C-speed passes per read, not a regex per
    line); ``ascii`` says the caller already knows ``data`` is ASCII."""
    n = len(data) - len(data.translate(None, _C0_AND_DEL))
    if n:
        if not line_ends:
            return True
        lf = data.count(b"\n")
        if n != lf and n != lf + data.count(b"\r\n"):
            return True
    if ascii or data.isascii():
        return False
    for lead, lo, hi in _UTF8_CONTROLS:
        i = data.find(lead)
        while i >= 0:
            j = i + len(lead)
            if j < len(data) and lo <= data[j] <= hi:
                return True
            i = data.find(lead, j)
    return False


#: Characters that take no room on screen besides spaces: zero-width space, joiners and
#: marks, word joiner and the invisible operators, the byte-order mark, and the Hangul
#: fillers, which render blank and are a known way to post "nothing".
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064"
                       "\ufeff\u115f\u1160\u3164\uffa0\u180e\u034f")


def shows_nothing(text: bytes) -> bool:
    """True when ``text`` is only spaces (any of Unicode's) and invisible characters:
    the reader would see ``Alice:`` and nothing after it.

    ASCII text (the usual case) is answered without a decode: only spaces show nothing.
    """
    if text.isascii():
        return not text.strip(b" ")
    return all(ch.isspace() or ch in _INVISIBLE for ch in text.decode("utf-8", "replace"))


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
    (re.compile(r"(\d+ message\(s\) to .* not delivered|^Broadcast reached this server's users only)"),
     Code.NOT_DELIVERED),
    (re.compile(r"(Idle for more than|No login within) "), Code.IDLE_TIMEOUT),
    (re.compile(r"^Invalid format!"), Code.NO_RECIPIENT),
    (re.compile(r"^Name or message cannot be empty\.$"), Code.NO_TEXT),
    (re.compile(r"Line too long"), Code.LINE_TOO_LONG),
    (re.compile(r"(Unknown command|Log in first|Use '/codes on')"), Code.UNKNOWN_COMMAND),
    (re.compile(r"(Flood limit|\d+ message\(s\) were dropped by the flood limit)"), Code.FLOOD),
    (re.compile(r"(Nickname .*already taken|Nickname already taken)"), Code.NICK_IN_USE),
    (re.compile(r"(Choose another nickname\.$|Invalid nickname)"), Code.BAD_NICK),
    (re.compile(r"(Password required|Wrong password|Too many password attempts)"), Code.PASSWORD),
    (re.compile(r"^(Server full|Cannot log in now)"), Code.SERVER_FULL),
    (re.compile(r"Too many connections from your address"), Code.TOO_MANY_FROM_ADDRESS),
    (re.compile(r"Server is shutting down"), Code.SHUTTING_DOWN),
    (re.compile(r" joined\.$"), Code.JOINED),  # last: a nickname is part of these two
    (re.compile(r" left\.$"), Code.LEFT),
)


def guess_code(text: str) -> int:
    """The code of an uncoded ``System:`` notice, recognised by its wording (0 if unknown)."""
    for pattern, code in _WORDING:
        if pattern.search(text):
            return code
    return 0


@lru_cache(maxsize=4096)
def nick_key(nick: str) -> str:
    """The identity of a nickname: the confusable skeleton (:mod:`tcplab.chat.nickname`) of
    its dialect fold (:mod:`tcplab.chat.nickmap`), so ``Britney Spears`` and her IRC form
    ``Britney_Spears`` are one name as surely as ``Alice`` and ``ＡＬＩＣＥ`` are. Cached like
    the skeleton: the same few names are asked for again and again (message targets)."""
    return skeleton(fold(unicodedata.normalize("NFKC", nick)))


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


#: Why a user left when nothing more is known (the connection just closed).
LEAVE_REASON = "closed by client"
#: A leave reason from another node is cut to this many characters (IRC clients cut a QUIT
#: message near 200 too; the IRC dialect's own are at most 206 with their "Quit: ").
MAX_LEAVE_REASON = 220


class Close:
    """Output action: close this connection after what is queued has been sent."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Close({self.reason!r})"


class Claim:
    """Cluster action: may this connection take ``nick`` cluster-wide? Answered by
    :meth:`ChatCore.login_result`. Emitted only by a clustered core."""

    __slots__ = ("nick", "key")

    def __init__(self, nick: str, key: str) -> None:
        self.nick, self.key = nick, key

    def __repr__(self) -> str:
        return f"Claim({self.nick!r})"


class Release:
    """Cluster action: this connection's user left; give the name back. ``reason`` is why,
    in the words the user's own dialect chose (an IRC ``QUIT`` message, or the core's reason
    such as ``closed by client``), so users of other nodes see the same leave as local ones."""

    __slots__ = ("key", "reason")

    def __init__(self, key: str, reason: str = LEAVE_REASON) -> None:
        self.key = key
        self.reason = reason

    def __repr__(self) -> str:
        return f"Release({self.key!r}, {self.reason!r})"


class Relay:
    """Cluster action: deliver ``text`` from ``sender`` (UTF-8 nickname) to user ``key``
    (``nick``), who is not held here."""

    __slots__ = ("sender", "key", "nick", "text")

    def __init__(self, sender: str, key: str, nick: str, text: bytes) -> None:
        self.sender, self.key, self.nick, self.text = sender, key, nick, text

    def __repr__(self) -> str:
        return f"Relay({self.sender!r} -> {self.nick!r})"


class RelayAll:
    """Cluster action: deliver a ``*:`` message from ``sender`` (UTF-8 nickname) to everyone
    held elsewhere."""

    __slots__ = ("sender", "text")

    def __init__(self, sender: str, text: bytes) -> None:
        self.sender, self.text = sender, text

    def __repr__(self) -> str:
        return f"RelayAll({self.sender!r})"


class Bounce:
    """Cluster action: ``count`` messages from user ``key`` (on another node) to local
    ``recipient`` were still queued when the recipient was dropped; tell the sender."""

    __slots__ = ("key", "recipient", "count")

    def __init__(self, key: str, recipient: str, count: int) -> None:
        self.key, self.recipient, self.count = key, recipient, count

    def __repr__(self) -> str:
        return f"Bounce({self.key!r}, {self.recipient!r}, {self.count})"


#: What a clustered core may emit besides bytes and Close; a shell that is not clustered
#: never sees one.
CLUSTER_ACTIONS = (Claim, Release, Relay, RelayAll, Bounce)

Output = tuple[int, "bytes | Close | Claim | Release | Relay | RelayAll | Bounce"]


class Session:
    """Protocol state of one connection (logged in or not)."""

    __slots__ = (
        "conn", "framer", "nick", "key", "prefix", "bcast_prefix", "authenticated", "deltas",
        "tokens", "stamp", "dropped", "last_seen", "connected_at", "list_gen", "list_sent_at",
        "closing", "codes", "peer", "held", "tail_dirty", "dialect", "state", "cache", "claiming",
        "messages", "rank",
    )

    def __init__(self, conn: int, max_line: int, burst: float, now: float, authenticated: bool,
                 peer: str = "", dialect: Dialect | None = None):
        self.conn = conn
        #: The wire format of this connection; renders everything the core sends it.
        self.dialect: Dialect = dialect or NATIVE
        #: The dialect's own per-connection state (IRC: registration progress).
        self.state: object = None
        #: Renderings of this user that dialects keep (IRC: ``nick!user@host``); dropped
        #: when the nickname changes.
        self.cache: dict | None = None
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
        self.messages = 0  # messages this user sent that were routed (a console shows it)
        self.codes = False  # "/codes on": System lines carry numeric codes
        self.peer = peer  # the address as the I/O shell counts it (for password throttling)
        # Lines received while a password waits its turn; None when nothing is waiting.
        self.held: list[bytes | None] | None = None
        # The unfinished line at the end of the last read holds a control character.
        self.tail_dirty = False
        # (nick, key) while the cluster decides on this login; lines go to ``held`` meanwhile.
        self.claiming: tuple[str, str] | None = None
        #: Clustered only: where this user stands in every node's online list (the cluster's
        #: login time, then its lease token), so all nodes list everyone in one order.
        self.rank: tuple = ()


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


class NativeDialect(Dialect):
    """The report's line protocol as a dialect (grammar in ``docs/protocol.md``).

    Its parsing is :meth:`ChatCore.receive` itself, inlined there because it is the hot
    path the chat benchmark measures; its renderings are the plain lines below, also
    inlined at the two hot spots (private message and broadcast).
    """

    name = "native"

    def receive(self, core: ChatCore, sess: Session, data: bytes, now: float) -> list[Output]:
        return core.receive(sess.conn, data, now)

    def private(self, sender: Session, dest: Session, text: bytes, notice: bool = False) -> bytes:
        return sender.prefix + text + b"\n"

    def broadcast(self, sender: Session, text: bytes) -> bytes:
        return sender.bcast_prefix + text + b"\n"

    def system(self, dest: Session | None, code: int, text: str, subject: str | None = None) -> bytes:
        # The report's uncoded form unless the client asked for codes ("/codes on").
        if dest is not None and dest.codes:
            return system_line(code, text)
        return plain_system_line(text)

    # Presence for native clients is built by the core itself (coded or not per client,
    # each form once); these are the uncoded forms, for callers without a recipient.

    def joined(self, who: Session) -> bytes:
        return plain_system_line(f"{who.nick} joined.")

    def left(self, who: Session, reason: str) -> bytes:
        return plain_system_line(f"{who.nick} left.")

    def renamed(self, who: Session, old_nick: str) -> bytes:
        # Native clients know no renames: the old name leaves, the new one joins.
        return plain_system_line(f"{old_nick} left.") + self.joined(who)

    def senders(self, pending: bytes) -> list[bytes]:
        # A nickname cannot contain ":", so everything before the first ": " of a chat
        # line is the sender the server stamped.
        names = []
        for line in _split_lines(pending):
            if line.startswith(ONLINE_PREFIX) or line.startswith(b"System: "):
                continue
            if line.startswith(BROADCAST_MARK):
                line = line[2:]
            colon = line.find(b": ")
            if colon > 0:
                names.append(line[:colon])
        return names


#: The native line protocol; sessions without another dialect speak it.
NATIVE = NativeDialect()


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

    def __init__(self, limits: Limits | None = None, *, clustered: bool = False) -> None:
        self.limits = limits or Limits()
        #: Clustered: logins are confirmed by the cluster (Claim); users held by other nodes
        #: are stand-in sessions (conn 0, never in ``sessions``) in ``remote``, so every
        #: dialect renders them like local users, and are reached through Relay/RelayAll.
        self.clustered = clustered
        self.remote: dict[str, Session] = {}  # nick_key -> stand-in of a user elsewhere
        self._remote_bytes: dict[bytes, Session] = {}  # exact UTF-8 nick -> stand-in
        self.sessions: dict[int, Session] = {}
        self.users: dict[str, Session] = {}  # nick_key -> session, logged-in only, join order
        self._by_bytes: dict[bytes, Session] = {}  # exact UTF-8 nick -> session (fast path)
        self.roster_gen = 0
        self._list_cache: tuple[int, ListLine] = (-1, ListLine())
        self._online_cache: tuple[int, list[Session]] = (-1, [])
        self._synced_gen = 0
        self._awaiting: dict[int, Session] = {}  # logged in, a list is owed as soon as drained
        # Logged-in clients that get join/leave events instead of lists — native ones that
        # sent /deltas and every IRC user — so a join costs O(such clients), not a scan.
        self._delta_conns: dict[int, Session] = {}
        self._last_due = 0.0
        # Length of the ONLINE_USERS line, kept up to date so a join never has to build it.
        self._list_bytes = len(ONLINE_PREFIX)
        self._guesses: dict[str, _Guesses] = {}  # address -> wrong passwords (oldest first)
        self._guess_waiting: dict[str, _Guesses] = {}  # addresses with attempts waiting
        self.notes: list[Note] = []
        #: Messages routed for users who have left (with Session.messages: the total routed).
        self.routed_departed = 0

    # -- System lines in the form each client asked for ------------------------------------

    @staticmethod
    def _sys(sess: Session, code: int, text: str) -> bytes:
        return system_line(code, text) if sess.codes else plain_system_line(text)

    # -- connection lifecycle ------------------------------------------------------------

    def connect(self, conn: int, now: float, peer: str = "",
                dialect: Dialect | None = None) -> list[Output]:
        """A TCP connection was accepted (``peer``: its address, for per-address rules) on a
        listener speaking ``dialect`` (native if None)."""
        lim = self.limits
        dialect = dialect or NATIVE
        sess = Session(conn, lim.max_line, lim.burst, now, lim.password is None, peer, dialect)
        self.sessions[conn] = sess
        if dialect is NATIVE:
            return []  # nothing is sent until the client speaks
        return dialect.connected(self, sess, now)

    def disconnect(self, conn: int, reason: str) -> list[Output]:
        """The connection is gone (FIN, RST, timeout, overflow): forget it and tell the others."""
        sess = self.sessions.pop(conn, None)
        if sess is None:
            return []
        sess.closing = True  # a password waiting its turn for it is skipped
        if sess.claiming is not None:
            return [(conn, Release(sess.claiming[1]))]
        if sess.key is None:
            return []
        key = sess.key
        out = self._forget(sess, reason)
        self.notes.append(Note("leave", conn, {"nick": sess.nick, "reason": reason,
                                               "online": len(self.users)}))
        if self.clustered:
            out.append((conn, Release(key, sess.dialect.leave_reason(sess, reason))))
        return out

    def _forget(self, sess: Session, reason: str) -> list[Output]:
        """Take a logged-in user off the roster and tell those who take presence events."""
        del self.users[sess.key]  # type: ignore[arg-type]
        self.routed_departed += sess.messages
        self._list_bytes -= len(sess.prefix) - 1
        self._awaiting.pop(sess.conn, None)
        self._delta_conns.pop(sess.conn, None)
        self._by_bytes.pop(sess.prefix[:-2], None)
        self.roster_gen += 1
        out: list[Output] = []
        self._presence(sess, Code.LEFT, f"{sess.nick} left.", lambda d: d.left(sess, reason),
                       out)
        return out

    def close_all(self, text: str = "Server is shutting down.") -> list[Output]:
        """Graceful shutdown: tell every connection why, then close it."""
        out: list[Output] = []
        for conn, sess in self.sessions.items():
            out.append((conn, sess.dialect.closing(sess, Code.SHUTTING_DOWN, text)))
            out.append((conn, Close("shutdown")))
        return out

    # -- incoming bytes ------------------------------------------------------------------

    def receive(self, conn: int, data: bytes, now: float) -> list[Output]:
        """Bytes arrived from ``conn``; return what to send where."""
        sess = self.sessions.get(conn)
        if sess is None or sess.closing:
            return []
        sess.last_seen = now
        if sess.dialect is not NATIVE:
            return sess.dialect.receive(self, sess, data, now)
        lines = sess.framer.feed(data)
        # One look at the whole read decides whether lines need checking for control
        # characters one by one; the unfinished tail carries its verdict to the next read.
        dirty = sess.tail_dirty or has_controls(data, True, sess.framer.ascii)
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
            if rate > 0.0 and (sess.tokens < 1.0 or sess.dropped) and not self._take(sess, out):
                continue
            elif rate > 0.0:
                sess.tokens -= 1.0
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
                if sess.held is not None:  # the cluster decides on the login: the rest waits
                    sess.held.extend(islice(pending, PASS_HELD_LINES))
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
                if not text.strip(b" \t"):  # only escape sequences: nothing would show
                    out.append((conn, _ERR_EMPTY[codes]))
                    continue
            if shows_nothing(text):  # e.g. one zero-width space
                out.append((conn, _ERR_EMPTY[codes]))
                continue
            dest = by_bytes.get(target)
            if dest is None:
                if target == b"*":
                    self.broadcast(sess, text, out)  # counts the message
                    continue
                remote = self._remote_bytes.get(target)
                if remote is not None:  # fast path: the exact name of a user elsewhere
                    out.append((conn, Relay(sess.prefix[:-2], remote.key, remote.nick, text)))  # type: ignore[arg-type]
                    sess.messages += 1
                    continue
                # No nickname is longer than MAX_NICK_CHARS × 4 bytes: skip the skeleton.
                if len(target) <= 4 * MAX_NICK_CHARS:
                    key = nick_key(target.decode())
                    dest = self.users.get(key)
                    remote = self.remote.get(key) if dest is None else None
                    if remote is not None:
                        out.append((conn, Relay(sess.prefix[:-2], key, remote.nick, text)))  # type: ignore[arg-type]
                        continue
                if dest is None:
                    out.append((conn, self._sys(
                        sess, Code.NO_SUCH_NICK,
                        f"User '{clean_text(target).decode()}' is not connected.")))
                    continue
            out.append((dest.conn, sess.prefix + text + b"\n" if dest.dialect is NATIVE
                        else dest.dialect.private(sess, dest, text)))
            sess.messages += 1
            if lim.log_messages:
                self.notes.append(Note("message", conn, {"from": sess.nick, "to": dest.nick,
                                                         "text": text.decode()}))
        return out

    def _nick_refusal(self, sess: Session, nick: str) -> bytes | None:
        """The error for a nickname ``sess`` may not take (rendered for its dialect), or None."""
        problem = nick_problem(nick)
        if problem is not None:
            self.notes.append(Note("error", sess.conn, {"code": Code.BAD_NICK}))
            return sess.dialect.system(sess, Code.BAD_NICK, problem + " Choose another nickname.",
                                       nick)
        holder = self.users.get(nick_key(nick)) or self.remote.get(nick_key(nick))
        if holder is not None and holder is not sess:
            self.notes.append(Note("error", sess.conn, {"code": Code.NICK_IN_USE}))
            # Say who holds it when only the dialect fold makes the names one (A B / A_B).
            same = skeleton(holder.nick) == skeleton(nick)
            held = "" if same else f" (by '{holder.nick}')"
            return sess.dialect.system(
                sess, Code.NICK_IN_USE,
                f"Nickname '{nick}' is already taken{held}. Choose another nickname.", nick)
        return None

    def _login(self, sess: Session, nick: str, now: float) -> list[Output]:
        conn = sess.conn
        if not sess.authenticated:
            return [(conn, self._sys(
                sess, Code.PASSWORD,
                "Password required: send '/pass <password>' before the nickname."))]
        refusal = self._nick_refusal(sess, nick)
        if refusal is not None:
            return [(conn, refusal)]
        key = nick_key(nick)
        if self.clustered:
            sess.claiming = (nick, key)
            sess.held = []
            return [(conn, Claim(nick, key))]
        return self._complete_login(sess, nick, key, now)

    def _complete_login(self, sess: Session, nick: str, key: str, now: float) -> list[Output]:
        conn = sess.conn
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
        fields = {"nick": nick, "online": len(self.users)}
        if sess.dialect is not NATIVE:
            fields["dialect"] = sess.dialect.name
        self.notes.append(Note("join", conn, fields))
        out: list[Output] = []
        self._presence(sess, Code.JOINED, f"{nick} joined.", lambda d: d.joined(sess), out)
        if sess.dialect is not NATIVE:
            out.extend((conn, line) for line in sess.dialect.welcome(self, sess, now))
            return out
        out.append((conn, self._sys(
            sess, Code.WELCOME,
            f"Welcome, {nick}! Usage: 'TargetName: Your Message'; '*: Message' for everyone.")))
        # The newcomer gets a small list at once (the report's client shows it right after
        # connecting); a large one, and everybody else's, goes through due_lists().
        if self._list_bytes <= LIST_INLINE_MAX:
            out.append((conn, self.online_line()))
            sess.list_gen = self.roster_gen
            sess.list_sent_at = now
        else:
            self._awaiting[conn] = sess
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
            return [(conn, sess.dialect.system(sess, Code.PASSWORD_OK, "No password needed."))]
        g = self._guesses.get(sess.peer)
        if g is not None and (g.waiting or now < g.next_allowed):
            if len(g.waiting) >= PASS_MAX_WAITING:
                sess.closing = True
                self.notes.append(Note("password_refused", conn, {"peer": sess.peer,
                                                                  "failures": g.failures}))
                return [(conn, sess.dialect.closing(sess, Code.PASSWORD,
                                                    "Too many password attempts from your "
                                                    "address; try again later.")),
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
            return [(conn, sess.dialect.system(sess, Code.PASSWORD_OK, "Password accepted."))]
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
        return [(conn, sess.dialect.closing(sess, Code.PASSWORD, "Wrong password.")),
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
                if sess.dialect is not NATIVE:
                    if sess.authenticated:
                        out.extend(sess.dialect.resume(self, sess, held or [], now))
                elif sess.authenticated and held:
                    out.extend(self._lines(sess, held, now, True))
            if not g.waiting:
                del self._guess_waiting[peer]
        return out

    # -- operations for dialects (see tcplab.chat.dialect) ----------------------------------
    # Each appends what it causes to ``out``. The native protocol reaches the same rules
    # through the inlined paths above.

    def admit(self, sess: Session, now: float, out: list[Output]) -> bool:
        """Flood control for one incoming line: True to process it, False to drop it."""
        lim = self.limits
        rate = lim.rate
        if rate <= 0.0:
            return True
        tokens = sess.tokens + (now - sess.stamp) * rate
        sess.tokens = tokens if tokens < lim.burst else lim.burst
        sess.stamp = now
        if sess.tokens >= 1.0 and not sess.dropped:
            sess.tokens -= 1.0
            return True
        return self._take(sess, out)

    def _take(self, sess: Session, out: list[Output]) -> bool:
        """The flood limit's slow path (the bucket is empty or lines were dropped): one home
        for the 429 notices of every dialect."""
        conn = sess.conn
        if sess.tokens < 1.0:
            if sess.dropped == 0:
                out.append((conn, sess.dialect.system(
                    sess, Code.FLOOD,
                    f"Flood limit: at most {self.limits.rate:g} messages per second; "
                    "messages are dropped until you slow down.")))
                self.notes.append(Note("flood", conn, {"nick": sess.nick}))
            sess.dropped += 1
            return False
        sess.tokens -= 1.0
        out.append((conn, sess.dialect.system(
            sess, Code.FLOOD, f"{sess.dropped} message(s) were dropped by the flood limit.")))
        sess.dropped = 0
        return True

    def authenticate(self, sess: Session, password: str | None, now: float,
                     out: list[Output]) -> None:
        """Check the server password for a dialect's login (IRC's ``PASS``), under the same
        per-address throttling as ``/pass``. A wrong or missing one closes the connection;
        a throttled attempt leaves ``sess.held`` set and the verdict comes from
        :meth:`timers`, which then calls the dialect's ``resume``."""
        if self.limits.password is None:
            sess.authenticated = True
            return
        if password is None:
            sess.closing = True
            self.notes.append(Note("error", sess.conn, {"code": Code.PASSWORD}))
            out.append((sess.conn, sess.dialect.closing(sess, Code.PASSWORD,
                                                        "Password required.")))
            out.append((sess.conn, Close("password required")))
            return
        out.extend(self._password(sess, password, now))

    def login(self, sess: Session, nick: str, now: float, out: list[Output]) -> None:
        """Take ``nick`` for ``sess`` under the shared nickname rules; on success the user is
        online (``sess.key`` set), welcomed in its dialect and announced to everyone."""
        out.extend(self._login(sess, nick, now))

    def rename(self, sess: Session, nick: str, now: float, out: list[Output]) -> None:
        """Change a logged-in user's nickname under the same rules as a login."""
        if self.clustered:  # a rename would need a claim of its own; not offered on a cluster
            out.append((sess.conn, sess.dialect.system(
                sess, Code.BAD_NICK, "Nickname changes are not available on this chat "
                "(a cluster); reconnect with the new nickname.", nick)))
            return
        refusal = self._nick_refusal(sess, nick)
        if refusal is not None:
            out.append((sess.conn, refusal))
            return
        old = sess.nick or ""
        del self.users[sess.key]  # type: ignore[arg-type]
        self._by_bytes.pop(sess.prefix[:-2], None)
        raw = nick.encode()
        self._list_bytes += len(raw) - len(sess.prefix[:-2])
        sess.nick = nick
        sess.key = nick_key(nick)
        sess.prefix = raw + b": "
        sess.bcast_prefix = BROADCAST_MARK + raw + b": "
        sess.cache = None
        self.users[sess.key] = sess
        self._by_bytes[raw] = sess
        self.roster_gen += 1
        self.notes.append(Note("rename", sess.conn, {"old": old, "nick": nick}))
        rendered: dict[object, bytes] = {}
        for conn, s in self._delta_conns.items():  # the renamer too: IRC clients need the echo
            d = s.dialect
            key = (d, s.codes) if d is NATIVE else d
            line = rendered.get(key)
            if line is None:
                line = rendered[key] = (
                    self._sys(s, Code.LEFT, f"{old} left.")
                    + self._sys(s, Code.JOINED, f"{nick} joined.")) if d is NATIVE \
                    else d.renamed(sess, old)
            out.append((conn, line))

    def private(self, sess: Session, target: bytes, text: bytes, out: list[Output],
                notice: bool = False) -> None:
        """Route ``text`` from ``sess`` to the user named ``target`` (any dialect's form of
        the name); 401 back to the sender when nobody has it (not for notices, which IRC
        never answers automatically)."""
        text = clean_text(text)
        dest = self._by_bytes.get(target)
        if dest is None:
            name = target.decode("utf-8", "replace")
            dest = self.users.get(nick_key(name))
            remote = self.remote.get(nick_key(name)) if dest is None and self.remote else None
            if remote is not None:
                out.append((sess.conn, Relay(sess.prefix[:-2], remote.key, remote.nick, text)))  # type: ignore[arg-type]
                sess.messages += 1
                return
            if dest is None:
                if not notice:
                    out.append((sess.conn, sess.dialect.system(
                        sess, Code.NO_SUCH_NICK, f"User '{name}' is not connected.", name)))
                return
        out.append((dest.conn, sess.prefix + text + b"\n" if dest.dialect is NATIVE
                    else dest.dialect.private(sess, dest, text, notice)))
        sess.messages += 1
        if self.limits.log_messages:
            self.notes.append(Note("message", sess.conn, {"from": sess.nick, "to": dest.nick,
                                                          "text": text.decode("utf-8", "replace")}))

    def broadcast(self, sess: Session, text: bytes, out: list[Output]) -> None:
        """``text`` from ``sess`` to everyone else, rendered once per dialect."""
        text = clean_text(text)
        sess.messages += 1
        self._fan_out(sess, text, out)
        if self.clustered:
            out.append((sess.conn, RelayAll(sess.prefix[:-2], text)))
        if self.limits.log_messages:
            self.notes.append(Note("message", sess.conn, {"from": sess.nick, "to": "*",
                                                          "text": text.decode("utf-8", "replace")}))

    def _fan_out(self, sess: Session, text: bytes, out: list[Output]) -> None:
        msg = sess.bcast_prefix + text + b"\n"
        rendered: dict[Dialect, bytes] | None = None
        for s in self.users.values():
            if s is sess:
                continue
            d = s.dialect
            if d is NATIVE:
                out.append((s.conn, msg))
                continue
            if rendered is None:
                rendered = {}
            line = rendered.get(d)
            if line is None:
                line = rendered[d] = d.broadcast(sess, text)
            out.append((s.conn, line))

    def quit(self, sess: Session, reason: str, out: list[Output]) -> None:
        """The user asked to leave: close after what is queued for it has been sent."""
        sess.closing = True
        out.append((sess.conn, Close(reason)))

    def find(self, name: str) -> Session | None:
        """The logged-in user called ``name`` in any dialect's form, case-insensitively."""
        key = nick_key(name)
        return self.users.get(key) or self.remote.get(key)

    def online(self) -> Iterable[Session]:
        """Every logged-in user, in order of joining. Clustered, that is the cluster-wide
        login order (:attr:`Session.rank`), so every node lists everyone identically."""
        if not self.clustered:
            return self.users.values()
        gen, users = self._online_cache
        if gen != self.roster_gen:
            # Both dicts are nearly in rank order already, so the sort is close to a merge.
            users = sorted((*self.users.values(), *self.remote.values()), key=_rank)
            self._online_cache = (self.roster_gen, users)
        return users

    def _presence(self, who: Session, code: int, text: str, render: Callable[[Dialect], bytes],
                  out: list[Output]) -> None:
        """A join/leave of ``who`` for every client that takes presence events: native ones
        get the ``System`` notice ``code``/``text`` (coded or not, as each asked), other
        dialects ``render(dialect)``; each form is built once."""
        if not self._delta_conns:
            return
        coded = plain = b""
        rendered: dict[Dialect, bytes] = {}
        for conn, s in self._delta_conns.items():
            if s is who:
                continue
            d = s.dialect
            if d is NATIVE:
                if s.codes:
                    coded = coded or system_line(code, text)
                    out.append((conn, coded))
                else:
                    plain = plain or plain_system_line(text)
                    out.append((conn, plain))
                continue
            line = rendered.get(d)
            if line is None:
                line = rendered[d] = render(d)
            out.append((conn, line))

    # -- time-driven work ----------------------------------------------------------------

    def online_line(self) -> ListLine:
        """The current ``ONLINE_USERS:`` line, built once per roster generation."""
        gen, line = self._list_cache
        if gen != self.roster_gen:
            line = online_line(s.nick for s in self.online())  # type: ignore[misc]
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
        # Dialects whose clients do not ping on their own (IRC) are probed half way.
        probe_limit = now - timeout / 2 if timeout > 0 else -1e18
        login_limit = now - login_timeout if login_timeout > 0 else -1e18
        out: list[Output] = []
        for s in self.sessions.values():
            if s.closing:
                continue
            if s.last_seen < probe_limit and s.last_seen >= idle_limit \
                    and s.dialect is not NATIVE:
                probe = s.dialect.keepalive(s)
                if probe is not None:
                    out.append((s.conn, probe))
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
            out.append((s.conn, s.dialect.closing(s, Code.IDLE_TIMEOUT, text)))
            out.append((s.conn, Close(reason)))
        return out

    # -- the cluster's inputs (a clustered core only) ------------------------------------

    def login_result(self, conn: int, refusal: str | None, now: float,
                     rank: tuple = ()) -> list[Output]:
        """The cluster answered a :class:`Claim`: None completes the login, ``"taken"``
        refuses it as a duplicate, any other text refuses it with that reason. Lines held
        meanwhile are then processed as if they had just arrived. ``rank`` orders the user
        in the online list, the same on every node (see :attr:`Session.rank`)."""
        sess = self.sessions.get(conn)
        if sess is None or sess.claiming is None:
            return []
        nick, key = sess.claiming
        sess.claiming = None
        out: list[Output] = []
        if refusal is None and key not in self.users:
            if key in self.remote:  # a stale copy: the cluster just gave the name to us
                out += self.remote_leave(key)
            sess.rank = rank
            out += self._complete_login(sess, nick, key, now)
        elif refusal is None or refusal == "taken":
            self.notes.append(Note("error", conn, {"code": Code.NICK_IN_USE}))
            out.append((conn, sess.dialect.system(
                sess, Code.NICK_IN_USE,
                f"Nickname '{nick}' is already taken. Choose another nickname.", nick)))
        else:
            self.notes.append(Note("error", conn, {"code": Code.SERVER_FULL}))
            out.append((conn, sess.dialect.system(sess, Code.SERVER_FULL, refusal)))
        held, sess.held = sess.held, None
        if held and not sess.closing:
            out += self._lines(sess, held, now, True)
        return out

    def revoke(self, conn: int) -> list[Output]:
        """This user lost its name to an earlier login on another node (after a network
        split): back to the nickname prompt, connection kept."""
        sess = self.sessions.get(conn)
        if sess is None or sess.key is None:
            return []
        nick = sess.nick
        out = self._forget(sess, "nickname lost")
        sess.nick = sess.key = None
        sess.prefix = sess.bcast_prefix = b""
        sess.cache = None
        sess.list_gen = -1
        self.notes.append(Note("revoked", conn, {"nick": nick, "online": len(self.users)}))
        out.append((conn, sess.dialect.system(
            sess, Code.NICK_IN_USE,
            f"Nickname '{nick}' is already taken by an earlier login on another server of "
            "this chat (they were cut off from each other). Choose another nickname.", nick)))
        return out

    def remote_join(self, key: str, nick: str, rank: tuple = ()) -> list[Output]:
        """A user logged in on another node (``rank``: see :attr:`Session.rank`). The name is
        checked like a local login: what comes from the cluster is bytes from the network
        too, and a name with ``,`` or a reserved name would corrupt every list or pose as
        the server."""
        if key in self.users:
            return []  # a conflict the cluster is resolving; it revokes one of the two
        if nick_problem(nick) is not None or nick_key(nick) != key:
            self.notes.append(Note("cluster_bad_name", 0, {"nick": nick}))
            return []
        old = self.remote.get(key)
        if old is not None:
            if old.nick == nick and old.rank == rank:
                return []
            out = self.remote_leave(key)
        else:
            out = []
        stand_in = Session(0, 0, 0.0, 0.0, True)
        raw = nick.encode()
        stand_in.nick, stand_in.key = nick, key
        stand_in.rank = rank
        stand_in.prefix = raw + b": "
        stand_in.bcast_prefix = BROADCAST_MARK + raw + b": "
        self.remote[key] = stand_in
        self._remote_bytes[raw] = stand_in
        self._list_bytes += len(raw) + 1
        self.roster_gen += 1
        self._presence(stand_in, Code.JOINED, f"{nick} joined.", lambda d: d.joined(stand_in), out)
        return out

    def remote_leave(self, key: str, reason: str = LEAVE_REASON) -> list[Output]:
        """A user on another node left (or its node died); ``reason`` as that node's
        :class:`Release` gave it. It crossed the network: control characters and escapes
        are neutralised and its length bounded before any dialect shows it."""
        stand_in = self.remote.pop(key, None)
        if stand_in is None:
            return []
        reason = sanitize(reason)[:MAX_LEAVE_REASON].strip() or LEAVE_REASON
        self._remote_bytes.pop(stand_in.prefix[:-2], None)
        self._list_bytes -= len(stand_in.prefix) - 1
        self.roster_gen += 1
        out: list[Output] = []
        self._presence(stand_in, Code.LEFT, f"{stand_in.nick} left.",
                       lambda d: d.left(stand_in, reason), out)
        return out

    def remote_roster(self, users: Iterable[tuple[str, str, tuple]]) -> list[Output]:
        """Replace what is known of other nodes' users (after the cluster (re)connects):
        ``(key, nick, rank)`` items, ``rank`` as in :meth:`remote_join`."""
        new = {key: (nick, rank) for key, nick, rank in users}
        out: list[Output] = []
        for key in [k for k in self.remote if k not in new]:
            out += self.remote_leave(key)
        for key, (nick, rank) in new.items():
            out += self.remote_join(key, nick, rank)
        return out

    def deliver_many(self, items: Iterable[tuple]) -> tuple[list[Output], list[tuple]]:
        """Private messages from users on other nodes: items ``(_, sender, target, text)``
        as bytes, the target being a local user's exact nickname. Returns what to send and
        the items whose target is not here (it left meanwhile), for an undeliverable notice.
        The text gets the same checks as local text: a sender the presence directory does not
        know, or bytes that are not one line of UTF-8, are dropped (nobody with access to
        Redis can pose as the server or as a local user), and controls are cleaned."""
        by_bytes = self._by_bytes
        senders = self._remote_bytes
        out: list[Output] = []
        missing: list[tuple] = []
        for item in items:
            dest = by_bytes.get(item[2])
            if dest is None:
                missing.append(item)
                continue
            sender = senders.get(item[1])
            text = _remote_text(item[3])
            if sender is None or text is None:
                continue
            out.append((dest.conn, sender.prefix + text + b"\n" if dest.dialect is NATIVE
                        else dest.dialect.private(sender, dest, text)))
        return out, missing

    def deliver_all(self, sender: bytes, text: bytes) -> list[Output]:
        """A ``*:`` message from a user on another node (its nickname as bytes), for every
        local user; checked as in :meth:`deliver_many`."""
        clean = _remote_text(text)
        stand_in = self._remote_bytes.get(sender)
        if stand_in is None or clean is None:
            return []
        out: list[Output] = []
        self._fan_out(stand_in, clean, out)
        return out

    def notice(self, conn: int, code: int, text: str) -> list[Output]:
        """A ``System:`` line for one connection (cluster errors, undeliverable notices)."""
        sess = self.sessions.get(conn)
        if sess is None:
            return []
        return [(conn, sess.dialect.system(sess, code, text))]

    # -- delivery failures ---------------------------------------------------------------

    def undelivered(self, conn: int, pending: bytes, recipient: str | None = None) -> list[Output]:
        """Tell the senders of messages still queued for a connection that is being dropped.

        ``pending`` is the unsent output (starting at a line boundary). The sender of each
        line is recovered from the line itself by the recipient's dialect (the server
        stamped it, so it cannot be forged).
        """
        sess = self.sessions.get(conn)
        name = recipient or (sess.nick if sess is not None and sess.nick else "the recipient")
        dialect = sess.dialect if sess is not None else NATIVE
        counts: dict[Session, int] = {}
        remote: dict[str, int] = {}  # senders on other nodes (cluster), by key
        by_bytes = self._by_bytes
        for raw in dialect.senders(pending):
            sender = by_bytes.get(raw)
            if sender is None:
                sender = self.users.get(nick_key(raw.decode("utf-8", "replace")))
            if sender is not None and sender.conn != conn:
                counts[sender] = counts.get(sender, 0) + 1
            elif sender is None and self._remote_bytes:
                elsewhere = self._remote_bytes.get(raw)
                if elsewhere is not None:
                    remote[elsewhere.key] = remote.get(elsewhere.key, 0) + 1  # type: ignore[index]
        out: list[Output] = [(s.conn, s.dialect.system(
            s, Code.NOT_DELIVERED,
            f"{n} message(s) to '{name}' not delivered: {name} was disconnected."))
            for s, n in counts.items()]
        out.extend((conn, Bounce(key, name, n)) for key, n in remote.items())
        return out


def _rank(sess: Session) -> tuple:
    return sess.rank


def _remote_text(text: bytes) -> bytes | None:
    """Text from another node as it may be relayed: one non-empty line of UTF-8, cleaned of
    controls like local text; None when it is not text at all."""
    if not text or b"\n" in text:
        return None
    if not text.isascii():
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return clean_text(text) if has_controls(text) else text


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: a partial line, no sender to tell
    return lines


# The two scenario errors of the hot path, built once: [uncoded, coded] (index: sess.codes).
_ERR_FORMAT = (plain_system_line("Invalid format! Use: TargetName: Message"),
               system_line(Code.NO_RECIPIENT, "Invalid format! Use: TargetName: Message"))
_ERR_EMPTY = (plain_system_line("Name or message cannot be empty."),
              system_line(Code.NO_TEXT, "Name or message cannot be empty."))
