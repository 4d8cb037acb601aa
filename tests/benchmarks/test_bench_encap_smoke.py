"""Keeps the encapsulation benchmark from rotting: ``bench_encap.py --quick`` must run end to end.

The figures are not asserted (they depend on the machine and its load). What must hold
anywhere: every peer produces a pcap that tshark accepts with the CSV's exact messages,
and the report prints the rates, both ratios and a verdict for every target. Two small
tests also show the harness's own checks can fail, so a PASS from it means something.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_tshark

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_encap.py"


def load_bench():
    """Import the benchmark script (a plain script, not a package) as a module."""
    name = "bench_encap_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.timeout(120)
def test_quick_run_prints_rates_ratios_and_verdicts(tmp_path: Path) -> None:
    require_tshark()
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out), "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert re.search(r"^  tcplab/scapy = \d+\.\dx", text, re.M), text
    assert re.search(r"^  tcplab/dpkt = \d+\.\dx", text, re.M), text
    verdicts = re.findall(r"^  (PASS|FAIL)  ", text.split("Targets:")[1], re.M)
    assert len(verdicts) == 4, text  # rate, vs scapy, vs dpkt, memory
    data = json.loads(out.read_text())
    assert data["n"] == 2_000 and data["scapy_n"] == 400
    for peer in ("tcplab", "scapy", "dpkt"):
        result = data["results"][peer]
        assert result["error"] is None, (peer, result)
        check = result["check"]
        assert check["ok"] and check["how"] == "tshark", (peer, check)
        assert check["data_segments"] == result["messages"]
        assert check["bad_checksums"] == 0
        assert result["msg_per_s"] > 0 and len(result["runs"]) == 1
    # tcplab wrote a whole conversation: handshake, data, ACK and teardown around the data.
    assert data["results"]["tcplab"]["check"]["packets"] > 2_000
    assert data["results"]["dpkt"]["check"]["payload_bytes"] == data["csv_payload_bytes"]
    mem = data["memory"]
    assert [m["messages"] for m in mem] == [1_000, 10_000]
    assert all("error" not in m and m["peak_rss_mb"] > 0 for m in mem), mem


def test_generated_csv_reads_back_through_tcplab_unchanged(tmp_path: Path) -> None:
    bench = load_bench()
    from tcplab.encap import read_messages

    info = bench.write_csv(tmp_path / "m.csv", 60)
    messages = list(read_messages(info.path))
    assert len(messages) == info.messages == 60
    with open(info.path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [m.payload for m in messages] == [r["message"].encode() for r in rows]
    assert sum(len(m.payload) for m in messages) == info.payload_bytes
    assert messages[0].payload.startswith(b"GET / HTTP/1.1\r\n")
    assert messages[1].payload.startswith(b"HTTP/1.1 200 OK\r\n")
    assert [m.src_app for m in messages[:4]] == ["client_browser", "web_server"] * 2


def test_output_check_rejects_a_corrupted_pcap(tmp_path: Path) -> None:
    require_tshark()
    bench = load_bench()
    info = bench.write_csv(tmp_path / "m.csv", 20)
    good = tmp_path / "good.pcap"
    bench.peer_dpkt(info.path, str(good))
    assert bench.check_output(str(good), info, strict=True, timeout=60).ok

    data = bytearray(good.read_bytes())
    data[-1] ^= 0x20  # one payload byte of the last packet: its TCP checksum no longer holds
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    check = bench.check_output(str(bad), info, strict=True, timeout=60)
    assert not check.ok and check.bad_checksums == 1, check

    short = bench.write_csv(tmp_path / "short.csv", 19)  # the pcap holds one message more
    check = bench.check_output(str(good), short, strict=True, timeout=60)
    assert not check.ok
    assert any("20 data segments for 19 messages" in p for p in check.problems), check
