"""Shared test helpers: a server on a free port in a thread, and a line-oriented raw client."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

from tcplab.chat.protocol import Limits
from tcplab.chat.server import ChatServer

TIMEOUT = 10.0


@contextlib.contextmanager
def running_server(host: str = "127.0.0.1", **kwargs) -> Iterator[ChatServer]:
    """A ChatServer on port 0 served from a thread; shut down (and joined) on exit."""
    kwargs.setdefault("limits", Limits(rate=0))
    server = ChatServer(host, 0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    try:
        yield server
    finally:
        server.request_shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "server did not stop"


class RawClient:
    """A blocking socket that speaks the wire protocol line by line, for black-box tests."""

    def __init__(self, address: tuple, timeout: float = TIMEOUT, rcvbuf: int = 0) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the advertised window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address[:2])
        self.buf = b""
        self.lines: list[str] = []  # every line received, in order

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode() + b"\n"
        self.sock.sendall(data)

    def _read_more(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        if not chunk:
            return False
        self.buf += chunk
        *complete, self.buf = self.buf.split(b"\n")
        self.lines += [ln.decode("utf-8", "replace") for ln in complete]
        return True

    def expect(self, match: str | Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """Return (and consume) the first line matching (prefix or predicate), reading as needed."""
        pred = match if callable(match) else (lambda ln: ln.startswith(match))  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.lines):
                if pred(line):
                    del self.lines[: i + 1]
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"no line matching {match!r}; got {self.lines!r}")
            if not self._read_more(deadline):
                for i, line in enumerate(self.lines):
                    if pred(line):
                        del self.lines[: i + 1]
                        return line
                raise AssertionError(f"connection closed before {match!r}; got {self.lines!r}")

    def expect_list(self, names: list[str], timeout: float = TIMEOUT) -> str:
        want = "ONLINE_USERS:" + ",".join(names)
        return self.expect(lambda ln: ln == want, timeout)

    def quiet_for(self, seconds: float) -> list[str]:
        """Read for ``seconds`` and return what arrived (for asserting nothing unexpected came)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._read_more(deadline):
            pass
        got, self.lines = self.lines, []
        return got

    def wait_closed(self, timeout: float = TIMEOUT) -> str:
        """Read until EOF; return 'fin' for an orderly close or 'rst' for a reset."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._read_more(deadline):
                    return "fin"
        except ConnectionResetError:
            return "rst"
        raise AssertionError("connection still open")

    def login(self, nick: str) -> None:
        self.send(nick)
        self.expect("System: 001 Welcome")

    def reset(self) -> None:
        """Abort with RST (SO_LINGER 0), like a killed process with unread data or a crash."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
