"""The cluster shell of one node: between the sans-IO chat core and a cluster engine.

The core decides everything about the chat as it does on a single server; in cluster mode
it additionally emits five actions — :class:`~tcplab.chat.protocol.Claim` (may this user
take the name cluster-wide?), :class:`~tcplab.chat.protocol.Release` (a user left),
:class:`~tcplab.chat.protocol.Relay` (deliver to a user not held here),
:class:`~tcplab.chat.protocol.RelayAll` (deliver to everyone elsewhere) and
:class:`~tcplab.chat.protocol.Bounce` (tell a remote sender its messages to a dropped local
user were lost) — and accepts what
the cluster reports (logins answered, remote users joining and leaving, messages arriving
for local users, losses). This module only translates between the two: it holds no chat
rules, and the core holds no notion of nodes, Redis or sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tcplab.chat.cluster.engine import (
    Broadcast,
    BroadcastUndelivered,
    Claimed,
    Deliveries,
    Engine,
    Joined,
    Left,
    LinkChanged,
    Member,
    Revoked,
    Roster,
    Undelivered,
)
from tcplab.chat.protocol import Bounce, ChatCore, Claim, Code, Output, Relay, RelayAll, Release


class ClusterNode:
    """Carry out the core's cluster actions on ``engine`` and feed its events back."""

    def __init__(self, core: ChatCore, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.core = core
        self.engine = engine
        self.clock = clock
        self.members: dict[int, Member] = {}  # conn -> this node's user (claimed or claiming)
        self._claiming: set[int] = set()
        self._orphans: dict[int, Member] = {}  # left while their claim was in flight
        # Bound once: a relay is the per-message path of cross-node traffic.
        self._locate = engine.locate
        self._send = engine.send

    @property
    def node(self) -> str:
        return self.engine.node

    # -- core → cluster --------------------------------------------------------------------

    def act(self, conn: int, action: object, now: float | None = None) -> list[Output]:
        """Carry out one cluster action the core emitted for connection ``conn``."""
        cls = action.__class__
        if cls is Relay:
            target = self._locate(action.key)  # type: ignore[attr-defined]
            if target is None:  # left between the core's lookup and now
                return self.core.notice(conn, Code.NO_SUCH_NICK,
                                        f"User '{action.nick}' is not connected.")  # type: ignore[attr-defined]
            why = self._send(target, action.sender, conn, action.text)  # type: ignore[attr-defined]
            if why is not None:
                return self.core.notice(conn, Code.NOT_DELIVERED, (
                    f"1 message(s) to '{target.nick}' not delivered: {why}; "
                    "users on this server can still be reached."))
            return []
        if cls is RelayAll:
            why = self.engine.broadcast(action.sender, action.text, conn)  # type: ignore[attr-defined]
            if why is not None:
                return self.core.notice(conn, Code.NOT_DELIVERED, (
                    f"Broadcast reached this server's users only: {why}."))
            return []
        if cls is Claim:
            member = Member(action.key, action.nick, self.node, conn,  # type: ignore[attr-defined]
                            int(self.clock() * 1_000_000))
            self.members[conn] = member
            self._claiming.add(conn)
            self.engine.claim(member)
            return self.pump(time.monotonic() if now is None else now)  # a down engine answers at once
        if cls is Release:
            member = self.members.pop(conn, None)
            if member is not None:
                # What this user sent in this loop iteration leaves first: the receiving
                # node must see the messages before the leave that makes their sender unknown.
                self.engine.flush()
                if conn in self._claiming:
                    self._orphans[conn] = member  # released when the claim is answered
                else:
                    self.engine.release(member, action.reason)  # type: ignore[attr-defined]
            return []
        if cls is Bounce:
            sender = self.engine.locate(action.key)  # type: ignore[attr-defined]
            if sender is not None:
                self.engine.undeliverable(sender.node, sender.conn, action.recipient,  # type: ignore[attr-defined]
                                          f"{action.recipient} was disconnected",  # type: ignore[attr-defined]
                                          action.count)  # type: ignore[attr-defined]
            return []
        raise TypeError(f"not a cluster action: {action!r}")

    # -- cluster → core --------------------------------------------------------------------

    def pump(self, now: float) -> list[Output]:
        """Feed everything the engine reported into the core; return what to send."""
        self.engine.flush()  # what this loop iteration relayed leaves now, in one go
        out: list[Output] = []
        core = self.core
        for ev in self.engine.events():
            cls = ev.__class__
            if cls is Deliveries:
                got, missing = core.deliver_many(ev.items)
                out += got
                for item in missing:
                    if not item[0].isdigit():
                        continue  # not from a tcplab node: nobody to tell
                    target = item[2].decode("utf-8", "replace")
                    self.engine.undeliverable(ev.origin_node, int(item[0]), target,
                                              f"{target} was disconnected")
            elif cls is Broadcast:
                out += core.deliver_all(ev.sender, ev.text)
            elif cls is Joined:
                out += core.remote_join(ev.member.key, ev.member.nick, ev.member.rank)
            elif cls is Left:
                out += core.remote_leave(ev.member.key, ev.reason)
            elif cls is Roster:
                out += core.remote_roster([(m.key, m.nick, m.rank) for m in ev.members])
            elif cls is Claimed:
                out += self._claimed(ev, now)
            elif cls is Undelivered:
                verdict = "not delivered" if ev.certain else "may not have been delivered"
                out += core.notice(ev.conn, Code.NOT_DELIVERED,
                                   f"{ev.count} message(s) to '{ev.target}' {verdict}: {ev.why}.")
            elif cls is BroadcastUndelivered:
                verdict = "reached" if ev.certain else "may have reached"
                out += core.notice(ev.conn, Code.NOT_DELIVERED, (
                    f"Broadcast {verdict} this server's users only: {ev.why}"
                    + (f" ({ev.count} messages)." if ev.count > 1 else ".")))
            elif cls is Revoked:
                member = self.members.get(ev.conn)
                if member is not None and member.key == ev.key:
                    del self.members[ev.conn]
                    out += core.revoke(ev.conn)
            elif cls is LinkChanged:
                pass  # the engine logs it; the core's behaviour follows engine.up by itself
        return out

    def _claimed(self, ev: Claimed, now: float) -> list[Output]:
        self._claiming.discard(ev.conn)
        orphan = self._orphans.pop(ev.conn, None)
        if orphan is not None:
            if ev.ok:  # the user disconnected while the claim was in flight
                self.engine.release(orphan)
            return []
        member = self.members.get(ev.conn)
        if member is None or member.key != ev.key:
            return []
        if ev.ok:
            return self.core.login_result(ev.conn, None, now, member.rank)
        del self.members[ev.conn]
        if ev.taken:
            return self.core.login_result(ev.conn, "taken", now)
        return self.core.login_result(
            ev.conn, f"Cannot log in now: {ev.reason}, so nickname uniqueness cannot be checked; "
                     "try again shortly.", now)

    def tick(self, now: float) -> list[Output]:
        self.engine.tick(now)
        return self.pump(now)

    def close(self) -> None:
        self.engine.close()
