"""Display filter unit tests: semantics on hand-written packet dicts, and the error messages."""

from __future__ import annotations

import pytest

from tcplab.analyze.filter import compile_filter, known_field_names
from tcplab.errors import InputError

HTTP_GET = {
    "frame.number": 1, "ip.src": "127.0.0.1", "ip.dst": "10.0.0.2", "tcp.srcport": 12345,
    "tcp.dstport": 80, "tcp.flags": 0x18, "tcp.flags.reset": 0, "tcp.flags.syn": 0,
    "tcp.analysis.retransmission": True, "http.request.method": "GET",
    "http.request.uri": "/blog", "tcp.checksum.status": "bad", "frame.comment": "msg_id=20",
    "_ws.col.Info": "GET /blog HTTP/1.1", "tcp.payload": b"GET /blog HTTP/1.1",
    "_raw": b"E\x00GET /blog HTTP/1.1",
}
UDP = {"frame.number": 2, "ip.src": "127.0.0.1", "ip.dst": "10.0.0.2", "udp.srcport": 53,
       "udp.dstport": 5353}
V6 = {"frame.number": 3, "ipv6.src": "::1", "ipv6.dst": "fe80::2", "tcp.srcport": 1,
      "tcp.dstport": 2, "tcp.flags.reset": 1, "tcp.flags.syn": 0, "tcp.analysis.zero_window": False}


def select(expr: str) -> list[int]:
    predicate = compile_filter(expr)
    return [d["frame.number"] for d in (HTTP_GET, UDP, V6) if predicate(d)]


@pytest.mark.parametrize(
    "expr, frames",
    [
        ("tcp.port == 80", [1]),
        ("tcp.port != 80", [3]),  # a missing field never satisfies a comparison
        ("!(tcp.port == 80)", [2, 3]),
        ("udp.port == 53 || tcp.flags.reset == 1", [2, 3]),
        ("ip.addr == 10.0.0.0/8", [1, 2]),
        ("ipv6.addr == ::1", [3]),
        ("ip.addr == 10.0.0.2 && !udp", [1]),
        ("http", [1]),
        ("http.request", [1]),
        ("tcp", [1, 3]),
        ("tcp.analysis.zero_window", []),  # False is "not set"
        ("tcp.analysis.retransmission", [1]),
        ("tcp.analysis.flags", [1]),
        ("tcp.checksum.status == Bad", [1]),
        ("tcp.checksum.status == 0", [1]),
        ("frame.comment contains \"msg_id=\"", [1]),
        ("_ws.col.Info contains \"/blog\"", [1]),
        ("http.request.uri == \"/blog\"", [1]),
        ("http.request.method in {\"GET\", \"POST\"}", [1]),
        ("tcp.flags.syn == false && tcp.flags.reset == true", [3]),
        ("tcp.port in {1..2}", [3]),
        ("ip.host == \"127.0.0.1\"", [1, 2]),
        ("frame", [1, 2, 3]),
        ("frame contains \"GET\"", [1]),
        ("tcp.payload contains 2f:62", [1]),
        ("tcp.payload contains \"/blog\" && tcp.payload != \"x\"", [1]),
    ],
)
def test_semantics(expr: str, frames: list[int]) -> None:
    assert select(expr) == frames


@pytest.mark.parametrize(
    "expr, fragment, column",
    [
        ('http.host matches "x"', "unsupported operator 'matches'", 11),
        ("tcp.prot == 80", "unknown field 'tcp.prot'", 1),
        ("tcp.port == 80 and", "unexpected end", 19),
        ("tcp.port > 65536", "too big for tcp.port", 12),
        ("ip.addr == 300.1.1.1", "not a valid IPv4 address", 12),
        ("ip.addr == 10.0.0.0/33", "netmask bits", 12),
        ("ip.addr == \"1.2.3.4\"", "without quotes", 12),
        ("(tcp", "never closed", 1),
        ("tcp)", "unexpected ')'", 4),
        ("tcp[0:2] == 1", "slices", 4),
        ("tcp.analysis.retransmission == 1", "flag with no value", 1),
        ('tcp.port == "80', "no closing", 13),
        ("tcp == 1", "is a protocol", 1),
        ("80 == tcp.port", "must start with a field name", 1),
        ("", "empty filter", 1),
        ("tcp.port = 80", "use '=='", 10),
        ("tcp.port == 80 | udp", "'||'", 16),
        ("tcp.port tcp", "unexpected 'tcp'", 10),
        ("tcp.seq == 1.5", "not a valid number", 12),
        ("ip.addr > 10.0.0.0/8", "can only be compared", 11),
        ("tcp.port in {80 443}", "separated by ','", 17),
        ("http.request.uri > 1 && tcp.len contains \"x\"", "cannot be used with 'contains'", 42),
        ('tcp contains "GET"', "'tcp contains' is not supported", 1),
        ("tcp.payload contains zz", "not a byte string", 22),
        ("tcp.payload > 3", "can only be compared with contains", 15),
    ],
)
def test_errors_name_the_column(expr: str, fragment: str, column: int) -> None:
    with pytest.raises(InputError) as info:
        compile_filter(expr)
    message = str(info.value)
    assert message.startswith("-Y: ")
    assert fragment in message
    assert f"at column {column}" in message
    # The caret line points at that column under the echoed expression.
    lines = message.splitlines()
    assert lines[1] == "  " + expr
    assert lines[2].index("^") == column - 1 + 2


def test_unknown_field_suggests_similar_names() -> None:
    with pytest.raises(InputError, match=r"similar known names: .*tcp\.port"):
        compile_filter("tcp.prot == 80")
    with pytest.raises(InputError, match=r"http\.request\.method"):
        compile_filter('http.request.methd == "GET"')


def test_option_name_and_extra_fields() -> None:
    with pytest.raises(InputError, match=r"^--filter: "):
        compile_filter("nosuch.field", option="--filter")
    predicate = compile_filter("chat.target == \"Alice\"", known_fields=["chat.target"])
    assert predicate({"chat.target": "Alice"})
    assert not predicate({"chat.target": "Bob"})
    assert not predicate({})


def test_hostile_input_is_bounded() -> None:
    with pytest.raises(InputError, match="nested deeper"):
        compile_filter("(" * 500 + "tcp" + ")" * 500)
    with pytest.raises(InputError, match="nested deeper"):
        compile_filter("!" * 500 + "tcp")
    with pytest.raises(InputError, match="longer than"):
        compile_filter("tcp || " * 1000 + "udp")
    with pytest.raises(InputError, match="unexpected character"):
        compile_filter("tcp.port == 80 \x1b[31m")


def test_values_of_unexpected_type_do_not_crash() -> None:
    odd = {"tcp.srcport": "eighty", "ip.src": "not-an-ip", "ip.dst": None, "tcp.len": [1]}
    for expr in ("tcp.port == 80", "ip.addr == 10.0.0.0/8", "tcp.len > 3", "ip.src == ip.dst"):
        assert compile_filter(expr)(odd) is False


def test_known_field_names_cover_the_virtual_fields() -> None:
    names = known_field_names()
    for name in ("tcp.port", "udp.port", "ip.addr", "ipv6.addr", "ip.host", "http", "dns"):
        assert name in names


FAST_EXPRS = ["tcp.port == 80", "tcp.port != 80", "tcp.port > 1000", "tcp.srcport <= 80",
              "tcp.len >= 1", "http.request.method == \"GET\"", "http.request.method != GET",
              "tcp.stream == 0 || udp.port == 53"]


def test_fast_path_agrees_with_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The int/str fast path must give the general path's answer for every value type."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tcplab.analyze import filter as flt

    fast = [compile_filter(e) for e in FAST_EXPRS]
    # the fast path is in use (inside the generated function, where the test has a source)
    closures = [getattr(f, "general", f) for f in fast]
    assert closures[0].__name__ == "two_eq" and closures[3].__name__ == "one"
    monkeypatch.setattr(flt, "_fast_compare", lambda *a: None)
    general = [compile_filter(e) for e in FAST_EXPRS]
    values = st.one_of(st.none(), st.integers(-2, 70000), st.sampled_from([80, 53, 0, 1]),
                       st.booleans(), st.floats(allow_nan=False), st.sampled_from(["80", "GET", ""]))
    keys = ["tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.len", "tcp.stream",
            "http.request.method"]

    @settings(max_examples=300, deadline=None)
    @given(st.fixed_dictionaries({}, optional={k: values for k in keys}))
    def check(d: dict) -> None:
        d = {k: v for k, v in d.items() if v is not None}
        for expr, f, g in zip(FAST_EXPRS, fast, general):
            assert f(d) == g(d), (expr, d)

    check()


def test_repeated_fields_are_lists_of_values() -> None:
    d = {"tcp.srcport": 1, "tcp.options.sack_le": [100, 200], "tcp.options.sack_perm": True}
    assert compile_filter("tcp.options.sack_le == 200")(d)
    assert compile_filter("tcp.options.sack_le > 150")(d)
    assert not compile_filter("tcp.options.sack_le != 100")(d)  # != means all differ
    assert compile_filter("tcp.options.sack_le !== 100")(d)
    assert compile_filter("tcp.options.sack_perm")(d)


def test_every_field_the_analyzer_writes_can_be_filtered(tmp_path) -> None:
    """What `--json` shows a user must be usable in -Y (internal `_` keys aside)."""
    from tcplab.analyze import analyze
    from tests.analyze_extras.captures import mixed_packets, write_pcap

    path = write_pcap(tmp_path / "m.pcap", mixed_packets())
    known = set(known_field_names())
    keys = {k for d in analyze(path) for k in d if not k.startswith("_") or k.startswith("_ws.")}
    keys -= {"http.request", "http.response"} & known  # protocol-style presence names
    assert keys - known == set()


def test_any_text_compiles_or_raises_input_error() -> None:
    """Whatever a user types, -Y answers with a predicate or a clear InputError, never a crash."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from([
        "tcp.port", "ip.addr", "http", "==", "!=", ">", "&&", "||", "!", "(", ")", "{", "}",
        ",", "..", "in", "contains", "80", "0x1g", "10.0.0.0/8", "::1", '"a"', '"', "\\",
        "tcp.payload", "frame", "not", "and", "tcp.analysis.flags", "tcp.flags & 2", "~", "[",
    ])
    sample = {"tcp.srcport": 80, "tcp.dstport": 1, "ip.src": "10.0.0.1", "ip.dst": "::1",
              "tcp.payload": b"a", "_raw": b"a", "http.request.method": "GET"}

    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.lists(pieces, max_size=8).map(" ".join), st.text(max_size=40)))
    def check(expr: str) -> None:
        try:
            predicate = compile_filter(expr)
        except InputError as exc:
            assert str(exc).startswith("-Y: ")
            return
        assert predicate(sample) in (True, False)
        assert predicate({}) in (True, False)

    check()
