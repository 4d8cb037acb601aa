"""The chat client core shared by every front end (CLI now, Tk GUI next).

One :class:`ChatClient` owns the connection: connecting, TLS, password, framing, login,
sending, keepalive pings and orderly closing all happen on its own background thread, so
a front end never touches a socket and never blocks on the network. The front end talks
to it through a small thread-safe API:

* calls (from any thread, never blocking on the network): :meth:`ChatClient.start`,
  :meth:`~ChatClient.login`, :meth:`~ChatClient.send`, :meth:`~ChatClient.broadcast`,
  :meth:`~ChatClient.command`, :meth:`~ChatClient.close`;
* events: instances of the dataclasses below, put on :attr:`ChatClient.events`, a bounded
  :class:`queue.Queue`. A terminal front end blocks on ``events.get()`` in a thread; a
  Tk front end polls ``events.get_nowait()`` from ``after()``. If nobody reads, the queue
  fills and the client stops reading the socket, so the server's slow-consumer limit — not
  this process's memory — takes the strain.

Server lines are turned into events by :func:`parse_server_line`, a pure function.
This module must never print or read the terminal: rendering belongs to the front ends.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass

from tcplab.chat.protocol import BROADCAST_MARK, ONLINE_PREFIX, Code, LineFramer, guess_code

#: Server lines can be long (an ONLINE_USERS list of 10,000 users is ~100–300 KB); anything
#: longer than this is skipped rather than buffered.
CLIENT_MAX_LINE = 4 * 1024 * 1024
#: Lines a front end may queue before the network thread has sent them.
MAX_UNSENT_LINES = 1000
#: Undelivered events kept for the front end (see module docstring for what happens when full).
MAX_EVENTS = 10_000
#: A silent client pings so the server's idle timeout (300 s by default) never drops a
#: reader who is just listening, and so a dead server is noticed.
PING_INTERVAL = 60.0
#: How long :meth:`ChatClient.close` waits for the server to acknowledge our FIN.
CLOSE_TIMEOUT = 2.0


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """The TCP (and TLS) connection is up; send the nickname with :meth:`ChatClient.login`."""

    host: str
    port: int


@dataclass(frozen=True)
class LoggedIn:
    """The server accepted the nickname."""

    nick: str
    text: str


@dataclass(frozen=True)
class LoginRefused:
    """The nickname (or password) was refused; the connection stays open for another try
    unless the code is :data:`Code.PASSWORD`."""

    code: int
    text: str


@dataclass(frozen=True)
class PrivateMessage:
    sender: str
    text: str


@dataclass(frozen=True)
class BroadcastMessage:
    sender: str
    text: str


@dataclass(frozen=True)
class OnlineUsers:
    """The full list of users online (from ``ONLINE_USERS:`` or kept up to date from deltas)."""

    users: tuple[str, ...]


@dataclass(frozen=True)
class UserJoined:
    nick: str


@dataclass(frozen=True)
class UserLeft:
    nick: str


@dataclass(frozen=True)
class SystemNotice:
    """A ``System:`` line; ``code`` ≥ 400 is an error (see docs/protocol.md). The client asks
    for numeric codes (``/codes on``); a line without one (a server that does not know the
    command, such as the report's) gets its code from the report's wording, 0 if unknown."""

    code: int
    text: str

    @property
    def is_error(self) -> bool:
        return self.code >= 400


@dataclass(frozen=True)
class Disconnected:
    """The connection is over; ``by_user`` is True after :meth:`ChatClient.close`."""

    reason: str
    by_user: bool = False


Event = (Connected | LoggedIn | LoginRefused | PrivateMessage | BroadcastMessage | OnlineUsers
         | UserJoined | UserLeft | SystemNotice | Disconnected)

_LOGIN_REFUSALS = frozenset({Code.BAD_NICK, Code.NICK_IN_USE, Code.PASSWORD})


def parse_server_line(line: str) -> PrivateMessage | BroadcastMessage | OnlineUsers | SystemNotice:
    """Classify one line from the server (already framed and decoded)."""
    if line.startswith("ONLINE_USERS:"):
        body = line[len("ONLINE_USERS:"):]
        return OnlineUsers(tuple(n for n in body.split(",") if n))
    if line.startswith("System: "):
        rest = line[8:]
        code_text, _, text = rest.partition(" ")
        if len(code_text) == 3 and code_text.isdigit():
            return SystemNotice(int(code_text), text)
        return SystemNotice(guess_code(rest), rest)
    if line.startswith("* "):
        sender, sep, text = line[2:].partition(": ")
        if sep:
            return BroadcastMessage(sender, text)
    sender, sep, text = line.partition(": ")
    if not sep:
        sender, sep, text = line.partition(":")
    return PrivateMessage(sender, text) if sep else SystemNotice(0, line)


def split_chat_input(text: str) -> tuple[str, str] | None:
    """Client-side check of what the user typed: ``Target: message`` needs a colon.

    Only the colon is checked here (the seed's ``Invalid format!``); empty parts go to the
    server, which answers with the seed's ``Name or message cannot be empty.``
    """
    target, sep, message = text.partition(":")
    if not sep:
        return None
    return target.strip(), message.strip()


# --- the client ---------------------------------------------------------------------------


class ChatClient:
    """A connection to a chat server, run on a background thread (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 55555,
        *,
        ssl_context: ssl.SSLContext | None = None,
        password: str | None = None,
        deltas: bool = False,
        connect_timeout: float = 10.0,
        ping_interval: float = PING_INTERVAL,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.password = password
        self.deltas = deltas
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.events: queue.Queue[Event] = queue.Queue(maxsize=max_events)
        self._lock = threading.Lock()
        self._unsent: deque[bytes] = deque()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._nick_pending: str | None = None
        self.nick: str | None = None
        self._online: tuple[str, ...] = ()
        self.connected = False

    # -- API for front ends (any thread) -------------------------------------------------

    def start(self) -> None:
        """Connect in the background; a :class:`Connected` or :class:`Disconnected` event follows."""
        if self._thread is not None:
            raise RuntimeError("ChatClient.start() called twice")
        self._thread = threading.Thread(target=self._run, name="tcplab-chat-client", daemon=True)
        self._thread.start()

    @property
    def online(self) -> tuple[str, ...]:
        """The last known list of users online (a snapshot, safe from any thread)."""
        return self._online

    def login(self, nick: str) -> bool:
        """Ask for ``nick``; a :class:`LoggedIn` or :class:`LoginRefused` event answers."""
        with self._lock:
            self._nick_pending = nick
        return self._queue(nick)

    def send(self, target: str, text: str) -> bool:
        """Send a private message (``target`` may be ``*`` for everyone)."""
        return self._queue(f"{target}: {text}")

    def broadcast(self, text: str) -> bool:
        return self._queue(f"*: {text}")

    def send_raw(self, line: str) -> bool:
        """Send a line exactly as typed (the CLI does this so the server judges empty parts)."""
        return self._queue(line)

    def command(self, name: str, arg: str = "") -> bool:
        """Send ``/name arg`` (``users``, ``deltas``, ``ping``, ``quit``)."""
        return self._queue(f"/{name} {arg}".rstrip())

    def close(self, timeout: float = CLOSE_TIMEOUT + 1.0) -> None:
        """Send what is queued, close with FIN, wait for the server to finish (bounded)."""
        self._closing.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait_for(self, *kinds: type, timeout: float = 10.0) -> Event:
        """Convenience for scripts and tests: return the next event of one of ``kinds``,
        passing over others (they are lost to other readers). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {', '.join(k.__name__ for k in kinds)} event in {timeout} s")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(event, kinds):
                return event

    # -- internals -----------------------------------------------------------------------

    def _queue(self, line: str) -> bool:
        if "\n" in line or "\r" in line:
            raise ValueError("a chat line cannot contain a line break")
        data = line.encode() + b"\n"
        with self._lock:
            if self._closing.is_set() or len(self._unsent) >= MAX_UNSENT_LINES:
                return False
            self._unsent.append(data)
        self._wake()
        return True

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _emit(self, event: Event) -> None:
        # Blocks while the front end is behind (bounded queue), but gives up on close so
        # close() can never hang on a front end that stopped reading.
        while True:
            try:
                self.events.put(event, timeout=0.2)
                return
            except queue.Full:
                if self._closing.is_set():
                    return

    def _run(self) -> None:
        try:
            sock = self._connect()
        except OSError as exc:
            self._emit(Disconnected(f"cannot connect to {self.host}:{self.port}: "
                                    f"{exc.strerror or exc}"))
            self._cleanup(None)
            return
        self.connected = True
        self._emit(Connected(self.host, self.port))
        with self._lock:
            if self.password is not None:
                self._unsent.appendleft(f"/pass {self.password}\n".encode())
            # Before anything else, so even the answer to the password carries its code.
            self._unsent.appendleft(b"/codes on\n")
            if self.deltas:
                self._unsent.append(b"/deltas\n")
        reason = "connection closed"
        by_user = False
        try:
            reason, by_user = self._loop(sock)
        except Exception as exc:  # a bug must still end in a Disconnected event
            reason = f"client error: {exc!r}"
        self.connected = False
        self._emit(Disconnected(reason, by_user))
        self._cleanup(sock)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _cleanup(self, sock: socket.socket | None) -> None:
        for s in (sock, self._wake_r, self._wake_w):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def _loop(self, sock: socket.socket) -> tuple[str, bool]:
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        framer = LineFramer(CLIENT_MAX_LINE)
        out = b""
        want_write = False
        fin_sent = False
        fin_deadline = 0.0
        last_sent = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                timeout = max(0.05, last_sent + self.ping_interval - now)
                if fin_sent:
                    timeout = max(0.0, min(timeout, fin_deadline - now))
                for key, _mask in sel.select(timeout):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        continue
                    while True:
                        try:
                            data = sock.recv(65536)
                        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            break
                        except OSError as exc:
                            return f"connection lost: {exc.strerror or exc}", fin_sent
                        if not data:
                            if fin_sent:
                                return "closed", True
                            return "the server closed the connection", False
                        self._handle(framer.feed(data))
                        if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                            break
                now = time.monotonic()
                with self._lock:
                    if self._unsent and not fin_sent:
                        out += b"".join(self._unsent)
                        self._unsent.clear()
                if not out and not fin_sent and now - last_sent >= self.ping_interval:
                    out = b"/ping\n"
                if out:
                    try:
                        n = sock.send(out)
                    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        n = 0
                    except OSError as exc:
                        return f"connection lost: {exc.strerror or exc}", fin_sent
                    out = out[n:]
                    if n:
                        last_sent = now
                if bool(out) != want_write:
                    want_write = bool(out)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                    sel.modify(sock, events)
                if self._closing.is_set() and not out and not fin_sent:
                    fin_sent = True
                    fin_deadline = now + CLOSE_TIMEOUT
                    if isinstance(sock, ssl.SSLSocket):
                        # A TLS socket cannot half-close (after shutdown() reads return raw
                        # records), so ask the server to close: it flushes its replies first.
                        out = b"/quit\n"
                        want_write = True
                        sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                        continue
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                if fin_sent and time.monotonic() >= fin_deadline:
                    return "closed", True
        finally:
            sel.close()

    def _handle(self, lines: list[bytes | None]) -> None:
        for raw in lines:
            if raw is None:
                continue  # longer than CLIENT_MAX_LINE: skipped, never buffered
            line = raw.decode("utf-8", errors="replace")
            event = parse_server_line(line)
            if isinstance(event, SystemNotice):
                if event.code in (Code.PONG, Code.PASSWORD_OK, Code.DELTAS_ON, Code.CODES_ON):
                    continue
                pending = self._nick_pending
                if pending is not None:
                    if event.code == Code.WELCOME:
                        self.nick = pending
                        self._nick_pending = None
                        self._emit(LoggedIn(pending, event.text))
                        continue
                    if event.code in _LOGIN_REFUSALS:
                        self._nick_pending = None
                        self._emit(LoginRefused(event.code, event.text))
                        continue
                if event.code == Code.JOINED and event.text.endswith(" joined."):
                    nick = event.text[:-len(" joined.")]
                    self._online = self._online + (nick,)
                    self._emit(UserJoined(nick))
                    continue
                if event.code == Code.LEFT and event.text.endswith(" left."):
                    nick = event.text[:-len(" left.")]
                    self._online = tuple(n for n in self._online if n != nick)
                    self._emit(UserLeft(nick))
                    continue
            elif isinstance(event, OnlineUsers):
                self._online = event.users
            self._emit(event)


__all__ = [
    "ChatClient", "Connected", "LoggedIn", "LoginRefused", "PrivateMessage", "BroadcastMessage",
    "OnlineUsers", "UserJoined", "UserLeft", "SystemNotice", "Disconnected", "Event",
    "parse_server_line", "split_chat_input", "BROADCAST_MARK", "ONLINE_PREFIX",
]
