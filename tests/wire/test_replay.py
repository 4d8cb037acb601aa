"""Replay over real TCP: a complete conversation (completeness 31), every HTTP message, no RST."""

from __future__ import annotations

import os
import socket

import pytest

from tcplab.encap import EncapOptions, build, read_messages
from tcplab.errors import EnvironmentProblem
from tcplab.packet import ipv4, stack, tcp
from tcplab.wire import replay
from tests.support import require_root, tshark
from tests.wire.helpers import free_ports, run_tcplab

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "http_ecommerce.csv")


def _http_messages(path: str) -> int:
    return sum(1 for m in read_messages(path) if m.is_http_request or m.is_http_response)


def test_replay_capture_is_complete_with_every_http_message(tmp_path) -> None:
    require_root()
    client, server = free_ports(2)
    out = str(tmp_path / "replay.pcap")
    proc = run_tcplab("replay", SAMPLE, "--client-port", str(client), "--server-port",
                      str(server), "--capture", out)
    assert proc.returncode == 0, proc.stderr
    assert "real TCP connection" in proc.stdout and f"tcplab analyze {out}" in proc.stdout
    decode = ["-d", f"tcp.port=={server},http"]
    streams = tshark("-r", out, "-T", "fields", "-e", "tcp.stream", "-e", "tcp.completeness")
    completeness: dict[str, int] = {}
    for line in streams.splitlines():
        stream, value = line.split("\t")
        completeness[stream] = max(completeness.get(stream, 0), int(value or 0))
    assert completeness and all(v == 31 for v in completeness.values()), completeness
    assert tshark("-r", out, "-Y", "tcp.flags.reset == 1").strip() == ""
    http = tshark("-r", out, *decode, "-Y", "http.request or http.response", "-T", "fields",
                  "-e", "frame.number")
    assert len(http.split()) == _http_messages(SAMPLE)
    # The kernel's own segments on lo leave checksums to (absent) offload hardware, so
    # tshark's checksum warnings say nothing here; sequence-analysis trouble would.
    trouble = tshark("-r", out, "-Y", "tcp.analysis.retransmission or tcp.analysis.lost_segment"
                     " or tcp.analysis.out_of_order or tcp.analysis.ack_lost_segment")
    assert trouble.strip() == ""


def test_steps_follow_encap_directions_and_close() -> None:
    lo = ipv4.addr("127.0.0.1")
    options = EncapOptions(style="stream", client_port=40001, server_port=40002, seed=1, mss=100)
    from tcplab.encap.csv_input import Message

    messages = [
        Message("1", "HTTP", "client_browser", "web_server", b"GET / HTTP/1.1\r\n\r\n", 0.0),
        Message("2", "HTTP", "web_server", "client_browser",
                b"HTTP/1.1 200 OK\r\nContent-Length: 250\r\n\r\n" + b"b" * 250, 0.1),
    ]
    steps = list(replay.steps_from_packets(build(messages, options)))
    kinds = [type(s).__name__ for s in steps]
    assert kinds == ["Open", "Send", "Send", "Close"]
    open_, request, response, close = steps
    assert open_.client == (lo, 40001) and open_.server == (lo, 40002)
    assert request.from_client and not response.from_client
    assert request.payload == messages[0].payload
    assert response.payload == messages[1].payload, "MSS-split segments are joined again"
    assert not close.reset


def test_rst_row_aborts_with_a_real_rst() -> None:
    lo = ipv4.addr("127.0.0.1")
    client, server = free_ports(2)
    packets = [
        (1, stack.tcp_packet(lo, lo, client, server, flags=tcp.SYN), None),
        (2, stack.tcp_packet(lo, lo, client, server, b"hi"), "1"),
        (3, stack.tcp_packet(lo, lo, client, server, flags=tcp.RST), None),
    ]
    replayer = replay.Replayer(step_timeout=5)
    steps = list(replay.steps_from_packets(packets))
    replayer.prepare(steps)
    summary = replayer.run(steps)
    assert summary.messages == 1 and summary.resets == 1 and summary.connections == 1


def test_port_in_use_is_an_environment_problem(tmp_path) -> None:
    client, server = free_ports(2)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", server))
        blocker.listen(1)
        options = EncapOptions(style="stream", client_port=client, server_port=server)
        with pytest.raises(EnvironmentProblem, match="already in use"):
            replay.replay_csv(SAMPLE, options)
        proc = run_tcplab("replay", SAMPLE, "--client-port", str(client), "--server-port",
                          str(server))
    assert proc.returncode == 2
    assert f"127.0.0.1:{server} is already in use" in proc.stderr


def test_replay_without_capture_needs_no_privilege_and_reports() -> None:
    client, server = free_ports(2)
    proc = run_tcplab("replay", SAMPLE, "--client-port", str(client), "--server-port", str(server))
    assert proc.returncode == 0, proc.stderr
    n = sum(1 for _ in read_messages(SAMPLE))
    assert f"replayed  {n} messages" in proc.stdout


def test_timing_keeps_the_csv_pauses(tmp_path) -> None:
    client, server = free_ports(2)
    csv_path = tmp_path / "timed.csv"
    csv_path.write_text("msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                        "1,HTTP,client_browser,web_server,GET / HTTP/1.1,0.0\n"
                        "2,HTTP,web_server,client_browser,HTTP/1.1 204 No Content,0.4\n"
                        "3,HTTP,client_browser,web_server,GET /a HTTP/1.1,0.8\n")
    options = EncapOptions(style="stream", client_port=client, server_port=server)
    fast = replay.replay_csv(str(csv_path), options)
    timed = replay.replay_csv(str(csv_path), options, timing=True, speed=2.0)
    assert fast.messages == timed.messages == 3
    assert fast.seconds < 0.3
    assert 0.35 <= timed.seconds < 3.0, "0.8 s of CSV time at double speed"


def _two_free_in_a_row() -> int:
    """A port p with p and p + 1 both free (encap gives the second connection p + 1)."""
    for _ in range(200):
        (port,) = free_ports(1)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    pytest.fail("no two consecutive free ports on lo")


def test_dns_rows_are_counted_not_replayed(tmp_path) -> None:
    client = _two_free_in_a_row()
    server = next(p for p in free_ports(3) if p not in (client, client + 1))
    csv_path = tmp_path / "dns.csv"
    csv_path.write_text(
        "msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
        "1,DNS,client_browser,dns_server,Query: shop.example.com,0.0\n"
        "2,DNS,dns_server,client_browser,Response: shop.example.com -> 127.0.0.1,0.01\n"
        "3,HTTP,client_browser,web_server,GET / HTTP/1.1,0.1\n"
        "4,HTTP,web_server,client_browser,HTTP/1.1 204 No Content,0.2\n")
    # The DNS exchange takes the first client port; the HTTP connection gets the next free one.
    options = EncapOptions(style="stream", client_port=client, server_port=server)
    summary = replay.replay_csv(str(csv_path), options)
    assert summary.messages == 2 and summary.connections == 1
    assert any("2 UDP message(s) (DNS)" in note for note in summary.notes)
