"""Injection on lo: every segment captured once, byte-identical to encap's, refused by RST."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tcplab.encap import EncapOptions
from tcplab.packet import ipv4, link, stack, tcp
from tcplab.wire import inject, rawsock
from tests.support import require_root, tshark
from tests.wire.helpers import frames, free_ports, run_tcplab

CSV_TEXT = """msg_id,app_protocol,src_app,dst_app,message,timestamp
1,HTTP,client_browser,web_server,GET /blog HTTP/1.1,0.000
2,HTTP,web_server,client_browser,HTTP/1.1 200 OK,0.100
3,HTTP,client_browser,web_server,GET /cart HTTP/1.1,0.200
4,HTTP,web_server,client_browser,HTTP/1.1 404 Not Found,0.300
5,HTTP,client_browser,web_server,POST /orders HTTP/1.1,0.400
6,HTTP,web_server,client_browser,HTTP/1.1 201 Created,0.500
"""


def _encap_packets(csv_path: str, client: int, server: int, style: str) -> list[bytes]:
    options = EncapOptions(style=style, client_port=client, server_port=server, seed=3)
    return list(inject.packets_from_csv(csv_path, options))


@pytest.mark.parametrize(("style", "device"), [("seed", None), ("stream", None), ("seed", "lo")])
def test_each_segment_captured_once_identical_and_refused(tmp_path, style: str,
                                                          device: str | None) -> None:
    require_root()
    client, server = free_ports(2)
    csv_path = tmp_path / "seed.csv"
    csv_path.write_text(CSV_TEXT)
    out = str(tmp_path / "inject.pcap")
    args = ["inject", str(csv_path), "--style", style, "--interval", "0.01",
            "--client-port", str(client), "--server-port", str(server), "--capture", out]
    if style == "stream":
        args += ["--seed", "3"]
    if device:
        args += ["--device", device]
    proc = run_tcplab(*args)
    assert proc.returncode == 0, proc.stderr
    expected = _encap_packets(str(csv_path), client, server, style)
    captured = [frame[14:] for frame in frames(out)]  # strip lo's Ethernet header
    ours = [p for p in captured if not struct.unpack_from("!H", p, 32)[0] & tcp.RST]
    resets = [p for p in captured if struct.unpack_from("!H", p, 32)[0] & tcp.RST]
    assert ours == expected, "each segment once, in order, byte for byte what encap built"
    if device:
        # Written straight onto lo, 127.0.0.1 packets have no route and are martians to the
        # receiving stack: captured, never answered. The summary says why.
        assert resets == [] and "martian" in proc.stdout
        return
    assert len(resets) == len(expected), "the kernel answers every segment with RST"
    for sent, answer in zip(ours, resets):
        assert answer[12:16] == sent[16:20] and answer[16:20] == sent[12:16]
        assert answer[20:22] == sent[22:24] and answer[22:24] == sent[20:22]
    # The summary says what happened and where to read why.
    assert f"sent      {len(expected)} packets" in proc.stdout
    assert f"{len(expected)} answered by RST from the kernel" in proc.stdout
    assert "RFC 9293" in proc.stdout
    assert f"tcplab analyze {out} --explain" in proc.stdout
    # tshark agrees: valid checksums, and one RST per data segment.
    text = tshark("-r", out, "-T", "fields", "-e", "tcp.flags.reset", "-e", "tcp.checksum.status",
                  "-e", "ip.checksum.status")
    rows = [line.split("\t") for line in text.splitlines()]
    assert sum(1 for row in rows if row[0] == "1") == len(expected)
    assert all(row[1] == "1" and row[2] == "1" for row in rows), rows[:3]  # 1 = Good
    # The analyzer's explanation of this very capture names the cause: data with no handshake.
    from tcplab.analyze import analyze
    from tcplab.analyze.explain import explain

    notes = "\n".join(explain(list(analyze(out))))
    assert "RST" in notes
    if style == "seed":
        assert "with no three-way handshake" in notes
        assert "Every one was answered by a RST" in notes
        assert "nothing is listening on" in notes and "RFC 9293" in notes


def test_pcap_input_is_resent_as_is(tmp_path) -> None:
    require_root()
    from tcplab.pcap import PcapWriter

    client, server = free_ports(2)
    lo = ipv4.addr("127.0.0.1")
    packets = [stack.tcp_packet(lo, lo, client, server, f"hello {i}".encode(), identification=7 + i)
               for i in range(5)]
    source = str(tmp_path / "in.pcap")
    with PcapWriter(source, link.LINKTYPE_ETHERNET) as writer:
        for i, packet in enumerate(packets):
            writer.write(stack.frame(link.LINKTYPE_ETHERNET, packet), i * 1000)
    out = str(tmp_path / "out.pcap")
    proc = run_tcplab("inject", source, "--topspeed", "--loop", "2", "--capture", out)
    assert proc.returncode == 0, proc.stderr
    captured = [frame[14:] for frame in frames(out)]
    assert [p for p in captured if p[20 + 13] & tcp.RST == 0] == packets * 2
    assert "10 answered by RST" in proc.stdout


def test_count_and_rate_pacing(tmp_path) -> None:
    require_root()
    client, server = free_ports(2)
    csv_path = tmp_path / "seed.csv"
    csv_path.write_text(CSV_TEXT)
    started = time.monotonic()
    proc = run_tcplab("inject", str(csv_path), "--rate", "20", "--count", "5", "--loop", "0",
                      "--no-watch", "--client-port", str(client), "--server-port", str(server))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "sent      5 packets" in proc.stdout
    assert elapsed >= 0.19, "5 packets at 20/s take at least 4 gaps of 50 ms"


def test_device_must_be_loopback() -> None:
    require_root()
    from tcplab.errors import InputError

    names = [name for _, name in socket.if_nameindex() if name != "lo"]
    sender = rawsock.DeviceSender("nosuchif2")
    with pytest.raises(InputError, match="no network interface named 'nosuchif2'"):
        sender.open()
    for name in names[:1]:
        with pytest.raises(InputError, match="only loopback devices"):
            rawsock.DeviceSender(name).open()


def test_bad_csv_fails_before_sending(tmp_path) -> None:
    require_root()
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("msg_id,app_protocol,src_app\n1,HTTP,client\n")
    proc = run_tcplab("inject", str(csv_path), "--no-watch")
    assert proc.returncode == 1
    assert "bad.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert "sent" not in proc.stdout


def test_kernel_rewrite_rule() -> None:
    lo = ipv4.addr("127.0.0.1")
    assert rawsock.kernel_rewrites(stack.tcp_packet(lo, lo, 1, 2, b"", identification=0))
    assert not rawsock.kernel_rewrites(stack.tcp_packet(lo, lo, 1, 2, b"", identification=1))
    assert not rawsock.kernel_rewrites(stack.tcp_packet(lo, lo, 1, 2, b"", identification=0,
                                                        df=True))


def test_pacer_keeps_the_schedule() -> None:
    pacer = rawsock.Pacer(rate=200)
    started = time.perf_counter()
    for i in range(21):
        pacer.wait(i)
    elapsed = time.perf_counter() - started
    assert 0.09 <= elapsed < 1.0


def test_destination_errors_name_the_problem() -> None:
    from tcplab.errors import InputError

    with pytest.raises(InputError, match="not an IPv4/IPv6 packet"):
        rawsock.destination(b"\x50" + b"\x00" * 30)
    with pytest.raises(InputError, match="empty"):
        rawsock.destination(b"")
    assert rawsock.destination(stack.tcp_packet(b"\x7f\0\0\1", b"\x0a\0\0\2", 1, 2))[1] == "10.0.0.2"


def test_watch_filter_lists_the_ports() -> None:
    lo = ipv4.addr("127.0.0.1")
    packets = [stack.tcp_packet(lo, lo, 5074, 12345, b"x"), stack.udp_packet(lo, lo, 53, 53, b"")]
    assert inject.watch_filter(packets) == "tcp and (port 5074 or port 12345)"
    many = [stack.tcp_packet(lo, lo, 1000 + i, 2000, b"") for i in range(40)]
    assert inject.watch_filter(many) == "tcp"


def test_ipv6_segments_go_out_as_built_and_are_refused(tmp_path) -> None:
    require_root()
    client, server = free_ports(2)
    csv_path = tmp_path / "v6.csv"
    csv_path.write_text(CSV_TEXT)
    out = str(tmp_path / "v6.pcap")
    proc = run_tcplab("inject", str(csv_path), "--client-ip", "::1", "--server-ip", "::1",
                      "--client-port", str(client), "--server-port", str(server),
                      "--interval", "0.01", "--capture", out)
    assert proc.returncode == 0, proc.stderr
    options = EncapOptions(style="seed", client_ip="::1", server_ip="::1", client_port=client,
                           server_port=server)
    expected = list(inject.packets_from_csv(str(csv_path), options))
    captured = [frame[14:] for frame in frames(out)]
    assert all(p[0] >> 4 == 6 for p in captured)
    flags = [inject._tcp_tuple(p)[1] for p in captured]  # type: ignore[index]
    assert [p for p, f in zip(captured, flags) if not f & tcp.RST] == expected
    assert sum(1 for f in flags if f & tcp.RST) == len(expected)


def test_stop_request_is_honoured_promptly_when_paced() -> None:
    class Collect:
        retries = 0

        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send(self, packet: bytes) -> None:
            self.sent.append(packet)

    lo = ipv4.addr("127.0.0.1")
    packet = stack.tcp_packet(lo, lo, 1, 2, b"x", identification=1)
    sink = Collect()
    summary = rawsock.send_all(iter([packet] * 1000), sink, interval=0.001,  # type: ignore[arg-type]
                               should_stop=lambda: len(sink.sent) >= 3)
    assert summary.packets == 3


def test_ctrl_c_ends_an_endless_loop_with_a_summary(tmp_path) -> None:
    require_root()
    import signal
    import subprocess

    from tests.wire.helpers import TIMEOUT, tcplab_cmd

    client, server = free_ports(2)
    csv_path = tmp_path / "seed.csv"
    csv_path.write_text(CSV_TEXT)
    proc = subprocess.Popen(tcplab_cmd("inject", str(csv_path), "--loop", "0", "--interval",
                                       "0.01", "--client-port", str(client), "--server-port",
                                       str(server)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt only once it is sending (start-up may be slow on a busy machine).
    from tcplab.wire.capture import PacketSocket

    with PacketSocket("lo", f"tcp dst port {server}") as watch:
        deadline = time.monotonic() + TIMEOUT
        while not list(watch.read(1)) and time.monotonic() < deadline:
            watch.wait(0.1)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "stopped by signal" in err
    assert "answered by RST" in out
