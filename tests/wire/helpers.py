"""Shared pieces of the live-wire tests: free ports, running the CLI, waiting on lo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

from tcplab.pcap import open_capture

#: Every wait in these tests ends; a stuck child is killed, never waited on forever.
TIMEOUT = 30.0


def free_ports(count: int) -> list[int]:
    """Ports nobody uses right now (the kernel picks them), distinct, above 30000.

    Other test runs share lo with us, so ports are never fixed: each test asks the kernel.
    """
    socks = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port > 30000 and port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def tcplab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcplab", *args]


def run_tcplab(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tcplab_cmd(*args), capture_output=True, text=True, timeout=timeout)


def start_capture(*args: str) -> subprocess.Popen[str]:
    """Start ``tcplab capture`` and return once it says it is capturing."""
    proc = subprocess.Popen(tcplab_cmd("capture", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, "capturing on")
    return proc


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = TIMEOUT) -> str:
    """Read the child's stderr until a line contains ``needle`` (or fail, killing the child)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    os.set_blocking(proc.stderr.fileno(), True)
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return line
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    pytest.fail(f"{needle!r} never appeared on stderr; got: {''.join(seen)!r}")


def frames(path: str) -> list[bytes]:
    with open_capture(path) as records:
        return [bytes(record.data) for record in records]


def udp_burst(port: int, count: int, payload: bytes = b"tcplab") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(count):
            s.sendto(payload + i.to_bytes(4, "big"), ("127.0.0.1", port))


def tcp_exchange(port: int, messages: Sequence[bytes]) -> None:
    """A real TCP connection to ``port`` carrying ``messages`` each way, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        server, _ = listener.accept()
        server.settimeout(TIMEOUT)
        with client, server:
            for message in messages:
                client.sendall(message)
                got = b""
                while len(got) < len(message):
                    got += server.recv(65536)
                server.sendall(got)
                back = b""
                while len(back) < len(message):
                    back += client.recv(65536)
            client.shutdown(socket.SHUT_WR)
            assert server.recv(10) == b""
            server.close()
            assert client.recv(10) == b""
