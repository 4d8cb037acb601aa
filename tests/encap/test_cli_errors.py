"""User mistakes: a clear one-line error, a non-zero exit status, never a traceback, no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"msg_id,src_app,message\n1,c,x\n", "missing required column dst_app; columns found: msg_id, src_app, message"),
        (b"src_app,dst_app,message,dst_port\nc,s,x,70000\n", "in.csv: line 2: column dst_port: port 70000 is outside"),
        (b"src_app,dst_app,message\nc,s,\xff\xfe\n", "in.csv: line 2: byte offset 28: not UTF-8 (bytes ff)"),
        (b"", "the file is empty"),
        (b"src_app,dst_app,message,dst_ip\nc,s,x,1.2.3\n", "column dst_ip: '1.2.3' is not an IPv4 or IPv6 address"),
    ],
)
def test_bad_csv_is_named_precisely(tmp_path: Path, content: bytes, expected: str) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out.pcap"
    proc = run("encap", str(src), "-o", str(out))
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "out.pcap.part").exists()


def test_skip_bad_counts_what_it_skipped(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("src_app,dst_app,message,dst_port\nc,s,x,80\nc,s,y,http\nc,s,,80\n", encoding="utf-8")
    proc = run("encap", str(src), "-o", str(tmp_path / "o.pcap"), "--skip-bad")
    assert proc.returncode == 0, proc.stderr
    assert "skipped   1 empty message(s), 1 bad row(s)" in proc.stdout
    assert "line 3: column dst_port: 'http' is not a port number" in proc.stdout


def test_missing_input_and_bad_flags(tmp_path: Path) -> None:
    proc = run("encap", str(tmp_path / "none.csv"))
    assert proc.returncode == 1 and "none.csv: no such file" in proc.stderr
    proc = run("encap", "x.csv", "--server-port", "99999")
    assert proc.returncode == 2 and "port 99999 is outside 0–65535" in proc.stderr
    proc = run("encap", "x.csv", "--app", "web=999.1.1.1")
    assert proc.returncode == 2 and "is not an IPv4 address" in proc.stderr


def test_help_has_examples() -> None:
    proc = run("encap", "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "--style" in proc.stdout
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tcplab ")
