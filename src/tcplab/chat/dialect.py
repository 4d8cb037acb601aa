"""The seam between a wire format and the chat core: what a dialect is.

The chat has one core (:class:`tcplab.chat.protocol.ChatCore`): the roster, nickname
rules, routing, flood control, limits, presence and the notes that get logged. A
*dialect* is a codec between one wire format and that core, in both directions:

* **wire → core.** :meth:`Dialect.receive` frames and parses the connection's bytes and
  calls the core's operations — ``admit`` (flood control, once per line), ``authenticate``,
  ``login``, ``rename``, ``private``, ``broadcast``, ``quit``, and the presence queries
  ``find``/``online`` — or answers a query itself from them (IRC's ``WHOIS``, ``NAMES``).
  Every operation appends what it causes to an output list ``[(conn, bytes | Close)]``.
* **core → wire.** Whenever the core has something for a user it asks *that user's*
  dialect to render it: a private message, a broadcast, a system notice or error (with the
  core's numeric code), a join, a leave, a rename, the welcome after a login, last words
  before a close. The core never builds a line of a foreign wire format itself.

So a native user and an IRC user talk to each other through the core's events, each side
rendered in its own format, and adding a third wire format (WebSocket for a browser) is a
new :class:`Dialect` plus a listener in the server — nothing else.

The native line protocol is the first dialect (``protocol.NATIVE``); its parsing is
inlined in ``ChatCore.receive`` because it is the hot path measured by the chat
benchmark. Sans-IO like the core: no sockets, clocks or loggers here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcplab.chat.protocol import ChatCore, Output, Session


class Dialect:
    """One wire format. Subclasses override what their format needs; one instance serves
    every connection of a listener (per-connection state lives in ``Session.state``)."""

    #: Short name used in logs (``native``, ``irc``).
    name = "dialect"

    # -- wire → core ---------------------------------------------------------------------

    def connected(self, core: ChatCore, sess: Session, now: float) -> list[Output]:
        """A connection was accepted; set up ``sess.state``; return any greeting."""
        return []

    def receive(self, core: ChatCore, sess: Session, data: bytes, now: float) -> list[Output]:
        """Bytes arrived on ``sess``: frame, parse, call the core; return what to send where."""
        raise NotImplementedError

    def resume(self, core: ChatCore, sess: Session, lines: list, now: float) -> list[Output]:
        """A password that had to wait its turn (per-address throttling) was accepted: go on
        with the login and with ``lines``, the framed lines the client sent meanwhile."""
        raise NotImplementedError

    # -- core → wire ---------------------------------------------------------------------

    def welcome(self, core: ChatCore, sess: Session, now: float) -> list[bytes]:
        """Lines a user receives right after its login was accepted."""
        raise NotImplementedError

    def private(self, sender: Session, dest: Session, text: bytes, notice: bool = False) -> bytes:
        """A private message from ``sender`` for ``dest`` (``text`` is UTF-8, no line ending)."""
        raise NotImplementedError

    def broadcast(self, sender: Session, text: bytes) -> bytes:
        """A message to everyone; the same bytes go to every user of this dialect."""
        raise NotImplementedError

    def system(self, dest: Session | None, code: int, text: str, subject: str | None = None) -> bytes:
        """A notice or error from the server (``code`` as in ``protocol.Code``; ``subject``
        is the nickname or command it is about). ``dest`` is None before a session exists
        (e.g. refusing a connection when the server is full)."""
        raise NotImplementedError

    def closing(self, dest: Session, code: int, text: str) -> bytes:
        """Last words before the server closes ``dest`` (shutdown, timeout, wrong password)."""
        return self.system(dest, code, text)

    def joined(self, who: Session) -> bytes:
        """``who`` came online (for sessions with ``deltas`` set: presence as events, as IRC's
        JOIN, rather than coalesced ``ONLINE_USERS`` lists)."""
        raise NotImplementedError

    def left(self, who: Session, reason: str) -> bytes:
        """``who`` went offline."""
        raise NotImplementedError

    def leave_reason(self, who: Session, reason: str) -> str:
        """Why ``who`` left, for users of other cluster nodes, whose dialects get it as
        ``reason`` of :meth:`left`: the core's ``reason`` unless this dialect knows better."""
        return reason

    def renamed(self, who: Session, old_nick: str) -> bytes:
        """``who`` changed its nickname from ``old_nick`` (already updated in ``who``)."""
        raise NotImplementedError

    def keepalive(self, sess: Session) -> bytes | None:
        """A probe to send to a silent connection before the idle timeout closes it
        (IRC's ``PING``), or None when the dialect's clients keep themselves alive."""
        return None

    def senders(self, pending: bytes) -> list[bytes]:
        """The sender nicknames (UTF-8, as rendered) of the chat messages in ``pending``,
        unsent output of a connection being dropped, so they can be told (code 404)."""
        return []

