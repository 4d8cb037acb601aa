"""Streaming keeps memory flat: a million-record file is written and read in a few MiB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, resource, sys
    from tcplab.pcap import open_capture, open_writer

    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    path, fmt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frame = bytes(range(60))
    baseline = peak_kib()
    with open_writer(path, 1, format=fmt) as w:
        write = w.write
        for i in range(n):
            write(frame, 1_700_000_000_000_000_000 + i * 1000)
    after_write = peak_kib()
    count = total = 0
    with open_capture(path) as reader:
        for rec in reader:
            count += 1
            total += len(rec.data)
    print(json.dumps({"baseline": baseline, "after_write": after_write, "after_read": peak_kib(),
                      "count": count, "total": total, "size": os.path.getsize(path)}))
    """
)

N = 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_million_records_with_flat_memory(tmp_path, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path), fmt, str(N)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["count"] == N and stats["total"] == 60 * N
    assert stats["size"] > 70 * 1024 * 1024  # the file is far larger than what we allow below
    grown_mib = (stats["after_read"] - stats["baseline"]) / 1024
    assert grown_mib < 12, f"peak RSS grew {grown_mib:.1f} MiB while streaming {stats['size']} bytes"
