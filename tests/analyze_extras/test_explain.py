"""Explanations are generated from the packets: numbers, ports and frames come from the capture."""

from __future__ import annotations

import json

import pytest

from tcplab.analyze import explain as ex
from tests.analyze_extras.captures import mixed_packets, tshark_dicts, write_pcap
from tests.support import require_tshark


def seg(n: int, t: float, src: str, sport: int, dst: str, dport: int, flags: int, *,
        seq: int = 1, seq_raw: int = 0, ack_raw: int = 0, length: int = 0, stream: int = 0,
        **extra) -> dict:
    d = {"frame.number": n, "frame.time_relative": t, "ip.src": src, "ip.dst": dst,
         "tcp.stream": stream, "tcp.srcport": sport, "tcp.dstport": dport, "tcp.flags": flags,
         "tcp.seq": seq, "tcp.seq_raw": seq_raw, "tcp.ack": 1, "tcp.ack_raw": ack_raw,
         "tcp.len": length, "frame.len": 44 + length, "_ws.col.Protocol": "TCP"}
    d.update(extra)
    return d


def seed_like(port: int, count: int, lo: str = "127.0.0.1") -> list[dict]:
    """The report's capture: PSH+ACK data with raw seq 0, each answered by RST."""
    out = []
    for i in range(count):
        data = seg(2 * i + 1, i * 0.1, lo, 5074, lo, port, 0x18, length=15 + i,
                   **({"tcp.analysis.retransmission": True} if i else {}))
        rst = seg(2 * i + 2, i * 0.1 + 0.00004, lo, port, lo, 5074, 0x04)
        out += [data, rst]
    return out


def text_of(packets: list[dict]) -> str:
    return "\n".join(ex.explain(packets))


def test_seed_pattern_explained_with_its_own_numbers() -> None:
    notes = {n.topic: n for n in ex.explain_notes(seed_like(12345, 4))}
    rst = notes["no_handshake_rst"]
    assert "127.0.0.1:5074 sent 4 data segments (15–18 bytes, flags [PSH, ACK])" in rst.text
    assert "answered by a RST from port 12345 (frames 2, 4, 6, 8, on average 0.040 ms later)" in rst.text
    assert "nothing is listening on port 12345" in rst.text
    assert "raw 0" in rst.text and "Seq=1" in rst.text
    assert rst.frames == [2, 4, 6, 8]
    retrans = notes["retransmission"]
    assert retrans.text.startswith("3 segments are marked [TCP Retransmission] (frames 3, 5, 7)")
    assert "same raw sequence number 0" in retrans.text
    assert "lengths differ (15, 16, 17, 18 bytes)" in retrans.text
    flags = notes["flags"].text
    assert "[PSH, ACK] on 4 segments (frames 1, 3, 5, 7)" in flags
    assert "[RST] on 4 segments (frames 2, 4, 6, 8)" in flags
    assert "PSH (push)" in flags and "RST (reset)" in flags
    assert "SYN (synchronize)" not in flags and "FIN says" not in flags  # not seen, not said


def test_text_follows_the_capture_not_a_template() -> None:
    a, b = text_of(seed_like(12345, 3)), text_of(seed_like(8080, 5))
    assert "port 8080" in b and "port 12345" not in b
    assert "3 data segments" in a and "5 data segments" in b
    assert a != b


def test_clean_conversation_has_no_alarm() -> None:
    c, s = "10.0.0.1", "10.0.0.2"
    packets = [
        seg(1, 0.0, c, 4000, s, 80, 0x02, seq=0), seg(2, 0.001, s, 80, c, 4000, 0x12, seq=0),
        seg(3, 0.002, c, 4000, s, 80, 0x10), seg(4, 0.003, c, 4000, s, 80, 0x18, length=10),
        seg(5, 0.004, s, 80, c, 4000, 0x10), seg(6, 0.005, c, 4000, s, 80, 0x11, seq=11),
        seg(7, 0.006, s, 80, c, 4000, 0x11), seg(8, 0.007, c, 4000, s, 80, 0x10, seq=12),
    ]
    for d in packets:
        d["tcp.completeness"] = 31
    notes = ex.explain_notes(packets)
    topics = [n.topic for n in notes]
    assert topics == ["overview", "flags", "handshake", "completeness"]
    handshake = notes[2].text
    assert "stream 0: 10.0.0.1:4000 sent SYN, 10.0.0.2:80 answered SYN-ACK" in handshake
    assert "(frames 1, 2, 3)" in handshake and "closed with FIN from both sides" in handshake
    assert "RST" not in "\n".join(n.text for n in notes if n.topic not in ("flags", "completeness"))
    assert "RST (reset)" not in notes[1].text
    assert notes[3].text == "The TCP conversation is complete: handshake, then FIN or RST."


def test_refused_connection() -> None:
    packets = [seg(1, 0, "10.0.0.1", 5000, "10.0.0.2", 9, 0x02, seq=0),
               seg(2, 0.001, "10.0.0.2", 9, "10.0.0.1", 5000, 0x14)]
    (note,) = [n for n in ex.explain_notes(packets) if n.topic == "refused"]
    assert "1 connection attempt got RST instead of SYN-ACK (port 9; frame 2)" in note.text


def test_checksums_on_loopback_are_offload_elsewhere_a_warning() -> None:
    lo = seg(1, 0, "127.0.0.1", 1, "127.0.0.1", 2, 0x18, length=3, **{"tcp.checksum.status": "bad"})
    far = seg(2, 0, "10.0.0.1", 1, "10.0.0.2", 2, 0x18, length=3, stream=1,
              **{"tcp.checksum.status": "bad"})
    ok = seg(3, 0, "10.0.0.1", 1, "10.0.0.2", 2, 0x10, stream=1, **{"tcp.checksum.status": "good"})
    (only_lo,) = [n for n in ex.explain_notes([lo, ok]) if n.topic == "checksum_tcp"]
    assert "1 TCP checksum is wrong (frame 1), all on loopback" in only_lo.text
    assert "checksum offload" in only_lo.text
    (mixed,) = [n for n in ex.explain_notes([lo, far, ok]) if n.topic == "checksum_tcp"]
    assert "2 TCP checksums are wrong (frames 1, 2); 1 of them on non-loopback" in mixed.text
    assert "corruption" in mixed.text
    assert not [n for n in ex.explain_notes([ok]) if n.topic.startswith("checksum")]


def test_analysis_tags_each_get_a_note() -> None:
    base = dict(src="10.0.0.2", sport=80, dst="10.0.0.1", dport=4000)
    packets = [
        seg(1, 0, *base.values(), 0x10, **{"tcp.analysis.zero_window": True}),
        seg(2, 0, *base.values(), 0x10, **{"tcp.analysis.window_update": True}),
        seg(3, 0, *base.values(), 0x10, **{"tcp.analysis.duplicate_ack": True}),
        seg(4, 0, *base.values(), 0x10, **{"tcp.analysis.lost_segment": True}),
        seg(5, 0, *base.values(), 0x10, **{"tcp.analysis.out_of_order": True}),
        seg(6, 0, *base.values(), 0x10, **{"tcp.analysis.keep_alive": True}),
        seg(7, 0, *base.values(), 0x10, **{"tcp.analysis.ack_lost_segment": True}),
    ]
    notes = {n.topic: n.text for n in ex.explain_notes(packets)}
    assert notes["zero_window"].startswith("[TCP ZeroWindow] on 1 segment in stream 0 (frame 1)")
    assert "window update (frame 2)" in notes["zero_window"]
    assert "[TCP Dup ACK] on 1 segment" in notes["duplicate_ack"]
    assert "[TCP Previous segment not captured]" in notes["lost_segment"]
    assert "[TCP Out-Of-Order]" in notes["out_of_order"]
    assert "[TCP Keep-Alive]" in notes["keep_alive"]
    assert "[TCP ACKed unseen segment]" in notes["ack_lost_segment"]


def test_chat_http_and_malformed() -> None:
    chat = seg(1, 0, "127.0.0.1", 41000, "127.0.0.1", 55555, 0x18, length=12,
               **{"_ws.col.Protocol": "CHAT", "_ws.col.Info": "Alice → hi\x1b[2J"})
    get = seg(2, 0, "127.0.0.1", 1, "127.0.0.1", 80, 0x18, length=18, stream=1,
              **{"http.request.method": "GET", "http.request.uri": "/app.js",
                 "frame.comment": "msg_id=75"})
    r304 = seg(3, 0, "127.0.0.1", 80, "127.0.0.1", 1, 0x18, length=18, stream=1,
               **{"http.response.code": 304, "http.response.phrase": "Not Modified",
                  "frame.comment": "msg_id=76"})
    bad = {"frame.number": 4, "_ws.malformed": "IPv4 header length 60 > 20 bytes captured"}
    notes = {n.topic: n.text for n in ex.explain_notes([chat, get, r304, bad])}
    assert "tcplab chat protocol on port 55555 (1 client): 1 line from clients" in notes["chat"]
    assert "and 0 from the server to clients" in notes["chat"]
    assert "'Alice → hi\\x1b[2J'" in notes["chat"] and "\x1b" not in notes["chat"]
    assert "304 (frame 3, CSV msg_id 76, answering GET /app.js): the client's cached copy" \
        in notes["http"]
    assert "1 packet is malformed (frame 4): IPv4 header length 60 > 20 bytes captured (1)" \
        in notes["malformed"]


def test_empty_and_json() -> None:
    assert ex.explain([]) == ["The capture holds no packets: there is nothing to explain."]
    obj = ex.to_json(ex.explain_notes(seed_like(12345, 2)))
    assert obj["summary"] == "explain"
    assert {n["topic"] for n in obj["notes"]} >= {"overview", "flags", "no_handshake_rst"}
    json.dumps(obj)


def test_frame_lists_are_bounded() -> None:
    text = text_of(seed_like(12345, 200))
    assert "(199 in all)" in text
    assert max(len(p) for p in ex.explain(seed_like(12345, 200))) < 3000


def test_against_tshark_dissection(tmp_path) -> None:
    """The crafted capture's anomalies, as tshark sees them, all get explained."""
    require_tshark()
    packets = tshark_dicts(write_pcap(tmp_path / "m.pcap", mixed_packets()))
    notes = {n.topic: n for n in ex.explain_notes(packets)}
    assert {"no_handshake_rst", "retransmission", "zero_window", "duplicate_ack",
            "window_update", "checksum_tcp", "completeness", "http", "handshake"} <= set(notes)
    assert notes["no_handshake_rst"].frames == [10, 12, 14]
    assert notes["retransmission"].frames == [11, 13]
    assert notes["checksum_tcp"].frames == [20]
    assert notes["duplicate_ack"].frames == [24, 25, 26]


@pytest.mark.parametrize("value", ["bad", "Bad", 0])
def test_bad_checksum_spellings(value: object) -> None:
    d = seg(1, 0, "127.0.0.1", 1, "127.0.0.1", 2, 0x10, **{"tcp.checksum.status": value})
    assert any(n.topic == "checksum_tcp" for n in ex.explain_notes([d]))


def test_unanswered_http_request_is_mentioned() -> None:
    get = seg(1, 0, "127.0.0.1", 5074, "127.0.0.1", 12345, 0x18, length=18,
              **{"http.request.method": "GET", "http.request.uri": "/blog"})
    rst = seg(2, 0.00004, "127.0.0.1", 12345, "127.0.0.1", 5074, 0x04)
    (note,) = [n for n in ex.explain_notes([get, rst]) if n.topic == "http"]
    assert "1 request got no response in the capture (frame 1 (GET /blog))" in note.text


def test_reset_after_handshake_and_chat_examples_prefer_messages() -> None:
    c, s = "127.0.0.1", "127.0.0.1"
    chat = {"_ws.col.Protocol": "CHAT"}
    packets = [
        seg(1, 0.0, c, 53922, s, 55555, 0x02, seq=0), seg(2, 0.001, s, 55555, c, 53922, 0x12, seq=0),
        seg(3, 0.002, c, 53922, s, 55555, 0x10),
        seg(4, 0.003, c, 53922, s, 55555, 0x18, length=6, **chat, **{"_ws.col.Info": "Alice"}),
        seg(5, 0.004, s, 55555, c, 53922, 0x18, length=20, **chat,
            **{"_ws.col.Info": "online: Alice"}),
        seg(6, 0.005, c, 53922, s, 55555, 0x18, length=10, **chat,
            **{"_ws.col.Info": "Bob → hello"}),
        seg(7, 0.300, c, 53922, s, 55555, 0x14),
    ]
    notes = {n.topic: n for n in ex.explain_notes(packets)}
    reset = notes["reset"]
    assert reset.text.startswith("1 conversation ended with RST rather than a FIN exchange, "
                                 "sent by the client side (frame 7)")
    assert "Examples: 'Bob → hello'; 'Alice'; 'online: Alice'" in notes["chat"].text
    assert "2 lines from clients to the server and 1 from the server" in notes["chat"].text


def test_syn_options_are_explained_from_the_syn() -> None:
    c, s = "10.0.0.1", "10.0.0.2"
    syn = seg(1, 0.0, c, 4000, s, 80, 0x02, seq=0, **{
        "tcp.options.mss_val": 1460, "tcp.options.wscale.shift": 7,
        "tcp.options.wscale.multiplier": 128, "tcp.options.sack_perm": True})
    packets = [syn, seg(2, 0.001, s, 80, c, 4000, 0x12, seq=0), seg(3, 0.002, c, 4000, s, 80, 0x10)]
    (note,) = [n for n in ex.explain_notes(packets) if n.topic == "syn_options"]
    assert note.text.startswith("The opening SYN of stream 0 (frame 1) also negotiates: MSS 1460")
    assert "window scale 7 (advertised windows count in units of 128 bytes" in note.text
    assert "SACK permitted" in note.text and "timestamps (" not in note.text
    assert not [n for n in ex.explain_notes(packets[1:]) if n.topic == "syn_options"]
