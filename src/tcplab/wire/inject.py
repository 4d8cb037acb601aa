"""The report's experiment: put hand-built TCP segments on the wire and watch the kernel refuse them.

Packets come from :func:`tcplab.encap.build` (a course CSV, either style) or from an
existing capture file; :mod:`tcplab.wire.rawsock` sends them; a background capture on
``lo`` (optional, on by default) watches for the kernel's answers. A segment that belongs
to no connection — and every seed-style segment is one, since no handshake was made —
makes the receiving kernel answer with RST (RFC 9293 §3.10.7.1, "If the state is
CLOSED"), which is exactly what the report's Wireshark screenshot shows.

:class:`RstWatch` only classifies frames it is handed; the I/O is in the capture thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from tcplab.errors import InputError
from tcplab.packet import link, tcp
from tcplab.wire import capture as capture_mod
from tcplab.wire import rawsock

#: Flows remembered to match RSTs against; a bounded set keeps memory flat on endless loops.
MAX_FLOWS = 65536

Flow = tuple[bytes, int, bytes, int]


def _tcp_tuple(packet: bytes | memoryview, offset: int = 0) -> tuple[Flow, int, int] | None:
    """(flow, flags, payload length) of a TCP/IPv4 or TCP/IPv6 packet at ``offset``, else None.

    A lean read of just the fields the RST watch needs, not :mod:`tcplab.packet`'s full
    parsers: it runs in the capture thread for every frame (two per packet sent) while
    the sender needs the interpreter, and validation is not its job — the analyzer's is.
    """
    n = len(packet) - offset
    if n < 20:
        return None
    version = packet[offset] >> 4
    if version == 4:
        ihl = (packet[offset] & 0x0F) * 4
        if packet[offset + 9] != tcp.PROTOCOL_NUMBER or n < ihl + 20:
            return None
        total = int.from_bytes(packet[offset + 2 : offset + 4], "big")
        src, dst = bytes(packet[offset + 12 : offset + 16]), bytes(packet[offset + 16 : offset + 20])
        start = offset + ihl
        end = offset + min(total, n)
    elif version == 6:
        if n < 60 or packet[offset + 6] != tcp.PROTOCOL_NUMBER:
            return None
        src, dst = bytes(packet[offset + 8 : offset + 24]), bytes(packet[offset + 24 : offset + 40])
        start = offset + 40
        end = offset + min(40 + int.from_bytes(packet[offset + 4 : offset + 6], "big"), n)
    else:
        return None
    sport = int.from_bytes(packet[start : start + 2], "big")
    dport = int.from_bytes(packet[start + 2 : start + 4], "big")
    data_offset = (packet[start + 12] >> 4) * 4
    flags = int.from_bytes(packet[start + 12 : start + 14], "big") & tcp.FLAG_MASK
    return (src, sport, dst, dport), flags, max(0, end - start - data_offset)


@dataclass(slots=True)
class RstWatch:
    """Counts the kernel's RST answers to the segments we sent (matched by reversed 4-tuple)."""

    sent_flows: set[Flow] = field(default_factory=set)
    captured_ours: int = 0
    rst_answers: int = 0
    other: int = 0
    rst_ports: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note_sent(self, packet: bytes) -> None:
        parsed = _tcp_tuple(packet)
        if parsed is None:
            return
        with self._lock:
            if len(self.sent_flows) < MAX_FLOWS:
                self.sent_flows.add(parsed[0])

    def on_frame(self, number: int, timestamp_ns: int, data: bytes, wire_length: int) -> None:
        try:
            offset = link.parse(link.LINKTYPE_ETHERNET, data).header_len
        except InputError:
            return
        parsed = _tcp_tuple(data, offset)
        if parsed is None:
            return
        (src, sport, dst, dport), flags, _length = parsed
        with self._lock:
            # An RST coming back along a flow we sent on is the kernel's answer (seed style
            # sends both directions of a conversation, so test the RST case first).
            if flags & tcp.RST and (dst, dport, src, sport) in self.sent_flows:
                self.rst_answers += 1
                self.rst_ports.add(sport)
            elif (src, sport, dst, dport) in self.sent_flows:
                self.captured_ours += 1
            else:
                self.other += 1


@dataclass(slots=True)
class InjectSummary:
    send: rawsock.SendSummary
    watch: RstWatch | None
    capture: capture_mod.CaptureSummary | None
    capture_path: str | None
    notes: list[str] = field(default_factory=list)
    #: Set when frames went straight onto a device (``--device``), not through a raw IP socket.
    device: str | None = None

    def lines(self) -> list[str]:
        s = self.send
        out = [f"sent      {s.packets:,} packets ({s.bytes:,} bytes of IP) in {s.seconds:.2f} s "
               f"({s.rate:,.0f} packets/s)"]
        if s.retries:
            out.append(f"retried   {s.retries:,} sends the kernel refused for lack of buffer space")
        if s.kernel_rewrote_id:
            out.append(f"note      {s.kernel_rewrote_id:,} packets had IP ID 0 without DF: Linux "
                       "filled in an ID of its own, so those bytes differ from encap's")
        w = self.watch
        if w is not None:
            out.append(f"captured  {w.captured_ours:,} of them on lo; "
                       f"{w.rst_answers:,} answered by RST from the kernel")
            if s.packets and not w.captured_ours:
                out.append("note      none of them crossed lo: the watch sees only loopback, "
                           "so packets for other hosts are neither counted nor answered here")
            if w.rst_answers:
                ports = ", ".join(str(p) for p in sorted(w.rst_ports)[:5])
                out.append(
                    f"why RST   no socket on this host owns a connection for those segments "
                    f"(port(s) {ports}): nothing listens there and no real handshake was made, "
                    "so the receiving kernel refuses each one (RFC 9293 §3.10.7.1), as in "
                    "the report's capture"
                )
        if self.device and w is not None and not w.rst_answers and w.captured_ours:
            out.append(
                f"no RST    frames written straight onto {self.device} carry no route, and Linux "
                "drops 127.0.0.0/8 traffic arriving that way as martian (unless "
                "net.ipv4.conf.lo.route_localnet=1): the stack never saw them. Leave out "
                "--device for the report's experiment"
            )
        if self.capture is not None:
            out.append(f"kernel    {self.capture.kernel_dropped:,} frames dropped by the capture")
        if self.capture_path:
            out.append(f"explain   tcplab analyze {self.capture_path} --explain")
        elif w is not None and w.rst_answers:
            out.append("explain   add --capture out.pcap, then: tcplab analyze out.pcap --explain")
        out.extend(self.notes)
        return out


def packets_from_csv(path: str, options: object, *, unescape: str = "auto",
                     skip_bad: bool = False) -> Iterator[bytes]:
    """The IP packets ``tcplab encap`` builds for ``path`` — the same bytes, streamed."""
    from tcplab.encap import build, read_messages

    messages = read_messages(path, unescape=unescape, skip_bad=skip_bad)  # type: ignore[arg-type]
    for emitted in build(messages, options, source=os.path.basename(path)):  # type: ignore[arg-type]
        yield emitted.packet


def packets_from_capture(path: str) -> Iterator[bytes]:
    """The IP packets inside a pcap/pcapng file (link headers removed; ARP and others skipped)."""
    from tcplab.pcap import open_capture

    ethernet = link.LINKTYPE_ETHERNET
    with open_capture(path) as records:
        for record in records:
            data = record.data
            # Fast path for the common case (lo and Ethernet captures of IPv4/IPv6).
            if record.linktype == ethernet and data[12:14] in (b"\x08\x00", b"\x86\xdd"):
                yield data[14:]
                continue
            try:
                header = link.parse(record.linktype, record.data)
            except InputError:
                continue
            if header.network is not None:
                yield record.data[header.header_len:]


def is_capture_file(path: str) -> bool:
    """True when ``path`` starts with a pcap or pcapng magic number."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return False
    return magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                     b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


#: Up to this many distinct ports go into the watch filter; beyond, it falls back to "tcp".
MAX_FILTER_PORTS = 32


def watch_filter(packets: Iterable[bytes]) -> str:
    """A capture filter for the TCP ports ``packets`` use, so other traffic on lo stays out."""
    ports: set[int] = set()
    for packet in packets:
        parsed = _tcp_tuple(packet)
        if parsed is None:
            continue
        (_src, sport, _dst, dport), _flags, _length = parsed
        ports.update((sport, dport))
        if len(ports) > MAX_FILTER_PORTS:
            return "tcp"
    if not ports:
        return "tcp"
    return "tcp and (" + " or ".join(f"port {p}" for p in sorted(ports)) + ")"


#: With --loop, a source whose packets fit in this many bytes is kept in memory after the
#: first pass (as tcpreplay's --preload-pcap does), so later passes cost no parsing.
#: Larger sources are re-read every pass: memory stays bounded either way.
PRELOAD_LIMIT = 32 * 1024 * 1024


def repeated(source: Callable[[], Iterable[bytes]], loops: int) -> Iterator[bytes]:
    """``source()`` ``loops`` times over (0 = forever), with bounded memory (see PRELOAD_LIMIT)."""
    kept: list[bytes] | None = [] if loops != 1 else None
    kept_bytes = 0
    produced = False
    for packet in source():
        produced = True
        if kept is not None:
            kept_bytes += len(packet)
            if kept_bytes <= PRELOAD_LIMIT:
                kept.append(packet)
            else:
                kept = None
        yield packet
    if not produced:
        return
    done = 1
    while loops == 0 or done < loops:
        yield from (kept if kept is not None else source())
        done += 1


def inject(
    source: Callable[[], Iterable[bytes]],
    *,
    loops: int = 1,
    rate: float | None = None,
    interval: float | None = None,
    count: int | None = None,
    watch: bool = True,
    capture_path: str | None = None,
    capture_filter: str | None = "tcp",
    on_sent: Callable[[int, bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    grace: float = 0.3,
    sender: rawsock.RawSender | rawsock.DeviceSender | None = None,
) -> InjectSummary:
    """Send every packet ``source()`` yields, optionally capturing and counting the RSTs.

    Pass an already opened ``sender`` to check privileges before any other work.
    """
    watcher = RstWatch() if watch or capture_path else None
    sender = sender if sender is not None else rawsock.RawSender()
    background = None
    notes: list[str] = []
    with sender:
        sender.open(4)
        if watcher is not None:
            background = capture_mod.BackgroundCapture(
                "lo", capture_path, expression=capture_filter, on_packet=watcher.on_frame
            ).start()

        try:
            # The flow is noted before the send: the capture thread may see the frame
            # (and its RST) before send() even returns.
            summary = rawsock.send_all(
                repeated(source, loops), sender, rate=rate, interval=interval, count=count,
                on_sent=on_sent, before_send=watcher.note_sent if watcher else None,
                should_stop=should_stop,
            )
        finally:
            capture_summary = background.stop(grace) if background is not None else None
    if summary.packets == 0:
        notes.append("note      the input held no packets to send")
    device = sender.device if isinstance(sender, rawsock.DeviceSender) else None
    return InjectSummary(summary, watcher, capture_summary, capture_path, notes, device)
