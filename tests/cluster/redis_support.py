"""A private redis-server on a free loopback port, and a loop that drives engines in tests."""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

from tests.support import require_program


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """redis-server with no persistence, bound to 127.0.0.1 only; stop/start keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.exe = require_program("redis-server")
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, kill: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: Redis holds its connections open and answers nothing (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def command(self, *args: str | bytes | int) -> object:
        """One blocking command (a test oracle independent of the engine's socket code)."""
        from tcplab.chat.cluster.resp import RespParser, encode

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(encode(*args))
            parser = RespParser()
            while True:
                replies = parser.feed(s.recv(65536))
                if replies:
                    return replies[0]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisProcess]:
    r = RedisProcess()
    r.start()
    try:
        yield r
    finally:
        r.stop()


class Loop:
    """A selectors loop for engines alone: collects each engine's events by node name."""

    def __init__(self, *engines) -> None:
        self.sel = selectors.DefaultSelector()
        self.engines = list(engines)
        self.events: dict[str, list] = {e.node: [] for e in engines}
        for e in engines:
            e.attach(self.sel)

    def add(self, engine) -> None:
        self.engines.append(engine)
        self.events[engine.node] = []
        engine.attach(self.sel)

    def step(self, timeout: float = 0.01) -> None:
        for e in self.engines:
            e.flush()  # as the node's loop does once per iteration
        for key, mask in self.sel.select(timeout):
            key.data.on_ready(mask)
        now = time.monotonic()
        for e in self.engines:
            e.tick(now)
            self.events[e.node].extend(e.events())

    def until(self, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or cond}")
            self.step()

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()

    def of(self, node: str, kind: type) -> list:
        return [e for e in self.events[node] if isinstance(e, kind)]

    def close(self) -> None:
        for e in self.engines:
            with contextlib.suppress(Exception):
                e.close()
        self.sel.close()
