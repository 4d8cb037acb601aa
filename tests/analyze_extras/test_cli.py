"""`tcplab analyze` with the extras: -Y, --conversations, --flow/--flow-svg, --http, --explain."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tcplab.cli import main
from tests.analyze_extras.captures import mixed_packets, tshark_filter, write_pcap
from tests.support import require_tshark


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory):
    return write_pcap(tmp_path_factory.mktemp("cli") / "mixed.pcap", mixed_packets())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def frames_of(json_lines: str) -> list[int]:
    return [obj["frame.number"] for obj in map(json.loads, json_lines.splitlines())
            if "frame.number" in obj]


@pytest.mark.parametrize("expr", [
    "tcp.port == 80",
    "ip.addr == 10.0.0.0/8 && !tcp.analysis.retransmission",
    "tcp.flags.reset == 1 || udp",
    # tcplab takes HTTP by content on any port (docs/analyze.md), tshark only on HTTP ports.
    "http && tcp.port == 80",
    "tcp.payload contains \"GET\"",
    "tcp.analysis.flags && tcp.stream == 4",
    "tcp.checksum.status == 0",
    "ip.flags.df == 1 && tcp.flags.cwr == 1",
    "dns || tcp.flags.syn == 1",
    "tcp.analysis.flags",
])
def test_display_filter_selects_what_tshark_selects(capsys, mixed, expr: str) -> None:
    require_tshark()
    code, out, err = run(capsys, mixed, "-Y", expr, "--json")
    assert code == 0, err
    assert frames_of(out) == tshark_filter(mixed, expr)


def test_bad_filter_is_a_one_line_error_with_caret(capsys, mixed) -> None:
    code, out, err = run(capsys, mixed, "-Y", 'http.host matches "shop"')
    assert code == 1 and out == ""
    assert err.startswith("tcplab: error: -Y: unsupported operator 'matches' at column 11")
    assert "Traceback" not in err and err.splitlines()[-1].strip() == "^~~~~~~"


def test_conversations_text_and_json(capsys, mixed) -> None:
    code, out, _ = run(capsys, mixed, "--conversations")
    assert code == 0
    assert "Incomplete (40)" in out
    assert ("no handshake; 3 data segments, 2 retransmissions, every segment answered by RST"
            in out)
    assert "Complete, WITH_DATA (31)" in out and "FIN teardown" in out
    code, out, _ = run(capsys, mixed, "--conversations", "--json")
    summary = [o for o in map(json.loads, out.splitlines()) if o.get("summary")]
    assert summary[0]["summary"] == "conversations"
    assert [c["tcp.stream"] for c in summary[0]["conversations"]] == [0, 1, 2, 3, 4, 5]


def test_flow_terminal_and_svg(capsys, mixed, tmp_path) -> None:
    svg = tmp_path / "s1.svg"
    code, out, err = run(capsys, mixed, "--flow", "1", "--flow-svg", svg)
    assert code == 0, err
    assert "TCP stream 1: 127.0.0.1:5074 (client) ⇄ 127.0.0.1:12345 (server)" in out
    assert out.count("[RST] Seq=1 Len=0") == 3 and "[TCP Retransmission]" in out
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    code, out, err = run(capsys, mixed, "--flow", "99")
    assert code == 1 and "TCP stream 99 is not in the capture" in err


def test_explain_on_the_seed_pattern(capsys, mixed) -> None:
    code, out, _ = run(capsys, mixed, "--explain")
    assert code == 0
    assert "Every one was answered by a RST from port 12345 (frames 10, 12, 14" in out
    assert "same raw sequence number 0" in out
    assert "checksum offload" in out
    assert "tcplab chat protocol on port 55555" in out


def test_http_summary_of_an_encap_capture(capsys, tmp_path) -> None:
    pcapng = tmp_path / "shop.pcapng"
    assert main(["encap", "examples/http_ecommerce.csv", "-o", str(pcapng), "-q"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, pcapng, "--http")
    assert code == 0
    assert "201 Created" in out and "304 Not Modified" in out
    line_304 = next(line for line in out.splitlines() if "304 Not Modified" in line and "ms" in line)
    assert " 75 " in line_304 and " 76 " in line_304  # request and response CSV rows
    code, out, _ = run(capsys, pcapng, "--http", "--json")
    http = next(o for o in map(json.loads, out.splitlines()) if o.get("summary") == "http")
    assert http["requests"] == http["responses"] == len(http["pairs"])
