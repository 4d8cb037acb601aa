"""The in-memory engine: the contract every engine keeps, without a network."""

from __future__ import annotations

import pytest

from tcplab.chat.cluster.engine import (
    LINK_DOWN,
    Broadcast,
    Claimed,
    Deliveries,
    Joined,
    Left,
    Member,
    MemoryEngine,
    MemoryHub,
    Roster,
    Undelivered,
)


def member(node: str, conn: int, nick: str, since: int = 1) -> Member:
    return Member(nick.casefold(), nick, node, conn, since)


def test_claim_unique_across_nodes_and_presence_deltas() -> None:
    hub = MemoryHub()
    a, b = MemoryEngine(hub, "a"), MemoryEngine(hub, "b")
    assert a.events() == [Roster(())]
    b.events()
    alice = member("a", 1, "Alice")
    a.claim(alice)
    assert a.events() == [Claimed(1, "alice", True)]
    assert b.events() == [Joined(alice)]
    b.claim(member("b", 7, "ALICE"))
    assert b.events() == [Claimed(7, "alice", False, "taken", taken=True)]
    assert b.locate("alice") == alice and a.locate("alice") is None
    c = MemoryEngine(hub, "c")
    assert c.events() == [Roster((alice,))]
    a.release(alice)
    assert b.events() == [Left(alice)] and c.events() == [Left(alice)]


def test_messages_broadcasts_and_undelivered() -> None:
    hub = MemoryHub()
    a, b = MemoryEngine(hub, "a"), MemoryEngine(hub, "b")
    bob = member("b", 2, "Bob")
    b.claim(bob)
    a.events(), b.events()
    assert a.send(bob, b"Alice", 1, b"hi") is None
    assert b.events() == [Deliveries("a", [(b"1", b"Alice", b"Bob", b"hi")])]
    assert a.broadcast(b"Alice", b"all") is None
    assert b.events() == [Broadcast(b"Alice", b"all", "a")] and a.events() == []
    b.undeliverable("a", 1, "Bob", "Bob left")
    assert a.events() == [Undelivered(1, "Bob", 1, "Bob left")]
    b.kill()
    assert a.events() == [Left(bob)]
    a.send(bob, b"Alice", 1, b"late")
    assert a.events() == [Undelivered(1, "Bob", 1, "its node is gone")]


def test_down_refuses_logins_and_cross_node_sends() -> None:
    hub = MemoryHub()
    a = MemoryEngine(hub, "a")
    a.events()
    hub.up = False
    a.claim(member("a", 1, "Zed"))
    assert a.events() == [Claimed(1, "zed", False, LINK_DOWN)]
    assert a.send(member("b", 1, "X"), b"Zed", 1, b"t") == LINK_DOWN
    assert a.broadcast(b"Zed", b"t") == LINK_DOWN


def test_node_names_are_checked() -> None:
    hub = MemoryHub()
    MemoryEngine(hub, "n1")
    with pytest.raises(ValueError):
        MemoryEngine(hub, "n1")
    with pytest.raises(ValueError):
        MemoryEngine(hub, "bad name:1")


def test_conflict_rule_is_deterministic() -> None:
    early, late = member("b", 9, "Al", since=100), member("a", 1, "Al", since=200)
    assert early.wins_over(late) and not late.wins_over(early)
    tie1, tie2 = member("a", 1, "Al", since=5), member("b", 1, "Al", since=5)
    assert tie1.wins_over(tie2) != tie2.wins_over(tie1)
