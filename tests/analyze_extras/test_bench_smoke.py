"""``benchmarks/bench_analyze_extras.py --quick`` runs end to end, so the harness cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_tshark

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_analyze_extras.py"


@pytest.mark.slow
def test_bench_analyze_extras_quick_prints_every_stage() -> None:
    require_tshark()
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--packets", "2000"],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("core", "filter", "conversations", "http", "explain", "flow"):
        row = re.search(rf"^{stage}\s+([\d.]+)\s+([\d.]+)\s+([\d,]+)", proc.stdout, re.M)
        assert row is not None, f"no {stage} row in:\n{proc.stdout}"
        assert int(row.group(3).replace(",", "")) > 0
    for stage in ("filter", "conversations", "http"):
        assert re.search(rf"^{stage}\s.*tshark -2 .*\d×$", proc.stdout, re.M), proc.stdout
