"""Explanations (``--explain``): plain-language notes generated from the packets themselves.

Every sentence is built from what this capture contains — which flag combinations occur
and where, which conversations had a handshake, which segments were answered by RST,
which sequence numbers repeat, which analysis tags Wireshark's rules set, which checksums
failed and on which addresses. Only the *meaning* of a flag or a tag is fixed text (the
RFC's definition); whether it is said, and with which numbers, depends on the capture.

The reasoning follows the course report (SEED.md Part 1): data segments sent to a port
with no handshake are answered by RST from the receiver's kernel; segments reusing
sequence number 0 are marked retransmissions; bad TCP checksums on loopback are checksum
offload, not corruption.

What it must never do: print, read files, or repeat peer text unescaped (everything from
the capture goes through :func:`~tcplab.analyze.render.safe_text`). State is per
conversation and per tag with bounded frame lists, so long captures cost no more memory
than short ones beyond their number of conversations.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from tcplab.analyze import conversations as _conv
from tcplab.analyze import http_summary as _http
from tcplab.analyze.http import CHAT_PORTS
from tcplab.analyze.render import safe_text
from tcplab.packet.tcp import flags_text

#: Frame numbers kept per finding (the count stays exact; text lists the first few).
MAX_FRAMES = 12
#: Conversations described one by one before the rest are summarised by count.
MAX_STREAM_NOTES = 8

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# The meaning of each flag (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
FLAG_MEANINGS = (
    (SYN, "SYN", "SYN (synchronize) opens a connection: it carries the sender's initial "
                 "sequence number, and the other side answers SYN-ACK"),
    (ACK, "ACK", "ACK says the acknowledgment field is valid: it names the next byte the sender "
                 "expects from the other side, confirming everything before it"),
    (PSH, "PSH", "PSH (push) asks the receiver to hand the data to the application at once "
                 "instead of waiting to fill its buffer"),
    (FIN, "FIN", "FIN says the sender has no more data: one direction of the connection closes "
                 "in an orderly way, and the other side ACKs it"),
    (RST, "RST", "RST (reset) aborts: the sender refuses or drops the connection at once, "
                 "without the FIN exchange, and any data in flight is discarded"),
    (URG, "URG", "URG says the urgent pointer is valid (rarely used today)"),
    (ECE, "ECE", "ECE (ECN-Echo) reports congestion marked by a router, or offers ECN on a SYN"),
    (CWR, "CWR", "CWR tells the receiver the sender has reduced its congestion window"),
)

# What each analysis tag means, and what usually causes it (Wireshark's rules, RFC 9293/5681).
TAG_MEANINGS: dict[str, tuple[str, str]] = {
    "fast_retransmission": (
        "TCP Fast Retransmission",
        "a segment resent right after duplicate ACKs reported a gap (RFC 5681 fast "
        "retransmit), without waiting for the retransmission timer"),
    "spurious_retransmission": (
        "TCP Spurious Retransmission",
        "a resend of data the receiver had already acknowledged: the original was not lost, "
        "the sender's timer fired too early"),
    "out_of_order": (
        "TCP Out-Of-Order",
        "a segment that fills a gap earlier than the highest sequence number seen, arriving "
        "shortly after (within the handshake round-trip time): it took a slower path"),
    "lost_segment": (
        "TCP Previous segment not captured",
        "this segment starts beyond the next expected byte: the bytes in between were lost, "
        "or the capture missed them"),
    "ack_lost_segment": (
        "TCP ACKed unseen segment",
        "the ACK covers bytes this capture never saw: the capture missed them (it started late "
        "or dropped packets), since the receiver clearly got them"),
    "duplicate_ack": (
        "TCP Dup ACK",
        "the receiver repeats the same ACK with no new data: it keeps asking for the byte it is "
        "missing, usually because a segment was lost; three duplicates trigger fast retransmit"),
    "zero_window": (
        "TCP ZeroWindow",
        "the receiver advertises a window of 0: its buffer is full because the application is "
        "not reading, so the sender must stop and wait"),
    "zero_window_probe": (
        "TCP ZeroWindowProbe",
        "the sender probes a zero window with one byte to learn when it opens again"),
    "window_full": (
        "TCP Window Full",
        "the sender has filled the receiver's whole advertised window and must wait for an ACK"),
    "window_update": (
        "TCP Window Update",
        "a pure ACK whose only news is a changed window: the receiver has room again"),
    "keep_alive": (
        "TCP Keep-Alive",
        "a probe one byte before the next expected sequence number, sent on an idle connection "
        "to check that the peer is still there"),
    "reused_ports": (
        "TCP Port numbers reused",
        "a new SYN on a four-tuple that already had a conversation: a new connection reusing "
        "the same ports"),
}

# RFC 9110 §15 meanings of the status codes a student most often meets.
STATUS_MEANINGS = {
    200: "the request succeeded",
    201: "a new resource was created",
    204: "success, with no body to send back",
    301: "the resource moved permanently (see Location)",
    302: "the resource is temporarily elsewhere (typical after a login form)",
    304: "the client's cached copy is still valid, so no body is sent: use the cache",
    400: "the server could not understand the request",
    401: "authentication is required",
    403: "the server refuses to serve this",
    404: "the server has no resource at that URI",
    500: "the server failed while handling the request",
    503: "the server is temporarily unable to handle it",
}


_CHECKSUM_KEYS = (("ip", "ip.checksum.status"), ("tcp", "tcp.checksum.status"),
                  ("udp", "udp.checksum.status"))
_TAG_KEYS = tuple((name, "tcp.analysis." + name) for name in (*TAG_MEANINGS, "retransmission"))


@dataclass
class Note:
    """One explanation paragraph, with the frames and streams it is about (for ``--json``)."""

    topic: str
    text: str
    frames: list[int] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)


class _Frames:
    """A count with the first few frame numbers."""

    __slots__ = ("count", "frames")

    def __init__(self) -> None:
        self.count = 0
        self.frames: list[int] = []

    def add(self, frame: int) -> None:
        self.count += 1
        if len(self.frames) < MAX_FRAMES:
            self.frames.append(frame)


def _frames_text(frames: list[int], count: int | None = None) -> str:
    count = len(frames) if count is None else count
    if not frames:
        return ""
    word = "frame" if count == 1 else "frames"
    text = ", ".join(map(str, frames))
    if count > len(frames):
        text += f" … ({count} in all)"
    return f"{word} {text}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


@dataclass(slots=True)
class _Stream:
    """What explanations need about one conversation beyond the conversations table."""

    handshake_frames: list[int] = field(default_factory=list)
    syn_options: str = ""  # what the opening SYN offered (MSS, window scale, SACK, timestamps)
    data_raw_seqs: set[int] = field(default_factory=set)  # from the data sender, up to 8
    data_lengths: set[int] = field(default_factory=set)
    data_flags: set[int] = field(default_factory=set)
    data_sender: str = ""
    data_ack_raw: int | None = None
    rst_frames: list[int] = field(default_factory=list)
    rst_seq_raws: set[int] = field(default_factory=set)
    rst_seq_rel: int | None = None
    rst_delay_sum: float = 0.0
    rst_delay_count: int = 0
    fin_frames: list[int] = field(default_factory=list)
    last_data_time: float | None = None
    last_data_from: str = ""
    data_seq_rel: int | None = None
    chat_lines: list[str] = field(default_factory=list)
    chat_count: int = 0


def _endpoint(d: dict, which: str) -> str:
    addr = str(d.get(f"ip.{which}") or d.get(f"ipv6.{which}") or "?")
    port = d.get(f"tcp.{which}port", d.get(f"udp.{which}port", "?"))
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@lru_cache(maxsize=4096)
def _loopback_address(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _is_loopback(d: dict) -> bool:
    """Both addresses loopback (a capture of lo: every bad checksum there is offload)."""
    for key in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst"):
        v = d.get(key)
        if v is not None and not _loopback_address(str(v)):
            return False
    return any(k in d for k in ("ip.src", "ipv6.src"))


def _syn_options(d: dict) -> str:
    """The options a SYN offered, each with what it is for (empty when it carried none)."""
    parts = []
    mss = d.get("tcp.options.mss_val")
    if mss is not None:
        parts.append(f"MSS {mss} (the largest segment payload this side accepts)")
    shift = d.get("tcp.options.wscale.shift")
    if shift is not None:
        mult = d.get("tcp.options.wscale.multiplier", 1 << min(int(shift), 14))
        parts.append(f"window scale {shift} (advertised windows count in units of {mult} "
                     f"bytes, RFC 7323)")
    if d.get("tcp.options.sack_perm"):
        parts.append("SACK permitted (the receiver may acknowledge blocks past a gap, RFC 2018)")
    if d.get("tcp.options.timestamp.tsval") is not None:
        parts.append("timestamps (TSval/TSecr for round-trip measurement and protection "
                     "against wrapped sequence numbers, RFC 7323)")
    return "; ".join(parts)


def _bad(status: object) -> bool:
    if isinstance(status, str):
        return status.strip().lower() in ("bad", "0")
    return status == 0 and not isinstance(status, bool)


class Explainer:
    """Collects what the notes need in one pass: ``add`` each packet dict, then ``notes()``."""

    def __init__(self) -> None:
        self.packets = 0
        self.first_time: float | None = None
        self.last_time = 0.0
        self.protocols: Counter = Counter()
        self.flag_combos: dict[int, _Frames] = {}
        self.tags: dict[str, _Frames] = {}
        self.tag_streams: dict[str, set[int]] = {}
        self.checksums_bad: dict[str, _Frames] = {}
        self.checksums_bad_not_loopback: dict[str, _Frames] = {}
        self.malformed = _Frames()
        self.malformed_reasons: Counter = Counter()
        self.udp = 0
        self.dns = 0
        self.conversations = _conv.ConversationTable()
        self.http = _http.HttpTable()
        self.streams: dict[int, _Stream] = {}
        self.chat_dirs: Counter = Counter()  # (source port, destination port) of chat lines
        self.chat_flags: set[int] = set()
        self.retrans_seq_examples: dict[int, tuple[int, int]] = {}  # stream -> (frame, seq)

    # -- collection ----------------------------------------------------------------------------
    def add(self, d: dict) -> None:
        self.packets += 1
        frame = int(d.get("frame.number", self.packets) or self.packets)
        t = float(d.get("frame.time_relative", 0.0) or 0.0)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        proto = d.get("_ws.col.Protocol")
        if proto:
            self.protocols[safe_text(str(proto))] += 1
        if d.get("_ws.malformed"):
            self.malformed.add(frame)
            reason = d.get("_ws.malformed")
            if isinstance(reason, str):
                self.malformed_reasons[safe_text(reason)] += 1
        for layer, key in _CHECKSUM_KEYS:
            status = d.get(key)
            if status is not None and status != "good" and _bad(status):
                self.checksums_bad.setdefault(layer, _Frames()).add(frame)
                if not _is_loopback(d):
                    self.checksums_bad_not_loopback.setdefault(layer, _Frames()).add(frame)
        if "udp.srcport" in d:
            self.udp += 1
            if 53 in (d.get("udp.srcport"), d.get("udp.dstport")) or any(
                    k.startswith("dns.") for k in d):
                self.dns += 1
        self.http.add(d)
        stream_id = d.get("tcp.stream")
        if stream_id is None:
            return
        self.conversations.add(d)
        flags = int(d.get("tcp.flags", 0) or 0)
        self.flag_combos.setdefault(flags, _Frames()).add(frame)
        for name, key in _TAG_KEYS:
            if d.get(key):
                self.tags.setdefault(name, _Frames()).add(frame)
                streams = self.tag_streams.setdefault(name, set())
                if len(streams) < 1000:
                    streams.add(int(stream_id))
        s = self.streams.get(stream_id)
        if s is None:
            s = self.streams[stream_id] = _Stream()
        src = _endpoint(d, "src")
        length = int(d.get("tcp.len", 0) or 0)
        opening = flags & (SYN | RST) == SYN or (
            flags & ACK and len(s.handshake_frames) == 2 and not length and not flags & (FIN | RST))
        if opening and len(s.handshake_frames) < 3:
            s.handshake_frames.append(frame)
            if flags & (SYN | ACK) == SYN and not s.syn_options:
                s.syn_options = _syn_options(d)
        if length and not flags & SYN:
            if not s.data_sender:
                s.data_sender = src
            if src == s.data_sender:
                if len(s.data_raw_seqs) < 8 and d.get("tcp.seq_raw") is not None:
                    s.data_raw_seqs.add(int(d["tcp.seq_raw"]))
                if len(s.data_lengths) < 8:
                    s.data_lengths.add(length)
                s.data_flags.add(flags & 0x1FF)
                if d.get("tcp.ack_raw") is not None:
                    s.data_ack_raw = int(d["tcp.ack_raw"])
                if s.data_seq_rel is None and d.get("tcp.seq") is not None:
                    s.data_seq_rel = int(d["tcp.seq"])
            s.last_data_time = t
            s.last_data_from = src
        if flags & RST:
            if len(s.rst_frames) < MAX_FRAMES:
                s.rst_frames.append(frame)
            if d.get("tcp.seq_raw") is not None and len(s.rst_seq_raws) < 8:
                s.rst_seq_raws.add(int(d["tcp.seq_raw"]))
            if s.rst_seq_rel is None and d.get("tcp.seq") is not None:
                s.rst_seq_rel = int(d["tcp.seq"])
            if s.last_data_time is not None and s.last_data_from != src:
                s.rst_delay_sum += t - s.last_data_time
                s.rst_delay_count += 1
            s.last_data_time = None
        if flags & FIN and len(s.fin_frames) < 4:
            s.fin_frames.append(frame)
        if str(proto).upper() == "CHAT" and length:
            s.chat_count += 1
            pair = (d.get("tcp.srcport"), d.get("tcp.dstport"))
            if pair in self.chat_dirs or len(self.chat_dirs) < 256:
                self.chat_dirs[pair] += 1
            if len(self.chat_flags) < 16:
                self.chat_flags.add(flags & 0x1FF)
            if len(s.chat_lines) < 6 and d.get("_ws.col.Info"):
                s.chat_lines.append(safe_text(str(d["_ws.col.Info"]))[:120])

    # -- notes ---------------------------------------------------------------------------------
    def notes(self) -> list[Note]:
        if not self.packets:
            return [Note("overview", "The capture holds no packets: there is nothing to explain.")]
        summaries = self.conversations.summaries()
        out = [self._overview(summaries)]
        out += self._flags()
        out += self._streams(summaries)
        out += self._retransmissions(summaries)
        out += self._other_tags()
        out += self._incomplete(summaries)
        out += self._checksums()
        out += self._chat()
        out += self._http()
        out += self._malformed()
        return [n for n in out if n.text]

    def _overview(self, summaries: list[_conv.ConversationSummary]) -> Note:
        span = self.last_time - (self.first_time or 0.0)
        parts = []
        tcp_packets = sum(c.packets_ab + c.packets_ba for c in summaries)
        if tcp_packets:
            parts.append(f"{_plural(tcp_packets, 'TCP segment')} in "
                         f"{_plural(len(summaries), 'conversation')}")
        if self.udp:
            dns = f" ({self.dns} of them DNS)" if self.dns else ""
            parts.append(f"{_plural(self.udp, 'UDP datagram')}{dns}")
        other = self.packets - tcp_packets - self.udp
        if other:
            parts.append(f"{other} other")
        protos = ", ".join(f"{p} {n}" for p, n in self.protocols.most_common(6))
        text = (f"The capture holds {_plural(self.packets, 'packet')} over {span:.3f} s: "
                f"{'; '.join(parts) or 'nothing TCP/IP'}.")
        if protos:
            text += f" By protocol column: {protos}."
        return Note("overview", text, streams=[c.stream for c in summaries[:MAX_STREAM_NOTES]])

    def _flags(self) -> list[Note]:
        if not self.flag_combos:
            return []
        combos = sorted(self.flag_combos.items(), key=lambda kv: kv[1].frames[0])
        listed = "; ".join(
            f"[{flags_text(flags)}] on {_plural(fr.count, 'segment')} ({_frames_text(fr.frames[:6], fr.count)})"
            for flags, fr in combos
        )
        seen = 0
        for flags in self.flag_combos:
            seen |= flags
        meanings = ". ".join(text[0].upper() + text[1:] for bit, _name, text in FLAG_MEANINGS
                             if seen & bit)
        frames = [f for _, fr in combos for f in fr.frames[:3]]
        return [Note("flags", f"TCP flags seen: {listed}. {meanings}.", frames=sorted(frames))]

    def _streams(self, summaries: list[_conv.ConversationSummary]) -> list[Note]:
        notes: list[Note] = []
        handshakes = [c for c in summaries if c.syn_from_a and c.syn_ack_from_b]
        refused = [c for c in summaries if c.syn_from_a and not c.syn_ack_from_b and c.rst_b]
        unanswered = [c for c in summaries if c.syn_from_a and not c.syn_ack_from_b and not c.rst_b]
        no_handshake = [c for c in summaries if not c.syn_from_a]
        if handshakes:
            c = handshakes[0]
            hs = self.streams[c.stream].handshake_frames
            if c.fin_a and c.fin_b:
                ended = "closed with FIN from both sides"
            elif c.rst_a or c.rst_b:
                ended = "was reset"
            elif c.fin_a or c.fin_b:
                ended = "was closed by one side only"
            else:
                ended = "was still open when the capture ended"
            text = (f"{_plural(len(handshakes), 'conversation')} opened with the three-way "
                    f"handshake. For example stream {c.stream}: {safe_text(c.endpoint_a)} sent SYN, "
                    f"{safe_text(c.endpoint_b)} answered SYN-ACK, and the client's ACK completed it"
                    f"{' (' + _frames_text(hs) + ')' if hs else ''}; it then carried "
                    f"{_plural(c.data_ab + c.data_ba, 'data segment')} and {ended}. The handshake "
                    f"is where both sides pick their initial sequence numbers; Wireshark shows "
                    f"sequence numbers relative to them, so the first data byte is Seq=1.")
            notes.append(Note("handshake", text, frames=hs,
                              streams=[x.stream for x in handshakes[:MAX_STREAM_NOTES]]))
        with_options = next((x for x in handshakes if self.streams[x.stream].syn_options), None)
        if with_options is not None:
            c = with_options
            notes.append(Note(
                "syn_options",
                f"The opening SYN of stream {c.stream} (frame "
                f"{self.streams[c.stream].handshake_frames[0]}) also negotiates: "
                f"{self.streams[c.stream].syn_options}. MSS, window scale and SACK-permitted "
                f"are sent only on SYN and SYN-ACK: each side states what it supports, and "
                f"window scaling, SACK and timestamps are used only if both sides offer them.",
                frames=self.streams[c.stream].handshake_frames[:1], streams=[c.stream]))
        if refused:
            ports = Counter(c.port_b for c in refused)
            port_text = ", ".join(f"{p} ({n}×)" if n > 1 else str(p) for p, n in ports.most_common(5))
            frames = [f for c in refused for f in self.streams[c.stream].rst_frames[:1]]
            notes.append(Note(
                "refused",
                f"{_plural(len(refused), 'connection attempt')} got RST instead of SYN-ACK "
                f"(port {port_text}; {_frames_text(frames[:MAX_FRAMES], len(refused))}): nothing "
                f"was listening there, so the receiving kernel refused the connection — what a "
                f"program sees as 'connection refused'.",
                frames=frames[:MAX_FRAMES], streams=[c.stream for c in refused[:MAX_STREAM_NOTES]]))
        if unanswered:
            c = unanswered[0]
            notes.append(Note(
                "syn_unanswered",
                f"{_plural(len(unanswered), 'connection attempt')} sent SYN and got no answer in "
                f"the capture (e.g. stream {c.stream} to {safe_text(c.endpoint_b)}): the peer is "
                f"down or a firewall dropped it silently.",
                streams=[x.stream for x in unanswered[:MAX_STREAM_NOTES]]))
        reset = [c for c in handshakes if c.rst_a or c.rst_b]
        if reset:
            frames = [f for c in reset for f in self.streams[c.stream].rst_frames[:1]]
            by_client = sum(1 for c in reset if c.rst_a and not c.rst_b)
            by_server = sum(1 for c in reset if c.rst_b and not c.rst_a)
            who = ("the client side" if by_client == len(reset) else
                   "the server side" if by_server == len(reset) else "either side")
            after_fin = sum(1 for c in reset if c.fin_a or c.fin_b)
            notes.append(Note(
                "reset",
                f"{_plural(len(reset), 'conversation')} ended with RST rather than a FIN "
                f"exchange, sent by {who} ({_frames_text(frames[:MAX_FRAMES], len(reset))}"
                f"{f'; {after_fin} after a FIN' if after_fin else ''}). A program that closes its "
                f"socket while received data is still unread, or that aborts, makes its kernel "
                f"send RST: the connection is dropped at once and anything still in flight is "
                f"lost.",
                frames=frames[:MAX_FRAMES], streams=[c.stream for c in reset[:MAX_STREAM_NOTES]]))
        # Every data segment (either way) was followed by a RST from the side it was sent to.
        rst_answered = [c for c in no_handshake
                        if (c.data_ab or c.data_ba) and (c.rst_a or c.rst_b)
                        and c.data_answered_by_rst >= c.data_ab + c.data_ba]
        for c in rst_answered[:MAX_STREAM_NOTES]:
            notes.append(self._rst_answered(c))
        if len(rst_answered) > MAX_STREAM_NOTES:
            notes.append(Note("no_handshake_rst", f"{len(rst_answered) - MAX_STREAM_NOTES} more "
                              "conversations show the same pattern (data without a handshake, "
                              "each segment answered by RST)."))
        others = [c for c in no_handshake if c not in rst_answered and (c.data_ab or c.data_ba)]
        if others:
            c = others[0]
            notes.append(Note(
                "no_handshake",
                f"{_plural(len(others), 'conversation')} "
                f"{'carries' if len(others) == 1 else 'carry'} data without a handshake in the "
                f"capture (e.g. stream {c.stream}, {safe_text(c.endpoint_a)} → "
                f"{safe_text(c.endpoint_b)}, from frame {c.first_frame}). Either the capture "
                f"started after the connection opened, or the segments were built by hand without "
                f"one; Wireshark then cannot know the initial sequence numbers and counts from the "
                f"first segment it sees.",
                frames=[c.first_frame], streams=[x.stream for x in others[:MAX_STREAM_NOTES]]))
        return notes

    def _rst_answered(self, c: _conv.ConversationSummary) -> Note:
        s = self.streams[c.stream]
        lengths = sorted(s.data_lengths)
        size = (f"{lengths[0]} bytes" if len(lengths) == 1 else
                f"{lengths[0]}–{lengths[-1]} bytes")
        combos = sorted(flags_text(f) for f in s.data_flags) or ["data"]
        delay = ""
        if s.rst_delay_count:
            avg = s.rst_delay_sum / s.rst_delay_count
            delay = f", on average {avg * 1000:.3f} ms later"
        if c.data_ba:
            # Both ends were forged (the seed CSV also holds the server's answers).
            who = (f"{safe_text(c.endpoint_a)} and {safe_text(c.endpoint_b)} exchanged "
                   f"{_plural(c.data_ab + c.data_ba, 'data segment')} ({c.data_ab} A→B, "
                   f"{c.data_ba} B→A; {size}, flags [{combos[0]}])")
            ports = f"ports {c.port_a} and {c.port_b}"
            answered = "a RST from the side it was sent to"
        else:
            who = (f"{safe_text(c.endpoint_a)} sent {_plural(c.data_ab, 'data segment')} "
                   f"({size}, flags [{combos[0]}]) to {safe_text(c.endpoint_b)}")
            ports = f"port {c.port_b}"
            answered = f"a RST from port {c.port_b}"
        text = (
            f"Stream {c.stream}: {who} with no three-way handshake — there is no SYN for this "
            f"conversation in the capture, so the segments claim to belong to a connection that "
            f"was never opened. Every one was answered by {answered} "
            f"({_frames_text(s.rst_frames, c.rst_a + c.rst_b)}{delay}). That is the receiving "
            f"kernel answering segments that match no connection (RFC 9293 §3.10.7.1): nothing "
            f"is listening on {ports}, and even with a listener a segment without a "
            f"handshake belongs to no connection. None of the data reached an application.")
        if s.data_ack_raw is not None and s.rst_seq_raws == {s.data_ack_raw}:
            text += (f" Each RST takes its sequence number from the offending segment's ACK field "
                     f"(raw {s.data_ack_raw}), as the RFC prescribes when the segment had ACK set"
                     f"; Wireshark shows it as Seq={s.rst_seq_rel}.")
        if combos[0] == "PSH, ACK":
            text += (" The segments carry PSH+ACK as if mid-conversation: PSH to deliver at once, "
                     "ACK to claim an acknowledgment number — but there was no conversation.")
        return Note("no_handshake_rst", text, frames=s.rst_frames, streams=[c.stream])

    def _retransmissions(self, summaries: list[_conv.ConversationSummary]) -> list[Note]:
        tag = self.tags.get("retransmission")
        if not tag:
            return []
        streams = sorted(self.tag_streams.get("retransmission", ()))
        by_stream = {c.stream: c for c in summaries}
        text = (f"{_plural(tag.count, 'segment')} {'is' if tag.count == 1 else 'are'} marked "
                f"[TCP Retransmission] ({_frames_text(tag.frames, tag.count)}) in "
                f"{_plural(len(streams), 'stream')} ({', '.join(map(str, streams[:10]))}). "
                f"Wireshark marks a segment as a retransmission when it carries data and starts "
                f"before the highest sequence number already seen in that direction: those bytes "
                f"were already sent.")
        for sid in streams[:MAX_STREAM_NOTES]:
            s = self.streams.get(sid)
            c = by_stream.get(sid)
            if s is None or c is None:
                continue
            if len(s.data_raw_seqs) == 1 and max(c.data_ab, c.data_ba) > 1:
                (raw,) = s.data_raw_seqs
                lengths = sorted(s.data_lengths)
                differ = (f" even though their lengths differ ({', '.join(map(str, lengths[:6]))} "
                          "bytes), so they are really different messages") if len(lengths) > 1 else ""
                text += (f" In stream {sid} every data segment from {safe_text(s.data_sender)} "
                         f"starts at the same raw sequence number {raw} (Seq={s.data_seq_rel}). "
                         f"TCP numbers bytes, not segments: each new segment must start where the "
                         f"previous one ended (Seq + Len). Starting again at {raw} makes every "
                         f"segment after the first look like a resend of the same bytes{differ}. "
                         f"The sender never advanced its sequence number — each packet was built "
                         f"on its own rather than by one TCP connection.")
        if any(sid in self.tag_streams.get("lost_segment", ()) for sid in streams):
            text += " The stream also shows lost segments, so some resends answer real loss."
        elif not any(len(self.streams[s].data_raw_seqs) == 1 for s in streams if s in self.streams):
            text += (" The usual cause is loss: the sender got no ACK before its retransmission "
                     "timer expired (or a lost ACK), and sent the bytes again.")
        return [Note("retransmission", text, frames=tag.frames, streams=streams[:MAX_STREAM_NOTES])]

    def _other_tags(self) -> list[Note]:
        notes = []
        for name, (label, meaning) in TAG_MEANINGS.items():
            tag = self.tags.get(name)
            if not tag:
                continue
            streams = sorted(self.tag_streams.get(name, ()))
            where = f"stream {streams[0]}" if len(streams) == 1 else \
                f"streams {', '.join(map(str, streams[:10]))}"
            text = (f"[{label}] on {_plural(tag.count, 'segment')} in {where} "
                    f"({_frames_text(tag.frames, tag.count)}): {meaning}.")
            if name == "duplicate_ack" and tag.count >= 3 and not self.tags.get("fast_retransmission"):
                text += (" Here no fast retransmission follows in the capture: the sender had "
                         "nothing more to send, or the missing data arrived.")
            if name == "zero_window" and self.tags.get("window_update"):
                upd = self.tags["window_update"]
                text += f" The window opens again with a window update ({_frames_text(upd.frames[:3], upd.count)})."
            notes.append(Note(name, text, frames=tag.frames, streams=streams[:MAX_STREAM_NOTES]))
        return notes

    def _incomplete(self, summaries: list[_conv.ConversationSummary]) -> list[Note]:
        incomplete = [c for c in summaries if not c.completeness_text.startswith("Complete")]
        if not incomplete:
            if summaries:
                subject = ("The TCP conversation is" if len(summaries) == 1 else
                           "Both TCP conversations are" if len(summaries) == 2 else
                           f"All {len(summaries)} TCP conversations are")
                return [Note("completeness", f"{subject} complete: handshake, then FIN or RST.")]
            return []
        lines = []
        for c in incomplete[:MAX_STREAM_NOTES]:
            have = _conv.completeness_names(c.completeness)
            missing = [b for b in ("SYN", "SYN-ACK", "ACK") if b not in have]
            if "FIN" not in have and "RST" not in have:
                missing.append("FIN or RST")
            lines.append(f"stream {c.stream} is {c.completeness_text} — seen: "
                         f"{', '.join(have) or 'nothing Wireshark counts'}; missing: "
                         f"{', '.join(missing) or 'nothing'}")
        more = (f"; and {len(incomplete) - MAX_STREAM_NOTES} more"
                if len(incomplete) > MAX_STREAM_NOTES else "")
        text = (f"Conversation completeness (Wireshark's bit mask: SYN 1, SYN-ACK 2, ACK 4, DATA 8, "
                f"FIN 16, RST 32; 'Complete' needs the handshake plus FIN or RST): "
                f"{'; '.join(lines)}{more}.")
        return [Note("completeness", text, streams=[c.stream for c in incomplete[:MAX_STREAM_NOTES]])]

    def _checksums(self) -> list[Note]:
        notes = []
        for layer, fr in self.checksums_bad.items():
            outside = self.checksums_bad_not_loopback.get(layer)
            name = layer.upper() if layer != "ip" else "IPv4 header"
            if not outside:
                text = (f"{_plural(fr.count, name + ' checksum')} {'is' if fr.count == 1 else 'are'} "
                        f"wrong ({_frames_text(fr.frames, fr.count)}), all on loopback addresses. "
                        f"That is normal and not corruption: on loopback (and on any packet "
                        f"captured on the host that sent it) the kernel leaves the checksum for "
                        f"the network card to fill in — checksum offload — and loopback never "
                        f"computes it at all, so the capture sees a partial value. The receiving "
                        f"stack trusts loopback packets and does not check.")
            else:
                text = (f"{_plural(fr.count, name + ' checksum')} {'is' if fr.count == 1 else 'are'} "
                        f"wrong ({_frames_text(fr.frames, fr.count)}); "
                        f"{outside.count} of them on non-loopback addresses "
                        f"({_frames_text(outside.frames, outside.count)}). If the capture was made "
                        f"on the sending host this is checksum offload (the network card fills the "
                        f"checksum in after the capture point) and harmless; on packets received "
                        f"from the network a bad checksum means corruption, and the receiver drops "
                        f"the packet.")
            notes.append(Note(f"checksum_{layer}", text, frames=fr.frames))
        return notes

    def _chat(self) -> list[Note]:
        chat_streams = [(sid, s) for sid, s in self.streams.items() if s.chat_count]
        if not chat_streams:
            return []
        total = sum(s.chat_count for _, s in chat_streams)
        # The server's port: the known chat port if present, else the port most lines share.
        ports: Counter = Counter()
        for (sport, dport), n in self.chat_dirs.items():
            ports[sport] += n
            ports[dport] += n
        known = sorted(p for p in ports if p in CHAT_PORTS)
        port = known[0] if known else (ports.most_common(1)[0][0] if ports else "?")
        to_server = sum(n for (_, dport), n in self.chat_dirs.items() if dport == port)
        from_server = sum(n for (sport, _), n in self.chat_dirs.items() if sport == port)
        clients = len({sport for sport, dport in self.chat_dirs if dport == port} |
                      {dport for sport, dport in self.chat_dirs if sport == port})
        flag_text = " or ".join(f"[{flags_text(f)}]" for f in sorted(self.chat_flags))
        # Messages first (the analyzer shows them as "Bob → text" / "from Alice: text"), then
        # logins, lists and system lines.
        lines = [line for _, s in chat_streams for line in s.chat_lines]
        lines.sort(key=lambda line: 0 if " → " in line or line.startswith("from ") else 1)
        ex = "; ".join(f"'{e}'" for e in lines[:3])
        text = (f"{_plural(total, 'data segment')} in {_plural(len(chat_streams), 'stream')} "
                f"{'carries' if total == 1 else 'carry'} "
                f"the tcplab chat protocol on port {port} ({_plural(clients, 'client')}): "
                f"{to_server} line{'s' if to_server != 1 else ''} from clients to the server and "
                f"{from_server} from the server to clients. The protocol is text, one line per "
                f"message: a client writes 'Target: Message', the server checks it and forwards "
                f"it on the target's own connection, so one message shows up twice — once "
                f"toward the server, once from it. Here each line travels as {flag_text}: "
                f"PSH because the sender wants it shown at once."
                f"{(' Examples: ' + ex + '.') if ex else ''}")
        return [Note("chat", text, streams=[sid for sid, _ in chat_streams[:MAX_STREAM_NOTES]])]

    def _http(self) -> list[Note]:
        s = self.http.finish()
        notes = []
        if s.requests or s.responses:
            methods = ", ".join(f"{m} {n}" for m, n in s.requests_by_method.most_common())
            codes = ", ".join(f"{c} {s.phrases.get(c, '')} ×{n}".replace("  ", " ")
                              for c, n in sorted(s.responses_by_code.items()))
            text = (f"HTTP: {_plural(s.requests, 'request')} ({methods or 'none'}) and "
                    f"{_plural(s.responses, 'response')} ({codes or 'none'}); "
                    f"{_plural(s.pairs_total, 'request')} paired with "
                    f"{'its' if s.pairs_total == 1 else 'their'} response in order on the same "
                    f"stream (HTTP/1.1 answers in request order).")
            meanings = []
            for code in sorted(s.responses_by_code):
                if code in STATUS_MEANINGS and code != 200:
                    example = next((p for p in s.pairs if p.code == code), None)
                    where = ""
                    if example is not None:
                        where = f" (frame {example.response_frame}"
                        if example.response_msg_id is not None:
                            where += f", CSV msg_id {example.response_msg_id}"
                        where += f", answering {example.request.method} {example.request.uri})"
                    meanings.append(f"{code}{where}: {STATUS_MEANINGS[code]}")
            if meanings:
                text += " Status codes besides 200: " + "; ".join(meanings) + "."
            if s.unanswered_total:
                listed = ", ".join(f"{r.frame} ({r.method} {r.uri})" for r in s.unanswered[:5])
                more = " …" if s.unanswered_total > 5 else ""
                text += (f" {_plural(s.unanswered_total, 'request')} got no response in the "
                         f"capture (frame {listed}{more}).")
            notes.append(Note("http", text))
        if s.msg_ids_other_total:
            frames = [f for _, f in s.msg_ids_other]
            notes.append(Note(
                "http_not_dissected",
                f"{_plural(s.msg_ids_other_total, 'data segment')} carry a CSV msg_id "
                f"({_frames_text(frames[:MAX_FRAMES], s.msg_ids_other_total)}) but are not shown "
                f"as HTTP: Wireshark does not hand retransmitted bytes to the HTTP dissector, and "
                f"these segments reuse sequence numbers already seen, so only the first counts.",
                frames=frames[:MAX_FRAMES]))
        return notes

    def _malformed(self) -> list[Note]:
        if not self.malformed.count:
            return []
        reasons = ", ".join(f"{r} ({n})" for r, n in self.malformed_reasons.most_common(4))
        return [Note(
            "malformed",
            f"{_plural(self.malformed.count, 'packet')} {'is' if self.malformed.count == 1 else 'are'}"
            f" malformed ({_frames_text(self.malformed.frames, self.malformed.count)})"
            f"{': ' + reasons if reasons else ''}: shorter than their headers claim, or with "
            f"impossible header lengths. They are shown as [Malformed Packet] and skipped by the "
            f"TCP analysis; the rest of the capture is unaffected.",
            frames=self.malformed.frames)]


def explain_notes(packets: Iterable[dict]) -> list[Note]:
    """The notes with their frames and streams (for ``--json`` and for tests)."""
    explainer = Explainer()
    for d in packets:
        explainer.add(d)
    return explainer.notes()


def explain(packets: list[dict]) -> list[str]:
    """Plain-language paragraphs about ``packets``, most general first."""
    return [n.text for n in explain_notes(packets)]


def to_json(notes: list[Note]) -> dict:
    """The ``--json`` summary object (``{"summary": "explain", "notes": [...]}``)."""
    return {
        "summary": "explain",
        "notes": [{"topic": n.topic, "text": n.text, "frames": n.frames, "streams": n.streams}
                  for n in notes],
    }
