"""CSV timestamps to the nanosecond from the text, time that runs backwards, and ; / tab separators."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.encap import EncapOptions, encapsulate_csv
from tcplab.encap.csv_input import (
    ReadStats,
    parse_timestamp_ns,
    read_messages,
    seconds_to_ns,
    sniff_delimiter,
)
from tcplab.errors import InputError
from tcplab.pcap import open_capture
from tests.support import require_tshark

HEADER = ["msg_id", "app_protocol", "src_app", "dst_app", "message", "timestamp"]
T = 1_714_557_605  # 2024-05-01T10:00:05Z


@pytest.mark.parametrize(
    ("text", "ns", "absolute"),
    [
        ("0.266", 266_000_000, False),
        ("  12 ", 12_000_000_000, False),
        ("-1.5", -1_500_000_000, False),
        (".5", 500_000_000, False),
        ("2e-3", 2_000_000, False),
        ("1714557605.123", T * 10**9 + 123_000_000, False),
        ("0.1234567894", 123_456_789, False),
        ("0.1234567895", 123_456_790, False),  # half-even at the tenth digit
        ("2024-05-01T10:00:05.123", T * 10**9 + 123_000_000, True),
        ("2024-05-01T10:00:05.123Z", T * 10**9 + 123_000_000, True),
        ("2024-05-01 10:00:05,5", T * 10**9 + 500_000_000, True),
        ("2024-05-01T12:00:05.000000001+02:00", T * 10**9 + 1, True),
        ("2024-05-01T10:00:05", T * 10**9, True),
        ("01/05/2024 10:00:05.123", T * 10**9 + 123_000_000, True),
        ("01/05/2024 10:00", (T - 5) * 10**9, True),
    ],
)
def test_timestamps_are_exact_integer_nanoseconds(text: str, ns: int, absolute: bool) -> None:
    assert parse_timestamp_ns(text) == (ns, absolute)


@pytest.mark.parametrize("text", ["nan", "inf", "yesterday", "31/02/2024 10:00", "1.2.3"])
def test_bad_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp_ns(text)


@given(st.decimals(min_value=-10**12, max_value=10**12, places=12, allow_nan=False))
def test_seconds_to_ns_is_decimal_arithmetic(value: Decimal) -> None:
    text = f"{value:f}"
    assert seconds_to_ns(text) == int(Decimal(text).scaleb(9).to_integral_value())


def _write(path: Path, rows: list[list[str]], sep: str = ",") -> Path:
    def cell(v: str) -> str:
        return f'"{v}"' if sep in v or '"' in v else v
    path.write_text("\n".join(sep.join(cell(v) for v in row) for row in [HEADER, *rows]) + "\n")
    return path


ROWS = [
    ["1", "HTTP", "client_browser", "web_server", "GET /a;b HTTP/1.1", "2024-05-01T10:00:05.123"],
    ["2", "HTTP", "web_server", "client_browser", "HTTP/1.1 200 OK", "2024-05-01T10:00:05.456"],
]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_wall_clock_fractions_reach_the_capture_exactly(tmp_path: Path, fmt: str) -> None:
    exe = require_tshark()
    out = tmp_path / f"t.{fmt}"
    encapsulate_csv(_write(tmp_path / "in.csv", ROWS), out, EncapOptions(seed=1))
    with open_capture(out) as reader:
        times = [r.timestamp_ns for r in reader]
    assert T * 10**9 + 123_000_000 in times and T * 10**9 + 456_000_000 in times
    shown = subprocess.run([exe, "-r", str(out), "-T", "fields", "-e", "frame.time_epoch"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert "1714557605.123000000" in shown and "1714557605.456000000" in shown


def test_time_going_backwards_is_nudged_and_said(tmp_path: Path) -> None:
    rows = [*ROWS, ["3", "HTTP", "client_browser", "web_server", "GET /b HTTP/1.1", "2024-05-01T10:00:05.200"],
            ["4", "HTTP", "web_server", "client_browser", "HTTP/1.1 404 Not Found", "2024-05-01T10:00:05.100"],
            ["5", "HTTP", "client_browser", "web_server", "GET /c HTTP/1.1", "2024-05-01T10:00:06"]]
    out = tmp_path / "t.pcap"
    summary = encapsulate_csv(_write(tmp_path / "in.csv", rows), out, EncapOptions(seed=1))
    assert summary.time_nudged == 2 and summary.time_nudged_lines == [4, 5]
    text = "\n".join(summary.lines())
    assert "nudged    2 message(s) forward" in text and "(line 4, 5)" in text
    with open_capture(out) as reader:
        times = [r.timestamp_ns for r in reader]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert T * 10**9 + 10**9 in times  # the row after them keeps its own time


def test_cli_summary_names_separator_and_nudges(tmp_path: Path) -> None:
    rows = [ROWS[1], ROWS[0]]
    src = _write(tmp_path / "in.csv", rows, ";")
    proc = subprocess.run([sys.executable, "-m", "tcplab", "encap", str(src), "-o", str(tmp_path / "o.pcap")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "(semicolon-separated): 2 messages" in proc.stdout
    assert "nudged    1 message(s)" in proc.stdout and "(line 3)" in proc.stdout


@pytest.mark.parametrize(("sep", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_separators_are_sniffed(tmp_path: Path, sep: str, name: str) -> None:
    stats = ReadStats()
    messages = list(read_messages(_write(tmp_path / "in.csv", ROWS, sep), stats=stats))
    assert stats.delimiter == sep and stats.delimiter_name == name
    assert [m.payload for m in messages] == [b"GET /a;b HTTP/1.1", b"HTTP/1.1 200 OK"]
    assert [m.timestamp_ns for m in messages] == [T * 10**9 + 123_000_000, T * 10**9 + 456_000_000]


def test_sniffing_looks_at_the_header_not_the_messages() -> None:
    assert sniff_delimiter("src_app,dst_app,message\n") == ","
    assert sniff_delimiter("src_app;dst_app;message;note,with,commas\n") == ";"
    assert sniff_delimiter("Source\tDestination\tInfo\n") == "\t"  # no known columns: most fields
    assert sniff_delimiter("message\n") == ","


def test_errors_name_the_separator(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("src_app;dst_app;message\nc;s\n")
    with pytest.raises(InputError, match=r"line 2: has 2 fields, the header has 3 \(semicolon-separated\)"):
        list(read_messages(bad))
    missing = tmp_path / "missing.csv"
    missing.write_text("src_app\tmessage\nc\tx\n")
    with pytest.raises(InputError, match=r"missing required column dst_app; columns found: src_app, "
                                         r"message \(read as tab-separated\)"):
        list(read_messages(missing))
