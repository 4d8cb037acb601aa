"""The Redis engine against a real redis-server: leases, presence, routing, failures."""

from __future__ import annotations

import time

import pytest

from tcplab.chat.cluster import redis_engine
from tcplab.chat.cluster.engine import (
    LINK_DOWN,
    Broadcast,
    Claimed,
    Deliveries,
    Joined,
    Left,
    LinkChanged,
    Member,
    Revoked,
    Roster,
    Undelivered,
)
from tcplab.chat.cluster.redis_engine import RedisEngine, parse_url
from tcplab.errors import EnvironmentProblem, InputError
from tests.cluster.redis_support import Loop, RedisProcess, free_port, redis_server


def member(node: str, conn: int, nick: str, since: int | None = None) -> Member:
    return Member(nick.casefold(), nick, node, conn, since or int(time.time() * 1_000_000))


@pytest.fixture
def redis():
    with redis_server() as r:
        yield r


def kill(loop: Loop, engine: RedisEngine) -> None:
    """What kill -9 leaves behind: sockets gone, nothing released."""
    engine._closed = True
    for link in engine.links():
        loop.sel.unregister(link.sock)
        link.sock.close()
    loop.engines.remove(engine)


def started(url: str, *names: str) -> Loop:
    engines = []
    for n in names:
        e = RedisEngine(url, n)
        e.check()
        engines.append(e)
    loop = Loop(*engines)
    loop.until(lambda: all(e.up for e in engines), what="engines up")
    return loop


def test_parse_url() -> None:
    a = parse_url("redis://:pw@127.0.0.1:7000/3")
    assert (a.host, a.port, a.db, a.password) == ("127.0.0.1", 7000, 3, "pw")
    assert parse_url("redis://localhost").port == 6379
    for bad in ("http://x", "redis://", "redis://h:99999", "redis://h/abc"):
        with pytest.raises(InputError):
            parse_url(bad)


def test_unreachable_at_start_is_an_environment_problem() -> None:
    e = RedisEngine(f"redis://127.0.0.1:{free_port()}/0", "n1")
    with pytest.raises(EnvironmentProblem, match="cannot reach Redis"):
        e.check(timeout=1)


def test_leases_presence_and_routing(redis: RedisProcess) -> None:
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        alice = member("n1", 1, "Alice")
        n1.claim(alice)
        loop.until(lambda: loop.of("n1", Claimed), what="claim answer")
        assert loop.of("n1", Claimed) == [Claimed(1, "alice", True)]
        assert redis.command("GET", "tcplab:nick:alice") == b"n1:1"
        assert redis.command("PTTL", "tcplab:nick:alice") > 20_000
        loop.until(lambda: loop.of("n2", Joined), what="join delta")
        assert loop.of("n2", Joined) == [Joined(alice)] and n2.locate("alice") == alice
        n2.claim(member("n2", 5, "ALICE"))  # the key is casefolded by the caller
        loop.until(lambda: loop.of("n2", Claimed), what="second claim")
        assert loop.of("n2", Claimed)[0].taken
        bob = member("n2", 2, "Bob")
        n2.claim(bob)
        loop.until(lambda: n1.locate("bob") == bob)
        assert n1.send(bob, b"Alice", 1, b"hi \xf0\x9f\x98\x80") is None
        assert n1.broadcast(b"Alice", b"to all") is None
        loop.until(lambda: loop.of("n2", Deliveries) and loop.of("n2", Broadcast))
        assert loop.of("n2", Deliveries) == [Deliveries("n1", [(b"1", b"Alice", b"Bob", "hi 😀".encode())])]
        assert loop.of("n2", Broadcast) == [Broadcast(b"Alice", b"to all", "n1")]
        assert not loop.of("n1", Broadcast)  # a node does not hear its own broadcast
        n2.undeliverable("n1", 1, "Bob", "Bob left")
        loop.until(lambda: loop.of("n1", Undelivered))
        # A third node gets the snapshot of both.
        n3 = RedisEngine(redis.url, "n3")
        loop.add(n3)
        loop.until(lambda: n3.up)
        roster = loop.of("n3", Roster)[-1]
        assert sorted(m.nick for m in roster.members) == ["Alice", "Bob"]
        n1.release(alice)
        loop.until(lambda: n2.locate("alice") is None and n3.locate("alice") is None)
        assert redis.command("GET", "tcplab:nick:alice") is None
        assert redis.command("HGET", "tcplab:presence:n1", "alice") is None
        # Only the owner's token releases: a forged release changes nothing.
        n1.release(Member("bob", "Bob", "n1", 2, bob.since_us))
        n1.holds["bob"] = Member("bob", "Bob", "n1", 2, bob.since_us)
        n1.release(n1.holds["bob"])
        loop.run(0.2)
        assert redis.command("GET", "tcplab:nick:bob") == b"n2:2"
    finally:
        loop.close()


def test_dead_node_is_swept_within_the_bound(redis: RedisProcess) -> None:
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        carol = member("n2", 3, "Carol")
        n2.claim(carol)
        loop.until(lambda: n1.locate("carol") == carol)
        # kill -9: the sockets vanish, nothing is released.
        kill(loop, n2)
        t0 = time.monotonic()
        loop.until(lambda: n1.locate("carol") is None, timeout=redis_engine.DEAD_NODE_BOUND + 3)
        assert time.monotonic() - t0 <= redis_engine.DEAD_NODE_BOUND + 1
        assert Left(carol) in loop.of("n1", Left)
        assert redis.command("GET", "tcplab:nick:carol") is None
        # The name is free again, and a restarted n2 joins cleanly.
        n2b = RedisEngine(redis.url, "n2")
        n2b.check()
        loop.add(n2b)
        loop.until(lambda: n2b.up)
        n2b.claim(member("n2", 1, "Carol"))
        loop.until(lambda: loop.of("n2", Claimed))
        assert loop.of("n2", Claimed)[-1].ok
    finally:
        loop.close()


def test_restarted_node_purges_its_previous_incarnation(redis: RedisProcess) -> None:
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        n2.claim(member("n2", 3, "Dave"))
        loop.until(lambda: n1.locate("dave") is not None)
        kill(loop, n2)
        n2b = RedisEngine(redis.url, "n2")
        t0 = time.monotonic()
        n2b.check()  # waits out the old heartbeat, then purges the old users
        assert time.monotonic() - t0 < redis_engine.NODE_TTL + 1.5
        assert redis.command("GET", "tcplab:nick:dave") is None
        loop.until(lambda: n1.locate("dave") is None)
    finally:
        loop.close()


def test_redis_restart_resyncs_and_resolves_conflicts(redis: RedisProcess) -> None:
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        early = member("n1", 1, "Eve", since=1000)
        n1.claim(early)
        n2.claim(member("n2", 4, "Frank"))
        # Both claims answered (a claim whose answer is lost with the link counts as refused).
        loop.until(lambda: n2.locate("eve") and n1.locate("frank") and "eve" in n1.holds
                   and "frank" in n2.holds)
        redis.stop()
        loop.until(lambda: not n1.up and not n2.up, what="link down")
        assert LinkChanged in {type(e) for e in loop.events["n1"]}
        n1.claim(member("n1", 9, "Gina"))
        assert n1.send(n2.holds["frank"], b"Eve", 1, b"x") == LINK_DOWN
        loop.step()
        assert loop.of("n1", Claimed)[-1] == Claimed(9, "gina", False, LINK_DOWN)
        n1._retry_at = time.monotonic() + 3600  # n1 stays cut off for now...
        loop.until(lambda: n1.cmd.state == "closed")  # ...with no attempt in flight
        redis.start()  # empty: every lease is gone
        loop.until(lambda: n2.up, timeout=15, what="n2 reconnect")
        assert redis.command("GET", "tcplab:nick:frank") == b"n2:4"  # re-claimed
        late = member("n2", 8, "EVE", since=5000)
        n2.claim(late)  # Eve's lease is gone with the old Redis: this login succeeds
        loop.until(lambda: loop.of("n2", Claimed)[-1].key == "eve")
        assert loop.of("n2", Claimed)[-1].ok
        n1._retry_at = 0.0
        loop.until(lambda: n1.up, timeout=15, what="n1 reconnect")
        # The earlier login (n1's Eve) keeps the name; n2's later login is revoked.
        loop.until(lambda: loop.of("n2", Revoked), what="revocation")
        assert loop.of("n2", Revoked) == [Revoked(8, "eve")]
        assert "eve" in n1.holds and "eve" not in n2.holds
        assert redis.command("GET", "tcplab:nick:eve") == b"n1:1"
        loop.until(lambda: n2.locate("eve") == early and n1.locate("frank") is not None)
    finally:
        loop.close()


def test_bounded_output_reports_busy(redis: RedisProcess, monkeypatch) -> None:
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        bob = member("n2", 2, "Bob")
        n2.claim(bob)
        loop.until(lambda: n1.locate("bob") == bob)
        monkeypatch.setattr(redis_engine, "MAX_OUTPUT", 100)
        results = []
        for _ in range(5):  # no loop step in between: nothing is written to Redis
            results.append(n1.send(bob, b"A", 1, b"x" * 1000))
            n1.flush()
        assert results == [None] + [redis_engine.LINK_BUSY] * 4
        loop.until(lambda: len(loop.of("n2", Deliveries)) == 1)
        loop.run(0.2)
        assert len(loop.of("n2", Deliveries)) == 1
        assert n1.send(bob, b"A", 1, b"again") is None  # the queue drained: sending works again
    finally:
        loop.close()


def test_a_hostile_server_costs_a_reconnect_not_a_crash() -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:  # answers everything with bytes that are not RESP
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"*99999999999\r\n?\x00\xff garbage\r\n")

    threading.Thread(target=serve, daemon=True).start()
    engine = RedisEngine(f"redis://127.0.0.1:{port}/0", "n1")
    loop = Loop(engine)
    try:
        loop.until(lambda: engine.stats["reconnects"] >= 3, timeout=15)
        assert not engine.up
        engine.claim(member("n1", 1, "Alice"))  # waits for the connection attempt, then:
        loop.until(lambda: loop.of("n1", Claimed), timeout=10)
        assert loop.of("n1", Claimed) == [Claimed(1, "alice", False, LINK_DOWN)]
    finally:
        stop.set()
        loop.close()
        listener.close()


def test_direct_messages_wait_with_the_deltas_while_a_snapshot_is_in_flight(redis: RedisProcess) -> None:
    """A message from a user whose join is held behind the snapshot must not overtake it:
    the core drops messages from senders it does not know."""
    loop = started(redis.url, "n1", "n2")
    n1, n2 = loop.engines
    try:
        bob = member("n2", 2, "Bob")
        n2.claim(bob)
        loop.until(lambda: n1.locate("bob") == bob)
        n2._syncing = True  # as while n2 re-reads the presence after a reconnect
        received = n2.stats["received"]
        alice = member("n1", 1, "Alice")
        n1.claim(alice)
        loop.until(lambda: "alice" in n1.holds)
        assert n1.send(bob, b"Alice", 1, b"first words") is None
        loop.until(lambda: n2.stats["received"] >= received + 2, what="join and message at n2")
        assert not loop.of("n2", Deliveries) and not loop.of("n2", Joined)  # both held, in order
        n2.cmd.command(("SMEMBERS", n2.nodes_key), n2._on_nodes, force=True)
        loop.until(lambda: not n2._syncing, what="snapshot")
        events = loop.events["n2"]
        known = next(i for i, e in enumerate(events) if isinstance(e, Roster)
                     and alice in e.members)
        delivered = next(i for i, e in enumerate(events) if isinstance(e, Deliveries))
        assert known < delivered
        assert events[delivered] == Deliveries("n1", [(b"1", b"Alice", b"Bob", b"first words")])
    finally:
        loop.close()
