"""The client core's event API over real sockets, as a GUI would use it from its own thread."""

from __future__ import annotations

import queue
import threading
import time

from tcplab.chat.client import (
    BroadcastMessage,
    ChatClient,
    Connected,
    Disconnected,
    LoggedIn,
    LoginRefused,
    OnlineUsers,
    PrivateMessage,
    SystemNotice,
    UserJoined,
    UserLeft,
)
from tcplab.chat.protocol import Code, Limits
from tests.chat.helpers import RawClient, free_port, running_server, wait_until


def started(server, nick, **kwargs) -> ChatClient:
    client = ChatClient(*server.address, **kwargs)
    client.start()
    assert isinstance(client.wait_for(Connected, Disconnected), Connected)
    client.login(nick)
    event = client.wait_for(LoggedIn, LoginRefused)
    assert event == LoggedIn(nick, event.text)
    return client


def test_events_for_messages_lists_and_errors():
    with running_server() as server:
        alice = started(server, "Alice")
        assert alice.wait_for(OnlineUsers) == OnlineUsers(("Alice",))
        bob = started(server, "Bob")
        assert alice.wait_for(OnlineUsers) == OnlineUsers(("Alice", "Bob"))
        assert alice.online == ("Alice", "Bob")
        bob.send("Alice", "hi there: with a colon")
        assert alice.wait_for(PrivateMessage) == PrivateMessage("Bob", "hi there: with a colon")
        bob.broadcast("to all")
        assert alice.wait_for(BroadcastMessage) == BroadcastMessage("Bob", "to all")
        alice.send("Nobody", "x")
        notice = alice.wait_for(SystemNotice)
        assert notice.code == Code.NO_SUCH_NICK and notice.is_error
        bob.close()
        assert bob.wait_for(Disconnected) == Disconnected("closed", by_user=True)
        assert alice.wait_for(OnlineUsers) == OnlineUsers(("Alice",))
        alice.close()


def test_login_refused_then_retry_on_same_connection():
    with running_server() as server:
        alice = started(server, "Alice")
        other = ChatClient(*server.address)
        other.start()
        other.wait_for(Connected)
        other.login("ALICE")
        refused = other.wait_for(LoggedIn, LoginRefused)
        assert isinstance(refused, LoginRefused) and refused.code == Code.NICK_IN_USE
        other.login("System")
        assert other.wait_for(LoggedIn, LoginRefused).code == Code.BAD_NICK
        other.login("Carol")
        assert isinstance(other.wait_for(LoggedIn, LoginRefused), LoggedIn)
        assert other.nick == "Carol"
        alice.close()
        other.close()


def test_sending_from_many_threads_at_once():
    with running_server() as server:
        sink = RawClient(server.address)
        sink.login("Sink")
        client = started(server, "Writer")

        def writer(k: int) -> None:
            for i in range(50):
                assert client.send("Sink", f"t{k} m{i}")

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        got = [sink.expect("Writer:") for _ in range(200)]
        assert sorted(got) == sorted(f"Writer: t{k} m{i}" for k in range(4) for i in range(50))
        for k in range(4):  # each thread's own messages keep their order
            mine = [g for g in got if g.startswith(f"Writer: t{k} ")]
            assert mine == [f"Writer: t{k} m{i}" for i in range(50)]
        client.close()


def test_unreachable_server_gives_disconnected_event():
    client = ChatClient("127.0.0.1", free_port(), connect_timeout=2)
    client.start()
    event = client.wait_for(Connected, Disconnected)
    assert isinstance(event, Disconnected) and not event.by_user
    assert "cannot connect to 127.0.0.1:" in event.reason


def test_server_shutdown_gives_notice_then_disconnected():
    with running_server() as server:
        client = started(server, "Alice")
        server.request_shutdown()
        notice = client.wait_for(SystemNotice)
        assert notice.code == Code.SHUTTING_DOWN
        event = client.wait_for(Disconnected)
        assert not event.by_user and "server closed" in event.reason


def test_close_sends_fin_after_queued_lines():
    with running_server() as server:
        sink = RawClient(server.address)
        sink.login("Sink")
        client = started(server, "Quitter")
        for i in range(100):
            client.send("Sink", f"last words {i}")
        client.close()
        assert sink.expect("Quitter: last words 99") == "Quitter: last words 99"
        sink.expect_list(["Sink"])
        assert client.send("Sink", "too late") is False


def test_password_and_deltas():
    with running_server(limits=Limits(rate=0, password="pw")) as server:
        watcher = started(server, "Watcher", password="pw", deltas=True)
        joiner = started(server, "Joiner", password="pw")
        assert watcher.wait_for(UserJoined) == UserJoined("Joiner")
        assert watcher.online == ("Watcher", "Joiner")
        joiner.close()
        assert watcher.wait_for(UserLeft) == UserLeft("Joiner")
        assert watcher.online == ("Watcher",)
        wrong = ChatClient(*server.address, password="nope")
        wrong.start()
        wrong.wait_for(Connected)
        wrong.login("Mallory")
        assert wrong.wait_for(LoggedIn, LoginRefused).code == Code.PASSWORD
        assert isinstance(wrong.wait_for(Disconnected), Disconnected)
        watcher.close()


def test_keepalive_ping_prevents_idle_timeout():
    with running_server(limits=Limits(rate=0, idle_timeout=1.0)) as server:
        client = started(server, "Lurker", ping_interval=0.3)
        time.sleep(2.0)
        assert wait_until(lambda: server.client_count() == 1, 1)
        assert client.connected
        client.close()


def test_bounded_event_queue_applies_backpressure_not_memory():
    with running_server(max_output=32 * 1024) as server:
        sender = RawClient(server.address)
        sender.login("Sender")
        stalled = started(server, "Stalled", max_events=10)  # a GUI that stopped polling
        polled = started(server, "Polled")  # a GUI that keeps polling
        got = []
        payload = "y" * 500
        for i in range(4000):
            sender.send(f"Stalled: {i} {payload}")
            sender.send(f"Polled: {i}")
            if i % 50 == 0:
                time.sleep(0.005)  # a pace any polling reader keeps up with
                while True:
                    try:
                        got.append(polled.events.get_nowait())
                    except queue.Empty:
                        break
            if server.client_count() == 2:
                break
        # The stalled reader never grew past its queue bound; the server dropped it.
        assert wait_until(lambda: server.client_count() == 2, 20)
        assert stalled.events.qsize() <= 10
        assert sender.expect("System: 404").endswith("Stalled was disconnected.")
        polled.send("Sender", "still here")
        assert sender.expect("Polled:") == "Polled: still here"
        stalled.close()
        polled.close()
