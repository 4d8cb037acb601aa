"""The Wireshark-style analyzer: captures in, one field dictionary per packet out.

Every packet becomes a ``dict[str, object]`` keyed by Wireshark display-filter field
names (``frame.number``, ``ip.src``, ``tcp.stream``, ``tcp.seq`` (relative),
``tcp.analysis.retransmission``, ``http.request.method`` …; an absent key means the field
is not set), so what users learn here carries over to tshark and back. The same dicts
feed the detail tree, ``--json``, display filters and the summaries. The plain packet
list of a file has a dict-free fast path, :mod:`tcplab.analyze.listview`, that shares the
TCP analysis and prints the very same lines.

Two ways in:

* :func:`analyze` reads a pcap/pcapng file in two passes, like ``tshark -2``, so
  conversation-wide values (``tcp.completeness``) are final on every packet. Memory is
  flat: only per-conversation state is kept between packets.
* :class:`Analyzer` is incremental — ``analyzer.feed(record) -> dict`` — for live
  captures; then ``render.packet_line(d)`` prints the packet-list line.

Keys starting with ``_`` (other than Wireshark's own ``_ws.*``) are private helpers for
rendering (``_raw`` frame bytes, ``_linktype``) and never appear in JSON output.

What this package must never do: open sockets, or import scapy/dpkt/tshark (they are
test oracles only). File access is limited to :func:`analyze` reading its capture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from tcplab.analyze import dissect as _dissect
from tcplab.analyze.http import CHAT_PORTS
from tcplab.analyze.tcp_analysis import (
    FAST_RETRANSMISSION,
    FIELD_OF_FLAG,
    SPURIOUS_RETRANSMISSION,
    FinalState,
    TcpTracker,
)
from tcplab.errors import InputError

__all__ = ["Analyzer", "CaptureDamage", "analyze", "CHAT_PORTS"]


class CaptureDamage(InputError):
    """The capture file is damaged after some good records (raised after they were all handed out)."""

    def __init__(self, message: str, packets_read: int, offset: int | None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.packets_read = packets_read
        self.offset = offset
        self.reason = reason or message

    def as_packet(self) -> dict:
        """The damaged record as a pseudo-packet, so lists and JSON show it in its place."""
        where = f" at byte {self.offset}" if self.offset is not None else ""
        reason = f"capture record{where}: {self.reason}"
        return {"frame.number": self.packets_read + 1, "_ws.malformed": reason,
                "_ws.col.Protocol": "Frame", "_ws.col.Info": f"[Malformed Packet: {reason}]",
                "_ws.col.Source": "", "_ws.col.Destination": ""}


class Analyzer:
    """Incremental analysis: feed records in capture order, get each packet's field dict.

    ``checksums`` verifies IP/TCP/UDP checksums (Wireshark with validation on);
    ``absolute`` shows raw sequence numbers in the Info column (``tcp.seq`` stays relative);
    ``payload`` keeps ``tcp.payload`` bytes in the dict; ``final`` holds each stream's
    end state from a first pass (:meth:`TcpTracker.final_states`), making the shown
    values those of ``tshark -2``.
    """

    def __init__(
        self,
        linktype: int | None = None,
        *,
        checksums: bool = True,
        absolute: bool = False,
        payload: bool = True,
        chat_ports: frozenset[int] = CHAT_PORTS,
        interfaces: list[Any] | None = None,
        final: list[FinalState] | None = None,
    ) -> None:
        self.linktype = linktype
        self.checksums = checksums
        self.absolute = absolute
        self.payload = payload
        self.chat_ports = chat_ports
        self.interfaces = interfaces
        self.tracker = TcpTracker(final)
        self.count = 0
        self._first_ns: int | None = None
        self._if_names: list[str | None] = []
        self._any_name: bool | None = None

    def feed(self, record: Any) -> dict:
        """Analyse one :class:`tcplab.pcap.Record` (or anything with the same attributes)."""
        return self._feed(record.data, record.timestamp_ns, record.orig_len, record.linktype,
                          record.comment, record.interface)

    def feed_frame(self, data: bytes, timestamp_ns: int, *, orig_len: int | None = None,
                   linktype: int | None = None, comment: str | None = None,
                   interface: int | None = None) -> dict:
        """Analyse one frame given as bytes plus its capture metadata."""
        return self._feed(data, timestamp_ns, orig_len, linktype, comment, interface)

    def _feed(self, data: bytes, timestamp_ns: int, orig_len: int | None, linktype: int | None,
              comment: str | None, interface: int | None) -> dict:
        count = self.count = self.count + 1
        first = self._first_ns
        if first is None:
            first = self._first_ns = timestamp_ns
        lt = self.linktype if linktype is None else linktype
        if lt is None:
            raise ValueError("no link type: pass linktype to Analyzer() or feed_frame()")
        cap = len(data)
        d: dict[str, Any] = {
            "frame.number": count,
            "frame.time_epoch": timestamp_ns / 1e9,
            "frame.time_relative": (timestamp_ns - first) / 1e9,
            "frame.len": cap if orig_len is None else orig_len,
            "frame.cap_len": cap,
            "_raw": data,
            "_linktype": lt,
        }
        if comment:
            d["frame.comment"] = comment
        if interface is not None and self.interfaces and self._named:
            name = self._interface_name(interface)
            if name:
                d["frame.interface_name"] = name
        seg = _dissect.dissect(data, lt, d, orig_len=orig_len, checksums=self.checksums,
                               payload=self.payload)
        if seg is None:
            if "_ws.col.Source" not in d:
                d["_ws.col.Source"] = d["_ws.col.Destination"] = ""
            return d
        aflags = self.tracker.process(
            d, count, timestamp_ns, seg.src, seg.dst, seg.sport, seg.dport, seg.seq,
            seg.ack, seg.flags, seg.seglen, seg.window, seg.wscale)
        if aflags:
            for bit, field in FIELD_OF_FLAG.items():
                if aflags & bit:
                    d[field] = True
            if aflags & (FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION):
                # Wireshark files fast and spurious retransmissions under
                # tcp.analysis.retransmission too (the Info column shows only the specific tag).
                d["tcp.analysis.retransmission"] = True
        if seg.seglen and _dissect.app_layer(d, seg, aflags, self.chat_ports):
            d["frame.protocols"] += ":" + d["_ws.col.Protocol"].lower()
        else:
            d["_ws.col.Protocol"] = "TCP"
            d["_ws.col.Info"] = _dissect.tcp_info(d, seg, aflags, absolute=self.absolute)
            if seg.seglen:
                d["frame.protocols"] += ":data"
        return d

    def _interface_name(self, index: int) -> str | None:
        names = self._if_names
        if index >= len(names):  # pcapng files may describe interfaces as they go
            names[:] = [getattr(i, "name", None) for i in self.interfaces or ()]
            if index >= len(names):
                return None
        return names[index]

    @property
    def _named(self) -> bool:
        """Whether any interface has a name (classic pcap never does): skip the lookup if not."""
        if self._any_name is None or len(self._if_names) != len(self.interfaces or ()):
            self._if_names[:] = [getattr(i, "name", None) for i in self.interfaces or ()]
            self._any_name = any(self._if_names)
        return self._any_name


def _open(path: str | os.PathLike[str]) -> Any:
    from tcplab.pcap import open_capture

    return open_capture(path)


def _first_pass(path: str | os.PathLike[str], **options: Any) -> list[FinalState]:
    """Run the analysis once to learn each stream's end state (``tshark -2``'s first pass)."""
    from tcplab.pcap import CaptureFormatError

    reader = _open(path)
    analyzer = Analyzer(reader.linktype, checksums=False, payload=False,
                        chat_ports=options.get("chat_ports", CHAT_PORTS))
    feed = analyzer._feed
    limit = options.get("max_packets")
    try:
        # Records unpacked in the loop header: one Python call per packet fewer.
        for ts, data, orig_len, linktype, interface, _offset, comment in reader:
            feed(data, ts, orig_len, linktype, comment, interface)
            if limit is not None and analyzer.count >= limit:
                break
    except CaptureFormatError:
        pass  # reported by the second pass, after its good packets
    finally:
        reader.close()
    return analyzer.tracker.final_states()


def analyze(path: str | os.PathLike[str], *, two_pass: bool = True, checksums: bool = True,
            absolute: bool = False, payload: bool = True,
            chat_ports: frozenset[int] = CHAT_PORTS,
            max_packets: int | None = None) -> Iterator[dict]:
    """Yield one field dict per packet of the capture at ``path``.

    A file that is not a capture raises :class:`~tcplab.errors.InputError` before any
    packet. Damage later in the file raises :class:`CaptureDamage` after every good
    packet before it has been yielded, so callers show what could be read and then say
    where the file broke. ``two_pass=False`` streams in one pass (completeness is then
    the value so far, as in a live capture; a pipe is always read once). ``max_packets``
    stops after that many packets in both passes (``tshark -c``).
    """
    from tcplab.pcap import CaptureFormatError

    # A pipe (or /dev/stdin) cannot be read twice: analyse it in one pass, as live.
    if two_pass and not os.path.isfile(path):
        two_pass = False
    final = (_first_pass(path, chat_ports=chat_ports, max_packets=max_packets)
             if two_pass else None)
    reader = _open(path)
    analyzer = Analyzer(reader.linktype, checksums=checksums, absolute=absolute,
                        payload=payload, chat_ports=chat_ports, interfaces=reader.interfaces,
                        final=final)
    feed = analyzer._feed
    try:
        for ts, data, orig_len, linktype, interface, _offset, comment in reader:
            yield feed(data, ts, orig_len, linktype, comment, interface)
            if max_packets is not None and analyzer.count >= max_packets:
                break
    except CaptureFormatError as exc:
        raise CaptureDamage(
            f"{exc} (after {analyzer.count} good packet{'s' if analyzer.count != 1 else ''}; "
            "the rest of the file cannot be read)", analyzer.count, getattr(exc, "offset", None),
            getattr(exc, "reason", ""),
        ) from None
    finally:
        reader.close()
