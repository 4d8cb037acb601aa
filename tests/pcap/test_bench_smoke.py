"""``benchmarks/bench_pcap.py --quick`` runs end to end, so the harness cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pcap.py"


@pytest.mark.slow
def test_bench_pcap_quick_prints_every_ratio() -> None:
    pytest.importorskip("dpkt")
    pytest.importorskip("scapy")
    proc = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for op in ("write-pcap", "read-pcap", "write-pcapng", "read-pcapng"):
        row = re.search(rf"^{op}\s+([\d,]+)\s+([\d,]+)\s+(\S+)\s+([\d.]+)×", proc.stdout, re.M)
        assert row is not None, f"no {op} row in:\n{proc.stdout}"
        assert int(row.group(1).replace(",", "")) > 0
