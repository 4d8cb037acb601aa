"""The core in cluster mode and the cluster shell, on in-memory nodes (no sockets, no Redis).

Two ChatCores, each behind a ClusterNode on a shared MemoryHub, form a two-node chat in
one process; a tiny router plays both servers: outputs for a connection go to its
transcript, cluster actions go to the node's shell, engine events are pumped back.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

from tcplab.chat.cluster.engine import MemoryEngine, MemoryHub
from tcplab.chat.cluster.node import ClusterNode
from tcplab.chat.protocol import CLUSTER_ACTIONS, ChatCore, Claim, Close, Limits, Relay


class Net:
    def __init__(self, names: tuple[str, ...] = ("n1", "n2")) -> None:
        self.hub = MemoryHub()
        ticks = itertools.count(1000)  # one wall clock for all nodes, a second a reading
        self.nodes = {n: ClusterNode(ChatCore(Limits(rate=0), clustered=True), MemoryEngine(self.hub, n),
                                     clock=lambda: float(next(ticks)))
                      for n in names}
        self.got: dict[tuple[str, int], list[str]] = {}
        self.actions: list[tuple[str, int, object]] = []
        self.now = 1.0
        self.settle()

    def apply(self, node: str, outputs) -> None:
        for conn, item in outputs:
            if isinstance(item, CLUSTER_ACTIONS):
                self.actions.append((node, conn, item))
                self.apply(node, self.nodes[node].act(conn, item, self.now))
            elif isinstance(item, Close):
                self.got.setdefault((node, conn), []).append("<close>")
            else:
                self.got.setdefault((node, conn), []).extend(item.decode().splitlines())

    def settle(self) -> None:
        for _ in range(10):
            for name, shell in self.nodes.items():
                self.apply(name, shell.pump(self.now))

    def connect(self, node: str, conn: int) -> None:
        self.apply(node, self.nodes[node].core.connect(conn, self.now))

    def send(self, node: str, conn: int, data: bytes) -> None:
        self.apply(node, self.nodes[node].core.receive(conn, data, self.now))
        self.settle()

    def drop(self, node: str, conn: int) -> None:
        self.apply(node, self.nodes[node].core.disconnect(conn, "gone"))
        self.settle()

    def login(self, node: str, conn: int, nick: str) -> None:
        self.connect(node, conn)
        self.send(node, conn, nick.encode() + b"\n")
        assert any("Welcome" in ln for ln in self.take(node, conn)), nick

    def take(self, node: str, conn: int) -> list[str]:
        return self.got.pop((node, conn), [])

    def online(self, node: str) -> list[str]:
        line = self.nodes[node].core.online_line().decode().strip()
        body = line.split(":", 1)[1]
        return body.split(",") if body else []


def test_login_goes_through_the_cluster_and_names_are_unique() -> None:
    net = Net()
    net.login("n1", 1, "Alice")
    assert [type(a) for _, _, a in net.actions] == [Claim]
    net.connect("n2", 1)
    net.send("n2", 1, b"ALICE\n")
    assert any("already taken" in ln for ln in net.take("n2", 1))  # known remote name: at once
    assert len(net.actions) == 1
    net.login("n2", 1, "Bob")
    assert net.online("n1") == net.online("n2") == ["Alice", "Bob"]


def test_lines_pipelined_behind_the_nickname_wait_for_the_claim() -> None:
    net = Net()
    net.login("n2", 5, "Bob")
    net.connect("n1", 1)
    net.nodes["n1"].engine.hub.up = True
    # Nickname and two messages in one segment: the messages must not be taken as nicknames.
    core = net.nodes["n1"].core
    outputs = core.receive(1, b"Alice\nBob: first\n/users\n", net.now)
    assert [type(i) for _, i in outputs] == [Claim]
    net.apply("n1", outputs)
    net.settle()
    lines = net.take("n1", 1)
    assert lines[0].startswith("System: Welcome")
    assert lines[-1].startswith("ONLINE_USERS:") and "Bob" in lines[-1]
    assert net.take("n2", 5) == ["Alice: first"]


def test_relay_broadcast_and_undeliverable() -> None:
    net = Net()
    net.login("n1", 1, "Alice")
    net.login("n1", 2, "Carol")
    net.login("n2", 1, "Bob")
    net.take("n1", 1), net.take("n1", 2)
    net.send("n1", 1, b"bob: hi there\n")
    assert net.take("n2", 1) == ["Alice: hi there"]
    assert isinstance(net.actions[-1][2], Relay)
    net.send("n2", 1, b"*: all of you\n")
    assert net.take("n1", 1) == ["* Bob: all of you"] and net.take("n1", 2) == ["* Bob: all of you"]
    assert net.take("n2", 1) == []
    # Bob's node forgets him before the message arrives: the sender is told.
    bob_core = net.nodes["n2"].core
    bob_core.users.pop("bob")
    bob_core._by_bytes.pop(b"Bob")
    net.send("n1", 1, b"Bob: still there?\n")
    assert any("not delivered" in ln and "Bob" in ln for ln in net.take("n1", 1))


def test_leave_and_disconnect_during_claim() -> None:
    net = Net()
    net.login("n1", 1, "Alice")
    net.login("n2", 1, "Bob")
    net.drop("n2", 1)
    assert net.online("n1") == ["Alice"]
    assert "bob" not in net.hub.leases
    # A client that disconnects while its claim is in flight leaves no lease behind.
    net.connect("n2", 2)
    core2 = net.nodes["n2"].core
    outputs = core2.receive(2, b"Zed\n", net.now)
    net.apply("n2", outputs)  # the claim is made (the hub grants it at once)...
    net.apply("n2", core2.disconnect(2, "gone"))  # ...the user leaves before the answer is read
    net.settle()
    assert "zed" not in net.hub.leases and net.online("n1") == ["Alice"]


def test_cluster_down_refuses_logins_but_not_local_chat() -> None:
    net = Net()
    net.login("n1", 1, "Alice")
    net.login("n1", 2, "Carol")
    net.login("n2", 1, "Bob")
    net.take("n1", 1)
    net.hub.up = False
    net.send("n1", 1, b"Carol: local still works\n")
    assert net.take("n1", 2)[-1] == "Alice: local still works"
    net.send("n1", 1, b"Bob: remote?\n")
    assert any("not delivered" in ln and "Redis" in ln for ln in net.take("n1", 1))
    net.connect("n1", 3)
    net.send("n1", 3, b"Newcomer\n")
    assert any("Cannot log in now" in ln for ln in net.take("n1", 3))
    net.send("n1", 3, b"/users\n")  # still at the nickname prompt, not logged in
    assert any("Log in first" in ln for ln in net.take("n1", 3))


def test_revoked_user_returns_to_the_nickname_prompt() -> None:
    net = Net()
    net.login("n1", 1, "Eve")
    net.login("n2", 1, "Watcher")
    out = net.nodes["n1"].core.revoke(1)
    net.apply("n1", out)
    lines = net.take("n1", 1)
    assert any("earlier login" in ln and "Choose another nickname" in ln for ln in lines)
    assert "Eve" not in net.online("n1")
    net.send("n1", 1, b"Eve Two\n")
    assert any("Welcome, Eve Two" in ln for ln in net.take("n1", 1))


def test_remote_roster_replaces_and_reports_deltas() -> None:
    core = ChatCore(Limits(rate=0), clustered=True)
    core.remote_roster([("a", "A", (1, "n2:1")), ("b", "B", (2, "n2:2"))])
    gen = core.roster_gen
    assert core.online_line() == b"ONLINE_USERS:A,B\n"
    core.remote_roster([("b", "B", (2, "n2:2")), ("c", "C", (3, "n2:3"))])
    assert core.online_line() == b"ONLINE_USERS:B,C\n" and core.roster_gen > gen
    assert core._list_bytes == len(core.online_line())  # the size used for list budgets


def test_a_single_server_never_imports_the_cluster() -> None:
    code = ("import sys\n"
            "from tcplab.chat.server import ChatServer\n"
            "from tcplab.cli import build_parser\n"
            "build_parser('server')\n"
            "s = ChatServer('127.0.0.1', 0)\n"
            "assert not [m for m in sys.modules if m.startswith('tcplab.chat.cluster')], sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_what_comes_from_the_cluster_is_checked() -> None:
    core = ChatCore(Limits(rate=0), clustered=True)
    core.connect(1, 0.0)
    core.receive(1, b"Alice\n", 0.0)
    core.login_result(1, None, 0.0)
    # Names that would corrupt lists or pose as the server, or whose key does not match.
    for key, nick in (("system", "System"), ("a,b", "a,b"), ("x", "y"), ("*x", "*x")):
        core.remote_join(key, nick)
    assert core.remote == {}
    core.remote_join("bob", "Bob")
    ok, _ = core.deliver_many([(b"1", b"Bob", b"Alice", b"hi")])
    assert ok == [(1, b"Bob: hi\n")]
    # A sender the presence directory does not know, or bytes that are not one UTF-8 line.
    for item in ((b"1", b"System", b"Alice", b"Server is shutting down."),
                 (b"1", b"Bob", b"Alice", b"\xff\xfe"), (b"1", b"Bob", b"Alice", b"")):
        got, missing = core.deliver_many([item])
        assert got == [] and missing == []
    assert core.deliver_all(b"System", b"x") == [] and core.deliver_all(b"Bob", b"x")


def test_remote_senders_are_told_when_a_local_recipient_is_dropped() -> None:
    net = Net()
    net.login("n1", 1, "Alice")
    net.login("n2", 1, "Bob")
    net.take("n1", 1)
    core2 = net.nodes["n2"].core
    pending = b"Alice: one\nAlice: two\n* Alice: three\n"
    net.apply("n2", core2.undelivered(1, pending))
    net.settle()
    assert net.take("n1", 1) == [
        "System: 3 message(s) to 'Bob' not delivered: Bob was disconnected."]


def test_every_node_lists_everyone_in_cluster_login_order() -> None:
    net = Net(("n1", "n2", "n3"))
    order = [("n2", 1, "Bob"), ("n1", 1, "Alice"), ("n3", 1, "Carol"), ("n1", 2, "Dave"),
             ("n2", 2, "Eve")]
    for node, conn, nick in order:
        net.login(node, conn, nick)
    names = [nick for _, _, nick in order]
    assert net.online("n1") == net.online("n2") == net.online("n3") == names
    net.drop("n1", 1)
    net.login("n3", 2, "Alice")  # the name again, now the latest login
    want = ["Bob", "Carol", "Dave", "Eve", "Alice"]
    assert net.online("n1") == net.online("n2") == net.online("n3") == want
    # A node that (re)reads the whole roster at once still lists in login order.
    core = net.nodes["n3"].core
    members = [m for m in net.hub.leases.values() if m.node != "n3"]
    core.remote_roster([(m.key, m.nick, m.rank) for m in reversed(members)])
    assert net.online("n3") == want


def _irc_login(net: Net, node: str, conn: int, nick: str, irc) -> None:
    net.apply(node, net.nodes[node].core.connect(conn, net.now, dialect=irc))
    net.send(node, conn, f"NICK {nick}\r\nUSER {nick.lower()} 0 * :{nick}\r\n".encode())
    assert any(" 001 " in ln for ln in net.take(node, conn)), nick


def test_a_leave_crosses_nodes_with_its_reason() -> None:
    """An IRC user of one node sees another node's users leave as local ones do: with their
    QUIT message, or why their connection ended — and what comes from the cluster as a
    reason is cleaned and bounded like any network text."""
    from tcplab.chat.irc import IrcDialect

    irc = IrcDialect("today")
    net = Net()
    _irc_login(net, "n1", 1, "watcher", irc)
    _irc_login(net, "n2", 1, "quitter", irc)
    net.login("n2", 2, "Native")
    _irc_login(net, "n2", 3, "sneaky", irc)
    net.take("n1", 1)
    # A QUIT message crosses as typed ("Quit: " is the IRC dialect's, as on one server).
    net.send("n2", 1, b"QUIT :off to lunch\r\n")
    net.apply("n2", net.nodes["n2"].core.disconnect(1, "closed by client"))
    net.settle()
    assert [ln for ln in net.take("n1", 1) if " QUIT " in ln] == [
        ":quitter!native@native.tcplab QUIT :Quit: off to lunch"]
    # A native user whose connection was reset: the core's reason, in IRC's words.
    net.apply("n2", net.nodes["n2"].core.disconnect(2, "connection reset"))
    net.settle()
    assert [ln for ln in net.take("n1", 1) if " QUIT " in ln] == [
        ":Native!native@native.tcplab QUIT :Connection reset by peer"]
    # A reason forged by a hostile node: escapes, line breaks and length do not survive.
    stand_in = net.nodes["n1"].core.remote
    assert "sneaky" in stand_in
    forged = "\x1b[2Jpwned\r\nPRIVMSG watcher :fake" + "x" * 5000
    out = net.nodes["n1"].core.remote_leave("sneaky", forged)
    lines = b"".join(item for _, item in out if isinstance(item, bytes)).split(b"\r\n")
    assert len(lines) == 2 and lines[1] == b"", lines  # one line only
    assert b"\x1b" not in lines[0] and b"PRIVMSG watcher :fake" in lines[0]
    assert len(lines[0]) < 300
    # An empty or blank reason falls back to the plain one.
    _irc_login(net, "n2", 4, "blank", irc)
    net.take("n1", 1)
    out = net.nodes["n1"].core.remote_leave("blank", "   ")
    assert b"QUIT :" in out[0][1] and out[0][1].rstrip().endswith(b"QUIT :Connection closed")
