"""IPv4/IPv6 reassembly: any order, the RFC 5722 overlap rule, timeouts, and memory that stays bounded."""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from tcplab.packet import defrag, ipv4, ipv6

LO4 = ipv4.addr("127.0.0.1")
LO6 = ipv6.addr("::1")
S = 1_000_000_000


def v4(ident: int, offset: int, more: bool, proto: int = 17) -> ipv4.IPv4Header:
    return ipv4.IPv4Header(LO4, LO4, protocol=proto, identification=ident, mf=more,
                           fragment_offset=offset // 8)


def v6(ident: int, offset: int, more: bool) -> ipv6.FragmentHeader:
    return ipv6.FragmentHeader(17, offset, more, ident)


def split(payload: bytes, size: int) -> list[tuple[int, bytes, bool]]:
    return [(o, payload[o : o + size], o + size < len(payload)) for o in range(0, len(payload), size)]


@given(st.binary(min_size=1, max_size=3000), st.integers(1, 40), st.randoms(use_true_random=False),
       st.booleans())
def test_any_order_reassembles_exactly(payload: bytes, units: int, rng: random.Random, six: bool) -> None:
    pieces = split(payload, units * 8)
    rng.shuffle(pieces)
    d = defrag.Defragmenter()
    outcomes = []
    for n, (off, data, more) in enumerate(pieces):
        if six:
            outcomes.append(d.feed_ipv6(LO6, LO6, v6(9, off, more), data, n, tag=n))
        else:
            outcomes.append(d.feed_ipv4(v4(9, off, more), data, n, tag=n))
    assert [o.status for o in outcomes] == ["held"] * (len(pieces) - 1) + ["complete"]
    dg = outcomes[-1].datagram
    assert dg.payload == payload and dg.protocol == 17 and dg.version == (6 if six else 4)
    assert [f[1] for f in dg.fragments] == sorted(off for off, _d, _m in pieces)
    assert d.pending == 0 and d.buffered_bytes == 0


def test_ipv6_overlap_abandons_the_datagram_until_it_times_out() -> None:
    d = defrag.Defragmenter()
    assert d.feed_ipv6(LO6, LO6, v6(1, 0, True), b"a" * 16, 0).status == "held"
    assert d.feed_ipv6(LO6, LO6, v6(1, 0, True), b"a" * 16, 1).status == "duplicate"  # exact copy: fine
    out = d.feed_ipv6(LO6, LO6, v6(1, 8, False), b"b" * 16, 2)
    assert out.status == "abandoned" and "RFC 5722" in out.reason
    # The attacker's "fixed" piece cannot restart it...
    assert d.feed_ipv6(LO6, LO6, v6(1, 0, True), b"a" * 16, 3).status == "dropped"
    assert d.feed_ipv6(LO6, LO6, v6(1, 16, False), b"c" * 8, 4).status == "dropped"
    # ...until the 60 s reassembly timeout has passed.
    assert d.feed_ipv6(LO6, LO6, v6(1, 0, True), b"a" * 16, 61 * S).status == "held"
    assert d.feed_ipv6(LO6, LO6, v6(1, 16, False), b"c" * 8, 61 * S).status == "complete"
    assert d.stats["abandoned"] == 1 and d.stats["dropped"] == 2


def test_ipv4_overlap_keeps_the_first_bytes_and_says_so() -> None:
    d = defrag.Defragmenter()
    d.feed_ipv4(v4(2, 0, True), b"A" * 16, 0, tag=1)
    out = d.feed_ipv4(v4(2, 8, True), b"A" * 8 + b"B" * 8, 1, tag=2)
    assert (out.status, out.conflict) == ("overlap", False)
    out = d.feed_ipv4(v4(2, 24, False), b"C" * 4, 2, tag=3)
    assert out.status == "complete" and out.datagram.payload == b"A" * 16 + b"B" * 8 + b"C" * 4
    assert out.datagram.fragments == ((1, 0, 16), (2, 8, 16), (3, 24, 4))
    d.feed_ipv4(v4(3, 0, True), b"A" * 16, 0, tag=1)
    out = d.feed_ipv4(v4(3, 8, False), b"Z" * 12, 1, tag=2)
    assert (out.status, out.conflict) == ("complete", True)
    assert out.datagram.payload == b"A" * 16 + b"Z" * 4
    assert out.datagram.fragments == ((1, 0, 16), (2, 8, 12))


def test_keys_separate_protocols_and_addresses() -> None:
    d = defrag.Defragmenter()
    d.feed_ipv4(v4(5, 0, True, proto=17), b"u" * 8, 0)
    assert d.feed_ipv4(v4(5, 8, False, proto=1), b"i" * 8, 0).status == "held"  # another datagram
    assert d.pending == 2


def test_malformed_fragments_are_dropped_with_a_reason() -> None:
    d = defrag.Defragmenter()
    assert "not a multiple of 8" in d.feed_ipv4(v4(1, 0, True), b"x" * 12, 0).reason
    assert "65535" in d.feed_ipv4(v4(1, 65528, False), b"x" * 16, 0).reason
    d.feed_ipv4(v4(2, 0, True), b"x" * 8, 0)
    d.feed_ipv4(v4(2, 16, False), b"x" * 8, 0)
    assert "last fragment" in d.feed_ipv4(v4(2, 24, False), b"x" * 8, 0).reason  # two different ends
    assert d.stats["dropped"] == 3 and d.pending == 0


def test_timeouts_free_partial_datagrams() -> None:
    d = defrag.Defragmenter()
    d.feed_ipv4(v4(1, 0, True), b"x" * 8, 0)
    d.feed_ipv6(LO6, LO6, v6(1, 0, True), b"x" * 8, 0)
    d.expire(31 * S)
    assert d.pending == 1 and d.stats["timed_out"] == 1  # IPv4 after 30 s, IPv6 after 60 s
    d.expire(61 * S)
    assert d.pending == 0 and d.buffered_bytes == 0


def test_limits_evict_the_oldest_first() -> None:
    limits = defrag.Limits(max_datagrams=4, max_fragments=3, max_buffered_bytes=64)
    d = defrag.Defragmenter(limits)
    for ident in range(6):
        d.feed_ipv4(v4(ident, 0, True), b"x" * 8, ident)
    assert d.pending == 4 and d.stats["evicted"] == 2
    out = [d.feed_ipv4(v4(10, o, True), b"y" * 8, 10) for o in (0, 8, 16, 24)]
    assert out[-1].status == "dropped" and "more than 3 fragments" in out[-1].reason
    big = d.feed_ipv4(v4(11, 0, True), b"z" * 72, 11)
    assert big.status == "dropped" and "64 bytes" in big.reason
    assert d.buffered_bytes <= 64


def test_a_flood_of_overlapping_out_of_order_fragments_stays_bounded() -> None:
    """25,000 hostile fragments (six times what fills the 4 MiB cap): memory stays under the caps."""
    limits = defrag.Limits()
    d = defrag.Defragmenter(limits)
    rng = random.Random(14)
    chunk = b"\xab" * 1024
    tracemalloc.start()
    try:
        peak_buffered = 0
        for n in range(25_000):
            ident = rng.randrange(5000)
            off = rng.randrange(0, 60) * 512  # overlapping halves, any order, never complete
            if rng.random() < 0.5:
                d.feed_ipv4(v4(ident, off, True), chunk, n * 1000, tag=n)
            else:
                d.feed_ipv6(LO6, LO6, v6(ident, off, True), chunk, n * 1000, tag=n)
            peak_buffered = max(peak_buffered, d.buffered_bytes)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_buffered <= limits.max_buffered_bytes
    assert d.pending <= limits.max_datagrams
    # 4 MiB of data plus bookkeeping for ≤ 1024 partial datagrams of ≤ 128 fragments.
    assert peak < 16 * 1024 * 1024, peak
    assert d.stats["evicted"] + d.stats["abandoned"] + d.stats["dropped"] > 0
