"""The chat as a cluster of real ``tcplab server --cluster`` processes on a real Redis.

Every rule of the single server must hold across nodes: scenarios A-F, unique
case-insensitive nicknames, one online list, broadcasts everywhere once; and the failure
behaviour of docs/cluster.md: a killed node's users vanish within the documented bound, a
lost Redis leaves local chat working and converges after it returns, a slow Redis does
not slow local delivery.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import pytest

from tcplab.chat.cluster import redis_engine
from tcplab.chat.protocol import nick_key
from tests.cluster.procs import Client, NodeProcess, Proxy, nodes, same_lists
from tests.cluster.redis_support import RedisProcess, redis_server


def lease_key(nick: str) -> str:
    """The Redis key of a nickname's lease (its skeleton: ``alice`` folds to ``allce``)."""
    return f"tcplab:nick:{nick_key(nick)}"


@pytest.fixture
def redis():
    with redis_server() as r:
        yield r


@contextlib.contextmanager
def clients():
    made: list[Client] = []

    def make(node: NodeProcess, nick: str | None = None) -> Client:
        c = node.client()
        made.append(c)
        if nick is not None:
            c.login(nick)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


def test_scenarios_a_to_f_across_three_nodes(redis: RedisProcess) -> None:
    with nodes(redis.url, 3) as (n1, n2, n3), clients() as make:
        alice = make(n1, "Alice")
        bob = make(n2, "Bob")
        carol = make(n3, "Carol")
        britney = make(n1, "Britney Spears")
        dave = make(n2, "Dave")
        everyone = ["Alice", "Bob", "Carol", "Britney Spears", "Dave"]
        # One list, in one order (cluster-wide login order), on every node.
        same_lists((alice, bob, carol, britney, dave), everyone)
        # A: delivered across nodes, both ways, and within a node.
        alice.send("Bob: hello from node 1")
        assert bob.expect("Alice:") == "Alice: hello from node 1"
        bob.send("alice: back from node 2")  # case-insensitive target
        assert alice.expect("Bob:") == "Bob: back from node 2"
        carol.send("Britney Spears: שלום 😀")
        assert britney.expect("Carol:") == "Carol: שלום 😀"
        britney.send("Alice: same node")
        assert alice.expect("Britney Spears:") == "Britney Spears: same node"
        # B, C, D as on one server.
        alice.send("Nobody: are you there?")
        alice.system("not connected")
        alice.send("no target here")
        alice.system("Invalid format")
        alice.send("Bob:")
        alice.system("cannot be empty")
        alice.send(":Hello!")
        alice.system("cannot be empty")
        # E: the name is taken cluster-wide, case variants included.
        for node, name in ((n2, "Alice"), (n3, "ALICE"), (n1, "bob"), (n3, "Ｂｏｂ")):
            dup = make(node)
            dup.send(name)
            dup.system("taken")
            dup.close()
        for node in (n1, n2, n3):  # reserved names are refused on every node
            bad = make(node)
            bad.send("SYSTEM")
            bad.system("reserved")
            bad.close()
        # Broadcast: everyone else, on every node, exactly once.
        dave.send("*: to everyone")
        for c in (alice, bob, carol, britney):
            assert c.expect("* Dave:") == "* Dave: to everyone"
        time.sleep(0.5)
        for c in (alice, bob, carol, britney, dave):
            assert not [ln for ln in c.quiet_for(0.2) if "to everyone" in ln]
        # F: an abrupt disconnect on node 3 updates every node's list.
        carol.reset()
        without_carol = [n for n in everyone if n != "Carol"]
        same_lists((alice, bob, britney, dave), without_carol)
        bob.send("Carol: gone?")
        bob.system("not connected")
        # The name is free again on any node.
        make(n1, "carol")
        same_lists((alice, bob, britney, dave), [*without_carol, "carol"])


def test_names_are_free_after_a_clean_leave_and_lists_converge(redis: RedisProcess) -> None:
    with nodes(redis.url, 2) as (n1, n2), clients() as make:
        users = [make(n1 if i % 2 else n2, f"user{i}") for i in range(8)]
        names = [f"user{i}" for i in range(8)]
        same_lists(users, names)
        for i in (1, 2, 5):
            users[i].send("/quit")
            users[i].wait_closed()
        left = [n for n in names if n not in ("user1", "user2", "user5")]
        same_lists([users[i] for i in (0, 3, 4, 6, 7)], left)
        make(n2, "USER1")  # taken by nobody now
        same_lists([users[i] for i in (0, 3, 4, 6, 7)], [*left, "USER1"])
        assert redis.command("HLEN", "tcplab:presence:n1") + redis.command("HLEN", "tcplab:presence:n2") == len(left) + 1


def test_stopped_node_releases_its_users_at_once(redis: RedisProcess) -> None:
    with nodes(redis.url, 2) as (n1, n2), clients() as make:
        alice = make(n1, "Alice")
        bob = make(n2, "Bob")
        alice.wait_online({"Alice", "Bob"})
        t0 = time.monotonic()
        assert n2.stop() == 0  # SIGTERM: a graceful stop
        bob.system("shutting down")
        alice.wait_online({"Alice"})
        assert time.monotonic() - t0 < redis_engine.NODE_TTL  # not waiting for the sweep
        assert redis.command("GET", lease_key("bob")) is None
        assert redis.command("EXISTS", "tcplab:node:n2") == 0


def test_killed_node_users_vanish_and_the_node_rejoins(redis: RedisProcess) -> None:
    with nodes(redis.url, 2) as (n1, n2), clients() as make:
        alice = make(n1, "Alice")
        make(n2, "Bob")
        make(n2, "Zoe")
        alice.wait_online({"Alice", "Bob", "Zoe"})
        n2.kill9()
        t0 = time.monotonic()
        alice.wait_online({"Alice"}, timeout=redis_engine.DEAD_NODE_BOUND + 5)
        took = time.monotonic() - t0
        assert took <= redis_engine.DEAD_NODE_BOUND + 2, took  # + the client's polling
        alice.send("Bob: are you there?")
        alice.system("not connected")
        n2.start()  # same name, same port: waits out its old heartbeat, purges, rejoins
        bob = make(n2, "Bob")
        same_lists((alice, bob), ["Alice", "Bob"])
        alice.send("Bob: welcome back")
        assert bob.expect("Alice:") == "Alice: welcome back"


def test_redis_lost_and_back_while_users_chat(redis: RedisProcess) -> None:
    with nodes(redis.url, 2) as (n1, n2), clients() as make:
        alice, carol = make(n1, "Alice"), make(n1, "Carol")
        bob = make(n2, "Bob")
        same_lists((alice, carol, bob), ["Alice", "Carol", "Bob"])
        redis.stop()
        time.sleep(0.5)
        # Local chat goes on.
        alice.send("Carol: still here?")
        assert carol.expect("Alice:") == "Alice: still here?"
        # Cross-node sends get a clear error (also when the node had not yet seen the link
        # drop: then the message is reported lost); broadcasts say they stayed local.
        alice.send("Bob: can you hear me?")
        alice.system("Bob", "Redis")
        alice.send("*: anyone?")
        assert carol.expect("* Alice:") == "* Alice: anyone?"
        alice.system("Redis")
        # New logins are refused with the reason.
        late = make(n2)
        late.send("Newcomer")
        late.system("Redis", "try again")
        # Redis comes back (empty): leases are re-claimed, presence converges.
        redis.start()
        # Re-claimed with their original login times: the order survives the restart.
        same_lists((alice, carol, bob), ["Alice", "Carol", "Bob"], timeout=20)
        deadline = time.monotonic() + 20
        while True:  # as a person would: "try again shortly"
            late.send("Newcomer")
            line = late.expect(lambda ln: ln.startswith("System:"))
            if "Welcome" in line:
                break
            assert "Redis" in line and time.monotonic() < deadline, line
            time.sleep(0.2)
        same_lists((alice, carol, bob, late), ["Alice", "Carol", "Bob", "Newcomer"])
        alice.send("Bob: and now?")
        assert bob.expect("Alice:") == "Alice: and now?"
        dup = make(n1)
        dup.send("bob")
        dup.system("taken")
        keys = redis.command("KEYS", "tcplab:nick:*")
        assert sorted(keys) == sorted(lease_key(k).encode() for k in ("alice", "bob", "carol", "newcomer"))


def test_partition_conflict_goes_to_the_earlier_login(redis: RedisProcess) -> None:
    proxy = Proxy(redis.port)
    try:
        with nodes(redis.url, 1) as (n1,), clients() as make:
            n2 = NodeProcess(proxy.url, "n2").start()
            try:
                eve2 = make(n2, "Eve")  # the earlier login
                watcher = make(n1, "Watcher")
                watcher.wait_online({"Eve", "Watcher"})
                proxy.sever()  # n2 is cut off; its heartbeat expires, n1's sweep removes Eve
                watcher.wait_online({"Watcher"}, timeout=redis_engine.DEAD_NODE_BOUND + 5)
                eve1 = make(n1, "eve")  # the name looks free from node 1: a later login
                eve2.send("Eve: talking to myself on a cut-off node")
                assert eve2.expect("Eve:")
                proxy.restore()
                # n2 reconnects; the earlier login keeps the name, the later one is told.
                eve1.system("taken", timeout=20)
                eve1.login("Eve Two")  # and may pick another name
                same_lists((watcher, eve2, eve1), ["Eve", "Watcher", "Eve Two"], timeout=20)
                watcher.send("Eve: who are you?")
                assert eve2.expect("Watcher:") == "Watcher: who are you?"
            finally:
                n2.stop()
    finally:
        proxy.close()


def test_slow_redis_does_not_delay_local_delivery(redis: RedisProcess) -> None:
    proxy = Proxy(redis.port, delay=0.05)
    try:
        with clients() as make:
            n1 = NodeProcess(proxy.url, "n1").start()
            n2 = NodeProcess(redis.url, "n2").start()
            try:
                alice, carol = make(n1, "Alice"), make(n1, "Carol")
                bob = make(n2, "Bob")
                alice.wait_online({"Alice", "Bob", "Carol"})
                local, remote = [], []
                for i in range(200):
                    t0 = time.perf_counter()
                    alice.send(f"Carol: m{i}")
                    carol.expect(f"Alice: m{i}")
                    local.append(time.perf_counter() - t0)
                for i in range(20):
                    t0 = time.perf_counter()
                    alice.send(f"Bob: r{i}")
                    bob.expect(f"Alice: r{i}")
                    remote.append(time.perf_counter() - t0)
                local_p99 = statistics.quantiles(local, n=100)[98]
                remote_p50 = statistics.median(remote)
                print(f"local p99 {local_p99 * 1000:.2f} ms, cross-node p50 {remote_p50 * 1000:.1f} ms")
                assert remote_p50 >= 0.05  # the proxy's delay is really there
                assert local_p99 < 0.05  # and local delivery never waits for it
            finally:
                n1.stop()
                n2.stop()
    finally:
        proxy.close()


def test_a_node_name_in_use_by_a_live_node_is_refused(redis: RedisProcess) -> None:
    with nodes(redis.url, 1) as (n1,), clients() as make:
        alice = make(n1, "Alice")
        twin = NodeProcess(redis.url, "n1")
        with pytest.raises(AssertionError, match="exited 2"):
            twin.start()
        assert "in use by a live node" in twin.stderr
        alice.send("/users")  # the first n1 and its user are untouched
        assert alice.expect("ONLINE_USERS:") == "ONLINE_USERS:Alice"
        assert redis.command("GET", lease_key("alice")) is not None


def test_unreachable_redis_at_start_exits_2() -> None:
    import subprocess
    import sys

    from tests.cluster.redis_support import free_port

    proc = subprocess.run([sys.executable, "-m", "tcplab", "server", "--port", "0", "--cluster",
                           f"redis://127.0.0.1:{free_port()}/0"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "cannot reach Redis" in proc.stderr and "Traceback" not in proc.stderr
