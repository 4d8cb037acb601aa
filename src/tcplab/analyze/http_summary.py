"""HTTP summary (``--http``): methods, status codes, request↔response pairs, URIs, CSV msg_ids.

Built from the analyzer's ``http.*`` fields, one packet record at a time. Responses are paired
with requests per TCP stream in the order the requests were sent: HTTP/1.1 (RFC 9112 §9.3.2)
requires a server to answer pipelined requests in order, so the oldest unanswered request
on a stream owns the next response. When the capture came from ``tcplab encap`` each frame
carries a pcapng comment ``msg_id=N``, which maps every HTTP message back to its CSV row.

What it must never do: print, or keep per-packet state beyond bounded tables — pending
requests per stream, listed pairs and distinct URIs are all capped (the counts stay exact).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from tcplab.analyze.record import Packet, from_fields
from tcplab.analyze.render import safe_text

#: Pairs listed individually; beyond this they are still counted. A summary is for reading.
MAX_PAIRS = 10_000
#: Requests waiting for an answer on one stream; older ones are given up as unanswered.
MAX_PENDING_PER_STREAM = 1_000
#: Distinct URIs counted individually; the rest fold into one "(other URIs)" line.
MAX_URIS = 10_000
#: Frames listed per "unanswered"/"unmatched" list.
MAX_LISTED = 1_000

_MSG_ID = re.compile(r"\bmsg_id=(\d{1,18})\b")
OTHER_URIS = "(other URIs)"


def msg_id_of(d: Packet | dict) -> int | None:
    """The CSV msg_id a ``tcplab encap`` frame comment names, if any."""
    return _msg_id(d.get("frame.comment"))


def _msg_id(comment: object) -> int | None:
    if not isinstance(comment, str):
        return None
    m = _MSG_ID.search(comment)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    frame: int
    stream: int | None
    method: str
    uri: str
    time: float
    msg_id: int | None


@dataclass(frozen=True, slots=True)
class HttpPair:
    """A request and the response that answered it (``response`` None: never answered)."""

    request: HttpRequest
    response_frame: int
    code: int
    phrase: str
    response_msg_id: int | None
    elapsed: float  # seconds from request to response


@dataclass
class HttpSummary:
    requests: int = 0
    responses: int = 0
    requests_by_method: Counter = field(default_factory=Counter)
    responses_by_code: Counter = field(default_factory=Counter)
    phrases: dict[int, str] = field(default_factory=dict)
    uri_counts: Counter = field(default_factory=Counter)
    uri_methods: dict[str, set[str]] = field(default_factory=dict)
    pairs: list[HttpPair] = field(default_factory=list)
    pairs_total: int = 0
    unanswered: list[HttpRequest] = field(default_factory=list)
    unanswered_total: int = 0
    unmatched_responses: list[int] = field(default_factory=list)  # frame numbers
    unmatched_total: int = 0
    streams: set[int] = field(default_factory=set)
    msg_ids_http: int = 0  # HTTP frames that carry a msg_id comment
    msg_ids_other: list[tuple[int, int]] = field(default_factory=list)  # (msg_id, frame)
    msg_ids_other_total: int = 0


class HttpTable:
    """Incremental form: ``add`` each packet in capture order, then ``finish()``.

    A request waiting for its response is a plain tuple (frame, stream, method, uri, time,
    msg_id); the :class:`HttpRequest` object is made only for the requests the summary
    lists (paired within :data:`MAX_PAIRS`, or unanswered within :data:`MAX_LISTED`), not
    for each of the hundreds of thousands a large capture holds.
    """

    #: :meth:`add` ignores a packet without TCP payload, and of the others reads only the
    #: number, time, payload length, comment, stream and HTTP messages: a read feeding only
    #: this table may skip making records for the first and make the others with just
    #: those (:meth:`Analyzer.packets` ``payload_only``).
    payload_only = True

    def __init__(self) -> None:
        self.summary = HttpSummary()
        self._pending: dict[object, deque[tuple]] = {}
        # Counted per (method, URI) and per status code, and only folded into the summary's
        # tables by finish(): one dict update per message instead of one per table. The
        # URIs counted on their own are the first MAX_URIS seen (the rest under OTHER_URIS).
        self._requests: dict[tuple[str, str], int] = {}
        self._uris: set[str] = set()
        self._codes: dict[int, int] = {}

    def add(self, p: Packet | dict) -> None:
        """Take one packet (an analyzer record, or a Wireshark field dict such as tshark's)."""
        if type(p) is not Packet:
            p = from_fields(p)  # type: ignore[arg-type]
        if not p.seglen:
            return  # HTTP is only ever recognised in a TCP payload
        messages = p.http_messages()
        comment = p.comment
        msg_id = _msg_id(comment) if comment else None
        if not messages:
            if msg_id is not None:
                # Data the analyzer did not take as HTTP (e.g. a retransmission, which
                # Wireshark does not hand to the HTTP dissector) yet a CSV row produced it.
                s = self.summary
                s.msg_ids_other_total += 1
                if len(s.msg_ids_other) < MAX_LISTED:
                    s.msg_ids_other.append((msg_id, p.number))
            return
        s = self.summary
        # A record's own texts were escaped when its payload was parsed (http.message);
        # a field dict's (tshark's, a test's) are escaped here.
        escaped = p._fields is None
        if msg_id is not None:
            s.msg_ids_http += 1
        stream = p.stream
        streams = s.streams
        if stream not in streams and stream is not None and len(streams) < MAX_URIS:
            streams.add(stream if type(stream) is int else int(stream))
        key = stream if stream is not None else ("udp", p.get("ip.src"), p.get("ip.dst"))
        # A segment may complete several messages (pipelined requests, or a response
        # followed by the next one): each counts, as in tshark's HTTP statistics.
        for method, uri, code, phrase in messages:
            if method is not None:
                if not escaped:
                    method = safe_text(str(method))
                    uri = safe_text(str(uri if uri is not None else ""))
                kind = (method, uri)
                seen = self._requests.get(kind)
                if seen is not None:
                    self._requests[kind] = seen + 1
                else:
                    self._new_kind(method, uri)
                queue = self._pending.get(key)
                if queue is None:
                    queue = self._pending[key] = deque()
                if len(queue) >= MAX_PENDING_PER_STREAM:
                    self._give_up(queue.popleft())
                queue.append((p.number, stream, method, uri, p.time_relative, msg_id))
            else:
                if type(code) is not int:
                    code = int(code)  # type: ignore[arg-type]
                if not escaped:
                    phrase = safe_text(str(phrase if phrase is not None else ""))
                seen = self._codes.get(code)
                if seen is not None:
                    self._codes[code] = seen + 1
                else:
                    self._codes[code] = 1
                    s.phrases[code] = phrase
                queue = self._pending.get(key)
                if queue:
                    request = queue.popleft()
                    s.pairs_total += 1
                    if len(s.pairs) < MAX_PAIRS:
                        s.pairs.append(HttpPair(HttpRequest(*request), p.number, code, phrase, msg_id,
                                                p.time_relative - request[4]))
                else:
                    s.unmatched_total += 1
                    if len(s.unmatched_responses) < MAX_LISTED:
                        s.unmatched_responses.append(p.number)

    def _new_kind(self, method: str, uri: str) -> None:
        """Count the first request of its (method, URI), or one whose URI is past MAX_URIS."""
        uris = self._uris
        if uri in uris or len(uris) < MAX_URIS:
            uris.add(uri)
            kind = (method, uri)
        else:
            kind = (method, OTHER_URIS)  # (looked up again on each: only past the bound)
        self._requests[kind] = self._requests.get(kind, 0) + 1

    def _give_up(self, request: tuple) -> None:
        s = self.summary
        s.unanswered_total += 1
        if len(s.unanswered) < MAX_LISTED:
            s.unanswered.append(HttpRequest(*request))

    def finish(self) -> HttpSummary:
        for queue in self._pending.values():
            while queue:
                self._give_up(queue.popleft())
        self._pending.clear()
        s = self.summary
        for (method, uri), count in self._requests.items():
            s.requests += count
            s.requests_by_method[method] += count
            s.uri_counts[uri] += count
            if uri is not OTHER_URIS:
                s.uri_methods.setdefault(uri, set()).add(method)
        for code, count in self._codes.items():
            s.responses += count
            s.responses_by_code[code] += count
        self._requests.clear()
        self._codes.clear()
        self.summary.unanswered.sort(key=lambda r: r.frame)
        return self.summary


def summarize(packets: Iterable[Packet | dict]) -> HttpSummary:
    """Summarize every HTTP message in ``packets`` (consumed once, in capture order)."""
    table = HttpTable()
    for d in packets:
        table.add(d)
    return table.finish()


def _msg(m: int | None) -> str:
    return "" if m is None else str(m)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Aligned lines, indented by two spaces: columns in ``right`` right-aligned.

    One ``%`` format per line (``%10s`` pads as ``rjust`` does, ``%-10s`` as ``ljust``):
    the pairs table has up to :data:`MAX_PAIRS` rows.
    """
    table = [header, *rows]
    widths = [max(map(len, column)) for column in zip(*table)]
    fmt = "  ".join(f"%{'' if i in right else '-'}{w}s" for i, w in enumerate(widths))
    return ["  " + (fmt % cells).rstrip() for cells in table]


def render(summary: HttpSummary) -> str:
    """The summary as text sections a student can read top to bottom."""
    s = summary
    if not s.requests and not s.responses:
        text = "No HTTP messages."
        if s.msg_ids_other_total:
            text += (f" {s.msg_ids_other_total} data segments carry a msg_id comment but were not"
                     " dissected as HTTP (see --explain).")
        return text
    streams = len(s.streams)
    out = [f"HTTP: {s.requests} request{'s' if s.requests != 1 else ''}, {s.responses} "
           f"response{'s' if s.responses != 1 else ''} in {streams} TCP "
           f"stream{'s' if streams != 1 else ''}"]
    if s.requests_by_method:
        out += ["", "Requests by method"]
        out += _table(("Method", "Count"),
                      [(m, str(n)) for m, n in s.requests_by_method.most_common()], {1})
    if s.responses_by_code:
        out += ["", "Responses by status code"]
        out += _table(("Code", "Phrase", "Count"),
                      [(str(c), s.phrases.get(c, ""), str(n))
                       for c, n in sorted(s.responses_by_code.items())], {0, 2})
    if s.uri_counts:
        out += ["", "Requests per URI"]
        out += _table(("Count", "Methods", "URI"),
                      [(str(n), ",".join(sorted(s.uri_methods.get(u, ()))), u)
                       for u, n in sorted(s.uri_counts.items(), key=lambda kv: (-kv[1], kv[0]))],
                      {0})
    if s.pairs:
        with_ids = any(p.request.msg_id is not None or p.response_msg_id is not None
                       for p in s.pairs)
        out += ["", "Request ↔ response (per stream, in the order requests were sent)"]
        header = ["Stream", "Request", "Frame", "Response", "Frame", "Time"]
        if with_ids:
            header[2:2] = ["msg_id"]
            header[5:5] = ["msg_id"]
        rows = []
        for p in s.pairs:
            row = [str(p.request.stream if p.request.stream is not None else "-"),
                   f"{p.request.method} {p.request.uri}", str(p.request.frame),
                   f"{p.code} {p.phrase}".rstrip(), str(p.response_frame),
                   f"{p.elapsed * 1000:.3f} ms"]
            if with_ids:
                row[2:2] = [_msg(p.request.msg_id)]
                row[5:5] = [_msg(p.response_msg_id)]
            rows.append(tuple(row))
        right = {0, 2, 3, 5, 6, 7} if with_ids else {0, 2, 4, 5}
        out += _table(tuple(header), rows, right)
        if s.pairs_total > len(s.pairs):
            out.append(f"  … {s.pairs_total - len(s.pairs)} more pairs not listed")
    if s.unanswered_total:
        frames = ", ".join(f"{r.frame} ({r.method} {r.uri})" for r in s.unanswered[:20])
        more = " …" if s.unanswered_total > 20 else ""
        out += ["", f"Requests never answered in the capture: {s.unanswered_total}: {frames}{more}"]
    if s.unmatched_total:
        frames = ", ".join(map(str, s.unmatched_responses[:20]))
        more = " …" if s.unmatched_total > 20 else ""
        out += ["", f"Responses with no request before them on their stream: "
                    f"{s.unmatched_total} (frames {frames}{more})"]
    if s.msg_ids_http or s.msg_ids_other_total:
        out += ["", f"CSV rows: {s.msg_ids_http} HTTP messages carry their msg_id (frame comment)."]
        if s.msg_ids_other_total:
            listed = ", ".join(f"msg_id {m} → frame {f}" for m, f in s.msg_ids_other[:10])
            more = " …" if s.msg_ids_other_total > 10 else ""
            out.append(f"  {s.msg_ids_other_total} more data segments carry a msg_id but were not"
                       f" dissected as HTTP (e.g. marked retransmissions): {listed}{more}")
    return "\n".join(out)


def _request_json(r: HttpRequest) -> dict:
    return {"frame": r.frame, "tcp.stream": r.stream, "method": r.method, "uri": r.uri,
            "msg_id": r.msg_id}


def to_json(summary: HttpSummary) -> dict:
    """The ``--json`` summary object (``{"summary": "http", ...}``)."""
    s = summary
    return {
        "summary": "http",
        "requests": s.requests,
        "responses": s.responses,
        "requests_by_method": dict(s.requests_by_method.most_common()),
        "responses_by_code": {str(c): {"phrase": s.phrases.get(c, ""), "count": n}
                              for c, n in sorted(s.responses_by_code.items())},
        "uris": [{"uri": u, "count": n, "methods": sorted(s.uri_methods.get(u, ()))}
                 for u, n in s.uri_counts.most_common()],
        "pairs": [
            {"request": _request_json(p.request),
             "response": {"frame": p.response_frame, "code": p.code, "phrase": p.phrase,
                          "msg_id": p.response_msg_id},
             "elapsed": p.elapsed}
            for p in s.pairs
        ],
        "pairs_total": s.pairs_total,
        "unanswered_requests": [_request_json(r) for r in s.unanswered],
        "unanswered_total": s.unanswered_total,
        "unmatched_response_frames": s.unmatched_responses,
        "unmatched_total": s.unmatched_total,
        "msg_ids_not_http": [{"msg_id": m, "frame": f} for m, f in s.msg_ids_other],
    }
