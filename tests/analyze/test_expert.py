"""Expert information (``-Y _ws.expert`` and its fields) as tshark 4.0 reports it, chat items too."""

from __future__ import annotations

import subprocess

import pytest

from tcplab.analyze import expert
from tcplab.cli import main
from tests.fidelity.oracle import DATA
from tests.support import require_tshark


def test_handshake_close_analysis_and_http_items_in_tsharks_words():
    syn = expert.infos({"tcp.flags": 0x002, "tcp.srcport": 40000, "tcp.dstport": 80})
    assert syn == [expert.Info(expert.CHAT, expert.SEQUENCE, "Connection establish request (SYN): server port 80")]
    synack = expert.infos({"tcp.flags": 0x012, "tcp.srcport": 80, "tcp.dstport": 40000})
    assert synack[0].message == "Connection establish acknowledge (SYN+ACK): server port 80"
    fin_rst = expert.infos({"tcp.flags": 0x015, "tcp.analysis.window_update": True,
                            "tcp.analysis.duplicate_ack": True, "tcp.analysis.duplicate_ack_num": 2})
    assert [(i.severity, i.message) for i in fin_rst] == [
        (expert.CHAT, "Connection finish (FIN)"), (expert.WARNING, "Connection reset (RST)"),
        (expert.CHAT, "TCP window update"), (expert.NOTE, "Duplicate ACK (#2)")]
    http = expert.infos({"http.request.method": "GET", "http.request.uri": "/", "http.request.version": "HTTP/1.1",
                         "frame.comment": "hello"})
    assert [i.message for i in http] == ["hello", "GET / HTTP/1.1\r\n"]
    assert http[0].line() == "[Expert Info (Comment/Comment): hello]"
    assert expert.infos({"tcp.flags": 0x010}) == []
    assert expert.values({"tcp.flags": 0x004}, "_ws.expert.severity") == (expert.WARNING,)


def _ours(path, expr: str, *extra: str) -> list[int]:
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["analyze", str(path), *extra, "-Y", expr])
    return [int(line.split()[0]) for line in out.getvalue().splitlines()[1:] if line.split()[0].isdigit()]


@pytest.mark.parametrize("two_pass", [False, True])
@pytest.mark.parametrize(("name", "expr"), [
    ("corpus/http-methods-lo.pcapng", "_ws.expert"), ("corpus/zerowin-lo.pcap", "_ws.expert"),
    ("corpus/rst-lo.pcap", "_ws.expert.severity >= 0x00600000"),
    ("corpus/dpkt-dns_icmp.pcap", "_ws.expert || frame.number == 1"), ("corpus/gopacket-ng-le-test009.pcapng", "_ws.expert"),
    ("corpus/http-keepalive-lo.pcap", '_ws.expert.message contains " 200 OK"'),
    ("corpus/tcp-oddities-lo.pcap", "_ws.expert.group == 0x02000000 && !(_ws.expert.severity == 0x00200000)"),
])
def test_expert_filters_select_tsharks_frames(name: str, expr: str, two_pass: bool):
    path = DATA / name
    extra = ("-2",) if two_pass else ()
    proc = subprocess.run([require_tshark(), "-r", str(path), *extra, "-Y", expr, "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=60, check=True)
    theirs = [int(n) for n in proc.stdout.split()]
    assert theirs, "the expression should select something"
    assert _ours(path, expr, *extra) == theirs
