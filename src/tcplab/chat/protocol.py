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
  ``ONLINE_USERS:a,b,c`` and ``System: NNN text`` notices and errors.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# --- limits -------------------------------------------------------------------------------

#: Longest accepted line in bytes, excluding the line ending. IRC allows 512 bytes; we allow
#: more because chat text in Hebrew or emoji takes 2–4 bytes per character, yet keep it small
#: enough that a peer that never sends a newline costs at most this much memory.
DEFAULT_MAX_LINE = 4096
#: Nickname length in characters (code points), as the course rules demand.
MAX_NICK_CHARS = 32
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

# --- wire constants -----------------------------------------------------------------------

SYSTEM = "System"
ONLINE_PREFIX = b"ONLINE_USERS:"
BROADCAST_TARGET = "*"
#: Broadcasts are delivered as ``* Sender: text``; no nickname may start with ``*`` so a
#: receiver can always tell a broadcast from a private message.
BROADCAST_MARK = b"* "
#: Names nobody may take, compared after NFKC + casefold, so nobody can pose as the server
#: or as a protocol keyword.
RESERVED_NAMES = frozenset(
    {"system", "online_users", "online", "all", "*", "everyone", "server", "admin", "root"}
)
#: Characters never allowed in a nickname besides control characters: ``:`` splits the target
#: from the text, ``,`` separates names in ``ONLINE_USERS``.
FORBIDDEN_NICK_CHARS = frozenset(":,")
#: Bidirectional overrides and isolates reorder text on screen: a name could then display as
#: somebody else's. Hebrew needs none of them to display correctly.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


class Code:
    """Stable numeric codes carried by every ``System:`` line (IRC numerics where one exists)."""

    WELCOME = 1  # login accepted
    PONG = 2  # reply to /ping
    PASSWORD_OK = 3  # password accepted, now send the nickname
    JOINED = 201  # delta notice: a user joined (only to clients that sent /deltas)
    LEFT = 202  # delta notice: a user left
    DELTAS_ON = 203  # /deltas accepted
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
    SHUTTING_DOWN = 550  # the server is stopping


def system_line(code: int, text: str) -> bytes:
    """Encode a ``System: NNN text`` line; the code keeps three digits so it is easy to parse."""
    return f"{SYSTEM}: {code:03d} {text}\n".encode()


def online_line(names: Iterable[str]) -> bytes:
    """``ONLINE_USERS:a,b,c`` exactly as the report's server sent it."""
    return ONLINE_PREFIX + ",".join(names).encode() + b"\n"


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


# --- nicknames ----------------------------------------------------------------------------


def nick_key(nick: str) -> str:
    """The identity of a nickname: NFKC folds look-alike forms (full-width letters), casefold folds case."""
    return unicodedata.normalize("NFKC", nick).casefold()


def nick_problem(nick: str) -> str | None:
    """Explain why ``nick`` cannot be used, or return None when it is acceptable."""
    if not nick:
        return "A nickname cannot be empty."
    if len(nick) > MAX_NICK_CHARS:
        return f"A nickname has at most {MAX_NICK_CHARS} characters."
    if nick != nick.strip():
        return "A nickname cannot start or end with a space."
    for ch in nick:
        if ch in FORBIDDEN_NICK_CHARS:
            return f"A nickname cannot contain {ch!r}."
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return "A nickname cannot contain control characters."
    if nick[0] in "*/":
        return f"A nickname cannot start with {nick[0]!r}."
    if nick_key(nick) in RESERVED_NAMES:
        return f"The name {nick!r} is reserved."
    return None


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
        "closing", "messages",
    )

    def __init__(self, conn: int, max_line: int, burst: float, now: float, authenticated: bool):
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
        self.messages = 0  # messages this user sent that were routed (a console shows it)


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
    cost a few lists per client rather than 10,000.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.sessions: dict[int, Session] = {}
        self.users: dict[str, Session] = {}  # nick_key -> session, logged-in only, join order
        self._by_bytes: dict[bytes, Session] = {}  # exact UTF-8 nick -> session (fast path)
        self.roster_gen = 0
        self._list_cache: tuple[int, bytes] = (-1, b"")
        self._synced_gen = 0
        self._awaiting: dict[int, Session] = {}  # logged in, first list not yet sent
        # Logged-in clients that asked for join/leave notices (a dict keeps join order), so
        # a join costs O(deltas clients), not a scan of everyone.
        self._delta_conns: dict[int, None] = {}
        self._last_due = 0.0
        # Length of the ONLINE_USERS line, kept up to date so a join never has to build it.
        self._list_bytes = len(ONLINE_PREFIX)
        self.notes: list[Note] = []
        #: Messages routed for users who have left (with Session.messages: the total routed).
        self.routed_departed = 0

    # -- connection lifecycle ------------------------------------------------------------

    def connect(self, conn: int, now: float) -> list[Output]:
        """A TCP connection was accepted; nothing is sent until the client speaks."""
        lim = self.limits
        self.sessions[conn] = Session(conn, lim.max_line, lim.burst, now, lim.password is None)
        return []

    def disconnect(self, conn: int, reason: str) -> list[Output]:
        """The connection is gone (FIN, RST, timeout, overflow): forget it and tell the others."""
        sess = self.sessions.pop(conn, None)
        if sess is None or sess.key is None:
            return []
        del self.users[sess.key]
        self.routed_departed += sess.messages
        self._list_bytes -= len(sess.prefix) - 1
        self._awaiting.pop(conn, None)
        self._delta_conns.pop(conn, None)
        self._by_bytes.pop(sess.prefix[:-2], None)
        self.roster_gen += 1
        self.notes.append(Note("leave", conn, {"nick": sess.nick, "reason": reason,
                                               "online": len(self.users)}))
        notice = system_line(Code.LEFT, f"{sess.nick} left.")
        return [(c, notice) for c in self._delta_conns]

    def close_all(self, text: str = "Server is shutting down.") -> list[Output]:
        """Graceful shutdown: tell every connection why, then close it."""
        line = system_line(Code.SHUTTING_DOWN, text)
        out: list[Output] = []
        for conn in self.sessions:
            out.append((conn, line))
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
        if not lines:
            return []
        out: list[Output] = []
        lim = self.limits
        rate = lim.rate
        if rate > 0.0:
            tokens = sess.tokens + (now - sess.stamp) * rate
            sess.tokens = tokens if tokens < lim.burst else lim.burst
            sess.stamp = now
        by_bytes = self._by_bytes
        check_utf8 = not sess.framer.ascii
        for line in lines:
            if rate > 0.0:
                if sess.tokens < 1.0:
                    if sess.dropped == 0:
                        out.append((conn, system_line(
                            Code.FLOOD,
                            f"Flood limit: at most {rate:g} messages per second; "
                            "messages are dropped until you slow down.")))
                        self.notes.append(Note("flood", conn, {"nick": sess.nick}))
                    sess.dropped += 1
                    continue
                sess.tokens -= 1.0
                if sess.dropped:
                    out.append((conn, system_line(
                        Code.FLOOD, f"{sess.dropped} message(s) were dropped by the flood limit.")))
                    sess.dropped = 0
            if line is None:
                out.append((conn, system_line(
                    Code.LINE_TOO_LONG, f"Line too long (max {lim.max_line} bytes); discarded.")))
                self.notes.append(Note("error", conn, {"code": Code.LINE_TOO_LONG}))
                continue
            if check_utf8:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    out.append((conn, system_line(
                        Code.INVALID_UTF8, f"Invalid UTF-8 at byte {exc.start} of the line; discarded.")))
                    self.notes.append(Note("error", conn, {"code": Code.INVALID_UTF8}))
                    continue
            if line[:1] == b"/":
                out.extend(self._command(sess, line.decode().strip(), now))
                if sess.closing:
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
                out.append((conn, _ERR_FORMAT))
                continue
            target = line[:colon].strip(b" \t")
            text = line[colon + 1:].strip(b" \t")
            if not target or not text:
                out.append((conn, _ERR_EMPTY))
                continue
            dest = by_bytes.get(target)
            if dest is None:
                if target == b"*":
                    msg = sess.bcast_prefix + text + b"\n"
                    out.extend((s.conn, msg) for s in self.users.values() if s is not sess)
                    sess.messages += 1
                    if lim.log_messages:
                        self.notes.append(Note("message", conn, {"from": sess.nick, "to": "*",
                                                                 "text": text.decode()}))
                    continue
                dest = self.users.get(nick_key(target.decode()))
                if dest is None:
                    out.append((conn, system_line(
                        Code.NO_SUCH_NICK, f"User '{target.decode()}' is not connected.")))
                    continue
            out.append((dest.conn, sess.prefix + text + b"\n"))
            sess.messages += 1
            if lim.log_messages:
                self.notes.append(Note("message", conn, {"from": sess.nick, "to": dest.nick,
                                                         "text": text.decode()}))
        return out

    def _login(self, sess: Session, nick: str, now: float) -> list[Output]:
        conn = sess.conn
        if not sess.authenticated:
            return [(conn, system_line(
                Code.PASSWORD, "Password required: send '/pass <password>' before the nickname."))]
        problem = nick_problem(nick)
        if problem is not None:
            self.notes.append(Note("error", conn, {"code": Code.BAD_NICK}))
            return [(conn, system_line(Code.BAD_NICK, problem + " Choose another nickname."))]
        key = nick_key(nick)
        if key in self.users:
            self.notes.append(Note("error", conn, {"code": Code.NICK_IN_USE}))
            return [(conn, system_line(
                Code.NICK_IN_USE, f"Nickname '{nick}' is already taken. Choose another nickname."))]
        sess.nick = nick
        sess.key = key
        raw = nick.encode()
        sess.prefix = raw + b": "
        sess.bcast_prefix = BROADCAST_MARK + raw + b": "
        self.users[key] = sess
        self._by_bytes[raw] = sess
        self._list_bytes += len(raw) + 1
        if sess.deltas:
            self._delta_conns[conn] = None
        self.roster_gen += 1
        self.notes.append(Note("join", conn, {"nick": nick, "online": len(self.users)}))
        out: list[Output] = [(conn, system_line(
            Code.WELCOME, f"Welcome, {nick}! Usage: 'TargetName: Your Message'; '*: Message' for everyone."))]
        # The newcomer gets a small list at once (the report's client shows it right after
        # connecting); a large one, and everybody else's, goes through due_lists().
        if self._list_bytes <= LIST_INLINE_MAX:
            out.append((conn, self.online_line()))
            sess.list_gen = self.roster_gen
            sess.list_sent_at = now
        else:
            self._awaiting[conn] = sess
        notice = system_line(Code.JOINED, f"{nick} joined.")
        out.extend((c, notice) for c in self._delta_conns if c != conn)
        return out

    def _command(self, sess: Session, line: str, now: float) -> list[Output]:
        conn = sess.conn
        name, _, arg = line.partition(" ")
        name = name.lower()
        if name == "/pass":
            expected = self.limits.password
            if expected is None:
                sess.authenticated = True
                return [(conn, system_line(Code.PASSWORD_OK, "No password needed."))]
            import hmac  # local: only password-protected servers pay for it

            if hmac.compare_digest(arg.encode(), expected.encode()):
                sess.authenticated = True
                return [(conn, system_line(Code.PASSWORD_OK, "Password accepted."))]
            sess.closing = True
            self.notes.append(Note("error", conn, {"code": Code.PASSWORD}))
            return [(conn, system_line(Code.PASSWORD, "Wrong password.")),
                    (conn, Close("wrong password"))]
        if name == "/ping":
            return [(conn, system_line(Code.PONG, "Pong."))]
        if name == "/quit":
            sess.closing = True
            return [(conn, Close("quit"))]
        if name == "/deltas":
            sess.deltas = True
            if sess.key is not None:
                self._delta_conns[conn] = None
            out: list[Output] = [(conn, system_line(
                Code.DELTAS_ON, "Join/leave notices on: lists are sent only on /users."))]
            if sess.key is not None:
                out.append((conn, self.online_line()))
                sess.list_gen = self.roster_gen
            return out
        if name == "/users":
            if sess.key is None:
                return [(conn, system_line(Code.UNKNOWN_COMMAND, "Log in first: send your nickname."))]
            sess.list_gen = self.roster_gen
            sess.list_sent_at = now
            return [(conn, self.online_line())]
        return [(conn, system_line(
            Code.UNKNOWN_COMMAND,
            f"Unknown command {name!r}; commands: /users /deltas /ping /quit /pass."))]

    # -- time-driven work ----------------------------------------------------------------

    def online_line(self) -> bytes:
        """The current ``ONLINE_USERS:`` line, built once per roster generation."""
        gen, line = self._list_cache
        if gen != self.roster_gen:
            line = online_line(s.nick for s in self.users.values())  # type: ignore[misc]
            self._list_cache = (self.roster_gen, line)
        return line

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
        have not logged in within ``login_timeout`` (silent sockets cannot hoard client slots)."""
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
            out.append((s.conn, system_line(Code.IDLE_TIMEOUT, text)))
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
        return [(s.conn, system_line(
            Code.NOT_DELIVERED,
            f"{n} message(s) to '{name}' not delivered: {name} was disconnected."))
            for s, n in counts.items()]


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: a partial line, no sender to tell
    return lines


_ERR_FORMAT = system_line(Code.NO_RECIPIENT, "Invalid format! Use: TargetName: Message")
_ERR_EMPTY = system_line(Code.NO_TEXT, "Name or message cannot be empty.")
