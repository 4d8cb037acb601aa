"""TCP conversation tracking the way Wireshark 4.0 does it: stream index, relative numbers, tags.

What this module is for: given the header values of one TCP segment at a time, in capture
order, it assigns the conversation ("stream") index, turns raw sequence/ack numbers into
relative ones, computes the calculated (scaled) window, and sets the SEQ/ACK analysis tags
with the same rules as Wireshark 4.0's ``tcp_analyze_sequence_number()`` in
``epan/dissectors/packet-tcp.c`` — retransmission, fast retransmission, spurious
retransmission, out-of-order, lost segment ("previous segment not captured"), ACKed
unseen segment, keep-alive (and its ACK), zero window (probe, probe ACK), window update,
window full, duplicate ACK with its ``n#m`` numbering, and port-number reuse. It also
accumulates Wireshark's conversation-completeness bits.

Every comparison is done in 32-bit sequence space (``GT_SEQ``/``LT_SEQ`` of packet-tcp.h),
and Wireshark's quirks are kept on purpose so the output is comparable field by field:
a "next sequence number" of 0 counts as "not known yet", times that would go negative
count as huge, and the window compared for duplicate ACKs is the raw header value.

What it must never do: read files, print, or look at payload bytes. It keeps only
per-conversation state (a few integers per direction), so memory grows with the number
of conversations, never with the number of packets.
"""

from __future__ import annotations

import socket
import struct

from tcplab.packet.tcp import ACK, FIN, RST, SYN

_M32 = 0xFFFFFFFF
_CONTROL = SYN | FIN | RST | ACK  # the flags whose absence (but ACK's) marks a plain segment
_SYN_FIN, _SYN_FIN_RST = SYN | FIN, SYN | FIN | RST
_HALF = 0x80000000

# Wireshark's analysis flag bits (TCP_A_* in packet-tcp.h), kept as our own small ints.
RETRANSMISSION = 0x0001
LOST_PACKET = 0x0002
ACK_LOST_PACKET = 0x0004
KEEP_ALIVE = 0x0008
DUPLICATE_ACK = 0x0010
ZERO_WINDOW = 0x0020
ZERO_WINDOW_PROBE = 0x0040
ZERO_WINDOW_PROBE_ACK = 0x0080
KEEP_ALIVE_ACK = 0x0100
OUT_OF_ORDER = 0x0200
FAST_RETRANSMISSION = 0x0400
WINDOW_UPDATE = 0x0800
WINDOW_FULL = 0x1000
REUSED_PORTS = 0x2000
SPURIOUS_RETRANSMISSION = 0x4000

#: Flag bit → (display-filter field suffix under ``tcp.analysis.``, packet-list tag text).
#: The tuple order is the order Wireshark 4.0 leaves the tags in the Info column (it
#: prepends them one by one, so the last prepended comes first).
TAGS: tuple[tuple[int, str, str], ...] = (
    (ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack", "TCP ZeroWindowProbeAck"),
    (ZERO_WINDOW_PROBE, "zero_window_probe", "TCP ZeroWindowProbe"),
    (ZERO_WINDOW, "zero_window", "TCP ZeroWindow"),
    (DUPLICATE_ACK, "duplicate_ack", "TCP Dup ACK"),
    (KEEP_ALIVE_ACK, "keep_alive_ack", "TCP Keep-Alive ACK"),
    (WINDOW_UPDATE, "window_update", "TCP Window Update"),
    (KEEP_ALIVE, "keep_alive", "TCP Keep-Alive"),
    (WINDOW_FULL, "window_full", "TCP Window Full"),
    (ACK_LOST_PACKET, "ack_lost_segment", "TCP ACKed unseen segment"),
    (LOST_PACKET, "lost_segment", "TCP Previous segment not captured"),
    (FAST_RETRANSMISSION, "fast_retransmission", "TCP Fast Retransmission"),
    (SPURIOUS_RETRANSMISSION, "spurious_retransmission", "TCP Spurious Retransmission"),
    (OUT_OF_ORDER, "out_of_order", "TCP Out-Of-Order"),
    (RETRANSMISSION, "retransmission", "TCP Retransmission"),
    (REUSED_PORTS, "reused_ports", "TCP Port numbers reused"),
)
#: Display-filter field name for each flag bit.
FIELD_OF_FLAG = {bit: "tcp.analysis." + name for bit, name, _ in TAGS}

# Conversation completeness bits (Wireshark 4.0 ``tcp.completeness``).
COMPLETENESS_SYN = 1
COMPLETENESS_SYN_ACK = 2
COMPLETENESS_ACK = 4
COMPLETENESS_DATA = 8
COMPLETENESS_FIN = 16
COMPLETENESS_RST = 32

# Wireshark's window-scale states: -1 = not known (no handshake seen), -2 = known unused.
WS_UNKNOWN = -1
WS_NONE = -2

# Out-of-order is judged against the handshake RTT; before one is known, 3 ms (packet-tcp.c).
DEFAULT_OOO_THRESHOLD_NS = 3_000_000
# A retransmission within 20 ms of the second duplicate ACK is a "fast" one (packet-tcp.c).
FAST_RETRANSMISSION_WINDOW_NS = 20_000_000
# Time differences that would be negative are unsigned in Wireshark, i.e. huge.
_NEVER = 1 << 64


_COMPLETENESS_STAGES = {1: "SYN_SENT", 3: "CLIENT_ESTABLISHED", 7: "ESTABLISHED", 15: "DATA"}


def completeness_text(value: int) -> str:
    """tshark 4.0's wording for a completeness value, e.g. ``Complete, WITH_DATA (31)``."""
    if value & 7 == 7 and value & (COMPLETENESS_FIN | COMPLETENESS_RST):
        return f"Complete, {'WITH_DATA' if value & COMPLETENESS_DATA else 'NO_DATA'} ({value})"
    stage = _COMPLETENESS_STAGES.get(value)
    return f"Incomplete, {stage} ({value})" if stage else f"Incomplete ({value})"


def completeness_bits(flags: int, seglen: int) -> int:
    """The completeness bits one segment contributes (packet-tcp.c's per-flag rules)."""
    bits = 0
    if flags & ACK:
        if flags & SYN:
            bits = COMPLETENESS_SYN_ACK
        else:
            bits = COMPLETENESS_DATA if seglen else COMPLETENESS_ACK
        if flags & FIN:
            bits |= COMPLETENESS_FIN
    if flags & RST:
        bits |= COMPLETENESS_RST
    return bits


# completeness_bits() for every flag value, without (index) and with (index + 512) payload.
_COMPLETENESS_BITS = tuple(completeness_bits(i & 0x1FF, i >> 9) for i in range(1024))


def displayed_completeness(final: int, first_bits: int, is_first_frame: bool) -> int:
    """The ``tcp.completeness`` tshark -2 shows on a frame, given its stream's end values.

    tshark 4.0 leaves the opening frame's own bits out of the value shown on that frame
    (it adds them while re-reading the frame in the second pass, after display).
    """
    return final if is_first_frame else final | first_bits


class Flow:
    """State for one direction of a conversation (``tcp_flow_t`` + ``tcp_analyze_seq_info``)."""

    __slots__ = (
        "base_seq", "base_set", "nextseq", "nextseqtime", "maxseqtobeacked",
        "lastack", "lastacktime", "lastnondupack", "dupacknum", "window", "win_scale",
        "lastsegmentflags", "addr", "port", "http", "shown",
    )

    def __init__(self, addr: str, port: int) -> None:
        self.addr = addr
        self.port = port
        self.base_seq = 0
        self.base_set = False
        self.nextseq = 0
        self.nextseqtime = 0
        self.maxseqtobeacked = 0
        self.lastack = 0
        self.lastacktime = 0
        self.lastnondupack = 0
        self.dupacknum = 0
        self.window = 0xFFFFFFFF  # "never seen": no real 16-bit window equals it
        self.win_scale = WS_UNKNOWN
        self.lastsegmentflags = 0
        #: This direction's HTTP reassembly state (tcplab.analyze.reassembly), kept by the
        #: analyzer; None until the direction carries something that starts like HTTP.
        self.http: object | None = None
        #: Given a first pass (``tshark -2``): what every frame of this direction but the
        #: conversation's first shows (:meth:`TcpTracker.shown`), from the stream's end state.
        self.shown: tuple[int, int, int, int] | None = None


class Conversation:
    """One TCP stream: two flows, completeness bits and the handshake RTT."""

    __slots__ = ("stream", "a", "b", "completeness", "before", "first_bits", "syn_time",
                 "first_rtt", "first_frame")

    def __init__(self, stream: int, src: str, sport: int, dst: str, dport: int, frame: int) -> None:
        self.stream = stream
        self.a = Flow(src, sport)
        self.b = Flow(dst, dport)
        #: Bits from every frame but the first (tshark 4.0's first-pass value).
        self.completeness = 0
        #: ``completeness`` before the latest frame's bits: what tshark's one pass shows on
        #: that frame (it fills the field before the frame's own flags are counted).
        self.before = 0
        #: What the first frame would add by the general rule (tshark adds it in pass two).
        self.first_bits = 0
        self.syn_time = 0
        self.first_rtt = 0
        self.first_frame = frame


class FinalState:
    """What tshark's second pass shows from a stream's end-of-capture state.

    Wireshark computes relative numbers, the calculated window and completeness at
    display time from the conversation's *current* state; with ``-2`` that is its state
    at the end of the first pass. Usually identical to the running values; they differ
    when a SYN/ACK restarts a direction's numbering or a window scale is learnt late.
    """

    __slots__ = ("completeness", "first_bits", "first_frame", "a_base", "a_scale", "b_base",
                 "b_scale", "a_shown", "b_shown")

    def __init__(self, conv: Conversation) -> None:
        self.completeness = conv.completeness
        self.first_bits = conv.first_bits
        self.first_frame = conv.first_frame
        self.a_base = conv.a.base_seq
        self.a_scale = conv.a.win_scale
        self.b_base = conv.b.base_seq
        self.b_scale = conv.b.win_scale
        # TcpTracker.shown() on every frame but the first, from each side
        comp = displayed_completeness(self.completeness, self.first_bits, False)
        self.a_shown = (self.a_base, self.b_base, self.a_scale, comp)
        self.b_shown = (self.b_base, self.a_base, self.b_scale, comp)


_PORT_PAIR = struct.Struct("!HH")


def flow_key(src: str, sport: int, dst: str, dport: int) -> bytes:
    """The conversation table's key for a directed 4-tuple: both addresses and both ports
    as the IP and TCP headers carry them.

    So the analyzer's one-unpack path uses the 12 bytes it reads from an IPv4 frame as
    they are (a bytes key keeps its hash; a tuple is hashed anew on every lookup).
    """
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    return (socket.inet_pton(family, src) + socket.inet_pton(family, dst)
            + _PORT_PAIR.pack(sport, dport))


def _reverse_key(key: bytes) -> bytes:
    """The :func:`flow_key` of the opposite direction."""
    n = (len(key) - 4) // 2
    return key[n : 2 * n] + key[:n] + key[2 * n + 2 :] + key[2 * n : 2 * n + 2]


class TcpTracker:
    """Feeds TCP segments in capture order; writes Wireshark's ``tcp.*`` analysis fields.

    The only state is the conversation table (directed 4-tuple, as :func:`flow_key`
    spells it → current :class:`Conversation`),
    so a live capture can use the same tracker packet by packet. Given ``final`` (from a
    first pass over the same packets, :meth:`final_states`), the displayed values are
    the ones ``tshark -2`` shows.
    """

    def __init__(self, final: list[FinalState] | None = None) -> None:
        self._table: dict[bytes, tuple[Conversation, Flow, Flow]] = {}
        self.conversations: list[Conversation] = []
        self.final = final

    def final_states(self) -> list[FinalState]:
        """Each stream's end state, to hand to the tracker of a second pass."""
        return [FinalState(c) for c in self.conversations]

    def shown(self, conv: Conversation, fwd: Flow, rev: Flow,
              frame: int) -> tuple[int, int, int, int]:
        """What a frame shows: ``(own base seq, peer's base seq, window scale, completeness)``.

        Wireshark computes relative numbers, the calculated window and completeness at
        display time from the conversation's current state; with ``final`` (``tshark -2``)
        that is the state at the end of the first pass.
        """
        shown = fwd.shown
        if shown is not None:
            if conv.first_frame != frame:
                return shown
            f = self.final[conv.stream]  # type: ignore[index]
            comp = displayed_completeness(f.completeness, f.first_bits, True)
            if fwd is conv.a:
                return f.a_base, f.b_base, f.a_scale, comp
            return f.b_base, f.a_base, f.b_scale, comp
        return fwd.base_seq, rev.base_seq, fwd.win_scale, conv.before

    def step(
        self,
        frame: int,
        ts_ns: int,
        key: bytes,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        seglen: int,
        window: int,
        wscale: int | None,
    ) -> tuple[int, Conversation, Flow, Flow]:
        """The analysis of one segment without a field dict: ``(flags, conversation, fwd, rev)``.

        ``fwd`` is the direction the segment travels, ``rev`` the other one; their
        ``base_seq``/``win_scale`` give the relative numbers and the calculated window.
        Both kinds of analyzer record (:mod:`tcplab.analyze.record`) come through here, so
        no view can disagree with another on a rule. ``key`` is the 4-tuple's
        :func:`flow_key`.
        """
        entry = self._table.get(key)
        if entry is not None and flags & _CONTROL == ACK:
            conv, fwd, rev = entry
            nextseq = fwd.nextseq
            rwindow = rev.window
            # An in-order segment of a known conversation — most of any capture. When it
            # starts at the next expected byte, neither window is zero, both ISNs are
            # known and the handshake RTT is settled, :meth:`_step`'s rules reduce to
            # the ones below: no zero-window probe, zero window, hole, keep-alive,
            # fast/plain retransmission or reordering is possible.
            # tests/analyze/test_tcp_analysis.py holds this shortcut equal to _step.
            if (seq == nextseq and nextseq and window and rwindow and fwd.base_set
                    and rev.base_set and (conv.first_rtt or not conv.syn_time)):
                conv.before = comp = conv.completeness
                conv.completeness = comp | (COMPLETENESS_DATA if seglen else COMPLETENESS_ACK)
                aflags = 0
                lastack = fwd.lastack
                rlastack = rev.lastack
                if seglen:
                    nextseq = (seq + seglen) & _M32
                    rscale = rev.win_scale
                    if (rscale != WS_UNKNOWN and nextseq == (
                            rlastack + (rwindow << (0 if rscale == WS_NONE else rscale))) & _M32):
                        aflags = WINDOW_FULL
                    if rlastack and (rlastack - nextseq) & _M32 < _HALF:
                        aflags |= SPURIOUS_RETRANSMISSION
                    fwd.nextseq = nextseq
                    fwd.nextseqtime = ts_ns
                elif ack == lastack:
                    if window != fwd.window:
                        aflags = WINDOW_UPDATE
                    elif rev.lastsegmentflags & KEEP_ALIVE:
                        aflags = KEEP_ALIVE_ACK
                    else:
                        fwd.dupacknum += 1
                        aflags = DUPLICATE_ACK
                if ack != lastack:
                    fwd.lastnondupack = frame
                    fwd.dupacknum = 0
                    rmax = rev.maxseqtobeacked
                    if rmax and (rmax - ack) & _M32 >= _HALF:
                        aflags |= ACK_LOST_PACKET
                        rev.maxseqtobeacked = rev.nextseq
                fmax = fwd.maxseqtobeacked
                if seq == fmax or not fmax:
                    fwd.maxseqtobeacked = nextseq
                fwd.window = window
                fwd.lastack = ack
                fwd.lastacktime = ts_ns
                fwd.lastsegmentflags = aflags
                return aflags, conv, fwd, rev
        return self._step(frame, ts_ns, key, src, dst, sport, dport, seq, ack, flags, seglen,
                          window, wscale)

    def _step(
        self,
        frame: int,
        ts_ns: int,
        key: bytes,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        seglen: int,
        window: int,
        wscale: int | None,
    ) -> tuple[int, Conversation, Flow, Flow]:
        """:meth:`step` for every segment: packet-tcp.c's rules in full."""
        # Keyed by the directed 4-tuple, so one lookup gives the conversation and direction.
        entry = self._table.get(key)
        aflags = 0
        if entry is None:
            conv = self._new(key, src, sport, dst, dport, frame)
            fwd, rev = conv.a, conv.b
        else:
            conv, fwd, rev = entry
        # The hot path of every view: flag tests and the peer's fields are read once into
        # locals (attribute loads are most of this method's cost).
        ackf = flags & ACK
        syn = flags & SYN
        if syn:
            if not ackf:
                if fwd.base_set and seq != fwd.base_seq:
                    # A new SYN with another ISN on a known 4-tuple: the ports were reused.
                    conv = self._new(key, src, sport, dst, dport, frame)
                    fwd, rev = conv.a, conv.b
                    aflags |= REUSED_PORTS
            elif fwd.base_set and seq != fwd.base_seq:
                # A SYN/ACK with another ISN: Wireshark keeps the stream, restarts this
                # direction's numbering and calls it port reuse.
                fwd.base_set = False
                aflags |= REUSED_PORTS

        # Window scaling: the option only counts on SYNs (RFC 7323 §2.2).
        if syn:
            if wscale is not None:
                fwd.win_scale = 14 if wscale > 14 else wscale
            if fwd.win_scale == WS_UNKNOWN:
                fwd.win_scale = WS_NONE
                rev.win_scale = WS_NONE
            elif ackf and rev.win_scale == WS_NONE:
                fwd.win_scale = WS_NONE
            if not ackf:
                conv.syn_time = ts_ns
        elif ackf and conv.syn_time and not conv.first_rtt:
            conv.first_rtt = ts_ns - conv.syn_time

        # Conversation completeness, as tshark 4.0 reports it (checked against it, see
        # docs/analyze.md): the frame that opens a conversation counts only if it is a
        # SYN; every later frame adds its bits.
        bits = _COMPLETENESS_BITS[flags | 512] if seglen else _COMPLETENESS_BITS[flags]
        conv.before = conv.completeness
        if conv.first_frame == frame:
            conv.first_bits = bits
            if syn and not ackf:
                conv.completeness |= COMPLETENESS_SYN
                if aflags & REUSED_PORTS:
                    # tshark's one pass shows a port-reusing SYN's new stream with its SYN
                    # bit already counted (it renews the conversation before display).
                    conv.before = conv.completeness
        else:
            conv.completeness |= bits

        # --- packet-tcp.c tcp_analyze_sequence_number(), rule for rule ---
        if not fwd.base_set:
            fwd.base_seq = seq if syn else (seq - 1) & _M32
            fwd.base_set = True
        # The peer's ISN is learnt from the first segment with ACK set (not from a SYN's ack).
        if ackf and not rev.base_set:
            rev.base_seq = (ack - 1) & _M32
            rev.base_set = True

        nextseq = fwd.nextseq
        lastack = fwd.lastack
        fwindow = fwd.window
        rwindow = rev.window
        rlastack = rev.lastack
        synfin = flags & _SYN_FIN
        no_sfr = not flags & _SYN_FIN_RST
        jumped = False  # the "goto finished_fwd" shortcuts of packet-tcp.c

        # Zero window probe: one byte at the next expected sequence number into a zero window.
        if seglen == 1 and seq == nextseq and rwindow == 0:
            aflags |= ZERO_WINDOW_PROBE
            jumped = True
        if not jumped:
            if window == 0 and no_sfr:
                aflags |= ZERO_WINDOW
            # Lost segment: a hole before this one (RSTs are not judged).
            if nextseq and (nextseq - seq) & _M32 >= _HALF and not flags & RST:  # GT_SEQ
                aflags |= LOST_PACKET
            # Keep-alive: 0 or 1 byte starting one byte before the next expected byte.
            if seglen <= 1 and seq == (nextseq - 1) & _M32 and no_sfr:
                aflags |= KEEP_ALIVE
            same = seglen == 0 and seq == nextseq and ack == lastack and no_sfr
            if same and window and window != fwindow:
                aflags |= WINDOW_UPDATE
            if seglen and no_sfr:
                rscale = rev.win_scale
                if (rscale != WS_UNKNOWN and (seq + seglen) & _M32 == (
                        rlastack + (rwindow << (0 if rscale == WS_NONE else rscale))) & _M32):
                    aflags |= WINDOW_FULL
            if same:
                if window and window == fwindow and rev.lastsegmentflags & KEEP_ALIVE:
                    aflags |= KEEP_ALIVE_ACK
                    jumped = True
                elif (window == 0 and fwindow == 0
                        and rev.lastsegmentflags & ZERO_WINDOW_PROBE):
                    aflags |= ZERO_WINDOW_PROBE_ACK
                    jumped = True
                elif window and window == fwindow:
                    fwd.dupacknum += 1
                    aflags |= DUPLICATE_ACK

        # finished_fwd: a changed ack number restarts duplicate-ACK counting.
        ack_changed = ack != lastack
        if ack_changed:
            fwd.lastnondupack = frame
            fwd.dupacknum = 0
            # ACKed unseen segment: acknowledges bytes the other direction never showed
            # us. tshark 4.0.17 mostly does not repeat the tag on a segment that repeats
            # the previous ack number; requiring a changed ack reproduces that (found by
            # differential runs over lossy captures, where it halves the disagreements of
            # the plain 3.x rule; the remaining ones are listed in docs/analyze.md).
            rmax = rev.maxseqtobeacked
            if rmax and ackf and (rmax - ack) & _M32 >= _HALF:
                aflags |= ACK_LOST_PACKET
                rev.maxseqtobeacked = rev.nextseq

        if (seglen or synfin) and not aflags & KEEP_ALIVE:
            seq_not_advanced = bool(nextseq) and (seq - nextseq) & _M32 >= _HALF  # LT_SEQ
            # More than one new byte right after a possible zero-window probe is new data.
            if seglen > 1 and (nextseq - 1) & _M32 == seq:
                seq_not_advanced = False
            t = ts_ns - rev.lastacktime
            if (seq_not_advanced and rev.dupacknum >= 2 and rlastack == seq
                    and 0 <= t < FAST_RETRANSMISSION_WINDOW_NS):
                aflags |= FAST_RETRANSMISSION
            else:
                t = ts_ns - fwd.nextseqtime
                if t < 0:
                    t = _NEVER
                thres = conv.first_rtt or DEFAULT_OOO_THRESHOLD_NS
                if seglen and rlastack and (rlastack - seq - seglen) & _M32 < _HALF:
                    # not GT_SEQ(seq + seglen, rev.lastack): a resend of acknowledged data.
                    # Checked before out-of-order, as tshark 4.0 does: data the peer has
                    # already acknowledged is spurious even when it arrives within the
                    # reordering threshold (a fast retransmission starts at the peer's
                    # ack, so it can never be spurious and its test may come first).
                    aflags |= SPURIOUS_RETRANSMISSION
                elif (seq_not_advanced and t < thres
                        and nextseq != (seq + seglen + (1 if synfin else 0)) & _M32):
                    aflags |= OUT_OF_ORDER
                elif seq_not_advanced:
                    aflags |= RETRANSMISSION

        nxt = (seq + seglen + 1) & _M32 if synfin else (seq + seglen) & _M32
        if not aflags & ZERO_WINDOW_PROBE:
            if not nextseq or (nextseq - nxt) & _M32 >= _HALF:
                fwd.nextseq = nextseq = nxt
                fwd.nextseqtime = ts_ns
            fmax = fwd.maxseqtobeacked
            if seq == fmax or not fmax:
                fwd.maxseqtobeacked = nextseq

        fwd.window = window
        fwd.lastack = ack
        fwd.lastacktime = ts_ns
        fwd.lastsegmentflags = aflags
        return aflags, conv, fwd, rev

    def touch(self, frame: int, src: str, sport: int, dst: str, dport: int, flags: int = 0,
              count_flags: bool = False) -> Conversation:
        """The stream of a segment whose TCP header is too damaged to analyse.

        tshark still numbers such a segment's conversation (so a damaged SYN does not
        make its stream vanish, and the handshake's next frame is not the stream's first);
        no sequence analysis comes from it. ``count_flags``: the fault lies past the fixed
        header (tshark analysed that much), so its flags count towards completeness as
        those of a segment without payload.
        """
        key = flow_key(src, sport, dst, dport)
        entry = self._table.get(key)
        conv = self._new(key, src, sport, dst, dport, frame) if entry is None else entry[0]
        conv.before = conv.completeness
        if count_flags:
            if conv.first_frame != frame:
                conv.completeness |= _COMPLETENESS_BITS[flags & 0x1FF]
            elif flags & (SYN | ACK) == SYN:
                conv.completeness |= COMPLETENESS_SYN
        return conv

    def shown_completeness(self, conv: Conversation, frame: int) -> int:
        """The ``tcp.completeness`` a frame shows (one pass: before its bits; -2: final)."""
        final = self.final
        if final is not None and conv.stream < len(final):
            f = final[conv.stream]
            return displayed_completeness(f.completeness, f.first_bits, f.first_frame == frame)
        return conv.before

    def _new(self, key: bytes, src: str, sport: int, dst: str, dport: int,
             frame: int) -> Conversation:
        conv = Conversation(len(self.conversations), src, sport, dst, dport, frame)
        self.conversations.append(conv)
        final = self.final
        if final is not None and conv.stream < len(final):
            f = final[conv.stream]
            conv.a.shown, conv.b.shown = f.a_shown, f.b_shown
        self._table[key] = (conv, conv.a, conv.b)
        self._table[_reverse_key(key)] = (conv, conv.b, conv.a)
        return conv
