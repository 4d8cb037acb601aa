"""A 12-second run of the chat soak (benchmarks/soak_chat.py) keeps it from rotting: churn,
stalled clients and floods against the real server, then no ghosts, no crash, no loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_soak_smoke(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak_chat.py"), "--minutes", "0.2",
         "--stalled", "30", "--json", str(out), "--log", str(tmp_path / "server.log"), "--quiet"],
        capture_output=True, text=True, timeout=110, cwd=ROOT)
    summary = json.loads(out.read_text())
    assert proc.returncode == 0 and summary["pass"], proc.stdout[-3000:] + proc.stderr[-2000:]
    assert summary["counts"]["churn_logins"] > 50
    assert summary["slow_consumers_dropped"] > 0  # the stalled clients really were dropped
    assert summary["ghosts"] == 0 and summary["server_exit"] == 0
