"""``tcplab analyze`` end to end: views, filters, JSON, and clear errors on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tcplab.cli import main
from tests.analyze import scenarios


@pytest.fixture()
def capture(tmp_path):
    return scenarios.anomalies().write(str(tmp_path / "a.pcap"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_packet_list(capsys, capture):
    code, out, err = run(capsys, capture)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["No.", "Time", "Source", "Destination", "Protocol", "Length", "Info"]
    assert len(lines) == 1 + 37
    assert "10.0.0.1 → 10.0.0.2" in lines[1] and "[SYN] Seq=0 Win=64240" in lines[1]
    assert "[TCP Dup ACK 5#2]" in lines[8]


def test_absolute_numbers(capsys, capture):
    _, out, _ = run(capsys, capture, "--absolute", "-c", "4")
    assert "Seq=1001 Ack=5001" in out.splitlines()[4]


def test_detail_and_hex(capsys, capture):
    code, out, _ = run(capsys, capture, "--packet", "10", "--hex")
    assert code == 0
    assert out.startswith("Frame 10: 154 bytes on wire (1232 bits)")
    assert "[Stream index: 0]" in out and "[TCP Fast Retransmission]" in out
    assert "[Conversation completeness: Complete, WITH_DATA (31)]" in out
    assert "\n0000  00 00 00 00 00 00 00 00 00 00 00 00 08 00 45 00" in out


def test_display_filter_and_json(capsys, capture):
    code, out, _ = run(capsys, capture, "-Y", "tcp.analysis.retransmission && tcp.port == 80",
                       "--json")
    frames = [json.loads(line)["frame.number"] for line in out.splitlines()]
    assert code == 0 and frames == [10, 13, 30]


def test_bad_filter_is_a_clear_error(capsys, capture):
    code, _, err = run(capsys, capture, "-Y", "tcp.port === ")
    assert code == 1 and err.startswith("tcplab: error:")


def test_summaries_as_json_objects(capsys, capture):
    code, out, _ = run(capsys, capture, "--json", "--conversations", "--explain")
    objs = [json.loads(line) for line in out.splitlines()]
    kinds = [o["summary"] for o in objs if "summary" in o]
    assert code == 0 and kinds == ["conversations", "explain"]
    assert sum(1 for o in objs if "frame.number" in o) == 37


def test_summary_only_skips_the_list(capsys, capture):
    code, out, _ = run(capsys, capture, "--conversations")
    assert code == 0 and "No." not in out.splitlines()[0] and "TCP conversations" in out


def test_missing_frame(capsys, capture):
    code, _, err = run(capsys, capture, "--packet", "999")
    assert code == 1 and "no frame 999" in err


def test_hex_needs_packet(capsys, capture):
    code, _, err = run(capsys, capture, "--hex")
    assert code == 1 and "--packet" in err


def test_bad_magic_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "notes.pcap"
    bad.write_text("msg_id,app_protocol\n1,HTTP\n")
    code, out, err = run(capsys, str(bad))
    assert code == 1 and out == ""
    assert err.startswith("tcplab: error: ") and "not a pcap or pcapng file" in err
    assert "Traceback" not in err


def test_truncated_record_is_reported_in_place_after_the_good_packets(capsys, tmp_path, capture):
    data = Path(capture).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    code, out, err = run(capsys, str(cut))
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == 1 + 37 and lines[-1].split()[0] == "37"
    assert "[Malformed Packet: capture record at byte" in lines[-1]
    assert "after 36 good packets" in err


def test_damaged_packets_inside_a_good_file(capsys, tmp_path):
    b = scenarios.Builder()
    b.seg(scenarios.A, scenarios.B, 1, 2, 10, 0, scenarios.S)
    good = b.frames[0][1]
    b.raw(b"\x42" + good[1:])  # IHL 2
    b.raw(good[:32] + b"\x20" + good[33:])  # TCP data offset 2
    b.raw(good[:30])  # shorter than its headers
    b.seg(scenarios.A, scenarios.B, 1, 2, 10, 0, scenarios.S)
    path = b.write(str(tmp_path / "damaged.pcap"))
    code, out, _ = run(capsys, path)
    lines = out.splitlines()[1:]
    assert code == 0 and len(lines) == 5
    assert "[Malformed Packet: IPv4: header length (IHL)" in lines[1]
    assert "[Malformed Packet: TCP: data offset" in lines[2]
    # The IP total length exceeds the 30 bytes captured; as in tshark the frame is still
    # dissected, and it is the TCP header that cannot fit.
    assert "[Malformed Packet: TCP: header at byte 34: needs 20 bytes" in lines[3]
    assert "[TCP Retransmission]" in lines[4]


def test_a_pipe_is_read_once(capture):
    import subprocess
    import sys

    data = Path(capture).read_bytes()
    proc = subprocess.run([sys.executable, "-m", "tcplab", "analyze", "/dev/stdin", "--json"],
                          input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 37


class _Writes:
    """A stdout that keeps each write apart, to see how the CLI blocks its output; with
    ``utf8`` it has a bytes layer, which the CLI writes to (the text layer then stays
    unused)."""

    def __init__(self, utf8: bool) -> None:
        self.writes: list[str] = []
        self.encoding = "utf-8" if utf8 else "ascii"
        if utf8:
            self.buffer = self

    def write(self, text: str | bytes) -> int:
        self.writes.append(text.decode() if isinstance(text, bytes) else text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("utf8", [True, False], ids=["bytes-layer", "text-layer"])
@pytest.mark.parametrize("view, most", [(["--json"], 64), ([], 2048 + 1)])
def test_output_is_written_in_bounded_blocks(monkeypatch, tmp_path, view, most, utf8):
    """--json lines are long: they go out 64 at a time (a block of 2048 would be megabytes
    of fresh memory per write); the list 2048 at a time. Nothing is lost or reordered,
    through stdout's bytes layer or (another encoding than UTF-8) its text layer."""
    path = scenarios.random_conversations(3, count=300).write(str(tmp_path / "r.pcap"))
    monkeypatch.setattr("sys.stdout", _Writes(utf8))
    assert main(["analyze", path, *view]) == 0
    writes = sys.stdout.writes
    monkeypatch.undo()
    lines = "".join(writes).splitlines()
    assert len(lines) > 3 * 64 and all(w.endswith("\n") for w in writes)
    assert max(w.count("\n") for w in writes) <= most
    if view:
        assert len(writes) > len(lines) // 64
        assert [json.loads(line)["frame.number"] for line in lines] == list(range(1, len(lines) + 1))
    else:
        from tcplab.analyze.session import AnalysisSession

        assert lines[1:] == list(AnalysisSession(path, two_pass=False).list_lines())


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("view", [[], ["--json"], ["--conversations"], ["--packet", "3"]])
def test_a_stdout_that_is_not_utf8_gets_escapes_not_a_traceback(tmp_path, encoding, view):
    """The list and JSON lines have arrows (→), which ASCII and Latin-1 lack: every view
    still prints all it has, the arrow as ``\\u2192``, and exits 0 (the list used to stop
    at its first packet with a UnicodeEncodeError)."""
    import os
    import subprocess

    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    proc = subprocess.run([sys.executable, "-m", "tcplab", "analyze", path, *view],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    out = proc.stdout.decode(encoding)  # nothing the encoding lacks was written
    utf8 = subprocess.run([sys.executable, "-m", "tcplab", "analyze", path, *view],
                          capture_output=True, timeout=120, check=True).stdout.decode()
    assert out == utf8.encode(encoding, "backslashreplace").decode(encoding)
    assert ("\\u2192" in out) == ("→" in utf8) and len(out.splitlines()) >= 5


@pytest.mark.parametrize("view", [[], ["--json"]])
def test_a_full_disk_is_an_error_not_a_traceback(tmp_path, view):
    """Written to /dev/full (every write fails with ENOSPC): one line saying so, exit 2."""
    import os
    import stat
    import subprocess

    if not os.path.exists("/dev/full") or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("this machine has no /dev/full device to write to")
    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "tcplab", "analyze", path, *view],
                              stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "tcplab: error: cannot write the output: No space left on device\n"


def test_a_closed_stdout_is_not_a_traceback(tmp_path):
    """Started with stdout closed (``>&-``), the list goes nowhere, as print() does then."""
    import subprocess

    path = scenarios.anomalies().write(str(tmp_path / "a.pcap"))
    proc = subprocess.run(["sh", "-c", 'exec "$0" -m tcplab analyze "$1" >&-', sys.executable,
                           path], stderr=subprocess.PIPE, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, b"")
