"""Keeps the IRC benchmark from rotting: a ``--quick`` run against tcplab, ngIRCd and
InspIRCd must register every client and deliver every message to the right receiver (the
figures themselves depend on the machine and are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_program

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_irc.py"


@pytest.mark.timeout(150)
def test_quick_run_registers_everyone_and_loses_nothing(tmp_path: Path) -> None:
    require_program("ngircd")
    require_program("inspircd")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--clients", "10", "--json", str(out)],
        capture_output=True, text=True, timeout=140, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert {r["server"] for r in rows} == {"tcplab", "ngircd", "inspircd"}
    for row in rows:
        v = row["values"]
        assert not v["errors"], (row["server"], v["errors"])
        assert v["logged_in"] == row["clients"], row
        assert v["sent"] > 0 and v["lost"] == 0 and v["received"] == v["sent"], row
        assert v["misattributed"] == 0, row
    assert "limits that could not be lifted" in proc.stdout
    assert "msg per CPU-s" in proc.stdout
