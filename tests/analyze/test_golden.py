"""Every analyzer view prints byte for byte what it printed before the views shared one path.

``golden/views.json.gz`` holds the exit code, stdout, stderr and any SVG of each view in
``make_golden.VIEWS`` on each capture under ``golden/`` (HTTP, chat, IPv6, Null/Ethernet/
SLL/raw links, pcapng comments, every analysis tag, lossy and damaged files), recorded by
the analyzer before the change. Any difference is a change of behaviour.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.analyze.golden.make_golden import HERE, VIEWS, VIEWS_FILE, run_view

GOLDEN = json.loads(gzip.decompress(VIEWS_FILE.read_bytes()).decode("utf-8"))
CASES = [(cap, view) for cap in sorted(GOLDEN["outputs"]) for view in GOLDEN["outputs"][cap]]


def test_golden_covers_every_view():
    assert GOLDEN["views"] == VIEWS
    assert all(set(v) == set(VIEWS) for v in GOLDEN["outputs"].values())


@pytest.mark.parametrize(("capture", "view"), CASES)
def test_view_unchanged(tmp_path, capture, view):
    path = HERE / GOLDEN["files"][capture]
    want = GOLDEN["outputs"][capture][view]
    got = run_view(path, VIEWS[view], tmp_path / "flow.svg")
    got["stdout"] = got["stdout"].replace(str(path), "{capture}")
    assert got["rc"] == want["rc"]
    assert got["stderr"] == want["stderr"]
    if got["stdout"] != want["stdout"]:
        for i, (a, b) in enumerate(zip(got["stdout"].splitlines(), want["stdout"].splitlines(),
                                       strict=False), 1):
            assert a == b, f"line {i} differs"
        assert got["stdout"] == want["stdout"]
    assert got.get("svg") == want.get("svg")
