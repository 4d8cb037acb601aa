"""Run every benchmark in this folder, one after another, and print each one's report.

Usage: python benchmarks/run_all.py [--quick]

Each ``bench_*.py`` is a standalone script that runs tcplab beside its peers in one run
and prints rates and ratios; this runner only sequences them (never in parallel: they
would compete for the machine's two cores and distort each other's figures). Some scripts
have a second mode run as its own step (:data:`EXTRA_RUNS`): ``bench_chat.py --cluster``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

#: Further invocations of a script, each a step of its own after the plain one.
EXTRA_RUNS = {"bench_chat.py": [["--cluster"]]}


def main() -> int:
    here = Path(__file__).resolve().parent
    extra = [a for a in sys.argv[1:] if a == "--quick"]
    failed = []
    steps = [(script, args) for script in sorted(here.glob("bench_*.py"))
             for args in ([], *EXTRA_RUNS.get(script.name, []))]
    for script, args in steps:
        label = " ".join([script.name, *args])
        print(f"\n===== {label} {' '.join(extra)} =====", flush=True)
        started = time.monotonic()
        status = subprocess.call([sys.executable, str(script), *args, *extra])
        print(f"----- {label}: exit {status} after {time.monotonic() - started:.0f} s", flush=True)
        if status != 0:
            failed.append(label)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
