"""The analysis session: one read gives every view, the same as each view on its own.

These are the promises other callers (the report, scripts) build on: what a Run yields
and summarises equals the single-view shortcuts and the per-packet field dicts of
:func:`tcplab.analyze.analyze`; a two-pass session that skips its first pass for
summary-only views gives tshark -2's completeness anyway; damage is reported after every
good packet; a frame asked for is kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.analyze import (
    CaptureDamage,
    analyze,
    conversations,
    explain,
    flow,
    http_summary,
    render,
)
from tcplab.analyze import filter as display_filter
from tcplab.analyze.session import AnalysisSession
from tcplab.errors import InputError
from tests.analyze.golden.make_golden import HERE as GOLDEN

CAPTURES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng")
                  and not p.name.startswith("cut"))


def _conv_json(result):
    return conversations.to_json(result)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_one_run_equals_each_view_alone(path):
    session = AnalysisSession(path)
    streams = sorted({d["tcp.stream"] for d in analyze(path) if "tcp.stream" in d})
    run = session.run(conversations=True, http=True, explain=True, flows=streams[:2],
                      frames=[1, 3])
    packets = list(run)
    dicts = list(analyze(path))  # frames asked for: payload bytes kept, as here
    assert [p.fields() == d for p, d in zip(packets, dicts, strict=True)] == [True] * len(dicts)
    assert run.done and run.damage is None
    assert _conv_json(run.conversations) == _conv_json(conversations.summarize(dicts))
    assert _conv_json(run.conversations) == _conv_json(session.conversations())
    assert http_summary.to_json(run.http) == http_summary.to_json(http_summary.summarize(dicts))
    assert http_summary.to_json(run.http) == http_summary.to_json(session.http())
    assert explain.to_json(run.notes) == explain.to_json(explain.explain_notes(dicts))
    assert explain.to_json(run.notes) == explain.to_json(session.explanations())
    for s in streams[:2]:
        assert run.flows[s] == flow.build_flow(dicts, s) == session.flow(s)
    assert set(run.frames) == {1, 3} & {p.number for p in packets}
    assert session.detail(1) == render.detail_tree(next(analyze(path)))
    assert session.hexdump(1) == render.hexdump(next(analyze(path))["_raw"])
    assert session.json(1, payload=True) == render.json_line(next(analyze(path)), payload=True)
    one_pass = AnalysisSession(path, two_pass=False)
    assert list(one_pass.list_lines()) == [render.packet_line(d)
                                           for d in analyze(path, two_pass=False)]


def test_summary_views_skip_the_first_pass_and_still_show_final_completeness():
    # Streams of one frame (a lone SYN, a lone data segment) are where the one read's
    # running value and tshark -2's differ.
    path = GOLDEN / "extras_shapes.pcap"
    want = conversations.summarize(analyze(path))
    run = AnalysisSession(path).run(conversations=True, per_packet=False)
    assert run._fix_completeness  # the summary-only read took one pass
    got = run.finish().conversations
    assert _conv_json(got) == _conv_json(want)
    one = AnalysisSession(path, two_pass=False).conversations()
    assert _conv_json(one) != _conv_json(want)  # so the check above can fail
    # One pass: every bit the stream's frames set (the frames themselves show, as tshark's
    # one pass does, the value before their own bits).
    run = AnalysisSession(path, two_pass=False).run(conversations=True)
    run.finish()
    ends = [c.completeness | c.first_bits for c in run._analyzer.tracker.conversations]
    assert [c.completeness for c in one] == ends


def test_display_filter_text_or_predicate():
    path = GOLDEN / "anomalies_eth.pcap"
    expr = "tcp.analysis.retransmission && tcp.port == 80"
    by_text = [p.number for p in AnalysisSession(path, display_filter=expr).packets()]
    compiled = display_filter.compile_filter(expr)
    by_pred = [p.number for p in AnalysisSession(path, display_filter=compiled).packets()]
    assert by_text == by_pred == [10, 13, 30]
    run = AnalysisSession(path, display_filter=expr).run(conversations=True)
    run.finish()
    assert sum(c.packets_ab + c.packets_ba for c in run.conversations) == 3


def test_payload_filters_keep_payload_bytes():
    path = GOLDEN / "mixed_eth.pcap"
    got = [p.number for p in AnalysisSession(path, display_filter='tcp.payload contains "GET"')
           .packets()]
    assert got == [3]


def test_damage_after_good_packets(tmp_path):
    path = GOLDEN / "cut_eth.pcap"
    run = AnalysisSession(path).run(conversations=True)
    packets = list(run)
    assert len(packets) == 36 and isinstance(run.damage, CaptureDamage)
    assert run.damage.packets_read == 36 and run.conversations
    with pytest.raises(CaptureDamage):
        list(AnalysisSession(path).packets())
    with pytest.raises(CaptureDamage):
        AnalysisSession(path).conversations()


def test_errors_are_input_errors(tmp_path):
    path = GOLDEN / "anomalies_eth.pcap"
    with pytest.raises(InputError, match="there is no frame 999"):
        AnalysisSession(path).frame(999)
    with pytest.raises(InputError, match="TCP stream 7 is not in the capture"):
        AnalysisSession(path).flow(7)
    bogus = tmp_path / "not.pcap"
    bogus.write_bytes(b"hello, not a capture")
    with pytest.raises(InputError):
        AnalysisSession(bogus).run()
    with pytest.raises(InputError, match="-Y"):
        AnalysisSession(path, display_filter="tcp.port ==")


def test_a_run_is_read_once():
    run = AnalysisSession(GOLDEN / "anomalies_eth.pcap").run()
    list(run)
    with pytest.raises(RuntimeError):
        list(run)


def test_pipe_is_read_once(tmp_path):
    data = (GOLDEN / "anomalies_eth.pcap").read_bytes()
    fifo = tmp_path / "cap.fifo"
    import os
    import threading

    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: Path(fifo).write_bytes(data))
    writer.start()
    lines = list(AnalysisSession(fifo).list_lines())
    writer.join(10)
    assert lines == [render.packet_line(d)
                     for d in analyze(GOLDEN / "anomalies_eth.pcap", two_pass=False)]
