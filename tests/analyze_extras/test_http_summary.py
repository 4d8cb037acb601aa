"""HTTP summary: counts, in-order pairing per stream, URIs, msg_id mapping, bounded tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tcplab.analyze import http_summary as hs
from tests.analyze_extras.captures import tshark_dicts
from tests.support import require_tshark


def req(n: int, stream: int, method: str, uri: str, t: float = 0.0, comment: str | None = None):
    d = {"frame.number": n, "frame.time_relative": t, "tcp.stream": stream, "tcp.len": 30,
         "http.request.method": method, "http.request.uri": uri}
    if comment:
        d["frame.comment"] = comment
    return d


def resp(n: int, stream: int, code: int, phrase: str, t: float = 0.0, comment: str | None = None):
    d = {"frame.number": n, "frame.time_relative": t, "tcp.stream": stream, "tcp.len": 30,
         "http.response.code": code, "http.response.phrase": phrase}
    if comment:
        d["frame.comment"] = comment
    return d


def test_pipelined_requests_pair_in_order_per_stream() -> None:
    packets = [
        req(1, 0, "GET", "/a", 0.0), req(2, 0, "GET", "/b", 0.1), req(3, 1, "POST", "/c", 0.2),
        resp(4, 1, 201, "Created", 0.3), resp(5, 0, 200, "OK", 0.4), resp(6, 0, 404, "Not Found", 0.5),
    ]
    s = hs.summarize(packets)
    got = [(p.request.frame, p.response_frame, p.code) for p in s.pairs]
    assert got == [(3, 4, 201), (1, 5, 200), (2, 6, 404)]
    assert s.pairs[1].elapsed == pytest.approx(0.4)
    assert s.requests_by_method == {"GET": 2, "POST": 1}
    assert s.responses_by_code == {200: 1, 201: 1, 404: 1}
    assert s.phrases[404] == "Not Found"
    assert s.uri_counts == {"/a": 1, "/b": 1, "/c": 1}
    assert s.unanswered_total == 0 and s.unmatched_total == 0


def test_unanswered_and_unmatched() -> None:
    s = hs.summarize([resp(1, 0, 200, "OK"), req(2, 0, "GET", "/x"), req(3, 0, "GET", "/x"),
                      resp(4, 0, 304, "Not Modified")])
    assert s.unmatched_responses == [1]
    assert [r.frame for r in s.unanswered] == [3]
    assert s.pairs[0].request.frame == 2 and s.pairs[0].code == 304
    text = hs.render(s)
    assert "Requests never answered in the capture: 1: 3 (GET /x)" in text
    assert "Responses with no request before them on their stream: 1 (frames 1)" in text
    assert "GET      /x" in text or "GET  /x" in text


def test_msg_ids_from_frame_comments() -> None:
    packets = [req(1, 0, "POST", "/cart", comment="msg_id=19"),
               resp(2, 0, 201, "Created", comment="msg_id=20"),
               {"frame.number": 3, "tcp.stream": 0, "tcp.len": 18, "frame.comment": "msg_id=21"}]
    s = hs.summarize(packets)
    assert (s.pairs[0].request.msg_id, s.pairs[0].response_msg_id) == (19, 20)
    assert s.msg_ids_other == [(21, 3)]
    text = hs.render(s)
    assert "msg_id" in text.splitlines()[text.splitlines().index(
        "Request ↔ response (per stream, in the order requests were sent)") + 1]
    assert "msg_id 21 → frame 3" in text
    assert hs.msg_id_of({"frame.comment": "note; msg_id=7"}) == 7
    assert hs.msg_id_of({"frame.comment": "msg_id=x"}) is None
    assert hs.msg_id_of({}) is None


def test_json_form() -> None:
    s = hs.summarize([req(1, 0, "GET", "/", comment="msg_id=1"), resp(2, 0, 200, "OK")])
    obj = hs.to_json(s)
    assert obj["summary"] == "http"
    assert obj["responses_by_code"] == {"200": {"phrase": "OK", "count": 1}}
    assert obj["pairs"][0]["request"]["msg_id"] == 1
    assert obj["pairs"][0]["response"]["frame"] == 2
    json.dumps(obj)


def test_tables_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hs, "MAX_PENDING_PER_STREAM", 5)
    monkeypatch.setattr(hs, "MAX_URIS", 3)
    monkeypatch.setattr(hs, "MAX_PAIRS", 2)
    packets = [req(i, 0, "GET", f"/u{i}") for i in range(1, 11)]
    packets += [resp(100 + i, 0, 200, "OK") for i in range(4)]
    s = hs.summarize(packets)
    assert s.requests == 10 and s.unanswered_total == 5 + 1
    assert s.pairs_total == 4 and len(s.pairs) == 2
    assert s.uri_counts[hs.OTHER_URIS] == 7 and len(s.uri_counts) == 4
    assert "2 more pairs not listed" in hs.render(s)


def test_hostile_text_is_escaped() -> None:
    s = hs.summarize([req(1, 0, "GET", "/\x1b]0;pwned\x07"), resp(2, 0, 200, "O\x1b[2JK")])
    assert "\x1b" not in hs.render(s)


def test_no_http() -> None:
    assert hs.render(hs.summarize([{"frame.number": 1}])) == "No HTTP messages."


@pytest.fixture(scope="module")
def encap_capture(tmp_path_factory: pytest.TempPathFactory):
    require_tshark()
    out = tmp_path_factory.mktemp("http") / "shop.pcapng"
    subprocess.run([sys.executable, "-m", "tcplab", "encap", "examples/http_ecommerce.csv",
                    "-o", str(out), "-q"], check=True, timeout=120)
    return tshark_dicts(out)


def test_encap_capture_maps_back_to_csv_rows(encap_capture) -> None:
    s = hs.summarize(encap_capture)
    assert s.requests == s.responses == s.pairs_total > 10
    for p in s.pairs:
        # The sample CSV alternates request, response: response row = request row + 1.
        assert p.response_msg_id == p.request.msg_id + 1
    by_id = {p.response_msg_id: p.code for p in s.pairs}
    assert by_id[20] == 201 and by_id[76] == 304  # the report's messages no. 20 and 76
    assert s.msg_ids_http == s.requests + s.responses



def test_message_cache_by_first_line_gives_the_regular_expressions_answer() -> None:
    from tcplab.analyze import http

    http._message_cache.clear()
    first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    entry = http.message(first)
    assert entry == (("HTTP", "GET /a HTTP/1.1"), "GET", "/a", None, None)
    # Found by its first line now; the same answer as the expression gives uncached.
    for payload in (b"GET /a HTTP/1.1\r\nHost: y\r\n\r\n", b"xxGET /a HTTP/1.1\r\n"):
        start = 2 if payload.startswith(b"xx") else 0
        cached = http.message(payload, start)
        http._message_cache.clear()
        assert cached == http.message(payload, start) == entry
        http.message(first)
    # Lines that only start like a cached one are not taken for it.
    assert http.message(b"GET /a HTTP/1.1x\r\n") is None
    assert http.message(b"GET /a HTTP/1.1") == entry  # no newline: the expression decides
    assert http.message(b"GET /a HTTP/1.1\r\n", 0, 10) is None  # cut before the line ends
