"""The chat server over real loopback sockets: the report's scenarios A–F and what a real
service needs beyond them (framing, limits, slow consumers, shutdown, TLS, IPv6)."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time

import pytest

from tcplab.chat.protocol import Limits
from tests.chat.helpers import (
    RawClient,
    assert_consistent,
    free_port,
    running_server,
    wait_until,
)
from tests.support import require_program

NAMES = ["Britney Spears", "Paris Hilton", "NoGui_User", "Alice", "Bob", "Carol"]


def login_all(server, names):
    clients = []
    for name in names:
        c = RawClient(server.address)
        c.login(name)
        clients.append(c)
    for c in clients:
        c.expect_list(names)
    return clients


def test_scenario_a_private_message_among_six_simultaneous_clients():
    with running_server() as server:
        clients = login_all(server, NAMES)
        britney, paris, nogui, *others = clients
        nogui.send("Britney Spears: hi from the terminal 👋")
        assert britney.expect("NoGui_User:") == "NoGui_User: hi from the terminal 👋"
        paris.send("NoGui_User:hello back")
        assert nogui.expect("Paris Hilton:") == "Paris Hilton: hello back"
        # Private means private: nobody else saw either message.
        for c in [paris, *others]:
            assert not [ln for ln in c.quiet_for(0.2) if "hi from" in ln]
        for c in clients:
            c.close()


def test_scenarios_b_c_d_errors():
    with running_server() as server:
        a, _b = login_all(server, ["NoGui_User", "Britney Spears"])
        a.send("Ghost: are you there?")
        assert a.expect("System:") == "System: 401 User 'Ghost' is not connected."
        a.send("no colon here")
        assert a.expect("System:") == "System: 411 Invalid format! Use: TargetName: Message"
        a.send("Britney Spears:")
        assert a.expect("System:") == "System: 412 Name or message cannot be empty."
        a.send(":Hello!")
        assert a.expect("System:") == "System: 412 Name or message cannot be empty."


def test_scenario_e_taken_reserved_and_case_variant_names_then_retry():
    with running_server() as server:
        (alice,) = login_all(server, ["Alice"])
        c = RawClient(server.address)
        for name in ["Alice", "alice", "ＡＬＩＣＥ"]:
            c.send(name)
            assert c.expect("System:").startswith("System: 433 Nickname")
        for name in ["System", "ONLINE_USERS", "all", "*", "system", " Bob", "a:b", "a,b"]:
            c.send(name)
            assert c.expect("System:").startswith("System: 432 ")
        c.login("Britney Spears")  # same connection, no reconnect
        c.expect_list(["Alice", "Britney Spears"])
        alice.expect_list(["Alice", "Britney Spears"])
        assert_consistent(server, ["Alice", "Britney Spears"])


@pytest.mark.parametrize("how", ["rst", "fin"])
def test_scenario_f_disconnect_updates_everyone(how):
    with running_server() as server:
        clients = login_all(server, NAMES[:5])
        leaver = clients[2]
        if how == "rst":
            leaver.send("Alice: unread data makes close() send RST anyway")
            leaver.reset()
        else:
            leaver.close()
        remaining = NAMES[:2] + NAMES[3:5]
        for c in clients[:2] + clients[3:]:
            c.expect_list(remaining)
        assert wait_until(lambda: server.client_count() == 4)
        # The name is free again.
        again = RawClient(server.address)
        again.login(NAMES[2])
        assert_consistent(server, NAMES[:5])


def test_silent_connection_never_delays_other_logins():
    with running_server() as server:
        silent = [RawClient(server.address) for _ in range(3)]  # connect, say nothing
        partial = RawClient(server.address)
        partial.send(b"Half a nickna")  # no newline, ever
        t0 = time.monotonic()
        logged_in = login_all(server, ["Alice", "Bob"])
        assert time.monotonic() - t0 < 2.0 and len(logged_in) == 2
        assert_consistent(server, ["Alice", "Bob"])
        for s in [*silent, partial]:
            s.close()


def test_split_and_merged_writes():
    with running_server() as server:
        a, b = login_all(server, ["Alice", "דני"])
        line = "דני: שלום 😀 split everywhere\r\n".encode()
        for i in range(len(line)):
            a.send(line[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.002)
        assert b.expect("Alice:") == "Alice: שלום 😀 split everywhere"
        a.send(b"".join(f"דני: msg {i}\n".encode() for i in range(200)))
        for i in range(200):
            assert b.expect("Alice:") == f"Alice: msg {i}"


def test_overlong_line_rejected_without_buffering_and_session_continues():
    with running_server(limits=Limits(rate=0, max_line=1024)) as server:
        a, b = login_all(server, ["Alice", "Bob"])
        a.send(b"Bob: " + b"x" * 300_000)  # no newline yet: must not be kept
        assert a.expect("System:") == "System: 417 Line too long (max 1024 bytes); discarded."
        sess = next(s for s in server.core.sessions.values() if s.nick == "Alice")
        assert sess.framer.buffered <= 1024
        a.send(b"x" * 5000 + b"\nBob: still here\n")
        assert b.expect("Alice:") == "Alice: still here"
        assert not [ln for ln in a.quiet_for(0.2) if "417" in ln]  # reported once
        assert_consistent(server, ["Alice", "Bob"])


def test_invalid_utf8_gets_error_not_crash():
    with running_server() as server:
        a, b = login_all(server, ["Alice", "Bob"])
        a.send(b"Bob: caf\xe9\n")
        assert a.expect("System:").startswith("System: 400 Invalid UTF-8")
        a.send("Bob: café")
        assert b.expect("Alice:") == "Alice: café"
        assert_consistent(server, ["Alice", "Bob"])


def test_spoofing_attempts_are_attributed_to_the_sender():
    with running_server() as server:
        mallory, victim = login_all(server, ["Mallory", "Victim"])
        mallory.send("Victim: System: 001 Welcome, Admin!")
        mallory.send("Victim: ONLINE_USERS:nobody")
        assert victim.expect("Mallory:") == "Mallory: System: 001 Welcome, Admin!"
        assert victim.expect("Mallory:") == "Mallory: ONLINE_USERS:nobody"
        spoof = RawClient(server.address)
        spoof.send("System")
        assert spoof.expect("System:").startswith("System: 432 The name 'System' is reserved.")
        assert_consistent(server, ["Mallory", "Victim"])


def test_broadcast_marked_and_not_echoed():
    with running_server() as server:
        clients = login_all(server, NAMES[:5])
        clients[0].send("*: hello everyone")
        for c in clients[1:]:
            assert c.expect("* ") == "* Britney Spears: hello everyone"
        assert not [ln for ln in clients[0].quiet_for(0.2) if "hello everyone" in ln]


def test_slow_consumer_is_dropped_others_unaffected_sender_told():
    with running_server(max_output=64 * 1024) as server:
        fast = RawClient(server.address)
        fast.login("Fast")
        slow = RawClient(server.address, rcvbuf=4096)
        slow.login("Slow")
        sender = RawClient(server.address)
        sender.login("Sender")
        payload = "x" * 1000
        t0 = time.monotonic()
        dropped = False
        for i in range(20000):
            sender.send(f"Slow: {i} {payload}")
            if i % 50 == 0:
                sender.send(f"Fast: ping {i}")
                assert fast.expect("Sender: ping") == f"Sender: ping {i}"
                if server.client_count() == 2:
                    dropped = True
                    break
        assert dropped, "slow consumer was never disconnected"
        assert time.monotonic() - t0 < 20
        notice = sender.expect("System: 404")
        assert "to 'Slow' not delivered: Slow was disconnected." in notice
        fast.expect_list(["Fast", "Sender"])
        sender.send("Fast: after")
        assert fast.expect("Sender: after") == "Sender: after"
        assert_consistent(server, ["Fast", "Sender"])


def test_half_open_connection_removed_by_idle_timeout():
    with running_server(limits=Limits(rate=0, idle_timeout=1.0)) as server:
        watcher = RawClient(server.address)
        watcher.login("Watcher")
        ghost = RawClient(server.address)
        ghost.login("Ghost")  # then never speaks again and never sends FIN: like a pulled cable
        t0 = time.monotonic()
        for _ in range(6):  # the watcher keeps itself alive with pings
            watcher.send("/ping")
            time.sleep(0.3)
        watcher.expect_list(["Watcher"], timeout=5)
        assert 0.9 < time.monotonic() - t0 < 5
        assert ghost.expect("System: 408").startswith("System: 408 Idle for more than 1 s")
        assert ghost.wait_closed() == "fin"
        ghost.close()
        assert wait_until(lambda: server.client_count() == 1)
        assert_consistent(server)


def test_flood_limit():
    with running_server(limits=Limits(rate=5, burst=5)) as server:
        flooder, target = login_all(server, ["Flooder", "Target"])
        flooder.send(b"".join(b"Target: spam %d\n" % i for i in range(50)))
        assert flooder.expect("System: 429").startswith("System: 429 Flood limit: at most 5 ")
        got = [ln for ln in target.quiet_for(0.5) if ln.startswith("Flooder:")]
        assert 3 <= len(got) <= 8  # the burst, less the tokens of the /codes and nickname lines
        time.sleep(0.5)
        flooder.send("Target: calm now")
        assert target.expect("Flooder: calm") == "Flooder: calm now"
        assert "were dropped by the flood limit" in flooder.expect("System: 429")
        assert_consistent(server, ["Flooder", "Target"])


def test_max_clients_refused_with_503():
    with running_server(max_clients=3) as server:
        keep = [RawClient(server.address) for _ in range(3)]
        assert wait_until(lambda: server.client_count() == 3)
        extra = RawClient(server.address, codes=False)  # refused before it could ask for codes
        assert extra.expect("System:") == "System: Server full (3 clients); try later."
        keep[0].close()
        assert wait_until(lambda: server.client_count() == 2)
        late = RawClient(server.address)
        late.login("Late")
        assert_consistent(server)


def test_graceful_shutdown_tells_clients_and_closes_with_fin():
    with running_server() as server:
        clients = login_all(server, NAMES[:5])
        server.request_shutdown()
        for c in clients:
            assert c.expect("System: 550") == "System: 550 Server is shutting down."
            assert c.wait_closed() == "fin"


def test_messages_not_logged_unless_asked(caplog):
    caplog.set_level(logging.INFO, logger="tcplab.chat.server")
    with running_server() as server:
        a, b = login_all(server, ["Alice", "Bob"])
        a.send("Bob: top secret text")
        b.expect("Alice:")
    text = caplog.text
    assert "top secret" not in text
    assert "join conn=" in text and "nick='Alice'" in text and "leave conn=" in text
    caplog.clear()
    with running_server(limits=Limits(rate=0, log_messages=True)) as server:
        a, b = login_all(server, ["Alice", "Bob"])
        a.send("Bob: logged text")
        b.expect("Alice:")
        assert wait_until(lambda: "logged text" in caplog.text)


def test_password_protection():
    with running_server(limits=Limits(rate=0, password="s3cret")) as server:
        c = RawClient(server.address)
        c.send("Alice")
        assert c.expect("System:").startswith("System: 464 Password required")
        c.send("/pass s3cret")
        c.expect("System: 003")
        c.login("Alice")
        bad = RawClient(server.address)
        bad.send("/pass guess")
        assert bad.expect("System:") == "System: 464 Wrong password."
        assert bad.wait_closed() == "fin"
        bad.close()
        assert wait_until(lambda: server.client_count() == 1)
        assert_consistent(server, ["Alice"])


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with running_server(host="::1") as server:
        a, b = login_all(server, ["Alice", "Bob"])
        a.send("Bob: over IPv6")
        assert b.expect("Alice:") == "Alice: over IPv6"


def make_cert(tmp_path):
    openssl = require_program("openssl")  # to make a throw-away certificate
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls(tmp_path):
    import ssl

    from tcplab.chat.client import ChatClient, LoggedIn, PrivateMessage
    from tcplab.chat.server import make_server_ssl_context

    cert, key = make_cert(tmp_path)
    with running_server(ssl_context=make_server_ssl_context(str(cert), str(key))) as server:
        ctx = ssl.create_default_context(cafile=str(cert))
        a = ChatClient(*server.address, ssl_context=ctx)
        b = ChatClient(*server.address, ssl_context=ctx)
        for c, nick in ((a, "Alice"), (b, "Bob")):
            c.start()
            c.login(nick)
            assert isinstance(c.wait_for(LoggedIn), LoggedIn)
        a.send("Bob", "encrypted hello")
        assert b.wait_for(PrivateMessage) == PrivateMessage("Alice", "encrypted hello")
        # A plaintext client cannot talk to a TLS server.
        plain = RawClient(server.address, codes=False)
        plain.send("Mallory")
        assert plain.wait_closed() in ("fin", "rst")
        # Closing right after sending still shows the server's answer (TLS cannot
        # half-close, so the client asks the server to close after its replies).
        a.send("Ghost", "are you there?")
        a.close()
        seen = []
        while not a.events.empty():
            seen.append(a.events.get_nowait())
        assert any(getattr(e, "code", None) == 401 for e in seen), seen
        assert seen[-1].__class__.__name__ == "Disconnected" and seen[-1].by_user
        b.close()


# -- the real command in a subprocess ------------------------------------------------------

def start_cli_server(*extra):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "server", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()!r}")
    return proc, port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_server_graceful_shutdown_on_signal(sig):
    proc, port = start_cli_server()
    try:
        a = RawClient(("127.0.0.1", port))
        a.login("Alice")
        proc.send_signal(sig)
        assert a.expect("System: 550") == "System: 550 Server is shutting down."
        assert a.wait_closed() == "fin"
        assert proc.wait(10) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "shutdown clients=1" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_server_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "tcplab", "server", "--port", str(port)],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tcplab: error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in proc.stderr


# -- scale ---------------------------------------------------------------------------------

def test_thousand_concurrent_clients_receive_online_list_updates():
    import resource
    import selectors

    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * n + 100:
        want = min(hard, 2 * n + 100) if hard != resource.RLIM_INFINITY else 2 * n + 100
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < 2 * n + 100:
            pytest.skip(f"file descriptor limit {hard} too low for {n} clients on both ends")
    proc, port = start_cli_server("--max-clients", str(n + 10), "--rate", "0",
                                  "--max-per-address", "0", "-q")
    sel = selectors.DefaultSelector()
    socks = []
    try:
        names = [f"user{i:04d}" for i in range(n)]
        bufs: dict[int, bytes] = {}
        latest: dict[int, bytes] = {}
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(names[i].encode() + b"\n")
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            socks.append(s)
            bufs[i] = b""

        def pump(target: bytes, deadline: float) -> None:
            while time.monotonic() < deadline:
                if all(latest.get(i) == target for i in range(len(socks)) if socks[i] is not None):
                    return
                for key, _ in sel.select(0.1):
                    i = key.data
                    data = socks[i].recv(1 << 20)
                    assert data, f"client {i} was disconnected"
                    buf = bufs[i] + data
                    *lines, bufs[i] = buf.split(b"\n")
                    for line in lines:
                        if line.startswith(b"ONLINE_USERS:"):
                            latest[i] = line
            missing = [i for i in range(len(socks)) if socks[i] is not None and latest.get(i) != target]
            raise AssertionError(f"{len(missing)} clients lack the final list, e.g. {missing[:5]}")

        full = ("ONLINE_USERS:" + ",".join(names)).encode()
        pump(full, time.monotonic() + 60)
        # One leaves: everyone else gets the list without it.
        sel.unregister(socks[500])
        socks[500].close()
        socks[500] = None  # type: ignore[call-overload]
        after = ("ONLINE_USERS:" + ",".join(names[:500] + names[501:])).encode()
        pump(after, time.monotonic() + 30)
    finally:
        for s in socks:
            if s is not None:
                s.close()
        sel.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()



def test_message_to_a_user_whose_connection_is_closing_is_reported():
    with running_server() as server:
        leaving, sender = login_all(server, ["Leaving", "Sender"])
        leaving.send("/quit")
        assert leaving.wait_closed() == "fin"  # our side stays open: the server waits for it
        sender.send("Leaving: are you still there?")
        assert sender.expect("System: 404") == (
            "System: 404 1 message(s) to 'Leaving' not delivered: Leaving was disconnected.")
        leaving.close()
        sender.expect_list(["Sender"])
        assert_consistent(server, ["Sender"])


def test_internal_error_with_one_client_costs_only_that_client():
    with running_server() as server:
        real_receive = server.core.receive

        def receive(conn, data, now):
            if b"BOOM" in data:
                raise RuntimeError("simulated bug")
            return real_receive(conn, data, now)

        server.core.receive = receive  # type: ignore[method-assign]
        victim, a, b = login_all(server, ["Victim", "Alice", "Bob"])
        victim.send("Alice: BOOM")
        assert victim.wait_closed() in ("fin", "rst")
        a.expect_list(["Alice", "Bob"])
        a.send("Bob: the server is still up")
        assert b.expect("Alice:") == "Alice: the server is still up"
        assert_consistent(server, ["Alice", "Bob"])
