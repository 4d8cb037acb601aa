"""``tcplab cluster up``: a private redis-server and N chat nodes on one machine.

This is the one-machine convenience; on several machines each node is a plain
``tcplab server --cluster redis://...`` (see docs/cluster.md). The children run in their own
session so a Ctrl-C reaches only this process, which then stops them in the right order:
nodes first (each releases its users' leases and says goodbye to its clients), Redis last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tcplab.errors import EnvironmentProblem, InputError

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen
    cpu: int | None = None
    lines: list[str] = field(default_factory=list)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def _pin(pid: int, cpu: int) -> str | None:
    """Pin a child to one CPU; None on success, else why not (the node still runs)."""
    try:
        os.sched_setaffinity(pid, {cpu})
    except (AttributeError, OSError) as exc:
        return str(exc)
    return None


class Cluster:
    """Start, watch and stop a private Redis and ``nodes`` chat servers."""

    def __init__(self, nodes: int, *, host: str = "127.0.0.1", base_port: int = 55555,
                 shared_port: bool = False, redis_url: str | None = None,
                 server_args: Sequence[str] = (), pin: bool = True,
                 say: Callable[[str], None] = print) -> None:
        if nodes < 1:
            raise InputError("--nodes must be at least 1")
        if not shared_port and base_port + nodes - 1 > 65535:
            raise InputError(f"--base-port {base_port} + {nodes} nodes goes past port 65535")
        self.count = nodes
        self.host = host
        self.base_port = base_port
        self.shared_port = shared_port
        self.redis_url = redis_url
        self.server_args = list(server_args)
        self.pin = pin
        self.say = say
        self.redis: subprocess.Popen | None = None
        self.nodes: list[Node] = []
        self._stopping = threading.Event()

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        ports = [self.base_port] * self.count if self.shared_port else [
            self.base_port + i for i in range(self.count)]
        if self.base_port:
            for port in sorted(set(ports)):
                if not _port_free(self.host, port):
                    raise EnvironmentProblem(
                        f"port {port} on {self.host} is in use; choose another --base-port")
        try:
            if self.redis_url is None:
                self.redis_url = self._start_redis()
            cpus = _cpus() if self.pin else []
            for i, port in enumerate(ports):
                name = f"node{i + 1}"
                cmd = [sys.executable, "-m", "tcplab", "server", "--host", self.host,
                       "--port", str(port), "--cluster", self.redis_url, "--node-name", name]
                if self.shared_port:
                    cmd.append("--reuse-port")
                cmd += self.server_args
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True,
                                        start_new_session=True, bufsize=1)
                node = Node(name, port, proc)
                if cpus:
                    cpu = cpus[i % len(cpus)]
                    why = _pin(proc.pid, cpu)
                    if why is None:
                        node.cpu = cpu
                    else:
                        self.say(f"{name}: not pinned ({why})")
                self.nodes.append(node)
            for node in self.nodes:
                self._wait_ready(node)
        except BaseException:
            self.stop()
            raise

    def _start_redis(self) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            raise EnvironmentProblem(
                "redis-server is not installed: run 'sudo apt-get install redis-server' "
                "(or pass --redis redis://HOST:PORT/DB to use a running one)")
        port = free_port()
        self.redis = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.redis.poll() is not None:
                err = self.redis.stderr.read().decode(errors="replace").strip() if self.redis.stderr else ""
                raise EnvironmentProblem(f"redis-server exited at start: {err[-300:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{port}/0"
            except OSError:
                pass
            time.sleep(0.05)
        raise EnvironmentProblem("redis-server did not answer within 10 s")

    def _wait_ready(self, node: Node) -> None:
        """Read the node's stdout until it says where it listens; then echo the rest."""
        assert node.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        got: list[str] = []

        def reader() -> None:
            for line in node.proc.stdout:  # type: ignore[union-attr]
                line = line.rstrip("\n")
                got.append(line)
                if len(got) > 1 or "listening on" not in line:
                    self.say(f"[{node.name}] {line}")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while not any("listening on" in ln for ln in got):
            if node.proc.poll() is not None:
                t.join(1)
                raise EnvironmentProblem(
                    f"{node.name} exited with status {node.proc.returncode} before listening"
                    + (f": {got[-1]}" if got else " (see its messages above)"))
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"{node.name} did not start listening within {READY_TIMEOUT:g} s")
            time.sleep(0.02)

    # -- run and stop ----------------------------------------------------------------------

    def describe(self) -> list[str]:
        lines = [f"Redis: {self.redis_url}" + (" (private, stopped with the cluster)" if self.redis else "")]
        for n in self.nodes:
            pin = f", pinned to CPU {n.cpu}" if n.cpu is not None else ""
            lines.append(f"{n.name}: {self.host}:{n.port} (pid {n.proc.pid}{pin})")
        if self.shared_port:
            lines.append(f"All nodes share port {self.base_port} (SO_REUSEPORT): the kernel "
                         "spreads new connections over them.")
        return lines

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM (→ 0) or every node has exited (→ 1)."""
        reported: set[str] = set()
        while not self._stopping.is_set():
            alive = 0
            for n in self.nodes:
                code = n.proc.poll()
                if code is None:
                    alive += 1
                elif n.name not in reported:
                    reported.add(n.name)
                    self.say(f"{n.name} exited with status {code}; the other nodes keep serving")
            if self.redis is not None and self.redis.poll() is not None:
                self.say("redis-server exited; stopping the cluster")
                return 1
            if not alive:
                return 1
            self._stopping.wait(0.2)
        return 0

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        """Nodes first (SIGTERM, bounded wait, then SIGKILL), Redis last."""
        for n in self.nodes:
            if n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    n.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for n in self.nodes:
            try:
                n.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(5)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait(5)
