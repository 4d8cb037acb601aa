from tcplab.encap.transport import RawTCPTransport
from tests.packet.test_golden import GOLDEN_FRAME


def test_report_defaults_reproduce_frame_351() -> None:
    t = RawTCPTransport()
    assert t.encapsulate("GET /blog HTTP/1.1") == GOLDEN_FRAME[4:]
    assert t.frame("GET /blog HTTP/1.1") == GOLDEN_FRAME
