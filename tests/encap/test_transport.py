from tcplab.encap.transport import RawTCPTransport
from tests.packet.test_golden import GOLDEN_FRAME


def test_report_defaults_reproduce_frame_351() -> None:
    t = RawTCPTransport()
    assert t.encapsulate("GET /blog HTTP/1.1") == GOLDEN_FRAME[4:]
    assert t.frame("GET /blog HTTP/1.1") == GOLDEN_FRAME


def test_send_puts_the_packet_on_loopback_and_the_kernel_answers_rst() -> None:
    import socket
    import time

    from tests.support import require_root

    require_root()
    port = 47000 + int(time.time() * 1000) % 1000  # an unusual port nobody listens on
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sniff.bind(("lo", 0))
    sniff.settimeout(0.2)
    try:
        with RawTCPTransport(src_port=port, dst_port=port + 1) as t:
            sent = t.send("GET /blog HTTP/1.1")
        deadline = time.monotonic() + 5
        seen_data = seen_rst = False
        while time.monotonic() < deadline and not (seen_data and seen_rst):
            try:
                frame = sniff.recv(65535)
            except TimeoutError:
                continue
            ip = frame[14:]
            if ip == sent:
                seen_data = True
            elif ip[9] == 6 and int.from_bytes(ip[20:22], "big") == port + 1 and ip[33] & 0x04:
                seen_rst = True
        assert seen_data, "our packet was captured byte for byte"
        assert seen_rst, "the kernel answered with RST"
    finally:
        sniff.close()
