"""The cluster benchmark runs end to end (a smoke run with small sizes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import require_program

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cluster.py"


def test_bench_cluster_quick_smoke() -> None:
    require_program("redis-server")
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--clients", "20",
                           "--runs", "single,local,cross", "--duration", "0.5", "--drain", "3"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for run in ("single", "local", "cross"):
        row = re.search(rf"^  {run}\s+([\d,]+)\s+\S+\s+\S+\s+(\d+)\s", out, re.M)
        assert row, out
        assert int(row.group(1).replace(",", "")) > 0 and row.group(2) == "0", row.group(0)
    assert "cross / local:" in out
