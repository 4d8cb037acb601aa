"""Real processes for cluster tests: ``tcplab server --cluster`` nodes and a TCP proxy to Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from tests.chat.helpers import RawClient
from tests.cluster.redis_support import free_port

START_TIMEOUT = 20.0


class NodeProcess:
    """One ``python -m tcplab server --cluster URL`` on a free port (or a given one)."""

    def __init__(self, url: str, name: str, port: int | None = None, extra: Iterable[str] = ()) -> None:
        self.url = url
        self.name = name
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self.stderr = ""

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> NodeProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcplab", "server", "--port", str(self.port), "--rate", "0",
             "--cluster", self.url, "--node-name", self.name, *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(5)
                raise AssertionError(f"node {self.name} exited {self.proc.returncode}: {self.stderr[-2000:]}")
            self.output.append(line)
            if "listening on" in line:
                threading.Thread(target=self._drain_stdout, daemon=True).start()
                return self
        raise AssertionError(f"node {self.name} did not start: {self.stderr[-2000:]}")

    def _drain_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def client(self) -> Client:
        return Client(self.address)


class Client(RawClient):
    """A raw client that tolerates either wording of System lines (with or without codes)."""

    def login(self, nick: str, timeout: float = 10.0) -> None:  # type: ignore[override]
        self.send(nick)
        self.expect(lambda ln: ln.startswith("System:") and "Welcome" in ln, timeout)

    def system(self, *words: str, timeout: float = 10.0) -> str:
        return self.expect(lambda ln: ln.startswith("System:") and all(w in ln for w in words), timeout)

    def online(self, timeout: float = 10.0) -> list[str]:
        """Ask for the list and return it in the order the node sent it."""
        self.lines = [ln for ln in self.lines if not ln.startswith("ONLINE_USERS:")]
        self.send("/users")
        line = self.expect("ONLINE_USERS:", timeout)
        body = line[len("ONLINE_USERS:"):]
        return body.split(",") if body else []

    def wait_online(self, want: set[str] | list[str], timeout: float = 15.0) -> list[str]:
        """Poll the list until it holds exactly ``want`` (a list: in that order too)."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while time.monotonic() < deadline:
            got = self.online()
            if (got == want) if isinstance(want, list) else (set(got) == want and len(got) == len(want)):
                return got
            time.sleep(0.1)
        raise AssertionError(f"online list {got} never became {want}")


def same_lists(clients: Iterable[Client], want: set[str] | list[str], timeout: float = 15.0) -> list[str]:
    """Every client's node lists exactly ``want``, and all in one and the same order."""
    lists = [c.wait_online(want, timeout) for c in clients]
    for got in lists[1:]:
        assert got == lists[0], f"nodes disagree on the order: {lists}"
    return lists[0]


class Proxy:
    """A TCP forwarder on loopback in front of Redis: adds latency, or cuts the link.

    ``delay`` holds every chunk that long in each direction without serializing chunks
    (a queue per direction, each chunk released at arrival + delay), like a long link.
    """

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        import queue

        q: queue.Queue = queue.Queue()

        def writer() -> None:
            while True:
                item = q.get()
                if item is None:
                    break
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    break
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=writer, daemon=True).start()
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                q.put(None)
                return
            q.put((time.monotonic() + self.delay, data))

    def sever(self) -> None:
        """Cut every connection (RST) and refuse new ones until :meth:`restore`."""
        self.cut = True
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the pipe threads blocked in recv
            s.close()

    def restore(self) -> None:
        self.cut = False

    def close(self) -> None:
        self.sever()
        self.listener.close()


@contextlib.contextmanager
def nodes(url: str, count: int, extra: tuple[str, ...] = ()) -> Iterator[list[NodeProcess]]:
    """``count`` nodes n1, n2, ... on the cluster at ``url``, all stopped on the way out."""
    started: list[NodeProcess] = []
    try:
        for i in range(count):
            started.append(NodeProcess(url, f"n{i + 1}", extra=extra).start())
        yield started
    finally:
        for n in started:
            n.stop()
