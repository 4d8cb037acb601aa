"""Hand-built TCP conversations that exercise every analysis tag, written as pcap files.

Built with the packet engine (so the bytes are ours) and written with tcplab's own pcap
writer; the differential tests then read them with both tcplab and tshark.
"""

from __future__ import annotations

import random

from tcplab.packet import ipv4, link, stack, tcp
from tcplab.pcap import open_writer

A = ipv4.addr("10.0.0.1")
B = ipv4.addr("10.0.0.2")
S, SA, AK, PA, R, FA = tcp.SYN, tcp.SYN | tcp.ACK, tcp.ACK, tcp.PSH | tcp.ACK, tcp.RST, tcp.FIN | tcp.ACK

SYN_OPTIONS = tcp.pack_options([tcp.mss(1460), tcp.sack_permitted(), tcp.timestamps(100, 0),
                                tcp.NOP, tcp.window_scale(7)])
SYNACK_OPTIONS = tcp.pack_options([tcp.mss(1460), tcp.sack_permitted(), tcp.timestamps(200, 100),
                                   tcp.NOP, tcp.window_scale(2)])


class Builder:
    """Accumulates (timestamp, IP packet) pairs with a running clock."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.frames: list[tuple[int, bytes]] = []

    def seg(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            data: bytes = b"", *, win: int = 8192, opts: bytes = b"", dt: float = 0.01) -> None:
        self.t += dt
        pkt = stack.tcp_packet(src, dst, sport, dport, data, seq=seq & 0xFFFFFFFF,
                               ack=ack & 0xFFFFFFFF, flags=flags, window=win, options=opts)
        self.frames.append((int(round(self.t * 1e9)), pkt))

    def raw(self, pkt: bytes, dt: float = 0.01) -> None:
        self.t += dt
        self.frames.append((int(round(self.t * 1e9)), pkt))

    def write(self, path: str, linktype: int = link.LINKTYPE_ETHERNET) -> str:
        with open_writer(path, linktype) as w:
            for ts, pkt in self.frames:
                w.write(stack.frame(linktype, pkt), ts)
        return path


def anomalies(A: bytes = A, B: bytes = B) -> Builder:  # noqa: N803 - the module's names
    """One connection with every SEQ/ACK analysis case, plus a second one reusing the ports."""
    b = Builder()
    c, s = 1000, 5000  # client/server ISNs
    cp, sp = 40000, 80
    b.seg(A, B, cp, sp, c, 0, S, win=64240, opts=SYN_OPTIONS)
    b.seg(B, A, sp, cp, s, c + 1, SA, win=65160, opts=SYNACK_OPTIONS)
    b.seg(A, B, cp, sp, c + 1, s + 1, AK, win=502)
    c += 1
    s += 1
    # Data, then a lost segment (gap), dup ACKs, fast retransmission.
    b.seg(A, B, cp, sp, c, s, PA, b"a" * 100, win=502)
    b.seg(B, A, sp, cp, s, c + 100, AK, win=16000)
    b.seg(A, B, cp, sp, c + 200, s, PA, b"c" * 100, win=502)  # previous segment not captured
    b.seg(B, A, sp, cp, s, c + 100, AK, win=16000, dt=0.001)  # dup ACK 1
    b.seg(B, A, sp, cp, s, c + 100, AK, win=16000, dt=0.001)  # dup ACK 2
    b.seg(B, A, sp, cp, s, c + 100, AK, win=16000, dt=0.001)  # dup ACK 3
    b.seg(A, B, cp, sp, c + 100, s, PA, b"b" * 100, win=502, dt=0.001)  # fast retransmission
    b.seg(B, A, sp, cp, s, c + 300, AK, win=16000)
    c += 300
    # A plain (timeout) retransmission.
    b.seg(A, B, cp, sp, c, s, PA, b"d" * 50, win=502)
    b.seg(A, B, cp, sp, c, s, PA, b"d" * 50, win=502, dt=0.3)
    b.seg(B, A, sp, cp, s, c + 50, AK, win=16000)
    c += 50
    # Out-of-order: a later segment first, the earlier one 1 ms after.
    b.seg(A, B, cp, sp, c + 40, s, PA, b"f" * 40, win=502, dt=0.5)
    b.seg(A, B, cp, sp, c, s, PA, b"e" * 40, win=502, dt=0.0005)
    b.seg(B, A, sp, cp, s, c + 80, AK, win=16000)
    c += 80
    # Server data, zero window from the client, probe, probe ACK, window update.
    b.seg(B, A, sp, cp, s, c, PA, b"S" * 500, win=16000)
    b.seg(A, B, cp, sp, c, s + 500, AK, win=0)  # zero window
    s += 500
    b.seg(B, A, sp, cp, s, c, AK, b"P", win=16000, dt=0.2)  # zero window probe
    b.seg(A, B, cp, sp, c, s, AK, win=0, dt=0.001)  # zero window probe ACK
    b.seg(A, B, cp, sp, c, s, AK, win=300, dt=0.3)  # window update
    # Window full: the server fills the client's advertised window (300 << 7).
    b.seg(B, A, sp, cp, s, c, PA, b"W" * 1000, win=16000)
    b.seg(A, B, cp, sp, c, s + 1000, AK, win=300)
    s += 1000
    b.seg(B, A, sp, cp, s, c, PA, b"X" * (300 * 128 - 1000) if False else b"X" * 1400, win=16000)
    b.seg(A, B, cp, sp, c, s + 1400, AK, win=502)
    s += 1400
    # Keep-alive and its ACK.
    b.seg(A, B, cp, sp, c - 1, s, AK, win=502, dt=5.0)
    b.seg(B, A, sp, cp, s, c, AK, win=16000, dt=0.001)
    # ACKed unseen segment: the server ACKs client bytes we never saw.
    b.seg(B, A, sp, cp, s, c + 700, AK, win=16000, dt=0.1)
    c += 700
    # Spurious retransmission: data the peer already acknowledged.
    b.seg(A, B, cp, sp, c - 100, s, PA, b"g" * 100, win=502, dt=0.5)
    # FIN teardown.
    b.seg(A, B, cp, sp, c, s, FA, win=502)
    b.seg(B, A, sp, cp, s, c + 1, FA, win=16000)
    b.seg(A, B, cp, sp, c + 1, s + 1, AK, win=502)
    # Same ports again with a new ISN: "port numbers reused", a new stream.
    b.seg(A, B, cp, sp, 777777, 0, S, win=64240, opts=SYN_OPTIONS, dt=1.0)
    b.seg(B, A, sp, cp, 888888, 777778, SA, win=65160, opts=SYNACK_OPTIONS)
    b.seg(A, B, cp, sp, 777778, 888889, AK, win=502)
    b.seg(A, B, cp, sp, 777778, 888889, R, win=0)
    return b


def window_full() -> Builder:
    """The client advertises 4 × 2⁰ bytes after a handshake without window scaling; the server fills it."""
    b = Builder()
    mss = tcp.pack_options([tcp.mss(1460)])
    b.seg(A, B, 41000, 8080, 10, 0, S, win=1000, opts=mss)
    b.seg(B, A, 8080, 41000, 20, 11, SA, win=1000, opts=mss)
    b.seg(A, B, 41000, 8080, 11, 21, AK, win=400)
    b.seg(B, A, 8080, 41000, 21, 11, PA, b"x" * 400)
    b.seg(A, B, 41000, 8080, 11, 421, AK, win=1000)
    b.seg(B, A, 8080, 41000, 421, 11, FA)
    b.seg(A, B, 41000, 8080, 11, 422, FA, win=1000)
    b.seg(B, A, 8080, 41000, 422, 12, AK)
    return b


def random_conversations(seed: int, count: int = 300) -> Builder:
    """Random but plausible segments over a few 4-tuples: a fuzzer for the tag rules."""
    rng = random.Random(seed)
    b = Builder()
    hosts = [(A, 50000 + i, B, 80 + (i % 2)) for i in range(3)]
    state = {}
    for h in hosts:
        state[h] = {"c": rng.randrange(1 << 32), "s": rng.randrange(1 << 32)}
    for _ in range(count):
        h = rng.choice(hosts)
        st = state[h]
        src, sport, dst, dport = h
        forward = rng.random() < 0.55
        if not forward:
            src, sport, dst, dport = dst, dport, src, sport
        mine, theirs = ("c", "s") if forward else ("s", "c")
        roll = rng.random()
        flags = rng.choice([AK, PA, PA, AK, AK, S, SA, FA, R, AK | tcp.URG])
        length = rng.choice([0, 0, 1, 10, 100, 500])
        seq = st[mine] + rng.choice([0, 0, 0, -1, -100, 100, -length, 1])
        ack = st[theirs] + rng.choice([0, 0, 0, -1, 100, -100])
        win = rng.choice([0, 8192, 8192, 8192, 300, 65535])
        opts = SYN_OPTIONS if flags & tcp.SYN and rng.random() < 0.7 else b""
        if flags & (tcp.SYN | tcp.RST | tcp.FIN) and roll < 0.5:
            length = 0
        b.seg(src, dst, sport, dport, seq, ack, flags, bytes(length), win=win, opts=opts,
              dt=rng.choice([0.0001, 0.001, 0.002, 0.01, 0.1]))
        if rng.random() < 0.8:
            st[mine] = (seq + length + (1 if flags & (tcp.SYN | tcp.FIN) else 0)) & 0xFFFFFFFF
    return b


def lossy_connections(seed: int, connections: int = 6) -> Builder:
    """Realistic connections seen by an imperfect capture: drops, duplicates, reordering.

    Each connection is a proper handshake, request/response data with cumulative ACKs and a
    FIN teardown; then the *capture* loses, repeats or swaps packets at random, which is how
    retransmission, out-of-order, lost-segment and ACKed-unseen tags arise in practice.
    """
    rng = random.Random(seed)
    b = Builder()
    for n in range(connections):
        seq = [rng.randrange(1 << 32), rng.randrange(1 << 32)]
        ends = [(A, 41000 + n), (B, 8000 + n % 3)]
        pkts: list[tuple[int, int, int, int, bytes, int]] = []  # (side, seq, ack, flags, data, win)

        def send(side: int, flags: int, data: bytes = b"", win: int = 8192, *,
                 pkts: list = pkts, seq: list = seq) -> None:
            pkts.append((side, seq[side], seq[1 - side], flags, data, win))
            seq[side] = (seq[side] + len(data) + (1 if flags & (tcp.SYN | tcp.FIN) else 0)) & 0xFFFFFFFF

        pkts.append((0, seq[0], 0, S, b"", 64240))
        seq[0] += 1
        send(1, SA, win=65160)
        send(0, AK)
        for _ in range(rng.randrange(3, 12)):
            side = 0 if rng.random() < 0.5 else 1
            for _ in range(rng.randrange(1, 4)):
                send(side, PA, bytes(rng.choice([1, 50, 300, 1000])))
            send(1 - side, AK, win=rng.choice([8192, 8192, 8192, 0, 4000]))
        send(0, FA)
        send(1, FA)
        send(0, AK)
        shown = []
        for p in pkts:
            r = rng.random()
            if r < 0.06 and p[3] != S:
                continue  # the capture missed it
            shown.append(p)
            if r > 0.94:
                shown.append(p)  # seen twice: a retransmission
        for i in range(len(shown) - 1):
            if rng.random() < 0.05:
                shown[i], shown[i + 1] = shown[i + 1], shown[i]
        for side, s, a, flags, data, win in shown:
            (src, sport), (dst, dport) = ends[side], ends[1 - side]
            b.seg(src, dst, sport, dport, s, a, flags, data, win=win,
                  dt=rng.choice([0.0005, 0.002, 0.01, 0.2]))
    return b
