"""The yardstick: every view of ``tcplab analyze`` against tshark 4.0 on a corpus nobody here wrote.

tests/data/corpus/ holds captures written by other tools and by the kernel (SOURCES.md says
where each comes from); the real loopback captures of tests/data/ join them. For every file
this test runs each view of the real CLI in-process and the matching tshark run, and counts
agreement:

* ``list`` — the plain packet list (one pass, like ``tshark -r``): a packet agrees when every
  column (No., Time to the µs, Source, Destination, Protocol, Length, Info) is tshark's;
* ``list-2`` — the same with ``-2`` against ``tshark -2``;
* ``json`` — ``--json`` field by field against ``tshark -2 -T fields`` (one cell per frame and
  field either side has). Checksum verdicts come from one more tshark run with validation on
  (tshark leaves them unverified by default, and validating stops its reassembly of segments
  with a bad checksum, which Linux loopback offload makes of every TCP segment);
* ``conv`` — ``--conversations`` (its JSON form: the exact byte counts the text rounds to kB):
  a stream agrees when its two endpoints, packets and bytes each way and completeness are
  tshark's (from ``tcp.stream`` over ``tshark -2``);
* ``http`` — ``--http`` (its JSON form): requests by method, responses by code and the
  request ↔ response pairs (frame numbers), against tshark's ``http.request.method``,
  ``http.response.code`` and ``http.request_in``;
* ``filter`` — every expression of :data:`FILTERS` through ``-Y`` (one pass, both tools' default
  for a filtered list): one decision (shown or not) per frame and expression. tshark
  evaluates all of them in its one-pass run of the file through
  Lua tap listeners (a listener's filter is the display-filter engine ``-Y`` uses;
  :func:`test_lua_listener_filters_are_tsharks_display_filters` holds the two equal).

It prints per-view, per-file, per-field and per-filter tables on the terminal (even without
``-s``; not under pytest-xdist, whose workers' output pytest drops, but the failure message
carries them too) and fails when any figure falls below :data:`THRESHOLDS`. The
thresholds are what was measured when they were set, rounded down; they only ever go up.
``python -m tests.oracle.test_corpus`` prints the tables and the thresholds the tree meets now;
``--markdown`` prints the per-view and per-layer figures as docs/analyze.md quotes them.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import re
import struct
import subprocess
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tcplab.cli import main
from tests.fidelity.oracle import DATA
from tests.support import IN_CI, require_program, require_tshark

CORPUS = DATA / "corpus"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
#: The real loopback captures beside the corpus (tests/data/make_captures.py: TLS 1.2 and 1.3,
#: DNS over TCP, kernel-fragmented ICMP, tcpdump -i any in cooked v2), named one by one: a
#: capture added to tests/data/ for another test does not move the measured figures.
BESIDE = ("dns-tcp-lo.pcap", "http-any-sll2.pcap", "icmp-lo.pcap", "tls12-lo.pcap", "tls13-lo.pcap")
#: Every file measured. A file added to tests/data/corpus/ is measured at once: raise or add
#: its floor in THRESHOLDS in the same commit.
FILES = sorted(p for p in CORPUS.iterdir() if p.name.endswith(CAPTURE_SUFFIXES)) + [DATA / n for n in BESIDE]

#: Display filters run on every corpus file. They cover every protocol and field family
#: tcplab dissects (and a few that the issue's differences are about: ``ip.version == 6``,
#: ``tcp.completeness == 31``, ``dns`` on TCP segments, the SACK edges).
FILTERS = [
    "frame", "eth", "sll", "null", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6", "arp",
    "dns", "http", "data", "_ws.malformed", "_ws.expert",
    "frame.number <= 10", "frame.len > 1000", "frame.len <= 60", "frame.cap_len < frame.len",
    'frame.protocols contains "http"', "eth.type == 0x0800", "eth.dst == ff:ff:ff:ff:ff:ff",
    "ip.version == 4", "ip.version == 6", "ip.src == 127.0.0.1", "ip.addr == 192.168.0.0/16",
    "ip.dst == 255.255.255.255", "ip.ttl == 64", "ip.ttl < 64", "ip.flags.df == 1",
    "ip.flags.mf == 1", "ip.frag_offset > 0", "ip.proto == 17", "ip.proto == 1", "ip.len > 1000",
    "ip.id == 0", "ip.src != ip.dst", "ipv6.nxt == 58", "ipv6.hlim == 64", "ipv6.addr == ::1",
    "tcp.port == 80", "tcp.port == 8080", "tcp.srcport == 80 || tcp.dstport == 80",
    "tcp.port in {80, 8080}", "tcp.dstport >= 1024", "udp.port == 53", "udp.length > 100",
    "tcp.flags.syn == 1", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "tcp.flags.syn == 1 && tcp.flags.ack == 1", "tcp.flags.fin == 1", "tcp.flags.reset == 1",
    "tcp.flags.push == 1", "tcp.flags.urg == 1", "tcp.flags == 0x018", "tcp.flags & 0x02",
    "tcp.len > 0", "tcp.len == 0 && tcp.flags.ack == 1", "tcp.seq == 1", "tcp.ack == 1",
    "tcp.window_size == 0", "tcp.window_size_value < 1000", "tcp.hdr_len > 20", "tcp.stream == 0",
    "tcp.stream >= 2", "tcp.nxtseq > 1000", "tcp.completeness == 31", "tcp.options.mss_val == 1460",
    "tcp.options.sack_perm", "tcp.options.sack_le", "tcp.options.wscale.shift >= 7",
    "tcp.options.timestamp.tsval", "tcp.payload contains \"HTTP\"", "tcp.analysis.flags",
    "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order", "tcp.analysis.lost_segment",
    "tcp.analysis.ack_lost_segment", "tcp.analysis.duplicate_ack",
    "tcp.analysis.keep_alive || tcp.analysis.keep_alive_ack", "tcp.analysis.window_update",
    "tcp.analysis.window_full", "tcp.analysis.zero_window", "tcp.analysis.zero_window_probe",
    "tcp.analysis.reused_ports", "tcp && !tcp.analysis.flags", "!(tcp.port == 80)",
    "tcp.port != 80", "http.request", "http.response", 'http.request.method == "GET"',
    'http.request.method == "POST"', "http.response.code == 200", "http.response.code >= 400",
    'http.request.uri contains "html"', "http.host",
]

#: Floors, as measured when set (rounded down to 0.1 %). They only ever go up: raise one when a
#: fix lands (``python -m tests.oracle.test_corpus`` prints what the tree reaches now).
#: ``view``: all files pooled, per view; ``layer``: --json cells per protocol (the field name up
#: to its first dot); ``file``: per file, the mean of its views (files not listed: 1.0).
THRESHOLDS: dict[str, dict[str, float]] = {
    "view": {
        "list": 0.996, "list-2": 0.996, "json": 0.998, "conv": 1.0, "http": 0.99, "filter": 0.999,
    },
    "layer": {
        "_ws": 0.998, "data": 0.987, "dns": 1.0, "eth": 1.0, "frame": 0.996, "http": 1.0,
        "icmp": 1.0, "icmpv6": 1.0, "ip": 1.0, "ipv6": 1.0, "l2tp": 1.0, "lcp": 1.0, "ppp": 1.0,
        "pppoe": 1.0, "tcp": 1.0, "tls": 1.0, "udp": 0.989,
    },
    "file": {
        "any-sll-lo.pcap": 0.999, "dpkt-nb6-http.pcap": 0.999,
        "gopacket-ng-be-test201.pcapng": 0.996, "gopacket-ng-be-test202.pcapng": 0.996,
        "gopacket-ng-le-test201.pcapng": 0.996, "gopacket-ng-le-test202.pcapng": 0.996,
        "http-keepalive-lo.pcap": 0.994, "python-pcapng-test006-fixed.pcapng": 0.393,
        "python-pcapng-test006.pcapng": 0.393, "python-pcapng-test007.pcapng": 0.302,
        "udp-dns-lo.pcap.gz": 0.999, "icmp-lo.pcap": 0.998, "tls12-lo.pcap": 0.999,
    },
}

#: The list columns, in tshark's field names.
LIST_FIELDS = ("frame.number", "frame.time_relative", "_ws.col.Source", "_ws.col.Destination",
               "_ws.col.Protocol", "frame.len", "_ws.col.Info")
#: Fields the conversation and HTTP views are compared on (tshark side).
CONV_FIELDS = ("tcp.stream", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
               "tcp.srcport", "tcp.dstport", "frame.len", "tcp.completeness")
HTTP_FIELDS = ("http.request.method", "http.request.uri", "http.response.code", "http.request_in")
#: tshark only judges checksums with validation on, which also stops it handing segments with
#: a bad checksum (Linux loopback's offload leaves every TCP checksum "bad") to HTTP; so these
#: fields come from a run of their own.
CHECKSUM_FIELD = re.compile(r"checksum(\.status|_calculated)$")
CHECKSUM_PREFS = ("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                  "-o", "udp.check_checksum:TRUE")
CHECKSUM_STATUS = {"bad": "0", "good": "1", "unverified": "2", "not present": "3", "illegal": "4"}
#: Separators no field value contains: one between fields, one between a field's occurrences.
SEP, AGG = "\x1e", "\x1f"
#: The whole run stays under a minute on two cores; a single tshark call far less.
TSHARK_TIMEOUT = 60
#: tshark's defaults, whatever the user's own Wireshark preferences say (an empty,
#: nonexistent personal configuration directory).
TSHARK_ENV = {"WIRESHARK_CONFIG_DIR": os.path.join(tempfile.gettempdir(), "tcplab-corpus-no-wireshark-prefs")}

LUA_FILTERS = r"""
-- One Lua tap listener per display filter: each collects the frame numbers its filter
-- matches, and at the end every list is printed as "\1F<index>\t<n>,<n>,…" (or "\1E<index>"
-- when tshark refuses the expression).
local filters = {}
for line in io.lines(os.getenv("TCPLAB_CORPUS_FILTERS")) do filters[#filters + 1] = line end
local hits = {}
for i, expr in ipairs(filters) do
  local ok, listener = pcall(Listener.new, nil, expr)
  if ok then
    local frames = {}
    hits[i] = frames
    function listener.packet(pinfo) frames[#frames + 1] = pinfo.number end
  end
end
local last = Listener.new(nil, "frame.number == 0")
function last.draw()
  for i = 1, #filters do
    if hits[i] then io.write("\1F", i, "\t", table.concat(hits[i], ","), "\n")
    else io.write("\1E", i, "\n") end
  end
end
"""


@dataclass
class Tally:
    """Agreeing units out of compared units (packets, cells, streams, items or decisions)."""

    agree: int = 0
    total: int = 0

    def add(self, ok: bool, n: int = 1) -> None:
        self.total += n
        self.agree += n if ok else 0

    def __iadd__(self, other: Tally) -> Tally:
        self.agree += other.agree
        self.total += other.total
        return self

    @property
    def ratio(self) -> float:
        return self.agree / self.total if self.total else 1.0


@dataclass
class Measurement:
    """Everything one corpus run counted, with one example of every kind of difference."""

    files: dict[str, dict[str, Tally]] = field(default_factory=dict)
    views: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    fields: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    filters: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    examples: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    packets: int = 0

    def count(self, name: str, view: str, tally: Tally) -> None:
        self.files.setdefault(name, {})[view] = tally
        self.views[view] += tally

    def example(self, key: str, text: str) -> None:
        self.examples.setdefault(key, text)

    def layers(self) -> dict[str, Tally]:
        """json agreement per protocol (the field name up to its first dot)."""
        out: dict[str, Tally] = defaultdict(Tally)
        for name, t in self.fields.items():
            out[name.split(".", 1)[0]] += t
        return out


# ---------------------------------------------------------------------------- running tools

def run_tcplab(path: Path, *view: str) -> tuple[int, str, str]:
    """One view through the real CLI entry point, in-process (a subprocess per view is too slow)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["analyze", str(path), *view])
    return rc, out.getvalue(), err.getvalue()


def run_tshark(path: Path, fields: tuple[str, ...], *extra: str,
               env: dict[str, str] | None = None) -> tuple[list[dict[str, str]], list[str], int]:
    """``tshark -T fields`` rows (field → text, occurrences joined by AGG), its Lua output lines, its exit status."""
    cmd = [require_tshark(), "-r", str(path), *extra, "-T", "fields", "-E", f"separator={SEP}",
           "-E", "occurrence=a", "-E", f"aggregator={AGG}"]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TSHARK_TIMEOUT,
                          env={**os.environ, **TSHARK_ENV, **(env or {})})
    rows, lua = [], []
    for line in proc.stdout.split("\n"):  # not splitlines(): that also splits at SEP and AGG
        if line.startswith("\1"):
            lua.append(line[1:])
            continue
        cols = line.split(SEP)
        if len(cols) == len(fields):
            rows.append(dict(zip(fields, cols, strict=True)))
    return rows, lua, proc.returncode


def tshark_field_names() -> set[str]:
    out = subprocess.run([require_tshark(), "-G", "fields"], capture_output=True, text=True,
                         timeout=TSHARK_TIMEOUT, env={**os.environ, **TSHARK_ENV}).stdout
    return {cols[2] for cols in (line.split("\t") for line in out.splitlines()) if len(cols) > 2}


# ---------------------------------------------------------------------------- comparing values

#: A list line; the Time column is blank on a frame without a timestamp (a pcapng Simple
#: Packet Block or custom block), as tshark leaves ``frame.time_relative`` empty there.
#: A list line; the Protocol column is one word but for PPP's control protocols ("PPP LCP").
LIST_LINE = re.compile(r"^\s*(\d+) +(-?\d+\.\d+)? +(\S*) → (\S*) +(PPP \S+|\S+) +(\d+) (.*)$")


def list_rows(text: str) -> dict[int, tuple]:
    """tcplab's packet list as frame → (time, source, destination, protocol, length, info)."""
    rows = {}
    for line in text.splitlines()[1:]:
        m = LIST_LINE.match(line)
        if m:
            rows[int(m[1])] = (round(float(m[2]), 6) if m[2] else None, m[3], m[4], m[5], int(m[6]), m[7].rstrip())
    return rows


def tshark_list_rows(rows: list[dict[str, str]]) -> dict[int, tuple]:
    out = {}
    for r in rows:
        try:
            time = r["frame.time_relative"]
            out[int(r["frame.number"])] = (round(float(time), 6) if time else None, r["_ws.col.Source"],
                                           r["_ws.col.Destination"], r["_ws.col.Protocol"],
                                           int(r["frame.len"] or 0), r["_ws.col.Info"].rstrip())
        except ValueError:
            continue
    return out


def compare_lists(m: Measurement, name: str, view: str, ours: dict[int, tuple], theirs: dict[int, tuple]) -> Tally:
    tally = Tally()
    columns = ("Time", "Source", "Destination", "Protocol", "Length", "Info")
    for number in sorted(set(ours) | set(theirs)):
        a, b = ours.get(number), theirs.get(number)
        tally.add(a == b)
        if a != b:
            if a is None or b is None:
                m.example(f"{view}: frame missing", f"{name} frame {number}: ours {a} / tshark {b}")
                continue
            for col, x, y in zip(columns, a, b, strict=True):
                if x != y:
                    m.example(f"{view}: {col}", f"{name} frame {number}: ours {x!r} / tshark {y!r}")
    return tally


def same_value(ours: object, theirs: str, name: str) -> bool:
    """Does tcplab's JSON value say what tshark's field text says?

    tshark writes integers of hex-displayed fields as ``0x…``, booleans as 1/0, FT_NONE
    presence fields (analysis tags) and option protocols as any non-empty text, several
    occurrences joined; tcplab's JSON keeps one value per name (a list for repeated ones).
    """
    if ours is None:
        return theirs == ""
    if ours == "":  # an empty text (a column of a frame with no address): tshark's is empty too
        return theirs == ""
    if name in UNESCAPED:
        theirs = UNESCAPED[name](theirs)
    values = theirs.split(AGG) if theirs else []
    if isinstance(ours, bool):
        return bool(values) if ours else (not values or values == ["0"])
    if isinstance(ours, list):  # one value per occurrence, in order
        return len(ours) == len(values) and all(same_value(o, t, name) for o, t in zip(ours, values, strict=True))
    if not values:
        return False
    first = values[0]
    if isinstance(ours, int):
        try:
            return ours == (int(first, 16) if first.startswith("0x") else int(first))
        except ValueError:
            return str(ours) == first
    if isinstance(ours, float):
        theirs_number = absolute_time(first)
        if theirs_number is None:
            try:
                theirs_number = float(first)
            except ValueError:
                return False
        return math.isclose(ours, theirs_number, abs_tol=1.5e-6)
    if name.endswith("checksum.status"):
        return CHECKSUM_STATUS.get(str(ours), str(ours)) == first
    if name == "_ws.col.Info":  # tshark's column keeps a trailing blank after some protocols
        first = first.rstrip()
    return str(ours) == first or str(ours) == theirs.replace(AGG, ",")


#: ``-T fields`` writes a string field's CR, LF, tab and backslash as two characters (``\\r``…);
#: tcplab's JSON keeps the text itself. Undone only for the fields where the corpus has them.
_FIELD_ESCAPES = re.compile(r"\\([\\rnt])")
UNESCAPED = {"frame.interface_name": lambda text: _FIELD_ESCAPES.sub(
    lambda m: {"\\": "\\", "r": "\r", "n": "\n", "t": "\t"}[m[1]], text)}


ABSOLUTE_TIME = re.compile(r"^(\w{3} +\d+, \d{4} \d\d:\d\d:\d\d)(\.\d+)? UTC$")


def absolute_time(text: str) -> float | None:
    """tshark's FT_ABSOLUTE_TIME text (``May 30, 2013 22:45:17.283108000 UTC``) as epoch seconds."""
    m = ABSOLUTE_TIME.match(text)
    if not m:
        return None
    whole = datetime.datetime.strptime(m[1], "%b %d, %Y %H:%M:%S").replace(tzinfo=datetime.UTC)
    return whole.timestamp() + float(m[2] or 0)


def json_packets(text: str) -> dict[int, dict]:
    """--json's packet objects by frame number; the damage record (where the reader stopped, not
    a frame: it has no ``frame.len``) stays out, as it stays out of the list's columns."""
    packets = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if "summary" not in d and isinstance(d.get("frame.number"), int) and "frame.len" in d:
                packets[d["frame.number"]] = d
    return packets


# ---------------------------------------------------------------------------- views

def summaries(text: str) -> dict[str, dict]:
    """The summary objects at the end of ``--json`` output, by their ``summary`` key."""
    out = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if isinstance(d, dict) and "summary" in d:
                out[d["summary"]] = d
    return out


def conversations_ours(summary: dict | None) -> dict[frozenset, tuple]:
    """--conversations as {endpoints} → (per-endpoint (packets, bytes) sent, completeness)."""
    out = {}
    for c in (summary or {}).get("conversations", []):
        a, b = _endpoint(c["address_a"], c["port_a"]), _endpoint(c["address_b"], c["port_b"])
        out[frozenset((a, b))] = (frozenset({(a, c["packets_a_to_b"], c["bytes_a_to_b"]),
                                             (b, c["packets_b_to_a"], c["bytes_b_to_a"])}), c["tcp.completeness"])
    return out


def _endpoint(addr: str, port: str | int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _tcp_addresses(r: dict[str, str]) -> tuple[str, str]:
    """The addresses of the IP layer that carries a frame's TCP segment: the innermost one in
    a tunnel (L2TP), the outer one when an ICMP error quotes a second header."""
    layers = r["frame.protocols"].split(":")
    if "icmp" in layers or "icmpv6" in layers or not {"ip", "ipv6"} & set(layers):
        return ((r["ip.src"] or r["ipv6.src"]).split(AGG)[0], (r["ip.dst"] or r["ipv6.dst"]).split(AGG)[0])
    family = max(("ip", "ipv6"), key=lambda f: max((i for i, x in enumerate(layers) if x == f), default=-1))
    return r[f"{family}.src"].split(AGG)[-1], r[f"{family}.dst"].split(AGG)[-1]


def conversations_theirs(rows: list[dict[str, str]]) -> dict[frozenset, tuple]:
    streams: dict[str, dict] = {}
    for r in rows:
        if not r["tcp.stream"]:
            continue
        src, dst = _tcp_addresses(r)
        a, b = _endpoint(src, r["tcp.srcport"].split(AGG)[0]), _endpoint(dst, r["tcp.dstport"].split(AGG)[0])
        s = streams.setdefault(r["tcp.stream"].split(AGG)[0], {"sent": Counter(), "bytes": Counter(), "ends": {a, b}})
        s["sent"][a] += 1
        s["bytes"][a] += int(r["frame.len"] or 0)
        s["completeness"] = r["tcp.completeness"]
    out = {}
    for s in streams.values():
        ends = frozenset(s["ends"])
        out[ends] = (frozenset((e, s["sent"][e], s["bytes"][e]) for e in ends), int(s["completeness"] or 0))
    return out


def http_ours(summary: dict | None) -> tuple[Counter, Counter, set]:
    """--http as requests by method, responses by code, and (request frame, response frame) pairs."""
    summary = summary or {}
    methods = Counter(summary.get("requests_by_method", {}))
    codes = Counter({code: v["count"] for code, v in summary.get("responses_by_code", {}).items()})
    pairs = {(p["request"]["frame"], p["response"]["frame"]) for p in summary.get("pairs", [])
             if p.get("request") and p.get("response")}
    return methods, codes, pairs


def http_theirs(rows: list[dict[str, str]]) -> tuple[Counter, Counter, set]:
    methods, codes, pairs = Counter(), Counter(), set()
    for r in rows:
        for method in filter(None, r["http.request.method"].split(AGG)):
            methods[method] += 1
        for code in filter(None, r["http.response.code"].split(AGG)):
            codes[code] += 1
        for req in filter(None, r["http.request_in"].split(AGG)):
            pairs.add((int(req), int(r["frame.number"])))
    return methods, codes, pairs


def multiset_tally(ours: Counter, theirs: Counter) -> Tally:
    keys = set(ours) | set(theirs)
    return Tally(sum(min(ours[k], theirs[k]) for k in keys), sum(max(ours[k], theirs[k]) for k in keys))


def filter_frames(text: str) -> set[int]:
    return {int(m[1]) for line in text.splitlines()[1:] if (m := LIST_LINE.match(line))}


# ---------------------------------------------------------------------------- the measurement

@dataclass
class TsharkFile:
    """tshark's reading of one file: the one-pass list with the filters, and the two-pass fields."""

    one_pass: list[dict[str, str]]
    two_pass: list[dict[str, str]]
    filters: list[str]
    clean: bool  # read to the end without an error


def tshark_file(path: Path, fields: tuple[str, ...], lua: Path, env: dict[str, str]) -> TsharkFile:
    one, filters, rc = run_tshark(path, LIST_FIELDS, "-X", f"lua_script:{lua}", env=env)
    if not one:  # no frame to compare: spare the second (slowest) run
        return TsharkFile(one, [], filters, rc == 0)
    two, _, _ = run_tshark(path, fields, "-2")
    return TsharkFile(one, two, filters, rc == 0)


#: A one-frame pcap (LINKTYPE_USER0, 7 bytes) put between the files merged for the checksum run.
SENTINEL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147) + struct.pack("<IIII", 0, 0, 7, 7) + b"tcplab!"


def tshark_checksums(files: list[Path], workdir: Path, fields: tuple[str, ...],
                     reads: dict[Path, TsharkFile]) -> dict[Path, dict[int, dict[str, str]]]:
    """Checksum verdicts with tshark's validation on, for all files in one run.

    A verdict depends on the frame's bytes alone, so the files tshark reads cleanly are
    concatenated by mergecap, a sentinel frame between each two, and read once. A file whose
    share does not have the frame count and lengths of its own reading (mergecap rewrites
    multi-section pcapng) is left out.
    """
    chosen = [p for p in files if reads[p].clean and reads[p].one_pass]
    if not chosen or not fields:
        return {}
    sentinel, merged = workdir / "sentinel.pcap", workdir / "all.pcapng"
    sentinel.write_bytes(SENTINEL)
    order = [str(sentinel)]
    for p in chosen:
        order += [str(p), str(sentinel)]
    subprocess.run([require_program("mergecap"), "-a", "-F", "pcapng", "-w", str(merged), *order],
                   capture_output=True, timeout=TSHARK_TIMEOUT, check=True)
    rows, _, _ = run_tshark(merged, ("frame.len", "frame.protocols", *fields), *CHECKSUM_PREFS)
    shares: list[list[dict[str, str]]] = []
    for r in rows:
        if r["frame.len"] == "7" and r["frame.protocols"].startswith("user_dlt"):
            shares.append([])
        elif shares:
            shares[-1].append(r)
    out = {}
    for p, share in zip(chosen, shares, strict=False):
        if [r["frame.len"] for r in share] == [r["frame.len"] for r in reads[p].one_pass]:
            out[p] = dict(enumerate(share, 1))
    return out


def measure(files: list[Path], workdir: Path) -> Measurement:
    """Run every view on every file with both tools and count agreement."""
    m = Measurement()
    lua = workdir / "filters.lua"
    lua.write_text(LUA_FILTERS)
    filter_file = workdir / "filters.txt"
    filter_file.write_text("\n".join(FILTERS) + "\n")
    env = {"TCPLAB_CORPUS_FILTERS": str(filter_file)}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        known = pool.submit(tshark_field_names)
        # tcplab's JSON first: its field names decide what tshark is asked for.
        # One run gives --json's packets and the --conversations and --http summaries.
        ours_text = {p: run_tcplab(p, "--json", "--conversations", "--http")[1] for p in files}
        ours_json = {p: json_packets(text) for p, text in ours_text.items()}
        names = sorted({k for packets in ours_json.values() for d in packets.values()
                        for k in d if not k.startswith("_") or k.startswith("_ws.col.")})
        tshark_known = known.result()
        comparable = [n for n in names if n in tshark_known or n.startswith("_ws.col.")]
        for n in names:
            if n not in comparable:
                m.refused.setdefault(f"field {n}", "not a tshark 4.0 field")
        plain = tuple(dict.fromkeys([*LIST_FIELDS, *CONV_FIELDS, *HTTP_FIELDS,
                                     *(n for n in comparable if not CHECKSUM_FIELD.search(n))]))
        sums = tuple(n for n in comparable if CHECKSUM_FIELD.search(n))
        # Every field tcplab writes anywhere in the corpus is compared on every file: a field
        # missing from a whole file (ip.version on an IPv6-only capture) counts too.
        compared = tuple(n for n in comparable if not CHECKSUM_FIELD.search(n))
        jobs = {p: pool.submit(tshark_file, p, plain, lua, env) for p in files}
        reads = {}
        for p in files:
            reads[p] = measure_file(m, p, ours_json[p], summaries(ours_text[p]), jobs[p], compared)
    verdicts = tshark_checksums(files, workdir, sums, reads)
    for p in files:
        if p not in verdicts:
            if reads[p].one_pass:
                m.refused.setdefault(f"checksums of {p.name}", "read with an error, or rewritten by mergecap (several sections)")
            continue
        tally = m.files[p.name]["json"]
        m.views["json"] += compare_fields(m, p.name, ours_json[p], verdicts[p], sums, tally)
    return m


def compare_fields(m: Measurement, name: str, ours: dict[int, dict], theirs: dict[int, dict[str, str]],
                   fields: tuple[str, ...], tally: Tally) -> Tally:
    """Cell by cell; counts into ``tally`` (the file's) and per field, returns this call's share."""
    mine = Tally()
    for number in sorted(set(ours) | set(theirs)):
        d, t = ours.get(number, {}), theirs.get(number, {})
        for f in fields:
            a, b = d.get(f), t.get(f, "")
            if a is None and b == "":
                continue
            ok = same_value(a, b, f)
            mine.add(ok)
            m.fields[f].add(ok)
            if not ok:
                m.example(f"json: {f}", f"{name} frame {number}: ours {a!r} / tshark {b.replace(AGG, ',')!r}")
    tally += mine
    return mine


def measure_file(m: Measurement, path: Path, ours: dict[int, dict], summary: dict[str, dict], job: Future,
                 fields: tuple[str, ...]) -> TsharkFile:
    """Every view of one file, counted into ``m``; ``fields`` are the --json fields compared."""
    name = path.name
    # Our views (in-process, while tshark runs in the pool).
    _rc, list1, _ = run_tcplab(path)
    _rc, list2, _ = run_tcplab(path, "-2")
    chosen: dict[str, set[int] | None] = {}
    for expr in FILTERS:
        rc, out, err = run_tcplab(path, "-Y", expr)
        if rc != 0 and "byte offset" not in err:
            chosen[expr] = None
            m.refused.setdefault(f"filter {expr}", err.strip().splitlines()[0] if err.strip() else f"exit {rc}")
        else:
            chosen[expr] = filter_frames(out)

    read: TsharkFile = job.result()
    one_rows, two_rows, lua = read.one_pass, read.two_pass, read.filters
    m.packets += len(one_rows)

    m.count(name, "list", compare_lists(m, name, "list", list_rows(list1), tshark_list_rows(one_rows)))
    m.count(name, "list-2", compare_lists(m, name, "list-2", list_rows(list2), tshark_list_rows(two_rows)))

    # --json, field by field.
    theirs = {int(r["frame.number"]): r for r in two_rows if r["frame.number"].isdigit()}
    m.count(name, "json", compare_fields(m, name, ours, theirs, fields, Tally()))

    # --conversations, stream by stream.
    mine, them = conversations_ours(summary.get("conversations")), conversations_theirs(two_rows)
    tally = Tally()
    for key in set(mine) | set(them):
        tally.add(mine.get(key) == them.get(key))
        if mine.get(key) != them.get(key):
            m.example("conv", f"{name} {sorted(key)}: ours {mine.get(key)} / tshark {them.get(key)}")
    m.count(name, "conv", tally)

    # --http: methods, codes, request ↔ response pairs.
    om, oc, op = http_ours(summary.get("http"))
    tm, tc, tp = http_theirs(two_rows)
    tally = multiset_tally(om, tm)
    tally += multiset_tally(oc, tc)
    tally += Tally(len(op & tp), len(op | tp))
    for label, a, b in (("methods", om, tm), ("codes", oc, tc), ("pairs", op, tp)):
        if a != b:
            m.example(f"http: {label}", f"{name}: ours {dict(a) if isinstance(a, Counter) else sorted(a)} / "
                                        f"tshark {dict(b) if isinstance(b, Counter) else sorted(b)}")
    m.count(name, "http", tally)

    # -Y, one decision per frame and expression.
    frames = set(theirs) | set(ours)
    matched: dict[str, set[int] | None] = {}
    for line in lua:
        kind, _, rest = line.partition("\t")
        index = int(kind[1:]) - 1
        matched[FILTERS[index]] = {int(n) for n in rest.split(",") if n} if kind[0] == "F" else None
    tally = Tally()
    for expr in FILTERS:
        if expr not in matched and one_rows:  # the listeners report even an empty match
            raise AssertionError(f"tshark's Lua listeners reported nothing for {name}: {lua[:3]}")
        t_set = matched.get(expr, set())
        if t_set is None:
            m.refused.setdefault(f"filter {expr}", "tshark refuses it")
            continue
        o_set = chosen[expr] or set()
        wrong = o_set ^ t_set
        frames |= wrong
        t = Tally(len(frames) - len(wrong), len(frames))
        tally += t
        m.filters[expr] += t
        if wrong:
            m.example(f"filter: {expr}", f"{name} frames {sorted(wrong)[:8]}: "
                                         f"ours {sorted(o_set & wrong)[:8]} / tshark {sorted(t_set & wrong)[:8]}")
    m.count(name, "filter", tally)
    return read


# ---------------------------------------------------------------------------- reporting

VIEWS = ("list", "list-2", "json", "conv", "http", "filter")


def pct(t: Tally) -> str:
    return f"{100 * t.ratio:6.2f}%" if t.total else "     —"


def render(m: Measurement) -> str:
    lines = [f"Corpus agreement with tshark 4.0: {len(m.files)} files, {m.packets} packets", ""]
    lines.append(f"{'view':<8} {'agree':>9} {'of':>9}  share")
    for v in VIEWS:
        t = m.views[v]
        lines.append(f"{v:<8} {t.agree:>9} {t.total:>9}  {pct(t)}")
    lines += ["", f"{'file':<36} " + " ".join(f"{v:>7}" for v in VIEWS) + "    mean"]
    for name, views in m.files.items():
        lines.append(f"{name[:36]:<36} " + " ".join(pct(views[v]) if v in views else "      —" for v in VIEWS)
                     + f" {100 * file_score(views):6.2f}%")
    lines += ["", f"{'json layer':<12} {'agree':>9} {'of':>9}  share"]
    for layer, t in sorted(m.layers().items()):
        lines.append(f"{layer:<12} {t.agree:>9} {t.total:>9}  {pct(t)}")
    lines += ["", "json fields below 100 % (cells agreeing / compared):"]
    for f, t in sorted(m.fields.items(), key=lambda kv: kv[1].ratio):
        if t.agree < t.total:
            lines.append(f"  {f:<40} {t.agree:>6}/{t.total:<6} {pct(t)}")
    lines += ["", "filters below 100 % (frame decisions agreeing / compared):"]
    for f, t in sorted(m.filters.items(), key=lambda kv: kv[1].ratio):
        if t.agree < t.total:
            lines.append(f"  {f:<48} {t.agree:>6}/{t.total:<6} {pct(t)}")
    if m.refused:
        lines += ["", "not compared:"] + [f"  {k}: {v}" for k, v in sorted(m.refused.items())]
    lines += ["", "one example of each difference:"] + [f"  [{k}] {v}" for k, v in sorted(m.examples.items())]
    return "\n".join(lines)


def floor(ratio: float) -> float:
    return math.floor(ratio * 1000) / 1000


def file_score(views: dict[str, Tally]) -> float:
    """A file's agreement: the mean over the views that compared something, each weighing the
    same (so one packet more or less in the list of a 50-packet file moves it by 1/300)."""
    ratios = [t.ratio for t in views.values() if t.total]
    return sum(ratios) / len(ratios) if ratios else 1.0


def current_thresholds(m: Measurement) -> dict[str, dict[str, float]]:
    """The floors this tree meets: per view, per json layer (protocol), and per file."""
    files = {}
    for name, views in m.files.items():
        if file_score(views) < 1.0:
            files[name] = floor(file_score(views))
    return {"view": {v: floor(m.views[v].ratio) for v in VIEWS},
            "layer": {k: floor(t.ratio) for k, t in sorted(m.layers().items())},
            "file": files}


def below_thresholds(m: Measurement, thresholds: dict[str, dict[str, float]]) -> list[str]:
    problems = []
    for v in VIEWS:
        need = thresholds["view"].get(v, 1.0)
        if m.views[v].ratio < need:
            problems.append(f"view {v}: {m.views[v].ratio:.4f} < {need}")
    for layer, t in m.layers().items():
        need = thresholds["layer"].get(layer, 1.0)
        if t.ratio < need:
            problems.append(f"json layer {layer}: {t.ratio:.4f} < {need}")
    for name, views in m.files.items():
        need = thresholds["file"].get(name, 1.0)
        if file_score(views) < need:
            problems.append(f"file {name}: {file_score(views):.4f} < {need} ("
                            + ", ".join(f"{v} {pct(t).strip()}" for v, t in views.items() if t.total) + ")")
    return problems


# ---------------------------------------------------------------------------- tests

def require_tshark_with_lua() -> None:
    """The filters are evaluated by Lua tap listeners: a tshark built without Lua cannot run them."""
    version = subprocess.run([require_tshark(), "-v"], capture_output=True, text=True,
                             timeout=TSHARK_TIMEOUT).stdout
    if "with Lua" not in version:
        reason = "tshark was built without Lua (its display filters are run through Lua tap listeners)"
        if IN_CI:
            pytest.fail(f"CI must provide this: {reason}")
        pytest.skip(reason)


def test_corpus_agrees_with_tshark_at_least_as_well_as_documented(tmp_path: Path, capsys) -> None:
    require_tshark_with_lua()
    require_program("mergecap")
    assert len(FILES) >= 60, "the corpus is missing files (see tests/data/corpus/SOURCES.md)"
    m = measure(FILES, tmp_path)
    table = render(m)
    with capsys.disabled():
        print("\n" + table)
    assert m.packets > 800, "the corpus lost packets: is tshark reading it at all?"
    assert all(m.views[v].total for v in VIEWS), "a view compared nothing: the measurement is broken"
    problems = below_thresholds(m, THRESHOLDS)
    assert not problems, "agreement fell below the committed thresholds:\n" + "\n".join(problems) + \
        "\n\n" + table


@pytest.mark.parametrize(("name", "expr"), [("rst-lo.pcap", "tcp.flags.reset == 1 && ip.version == 6"),
                                             ("http-keepalive-lo.pcap", "http.request || tcp.len > 1000"),
                                             ("zerowin-lo.pcap", "tcp.analysis.flags")])
def test_lua_listener_filters_are_tsharks_display_filters(tmp_path: Path, name: str, expr: str) -> None:
    """The instrument itself: a Lua listener's filter selects the frames ``tshark -Y`` shows."""
    require_tshark_with_lua()
    exe = require_tshark()
    path = CORPUS / name
    lua, exprs = tmp_path / "f.lua", tmp_path / "f.txt"
    lua.write_text(LUA_FILTERS)
    exprs.write_text(expr + "\n")
    _rows, out, _rc = run_tshark(path, ("frame.number",), "-X", f"lua_script:{lua}",
                            env={"TCPLAB_CORPUS_FILTERS": str(exprs)})
    via_lua = {int(n) for n in out[0].partition("\t")[2].split(",") if n}
    proc = subprocess.run([exe, "-r", str(path), "-Y", expr, "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=TSHARK_TIMEOUT, env={**os.environ, **TSHARK_ENV})
    assert via_lua == {int(n) for n in proc.stdout.split()}
    assert via_lua


def markdown(m: Measurement) -> str:
    """The per-view and per-layer figures as the Markdown tables docs/analyze.md quotes."""
    lines = ["| view | agree | of | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {v} | {m.views[v].agree} | {m.views[v].total} | {pct(m.views[v]).strip()} |" for v in VIEWS]
    lines += ["", "| --json layer | agree | of | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k} | {t.agree} | {t.total} | {pct(t).strip()} |" for k, t in sorted(m.layers().items())]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    with tempfile.TemporaryDirectory() as work:
        measured = measure(FILES, Path(work))
    if "--markdown" in sys.argv[1:]:
        print(markdown(measured))
    else:
        print(render(measured))
        print("\nTHRESHOLDS =", json.dumps(current_thresholds(measured), indent=4))
