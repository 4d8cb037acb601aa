"""Shared test helpers: a server on a free port in a thread, a line-oriented raw client, and
the consistency check every adversarial test ends with (:func:`assert_consistent`)."""

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
    kwargs.setdefault("max_per_address", 0)  # every test client comes from 127.0.0.1
    # A fixed kernel send buffer: on loopback autotuning lets one stalled reader soak up
    # megabytes before its queue counts, which would make slow-consumer tests slow.
    kwargs.setdefault("sndbuf", 64 * 1024)
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
    """A blocking socket that speaks the wire protocol line by line, for black-box tests.

    With ``codes`` (the default) it first sends ``/codes on``, as tcplab's own clients do, so
    System lines carry their numeric code; ``codes=False`` is a client of the report's kind.
    """

    def __init__(self, address: tuple, timeout: float = TIMEOUT, rcvbuf: int = 0,
                 codes: bool = True) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the advertised window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address[:2])
        self.buf = b""
        self.lines: list[str] = []  # every line received, in order
        self.codes = codes
        if codes:
            self.send("/codes on")
            self.expect("System: 204 ")

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
        self.expect("System: 001 Welcome" if self.codes else "System: Welcome")

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


def check_consistency(server: ChatServer) -> list[str]:
    """Every way the server's tables could disagree (run on the loop's thread).

    The roster (users), the logged-in sessions of the core and the live sockets must be
    the same set of connections: a nickname without a socket is a ghost (its name "taken"
    forever, messages to it vanish), a socket without a session is a leak.
    """
    core = server.core
    problems = []
    conns = server._conns
    if set(conns) != set(core.sessions):
        problems.append(f"sockets {sorted(set(conns) - set(core.sessions))[:5]} have no session; "
                        f"sessions {sorted(set(core.sessions) - set(conns))[:5]} have no socket")
    logged_in = {cid for cid, s in core.sessions.items() if s.key is not None}
    roster = {s.conn for s in core.users.values()}
    if roster != logged_in:
        problems.append(f"roster {sorted(roster ^ logged_in)[:5]} differs from logged-in sessions")
    for key, s in core.users.items():
        if s.key != key or core.sessions.get(s.conn) is not s:
            problems.append(f"roster entry {key!r} is stale")
        if core._by_bytes.get(s.nick.encode()) is not s:
            problems.append(f"{s.nick!r} missing from the exact-name index")
    if len(core._by_bytes) != len(core.users):
        problems.append(f"exact-name index has {len(core._by_bytes)} entries for {len(core.users)} users")
    if not set(core._delta_conns) <= roster or not set(core._awaiting) <= roster:
        problems.append("deltas or awaiting-list table names a connection not in the roster")
    want = len(b"ONLINE_USERS:") + sum(len(s.nick.encode()) + 1 for s in core.users.values())
    if core._list_bytes != max(want, len(b"ONLINE_USERS:")) and core.users:
        problems.append(f"list size {core._list_bytes} != {want}")
    for cid, conn in conns.items():
        if conn.dead:
            problems.append(f"dead connection {cid} still in the socket table")
        if conn.out_len != sum(len(p) for p in conn.out):
            problems.append(f"connection {cid}: out_len {conn.out_len} is wrong")
        if conn.out_len - server._list_unsent(conn) > server.max_output:
            problems.append(f"connection {cid}: {conn.out_len} bytes queued > max_output")
    registered = {key.data.cid for key in server._sel.get_map().values()
                  if key.data.__class__.__name__ == "_Conn"}
    if registered != set(conns):
        problems.append(f"selector registrations {sorted(registered ^ set(conns))[:5]} disagree")
    per_address: dict[str, int] = {}
    for conn in conns.values():
        per_address[conn.addr] = per_address.get(conn.addr, 0) + 1
    if per_address != server._per_address:
        problems.append(f"per-address counts {server._per_address} != {per_address}")
    return problems


def assert_consistent(server: ChatServer, names: list[str] | None = None,
                      timeout: float = TIMEOUT) -> None:
    """The roster equals the live, logged-in sessions equals the sockets — checked inside
    the loop (no race with it) — and, when ``names`` is given, a fresh client's ``/users``
    shows exactly those names (the wire view agrees) and the server still accepts logins."""
    problems = server.call_soon_threadsafe(check_consistency, server).result(timeout)
    assert not problems, problems
    if names is not None:
        probe = RawClient(server.address)
        if server.core.limits.password is not None:
            probe.send("/pass " + server.core.limits.password)
            probe.expect("System: 003")
        probe.login("Probe-" + str(time.monotonic_ns() % 10**9))
        probe.send("/users")
        got = probe.expect("ONLINE_USERS:")[len("ONLINE_USERS:"):].split(",")
        shown = sorted(n for n in got if not n.startswith("Probe-"))
        assert shown == sorted(names), (sorted(set(shown) - set(names)), sorted(set(names) - set(shown)))
        probe.close()
