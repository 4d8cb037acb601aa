"""HTTP over several TCP segments against tshark 4.0: which segment shows each message.

Hand-built conversations on port 80 (an HTTP port for tshark) and a real exchange through
the kernel captured on ``lo``: a request whose headers are split, responses whose bodies
follow in later segments (Content-Length and chunked), two requests in one segment, a
request completed and another begun in one segment, a hole that leaves a message
incomplete, then the bounded-memory check: 100,000 out-of-order segments.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tcplab.analyze import reassembly
from tcplab.analyze.session import AnalysisSession
from tests.analyze.scenarios import AK, PA, SA, SYN_OPTIONS, SYNACK_OPTIONS, A, B, Builder, S
from tests.fidelity.oracle import tshark_fields
from tests.support import dumpcap_on_lo, require_root, require_tshark

FIELDS = ("tcp.stream", "tcp.len", "tcp.seq", "tcp.reassembled_in", "tcp.segment",
          "tcp.segment.count", "tcp.reassembled.length", "http.request.method",
          "http.request.uri", "http.response.code", "tcp.analysis.retransmission",
          "tcp.analysis.out_of_order", "tcp.analysis.lost_segment", "_ws.col.Protocol",
          "_ws.col.Info")
#: Documented RSS cap (docs/analyze.md) for 100,000 out-of-order segments in one pass.
RSS_CAP_MIB = 48


class Conversation:
    """One client/server connection with running sequence numbers."""

    def __init__(self, b: Builder, cport: int, sport: int = 80) -> None:
        self.b, self.cport, self.sport = b, cport, sport
        self.c, self.s = 1001, 5001
        b.seg(A, B, cport, sport, 1000, 0, S, opts=SYN_OPTIONS)
        b.seg(B, A, sport, cport, 5000, 1001, SA, opts=SYNACK_OPTIONS, dt=0.001)
        b.seg(A, B, cport, sport, 1001, 5001, AK, dt=0.001)

    def client(self, data: bytes, *, skip: int = 0, dt: float = 0.01) -> None:
        self.b.seg(A, B, self.cport, self.sport, self.c + skip, self.s, PA, data, dt=dt)
        self.c += len(data) + skip

    def server(self, data: bytes, dt: float = 0.01) -> None:
        self.b.seg(B, A, self.sport, self.cport, self.s, self.c, PA, data, dt=dt)
        self.s += len(data)


def split_messages() -> Builder:
    b = Builder()
    c = Conversation(b, 40000)
    c.client(b"GET /split HTTP/1.1\r\nHost: ex")
    c.client(b"ample.com\r\nAccept: */*\r\n\r\n")
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789")
    c.server(b"abcdefghij")
    c.client(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n")
    c.client(b"A" * 15)
    c.client(b"B" * 15)
    c.server(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    c.client(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    c.server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.client(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\nGET /d HTTP/1.1\r\nHo")
    c.client(b"st: h\r\n\r\n")
    c.server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    c.server(b"0\r\n\r\n")
    c.client(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n")
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    b.seg(A, B, 40000, 80, c.c, c.s, AK)
    return b


def with_a_hole() -> Builder:
    """A POST whose first body segment is not captured: the message never completes."""
    b = Builder()
    c = Conversation(b, 40001)
    c.client(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n")
    c.client(b"B" * 10, skip=10)
    c.client(b"C" * 10)
    c.server(b"HTTP/1.1 100 Continue\r\n\r\n")
    c.client(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n", dt=0.2)
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return b


def _text(v: object) -> str:
    if v is None or v is False:
        return ""
    if v is True:
        return "1"
    if isinstance(v, list):
        return ",".join(_text(x) for x in v)
    return str(v)


def _disagreements(path: Path, *, two_pass: bool, reassemble: bool = True,
                   decode_as: tuple[str, ...] = ()) -> list[str]:
    extra = (("-2",) if two_pass else ()) + decode_as
    if not reassemble:
        extra += ("-o", "tcp.desegment_tcp_streams:FALSE")
    theirs = tshark_fields(path, *FIELDS, extra=extra)
    session = AnalysisSession(path, two_pass=two_pass, reassemble=reassemble)
    mine = [p.fields() for p in session.run()]
    assert len(mine) == len(theirs)
    problems = []
    for t, d in zip(theirs, mine, strict=True):
        for f in FIELDS:
            want, got = t[f], _text(d.get(f))
            if f == "_ws.col.Info" and t["_ws.col.Protocol"] == "HTTP":
                want = want.rstrip()  # tshark ends an HTTP Info with the line's CRLF as a space
            if got != want:
                problems.append(f"frame {t['frame.number']} {f}: ours {got!r} != tshark {want!r}")
    return problems


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("scenario", [split_messages, with_a_hole])
def test_reassembly_agrees_with_tshark(tmp_path, scenario, two_pass):
    require_tshark()
    path = Path(scenario().write(str(tmp_path / f"{scenario.__name__}.pcap")))
    problems = _disagreements(path, two_pass=two_pass)
    assert not problems, "\n".join(problems)


def test_no_reassemble_agrees_with_tshark_without_desegmentation(tmp_path):
    require_tshark()
    path = Path(split_messages().write(str(tmp_path / "split.pcap")))
    problems = _disagreements(path, two_pass=False, reassemble=False)
    # Without desegmentation tshark's HTTP dissector still shows the body part of a
    # message on its own segment as "Continuation"; tcplab shows it as TCP (documented).
    # A message cut at the segment's end is "[BoundErrorUnreassembled Packet]" there.
    problems = [p for p in problems if "Continuation" not in p
                and "[BoundErrorUnreassembled Packet]" not in p
                and not p.endswith("!= tshark 'HTTP'")]
    assert not problems, "\n".join(problems)


def test_what_the_scenario_holds(tmp_path):
    path = split_messages().write(str(tmp_path / "split.pcap"))
    packets = list(AnalysisSession(path, two_pass=True).run())
    first, done = packets[3].fields(), packets[4].fields()
    assert first["_ws.col.Protocol"] == "TCP" and first["tcp.reassembled_in"] == 5
    assert first["_ws.col.Info"].endswith(reassembly.SEGMENT_NOTE)
    assert done["http.request.uri"] == "/split" and done["tcp.segment"] == [4, 5]
    assert done["http.host"] == "example.com"
    two = packets[11].fields()
    assert two["http.request.uri"] == ["/a", "/b"]
    summary = AnalysisSession(path).http()
    assert summary.requests == 7 and summary.responses == 7  # /split /up /a /b /c /d /h
    assert summary.responses_by_code == {200: 5, 201: 1, 404: 1}
    one = AnalysisSession(path, reassemble=False).http()
    assert one.requests == 7 and one.responses == 7  # every message starts in a segment


def random_exchange(seed: int) -> Builder:
    """Requests and responses of every framing (no body, Content-Length, chunked, HEAD,
    204), pipelined in groups, their byte streams cut at random points (1 byte to 5 kB)."""
    rng = random.Random(seed)
    requests, responses = [], []
    for i in range(8):
        kind = rng.choice(["get", "post"]) if i % 3 else rng.choice(["get", "post", "head"])
        if kind == "get":
            requests.append(b"GET /r%d HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n" % i)
        elif kind == "post":
            body = b"q" * rng.randrange(1, 3000)
            requests.append(b"POST /p%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                            % (i, len(body)) + body)
        else:
            requests.append(b"HEAD /h%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        framing = "head" if kind == "head" else rng.choice(["length", "chunked", "empty"])
        if framing == "length":
            body = b"b" * rng.randrange(1, 4000)
            responses.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif framing == "chunked":
            sizes = [rng.randrange(1, 700) for _ in range(rng.randrange(1, 4))]
            responses.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"".join(b"%x\r\n" % n + b"c" * n + b"\r\n" for n in sizes)
                             + b"0\r\n\r\n")
        elif framing == "head":
            responses.append(b"HTTP/1.1 200 OK\r\nContent-Length: 777\r\n\r\n")
        else:
            responses.append(b"HTTP/1.1 204 No Content\r\n\r\n")

    def cut(data: bytes) -> list[bytes]:
        parts, i = [], 0
        while i < len(data):
            n = rng.choice([1, 2, 3, 7, 30, 200, 1000, 1448, 5000])
            parts.append(data[i : i + n])
            i += n
        return parts

    b = Builder()
    c = Conversation(b, 40000 + seed)
    i = 0
    while i < len(requests):
        # A response to HEAD is judged by the latest request (as tshark does): HEAD alone.
        group = 1 if requests[i].startswith(b"HEAD") else rng.randrange(1, 4)
        if any(r.startswith(b"HEAD") for r in requests[i : i + group]):
            group = 1
        for part in cut(b"".join(requests[i : i + group])):
            c.client(part, dt=0.001)
        for part in cut(b"".join(responses[i : i + group])):
            c.server(part, dt=0.001)
        i += group
    return b


@pytest.mark.parametrize("seed", range(10))
def test_random_cuts_agree_with_tshark(tmp_path, seed):
    """Every field, in one pass and in two (with ``-2`` tshark cuts the reassembled buffer
    of a message where one begun after it in the same segment starts: tcp.reassembled.length
    and whether Info names that message)."""
    require_tshark()
    path = Path(random_exchange(seed).write(str(tmp_path / f"random{seed}.pcap")))
    problems = _disagreements(path, two_pass=False)
    assert not problems, "\n".join(problems)
    problems = _disagreements(path, two_pass=True)
    assert not problems, "\n".join(problems)


# -- real traffic ------------------------------------------------------------------------------

def _serve(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(30)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""

        def need(marker: bytes) -> bytes:
            nonlocal buf
            while marker not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("client left")
                buf += chunk
            head, _, buf = buf.partition(marker)
            return head

        need(b"\r\n\r\n")  # the split request
        body = random.Random(1).randbytes(300_000)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        need(b"\r\n\r\n")  # POST head, then its 3,000-byte body
        while len(buf) < 3000:
            buf += conn.recv(65536)
        buf = buf[3000:]
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        need(b"\r\n\r\n")
        need(b"\r\n\r\n")  # two pipelined requests
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                     b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        need(b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n")
        time.sleep(0.05)
        conn.sendall(b"0\r\n\r\n")
        conn.recv(65536)


def _client(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def read_until(n: int) -> None:
            got = 0
            while got < n:
                chunk = c.recv(65536)
                if not chunk:
                    return
                got += len(chunk)

        c.sendall(b"GET /download HTTP/1.1\r\nHost: lo")
        time.sleep(0.05)
        c.sendall(b"calhost\r\nAccept: */*\r\n\r\n")
        read_until(300_000 + 40)
        c.sendall(b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n\r\n")
        for part in (b"x" * 1000, b"y" * 1000, b"z" * 1000):
            time.sleep(0.02)
            c.sendall(part)
        read_until(40)
        c.sendall(b"GET /one HTTP/1.1\r\nHost: l\r\n\r\nGET /two HTTP/1.1\r\nHost: l\r\n\r\n")
        read_until(80)
        c.sendall(b"GET /chunked HTTP/1.1\r\nHost: l\r\n\r\n")
        read_until(60)
        time.sleep(0.1)
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.1)


def test_real_http_on_lo_agrees_with_tshark(tmp_path):
    require_tshark()
    require_root()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    out = tmp_path / "http-lo.pcapng"
    try:
        with dumpcap_on_lo(f"tcp port {port}", out):
            t = threading.Thread(target=_serve, args=(server,), daemon=True)
            t.start()
            _client(server.getsockname())
            t.join(10)
            time.sleep(0.3)
    finally:
        server.close()
    decode = ("-d", f"tcp.port=={port},http")
    for two_pass in (False, True):
        problems = _disagreements(out, two_pass=two_pass, decode_as=decode)
        assert not problems, "\n".join(problems)
    summary = AnalysisSession(out).http()
    assert summary.requests == 5 and summary.responses == 5
    done = [p.fields() for p in AnalysisSession(out).run() if p.get("tcp.segment")]
    assert any(d.get("http.response.code") == 200 and d["tcp.reassembled.length"] > 300_000
               for d in done)


# -- bounded memory ----------------------------------------------------------------------------

def ooo_capture(path: str, segments: int = 100_000) -> str:
    """Two HTTP uploads whose segments arrive pairwise swapped, and a header block that
    never ends: every way the reassembly could be made to hold on to bytes."""
    b = Builder()
    up = Conversation(b, 41000)
    up.client(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999\r\n\r\n")
    hdr = Conversation(b, 41001)
    hdr.client(b"GET /endless HTTP/1.1\r\n")
    size = 500
    for i in range(0, segments // 2, 2):
        for j in (i + 1, i):  # the later segment first: lost, then out of order
            b.seg(A, B, 41000, 80, up.c + j * size, up.s, PA, b"u" * size, dt=0.0001)
        for j in (i, i + 1):
            b.seg(A, B, 41001, 80, hdr.c + j * size, hdr.s, PA, b"X-Pad: " + b"p" * (size - 9)
                  + b"\r\n", dt=0.0001)
    return b.write(path)


_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _max_rss_mib(cmd: list[str]) -> float:
    """Peak RSS of ``cmd``, started from a small interpreter: a child forked straight from
    this test process would count the capture the test just built in its peak."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    assert out[0] == "0", out
    return int(out[1]) / 1024  # KiB on Linux


@pytest.mark.parametrize("args", [[], ["-2"], ["--http"], ["--json"]],
                         ids=["list", "two-pass", "http", "json"])
def test_100k_out_of_order_segments_stay_under_the_rss_cap(tmp_path, args):
    path = ooo_capture(str(tmp_path / "ooo.pcap"))
    rss = _max_rss_mib([sys.executable, "-m", "tcplab", "analyze", path, *args])
    assert rss < RSS_CAP_MIB, f"{rss:.1f} MiB"


def test_the_ooo_capture_is_what_it_claims(tmp_path):
    path = ooo_capture(str(tmp_path / "ooo.pcap"), segments=600)
    packets = [p.fields() for p in AnalysisSession(path, two_pass=False).run()]
    assert len([d for d in packets if d.get("tcp.analysis.out_of_order")]) == 150
    endless = [d["_ws.col.Info"] for d in packets
               if d.get("tcp.srcport") == 41001 and d.get("tcp.len")]
    # The endless header block is held only up to the per-message limit, then given up.
    held = reassembly.MAX_HEADER_BYTES // 500
    assert all(reassembly.SEGMENT_NOTE in info for info in endless[: held - 1])
    assert not any(reassembly.SEGMENT_NOTE in info for info in endless[held + 2 :])


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("scenario", ["split_messages", "with_a_hole", "ooo_small",
                                      "sack_and_spurious", "damaged"])
def test_fast_records_and_the_full_dissector_agree(tmp_path, scenario, two_pass):
    """Both kinds of record (tcplab.analyze.record) show the same on these captures."""
    from tests.analyze.test_record import assert_identical
    from tests.fidelity import test_tcp_fidelity

    path = str(tmp_path / f"{scenario}.pcap")
    if scenario == "ooo_small":
        ooo_capture(path, segments=600)
    else:
        builder = globals().get(scenario) or getattr(test_tcp_fidelity, scenario)
        builder().write(path)
    assert_identical(path, two_pass=two_pass)


@pytest.mark.parametrize("expression", [
    "tcp.reassembled_in", "tcp.reassembled_in == 10", "tcp.segment == 4",
    "tcp.segment.count > 1", "tcp.reassembled.length >= 59", "http.request",
    'http.request.method == "GET"', "http.response.code == 200", "http",
    'http.request.uri == "/b"',
])
@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_display_filters_on_reassembled_fields(tmp_path, expression, two_pass):
    require_tshark()
    path = Path(split_messages().write(str(tmp_path / "split.pcap")))
    extra = ("-2",) if two_pass else ()
    theirs = [r["frame.number"] for r in tshark_fields(path, extra=(*extra, "-Y", expression))]
    session = AnalysisSession(path, two_pass=two_pass, display_filter=expression)
    assert [str(p.number) for p in session.run()] == theirs
