"""Keeps the chat benchmark from rotting: a ``--quick`` run against both servers must work.

The figures themselves are not asserted (they depend on the machine and its load);
what must hold on any machine is that the harness runs end to end, every client logs
in, and every message sent is delivered to the right receiver.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_chat.py"


def load_loadgen():
    spec = importlib.util.spec_from_file_location(
        "chat_loadgen", ROOT / "benchmarks" / "chat_loadgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(90)
def test_quick_run_loses_nothing_on_either_server(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--servers", "tcplab,thread",
         "--json", str(out), "--logdir", str(tmp_path)],
        capture_output=True, text=True, timeout=80, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    seen = {(r["scenario"], r["server"]) for r in rows}
    assert seen == {("pairs", "tcplab"), ("pairs", "thread"), ("idle", "tcplab"), ("idle", "thread")}
    for row in rows:
        v = row["values"]
        assert not v["errors"], (row["server"], v["errors"])
        if row["scenario"] == "pairs":
            assert v["logged_in"] == row["clients"]
            assert v["sent"] > 0
            assert v["lost"] == 0 and v["received"] == v["sent"], row
            assert v["misattributed"] == 0, row
            assert v["msg_per_s"] > 0 and v["p50_ms"] is not None and v["p99_ms"] >= v["p50_ms"]
            assert v["rss_per_conn_kb"] is not None
        else:
            assert v["connected"] == row["clients"]
            assert v["login_complete"] and v["logged_in"] == row["clients"], row
    assert "Ratios tcplab / thread-per-client baseline" in proc.stdout
    assert "PASS" in proc.stdout and "zero loss" in proc.stdout


def test_histogram_quantiles_are_within_one_percent() -> None:
    loadgen = load_loadgen()
    hist = loadgen.Histogram()
    for latency_us in range(1, 10_001):  # 1 µs … 10 ms, uniform
        hist.add(latency_us, 1)
    assert hist.total == 10_000
    assert hist.quantile(0.5) == pytest.approx(5.0, rel=0.02)
    assert hist.quantile(0.99) == pytest.approx(9.9, rel=0.02)
    assert loadgen.Histogram().quantile(0.5) is None


def test_error_notices_are_told_apart_from_welcomes() -> None:
    loadgen = load_loadgen()
    assert not loadgen.is_error_notice(b"System: 001 Welcome, u00001! Usage: 'T: M'\n")
    assert loadgen.is_error_notice(b"System: 433 Nickname 'x' is already taken.\n")
    assert loadgen.is_error_notice(b"System: Nickname already taken. Choose another.\n")
    assert not loadgen.is_error_notice(b"ONLINE_USERS:a,b\n")


def start_baseline(script: str) -> tuple[subprocess.Popen, int]:
    for _attempt in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "baselines" / script), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=5)
    raise AssertionError(f"{script} did not start")


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 16) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before {marker!r}; got {data!r}"
        data += chunk
        assert len(data) < limit
    return data


@pytest.mark.parametrize("script", ["thread_chat_server.py", "bare_relay.py"])
def test_baselines_frame_lines_split_and_merged(script: str) -> None:
    """The peers must be measured fairly: a message split over two writes, or several in
    one write, is delivered whole and in order (the report's one-recv design was not)."""
    proc, port = start_baseline(script)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as alice, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as bob:
            bob.sendall(b"bob\n")
            read_until(bob, b"\n")
            alice.sendall(b"alice\n")
            read_until(alice, b"\n")
            alice.sendall(b"bob: sh")
            time.sleep(0.2)  # force two segments, so the server sees half a line first
            alice.sendall(b"alom\nbob: one\nbob: two\n")
            got = read_until(bob, b"alice: two\n")
            chat = [line for line in got.split(b"\n") if line.startswith(b"alice: ")]
            assert chat == [b"alice: shalom", b"alice: one", b"alice: two"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
