"""``tcplab client`` as a clumsy user and a hostile peer try it: pastes, bad bytes, bad
nicknames, passwords, commands, a non-UTF-8 terminal, reconnects and scripted runs — over
real sockets against a real server, on a pseudo-terminal (pexpect) or through pipes."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pexpect
import pytest

from tcplab.chat.client import ChatClient, Connected, Disconnected, LoggedIn, LoginRefused, Pong
from tcplab.chat.protocol import COMMANDS, Code, Limits, nick_problem
from tests.chat.helpers import RawClient, free_port, running_server, wait_until
from tests.chat.test_cli import ENV, finish, spawn_client

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def roster_consistent(server) -> bool:
    """Every user in the roster has a live session (no ghosts) and the session knows it."""
    core = server.core
    return all(core.sessions.get(s.conn) is s and s.key == key for key, s in core.users.items())


def spawn_env(*args: str, env: dict | None = None, **kw) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "tcplab", "client", *args], encoding="utf-8",
                         timeout=15, env={**ENV, **(env or {})}, dimensions=(40, 120), **kw)


class LineModeClient:
    """``tcplab client`` with pipes for stdin/stdout (line mode), read line by line."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tcplab", "client", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=lambda: [self.lines.put(ln) for ln in self.proc.stdout],
                                        daemon=True)
        self._reader.start()

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def next_line(self, timeout: float = 15) -> str:
        return self.lines.get(timeout=timeout).decode("utf-8", "replace").rstrip("\n")

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def rest(self) -> list[str]:
        """Every line still unread, once the process has exited."""
        self._reader.join(5)
        out = []
        while not self.lines.empty():
            out.append(self.next_line())
        return out

    def stderr(self) -> str:
        return self.proc.stderr.read().decode()


# --- item 7: pastes, bytes that are not UTF-8, nicknames that used to hang ---------------


def test_bracketed_paste_of_several_lines_sends_one_message_per_line():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        child = spawn_client("--port", str(server.port), "--nick", "Alice")
        try:
            child.expect_exact("Online: Bob, Alice")
            child.send(f"{PASTE_START}Bob: first line\nsecond line\r\n\nthird: with colon{PASTE_END}")
            child.send("\r")
            child.expect_exact("(pasted 3 lines: sent to Bob as 3 messages)")
            assert bob.expect("Alice:") == "Alice: first line"
            assert bob.expect("Alice:") == "Alice: second line"
            assert bob.expect("Alice:") == "Alice: third: with colon"
            # A pasted block of commands and messages is taken line by line.
            child.send(f"{PASTE_START}/users\nBob: after the list{PASTE_END}\r")
            child.expect_exact("Online: Bob, Alice")
            assert bob.expect("Alice:") == "Alice: after the list"
            assert finish(child) == 0
        finally:
            child.close(force=True)
        assert roster_consistent(server)


def test_bytes_that_are_not_utf8_are_refused_with_a_message_on_a_terminal():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        child = spawn_env("--port", str(server.port), "--nick", "Alice", codec_errors="replace")
        try:
            child.expect_exact("Online: Bob, Alice")
            os.write(child.child_fd, b"Bob: caf\xe9 \xff\r")
            child.expect_exact("The line has bytes that are not UTF-8")
            child.sendline("Bob: still here")
            assert bob.expect("Alice:") == "Alice: still here"
            assert finish(child) == 0
        finally:
            child.close(force=True)


def test_bytes_that_are_not_utf8_in_line_mode_and_in_the_nickname():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        client = LineModeClient("--port", str(server.port), env={"LANG": "C.UTF-8"})
        client.write(b"Ali\xe9\nAlice\nBob: caf\xe9\nBob: fine\nexit\n")
        assert client.wait() == 0, client.stderr()
        out = client.rest()
        assert out[0] == ("Choose a Nickname: System: The line has bytes that are not UTF-8 "
                          "(is the terminal's encoding UTF-8?); not sent. Choose another nickname.")
        assert out[1].startswith("Choose a Nickname: Connected!")
        assert out[2:] == ["Type 'exit' to quit.", "Online: Bob, Alice",
                           "The line has bytes that are not UTF-8 (is the terminal's encoding "
                           "UTF-8?); not sent."]
        assert bob.expect("Alice:") == "Alice: fine"


@pytest.mark.parametrize("bad", ["/nick", "N" * 5000, "*star", "Ali:ce"])
def test_bad_nicknames_are_refused_at_once_and_asked_again(bad):
    why = nick_problem(bad)  # the server's own rules and words, not a copy of them
    assert why is not None
    with running_server() as server:
        child = spawn_client("--port", str(server.port))
        try:
            child.expect_exact("Choose a Nickname:")
            started = time.monotonic()
            child.sendline(bad)
            child.expect_exact(why)
            child.expect_exact("Choose a Nickname:")
            assert time.monotonic() - started < 5
            child.sendline("Alice")
            child.expect_exact("Connected!")
            assert finish(child) == 0
        finally:
            child.close(force=True)
        assert roster_consistent(server)


@pytest.mark.parametrize("nick, code", [("/nick", Code.UNKNOWN_COMMAND),
                                        ("N" * 5000, Code.LINE_TOO_LONG)])
def test_the_servers_421_and_417_during_login_are_a_refused_login(nick, code):
    """Without the client's own check (another client, another server's rules), the core
    still reports the server's answer as a refusal instead of waiting for a welcome."""
    with running_server() as server:
        client = ChatClient(*server.address[:2])
        client.start()
        client.wait_for(Connected)
        try:
            client.login(nick)
            event = client.wait_for(LoginRefused, LoggedIn, timeout=5)
            assert isinstance(event, LoginRefused) and event.code == code
            client.login("Alice")
            assert isinstance(client.wait_for(LoggedIn, LoginRefused, timeout=5), LoggedIn)
        finally:
            client.close()
        assert wait_until(lambda: not server.core.users)
        assert roster_consistent(server)


def test_a_421_for_another_command_during_login_is_not_a_refusal():
    """A server without /codes or /deltas answers them 421 while the nickname is pending."""
    with running_server() as server:
        client = ChatClient(*server.address[:2])
        client.start()
        client.wait_for(Connected)
        try:
            client.send_raw("/frob")
            client.login("Alice")
            assert isinstance(client.wait_for(LoggedIn, LoginRefused, timeout=5), LoggedIn)
        finally:
            client.close()


# --- item 8: a terminal that cannot show Hebrew ---------------------------------------------


def test_ascii_terminal_in_line_mode_degrades_to_escapes_and_keeps_printing():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        client = LineModeClient("--port", str(server.port), "--nick", "Alice",
                                env={"PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"})
        assert client.next_line().startswith("Connected!")
        assert client.next_line() == "Type 'exit' to quit."
        assert client.next_line() == "Online: Bob, Alice"
        bob.send("Alice: שלום 👋")
        assert client.next_line() == r"Bob: \u05e9\u05dc\u05d5\u05dd \U0001f44b"
        bob.send("Alice: second message")
        assert client.next_line() == "Bob: second message"
        client.write(b"exit\n")
        assert client.wait() == 0, client.stderr()


def test_ascii_terminal_on_a_pty_keeps_printing():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        child = spawn_env("--port", str(server.port), "--nick", "Alice",
                          env={"PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"})
        try:
            child.expect_exact("Online: Bob, Alice")
            bob.send("Alice: שלום")
            child.expect_exact("Bob: ")
            bob.send("Alice: after hebrew")
            child.expect_exact("Bob: after hebrew")
            bob.send("* Alice: עוד")
            bob.send("Alice: last")
            child.expect_exact("Bob: last")
            assert finish(child) == 0
        finally:
            child.close(force=True)


# --- item 9: typing while --reconnect reconnects --------------------------------------------


def test_messages_typed_while_reconnecting_are_kept_and_sent_and_the_list_is_stale():
    port = free_port()
    server_cmd = [sys.executable, "-m", "tcplab", "server", "--port", str(port), "-q"]
    first = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True)
    child = second = None
    try:
        assert "listening" in first.stdout.readline()
        carol = RawClient(("127.0.0.1", port))
        carol.login("Carol")
        child = spawn_client("--port", str(port), "--nick", "Alice", "--reconnect")
        child.expect_exact("Online: Carol, Alice")
        first.send_signal(signal.SIGTERM)
        first.wait(10)
        child.expect_exact("Reconnecting to 127.0.0.1:")
        child.sendline("Bob: are you there?")
        child.expect_exact("Not sent yet — reconnecting; it will be sent once reconnected "
                           "(1 waiting).")
        for i in range(2, 21):
            child.sendline(f"Bob: waiting {i}")
            child.expect_exact(f"({i} waiting).")
        child.sendline("Bob: one too many")
        child.expect_exact("Not sent — reconnecting, and 20 messages are already waiting.")
        child.sendline("/users")
        child.expect_exact("Online: Carol, Alice (as of the lost connection; reconnecting)")
        child.sendline("/ping")
        child.expect_exact("Not sent — reconnecting (commands are not kept).")
        second = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True)
        if "listening" not in second.stdout.readline():
            pytest.skip("the port was taken by another process meanwhile")
        bob = RawClient(("127.0.0.1", port))
        bob.login("Bob")
        child.expect_exact("Reconnected; sent 20 waiting message(s).", timeout=20)
        assert bob.expect("Alice:") == "Alice: are you there?"
        assert [bob.expect("Alice:") for _ in range(19)] == [
            f"Alice: waiting {i}" for i in range(2, 21)]
        child.sendline("/users")
        child.expect(r"Online: Bob, Alice\r\n")
        assert finish(child) == 0
    finally:
        if child is not None:
            child.close(force=True)
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# --- item 10: password-protected servers ----------------------------------------------------


def test_password_is_asked_hidden_and_a_wrong_one_is_asked_again():
    with running_server(limits=Limits(rate=0, password="s3cret")) as server:
        child = spawn_client("--port", str(server.port), "--nick", "Alice")
        try:
            child.expect_exact("The server needs a password (you can also give --password "
                               "or set TCPLAB_CHAT_PASSWORD).")
            child.expect_exact("Password:")
            child.sendline("guess")
            child.expect_exact("Wrong password")
            child.expect_exact("Password:")
            child.sendline("s3cret")
            child.expect_exact("Connected!")
            child.expect_exact("Online: Alice")
            seen = child.before
            assert "s3cret" not in seen and "guess" not in seen
            assert "nickname" not in seen.lower()
            assert finish(child) == 0
        finally:
            child.close(force=True)
        assert roster_consistent(server)


def test_a_wrong_password_answered_before_the_nickname_is_pending_is_still_a_refusal():
    """The race a loaded machine hits: /pass's 464 arrives before login() marks a nickname
    pending, so it comes as a notice, followed by the close — not a "connection closed"."""
    from tcplab.chat.cli_client import _answer

    with running_server(limits=Limits(rate=0, password="s3cret")) as server:
        client = ChatClient(*server.address[:2])
        client.start()
        client.wait_for(Connected)
        try:
            client.send_raw("/pass wrong")
            time.sleep(0.5)  # the answer is in before any nickname is offered
            event = _answer(client)
            assert isinstance(event, LoginRefused) and event.code == Code.PASSWORD
        finally:
            client.close()


def test_password_from_the_environment_and_a_clear_error_in_line_mode():
    with running_server(limits=Limits(rate=0, password="s3cret")) as server:
        client = LineModeClient("--port", str(server.port), "--nick", "Alice")
        assert client.wait() == 1
        err = client.stderr()
        assert "needs a password" in err and "--password" in err
        assert "TCPLAB_CHAT_PASSWORD" in err and "nickname" not in err
        client = LineModeClient("--port", str(server.port), "--nick", "Alice",
                                env={"TCPLAB_CHAT_PASSWORD": "s3cret"})
        assert client.next_line().startswith("Connected!")
        client.write(b"exit\n")
        assert client.wait() == 0
        client = LineModeClient("--port", str(server.port), "--nick", "Alice",
                                "--password", "wrong")
        assert client.wait() == 1
        assert "refused the password" in client.stderr()


# --- item 11: commands ----------------------------------------------------------------------


def test_help_in_any_case_lists_every_server_command_and_unknown_ones_get_the_same_list():
    with running_server() as server:
        raw = RawClient(server.address)
        raw.login("Raw")
        raw.send("/frob")
        reply = raw.expect("System: 421")
        server_names = re.findall(r"/\w+", reply.split("commands:")[1])
        assert server_names == [name for name, _help in COMMANDS]
        child = spawn_client("--port", str(server.port), "--nick", "Alice")
        try:
            child.expect_exact("Online: Raw, Alice")
            child.sendline("/HeLp")
            for name, help_text in COMMANDS:
                child.expect_exact(name)
                child.expect_exact(help_text)
            child.expect_exact("exit")
            child.sendline("/frob")
            child.expect_exact("System: Unknown command '/frob'; commands: /users")
            child.sendline("/PING")
            child.expect(r"Pong: \d+\.\d ms round trip")
            child.sendline("/Quit")
            child.expect(pexpect.EOF)
            child.close()
            assert child.exitstatus == 0
            assert "Connection lost" not in child.before
        finally:
            child.close(force=True)


def test_ping_rtt_from_the_core_is_positive_and_keepalives_are_not_reported():
    with running_server() as server:
        client = ChatClient(*server.address[:2], ping_interval=0.05)
        client.start()
        client.wait_for(Connected)
        try:
            client.login("Alice")
            client.wait_for(LoggedIn)
            time.sleep(0.3)  # several keepalive pings go by unreported
            assert client.ping()
            pong = client.wait_for(Pong, timeout=5)
            assert 0 < pong.rtt < 5
            with pytest.raises(TimeoutError):
                client.wait_for(Pong, timeout=0.5)
        finally:
            client.close()


def test_sending_after_the_connection_ended_is_refused_not_silently_queued():
    """What --reconnect relies on to keep a typed line instead of losing it."""
    with running_server() as server:
        client = ChatClient(*server.address[:2])
        client.start()
        client.wait_for(Connected)
        client.login("Alice")
        client.wait_for(LoggedIn)
        assert client.send_raw("Alice: to myself")
        server.request_shutdown()
        client.wait_for(Disconnected)
        assert not client.send_raw("Bob: lost?")
        assert not client.ping()
        client.close()


# --- item 12: join/leave lines instead of lists --------------------------------------------


def test_joins_and_leaves_are_one_line_each_and_long_lists_only_on_users():
    with running_server() as server:
        early = [RawClient(server.address) for _ in range(11)]
        for i, c in enumerate(early):
            c.login(f"U{i:02d}")
        child = spawn_client("--port", str(server.port), "--nick", "Alice")
        log = io.StringIO()
        child.logfile_read = log
        try:
            child.expect_exact("Online: 12 users (type /users to list them)")
            for i in range(15):
                c = RawClient(server.address)
                c.login(f"J{i:02d}")
                child.expect_exact(f"+ J{i:02d} joined")
                c.close()
                child.expect_exact(f"- J{i:02d} left")
            child.sendline("/users")
            child.expect_exact("Online: U00, U01, U02, U03, U04, U05, U06, U07, U08, U09, U10, "
                               "Alice\r\n")
            assert log.getvalue().count("Online:") == 2
            assert finish(child) == 0
        finally:
            child.close(force=True)
        assert roster_consistent(server)


# --- item 13: line mode keeps the order ------------------------------------------------------


def test_line_mode_prints_server_answers_in_input_order():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        client = LineModeClient("--port", str(server.port), "--nick", "Alice")
        client.write(b"Bob:\nnonsense\nGhost: hi\nnonsense\n/frob\nBob: ok\n/users\nexit\n")
        assert client.wait() == 0, client.stderr()
        assert client.rest() == [
            "Connected! Usage: 'TargetName: Your Message'",
            "Type 'exit' to quit.",
            "Online: Bob, Alice",
            "System: Name or message cannot be empty.",
            "Invalid format! Use: TargetName: Message",
            "System: User 'Ghost' is not connected.",
            "Invalid format! Use: TargetName: Message",
            "System: Unknown command '/frob'; commands: "
            + " ".join(name for name, _ in COMMANDS) + ".",
            "Online: Bob, Alice",
        ]
        assert bob.expect("Alice:") == "Alice: ok"


# --- item 14: --bidi --------------------------------------------------------------------------


@pytest.mark.parametrize("args, env, expected", [
    (("--bidi", "on"), {}, "Bob: םלוע םולש"),
    (("--bidi", "off"), {"TERM": "linux"}, "Bob: שלום עולם"),
    ((), {"TERM": "linux"}, "Bob: םלוע םולש"),  # auto: the Linux console does no bidi
    ((), {"TERM": "xterm-256color", "VTE_VERSION": "7200"}, "Bob: שלום עולם"),  # VTE does
])
def test_bidi_reorders_hebrew_for_terminals_without_bidi(args, env, expected):
    env = {"TMUX": "", "STY": "", **env}
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        child = spawn_env("--port", str(server.port), "--nick", "Alice", *args, env=env)
        try:
            child.expect_exact("Online: Bob, Alice")
            bob.send("Alice: שלום עולם")
            child.expect_exact(expected)
            assert finish(child) == 0
        finally:
            child.close(force=True)


def test_bidi_is_documented_in_help():
    out = subprocess.run([sys.executable, "-m", "tcplab", "client", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--bidi {auto,on,off}" in out and "tmux" in out


def test_bidi_auto_follows_the_terminal_and_never_reorders_into_a_pipe():
    from tcplab.chat.cli_client import bidi_enabled

    assert bidi_enabled("auto", True, {"TERM": "linux"})
    assert bidi_enabled("auto", True, {"TERM": "xterm", "TMUX": "/tmp/x,1,0"})
    assert not bidi_enabled("auto", True, {"TERM": "xterm-256color", "VTE_VERSION": "7200"})
    assert not bidi_enabled("auto", False, {"TERM": "linux"})
    assert bidi_enabled("on", False, {}) and not bidi_enabled("off", True, {"TERM": "linux"})


# --- the same class of defect in the other questions -----------------------------------------


@pytest.mark.parametrize("host, status, message", [
    (b"a" * 70 + b".example", 2, "cannot connect to aaaa"),  # a DNS label IDNA refuses
    (b"caf\xe9", 1, "the host name has bytes that are not UTF-8"),
])
def test_an_impossible_host_answer_is_a_clear_error_not_a_traceback(host, status, message):
    client = LineModeClient(env={"LANG": "C.UTF-8"})
    client.write(host + b"\n\nAlice\n")
    assert client.wait() == status
    err = client.stderr()
    assert message in err and "Traceback" not in err


def test_line_mode_ordering_costs_no_round_trip_per_message_and_stays_under_the_flood_limit():
    with running_server(limits=Limits(rate=20, burst=40)) as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        client = LineModeClient("--port", str(server.port), "--nick", "Alice")
        started = time.monotonic()
        client.write(b"".join(b"Bob: m%d\n" % i for i in range(35)) + b"nonsense\nexit\n")
        assert client.wait() == 0, client.stderr()
        assert time.monotonic() - started < 8
        out = client.rest()
        assert out[-1] == "Invalid format! Use: TargetName: Message"
        assert not any("Flood" in ln for ln in out), out
        assert [bob.expect("Alice:") for _ in range(35)] == [f"Alice: m{i}" for i in range(35)]


def test_the_bidi_choices_of_the_parser_are_the_modes_the_client_knows():
    from tcplab.chat.cli_client import BIDI_MODES
    from tcplab.cli.commands.client import BIDI_CHOICES

    assert BIDI_CHOICES == BIDI_MODES


def test_a_line_sent_right_before_close_is_never_lost():
    """close() right after send(): the network thread may have flushed just before the line
    was queued; it must look again before the FIN (the CLI's last message before 'exit')."""
    with running_server() as server:
        sink = RawClient(server.address)
        sink.login("Sink")
        for i in range(40):
            client = ChatClient(*server.address[:2])
            client.start()
            client.wait_for(Connected)
            client.login(f"Q{i}")
            client.wait_for(LoggedIn)
            for j in range(20):
                client.send("Sink", f"{i}.{j}")
                time.sleep(0.0002 * (j % 2))
            client.close()
            assert sink.expect(f"Q{i}: {i}.19").endswith(f"{i}.19")
        assert roster_consistent(server)
