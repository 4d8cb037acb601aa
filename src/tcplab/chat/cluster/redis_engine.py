"""The cluster engine on Redis (or Valkey): RESP over two non-blocking sockets in the node's loop.

One connection carries commands (pipelined; replies come back in order and are matched to
callbacks), the other is subscribed to two channels: ``<ns>all`` (presence deltas and
broadcasts, one publish per change) and ``<ns>to:<node>`` (private messages for this
node's users, undeliverable notices, lost-lease notices). Both sockets are registered in
the chat server's selector and serviced by :meth:`RedisLink.on_ready`, so Redis latency
only delays cross-node traffic, never local users. Output toward Redis is bounded
(:data:`MAX_OUTPUT`, :data:`MAX_PENDING`): past that, sends fail with :data:`LINK_BUSY`
instead of growing memory.

Liveness without keyspace notifications: each node refreshes ``node:<id>`` (TTL
:data:`NODE_TTL`) every :data:`HEARTBEAT`; every :data:`SWEEP_EVERY` one node (under a
``SET NX`` lock) runs the sweep script, which removes the users of nodes whose key expired.
After a reconnect the node re-subscribes, re-claims its users' leases (the earlier login
wins a conflict), re-reads the presence snapshot and replays the deltas that arrived while
the snapshot was in flight.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tcplab.chat.cluster import scripts
from tcplab.chat.cluster.engine import (
    LINK_BUSY,
    LINK_DOWN,
    LINK_LOST_IN_FLIGHT,
    Broadcast,
    BroadcastUndelivered,
    Claimed,
    Deliveries,
    Engine,
    Event,
    Joined,
    Left,
    LinkChanged,
    Member,
    Revoked,
    Roster,
    Undelivered,
    node_name_problem,
)
from tcplab.chat.cluster.resp import RespError, RespParser, RespProtocolError, encode
from tcplab.chat.protocol import LEAVE_REASON
from tcplab.errors import EnvironmentProblem, InputError

log = logging.getLogger("tcplab.chat.cluster")

#: A node whose heartbeat key is older than this is dead; its users are swept.
NODE_TTL = 5.0
HEARTBEAT = 1.0
SWEEP_EVERY = 1.0
#: Nickname lease lifetime and renewal period. Leases of a dead node are removed by the sweep
#: long before they expire; the TTL only matters when Redis loses touch with the owner.
LEASE_TTL = 30.0
RENEW_EVERY = 10.0
#: Reconnect backoff: first retry, growth, ceiling (with ±20 % jitter).
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
CONNECT_TIMEOUT = 3.0
#: A link whose oldest unanswered command (or, for the subscriber, last byte) is older than
#: this is considered dead even without a FIN or RST (a hung Redis or a silent partition).
LINK_TIMEOUT = NODE_TTL
#: Bounds on what is queued toward Redis per connection.
MAX_OUTPUT = 8 * 1024 * 1024
MAX_PENDING = 200_000
#: One read per loop iteration: a large reply (a presence snapshot of 100,000 users is ~5 MB)
#: is parsed a slice at a time, with local users served in between.
RECV_SIZE = 128 * 1024
#: A batch of cross-node messages is published early once it holds this many bytes.
BATCH_BYTES = 256 * 1024
#: Users re-claimed per HOLD script call, so one call never blocks Redis for long.
HOLD_BATCH = 500
#: Bound for the kill -9 of a node: its key expires, the next sweep removes its users.
DEAD_NODE_BOUND = NODE_TTL + SWEEP_EVERY + HEARTBEAT

LINK_LOST = RespError("LINKLOST connection to Redis lost")


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]`` → address; clear errors for typos."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise InputError(f"--cluster {url!r}: expected redis://host[:port][/db]"
                         " (rediss:// and unix sockets are not supported)")
    try:
        port = parts.port or 6379
    except ValueError:
        raise InputError(f"--cluster {url!r}: the port is not a number in 1-65535") from None
    host = parts.hostname
    if not host:
        raise InputError(f"--cluster {url!r}: no host")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise InputError(f"--cluster {url!r}: the database must be a number, e.g. /0")
    return RedisAddress(host, port, int(path or 0), unquote(parts.username) if parts.username else None,
                        unquote(parts.password) if parts.password is not None else None)


def _auth_commands(addr: RedisAddress) -> list[tuple]:
    cmds: list[tuple] = []
    if addr.password is not None:
        cmds.append(("AUTH", addr.username, addr.password) if addr.username
                    else ("AUTH", addr.password))
    if addr.db:
        cmds.append(("SELECT", addr.db))
    return cmds


class RedisLink:
    """One non-blocking connection to Redis, serviced from the owner's selector."""

    def __init__(self, addr: RedisAddress, name: str, on_push: Callable[[object], None] | None,
                 on_open: Callable[[], None], on_down: Callable[[str], None]) -> None:
        self.addr = addr
        self.name = name
        #: (family, sockaddr), set by the start-up check so reconnecting never resolves.
        self.resolved: tuple | None = None
        self.on_push = on_push
        self.on_open = on_open
        self.on_down = on_down
        self.sock: socket.socket | None = None
        self.sel: selectors.BaseSelector | None = None
        self.state = "closed"  # closed | connecting | open
        self.out = bytearray()
        self.pending: deque[tuple[Callable[[object], None] | None, float]] = deque()
        self.parser = RespParser()
        self.opened_at = 0.0
        self.last_rx = 0.0
        self._writing = False

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, sel: selectors.BaseSelector, now: float) -> None:
        self.sel = sel
        try:
            if self.resolved is None:  # resolved once: a DNS lookup would block the loop
                infos = socket.getaddrinfo(self.addr.host, self.addr.port, type=socket.SOCK_STREAM)
                self.resolved = (infos[0][0], infos[0][4])
            family, sockaddr = self.resolved
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self.on_down(f"cannot resolve {self.addr.host}: {exc}")
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self.on_down(f"connect to {self.addr.host}:{self.addr.port}: {os.strerror(err)}")
            return
        self.sock = sock
        self.state = "connecting"
        self.opened_at = self.last_rx = now
        self.out.clear()
        self.pending.clear()
        self.parser = RespParser()
        self._writing = True
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)
        for cmd in _auth_commands(self.addr):
            self.command(cmd, _expect_ok(self, cmd[0]), force=True)

    def fail(self, reason: str) -> None:
        """Drop the connection; every command still waiting is answered with LINK_LOST."""
        if self.state == "closed":
            return
        self.state = "closed"
        if self.sock is not None:
            if self.sel is not None:
                with contextlib.suppress(Exception):
                    self.sel.unregister(self.sock)
            self.sock.close()
            self.sock = None
        self.out.clear()
        pending, self.pending = self.pending, deque()
        for cb, _ in pending:
            if cb is not None:
                cb(LINK_LOST)
        self.on_down(reason)

    # -- commands ------------------------------------------------------------------------

    def command(self, args: tuple, cb: Callable[[object], None] | None = None, *,
                force: bool = False) -> bool:
        """Queue one command; False (and nothing queued) when closed or over the bounds."""
        if self.state == "closed":
            return False
        if not force and (len(self.out) > MAX_OUTPUT or len(self.pending) >= MAX_PENDING):
            return False
        self.out += encode(*args)
        if self.on_push is None or cb is not None:
            self.pending.append((cb, time.monotonic()))
        if self.state == "open":
            self._want_write()
        return True

    @property
    def busy(self) -> bool:
        return len(self.out) > MAX_OUTPUT or len(self.pending) >= MAX_PENDING

    def _want_write(self) -> None:
        if not self._writing and self.sock is not None and self.sel is not None:
            self._writing = True
            self.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    # -- I/O -----------------------------------------------------------------------------

    def on_ready(self, mask: int) -> None:
        """Selector callback: finish connecting, read replies, write queued commands."""
        if self.sock is None:
            return
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(f"connect to {self.addr.host}:{self.addr.port}: {os.strerror(err)}")
                return
            if not mask & selectors.EVENT_WRITE:
                return
            self.state = "open"
            self.last_rx = time.monotonic()
            self.on_open()
            if self.state != "open":
                return
        if mask & selectors.EVENT_READ:
            self._read()
        if self.state == "open" and self.sock is not None and (mask & selectors.EVENT_WRITE or self.out):
            self._write()

    def _read(self) -> None:
        """One recv per wake-up (the selector is level-triggered and comes back for more)."""
        if self.sock is None:
            return
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(f"receive from Redis failed: {exc.strerror or exc}")
            return
        if not data:
            self.fail("Redis closed the connection")
            return
        self.last_rx = time.monotonic()
        try:
            replies = self.parser.feed(data)
        except RespProtocolError as exc:
            self.fail(f"bad reply from Redis: {exc}")
            return
        for reply in replies:
            if self.pending:
                cb, _ = self.pending.popleft()
                if cb is not None:
                    cb(reply)
            elif self.on_push is not None:
                self.on_push(reply)
            else:
                self.fail("reply from Redis without a command")
                return
            if self.state != "open":
                return

    def _write(self) -> None:
        sock = self.sock
        while self.out and sock is not None:
            try:
                sent = sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.fail(f"send to Redis failed: {exc.strerror or exc}")
                return
            del self.out[:sent]
        if not self.out and self._writing and self.sock is not None and self.sel is not None:
            self._writing = False
            self.sel.modify(self.sock, selectors.EVENT_READ, self)

    def check_timeouts(self, now: float) -> None:
        if self.state == "connecting" and now - self.opened_at > CONNECT_TIMEOUT:
            self.fail(f"no connection to {self.addr.host}:{self.addr.port} within {CONNECT_TIMEOUT:g} s")
        elif self.state == "open":
            if self.pending and now - max(self.pending[0][1], self.last_rx) > LINK_TIMEOUT:
                self.fail(f"Redis did not answer for {LINK_TIMEOUT:g} s")
            elif self.on_push is not None and now - self.last_rx > LINK_TIMEOUT:
                self.fail(f"nothing from Redis for {LINK_TIMEOUT:g} s")


def _expect_ok(link: RedisLink, what: str) -> Callable[[object], None]:
    def cb(reply: object) -> None:
        if isinstance(reply, RespError) and reply is not LINK_LOST:
            link.fail(f"Redis refused {what}: {reply.message}")
    return cb


def _split(payload: bytes, n: int) -> list[bytes] | None:
    parts = payload.split(b"\n", n - 1)
    return parts if len(parts) == n else None


class RedisEngine(Engine):
    """A cluster node on Redis; see the module docstring for the design."""

    def __init__(self, url: str, node: str, *, lease_ttl: float = LEASE_TTL) -> None:
        problem = node_name_problem(node)
        if problem:
            raise InputError(f"--node-name: {problem}")
        self.addr = parse_url(url)
        self.node = node
        self.lease_ttl = lease_ttl
        self.prefix = "tcplab:"
        ns = f"tcplab:{self.addr.db}:"  # pub/sub channels are global, not per database
        self.all_channel = ns + "all"
        self._all_channel_bytes = self.all_channel.encode()
        self.node_prefix = ns + "to:"
        self.my_channel = self.node_prefix + node
        self.presence_key = f"{self.prefix}presence:{node}"  # this node's users
        self.nodes_key = self.prefix + "nodes"
        self.node_key = f"{self.prefix}node:{node}"
        self.incarnation = os.urandom(8).hex()
        self.holds: dict[str, Member] = {}  # this node's users, by key
        self.roster: dict[str, Member] = {}  # other nodes' users, by key
        self._queue: list[Event] = []
        self._up = False
        self._subscribed = 0
        self._syncing = False
        #: Pub/sub input held while a presence snapshot is in flight, in arrival order:
        #: (from the all channel?, payload). Direct messages wait too, or a message from a
        #: user whose join is held would reach the core from an unknown sender and be dropped.
        self._buffered: list[tuple[bool, bytes]] = []
        self._sel: selectors.BaseSelector | None = None
        self._backoff = BACKOFF_MIN
        self._retry_at = 0.0
        self._next_heartbeat = 0.0
        self._next_sweep = 0.0
        self._next_renew = 0.0
        self._down_reason = "not connected yet"
        self._closed = False
        self._failing = False
        # Cross-node messages of the current loop iteration, published together by flush().
        self._direct: dict[str, list[bytes]] = {}  # target node -> formatted messages
        self._bcast: list[bytes] = []
        self._bcast_conns: list[int] = []  # the sender of each batched broadcast
        self._batched = 0
        self._ever_up = False
        self._early: list[Member] = []
        self.cmd = RedisLink(self.addr, "commands", None, self._cmd_open, self._link_down)
        self.sub = RedisLink(self.addr, "subscriber", self._on_push, self._sub_open, self._link_down)
        #: Counters for monitoring and tests.
        self.stats = {"published": 0, "messages": 0, "received": 0, "reconnects": 0, "busy": 0}

    # -- start and stop --------------------------------------------------------------------

    def check(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Blocking start-up check, before the loop runs: Redis answers, the node name is
        free (a previous incarnation's key is waited out), and that incarnation's users are
        purged. Raises EnvironmentProblem (exit 2) with a clear message otherwise."""
        try:
            sock = socket.create_connection((self.addr.host, self.addr.port), timeout=timeout)
            self.cmd.resolved = self.sub.resolved = (sock.family, sock.getpeername())
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot reach Redis at {self.addr}: {exc.strerror or exc} "
                "(start redis-server, or check --cluster)") from None
        parser = RespParser()

        def call(*args: object) -> object:
            sock.sendall(encode(*args))  # type: ignore[arg-type]
            while True:
                data = sock.recv(65536)
                if not data:
                    raise OSError("connection closed by Redis")
                replies = parser.feed(data)
                if replies:
                    return replies[0]

        try:
            sock.settimeout(timeout)
            for cmd in _auth_commands(self.addr):
                reply = call(*cmd)
                if isinstance(reply, RespError):
                    raise EnvironmentProblem(f"Redis at {self.addr} refused {cmd[0]}: {reply.message}")
            reply = call("PING")
            if isinstance(reply, RespError):
                raise EnvironmentProblem(f"Redis at {self.addr} refused PING: {reply.message}")
            deadline = time.monotonic() + NODE_TTL + 1.0
            waited = False
            while call("EXISTS", self.node_key) == 1:
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"node name {self.node!r} is in use by a live node (its heartbeat is "
                        "fresh); choose another --node-name")
                if not waited:
                    log.warning("node_name_busy node=%r waiting up to %.0f s for the previous "
                                "process's heartbeat to expire", self.node, NODE_TTL)
                    waited = True
                time.sleep(0.2)
            reply = call("EVAL", scripts.SWEEP, 1, self.nodes_key, self.prefix, self.all_channel,
                         self.node)
            if isinstance(reply, RespError):
                raise EnvironmentProblem(f"Redis at {self.addr} cannot run Lua scripts: {reply.message}")
            if reply:
                log.info("purged node=%r users=%s (previous incarnation)", self.node, reply)
        except (OSError, RespProtocolError) as exc:
            raise EnvironmentProblem(f"Redis at {self.addr} stopped answering: {exc}") from None
        finally:
            sock.close()

    def attach(self, sel: selectors.BaseSelector) -> None:
        """Start connecting from the node's selector (returns at once)."""
        self._sel = sel
        self._connect(time.monotonic())

    def close(self) -> None:
        """Leave cleanly: release every lease, drop the heartbeat, flush (bounded wait)."""
        self._closed = True
        if self.cmd.state == "open" and self._up:
            for m in list(self.holds.values()):
                self._release_cmd(m)
            self.cmd.command(("DEL", self.node_key))
            self.cmd.command(("SREM", self.nodes_key, self.node))
            sock = self.cmd.sock
            deadline = time.monotonic() + 2.0
            if sock is not None:
                sock.setblocking(True)
                sock.settimeout(0.5)
                with contextlib.suppress(OSError):
                    while self.cmd.out and time.monotonic() < deadline:
                        sent = sock.send(self.cmd.out)
                        del self.cmd.out[:sent]
                    while self.cmd.pending and time.monotonic() < deadline:
                        data = sock.recv(RECV_SIZE)
                        if not data:
                            break
                        for _ in self.cmd.parser.feed(data):
                            if self.cmd.pending:
                                self.cmd.pending.popleft()
        self.holds.clear()
        self.cmd.on_down = self.sub.on_down = lambda reason: None
        self.cmd.fail("closing")
        self.sub.fail("closing")

    # -- connection state ------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    def _connect(self, now: float) -> None:
        assert self._sel is not None
        self._subscribed = 0
        self.cmd.open(self._sel, now)
        if self.cmd.state != "closed":
            self.sub.open(self._sel, now)

    def _cmd_open(self) -> None:
        for name, body in scripts.SCRIPTS.items():
            self.cmd.command(("SCRIPT", "LOAD", body), _expect_ok(self.cmd, f"SCRIPT LOAD {name}"),
                             force=True)
        if self._subscribed == 2:
            self._sync()

    def _sub_open(self) -> None:
        self.sub.command(("SUBSCRIBE", self.all_channel, self.my_channel), force=True)

    def _link_down(self, reason: str) -> None:
        if self._closed or self._failing:
            return
        # Either socket failing takes both down: a node half-connected would miss deltas.
        self._failing = True
        try:
            self.cmd.fail(reason)
            self.sub.fail(reason)
        finally:
            self._failing = False
        self._subscribed = 0
        self._syncing = False
        self._buffered.clear()
        now = time.monotonic()
        self._retry_at = now + self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(BACKOFF_MAX, self._backoff * 2)
        if self._up or self._down_reason != reason:
            log.warning("cluster_down node=%r reason=%r retry_in=%.1f", self.node, reason,
                        self._retry_at - now)
        self._down_reason = reason
        early, self._early = self._early, []
        for m in early:
            self._queue.append(Claimed(m.conn, m.key, False, LINK_DOWN))
        for parts in self._direct.values():
            self._publish_done(parts)(LINK_LOST)
        if self._bcast_conns:
            self._broadcast_done(self._bcast_conns)(LINK_LOST)
        self._direct, self._bcast, self._bcast_conns, self._batched = {}, [], [], 0
        if self._up:
            self._up = False
            self._queue.append(LinkChanged(False, reason))

    def _sync(self) -> None:
        """After (re)connecting: heartbeat, re-claim our leases, snapshot the presence."""
        self._syncing = True
        self._buffered.clear()
        self._heartbeat()
        self._hold(list(self.holds.values()))
        self.cmd.command(("SMEMBERS", self.nodes_key), self._on_nodes, force=True)

    def _on_nodes(self, reply: object) -> None:
        """Read every node's presence hash (plain HGETALLs: Redis answers them in C, far
        faster than a script could gather them); deltas stay buffered until the last one."""
        if not isinstance(reply, list):
            if reply is not LINK_LOST:
                self.cmd.fail(f"presence snapshot failed: {reply!r}")
            return
        ids = [i.decode("utf-8", "replace") for i in reply if isinstance(i, bytes)]
        if not ids:
            self._on_snapshot([])
            return
        parts: list = []
        remaining = [len(ids)]

        def got(hash_reply: object) -> None:
            if not isinstance(hash_reply, list):
                if hash_reply is not LINK_LOST:
                    self.cmd.fail(f"presence snapshot failed: {hash_reply!r}")
                return
            parts.extend(hash_reply)
            remaining[0] -= 1
            if remaining[0] == 0:
                self._on_snapshot(parts)

        for node in ids:
            self.cmd.command(("HGETALL", f"{self.prefix}presence:{node}"), got, force=True)

    def _on_snapshot(self, reply: object) -> None:
        if not isinstance(reply, list):
            if reply is not LINK_LOST:
                self.cmd.fail(f"presence snapshot failed: {reply!r}")
            return
        members: dict[str, Member] = {}
        stray: list[Member] = []
        for i in range(0, len(reply) - 1, 2):
            m = _member(reply[i], reply[i + 1])
            if m is None:
                continue
            if m.node == self.node:
                if self.holds.get(m.key) != m:
                    stray.append(m)  # e.g. a claim answered "lost" while the link dropped
            else:
                members[m.key] = m
        for m in stray:
            self._release_cmd(m)
        self.roster = members
        self._queue.append(Roster(tuple(members.values())))
        self._syncing = False
        buffered, self._buffered = self._buffered, []
        for to_all, payload in buffered:
            (self._on_all if to_all else self._on_direct)(payload)
        self._up = True
        self._ever_up = True
        early, self._early = self._early, []
        for m in early:
            self.claim(m)
        self._backoff = BACKOFF_MIN
        now = time.monotonic()
        self._next_renew = now + RENEW_EVERY
        log.info("cluster_up node=%r redis=%s remote_users=%d", self.node, self.addr, len(members))
        self._queue.append(LinkChanged(True, f"connected to {self.addr}"))

    # -- time-driven work ------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._closed:
            return
        if self.cmd.state == "closed":
            if self._sel is not None and now >= self._retry_at:
                self.stats["reconnects"] += 1
                self._connect(now)
            return
        self.cmd.check_timeouts(now)
        self.sub.check_timeouts(now)
        if not self._up:
            return
        if now >= self._next_heartbeat:
            self._heartbeat()
            self.sub.command(("PING",), force=True)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY * random.uniform(0.9, 1.1)
            self.cmd.command(("SET", self.prefix + "sweep", self.node, "NX", "PX",
                              int(SWEEP_EVERY * 900)), self._on_sweep_lock, force=True)
        if now >= self._next_renew:
            self._next_renew = now + RENEW_EVERY
            self._hold(list(self.holds.values()))

    def _heartbeat(self) -> None:
        self._next_heartbeat = time.monotonic() + HEARTBEAT
        self.cmd.command(("SET", self.node_key, self.incarnation, "PX", int(NODE_TTL * 1000), "GET"),
                         self._on_heartbeat, force=True)
        self.cmd.command(("SADD", self.nodes_key, self.node), force=True)

    def _on_heartbeat(self, reply: object) -> None:
        if reply is None and self._up and self.holds:
            # Our key had expired (a stall or a partition longer than NODE_TTL): another
            # node may have swept our users; put them back (HOLD re-adds what is missing).
            log.warning("heartbeat_gap node=%r: re-announcing %d users", self.node, len(self.holds))
            self._hold(list(self.holds.values()))

    def _on_sweep_lock(self, reply: object) -> None:
        if reply == "OK":
            self._evalsha("sweep", (self.nodes_key,), (self.prefix, self.all_channel, ""),
                          self._on_swept, force=True)

    def _on_swept(self, reply: object) -> None:
        if isinstance(reply, int) and reply:
            log.info("swept users=%d (dead nodes)", reply)

    # -- leases ----------------------------------------------------------------------------

    def _nick_key(self, key: str) -> str:
        return f"{self.prefix}nick:{key}"

    @staticmethod
    def _presence_value(m: Member) -> str:
        return f"{m.token}:{m.since_us}:{m.nick}"

    @staticmethod
    def _join_notice(m: Member) -> str:
        return f"J\n{m.node}\n{m.conn}\n{m.since_us}\n{m.key}\n{m.nick}"

    def claim(self, member: Member) -> None:
        if not self._up:
            if not self._ever_up and len(self._early) < MAX_PENDING:
                # The node has just started and is still making its first connection
                # (milliseconds): such a login waits instead of being refused.
                self._early.append(member)
            else:
                self._queue.append(Claimed(member.conn, member.key, False, LINK_DOWN))
            return

        def done(reply: object) -> None:
            if reply == 1:
                self.holds[member.key] = member
                self._queue.append(Claimed(member.conn, member.key, True))
            elif reply == 0:
                self._queue.append(Claimed(member.conn, member.key, False, "taken", taken=True))
            else:
                self._queue.append(Claimed(member.conn, member.key, False, LINK_DOWN))

        ok = self._evalsha("claim", (self._nick_key(member.key), self.presence_key),
                           (member.token, int(self.lease_ttl * 1000), member.key,
                            self._presence_value(member), self.all_channel, self._join_notice(member)),
                           done)
        if not ok:
            self._queue.append(Claimed(member.conn, member.key, False, LINK_BUSY))

    def release(self, member: Member, reason: str = LEAVE_REASON) -> None:
        if self.holds.get(member.key) == member:
            del self.holds[member.key]
            if self._up:
                self._release_cmd(member, reason)
        # While the link is down the entry stays in Redis; the snapshot after reconnect
        # finds it as a stray entry of this node and releases it then.

    def _release_cmd(self, m: Member, reason: str = LEAVE_REASON) -> None:
        # The reason is the notice's last field: it may hold anything but a line break.
        why = reason.replace("\r", " ").replace("\n", " ")
        self._evalsha("release", (self._nick_key(m.key), self.presence_key),
                      (m.token, m.key, self.all_channel, f"L\n{m.node}\n{m.conn}\n{m.key}\n{why}"),
                      None, force=True)

    def _hold(self, members: list[Member]) -> None:
        for i in range(0, len(members), HOLD_BATCH):
            batch = members[i:i + HOLD_BATCH]
            keys = [self.presence_key] + [self._nick_key(m.key) for m in batch]
            args: list = [int(self.lease_ttl * 1000), self.all_channel, self.node_prefix, self.prefix]
            for m in batch:
                args += [m.token, m.key, self._presence_value(m), self._join_notice(m)]

            def done(reply: object, batch: list[Member] = batch) -> None:
                if not isinstance(reply, list):
                    return  # link lost (re-synced on reconnect) or an error (retried next renew)
                for m, kept in zip(batch, reply, strict=False):
                    if kept == 0 and self.holds.get(m.key) == m:
                        del self.holds[m.key]
                        self._queue.append(Revoked(m.conn, m.key))

            self._evalsha("hold", keys, args, done, force=True)

    def _evalsha(self, name: str, keys: tuple | list, args: tuple | list,
                 cb: Callable[[object], None] | None, *, force: bool = False) -> bool:
        keys, args = tuple(keys), tuple(args)

        def on_reply(reply: object) -> None:
            if isinstance(reply, RespError) and reply.kind == "NOSCRIPT":
                # The script cache was flushed under us: send the body once more.
                if not self.cmd.command(("EVAL", scripts.SCRIPTS[name], len(keys)) + keys + args,
                                        cb, force=True) and cb is not None:
                    cb(LINK_LOST)
                return
            if isinstance(reply, RespError) and reply is not LINK_LOST:
                log.warning("script_failed name=%s error=%r", name, reply.message)
            if cb is not None:
                cb(reply)

        return self.cmd.command(("EVALSHA", scripts.SHA[name], len(keys)) + keys + args, on_reply,
                                force=force)

    # -- messages --------------------------------------------------------------------------

    def locate(self, key: str) -> Member | None:
        return self.roster.get(key)

    def _refusal(self) -> str | None:
        """Why nothing can be relayed now, or None. Checked only when a batch starts: the
        link goes down only through :meth:`_link_down`, which empties the batch, and the
        output toward Redis grows only when a batch is flushed."""
        if not self._up:
            return LINK_DOWN
        if self.cmd.busy:
            self.stats["busy"] += 1
            return LINK_BUSY
        return None

    def send(self, target: Member, sender: bytes, sender_conn: int, text: bytes) -> str | None:
        # The hot path of cross-node traffic: one formatted part per message, nothing else
        # (who sent what is parsed back out of the parts only if the batch is lost).
        if not self._batched:
            why = self._refusal()
            if why is not None:
                return why
        parts = self._direct.get(target.node)
        if parts is None:
            parts = self._direct[target.node] = []
        part = b"%d\n%b\n%b\n%b" % (sender_conn, sender, target.nick.encode(), text)
        parts.append(part)
        self._batched += len(part)
        if self._batched > BATCH_BYTES:
            self.flush()
        return None

    def broadcast(self, sender: bytes, text: bytes, sender_conn: int = 0) -> str | None:
        if not self._batched:
            why = self._refusal()
            if why is not None:
                return why
        part = sender + b"\n" + text
        self._bcast.append(part)
        self._bcast_conns.append(sender_conn)
        self._batched += len(part)
        if self._batched > BATCH_BYTES:
            self.flush()
        return None

    def flush(self) -> None:
        """Publish what this loop iteration produced: one PUBLISH per target node and one
        for broadcasts, however many messages (they all leave before the loop sleeps)."""
        if not self._batched:
            return
        self._batched = 0
        node = self.node.encode()
        direct, self._direct = self._direct, {}
        for target, parts in direct.items():
            payload = b"M\n" + node + b"\n" + b"\n".join(parts)
            self.cmd.command(("PUBLISH", self.node_prefix + target, payload),
                             self._publish_done(parts), force=True)
            self.stats["published"] += 1
            self.stats["messages"] += len(parts)
        if self._bcast:
            payload = b"B\n" + node + b"\n" + b"\n".join(self._bcast)
            self.stats["messages"] += len(self._bcast)
            conns, self._bcast, self._bcast_conns = self._bcast_conns, [], []
            self.cmd.command(("PUBLISH", self.all_channel, payload), self._broadcast_done(conns),
                             force=True)
            self.stats["published"] += 1

    def _publish_done(self, parts: list[bytes]) -> Callable[[object], None]:
        """The answer to one batch's PUBLISH: its senders are told of every message lost
        (no subscriber on the target node's channel, or the link to Redis dropped first)."""
        def done(reply: object) -> None:
            if isinstance(reply, int) and reply > 0:
                return
            why = "its server is gone" if reply == 0 else _lost_because(reply)
            counts: dict[tuple[bytes, bytes], int] = {}
            for part in parts:  # b"<conn>\n<sender>\n<target>\n<text>", as send() made it
                conn, _, target, _ = part.split(b"\n", 3)
                counts[conn, target] = counts.get((conn, target), 0) + 1
            certain = reply is not LINK_LOST
            for (conn, target), n in counts.items():
                self._queue.append(Undelivered(int(conn), target.decode(), n, why, certain))
        return done

    def _broadcast_done(self, conns: list[int]) -> Callable[[object], None]:
        """The answer to a batch of broadcasts: on a failure each sender is told its ``*:``
        reached this node's users only (any count of subscribers is success: this node's
        own counts too, and with no other node there was nobody else to reach)."""
        def done(reply: object) -> None:
            if isinstance(reply, int):
                return
            counts: dict[int, int] = {}
            for conn in conns:
                counts[conn] = counts.get(conn, 0) + 1
            why, certain = _lost_because(reply), reply is not LINK_LOST
            for conn, n in counts.items():
                self._queue.append(BroadcastUndelivered(conn, n, why, certain))
        return done

    def undeliverable(self, origin_node: str, origin_conn: int, target: str, why: str,
                      count: int = 1) -> None:
        if self._up:
            self.cmd.command(("PUBLISH", self.node_prefix + origin_node,
                              f"U\n{origin_conn}\n{count}\n{target}\n{why}"), _ignore)

    def events(self) -> list[Event]:
        out, self._queue = self._queue, []
        return out

    # -- pub/sub input ---------------------------------------------------------------------

    def _on_push(self, reply: object) -> None:
        if not isinstance(reply, list) or len(reply) < 2 or not isinstance(reply[0], bytes):
            if isinstance(reply, RespError):
                self.sub.fail(f"Redis refused SUBSCRIBE: {reply.message}")
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3 and isinstance(reply[2], bytes):
            self.stats["received"] += 1
            to_all = reply[1] == self._all_channel_bytes
            if self._syncing:
                if len(self._buffered) >= MAX_PENDING:
                    self.sub.fail("too much pub/sub input during the presence snapshot")
                    return
                self._buffered.append((to_all, reply[2]))
            elif to_all:
                self._on_all(reply[2])
            else:
                self._on_direct(reply[2])
        elif kind == b"subscribe":
            self._subscribed += 1
            if self._subscribed == 2 and self.cmd.state == "open":
                self._sync()

    def _on_all(self, payload: bytes) -> None:
        kind = payload[:2]
        if kind == b"B\n":
            f = payload.split(b"\n")
            if len(f) < 4 or len(f) % 2:
                return
            origin = f[1].decode("utf-8", "replace")
            if origin != self.node:
                for i in range(2, len(f), 2):
                    self._queue.append(Broadcast(f[i], f[i + 1], origin))
        elif kind == b"J\n":
            f = _split(payload, 6)
            if not f:
                return
            try:
                m = Member(f[4].decode(), f[5].decode(), f[1].decode(), int(f[2]), int(f[3]))
            except (UnicodeDecodeError, ValueError):
                return
            if m.node == self.node:
                return
            old = self.roster.get(m.key)
            if old == m:
                return
            if old is not None:
                self._queue.append(Left(old))
            self.roster[m.key] = m
            self._queue.append(Joined(m))
        elif kind == b"L\n":
            # L, node, conn, key[, reason]: the notices the Lua scripts write for a node's
            # expired users carry no reason.
            f = payload.split(b"\n", 4)
            if len(f) < 4:
                return
            key = f[3].decode("utf-8", "replace")
            old = self.roster.get(key)
            if old is not None and old.token == f"{f[1].decode('utf-8', 'replace')}:{f[2].decode('utf-8', 'replace')}":
                del self.roster[key]
                self._queue.append(Left(old, f[4].decode("utf-8", "replace") if len(f) == 5 else LEAVE_REASON))

    def _on_direct(self, payload: bytes) -> None:
        kind = payload[:2]
        try:
            if kind == b"M\n":
                f = payload.split(b"\n")
                if len(f) < 6 or (len(f) - 2) % 4:
                    return
                self._queue.append(Deliveries(f[1].decode(), list(zip(
                    f[2::4], f[3::4], f[4::4], f[5::4], strict=True))))
            elif kind == b"U\n":
                f = _split(payload, 5)
                if f:
                    self._queue.append(Undelivered(int(f[1]), f[3].decode(), int(f[2]), f[4].decode()))
            elif kind == b"K\n":
                f = _split(payload, 3)
                if f:
                    key = f[2].decode()
                    m = self.holds.get(key)
                    if m is not None and m.conn == int(f[1]):
                        del self.holds[key]
                        self._queue.append(Revoked(m.conn, key))
        except (UnicodeDecodeError, ValueError):
            return

    # -- selector integration --------------------------------------------------------------

    def links(self) -> tuple[RedisLink, RedisLink]:
        return self.cmd, self.sub


def _ignore(reply: object) -> None:
    return None


def _lost_because(reply: object) -> str:
    """Why a PUBLISH that did not succeed lost its messages, for their senders."""
    if reply is LINK_LOST:
        return LINK_LOST_IN_FLIGHT
    if isinstance(reply, RespError):
        return f"Redis refused it ({reply.kind})"
    return LINK_DOWN


def _member(field: object, value: object) -> Member | None:
    if not isinstance(field, bytes) or not isinstance(value, bytes):
        return None
    try:
        node, conn, since, nick = value.decode().split(":", 3)
        return Member(field.decode(), nick, node, int(conn), int(since))
    except (UnicodeDecodeError, ValueError):
        return None
