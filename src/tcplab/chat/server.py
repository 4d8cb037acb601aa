"""The chat server's I/O shell: one thread, non-blocking sockets, a ``selectors`` (epoll) loop.

The report's server gave every client a thread blocked in ``recv``. That is easy to read
but costs a thread stack and a context switch per message, and a nickname read inside the
accept loop lets one silent client stall every login. Here a single loop multiplexes every
socket; the protocol decisions are made by :class:`tcplab.chat.protocol.ChatCore`, and
this module only moves bytes, enforces resource bounds and logs metadata.

Bounds: each client's unsent output is capped (``max_output``; one online list at a time
rides outside the cap, so a huge roster never gets a reader dropped); a client that stops
reading past it — and whose kernel buffer is full too — is disconnected and the senders of
what was still queued are told. Connections are capped in all and per address, incoming
lines are capped by the framer, and lists are coalesced by the core. Whatever a drop
causes is carried out from a worklist (:meth:`ChatServer._apply`), never by recursion. What this module must never do: interpret message text (that is
the core's job) or log it (unless ``log_messages`` is on).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tcplab.chat.dialect import Dialect
from tcplab.chat.protocol import (
    CLUSTER_ACTIONS,
    NATIVE,
    ChatCore,
    Close,
    Code,
    Limits,
    ListLine,
    Note,
)

if TYPE_CHECKING:
    from tcplab.chat.cluster.engine import Engine
from tcplab.errors import EnvironmentProblem

log = logging.getLogger("tcplab.chat.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
#: The registered IRC port (``--irc-port``; the IRC listener is off unless asked for).
DEFAULT_IRC_PORT = 6667
#: Unsent bytes allowed per client before it counts as a slow consumer: a generous burst of
#: messages, small enough that 10,000 stalled clients cannot exhaust memory. The one online
#: list a client may have queued does not count (with 10,000 long names it is over 1 MB).
DEFAULT_MAX_OUTPUT = 256 * 1024
DEFAULT_MAX_CLIENTS = 10_000
#: Connections one address may hold at once (IPv6: one /64). Generous, because a school or
#: an office behind one NAT address is many real users; small enough that one machine
#: cannot take every slot. 0 disables the limit (load tests on loopback).
DEFAULT_MAX_PER_ADDRESS = 256
#: A refused connection is logged at most once per address per this many seconds, with a
#: count of the ones not logged, so a connection flood cannot flood the log too.
REFUSAL_LOG_INTERVAL = 10.0
#: One recv per readable event: 64 KiB holds hundreds of chat lines, so a busy client is
#: served in one system call while the others still get their turn.
RECV_SIZE = 65536
#: Accepting in bursts keeps a login storm from starving established clients or vice versa.
ACCEPT_BATCH = 256
#: Output queues up to this size are joined into one buffer for send(); larger ones use
#: sendmsg() scatter/gather so a big ONLINE_USERS list shared by many clients is never copied.
JOIN_MAX = 64 * 1024
IOV_MAX = 1024
#: How often coalesced lists, idle timeouts and closing deadlines are looked at.
TICK = 0.05
#: How long a graceful close waits for the peer to read its last lines and answer our FIN.
CLOSE_GRACE = 2.0
#: TCP keepalive: a peer that vanished (power cut, cable pulled) is detected in about
#: KEEPIDLE + KEEPCNT × KEEPINTVL seconds even if the idle timeout is off.
KEEPIDLE, KEEPINTVL, KEEPCNT = 60, 10, 3

_WAKER = object()


class _Listener:
    """A listening socket and the dialect its connections speak."""

    __slots__ = ("sock", "dialect", "address")

    def __init__(self, sock: socket.socket, dialect: Dialect) -> None:
        self.sock = sock
        self.dialect = dialect
        self.address: tuple = sock.getsockname()[:2]


class _Conn:
    """Socket-side state of one client: the socket, its output queue and closing state."""

    __slots__ = ("cid", "sock", "peer", "addr", "out", "out_len", "aligned", "want_write",
                 "closing", "fin_sent", "deadline", "dead", "handshaking", "sent_total",
                 "list_end", "list_len")

    def __init__(self, cid: int, sock: socket.socket, peer: str, addr: str,
                 handshaking: bool) -> None:
        self.cid = cid
        self.sock = sock
        self.peer = peer
        self.addr = addr  # address_key() of the peer: what per-address limits count
        self.out: list[bytes | memoryview] = []
        self.out_len = 0
        self.aligned = True  # the queued output starts at a line boundary
        self.want_write = False
        self.closing: str | None = None
        self.fin_sent = False
        self.deadline = 0.0
        self.dead = False
        self.handshaking = handshaking
        # An ONLINE_USERS list in the queue does not count against max_output (see
        # ChatServer._list_unsent): its position in the byte stream is kept here.
        self.sent_total = 0
        self.list_end = 0
        self.list_len = 0


def format_peer(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_key(host: str) -> str:
    """What counts as "one address" for limits: the IPv4 address, or the IPv6 /64 (one
    subscriber usually gets a whole /64, so counting single IPv6 addresses limits nothing);
    an IPv4-mapped IPv6 address (a dual-stack listener) counts as its IPv4 address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6:
        mapped = ip.ipv4_mapped  # type: ignore[union-attr]
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class ChatServer:
    """A chat server; :meth:`serve_forever` runs it in the calling thread.

    It listens for the native line protocol on ``host:port`` and, with ``irc_port`` (0
    picks a free port), for IRC on ``host:irc_port``; ``native=False`` leaves only the IRC
    listener (a pure IRC daemon). Every listener feeds the same :class:`ChatCore`, so users
    of both dialects share one roster, one set of rules and one log; TLS (``ssl_context``)
    applies to every listener.

    Thread-safety: only :meth:`request_shutdown` may be called from another thread (or a
    signal handler); everything else belongs to the thread running the loop.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        limits: Limits | None = None,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_per_address: int = DEFAULT_MAX_PER_ADDRESS,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 4096,
        sndbuf: int = 0,
        irc_port: int | None = None,
        native: bool = True,
        reuse_port: bool = False,
        cluster: Engine | None = None,
        observer: Callable[[str, int, dict], None] | None = None,
    ) -> None:
        self.core = ChatCore(limits, clustered=cluster is not None)
        #: The cluster shell (``--cluster``): None on a single server, which then never
        #: imports the cluster package.
        self.cluster = None
        if cluster is not None:
            from tcplab.chat.cluster.node import ClusterNode

            self.cluster = ClusterNode(self.core, cluster)
        #: Called on the loop's thread with ``(event, conn, fields)`` for everything that is
        #: logged (whatever the log level), plus a ``stats`` event once a second; a GUI
        #: passes a function that only puts onto a queue, so it must never block.
        self.observer = observer
        self.max_clients = max_clients
        self.max_output = max_output
        self.max_per_address = max_per_address
        # Kernel send buffer per client (SO_SNDBUF); 0 leaves it to the kernel's autotuning,
        # which on loopback grows to megabytes, so a stalled reader takes long to notice.
        self.sndbuf = sndbuf
        self._per_address: dict[str, int] = {}
        self._refusals: dict[str, list] = {}  # address -> [next log time, not logged]
        self._calls: deque[tuple] = deque()  # call_soon_threadsafe() requests
        self.ssl_context = ssl_context
        self._conns: dict[int, _Conn] = {}
        self._dirty: set[_Conn] = set()
        self._closing: set[_Conn] = set()
        # Outputs waiting to be carried out (see _apply): a worklist instead of recursion.
        self._backlog: deque[Iterable[tuple[int, bytes | Close]]] = deque()
        self._applying = False
        self._next_id = 1
        self._stop = threading.Event()
        self._stopping = False
        self._sel = selectors.DefaultSelector()
        if not native and irc_port is None:
            raise ValueError("a server without the native listener needs irc_port")
        self._listeners: list[_Listener] = []
        try:
            if native:
                self._listeners.append(_Listener(self._listen(host, port, backlog, reuse_port),
                                                 NATIVE))
            if irc_port is not None:
                from tcplab.chat.irc import IrcDialect

                created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
                self._listeners.append(_Listener(self._listen(host, irc_port, backlog, reuse_port),
                                                 IrcDialect(created)))
        except BaseException:
            for lst in self._listeners:
                lst.sock.close()
            raise
        #: The native listener's address (the IRC one's with ``native=False``).
        self.address: tuple = self._listeners[0].address
        #: The IRC listener's address, or None.
        self.irc_address: tuple | None = (self._listeners[-1].address
                                          if irc_port is not None else None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        for lst in self._listeners:
            self._sel.register(lst.sock, selectors.EVENT_READ, lst)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKER)
        self.ready = threading.Event()

    # -- setup ---------------------------------------------------------------------------

    @staticmethod
    def _listen(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise EnvironmentProblem(f"cannot resolve --host {host!r}: {exc.strerror}") from None
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # several processes share the port; the kernel spreads connections
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and host in ("::", ""):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # also serve IPv4
            sock.bind(addr)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise EnvironmentProblem(
                f"cannot listen on {format_peer(addr)}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        return sock

    # -- public control ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.address[1]

    def request_shutdown(self) -> None:
        """Ask the loop to tell every client and close cleanly (safe from any thread or signal handler)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def client_count(self) -> int:
        return len(self._conns)

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run ``fn(*args)`` on the loop's thread between two iterations and return a future
        for its result: the one safe way for another thread (a test, a monitoring window)
        to look at the server's state while it runs."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._calls.append((fn, args, future))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        return future

    def connections_from(self, host: str) -> int:
        """Connections now open from ``host`` as the per-address limit counts them."""
        return self._per_address.get(address_key(host), 0)

    def _run_calls(self) -> None:
        while self._calls:
            fn, args, future = self._calls.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except Exception as exc:  # handed to the caller, never raised here
                    future.set_exception(exc)

    # -- the loop ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until :meth:`request_shutdown`; then say goodbye to every client and return."""
        for lst in self._listeners:
            self._event("listening", 0, {"address": format_peer(lst.address),
                                         "dialect": lst.dialect.name,
                                         "tls": self.ssl_context is not None,
                                         "max_clients": self.max_clients})
        cluster = self.cluster
        if cluster is not None:
            cluster.engine.attach(self._sel)
        self.ready.set()
        sel = self._sel
        next_tick = 0.0
        next_idle = 0.0
        stop_deadline = None
        try:
            while True:
                events = sel.select(TICK)
                now = time.monotonic()
                for key, mask in events:
                    conn = key.data
                    if conn.__class__ is _Conn:
                        if conn.dead:
                            continue
                        try:
                            if conn.handshaking:
                                self._handshake(conn, now)
                                continue
                            if mask & selectors.EVENT_READ:
                                self._read(conn, now)
                            if mask & selectors.EVENT_WRITE and not conn.dead:
                                self._dirty.add(conn)
                        except Exception:
                            # A bug triggered by one client must cost that client only.
                            self._internal_error(conn)
                    elif conn.__class__ is _Listener:
                        try:
                            self._accept(conn, now)
                        except Exception:
                            log.exception("internal error while accepting")
                    elif conn is _WAKER:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:  # a cluster engine's socket
                        try:
                            conn.on_ready(mask)
                        except Exception:
                            log.exception("internal error in the cluster link")
                if cluster is not None:
                    try:
                        self._apply(cluster.pump(now))
                    except Exception:  # a bug in the cluster shell must not stop local chat
                        log.exception("internal error in the cluster shell")
                if self._stop.is_set() and stop_deadline is None:
                    stop_deadline = now + CLOSE_GRACE
                    self._begin_shutdown()
                if now >= next_tick:
                    next_tick = now + TICK
                    try:
                        self._tick(now, now >= next_idle)
                    except Exception:
                        log.exception("internal error in the periodic work")
                    if now >= next_idle:
                        next_idle = now + 1.0
                        if self.observer is not None:
                            self._stats()
                self._flush()
                self._log_notes()
                if self._calls:
                    self._run_calls()
                if stop_deadline is not None and (now >= stop_deadline or all(
                        c.fin_sent and not c.out for c in self._conns.values())):
                    break
        finally:
            for conn in list(self._conns.values()):
                self._drop(conn, "shutdown", tell=False)
            if cluster is not None:
                cluster.close()  # releases this node's names before the process goes
            self._log_notes()
            for s in (*(lst.sock for lst in self._listeners), self._wake_r, self._wake_w):
                with contextlib.suppress(Exception):
                    self._sel.unregister(s)
                s.close()
            self._sel.close()
            while self._calls:  # asked too late: the loop is gone
                self._calls.popleft()[2].cancel()
            self._event("stopped", 0, {})

    def _tick(self, now: float, idle: bool) -> None:
        core = self.core
        if self.cluster is not None:
            self._apply(self.cluster.tick(now))
        self._apply(core.due_lists(now, self._drained))
        self._apply(core.timers(now))
        if idle:
            self._apply(core.idle(now))
            if len(self._refusals) > 1024:
                self._refusals = {k: v for k, v in self._refusals.items() if v[0] > now}
        self._expire_closing(now)

    def _internal_error(self, conn: _Conn) -> None:
        log.exception("internal error conn=%d: dropping it", conn.cid)
        with contextlib.suppress(Exception):
            self._drop(conn, "internal error", tell=False)
        # Whatever the failed step left half-done must not leave a ghost behind.
        self._conns.pop(conn.cid, None)
        if conn.cid in self.core.sessions:
            with contextlib.suppress(Exception):
                self._apply(self.core.disconnect(conn.cid, "internal error"))

    def _drained(self, cid: int) -> bool:
        conn = self._conns.get(cid)
        return conn is not None and not conn.out

    def _begin_shutdown(self) -> None:
        self._stopping = True
        for lst in self._listeners:
            with contextlib.suppress(Exception):
                self._sel.unregister(lst.sock)
            lst.sock.close()
        self._event("shutdown", 0, {"clients": len(self._conns)})
        self._apply(self.core.close_all())

    # -- accepting -----------------------------------------------------------------------

    def _accept(self, lst: _Listener, now: float) -> None:
        listener = lst.sock
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE/ENFILE: out of descriptors; keep serving the others
                self._event("accept_failed", 0, {"error": exc.strerror or str(exc)})
                return
            peer = format_peer(addr)
            key = address_key(addr[0])
            if len(self._conns) >= self.max_clients:
                self._refuse(sock, peer, key, now, "server full",
                             f"Server full ({self.max_clients} clients); try later.", lst.dialect,
                             Code.SERVER_FULL)
                continue
            per_address = self._per_address.get(key, 0)
            if self.max_per_address and per_address >= self.max_per_address:
                self._refuse(sock, peer, key, now, "too many connections from this address",
                             f"Too many connections from your address ({self.max_per_address}); "
                             "try later.", lst.dialect, Code.TOO_MANY_FROM_ADDRESS)
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPIDLE)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPINTVL)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPCNT)
                if self.sndbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            handshaking = False
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                    do_handshake_on_connect=False)
                handshaking = True
            cid = self._next_id
            self._next_id += 1
            conn = _Conn(cid, sock, peer, key, handshaking)
            self._conns[cid] = conn
            self._per_address[key] = per_address + 1
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self._event("connect", cid, {"peer": peer, "clients": len(self._conns)}
                        | ({"dialect": lst.dialect.name} if lst.dialect is not NATIVE else {}))
            self._apply(self.core.connect(cid, now, key, lst.dialect))
            if handshaking:
                self._handshake(conn, now)

    def _refuse(self, sock: socket.socket, peer: str, key: str, now: float, reason: str,
                text: str, dialect: Dialect, code: int) -> None:
        """Turn a connection away at once; the reason goes to the peer in its listener's
        dialect (native: uncoded, nothing was negotiated yet) and to the log, at most once
        per address per interval."""
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            if self.ssl_context is None:
                sock.send(dialect.system(None, code, text))
        sock.close()
        entry = self._refusals.get(key)
        if entry is not None and now < entry[0]:
            entry[1] += 1
            return
        fields = {"peer": peer, "reason": reason}
        if entry is not None and entry[1]:
            fields["not_logged"] = entry[1]
        self._refusals[key] = [now + REFUSAL_LOG_INTERVAL, 0]
        self._event("refused", 0, fields)

    def _release_address(self, conn: _Conn) -> None:
        count = self._per_address.get(conn.addr, 0) - 1
        if count > 0:
            self._per_address[conn.addr] = count
        else:
            self._per_address.pop(conn.addr, None)

    def _handshake(self, conn: _Conn, now: float) -> None:
        try:
            conn.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._want(conn, False)
            return
        except ssl.SSLWantWriteError:
            self._want(conn, True)
            return
        except (ssl.SSLError, OSError) as exc:
            self._drop(conn, f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        conn.handshaking = False
        self._want(conn, bool(conn.out))
        self._read(conn, now)  # application data may already sit in the TLS buffer

    def _want(self, conn: _Conn, write: bool) -> None:
        if conn.want_write != write:
            conn.want_write = write
            events = selectors.EVENT_READ | selectors.EVENT_WRITE if write else selectors.EVENT_READ
            self._sel.modify(conn.sock, events, conn)

    # -- reading -------------------------------------------------------------------------

    def _read(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                self._want(conn, True)
                return
            except ConnectionResetError:
                self._drop(conn, "connection reset")
                return
            except TimeoutError:
                self._drop(conn, "keepalive timeout")
                return
            except (ssl.SSLError, OSError) as exc:
                self._drop(conn, f"receive failed: {exc}")
                return
            if not data:
                self._drop(conn, "closed by client" if not conn.closing else conn.closing)
                return
            if conn.closing is None:
                self._apply(self.core.receive(conn.cid, data, now))
            if self.ssl_context is None or conn.dead or not sock.pending():  # type: ignore[attr-defined]
                return

    # -- writing -------------------------------------------------------------------------

    def _apply(self, outputs: Iterable[tuple[int, bytes | Close]]) -> None:
        """Carry out the core's outputs, and everything they cause, without recursing.

        Delivering a line can overflow a slow consumer; dropping it makes the core tell
        the others it left (and the senders what was lost), which can overflow the next
        one, and so on. Those consequences go on a worklist processed here in order, so a
        cascade of hundreds of drops costs a loop, never a deeper stack: each connection is
        dropped exactly once and the roster never disagrees with the sockets.
        """
        self._backlog.append(outputs)
        if self._applying:
            return  # the outer call is working through the backlog
        self._applying = True
        backlog = self._backlog
        try:
            while backlog:
                self._deliver(backlog.popleft())
        finally:
            self._applying = False

    def _deliver(self, outputs: Iterable[tuple[int, bytes | Close]]) -> None:
        conns = self._conns  # dropped connections leave this dict at once
        mark_dirty = self._dirty.add
        limit = self.max_output
        for cid, item in outputs:
            conn = conns.get(cid)
            if conn is None:
                if self.cluster is not None and isinstance(item, CLUSTER_ACTIONS):
                    self._apply(self.cluster.act(cid, item))  # e.g. Release of a dropped client
                continue
            cls = item.__class__
            if cls is bytes:
                queued = conn.out_len
                total = queued + len(item)  # type: ignore[arg-type]
                if total > limit and queued and total - self._list_unsent(conn) > limit:
                    # Full only if the kernel will not take it either: a burst bigger than
                    # the limit, produced in one go for a client that reads, is not slowness.
                    if not conn.handshaking:
                        self._write(conn)
                        if conn.dead:
                            continue
                        queued = conn.out_len
                        total = queued + len(item)  # type: ignore[arg-type]
                    if total > limit and queued and total - self._list_unsent(conn) > limit:
                        self._overflow(conn, item)  # type: ignore[arg-type]
                        continue
                if not conn.fin_sent:
                    conn.out.append(item)  # type: ignore[arg-type]
                    conn.out_len = total
                    mark_dirty(conn)
                elif not self._stopping:
                    # Our FIN is out: nothing more can reach this client; tell the sender.
                    self._apply(self.core.undelivered(cid, item))  # type: ignore[arg-type]
            elif cls is ListLine:
                self._queue_list(conn, item)  # type: ignore[arg-type]
            elif cls is Close:
                self._close(conn, item.reason)  # type: ignore[union-attr]
            elif self.cluster is not None:
                more = self.cluster.act(cid, item)
                if more:  # a relay usually answers nothing: skip the worklist round trip
                    self._apply(more)

    def _list_unsent(self, conn: _Conn) -> int:
        """Bytes of the queued ONLINE_USERS list not yet sent (0 when none is queued)."""
        sent = conn.sent_total
        start = conn.list_end - conn.list_len
        return max(0, conn.list_end - (sent if sent > start else start))

    def _queue_list(self, conn: _Conn, line: bytes) -> None:
        """An online list is queued in order but outside the slow-consumer limit: with
        10,000 long names it is larger than the limit, yet a client that reads at a normal
        pace must never be dropped for it. At most one list is in a queue at a time; a
        second one (``/users`` twice, or a list while one is still going out) is left to
        the core, which sends the then-current list as soon as this queue has drained."""
        if conn.fin_sent:
            return
        if conn.list_end > conn.sent_total:
            self.core.defer_list(conn.cid)
            return
        conn.out.append(line)
        conn.out_len += len(line)
        conn.list_end = conn.sent_total + conn.out_len
        conn.list_len = len(line)
        self._dirty.add(conn)

    def _flush(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            for conn in dirty:
                if not conn.dead and not conn.handshaking:
                    try:
                        self._write(conn)
                    except Exception:
                        self._internal_error(conn)

    def _write(self, conn: _Conn) -> None:
        out = conn.out
        if out:
            sock = conn.sock
            try:
                if len(out) == 1:
                    sent = sock.send(out[0])
                elif conn.out_len <= JOIN_MAX:
                    # Small pieces: one copy is cheaper than building an iovec.
                    out = conn.out = [b"".join(out)]
                    sent = sock.send(out[0])
                elif self.ssl_context is not None:
                    # TLS has no sendmsg(): join only a record's worth of the queue so a
                    # large list is not copied again for every 16 KiB record.
                    n = 1
                    size = len(out[0])
                    while size < JOIN_MAX and n < len(out):
                        size += len(out[n])
                        n += 1
                    if n > 1:
                        out[:n] = [b"".join(out[:n])]
                    sent = sock.send(out[0])
                else:
                    # Large queues (lists of thousands of names) go out without copying.
                    sent = sock.sendmsg(out[:IOV_MAX])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                sent = 0
            except OSError as exc:
                self._drop(conn, f"send failed: {exc.strerror or exc}")
                return
            conn.sent_total += sent
            if sent == conn.out_len:
                out.clear()
                conn.out_len = 0
                conn.aligned = True
            else:
                conn.out_len -= sent
                i = 0
                while sent >= len(out[i]):
                    sent -= len(out[i])
                    i += 1
                if sent:
                    conn.aligned = out[i][sent - 1] == 10
                    out[i] = memoryview(out[i])[sent:]
                elif i:
                    conn.aligned = True  # every queued piece is whole lines
                del out[:i]
                self._want(conn, True)
                return
        self._want(conn, False)
        if conn.closing is not None and not conn.fin_sent:
            self._send_fin(conn)

    def _overflow(self, conn: _Conn, item: bytes) -> None:
        pending = b"".join(conn.out) + item
        if not conn.aligned:
            cut = pending.find(b"\n")
            pending = pending[cut + 1:]
        self._event("slow_consumer", conn.cid, {"peer": conn.peer, "queued": conn.out_len,
                                                "limit": self.max_output})
        conn.out.clear()
        conn.out_len = 0
        undelivered = self.core.undelivered(conn.cid, pending)
        self._drop(conn, "slow consumer: output buffer full", tell=False)
        self._apply(undelivered)

    # -- closing -------------------------------------------------------------------------

    def _close(self, conn: _Conn, reason: str) -> None:
        """Graceful close: send what is queued, then FIN, then wait (bounded) for the peer's FIN."""
        if conn.closing is not None:
            return
        conn.closing = reason
        conn.deadline = time.monotonic() + CLOSE_GRACE
        self._closing.add(conn)
        self._dirty.add(conn)

    def _send_fin(self, conn: _Conn) -> None:
        conn.fin_sent = True
        try:
            if isinstance(conn.sock, ssl.SSLSocket):
                conn.sock.unwrap()
            conn.sock.shutdown(socket.SHUT_WR)
        except (ssl.SSLError, OSError, ValueError):
            self._drop(conn, conn.closing or "closed")

    def _expire_closing(self, now: float) -> None:
        if not self._closing:
            return
        for conn in list(self._closing):
            if conn.dead:
                self._closing.discard(conn)
            elif now >= conn.deadline:
                self._drop(conn, conn.closing or "closed")

    def _drop(self, conn: _Conn, reason: str, *, tell: bool = True) -> None:
        """Forget a connection at once (RST, EOF, overflow, deadline) and update everyone else.

        The bookkeeping comes first and cannot fail half-way: the connection leaves the
        socket table and the core's roster in the same call, so no nickname outlives its
        socket. What the others must be told is handed to the worklist (see _apply).
        """
        if conn.dead:
            return
        conn.dead = True
        self._closing.discard(conn)
        self._dirty.discard(conn)
        self._conns.pop(conn.cid, None)
        self._release_address(conn)
        with contextlib.suppress(Exception):
            self._sel.unregister(conn.sock)
        with contextlib.suppress(Exception):
            conn.sock.close()
        undelivered: list = []
        if tell and conn.out and not self._stopping:
            pending = b"".join(conn.out)
            if not conn.aligned:
                pending = pending[pending.find(b"\n") + 1:]
            undelivered = self.core.undelivered(conn.cid, pending)
        conn.out = []
        conn.out_len = 0
        self._event("disconnect", conn.cid, {"peer": conn.peer, "reason": reason,
                                             "clients": len(self._conns)})
        left = self.core.disconnect(conn.cid, reason)
        if not self._stopping:
            if undelivered:
                self._apply(undelivered)
            if left:
                self._apply(left)

    def _log_notes(self) -> None:
        notes = self.core.notes
        if notes:
            if log.isEnabledFor(logging.INFO) or self.observer is not None:
                for note in notes:
                    self._event(note.event, note.conn, note.fields)
            notes.clear()

    def _event(self, event: str, conn: int, fields: dict, *, log_it: bool = True) -> None:
        if log_it:
            _log(event, conn, fields)
        if self.observer is not None:
            try:
                self.observer(event, conn, fields)
            except Exception:  # a broken observer must not cost a client its connection
                log.exception("observer failed on %s", event)

    def _stats(self) -> None:
        """Per-user message counters for a console (the observer's ``stats``; never logged)."""
        core = self.core
        sent = {s.conn: s.messages for s in core.users.values()}
        self._event("stats", 0, {"sent": sent, "routed": core.routed_departed + sum(sent.values())},
                    log_it=False)


def format_event(event: str, conn: int, fields: dict) -> str:
    """One structured line per event: ``event conn=N key=value ...`` with values repr()'d so
    peer-chosen text (nicknames) can never forge a log line or carry terminal escapes."""
    parts = [event] + ([f"conn={conn}"] if conn else [])
    for k, v in fields.items():
        parts.append(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}")
    return " ".join(parts)


def _log(event: str, conn: int, fields: dict) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(format_event(event, conn, fields))


def make_server_ssl_context(cert: str, key: str | None) -> ssl.SSLContext:
    """TLS for use beyond loopback: the stdlib's defaults (TLS 1.2+) with our certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        from tcplab.errors import InputError

        raise InputError(f"TLS certificate or key not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        from tcplab.errors import InputError

        raise InputError(f"cannot load TLS certificate {cert!r} / key {key!r}: {exc}") from None
    return ctx


__all__ = ["ChatServer", "Limits", "Note", "format_event", "make_server_ssl_context", "address_key", "DEFAULT_HOST",
           "DEFAULT_PORT", "DEFAULT_IRC_PORT"]
