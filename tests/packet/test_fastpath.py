"""TCPv4Flow must lay down exactly the bytes of the plain, readable builder."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.packet import stack, tcp

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=400, deadline=None)
@given(
    src=st.binary(min_size=4, max_size=4), dst=st.binary(min_size=4, max_size=4), sport=u16, dport=u16,
    seq=u32, ack=u32, flags=st.integers(0, 0x1FF), window=u16, ident=u16, ttl=st.integers(0, 255),
    df=st.booleans(), payload=st.binary(max_size=80),
    opts=st.sampled_from([b"", tcp.pack_options([tcp.mss(1460), tcp.NOP, tcp.window_scale(7)]),
                          tcp.pack_options([tcp.timestamps(1, 2)])]),
)
def test_flow_equals_plain_builder(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
                                   flags: int, window: int, ident: int, ttl: int, df: bool, payload: bytes,
                                   opts: bytes) -> None:
    flow = stack.TCPv4Flow(src, dst, sport, dport, ttl=ttl, df=df)
    plain = stack.tcp_packet(src, dst, sport, dport, payload, seq=seq, ack=ack, flags=flags, window=window,
                             options=opts, identification=ident, ttl=ttl, df=df)
    assert flow.packet(payload, seq, ack, flags, window, ident, opts) == plain


def test_flow_handles_all_ones_payload_edge() -> None:
    flow = stack.TCPv4Flow(b"\xff" * 4, b"\xff" * 4, 0xFFFF, 0xFFFF, df=False)
    for n in range(8):
        payload = b"\xff" * n
        plain = stack.tcp_packet(b"\xff" * 4, b"\xff" * 4, 0xFFFF, 0xFFFF, payload, seq=0xFFFFFFFF,
                                 ack=0xFFFFFFFF, flags=0x1FF, window=0xFFFF, identification=0xFFFF)
        assert flow.packet(payload, 0xFFFFFFFF, 0xFFFFFFFF, 0x1FF, 0xFFFF, 0xFFFF) == plain
