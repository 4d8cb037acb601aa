"""The cluster engine: what a chat node asks of the cluster, and what the cluster tells it.

A node (one ``tcplab server --cluster ...`` process) owns its local users; the engine is
everything shared between nodes: the nickname leases that keep names unique cluster-wide,
the presence directory (who is online where), and message transport to one node or to all.
The node calls the engine's methods and drains :meth:`Engine.events` for what happened;
no method blocks and none returns a network result directly, so a slow or absent Redis
never stalls the node's event loop. Two implementations: :class:`MemoryEngine` (nodes in one
process sharing a :class:`MemoryHub`: tests and single-process use) and
:class:`tcplab.chat.cluster.redis_engine.RedisEngine`.

Delivery is at most once, like the single server: a message is published once and never
retried; when the engine can tell it was not delivered (the target node is gone, the target
left in between) the sender's node gets :class:`Undelivered`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcplab.chat.protocol import LEAVE_REASON

#: Node names end up in Redis keys, channel names and lease tokens (``node:conn``).
NODE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def node_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a node, or None."""
    if not NODE_NAME_RE.fullmatch(name):
        return (f"node name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-'")
    return None


@dataclass(frozen=True, slots=True)
class Member:
    """One logged-in user somewhere in the cluster."""

    key: str  # nick_key(nick): what uniqueness is decided on
    nick: str
    node: str
    conn: int
    since_us: int  # login time (wall clock, µs): the earlier login wins a conflict

    @property
    def token(self) -> str:
        """The lease value: only the holder of this token may renew or release the name."""
        return f"{self.node}:{self.conn}"

    @property
    def rank(self) -> tuple[int, str]:
        """Cluster-wide login order: the online list's order on every node, and the rule
        that settles a name claimed twice during a partition (the earlier login wins).
        Both parts come from Redis, so every node computes the same order."""
        return (self.since_us, self.token)

    def wins_over(self, other: Member) -> bool:
        """Deterministic conflict rule after a partition: the earlier login keeps the name."""
        return self.rank < other.rank


# --- events the engine hands to the node -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """Answer to :meth:`Engine.claim`: the login may complete (``ok``) or is refused."""

    conn: int
    key: str
    ok: bool
    reason: str = ""  # why not, for the user ("taken", "cluster unavailable")
    taken: bool = False  # refused because another user holds the name


@dataclass(frozen=True, slots=True)
class Joined:
    member: Member  # a user on another node logged in


@dataclass(frozen=True, slots=True)
class Left:
    member: Member  # a user on another node left (or its node died)
    reason: str = LEAVE_REASON  # as the leaving user's node said it (Release.reason)


@dataclass(frozen=True, slots=True)
class Roster:
    """The whole remote roster, replacing what the node knew (after every (re)subscribe)."""

    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Deliveries:
    """Private messages from users on node ``origin_node`` for local users, one batch as it
    arrived. Items are plain tuples of bytes — this is the hot path of cross-node traffic,
    and the core works in bytes — ``(origin_conn digits, sender, target, text)``; the
    target is its exact nickname as the presence directory announced it."""

    origin_node: str
    items: list[tuple[bytes, bytes, bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A ``*:`` message from a user on another node, for every local user."""

    sender: bytes
    text: bytes
    origin_node: str


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Messages from local user ``conn`` to ``target`` were lost (node gone, user gone), or
    — ``certain`` False — may have been: the link dropped before Redis confirmed them."""

    conn: int
    target: str
    count: int
    why: str
    certain: bool = True


@dataclass(frozen=True, slots=True)
class BroadcastUndelivered:
    """``count`` ``*:`` messages of local user ``conn`` reached this node's users only (or,
    ``certain`` False, may have: the link dropped before Redis confirmed them)."""

    conn: int
    count: int
    why: str
    certain: bool = True


@dataclass(frozen=True, slots=True)
class Revoked:
    """Local user ``conn`` lost its nickname to an earlier login (resolved after a partition)."""

    conn: int
    key: str


@dataclass(frozen=True, slots=True)
class LinkChanged:
    up: bool
    reason: str


Event = (Claimed | Joined | Left | Roster | Deliveries | Broadcast | Undelivered
         | BroadcastUndelivered | Revoked | LinkChanged)

#: Why a cross-node operation could not even be attempted (returned by send/broadcast).
LINK_DOWN = "the cluster link (Redis) is down"
LINK_BUSY = "the cluster link (Redis) is overloaded"
#: Why messages already handed to the engine may be lost: the link to Redis dropped before
#: Redis confirmed them (still queued, or written and unanswered: Redis may have published
#: them just before dying, or after a hang the node gave up on), so the sender is told
#: they *may* not have been delivered.
LINK_LOST_IN_FLIGHT = "the cluster link (Redis) dropped while it was in flight"


class Engine:
    """The interface a node calls. Subclasses implement every method; see the module docstring."""

    node: str

    @property
    def up(self) -> bool:
        """True while the engine can check names and reach other nodes."""
        raise NotImplementedError

    def claim(self, member: Member) -> None:
        """Try to lease ``member.key`` for this local user; answered by a :class:`Claimed`."""
        raise NotImplementedError

    def release(self, member: Member, reason: str = LEAVE_REASON) -> None:
        """A local user left: drop its lease and presence (only if still ours) and tell all,
        with ``reason`` (see :class:`~tcplab.chat.protocol.Release`)."""
        raise NotImplementedError

    def locate(self, key: str) -> Member | None:
        """The remote user holding ``key``, as the presence directory knows it."""
        raise NotImplementedError

    def send(self, target: Member, sender: bytes, sender_conn: int, text: bytes) -> str | None:
        """Publish a private message to ``target``'s node; None, or why it was not sent."""
        raise NotImplementedError

    def broadcast(self, sender: bytes, text: bytes, sender_conn: int = 0) -> str | None:
        """Publish a ``*:`` message to every other node; None, or why it was not sent. If it
        is lost after that, local user ``sender_conn`` gets a :class:`BroadcastUndelivered`."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send what send()/broadcast() batched; the node calls it once per loop iteration."""

    def undeliverable(self, origin_node: str, origin_conn: int, target: str, why: str,
                      count: int = 1) -> None:
        """Tell a remote sender that ``count`` messages to local ``target`` found nobody."""
        raise NotImplementedError

    def events(self) -> list[Event]:
        """Everything that happened since the last call, in order (drains the queue)."""
        raise NotImplementedError

    def attach(self, selector: object) -> None:
        """Register the engine's sockets, if any, in the node's selector; each registered
        key's data has an ``on_ready(mask)`` method the node's loop calls."""

    def tick(self, now: float) -> None:
        """Time-driven work: heartbeats, lease renewal, dead-node sweeps, reconnects."""

    def close(self) -> None:
        """Leave the cluster: release every lease and presence entry of this node."""


# --- the in-memory engine ----------------------------------------------------------------


class MemoryHub:
    """The shared state of in-process nodes: leases, presence and live nodes.

    Operations take effect at once, but what each node learns goes through its event queue
    as it would over Redis, so a node built on this hub behaves like a networked one.
    ``up = False`` simulates losing the backing store for every node.
    """

    def __init__(self) -> None:
        self.leases: dict[str, Member] = {}
        self.nodes: dict[str, MemoryEngine] = {}
        self.up = True

    def publish(self, origin: str | None, event: Event, to: str | None = None) -> int:
        """Queue ``event`` at node ``to`` (or every node but ``origin``); receivers reached."""
        if to is not None:
            eng = self.nodes.get(to)
            if eng is None:
                return 0
            eng._queue.append(event)
            return 1
        n = 0
        for name, eng in self.nodes.items():
            if name != origin:
                eng._queue.append(event)
                n += 1
        return n


class MemoryEngine(Engine):
    """A node on a :class:`MemoryHub` (no network; all nodes live in this process)."""

    def __init__(self, hub: MemoryHub, node: str) -> None:
        problem = node_name_problem(node)
        if problem:
            raise ValueError(problem)
        if node in hub.nodes:
            raise ValueError(f"node name {node!r} is already in use")
        self.hub = hub
        self.node = node
        self._queue: list[Event] = []
        hub.nodes[node] = self
        self._queue.append(Roster(tuple(m for m in hub.leases.values() if m.node != node)))

    @property
    def up(self) -> bool:
        return self.hub.up and self.hub.nodes.get(self.node) is self

    def claim(self, member: Member) -> None:
        if not self.up:
            self._queue.append(Claimed(member.conn, member.key, False, LINK_DOWN))
            return
        holder = self.hub.leases.get(member.key)
        if holder is not None:
            self._queue.append(Claimed(member.conn, member.key, False, "taken", taken=True))
            return
        self.hub.leases[member.key] = member
        self._queue.append(Claimed(member.conn, member.key, True))
        self.hub.publish(self.node, Joined(member))

    def release(self, member: Member, reason: str = LEAVE_REASON) -> None:
        if not self.up:
            return
        if self.hub.leases.get(member.key) == member:
            del self.hub.leases[member.key]
            self.hub.publish(self.node, Left(member, reason))

    def locate(self, key: str) -> Member | None:
        m = self.hub.leases.get(key)
        return m if m is not None and m.node != self.node else None

    def send(self, target: Member, sender: bytes, sender_conn: int, text: bytes) -> str | None:
        if not self.up:
            return LINK_DOWN
        event = Deliveries(self.node, [(b"%d" % sender_conn, sender, target.nick.encode(), text)])
        if self.hub.publish(self.node, event, to=target.node) == 0:
            self._queue.append(Undelivered(sender_conn, target.nick, 1, "its node is gone"))
        return None

    def broadcast(self, sender: bytes, text: bytes, sender_conn: int = 0) -> str | None:
        if not self.up:
            return LINK_DOWN
        self.hub.publish(self.node, Broadcast(sender, text, self.node))
        return None

    def undeliverable(self, origin_node: str, origin_conn: int, target: str, why: str,
                      count: int = 1) -> None:
        if self.up:
            self.hub.publish(self.node, Undelivered(origin_conn, target, count, why), to=origin_node)

    def events(self) -> list[Event]:
        out, self._queue = self._queue, []
        return out

    def kill(self) -> None:
        """Simulate the node dying: its users vanish from every other node."""
        if self.hub.nodes.get(self.node) is not self:
            return
        del self.hub.nodes[self.node]
        for key, m in list(self.hub.leases.items()):
            if m.node == self.node:
                del self.hub.leases[key]
                self.hub.publish(self.node, Left(m))

    def close(self) -> None:
        self.kill()
