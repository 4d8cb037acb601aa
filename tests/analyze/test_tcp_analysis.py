"""TCP analysis on hand-built conversations: every tag on the frame Wireshark 4.0 puts it.

The expectations were confirmed with tshark 4.0.17 (the same captures are compared field
by field in tests/oracle/test_analyze_vs_tshark.py); this file keeps them checkable
without tshark installed.
"""

from __future__ import annotations

from tcplab.analyze import analyze
from tcplab.analyze.tcp_analysis import COMPLETENESS_DATA, completeness_text
from tests.analyze import scenarios

EXPECTED_TAGS = {
    6: {"lost_segment"},
    7: {"duplicate_ack"},
    8: {"duplicate_ack"},
    9: {"duplicate_ack"},
    10: {"fast_retransmission", "retransmission"},
    13: {"retransmission"},
    15: {"lost_segment"},
    16: {"out_of_order"},
    19: {"zero_window"},
    20: {"zero_window_probe"},
    21: {"zero_window_probe_ack", "zero_window"},
    22: {"window_update"},
    27: {"keep_alive"},
    28: {"keep_alive_ack"},
    29: {"ack_lost_segment"},
    30: {"spurious_retransmission", "lost_segment", "retransmission"},
    32: {"ack_lost_segment"},
    34: {"reused_ports"},
}


def tags(d: dict) -> set[str]:
    return {k.rsplit(".", 1)[1] for k, v in d.items() if k.startswith("tcp.analysis.") and v is True}


def test_every_analysis_tag_lands_on_its_frame(tmp_path):
    path = scenarios.anomalies().write(str(tmp_path / "anomalies.pcap"))
    packets = list(analyze(path))
    assert len(packets) == 37
    for d in packets:
        assert tags(d) == EXPECTED_TAGS.get(d["frame.number"], set()), d["_ws.col.Info"]
    dup = {d["frame.number"]: (d["tcp.analysis.duplicate_ack_frame"], d["tcp.analysis.duplicate_ack_num"])
           for d in packets if "tcp.analysis.duplicate_ack_num" in d}
    assert dup == {7: (5, 1), 8: (5, 2), 9: (5, 3)}
    assert packets[6]["_ws.col.Info"].startswith("[TCP Dup ACK 5#1] 80 → 40000 [ACK]")
    assert packets[15]["_ws.col.Info"].startswith("[TCP Out-Of-Order] 40000 → 80 [PSH, ACK] Seq=351")


def test_streams_relative_numbers_window_scaling_and_completeness(tmp_path):
    packets = list(analyze(scenarios.anomalies().write(str(tmp_path / "a.pcap"))))
    syn, synack, ack = packets[:3]
    assert (syn["tcp.seq"], syn["tcp.seq_raw"], syn["tcp.window_size"]) == (0, 1000, 64240)
    assert (synack["tcp.seq"], synack["tcp.ack"]) == (0, 1)
    # The client offered WS=128, so its later windows are scaled by 2^7.
    assert ack["tcp.window_size_value"] == 502 and ack["tcp.window_size"] == 502 * 128
    assert {d["tcp.stream"] for d in packets[:33]} == {0}
    assert {d["tcp.stream"] for d in packets[33:]} == {1}
    assert {d["tcp.completeness"] for d in packets[:33]} == {31}
    assert {d["tcp.completeness"] for d in packets[33:]} == {39}
    assert completeness_text(31) == "Complete, WITH_DATA (31)"
    # The words tshark 4.0 uses in its detail view.
    assert completeness_text(39) == "Complete, NO_DATA (39)"
    assert completeness_text(40) == "Incomplete (40)"
    assert completeness_text(COMPLETENESS_DATA | 7) == "Incomplete, DATA (15)"
    assert completeness_text(3) == "Incomplete, CLIENT_ESTABLISHED (3)"


def test_window_full(tmp_path):
    packets = list(analyze(scenarios.window_full().write(str(tmp_path / "wf.pcap"))))
    assert [d["frame.number"] for d in packets if d.get("tcp.analysis.window_full")] == [4]
    assert packets[3]["_ws.col.Info"].startswith("[TCP Window Full] 8080 → 41000")


def test_one_pass_gives_running_values(tmp_path):
    path = scenarios.window_full().write(str(tmp_path / "wf.pcap"))
    running = [d["tcp.completeness"] for d in analyze(path, two_pass=False)]
    # Each frame shows the bits of the frames before it, as tshark's one pass does.
    assert running == [0, 1, 3, 7, 15, 15, 31, 31]


def test_memory_is_per_conversation_not_per_packet(tmp_path):
    from tcplab.analyze import Analyzer
    from tcplab.packet import link

    b = scenarios.Builder()
    for i in range(3000):
        b.seg(scenarios.A, scenarios.B, 40000, 80, 1 + i * 10, 1, scenarios.PA, b"x" * 10)
    a = Analyzer(link.LINKTYPE_RAW)
    for ts, pkt in b.frames:
        a.feed_frame(pkt, ts)
    assert len(a.tracker.conversations) == 1 and len(a.tracker._table) == 2


def _segments(path: str, monkeypatch) -> list[tuple]:
    """The arguments the analyzer hands the tracker for every TCP segment of ``path``."""
    from tcplab.analyze.tcp_analysis import TcpTracker

    calls: list[tuple] = []
    original = TcpTracker.step

    def spy(self, *args):
        calls.append(args)
        return original(self, *args)

    with monkeypatch.context() as m:
        m.setattr(TcpTracker, "step", spy)
        list(analyze(path, two_pass=False, checksums=False, payload=False))
    return calls


def _state(obj) -> tuple:
    return tuple(getattr(obj, name) for name in type(obj).__slots__ if name not in ("a", "b"))


def test_in_order_shortcut_equals_the_full_rules(tmp_path, monkeypatch):
    """TcpTracker.step's in-order shortcut leaves the same flags and state as _step."""
    from tcplab.analyze.tcp_analysis import TcpTracker

    captures = [scenarios.anomalies(), scenarios.window_full()]
    captures += [scenarios.random_conversations(seed, 500) for seed in range(8)]
    captures += [scenarios.lossy_connections(seed, 10) for seed in range(8)]
    shortcuts = total = 0
    for i, builder in enumerate(captures):
        segments = _segments(builder.write(str(tmp_path / f"c{i}.pcap")), monkeypatch)
        fast, full = TcpTracker(), TcpTracker()
        taken = [0]
        slow_step = fast._step

        def counted(*args, slow_step=slow_step, taken=taken):
            taken[0] += 1
            return slow_step(*args)

        fast._step = counted
        for args in segments:
            got, want = fast.step(*args), full._step(*args)
            assert got[0] == want[0], f"capture {i} frame {args[0]}: flags differ"
            for a, b in zip(got[1:], want[1:], strict=True):
                assert _state(a) == _state(b), f"capture {i} frame {args[0]}: state differs"
        total += len(segments)
        shortcuts += len(segments) - taken[0]
    # The lossy captures are mostly in-order traffic: the shortcut must carry a good share.
    assert shortcuts > total // 4, (shortcuts, total)
