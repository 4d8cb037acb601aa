"""``bench_chat.py --cluster`` runs end to end (a smoke run with small sizes), and the load
generator places pairs on the nodes as each layout says."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support import require_program

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_chat.py"


def test_bench_chat_cluster_quick_smoke(tmp_path: Path) -> None:
    require_program("redis-server")
    raw = tmp_path / "cluster.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--cluster", "--quick", "--clients", "20",
                           "--runs", "single,local,cross,half", "--duration", "0.5", "--drain", "3",
                           "--json", str(raw)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for run in ("single", "local", "cross", "half"):
        row = re.search(rf"^  {run}\s+([\d,]+)\s+\S+\s+\S+\s+(\d+)\s", out, re.M)
        assert row, out
        assert int(row.group(1).replace(",", "")) > 0 and row.group(2) == "0", row.group(0)
    assert "cross / local:" in out and "Targets (issue 13)" in out
    rows = json.loads(raw.read_text())
    assert [r["server"] for r in rows] == ["single", "local", "cross", "half"]
    for r in rows:
        v = r["values"]
        assert r["clients"] == 20 and v["sent"] > 0 and v["lost"] == 0 and v["received"] == v["sent"]
        assert v["misattributed"] == 0 and not v["errors"], v
        assert v["cpu_s_per_100k"] > 0
    by = {r["server"]: r["values"] for r in rows}
    # Only the runs with nodes have a Redis, and only pairs that cross nodes make it work.
    assert by["single"]["redis_cpu"] == 0
    assert by["cross"]["redis_cpu_s_per_100k"] > 0


def test_cluster_options_that_do_not_apply_are_refused() -> None:
    for extra, says in ((["--clients", "100", "1000"], "one --clients count"),
                        (["--servers", "thread"], "leave out --servers"),
                        (["--runs", "single,sideways"], "unknown --runs entry 'sideways'")):
        proc = subprocess.run([sys.executable, str(BENCH), "--cluster", *extra],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 2 and says in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_layouts_place_pairs_on_the_nodes() -> None:
    spec = importlib.util.spec_from_file_location("chat_loadgen", ROOT / "benchmarks" / "chat_loadgen.py")
    loadgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loadgen)

    def placed(layout: str, pairs: int = 8) -> list[tuple[int, int]]:
        gen = loadgen.LoadGen.__new__(loadgen.LoadGen)  # port_for needs only the arguments
        gen.args = type("Args", (), {"port": 1, "ports": [1, 2], "layout": layout})()
        return [(gen.port_for(2 * p), gen.port_for(2 * p + 1)) for p in range(pairs)]

    def cross(layout: str) -> int:
        return sum(a != b for a, b in placed(layout))

    assert cross("local") == 0 and cross("cross") == 8 and cross("half") == 4
    for layout in ("local", "cross", "half"):  # the clients are spread evenly over the nodes
        ends = [port for pair in placed(layout) for port in pair]
        assert ends.count(1) == ends.count(2) == 8, layout
