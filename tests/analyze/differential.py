"""Compare tcplab's analyzer with tshark 4.0 (two-pass) packet by packet.

Used by the differential tests: run ``tshark -2 -T fields`` with the TCP analysis fields
and the Info column, run :func:`tcplab.analyze.analyze` on the same file, and list every
disagreement as text, so a failing test shows exactly which packet and field differ.
"""

from __future__ import annotations

from tcplab.analyze import analyze
from tests.support import tshark

ANALYSIS = (
    "retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order",
    "lost_segment", "ack_lost_segment", "keep_alive", "keep_alive_ack", "window_update",
    "window_full", "zero_window", "zero_window_probe", "zero_window_probe_ack", "duplicate_ack",
    "reused_ports",
)
FIELDS = ("frame.number", "tcp.stream", "tcp.seq", "tcp.ack", "tcp.flags.str", "tcp.len",
          "tcp.window_size", "tcp.nxtseq", "tcp.analysis.duplicate_ack_num",
          "tcp.analysis.duplicate_ack_frame", "tcp.completeness", "_ws.col.Protocol",
          "_ws.col.Info") + tuple(f"tcp.analysis.{a}" for a in ANALYSIS)


def tshark_rows(path: str) -> list[dict[str, str]]:
    args = ["-2", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for f in FIELDS:
        args += ["-e", f]
    out = tshark(*args)
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append(dict(zip(FIELDS, values + [""] * (len(FIELDS) - len(values)))))
    return rows


def ours(d: dict, field: str) -> str:
    if field.startswith("tcp.analysis.") and field.rsplit(".", 1)[1] in ANALYSIS:
        return "1" if d.get(field) else ""
    value = d.get(field)
    if value is None:
        return ""
    if field in ("tcp.seq", "tcp.ack", "tcp.nxtseq", "tcp.len", "tcp.window_size",
                 "tcp.stream", "tcp.completeness") and "tcp.srcport" not in d:
        return ""
    return str(value)


def compare(path: str, *, info: bool = True, skip_nxtseq: bool = True) -> list[str]:
    """Every field where tcplab and tshark disagree, as ``frame N field: ours != tshark``."""
    theirs = tshark_rows(path)
    mine = list(analyze(path))
    problems = []
    if len(theirs) != len(mine):
        problems.append(f"packet count: ours {len(mine)} != tshark {len(theirs)}")
    for d, t in zip(mine, theirs):
        if "tcp.srcport" not in d and not t["tcp.flags.str"]:
            continue
        for field in FIELDS:
            if field in ("_ws.col.Protocol", "_ws.col.Info"):
                continue
            if field == "tcp.nxtseq" and skip_nxtseq:
                continue
            a, b = ours(d, field), t[field]
            if a != b:
                problems.append(f"frame {t['frame.number']} {field}: ours {a!r} != tshark {b!r}")
        if info and t["_ws.col.Protocol"] == "TCP" and d.get("_ws.col.Protocol") == "TCP":
            # tshark takes any payload on an HTTP port for HTTP and waits for its line end;
            # tcplab reassembles what is HTTP by content (tests/fidelity/test_reassembly.py),
            # so the note is compared only where tcplab wrote it.
            # tcplab keeps checksum verdicts out of the list (on lo they are offload artefacts,
            # see docs/analyze.md); tshark with validation on writes them into Info.
            expected = t["_ws.col.Info"].replace(" [TCP CHECKSUM INCORRECT]", "")
            if " [TCP segment of a reassembled PDU]" not in d["_ws.col.Info"]:
                expected = expected.replace(" [TCP segment of a reassembled PDU]", "")
            if d["_ws.col.Info"] != expected:
                problems.append(f"frame {t['frame.number']} Info: ours {d['_ws.col.Info']!r} "
                                f"!= tshark {expected!r}")
    return problems
