"""The IRC listener of the chat server over real sockets: TLS, --irc-only, limits shared with
the native listener (server full, slow consumers), and shutdown."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time

import pytest

from tcplab.chat.protocol import Limits
from tcplab.chat.server import ChatServer, make_server_ssl_context
from tests.chat.helpers import RawClient, assert_consistent, running_server, wait_until
from tests.chat.test_server import make_cert


class IrcRaw:
    """A blocking IRC connection that reads whole lines."""

    def __init__(self, address: tuple, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(address[:2], timeout=10)
        self.buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def expect(self, pattern: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                text = line.decode("utf-8", "replace")
                if rx.search(text):
                    return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r}")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before a line matching {pattern!r}")
            self.buf += chunk

    def register(self, nick: str) -> None:
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        self.expect(r" 366 ")

    def closed(self, timeout: float = 10.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True


def test_irc_over_tls_shares_the_roster_with_native_tls(tmp_path):
    cert, key = make_cert(tmp_path)
    ctx = make_server_ssl_context(str(cert), str(key))
    with running_server(ssl_context=ctx, irc_port=0) as server:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        raw = socket.create_connection(server.irc_address[:2], timeout=10)
        irc = IrcRaw(server.irc_address, client_ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
        irc.register("secure")
        assert server.core.find("secure") is not None
        # Plaintext on the TLS IRC port gets nowhere.
        plain = IrcRaw(server.irc_address)
        plain.send("NICK mallory")
        assert plain.closed()
        assert server.core.find("mallory") is None


def test_server_full_is_refused_in_the_listeners_dialect():
    with running_server(irc_port=0, max_clients=1) as server:
        first = IrcRaw(server.irc_address)
        first.register("first")
        second = IrcRaw(server.irc_address)
        assert second.expect(r"^ERROR :Closing link: Server full")
        native = RawClient(server.address, codes=False)
        assert native.expect("System:").startswith("System: Server full")
        assert_consistent(server)


def test_slow_irc_consumer_is_dropped_and_native_sender_told():
    with running_server(irc_port=0, max_output=16 * 1024) as server:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(server.irc_address[:2])
        irc = IrcRaw(server.irc_address, slow)
        irc.register("slow")
        sender = RawClient(server.address)
        sender.login("Fast Talker")
        text = "x" * 400
        for _ in range(400):
            sender.send(f"slow: {text}")
        notice = sender.expect(lambda ln: ln.startswith("System: 404"), timeout=20)
        assert "not delivered" in notice and "slow" in notice
        assert wait_until(lambda: server.core.find("slow") is None)
        sender.send("*: still here")  # the server is fine
        sender.send("/users")
        assert sender.expect("ONLINE_USERS:") == "ONLINE_USERS:Fast Talker"
        assert_consistent(server, ["Fast Talker"])


def test_shutdown_closes_irc_clients_with_error():
    server = ChatServer("127.0.0.1", 0, irc_port=0, limits=Limits(rate=0))
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    irc = IrcRaw(server.irc_address)
    irc.register("bye")
    server.request_shutdown()
    assert irc.expect(r"^ERROR :Closing link: Server is shutting down")
    assert irc.closed()
    thread.join(10)
    assert not thread.is_alive()


def test_irc_only_cli_serves_irc_and_no_native_listener(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "server", "--irc-only",
                             "--irc-port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.match(r"IRC listening on 127\.0\.0\.1:(\d+) — Ctrl-C to stop", first)
        assert match, first
        port = int(match.group(1))
        irc = IrcRaw(("127.0.0.1", port))
        irc.register("daemon")
        irc.send("QUIT :done")
        irc.expect(r"^ERROR :Closing link: Quit: done")
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Chat server listening" not in first + out
    assert "Chat server stopped." in out


def test_both_listeners_from_the_cli():
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "server", "--port", "0",
                             "--irc-port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        native_line = proc.stdout.readline()  # type: ignore[union-attr]
        irc_line = proc.stdout.readline()  # type: ignore[union-attr]
        native_port = int(re.search(r":(\d+) ", native_line).group(1))
        irc_port = int(re.search(r":(\d+)$", irc_line.strip()).group(1))
        native = RawClient(("127.0.0.1", native_port))
        native.login("Britney Spears")
        irc = IrcRaw(("127.0.0.1", irc_port))
        irc.register("alice")
        irc.send("PRIVMSG Britney_Spears :hi")
        assert native.expect("alice:") == "alice: hi"
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


@pytest.mark.parametrize("args", [["--irc-port", "70000"], ["--irc-port", "x"]])
def test_bad_irc_port_is_a_clear_error(args):
    proc = subprocess.run([sys.executable, "-m", "tcplab", "server", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--irc-port" in proc.stderr
