"""An HTTP body's dissector (tshark 4.0's media_type table) and plain TCP ``data``.

Crafted responses on port 80 with one body each: text, XML (by type and by an ``<?xml``
text), JSON, a form, unknown types (``media``), no type and ``application/octet-stream``
(``data`` with ``data.len``), gzip bodies tshark can and cannot decode, chunked and split
bodies. Their ``frame.protocols``, Protocol, Info and ``data.len`` are checked exactly and
against tshark (one pass and ``-2``), and tcplab's type sets against tshark's own table.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from tcplab.analyze import http
from tcplab.cli import main
from tests.analyze.scenarios import Builder
from tests.analyze.test_record import fast_records
from tests.fidelity.oracle import tshark_fields
from tests.fidelity.test_reassembly import Conversation
from tests.support import require_tshark

#: (Content-Type header value or None, body, extra header lines, chunked, split in two)
RESPONSES = [
    (b"application/json", b'{"a": 1}', b"", False, False),
    (b"application/xml", b"<a>b</a>", b"", False, False),
    (b"text/xml", b'<?xml version="1.0" encoding="UTF-8"?><a>b</a>', b"", False, False),
    (b"text/html", b'<?xml version="1.0" encoding="UTF-8"?><a>b</a>', b"", False, False),
    (b"application/pdf", b"%PDF-1.4 xx", b"", False, False),
    (b"TEXT/HTML; charset=utf-8", b"<p>hi</p>", b"", False, False),
    (b"text/plain", gzip.compress(b"hello world\n", mtime=0), b"Content-Encoding: gzip\r\n",
     False, False),
    (b"text/plain", b"not gzip at all", b"Content-Encoding: gzip\r\n", False, False),
    (b"application/octet-stream", b"abc", b"", True, True),
    (b"text/html", b"<p>hi</p>" * 50, b"", False, True),
    (b"  text/plain  ", b"hi", b"", False, False),
    (b"", b"hi", b"", False, False),
    (b"text/plain", b"", b"", False, False),
    (b"application/x-www-form-urlencoded", b"a=1&b=2", b"", False, False),
    (b"application/problem+json", b"[1,2]", b"", False, False),
    (None, b"0123456789", b"", False, False),
    (b"text/plain", b"x" * 10, b"", True, False),
    (b"text/x-\x1b[31mevil", b"x", b"", False, False),
]

#: tcplab's view of each response above: frame.protocols after http, Protocol, Info, data.len.
EXPECTED = [
    (":json", "HTTP/JSON", "HTTP/1.1 200 OK , JavaScript Object Notation (application/json)", None),
    (":xml", "HTTP/XML", "HTTP/1.1 200 OK", None),
    (":xml", "HTTP/XML", "HTTP/1.1 200 OK", None),
    (":data-text-lines:xml", "HTTP/XML", "HTTP/1.1 200 OK", None),
    (":media", "HTTP", "HTTP/1.1 200 OK  (application/pdf)", None),
    (":data-text-lines", "HTTP", "HTTP/1.1 200 OK  (text/html)", None),
    (":data-text-lines", "HTTP", "HTTP/1.1 200 OK  (text/plain)", None),
    (":data", "HTTP", "HTTP/1.1 200 OK", 15),
    (":data", "HTTP", "HTTP/1.1 200 OK", 3),
    (":data-text-lines", "HTTP", "HTTP/1.1 200 OK  (text/html)", None),
    (":data-text-lines", "HTTP", "HTTP/1.1 200 OK  (text/plain)", None),
    (":media", "HTTP", "HTTP/1.1 200 OK  ()", None),
    ("", "HTTP", "HTTP/1.1 200 OK", None),
    (":urlencoded-form", "HTTP", "HTTP/1.1 200 OK  (application/x-www-form-urlencoded)", None),
    (":json", "HTTP/JSON",
     "HTTP/1.1 200 OK , JavaScript Object Notation (application/problem+json)", None),
    (":data", "HTTP", "HTTP/1.1 200 OK", 10),
    (":data-text-lines", "HTTP", "HTTP/1.1 200 OK  (text/plain)", None),
    (":media", "HTTP", "HTTP/1.1 200 OK  (text/x-\\x1b[31mevil)", None),
]


def media_capture(path: Path) -> Path:
    b = Builder()
    for port, (ctype, body, extra, chunked, split) in enumerate(RESPONSES, 41000):
        c = Conversation(b, port)
        c.client(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\n" + (b"" if ctype is None else b"Content-Type: " + ctype + b"\r\n")
        head += extra
        if chunked:
            msg = head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            msg = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        if split:
            c.server(msg[: len(msg) // 2])
            c.server(msg[len(msg) // 2 :])
        else:
            c.server(msg)
    # Plain TCP payload no dissector takes, then the same bytes again (a retransmission).
    c = Conversation(b, 42000, 9999)
    c.client(b"z" * 30)
    c.c -= 30
    c.client(b"z" * 30, dt=0.3)
    return Path(b.write(str(path)))


def ours(path: Path, capsys, *options: str) -> dict[int, dict]:
    assert main(["analyze", str(path), "--json", *options]) == 0
    out = capsys.readouterr().out
    return {d["frame.number"]: d for d in map(json.loads, out.splitlines()) if "frame.number" in d}


@pytest.mark.parametrize("two_pass", [False, True], ids=["one-pass", "two-pass"])
def test_body_layers_exactly(tmp_path, capsys, two_pass):
    packets = ours(media_capture(tmp_path / "media.pcap"), capsys, *(["-2"] if two_pass else []))
    responses = [d for d in packets.values() if d.get("http.response")]
    assert len(responses) == len(EXPECTED)
    for d, (protos, proto, info, length) in zip(responses, EXPECTED, strict=True):
        assert d["frame.protocols"] == "eth:ethertype:ip:tcp:http" + protos
        assert (d["_ws.col.Protocol"], d["_ws.col.Info"], d.get("data.len")) == (proto, info, length)
    plain = [d for d in packets.values() if d.get("tcp.srcport") == 42000 and d["tcp.len"]]
    assert [(d["frame.protocols"], d.get("data.len")) for d in plain] == [
        ("eth:ethertype:ip:tcp:data", 30), ("eth:ethertype:ip:tcp", None)]


def test_body_layers_agree_with_tshark(tmp_path, capsys):
    """--json (always tshark -2's values) field by field against ``tshark -2``."""
    path = media_capture(tmp_path / "media.pcap")
    packets = ours(path, capsys)
    fields = ("frame.protocols", "_ws.col.Protocol", "_ws.col.Info", "data.len")
    problems = []
    for row in tshark_fields(path, *fields, extra=("-2",)):
        d = packets[int(row["frame.number"])]
        for f in fields:
            mine = "" if d.get(f) is None else str(d[f])
            theirs = row[f].rstrip() if f == "_ws.col.Info" else row[f]
            if f == "_ws.col.Info":  # tshark shows the escape byte itself
                theirs = theirs.replace("\x1b", "\\x1b")
            if mine != theirs:
                problems.append(f"frame {row['frame.number']} {f}: ours {mine!r} != tshark {theirs!r}")
    assert not problems, "\n".join(problems)


def test_list_columns_agree_with_tshark_one_pass(tmp_path):
    """The packet list's Protocol and Info in one pass (no -2) against tshark's."""
    path = media_capture(tmp_path / "media.pcap")
    mine = [p.columns() for p in fast_records(str(path))]
    theirs = [(r["_ws.col.Protocol"], r["_ws.col.Info"].rstrip().replace("\x1b", "\\x1b"))
              for r in tshark_fields(path, "_ws.col.Protocol", "_ws.col.Info")]
    assert mine == theirs


def test_type_sets_are_tsharks_table(tmp_path):
    """Every type tcplab maps is in tshark's media_type table with that dissector; the
    types it calls ``media`` are not in the table at all."""
    exe = require_tshark()
    claims = {**{t: "Line-based text data" for t in http._TEXT_LINES},
              **{t: "XML" for t in http._XML}, **{t: "JSON" for t in http._JSON},
              **{t: "URL Encoded Form Data" for t in http._FORM},
              **{t: "Data" for t in http._DATA},
              **{t: "*" for t in http._OTHER_TYPES},
              **{t: "-" for t in ("text/x-python", "application/pdf", "text/csv", "")}}
    script = tmp_path / "table.lua"
    script.write_text('local t = DissectorTable.get("media_type")\n'
                      + "".join(f'do local d = t:get_dissector("{t}"); '
                                f'print("{t}\\t" .. (d and tostring(d) or "-")) end\n'
                                for t in claims))
    empty = Builder().write(str(tmp_path / "empty.pcap"))
    proc = subprocess.run([exe, "-X", f"lua_script:{script}", "-r", empty], capture_output=True,
                          text=True, timeout=60)
    table = dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)
    assert set(table) == set(claims), proc.stderr
    wrong = {t: (want, table[t]) for t, want in claims.items()
             if table[t] != want and not (want == "*" and table[t] != "-")}
    assert not wrong


def test_hostile_media_type_is_bounded():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + b"a" * 100_000 + b"\r\n\r\n"
    layer = http.body_layer(head, 5, b"hello")
    assert layer is not None and layer[0] == ":media" and len(layer[2]) < 300
    assert http.body_layer(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", 3,
                           b"\x1f\x8b\x08") == (":data", "", "", None)


def test_body_layer_filters_agree_with_tshark(tmp_path, capsys):
    """``-Y`` on each body layer (data-text-lines that went on to XML is not found there)."""
    exe = require_tshark()
    path = media_capture(tmp_path / "media.pcap")
    for expr in ("data-text-lines", "xml", "json", "media", "urlencoded-form", "data",
                 "data.len > 5", "http && !data-text-lines"):
        assert main(["analyze", str(path), "-2", "-Y", expr]) == 0
        mine = [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()[1:]]
        proc = subprocess.run([exe, "-2", "-r", str(path), "-Y", expr, "-T", "fields", "-e",
                               "frame.number"], capture_output=True, text=True, timeout=60)
        assert mine == [int(n) for n in proc.stdout.split()], expr
