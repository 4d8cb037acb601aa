"""The multi-lane flow graph: lanes per endpoint, capture order, the CLI flag, hostile text."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tcplab.analyze import analyze
from tcplab.analyze.ladder import build_ladder, parse_streams, svg_text
from tcplab.errors import InputError

from .conftest import REPO


def _packets(path: Path) -> list[dict]:
    return list(analyze(path, payload=False))


def test_two_streams_share_the_server_lane(captures: dict[str, Path]) -> None:
    packets = _packets(captures["per_message"])
    ladder = build_ladder(packets, [1, 0])
    # Stream 1's client first, the shared server once, then stream 0's client.
    first = {s: next(d for d in packets if d["tcp.stream"] == s) for s in (0, 1)}
    client = {s: f"{first[s]['ip.src']}:{first[s]['tcp.srcport']}" for s in (0, 1)}
    server = f"{first[0]['ip.dst']}:{first[0]['tcp.dstport']}"
    assert ladder.lanes == [client[1], server, client[0]]
    frames = [r.frame for r in ladder.rows]
    assert frames == sorted(frames)
    assert frames == [d["frame.number"] for d in packets if d["tcp.stream"] in (0, 1)]
    for r in ladder.rows:
        assert {r.src, r.dst} <= {0, 1, 2} and r.src != r.dst
        assert 1 in (r.src, r.dst)  # every arrow touches the server
        assert (2 in (r.src, r.dst)) == (r.stream == 0)
    svg = svg_text(ladder, names={server: "server"})
    root = ET.fromstring(svg.split("?>", 1)[1])
    assert root.tag.endswith("svg")
    assert svg.count("<line") >= len(ladder.rows) + 3  # arrows plus three lifelines


def test_missing_stream_is_named() -> None:
    with pytest.raises(InputError, match=r"TCP stream 7 is not in the capture \(no TCP"):
        build_ladder([], [7])


@pytest.mark.parametrize("text", ["", "1,,2", "a", "1;2", "-1", ",".join(map(str, range(9)))])
def test_bad_stream_lists(text: str) -> None:
    with pytest.raises(InputError, match="--streams"):
        parse_streams(text)


def test_stream_list_keeps_order_and_drops_repeats() -> None:
    assert parse_streams(" 4, 3,4 ") == [4, 3]


def test_capture_text_is_escaped_in_the_picture() -> None:
    d = {"frame.number": 1, "frame.time_relative": 0.0, "tcp.stream": 0, "ip.src": "10.0.0.1",
         "ip.dst": "10.0.0.2", "tcp.srcport": 1, "tcp.dstport": 2, "tcp.flags": 0x18,
         "tcp.seq": 1, "tcp.ack": 1, "tcp.len": 5, "_ws.col.Protocol": "CHAT",
         "_ws.col.Info": "</text><script>alert(1)</script>\x1b[2J"}
    svg = svg_text(build_ladder([d], [0]), names={"10.0.0.1:1": "<b>&"})
    assert "<script>" not in svg and "\x1b" not in svg
    ET.fromstring(svg.split("?>", 1)[1])


def test_cli_draws_streams(captures: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "relay.svg"
    run = [sys.executable, "-m", "tcplab", "analyze", str(captures["per_message"])]
    proc = subprocess.run([*run, "--flow-svg", str(out), "--streams", "0,1"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TCP streams 0,1" in proc.stderr
    assert out.read_text(encoding="utf-8").count("<line") > 10
    proc = subprocess.run([*run, "--streams", "0,1"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "add --flow-svg" in proc.stderr
    proc = subprocess.run([*run, "--flow-svg", str(out), "--streams", "0,999"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "stream 999 is not in the capture" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rows_are_capped_and_counted(captures: dict[str, Path]) -> None:
    packets = _packets(captures["per_message"])
    total = sum(1 for d in packets if d["tcp.stream"] in (0, 1))
    ladder = build_ladder(packets, [0, 1], max_rows=3)
    assert len(ladder.rows) == 3 and ladder.omitted == total - 3
    assert "more packets not drawn" in svg_text(ladder)
