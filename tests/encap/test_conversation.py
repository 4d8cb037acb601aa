"""The synthesizer's TCP bookkeeping, checked by parsing its packets back (no files)."""

from __future__ import annotations

from tcplab.encap import build
from tcplab.encap.conversation import EncapOptions
from tcplab.encap.csv_input import Message
from tcplab.packet import ipv4, tcp, udp
from tcplab.packet.checksum import verify_ipv4_header
from tests.packet.test_golden import GOLDEN_FRAME


def msg(mid: int, src: str, dst: str, text: str, proto: str = "HTTP", **kw: object) -> Message:
    return Message(str(mid), proto, src, dst, text.encode(), None, line=mid + 1, **kw)  # type: ignore[arg-type]


def parsed(messages: list[Message], **opts: object) -> list[tuple[ipv4.IPv4Header, tcp.TCPHeader, bytes]]:
    out = []
    for e in build(messages, EncapOptions(seed=1, **opts)):  # type: ignore[arg-type]
        ip = ipv4.parse(e.packet)
        assert verify_ipv4_header(e.packet[:20]).good
        t = tcp.parse(e.packet, 20)
        assert tcp.verify_checksum(ip.src, ip.dst, e.packet[20:]).good
        out.append((ip, t, e.packet[20 + t.header_length :]))
    return out


def test_seed_style_is_byte_exact_with_the_report() -> None:
    m = msg(1, "client_browser", "web_server", "GET /blog HTTP/1.1")
    [e] = list(build([m], EncapOptions(style="seed", client_port=5074, server_port=12345)))
    assert e.packet == GOLDEN_FRAME[4:]
    assert e.msg_id == "1"


def test_seed_style_response_travels_on_reversed_ports() -> None:
    pk = parsed([msg(1, "client_browser", "web_server", "GET / HTTP/1.1"),
                 msg(2, "web_server", "client_browser", "HTTP/1.1 200 OK")], style="seed")
    assert [(t.src_port, t.dst_port, t.seq, t.ack, t.flags) for _, t, _ in pk] == [
        (12345, 80, 0, 0, tcp.PSH | tcp.ACK), (80, 12345, 0, 0, tcp.PSH | tcp.ACK)]
    assert all(ip.identification == 1 and not ip.df for ip, _, _ in pk)


def test_stream_style_handshake_data_acks_and_teardown() -> None:
    pk = parsed([msg(1, "client_browser", "web_server", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                 msg(2, "web_server", "client_browser", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")])
    flags = [tcp.flags_text(t.flags) for _, t, _ in pk]
    # The client's FIN+ACK also acknowledges the response, so no separate pure ACK.
    assert flags == ["SYN", "SYN, ACK", "ACK", "PSH, ACK", "PSH, ACK", "FIN, ACK", "FIN, ACK", "ACK"]
    syn, synack = pk[0][1], pk[1][1]
    assert syn.option(tcp.OPT_MSS).value == 1460 and synack.option(tcp.OPT_WSCALE).value == 7
    assert synack.ack == syn.seq + 1
    req, resp = pk[3], pk[4]
    assert req[1].seq == syn.seq + 1 and req[1].ack == synack.seq + 1
    # The response piggybacks the ACK of the request.
    assert resp[1].ack == req[1].seq + len(req[2])
    assert pk[5][1].ack == resp[1].seq + len(resp[2])
    assert all(ip.df for ip, _, _ in pk)
    client_ids = [ip.identification for ip, t, _ in pk if t.src_port == 12345]
    assert client_ids == list(range(client_ids[0], client_ids[0] + len(client_ids)))


def test_stream_splits_large_messages_at_mss_with_psh_on_last() -> None:
    body = "x" * 5000
    pk = parsed([msg(1, "c", "web_server", f"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{body}")], mss=1000)
    data = [(t, p) for _, t, p in pk if p]
    total = sum(len(p) for _, p in data)
    assert [len(p) for _, p in data] == [1000] * 5 + [total - 5000]
    assert [bool(t.flags & tcp.PSH) for t, _ in data] == [False] * 5 + [True]
    assert b"".join(p for _, p in data).endswith(body.encode())


def test_http_framing_adds_terminator_and_length() -> None:
    pk = parsed([msg(1, "c", "web_server", "GET /blog HTTP/1.1"),
                 msg(2, "web_server", "c", "HTTP/1.1 200 OK\nContent-Type: text/plain\n\nhello")])
    payloads = [p for _, _, p in pk if p]
    assert payloads[0] == b"GET /blog HTTP/1.1\r\n\r\n"
    assert payloads[1] == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


def test_new_src_port_means_new_connection_and_explicit_ports_are_used() -> None:
    pk = parsed([msg(1, "c", "s", "a", proto="CHAT", src_port=50000, dst_port=5000),
                 msg(2, "s", "c", "b", proto="CHAT", src_port=5000, dst_port=50000),
                 msg(3, "c", "s", "c", proto="CHAT", src_port=50001, dst_port=5000)])
    syns = [(t.src_port, t.dst_port) for _, t, _ in pk if t.flags == tcp.SYN]
    assert syns == [(50000, 5000), (50001, 5000)]


def test_connection_per_message_and_second_client_gets_next_port() -> None:
    pk = parsed([msg(1, "c", "web_server", "GET /a HTTP/1.1"), msg(2, "web_server", "c", "HTTP/1.1 200 OK"),
                 msg(3, "c", "web_server", "GET /b HTTP/1.1"), msg(4, "other", "web_server", "GET / HTTP/1.1")],
                connection_per_message=True)
    syns = [(t.src_port, t.dst_port) for _, t, _ in pk if t.flags == tcp.SYN]
    assert syns == [(12345, 80), (12346, 80), (12347, 80)]


def test_control_rows_drive_the_handshake_without_duplicates() -> None:
    pk = parsed([msg(1, "c", "s", "SYN", proto="TCP", control="SYN"),
                 msg(2, "s", "c", "SYN-ACK", proto="TCP", control="SYN-ACK"),
                 msg(3, "c", "s", "ACK", proto="TCP", control="ACK"),
                 msg(4, "c", "s", "hello", proto="CHAT"),
                 msg(5, "c", "s", "FIN", proto="TCP", control="FIN"),
                 msg(6, "s", "c", "FIN-ACK", proto="TCP", control="FIN-ACK")])
    flags = [tcp.flags_text(t.flags) for _, t, _ in pk]
    assert flags == ["SYN", "SYN, ACK", "ACK", "PSH, ACK", "FIN, ACK", "FIN, ACK", "ACK"]


def test_dns_rows_become_real_dns_over_udp() -> None:
    out = list(build([msg(1, "client_browser", "dns_server", "Query: shop.example.com", proto="DNS"),
                      msg(2, "dns_server", "client_browser", "Response: shop.example.com -> 93.184.216.34",
                          proto="DNS")], EncapOptions(seed=3)))
    assert len(out) == 2
    q, r = (udp.parse(e.packet, 20) for e in out)
    assert (q.dst_port, r.src_port) == (53, 53)
    assert out[0].packet[28:30] == out[1].packet[28:30]  # same transaction ID
    assert out[1].packet.endswith(bytes([93, 184, 216, 34]))


def test_timestamps_strictly_increase_even_when_csv_repeats_them() -> None:
    ms = [Message(str(i), "HTTP", "c" if i % 2 else "web_server", "web_server" if i % 2 else "c",
                  b"GET / HTTP/1.1" if i % 2 else b"HTTP/1.1 200 OK", 1.0) for i in range(1, 7)]
    stamps = [e.timestamp_ns for e in build(ms, EncapOptions(seed=1))]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_handshake_before_a_message_at_time_zero_never_goes_negative() -> None:
    m = Message("1", "HTTP", "c", "web_server", b"GET / HTTP/1.1", 0.0)
    stamps = [e.timestamp_ns for e in build([m], EncapOptions(seed=1, start_time=0.0))]
    assert min(stamps) >= 0 and stamps == sorted(stamps)


def test_client_ports_never_land_on_a_server_port() -> None:
    ms = [msg(1, "client_browser", "dns_server", "Query: shop.example.com", proto="DNS"),
          msg(2, "client_browser", "web_server", "GET / HTTP/1.1"),
          msg(3, "other_client", "web_server", "GET / HTTP/1.1")]
    out = list(build(ms, EncapOptions(seed=1, client_port=47911, server_port=47912)))
    pairs = {(int.from_bytes(e.packet[20:22], "big"), int.from_bytes(e.packet[22:24], "big")) for e in out}
    assert (47911, 53) in pairs and (47913, 47912) in pairs and (47914, 47912) in pairs
    assert all(a != b for a, b in pairs)


def test_csv_times_are_kept_exactly_whatever_the_start_time() -> None:
    start = 1_795_575_682.498811  # a "now" whose float cannot hold its microseconds exactly
    ms = [Message("1", "HTTP", "c", "web_server", b"GET / HTTP/1.1\r\n\r\n", 0.0),
          Message("2", "HTTP", "web_server", "c", b"HTTP/1.1 204 No Content\r\n\r\n", 0.266)]
    data = [e for e in build(ms, EncapOptions(seed=1, start_time=start)) if e.msg_id]
    assert data[1].timestamp_ns - data[0].timestamp_ns == 266_000_000
    handshake = [e.timestamp_ns for e in build(ms, EncapOptions(seed=1, start_time=start))][:4]
    assert [b - a for a, b in zip(handshake, handshake[1:])] == [50_000, 50_000, 50_000]
