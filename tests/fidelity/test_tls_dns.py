"""TLS and DNS against tshark 4.0: columns, fields and display filters, frame by frame.

Captures: real loopback traffic in ``tests/data/`` (curl against ``openssl s_server``
over TLS 1.2 and 1.3, DNS over TCP with two queries in one segment and one split across
two) and the crafted files of :mod:`tests.fidelity.tls_dns_captures`. Every frame's
Protocol and Info must equal tshark's, in one pass and in two (``tshark -2``), and every
``tls.*``/``dns.*`` field listed below must hold tshark's values.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tcplab.analyze import analyze, tls_dns
from tests.fidelity.tls_dns_captures import CRAFTED
from tests.support import require_tshark

DATA = Path(__file__).resolve().parent.parent / "data"
REAL = ("tls12-lo.pcap", "tls13-lo.pcap", "dns-tcp-lo.pcap")
CAPTURES = [*REAL, *CRAFTED]

#: Fields tshark prints in hexadecimal with -T fields.
HEX = {"tls.record.version", "tls.handshake.version", "tls.handshake.ciphersuite",
       "tls.handshake.extensions.supported_version", "dns.id", "dns.flags", "dns.qry.class",
       "dns.resp.class"}
FIELDS = (
    "tls.record.content_type", "tls.record.opaque_type", "tls.record.version",
    "tls.record.length", "tls.handshake.type", "tls.handshake.length", "tls.handshake.version",
    "tls.handshake.ciphersuite", "tls.handshake.extensions_server_name",
    "tls.handshake.extensions.supported_version", "tls.change_cipher_spec", "tls.alert_message",
    "tls.alert_message.level", "tls.alert_message.desc", "tls.app_data",
    "dns.length", "dns.id", "dns.flags", "dns.flags.response", "dns.flags.opcode",
    "dns.flags.authoritative", "dns.flags.truncated", "dns.flags.recdesired",
    "dns.flags.recavail", "dns.flags.z", "dns.flags.checkdisable", "dns.flags.rcode",
    "dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr",
    "dns.qry.name", "dns.qry.name.len", "dns.qry.type", "dns.qry.class", "dns.resp.name",
    "dns.resp.type", "dns.resp.class", "dns.resp.ttl", "dns.resp.len", "dns.a", "dns.aaaa",
    "dns.cname", "dns.ns", "dns.ptr.domain_name", "dns.mx.preference", "dns.mx.mail_exchange",
    "dns.srv.priority", "dns.srv.weight", "dns.srv.port", "dns.srv.target", "dns.srv.service",
    "dns.srv.proto", "dns.srv.name", "dns.count.zones", "dns.count.prerequisites",
    "dns.count.updates", "dns.soa.mname",
    "dns.soa.rname", "dns.txt",
)
#: tshark takes certificates apart (X.509, PKCS #1); the analyzer stops at the TLS record.
CERTIFICATE_LAYERS = {"x509sat", "x509ce", "x509af", "x509if", "pkcs-1", "pkix1explicit",
                      "pkix1implicit"}

FILTERS = (
    "tls", "dns", "tls.handshake.type == 1", "tls.handshake.type == 2",
    "tls.record.content_type == 23", "tls.record.opaque_type == 23", "tls.change_cipher_spec",
    "tls.alert_message", "tls.alert_message.desc == 40", "tls.record.version == 0x0301",
    'tls.handshake.extensions_server_name == "localhost"',
    "tls.handshake.extensions.supported_version == 0x0304", "tls.app_data",
    "tls.handshake.ciphersuite == 0x1301", "dns.flags.response == 1",
    "dns.flags.response == 0", 'dns.qry.name == "two.example"', "dns.a == 127.0.0.1",
    "dns.qry.type == 28", "dns.flags.rcode == 3", "dns.count.answers > 1", "dns.aaaa",
    "dns.cname", 'dns.mx.mail_exchange contains "mail"', "dns.srv.port == 5060",
    "dns && tcp", "dns && udp", "_ws.malformed", "tcp.len > 0 && !tls && !dns",
)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("scapy", reason="scapy builds the crafted captures")
    out = tmp_path_factory.mktemp("tls-dns")
    paths = {name: DATA / name for name in REAL}
    for name, build in CRAFTED.items():
        paths[name] = out / f"{name}.pcap"
        build(paths[name])
    return paths


def _tshark(path: Path, fields: tuple[str, ...], *args: str) -> list[list[str]]:
    exe = require_tshark()
    cmd = [exe, "-r", str(path), *args, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


def _text(field: str, value: object) -> str:
    """Our value written the way tshark -T fields writes it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_text(field, v) for v in value)
    if value is True:
        return "1"
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if field in HEX and isinstance(value, int):
        return f"0x{value:04x}"
    return str(value)


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("name", CAPTURES)
def test_protocol_and_info_columns_match_tshark(captures, name: str, two_pass: bool) -> None:
    path = captures[name]
    theirs = _tshark(path, ("_ws.col.Protocol", "_ws.col.Info"), *(["-2"] if two_pass else []))
    ours = [(d["_ws.col.Protocol"], d["_ws.col.Info"]) for d in analyze(path, two_pass=two_pass)]
    assert len(ours) == len(theirs)
    problems = [f"frame {n}: ours {o} != tshark {tuple(t)}"
                for n, (o, t) in enumerate(zip(ours, theirs, strict=True), 1) if list(o) != t]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", CAPTURES)
def test_tls_and_dns_fields_match_tshark(captures, name: str) -> None:
    path = captures[name]
    theirs = _tshark(path, ("_ws.col.Info", "frame.protocols", *FIELDS))
    ours = list(analyze(path))
    assert len(ours) == len(theirs)
    problems = []
    compared = 0
    for n, (d, row) in enumerate(zip(ours, theirs, strict=True), 1):
        layers = ":".join(p for p in row[1].split(":") if p not in CERTIFICATE_LAYERS)
        if d["frame.protocols"] != layers:
            problems.append(f"frame {n} frame.protocols: ours {d['frame.protocols']} != {layers}")
        if "[Malformed Packet]" in row[0]:
            # Where tshark gives up it has read fields past the message's own end (an empty
            # Client Hello's version from the next message's bytes): not a value to copy.
            assert "[Malformed Packet]" in d["_ws.col.Info"] and d.get("_ws.malformed")
            compared += 1
            continue
        for field, want in zip(FIELDS, row[2:], strict=True):
            got = _text(field, d.get(field))
            compared += bool(want)
            if got != want:
                problems.append(f"frame {n} {field}: ours {got!r} != tshark {want!r}")
    assert not problems, "\n".join(problems[:40])
    assert compared, "the capture holds no TLS/DNS field at all"


@pytest.mark.parametrize("name", CAPTURES)
def test_display_filters_select_what_tshark_selects(captures, name: str) -> None:
    from tcplab.analyze.session import AnalysisSession

    path = captures[name]
    problems = []
    family = "dns" if "dns" in name else "tls"
    for expr in FILTERS:
        if family not in expr and not expr.startswith(("_ws", "tcp")):
            continue  # another protocol's filter: nothing to learn here, and tshark is slow
        want = [int(row[0]) for row in _tshark(path, ("frame.number",), "-Y", expr)]
        got = [p.number for p in AnalysisSession(path, display_filter=expr, two_pass=False).packets()]
        if got != want:
            problems.append(f"-Y {expr!r}: ours {got} != tshark {want}")
    assert not problems, "\n".join(problems)


def test_port_53_segments_without_dns_are_not_dns(captures) -> None:
    """Handshake and bare ACK segments on port 53 are TCP only; tshark's -Y dns skips them."""
    packets = list(analyze(captures["dns-tcp-lo.pcap"]))
    bare = [d for d in packets if not d.get("tcp.len")]
    assert bare and not any("dns" in d["frame.protocols"].split(":") for d in bare)


def test_two_queries_in_one_segment_show_the_last_in_info(captures) -> None:
    frame = next(d for d in analyze(captures["dns-tcp-lo.pcap"]) if d["frame.number"] == 4)
    assert frame["_ws.col.Info"] == "Standard query 0x1002 A two.example"
    assert frame["dns.id"] == [0x1001, 0x1002] and frame["dns.length"] == [29, 29]


def test_cut_records_are_bounded(monkeypatch) -> None:
    """Past MAX_PENDING_BYTES a cut record is not kept: its tail shows as plain TCP."""
    monkeypatch.setattr(tls_dns, "MAX_PENDING_BYTES", 1000)
    app = tls_dns.AppLayer()
    head = b"\x17\x03\x03\x40\x00" + b"\x00" * 595  # a 16 KiB record, 600 bytes of it
    for stream in range(3):
        frame = app.feed(1, stream, "10.0.0.1", 40000 + stream, 443, 1, head, 0, len(head), 0)
        assert frame is not None and frame.columns(lambda: "tcp") == ("TCP", tls_dns.NOTE)
    assert app._pending <= 1000
    # Stream 0 kept its 600 bytes; stream 1 did not fit, so its next segment is not TLS.
    assert app.feed(2, 1, "10.0.0.1", 40001, 443, 601, b"\x00" * 50, 0, 50, 0) is None


def test_detail_tree_names_the_records_and_messages(captures) -> None:
    from tcplab.analyze.session import AnalysisSession

    tls = AnalysisSession(captures["tls12-lo.pcap"]).detail(4)
    assert "Transport Layer Security" in tls and "Handshake Type: Client Hello (1)" in tls
    assert "Server Name: localhost" in tls
    dns = AnalysisSession(captures["dns-tcp-lo.pcap"]).detail(6)
    assert "Domain Name System (response)" in dns and "A: 127.0.0.1" in dns


def test_random_bytes_never_raise_out_of_the_dissectors() -> None:
    """Seeded garbage, cut and flipped records and messages: words and fields, never an exception."""
    import random

    from tcplab.analyze import dns as dns_mod
    from tcplab.analyze.render import detail_tree, json_line

    rng = random.Random(14)
    base = [(DATA / name).read_bytes() for name in REAL]
    app = tls_dns.AppLayer()
    for i in range(4000):
        blob = bytearray(rng.choice(base)[rng.randrange(24, 400):][: rng.randrange(0, 600)])
        for _ in range(rng.randrange(0, 6)):
            if blob:
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.3:
            blob[:0] = bytes([rng.choice((20, 21, 22, 23, 24, 25)), 3, rng.randrange(5)])
        data = bytes(blob)
        info, values, _bad = dns_mod.dissect_message(data)
        assert isinstance(info, str) and all(isinstance(v, list) for v in values.values())
        port = rng.choice((443, 53, 4433, 5353))
        frame = app.feed(i, i % 7, "10.0.0.1", 40000, port, rng.randrange(1 << 32), data, 0,
                         len(data), 0)
        if frame is not None:
            d = {"frame.number": i, "frame.len": len(data), "frame.cap_len": len(data),
                 "frame.time_epoch": 0.0, "frame.time_relative": 0.0, "frame.protocols": "tcp"}
            frame.write(d, lambda: "tcp")
            json_line(d)
            detail_tree(d)
    assert app._pending <= tls_dns.MAX_PENDING_BYTES


def test_dns_cut_by_the_snapshot_length_shows_the_records_captured() -> None:
    """A response cut at 200 bytes: tshark shows the records captured whole and says the
    packet was cut, never "malformed" (dpkt's truncated_dns.pcap: 5 of its 9 answers)."""
    d = next(iter(analyze(DATA / "corpus" / "dpkt-truncated_dns.pcap")))
    assert d["frame.cap_len"] < d["frame.len"]
    assert d["_ws.col.Protocol"] == "DNS" and d["frame.protocols"].endswith(":udp:dns")
    assert d["_ws.col.Info"] == ("Standard query response 0xf8d3 A api.spd.samsungdm.com CNAME "
                                 "api.samsungspd.com A 54.75.141.161 A 99.81.251.12 A 52.50.121.244 "
                                 "A 52.210.193.207 A 52.50.159.204[Packet size limited during capture]")
    assert d["dns.count.answers"] == 9 and len(d["dns.a"]) == 5
    assert "_ws.malformed" not in d


def test_dns_quoted_in_an_icmp_error_is_dissected() -> None:
    """A port-unreachable quoting a DNS response (dpkt's nb6-http.pcap frame 34): tshark
    dissects the quoted message, so ``-Y dns`` and ``dns.a`` see it; the columns stay ICMP's."""
    d = next(p for p in analyze(DATA / "corpus" / "dpkt-nb6-http.pcap") if p["frame.number"] == 34)
    assert d["frame.protocols"].endswith(":icmp:ip:udp:dns") and d["_ws.col.Protocol"] == "ICMP"
    assert d["dns.qry.name"] == "ipv4.icanhazip.com"
    assert d["dns.a"] == ["216.69.252.101", "216.69.252.100"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Is a TCP socket listening on ``port`` (state 0A in /proc/net/tcp or tcp6)?"""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_until_stable(path: Path, quiet: float = 1.5, limit: float = 30) -> None:
    """Wait until dumpcap has written everything: the file has not grown for ``quiet`` seconds
    (it writes each packet as it reads it; on a loaded machine that lags the traffic)."""
    import time

    deadline, size, since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


def test_live_tls_on_a_port_only_the_heuristic_knows(tmp_path: Path) -> None:
    """curl against openssl s_server on an ephemeral port, captured on lo: TLS 1.2 and 1.3."""
    import time

    from tests.support import dumpcap_on_lo, require_program, require_root

    require_tshark()
    require_root()
    require_program("dumpcap")
    openssl = require_program("openssl")
    curl = require_program("curl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    out = tmp_path / "live-tls.pcapng"
    server = subprocess.Popen([openssl, "s_server", "-quiet", "-www", "-accept", str(port),
                               "-key", str(key), "-cert", str(cert)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # On a loaded machine openssl takes seconds to listen: wait for the socket in the kernel's
    # table (not by connecting, which would put a stray connection in the capture).
    deadline = time.monotonic() + 60
    while not _listening(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"openssl s_server did not listen on port {port} within 60 s")
        time.sleep(0.1)
    try:
        with dumpcap_on_lo(f"tcp port {port}", out, settle=1):
            for extra in (["--tls-max", "1.2"], ["--tlsv1.3"]):
                done = subprocess.run([curl, "-sk", "--max-time", "60", *extra, "-o",
                                       "/dev/null", f"https://localhost:{port}/"],
                                      timeout=90, check=False)
                assert done.returncode == 0, \
                    f"curl {' '.join(extra)} failed with exit {done.returncode}"
            _wait_until_stable(out)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    for two_pass in (False, True):
        theirs = _tshark(out, ("_ws.col.Protocol", "_ws.col.Info"), *(["-2"] if two_pass else []))
        ours = [[d["_ws.col.Protocol"], d["_ws.col.Info"]] for d in analyze(out, two_pass=two_pass)]
        assert ours == theirs
    protocols = {p for p, _ in ours}
    assert {"TLSv1.2", "TLSv1.3"} <= protocols, protocols
    rows = _tshark(out, ("tls.record.content_type", "tls.record.version", "tls.handshake.type",
                         "tls.handshake.extensions_server_name"))
    mine = [[_text(f, d.get(f)) for f in ("tls.record.content_type", "tls.record.version",
                                          "tls.handshake.type",
                                          "tls.handshake.extensions_server_name")]
            for d in analyze(out)]
    assert mine == rows
