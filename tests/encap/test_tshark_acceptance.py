"""tshark, the independent judge: our pcaps must read as valid, complete TCP conversations."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tcplab.cli import main
from tests.support import tshark

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "http_ecommerce.csv"
WARN_OR_ERROR = {6291456, 8388608}  # Wireshark's PI_WARN and PI_ERROR severities
GOOD = "1"  # Wireshark's PROTO_CHECKSUM_E_GOOD in *.checksum.status


def encap(tmp_path: Path, csv_path: Path, *args: str, name: str = "out.pcap") -> Path:
    out = tmp_path / name
    assert main(["encap", str(csv_path), "-o", str(out), "--seed", "7", "-q", *args]) == 0
    return out


def expert_severities(pcap: Path) -> Counter[int]:
    out = tshark("-2", "-r", str(pcap), "-T", "fields", "-e", "_ws.expert.severity")
    return Counter(int(v) for line in out.splitlines() for v in line.split(",") if v)


def csv_http_status_codes(path: Path) -> Counter[int]:
    with open(path, newline="", encoding="utf-8") as fh:
        return Counter(int(r["message"].split()[1]) for r in csv.DictReader(fh) if r["message"].startswith("HTTP/"))


def test_stream_sample_is_valid_complete_and_every_http_message_dissected(tmp_path: Path) -> None:
    pcap = encap(tmp_path, SAMPLE)
    fields = tshark("-2", "-r", str(pcap), "-T", "fields", "-E", "separator=;",
                    "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "tcp.completeness",
                    "-e", "http.request.method", "-e", "http.response.code")
    rows = [line.split(";") for line in fields.splitlines()]
    assert rows and all(r[0] == GOOD for r in rows), "every IP checksum verified good"
    assert all(r[1] == GOOD for r in rows), "every TCP checksum verified good"
    assert {r[2] for r in rows} == {"31"}, "the conversation is Complete (SYN, SYN-ACK, ACK, DATA, FIN)"
    assert not (expert_severities(pcap).keys() & WARN_OR_ERROR)
    with open(SAMPLE, newline="", encoding="utf-8") as fh:
        csv_rows = list(csv.DictReader(fh))
    requests = [r for r in csv_rows if not r["message"].startswith("HTTP/")]
    assert sum(1 for r in rows if r[3]) == len(requests)
    assert Counter(int(r[4]) for r in rows if r[4]) == csv_http_status_codes(SAMPLE)
    assert csv_http_status_codes(SAMPLE)[201] >= 1 and csv_http_status_codes(SAMPLE)[304] == 1


def _large_body_csv(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["msg_id", "app_protocol", "src_app", "dst_app", "message", "timestamp"])
        t = 0.0
        for i in range(6):
            body = ("<p>" + "lorem ipsum dolor sit amet " * (200 * (i + 1)) + "</p>")
            upload = "x=" + "y" * (3000 * i)
            w.writerow([2 * i + 1, "HTTP", "client_browser", "web_server",
                        f"POST /upload/{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {len(upload)}\r\n\r\n{upload}", t])
            w.writerow([2 * i + 2, "HTTP", "web_server", "client_browser",
                        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n{body}",
                        t + 0.01])
            t += 0.2
    return path


def test_bodies_larger_than_mss_reassemble_in_tshark(tmp_path: Path) -> None:
    pcap = encap(tmp_path, _large_body_csv(tmp_path))
    out = tshark("-2", "-r", str(pcap), "-T", "fields", "-E", "separator=;",
                 "-e", "tcp.completeness", "-e", "http.request.method", "-e", "http.response.code",
                 "-e", "tcp.checksum.status", "-e", "http.content_length")
    rows = [line.split(";") for line in out.splitlines()]
    assert {r[0] for r in rows} == {"31"}
    assert sum(1 for r in rows if r[1] == "POST") == 6
    assert sum(1 for r in rows if r[2] == "200") == 6
    assert all(r[3] == GOOD for r in rows)
    assert len(rows) > 40, "large messages were split into several segments"
    assert not (expert_severities(pcap).keys() & WARN_OR_ERROR)


def test_seed_style_shows_the_reports_picture(tmp_path: Path) -> None:
    pcap = encap(tmp_path, SAMPLE, "--style", "seed", "--linktype", "null")
    out = tshark("-2", "-r", str(pcap), "-T", "fields", "-E", "separator=;",
                 "-e", "frame.number", "-e", "tcp.flags.str", "-e", "tcp.seq", "-e", "tcp.ack",
                 "-e", "tcp.window_size_value", "-e", "tcp.analysis.retransmission", "-e", "tcp.checksum.status")
    rows = [line.split(";") for line in out.splitlines()]
    assert len(rows) == 82
    assert {(r[1], r[2], r[3], r[4]) for r in rows} == {("·······AP···", "1", "1", "8192")}
    # The first segment each way starts its "stream"; every later one repeats seq 0.
    assert [r[0] for r in rows if not r[5]] == ["1", "2"]
    assert all(r[6] == GOOD for r in rows)


def test_seed_style_reproduces_frame_351_exactly(tmp_path: Path) -> None:
    from tcplab.pcap import open_capture
    from tests.packet.test_golden import GOLDEN_FRAME

    src = tmp_path / "one.csv"
    src.write_text("msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                   "1,HTTP,client_browser,web_server,GET /blog HTTP/1.1,23.260163\n", encoding="utf-8")
    pcap = encap(tmp_path, src, "--style", "seed", "--linktype", "null", "--client-port", "5074",
                 "--server-port", "12345", "--start-time", "0")
    with open_capture(pcap) as reader:
        [rec] = list(reader)
    assert rec.data == GOLDEN_FRAME and rec.linktype == 0
    assert rec.timestamp_ns == 23_260_163_000


def test_pcapng_output_carries_msg_ids(tmp_path: Path) -> None:
    pcap = encap(tmp_path, SAMPLE, name="out.pcapng")
    out = tshark("-r", str(pcap), "-Y", "http.response.code == 201", "-T", "fields", "-e", "frame.comment")
    assert "msg_id=20" in out.split()


@pytest.mark.parametrize("linktype", ["ethernet", "null", "raw", "sll", "sll2"])
def test_every_link_type_is_read_by_tshark(tmp_path: Path, linktype: str) -> None:
    pcap = encap(tmp_path, SAMPLE, "--linktype", linktype)
    out = tshark("-2", "-r", str(pcap), "-T", "fields", "-e", "tcp.completeness", "-e", "tcp.checksum.status")
    assert set(out.split("\n")[:-1]) == {"31\t" + GOOD}


def test_cli_runs_as_a_module_and_prints_a_summary(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tcplab", "encap", str(SAMPLE), "-o", str(tmp_path / "x.pcap")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "82 messages" in proc.stdout and "1 connection(s)" in proc.stdout
