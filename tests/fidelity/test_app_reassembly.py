"""TCP's reassembly fields on TLS records and DNS-over-TCP messages cut across segments.

tshark writes ``tcp.segment``, ``tcp.segment.count`` and ``tcp.reassembled.length`` on the
segment completing such a PDU and, with ``-2``, ``tcp.reassembled_in`` on the ones before
it, as for HTTP. Crafted conversations (a record over three segments, one completed where
the next begins, a DNS query over two) are checked exactly and against ``tshark -2``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tcplab.cli import main
from tests.analyze.scenarios import Builder
from tests.fidelity.oracle import tshark_fields
from tests.fidelity.test_reassembly import Conversation

FIELDS = ("tcp.segment", "tcp.segment.count", "tcp.reassembled.length", "tcp.reassembled_in",
          "_ws.col.Protocol")


def app_capture(path: Path) -> Path:
    b = Builder()
    tls = Conversation(b, 43000, 443)
    record = b"\x17\x03\x03" + struct.pack("!H", 300) + bytes(range(256)) + b"x" * 44
    tls.client(record[:100])
    tls.client(record[100:200])
    tls.client(record[200:])
    second = b"\x17\x03\x03" + struct.pack("!H", 20) + b"y" * 20
    tls.server(second[:10])
    tls.server(second[10:] + second[:12])  # completes one record, begins the next
    tls.server(second[12:])
    dns = Conversation(b, 43001, 53)
    query = (b"\x10\x03\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             b"\x05three\x07example\x00\x00\x01\x00\x01")
    message = struct.pack("!H", len(query)) + query
    dns.client(message[:9])
    dns.client(message[9:])
    return Path(b.write(str(path)))


def ours(path: Path, capsys) -> dict[int, dict]:
    assert main(["analyze", str(path), "--json"]) == 0
    return {d["frame.number"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())
            if "frame.number" in d}


def test_reassembly_fields_exactly(tmp_path, capsys):
    packets = ours(app_capture(tmp_path / "app.pcap"), capsys)
    got = {n: {f: d[f] for f in FIELDS[:4] if f in d} for n, d in packets.items()
           if any(f in d for f in FIELDS[:4])}
    assert got == {
        4: {"tcp.reassembled_in": 6}, 5: {"tcp.reassembled_in": 6},
        6: {"tcp.segment": [4, 5, 6], "tcp.segment.count": 3, "tcp.reassembled.length": 305},
        7: {"tcp.reassembled_in": 8},
        8: {"tcp.segment": [7, 8], "tcp.segment.count": 2, "tcp.reassembled.length": 25,
            "tcp.reassembled_in": 9},
        9: {"tcp.segment": [8, 9], "tcp.segment.count": 2, "tcp.reassembled.length": 25},
        13: {"tcp.reassembled_in": 14},
        14: {"tcp.segment": [13, 14], "tcp.segment.count": 2, "tcp.reassembled.length": 33},
    }


def test_reassembly_fields_agree_with_tshark(tmp_path, capsys):
    path = app_capture(tmp_path / "app.pcap")
    packets = ours(path, capsys)
    problems = []
    for row in tshark_fields(path, *FIELDS, extra=("-2",)):
        d = packets[int(row["frame.number"])]
        for f in FIELDS:
            v = d.get(f)
            mine = "" if v is None else ",".join(map(str, v)) if isinstance(v, list) else str(v)
            if mine != row[f]:
                problems.append(f"frame {row['frame.number']} {f}: ours {mine!r} != tshark {row[f]!r}")
    assert not problems, "\n".join(problems)
