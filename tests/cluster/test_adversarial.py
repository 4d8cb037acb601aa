"""The cluster under combined faults, with its invariants checked after each.

Every test ends (and some check in between) with :func:`assert_consistent`: every node
lists exactly the users logged in anywhere, in one order; Redis holds exactly one lease
per live user, naming the node the user is on; each node's presence hash holds exactly
its own live users; no dead node is still registered. The faults are real: a
``redis-server`` started by the test, stopped with SIGSTOP or killed with SIGKILL, nodes
killed with SIGKILL, logins raced from two sockets, clients reset mid-message, a slow link.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from tcplab.chat.cluster import redis_engine
from tcplab.chat.protocol import nick_key
from tests.chat.test_irc_server import IrcRaw
from tests.cluster.procs import Client, NodeProcess, Proxy, nodes, same_lists
from tests.cluster.redis_support import RedisProcess, free_port, redis_server

#: node -> {nickname: the client logged in under it}; None for a user (an IRC client)
#: whose node's list is read through another user of that node.
Live = dict[NodeProcess, dict[str, Client | None]]


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with redis_server() as r:
        yield r


def redis_state(redis: RedisProcess) -> tuple[dict[str, str], dict[str, set[str]], set[str]]:
    """(lease key -> holder node, node -> presence fields, registered nodes), read from Redis."""
    leases: dict[str, str] = {}
    for key in redis.command("KEYS", "tcplab:nick:*") or []:
        token = redis.command("GET", key)
        if token is not None:
            leases[key.decode()[len("tcplab:nick:"):]] = token.decode().rsplit(":", 1)[0]
    presence: dict[str, set[str]] = {}
    for key in redis.command("KEYS", "tcplab:presence:*") or []:
        flat = redis.command("HGETALL", key) or []
        presence[key.decode()[len("tcplab:presence:"):]] = {f.decode() for f in flat[0::2]}
    nodes = {n.decode() for n in redis.command("SMEMBERS", "tcplab:nodes") or []}
    return leases, presence, nodes


def assert_consistent(redis: RedisProcess, live: Live, timeout: float = 20.0) -> None:
    """The invariants, polled until they hold (presence is eventually consistent)."""
    want_leases = {nick_key(nick): node.name for node, users in live.items() for nick in users}
    assert len(want_leases) == sum(len(u) for u in live.values()), "the test itself holds a duplicate"
    want_presence = {node.name: {nick_key(n) for n in users} for node, users in live.items() if users}
    alive = {node.name for node in live}
    deadline = time.monotonic() + timeout
    while True:
        leases, presence, nodes = redis_state(redis)
        presence = {n: fields for n, fields in presence.items() if fields}
        problems = []
        if leases != want_leases:
            problems.append(f"leases {leases} != {want_leases}")
        if presence != want_presence:
            problems.append(f"presence {presence} != {want_presence}")
        if not nodes <= alive:
            problems.append(f"dead nodes still registered: {nodes - alive}")
        if not problems:
            break
        if time.monotonic() > deadline:
            raise AssertionError("; ".join(problems))
        time.sleep(0.1)
    everyone = {nick for users in live.values() for nick in users}
    watchers = [c for users in live.values() for c in users.values() if c is not None]
    for node, users in live.items():  # every node lists exactly the live users ...
        assert any(c is not None for c in users.values()), f"nobody to ask {node.name} for its list"
    same_lists(watchers, everyone, timeout)  # ... in one order on all of them


def connect(node: NodeProcess, made: list[Client]) -> Client:
    c = node.client()
    made.append(c)
    return c


def first_system(c: Client, timeout: float = 15.0) -> str:
    return c.expect(lambda ln: ln.startswith("System:"), timeout)


# -- Redis dropping while a message is in flight ------------------------------------------


def test_sender_is_told_when_redis_dies_with_its_message_in_flight(redis: RedisProcess) -> None:
    made: list[Client] = []
    try:
        with nodes(redis.url, 2) as (n1, n2):
            alice, carol = connect(n1, made), connect(n1, made)
            bob = connect(n2, made)
            for c, nick in ((alice, "Alice"), (carol, "Carol"), (bob, "Bob")):
                c.login(nick)
            assert_consistent(redis, {n1: {"Alice": alice, "Carol": carol}, n2: {"Bob": bob}})
            # Redis hangs: node 1 writes the PUBLISH, which nobody answers ...
            redis.pause()
            alice.send("Bob: this one is on its way")
            alice.send("*: and so is this")
            assert carol.expect("* Alice:") == "* Alice: and so is this"  # local users get it at once
            time.sleep(0.3)
            redis.stop()  # ... then dies with both unanswered.
            lost = alice.system("'Bob'", "in flight")
            assert lost.endswith("1 message(s) to 'Bob' may not have been delivered: the cluster "
                                 "link (Redis) dropped while it was in flight."), lost
            alice.system("Broadcast may have reached this server's users only", "in flight")
            assert not [ln for ln in bob.quiet_for(0.3) if "on its way" in ln or "so is this" in ln]
            # Once the node knows the link is down, a send is refused before it leaves.
            alice.send("Bob: and now?")
            alice.system("'Bob'", "not delivered", "is down", "can still be reached")
            alice.send("Carol: local chat goes on")
            assert carol.expect("Alice:") == "Alice: local chat goes on"
            redis.start()
            assert_consistent(redis, {n1: {"Alice": alice, "Carol": carol}, n2: {"Bob": bob}})
            alice.send("Bob: after the restart")
            assert bob.expect("Alice:") == "Alice: after the restart"
            # Redis hangs and stays hung: the node gives up on it after LINK_TIMEOUT and
            # tells the sender then, without waiting for a FIN that never comes.
            redis.pause()
            t0 = time.monotonic()
            alice.send("Bob: into the void")
            alice.system("'Bob'", "may not have been delivered", "in flight",
                         timeout=redis_engine.LINK_TIMEOUT + 5)
            assert time.monotonic() - t0 >= redis_engine.LINK_TIMEOUT - 1.5
            alice.send("Carol: still local")
            assert carol.expect("Alice:") == "Alice: still local"
            redis.stop()
            redis.start()
            assert_consistent(redis, {n1: {"Alice": alice, "Carol": carol}, n2: {"Bob": bob}})
    finally:
        for c in made:
            c.close()


# -- a node killed while Redis restarts ---------------------------------------------------


def test_node_killed_during_a_redis_restart(redis: RedisProcess) -> None:
    made: list[Client] = []
    try:
        with nodes(redis.url, 3) as (n1, n2, n3):
            alice, bob, dave, zoe = (connect(n, made) for n in (n1, n2, n3, n3))
            for c, nick in ((alice, "Alice"), (bob, "Bob"), (dave, "Dave"), (zoe, "Zoe")):
                c.login(nick)
            assert_consistent(redis, {n1: {"Alice": alice}, n2: {"Bob": bob},
                                      n3: {"Dave": dave, "Zoe": zoe}})
            # 1. Killed while Redis is down: it never comes back to re-claim anything.
            redis.stop()
            n2.kill9()
            redis.start()
            assert_consistent(redis, {n1: {"Alice": alice}, n3: {"Dave": dave, "Zoe": zoe}})
            # 2. Killed just after re-claiming its users in the restarted Redis, before the
            #    others may even have reconnected: the sweep must remove them.
            redis.stop()
            time.sleep(0.3)
            redis.start()
            deadline = time.monotonic() + 20
            while redis.command("GET", f"tcplab:nick:{nick_key('Zoe')}") is None:
                assert time.monotonic() < deadline, "node 3 never re-claimed its users"
                time.sleep(0.01)
            n3.kill9()
            t0 = time.monotonic()
            assert_consistent(redis, {n1: {"Alice": alice}},
                              timeout=redis_engine.DEAD_NODE_BOUND + redis_engine.BACKOFF_MAX + 5)
            print(f"node 3's users swept {time.monotonic() - t0:.1f} s after its kill")
            # Both killed nodes rejoin under their names; everything converges again.
            n2.start()
            n3.start()
            bob2, zoe2 = connect(n2, made), connect(n3, made)
            bob2.login("Bob")
            zoe2.login("zoe")
            assert_consistent(redis, {n1: {"Alice": alice}, n2: {"Bob": bob2}, n3: {"zoe": zoe2}})
            alice.send("zoe: back?")
            assert zoe2.expect("Alice:") == "Alice: back?"
    finally:
        for c in made:
            c.close()


# -- racing logins ------------------------------------------------------------------------

#: Two spellings of one name each: identical, case, full-width, a Roman numeral ⅼ for the l,
#: all-Cyrillic look-alikes of Latin names (chat/confusables.py folds each pair to one
#: skeleton; a name mixing the two scripts is refused outright, so it cannot race).
RACES = [("Alice", "Alice"), ("Alice", "ALICE"), ("Alice", "Ａｌｉｃｅ"), ("Alice", "A\u217cice"),
         ("Cope", "\u0421\u043e\u0440\u0435"), ("\u0441\u0430\u0440\u0435", "cape")]


def test_racing_logins_of_one_name_on_two_nodes(redis: RedisProcess) -> None:
    made: list[Client] = []
    try:
        with nodes(redis.url, 2) as (n1, n2):
            w1, w2 = connect(n1, made), connect(n2, made)
            w1.login("Watcher One")
            w2.login("Watcher Two")
            base: Live = {n1: {"Watcher One": w1}, n2: {"Watcher Two": w2}}
            wins = {n1.name: 0, n2.name: 0}
            for round_no in range(3):
                for first, second in RACES:
                    assert nick_key(first) == nick_key(second)
                    entries = [(connect(n1, made), first, n1), (connect(n2, made), second, n2)]
                    if round_no % 2:  # the thread started first varies too
                        entries.reverse()
                    go = threading.Barrier(2)

                    def login(c: Client, nick: str, go: threading.Barrier = go) -> None:
                        go.wait()  # both nicknames leave at the same moment
                        c.send(nick)

                    threads = [threading.Thread(target=login, args=(c, nick)) for c, nick, _ in entries]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    answers = [(first_system(c), c, nick, node) for c, nick, node in entries]
                    won = [e for e in answers if "Welcome" in e[0]]
                    lost = [e for e in answers if "Welcome" not in e[0]]
                    assert len(won) == 1 and len(lost) == 1, (first, second, answers)
                    assert "taken" in lost[0][0], lost[0][0]
                    _, winner, winner_nick, winner_node = won[0]
                    wins[winner_node.name] += 1
                    live: Live = {n: dict(users) for n, users in base.items()}
                    live[winner_node][winner_nick] = winner
                    assert_consistent(redis, live)
                    # The loser may choose another name at once; then both leave.
                    loser = lost[0][1]
                    loser.login(f"Other {round_no}")
                    for c in (loser, winner):
                        c.send("/quit")
                        c.wait_closed()
                    assert_consistent(redis, base)  # the name is free everywhere again
            print(f"races won per node: {wins}")
    finally:
        for c in made:
            c.close()


# -- a user leaving while a message is in flight ------------------------------------------


def test_disconnect_while_a_cross_node_message_is_in_flight(redis: RedisProcess) -> None:
    proxy = Proxy(redis.port, delay=0.3)  # node 1's link to Redis: 0.3 s each way
    made: list[Client] = []
    try:
        n1 = NodeProcess(proxy.url, "n1").start()
        n2 = NodeProcess(redis.url, "n2").start()
        try:
            alice, sender = connect(n1, made), connect(n1, made)
            bob, carol = connect(n2, made), connect(n2, made)
            for c, nick in ((alice, "Alice"), (sender, "Sender"), (bob, "Bob"), (carol, "Carol")):
                c.login(nick)
            assert_consistent(redis, {n1: {"Alice": alice, "Sender": sender},
                                      n2: {"Bob": bob, "Carol": carol}})
            # The receiver vanishes; node 1 learns it 0.3 s later, so Alice's message leaves
            # for a user who is gone when it lands: she is told, not left guessing.
            bob.reset()
            alice.send("Bob: are you still there?")
            told = alice.system("'Bob'", "not delivered")
            assert "Bob was disconnected" in told, told
            # The sender vanishes right after writing: its message still arrives, because it
            # leaves before the release that makes its sender unknown on node 2.
            sender.send("Carol: my last words")
            sender.reset()
            assert carol.expect("Sender:") == "Sender: my last words"
            assert_consistent(redis, {n1: {"Alice": alice}, n2: {"Carol": carol}})
        finally:
            n1.stop()
            n2.stop()
    finally:
        for c in made:
            c.close()
        proxy.close()


# -- IRC users of two nodes ---------------------------------------------------------------


def test_irc_users_on_two_nodes_talk_across_nodes(redis: RedisProcess) -> None:
    made: list[Client] = []
    ircs: list[IrcRaw] = []
    irc_ports = [free_port(), free_port()]
    nodes_ = [NodeProcess(redis.url, f"n{i + 1}", extra=("--irc-port", str(p)))
              for i, p in enumerate(irc_ports)]
    try:
        n1, n2 = (n.start() for n in nodes_)
        irc_a = IrcRaw(("127.0.0.1", irc_ports[0]))
        ircs.append(irc_a)
        irc_a.register("ircA")
        irc_b = IrcRaw(("127.0.0.1", irc_ports[1]))
        ircs.append(irc_b)
        irc_b.register("ircB")
        irc_a.expect(r"^:ircB!\S+ JOIN :?#lobby")  # node 2's IRC user joins node 1's #lobby
        nat1, nat2 = connect(n1, made), connect(n2, made)
        nat1.login("Nat One")
        nat2.login("Nat Two")
        # IRC to IRC across nodes, both ways.
        irc_a.send("PRIVMSG ircB :hello from node 1")
        line = irc_b.expect(r"PRIVMSG ircB ")
        assert line.startswith(":ircA!") and line.endswith(" :hello from node 1"), line
        irc_b.send("PRIVMSG ircA :hello back")
        line = irc_a.expect(r"PRIVMSG ircA ")
        assert line.startswith(":ircB!") and line.endswith(" :hello back"), line
        # IRC and native users across nodes, both ways (a native name with a space has the
        # IRC form Nat_Two).
        irc_a.send("PRIVMSG Nat_Two :to a native user")
        assert nat2.expect("ircA:") == "ircA: to a native user"
        nat2.send("ircA: to an IRC user")
        line = irc_a.expect(r"PRIVMSG ircA :to an IRC user")
        assert line.startswith(":Nat_Two!"), line
        # #lobby is the cluster-wide broadcast.
        irc_b.send("PRIVMSG #lobby :everyone, everywhere")
        assert nat1.expect("* ircB:") == "* ircB: everyone, everywhere"
        assert irc_a.expect(r"PRIVMSG #lobby :everyone, everywhere").startswith(":ircB!")
        # NAMES on node 1 lists the users of both nodes.
        irc_a.send("NAMES #lobby")
        names: set[str] = set()
        while True:
            line = irc_a.expect(r" (353|366) ")
            if " 366 " in line:
                break
            names |= {n.lstrip("@+") for n in line.rsplit(":", 1)[1].split()}
        assert names == {"ircA", "ircB", "Nat_One", "Nat_Two"}, names
        # A name held on the other node, in another dialect and another case, is refused.
        dup = IrcRaw(("127.0.0.1", irc_ports[0]))
        ircs.append(dup)
        dup.send("NICK NAT_two")
        dup.send("USER x 0 * :x")
        dup.expect(r" 433 ")
        assert_consistent(redis, {n1: {"ircA": None, "Nat One": nat1},
                                  n2: {"ircB": None, "Nat Two": nat2}})
        # An IRC user quitting on node 2 leaves node 1's #lobby and every list, with its
        # QUIT message (a leave crosses nodes with its reason).
        irc_b.send("QUIT :bye")
        assert irc_a.expect(r"^:ircB!\S+ QUIT :").endswith(" QUIT :Quit: bye")
        assert_consistent(redis, {n1: {"ircA": None, "Nat One": nat1}, n2: {"Nat Two": nat2}})
    finally:
        for c in made:
            c.close()
        for i in ircs:
            with contextlib.suppress(OSError):
                i.sock.close()
        for n in nodes_:
            n.stop()
