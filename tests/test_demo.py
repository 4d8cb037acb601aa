"""The main job: `tcplab demo` runs end to end and reports what it found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import require_root

REPO = Path(__file__).resolve().parents[1]


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", "demo", "--out", str(tmp_path / "demo"), *args],
                          capture_output=True, text=True, timeout=240, cwd=REPO)


def test_demo_without_live_steps(tmp_path: Path) -> None:
    proc = run_demo(tmp_path, "--no-live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout
    assert "identical to frame 351 of the report" in out
    assert "[TCP Retransmission]" in out and "Complete, WITH_DATA (31)" in out
    for letter in "ABCDEF":
        assert f"✓ {letter}. " in out, f"chat scenario {letter}"
    assert "skipped inject/replay with capture" in out
    report = (tmp_path / "demo" / "REPORT.md").read_text(encoding="utf-8")
    assert "## Findings" in report and "## Problems" not in report
    assert (tmp_path / "demo" / "http_flow.svg").read_text(encoding="utf-8").startswith("<?xml")


def test_demo_with_live_injection_replay_and_chat_capture(tmp_path: Path) -> None:
    require_root()
    proc = run_demo(tmp_path, "--live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout
    assert "10 answered by RST from the kernel" in out
    assert "skipped" not in out
    files = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"inject_rst.pcap", "replay_real_tcp.pcap", "chat.pcap", "REPORT.md"} <= files
