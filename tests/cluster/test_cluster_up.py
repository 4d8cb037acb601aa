"""``tcplab cluster up``: a private Redis and N nodes, one chat, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.cluster.procs import Client, same_lists
from tests.cluster.redis_support import free_port
from tests.support import require_program


def consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise AssertionError("no run of free ports")


def start_up(*args: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "cluster", "up", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    deadline = time.monotonic() + 40
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"cluster up exited {proc.wait(5)}: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        lines.append(line.rstrip("\n"))
        if line.startswith("Cluster running"):
            return proc, lines
    proc.kill()
    raise AssertionError(f"cluster up did not start: {lines}")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def redis_port(lines: list[str]) -> int:
    m = re.search(r"Redis: redis://127\.0\.0\.1:(\d+)/0", "\n".join(lines))
    assert m, lines
    return int(m.group(1))


def test_two_nodes_one_chat_and_clean_ctrl_c() -> None:
    require_program("redis-server")
    base = consecutive_free_ports(2)
    proc, lines = start_up("--nodes", "2", "--base-port", str(base), "--", "--rate", "0")
    clients = []
    try:
        text = "\n".join(lines)
        assert f"node1: 127.0.0.1:{base}" in text and f"node2: 127.0.0.1:{base + 1}" in text
        a, b = Client(("127.0.0.1", base)), Client(("127.0.0.1", base + 1))
        clients += [a, b]
        a.login("Alice")
        b.login("Bob")
        a.wait_online({"Alice", "Bob"})
        a.send("Bob: across nodes")
        assert b.expect("Alice:") == "Alice: across nodes"
        port = redis_port(lines)
    finally:
        out = stop(proc)
        for c in clients:
            c.close()
    assert proc.returncode == 0, out
    assert "Cluster stopped." in out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", base), timeout=1).close()


def test_shared_port_spreads_clients_over_nodes() -> None:
    require_program("redis-server")
    port = free_port()
    proc, lines = start_up("--nodes", "2", "--base-port", str(port), "--shared-port",
                           "--", "--rate", "0")
    clients = []
    try:
        assert "share port" in "\n".join(lines)
        names = {f"user{i}" for i in range(16)}
        for name in sorted(names):
            c = Client(("127.0.0.1", port))
            c.login(name)
            clients.append(c)
        same_lists(clients, sorted(names))  # login order, the same on both nodes
        clients[0].send("*: hello everyone")
        for c in clients[1:]:
            assert c.expect("* user0:") == "* user0: hello everyone"
        # The kernel spread the connections: each node's process holds some of them.
        pids = [int(m) for m in re.findall(r"\(pid (\d+)", "\n".join(lines))]
        counts = [_established(pid, port) for pid in pids]
        assert len(counts) == 2 and all(counts), counts
    finally:
        for c in clients:
            c.close()
        stop(proc)
    assert proc.returncode == 0


def _established(pid: int, port: int) -> int:
    """Connections to ``port`` that process ``pid`` holds (from /proc, no tools needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            f = line.split()
            if f[1].endswith(f":{port:04X}") and f[3] == "01" and f[9] in inodes:
                n += 1
    return n


def test_missing_redis_server_names_the_package(tmp_path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "tcplab", "cluster", "up", "--nodes", "1",
                           "--base-port", str(free_port())], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    assert "apt-get install redis-server" in proc.stderr and "Traceback" not in proc.stderr
