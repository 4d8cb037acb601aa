"""Display filters compiled over records answer exactly as over the Wireshark field dicts.

A filter test on a field a fast-path record holds reads the record's own getter
(:func:`tcplab.analyze.record.held_field`) and an analysis flag its bits, instead of the
mapping; this holds those shortcuts to the dict path on every golden capture, for the
shapes of test they take (one field, a two-field virtual such as ``tcp.port``, a flag,
each operator they serve) and for the ones that fall back to the mapping.
"""

from __future__ import annotations

import pytest

from tcplab.analyze import analyze, record
from tcplab.analyze import filter as display_filter
from tcplab.analyze.session import AnalysisSession
from tests.analyze.golden.make_golden import HERE as GOLDEN

CAPTURES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng")
                  and not p.name.startswith("cut"))  # damaged: the session tests cover it

EXPRESSIONS = (
    "tcp.flags.reset == 1 || tcp.analysis.retransmission",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission",
    "tcp.analysis.duplicate_ack && !tcp.analysis.window_update",
    "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.out_of_order",
    "tcp.port == 80",
    "tcp.port != 80",
    "tcp.srcport > 1024 && tcp.len >= 1",
    "tcp.len > 0 && tcp.stream <= 1",
    "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "tcp.window_size < 1000",
    "tcp.seq == 1",
    "ip.src == 10.0.0.1",
    'http.request.method == "GET"',
    "http.response.code == 200",
    "tcp.completeness == 31",
    "frame.len != 60",
    "udp.srcport == 53 || tcp.dstport == 53",
    # joined into one generated function: negation, three parts, a part without source
    "!(tcp.flags.push == 1) && tcp && ip",
    "tcp.flags.fin == 1 || tcp.flags.syn == 1 || tcp.flags.reset == 1",
    "tcp.port == 80 && !http.request",
    "!tcp.analysis.retransmission && tcp.len && frame",
    "tcp.ack_raw > 1000 || (tcp.nxtseq == 1 && tcp.window_size_value != 0)",
    "ip.src == 10.0.0.1 || !(tcp.srcport < 1024 || tcp.urgent_pointer != 0)",
)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_record_filters_equal_dict_filters(path):
    dicts = list(analyze(path, two_pass=False))
    records = list(AnalysisSession(path, two_pass=False, payload=True).packets())
    assert len(records) == len(dicts)
    bare = sum(1 for p in records if p._fields is None)
    for expr in EXPRESSIONS:
        keep = display_filter.compile_filter(expr)
        want = [d["frame.number"] for d in dicts if keep(d)]
        got = [p.number for p in records if keep(p)]
        assert got == want, expr
    # Every expression above reads held fields only: the fast-path records were tested
    # bare (through the shortcuts), none had its dict rendered by the filter.
    assert sum(1 for p in records if p._fields is None) == bare
    if path.stem in ("mixed_eth", "anomalies_eth", "lossy_eth", "encap_seed"):
        assert bare > len(records) // 2  # so the shortcuts were what the test above tested


def test_held_fields_and_flag_bits():
    assert record.held_field("tcp.srcport") is not None
    assert record.held_field("eth.src") is None  # not held: the filter uses the mapping
    assert record.analysis_bits("tcp.analysis.retransmission") == record.RETRANSMITTED
    assert record.analysis_bits("tcp.flags.syn") is None


def test_common_filters_compile_to_one_generated_function():
    keep = display_filter.compile_filter("tcp.flags.reset == 1 || tcp.analysis.retransmission")
    assert keep.general.on_record[0] == (
        f"(((p.flags >> 2 & 1) == 1) or (p.aflags & {record.RETRANSMITTED} != 0))")
    assert keep.expression.startswith("tcp.flags.reset")
    mixed = display_filter.compile_filter('tcp.len > 0 && http.request.method == "GET"')
    assert hasattr(mixed, "general")  # the test on text is called from the generated code
    only_text = display_filter.compile_filter('http.request.method == "GET"')
    assert not hasattr(only_text, "general")  # nothing to generate: the closure itself


def test_deepest_negation_answers_as_over_dicts():
    deep = "!" * display_filter.MAX_NESTING + "tcp.len == 0"
    keep = display_filter.compile_filter(deep)
    assert hasattr(keep, "general")
    path = next(p for p in CAPTURES if p.stem == "mixed_eth")
    want = [d["frame.number"] for d in analyze(path, two_pass=False) if keep(d)]
    got = [p.number for p in AnalysisSession(path, two_pass=False).packets() if keep(p)]
    assert got == want and got


def test_source_python_cannot_compile_keeps_the_closures():
    def pred(d):
        return True

    display_filter._on_record(pred, "(" * 300 + "p.seglen" + ")" * 300)
    assert display_filter._generated(pred) is pred


# Every held field and analysis flag, so that a record tested inside the analyzer's loop
# (before the rest of it is made) is shown to hold whatever such a filter can read.
HELD_ONLY = (
    *(f"{name} >= 0" for name in record._HELD_SOURCE),
    *(f"{name}" for name in record._FLAG_BITS),
)


@pytest.mark.parametrize("two_pass", [False, True], ids=["one_pass", "two_pass"])
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_filter_in_the_loop_keeps_what_whole_records_keep(path, two_pass):
    # -c counts frames read, matching or not, on either side of the test (and the first
    # pass of -2 reads no more than that either)
    for limit in (None, 7):
        records = list(AnalysisSession(path, two_pass=two_pass, max_packets=limit).packets())
        lines = [p.list_line() for p in records]
        for expr in (*EXPRESSIONS, *HELD_ONLY):
            keep = display_filter.compile_filter(expr)
            want = [line for p, line in zip(records, lines, strict=True) if keep(p)]
            session = AnalysisSession(path, two_pass=two_pass, display_filter=expr,
                                      max_packets=limit)
            assert list(session.list_lines()) == want, (expr, limit)


def test_only_filters_on_held_fields_run_in_the_loop():
    held = ("tcp.flags.reset == 1 || tcp.analysis.retransmission", "tcp.port != 80",
            "!(tcp.flags.push == 1) && tcp && ip", "tcp.seq == 1 && tcp.window_size < 1000")
    for expr in held:
        assert display_filter.reads_held_only(display_filter.compile_filter(expr)), expr
    # a part without source (text, an address, an HTTP field) is a call: whole records
    for expr in ('http.request.method == "GET"', "ip.src == 10.0.0.1 || tcp.len > 0",
                 "tcp.port == 80 && !http.request", "udp.srcport == 53"):
        assert not display_filter.reads_held_only(display_filter.compile_filter(expr)), expr
    assert not display_filter.reads_held_only(lambda p: True)  # a caller's own predicate
