"""Test support: skip-or-fail helpers for tests that need root, raw sockets, tshark or a display,
and the check every header parser's errors go through.

Outside CI such a test is skipped with a reason naming what is missing. In CI
(``CI=true``) every requirement is installed by ``.ci/run``, so a missing one is a
failure, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def require_program(name: str) -> str:
    """Return the path of program ``name`` or skip/fail the test."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed (apt-get install {name})")
    return path  # type: ignore[return-value]


def require_tshark() -> str:
    return require_program("tshark")


def require_root() -> None:
    """Raw sockets and AF_PACKET capture need root or CAP_NET_RAW."""
    if os.geteuid() != 0:
        _missing("needs root (raw sockets / AF_PACKET capture)")
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except (PermissionError, AttributeError, OSError) as exc:
        _missing(f"cannot open an AF_PACKET socket here: {exc}")
    else:
        s.close()


def require_display() -> None:
    if not os.environ.get("DISPLAY"):
        _missing("needs an X display (run under xvfb-run)")


def tshark(*args: str, check: bool = True) -> str:
    """Run tshark with checksum validation on and return its stdout (stderr on failure)."""
    import subprocess

    exe = require_tshark()
    cmd = [exe, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
           "-o", "udp.check_checksum:TRUE", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"tshark failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


@contextlib.contextmanager
def dumpcap_on_lo(bpf: str, out: Path, *, settle: float = 0.3) -> Iterator[subprocess.Popen]:
    """dumpcap on ``lo`` writing ``out``: the body runs once dumpcap says it is capturing
    (plus ``settle`` seconds), and dumpcap is stopped with SIGINT afterwards so the file
    ends complete, as an interrupted capture would not."""
    dumpcap = require_program("dumpcap")
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", bpf, "-w", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        line = ""
        while "Capturing on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                pytest.fail("dumpcap exited before capturing")
        time.sleep(settle)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def expect_parse_error(fn, protocol: str, field: str, offset: int, reason: str):
    """Call ``fn`` and check the ParseError it raises names ``protocol``, ``field`` and the byte
    ``offset``, gives a reason containing ``reason``, and is worded as every parse error is."""
    from tcplab.errors import InputError
    from tcplab.packet import ParseError

    with pytest.raises(ParseError) as info:
        fn()
    err = info.value
    assert isinstance(err, InputError)
    assert (err.protocol, err.field, err.offset) == (protocol, field, offset)
    assert reason in err.reason
    assert str(err) == f"{protocol}: {field} at byte {offset}: {err.reason}"
    return err
