"""The Wireshark-style analyzer: captures in, one record per packet, every view drawn from it.

Every packet becomes a :class:`~tcplab.analyze.record.Packet` record (one ``struct``
unpack and the shared TCP analysis step for the common frames, the full dissector for the
rest). Views read it: the packet list, display filters, conversations, HTTP,
explanations, flow graphs and the report. Its field dictionary, keyed by Wireshark
display-filter names (``frame.number``, ``ip.src``, ``tcp.stream``, ``tcp.seq``
(relative), ``tcp.analysis.retransmission``, ``http.request.method`` …; an absent key
means the field is not set), is rendered on demand — for ``--json``, the detail tree and
filters on fields the record lacks — so what users learn here carries over to tshark and
back.

Ways in:

* :class:`~tcplab.analyze.session.AnalysisSession` reads a capture once for every view
  asked (and first skims it, like ``tshark -2``, when a view shows conversation-wide
  values such as ``tcp.completeness``). Memory is flat: only per-conversation state is
  kept between packets.
* :func:`analyze` yields each packet's field dict (two passes by default).
* :class:`Analyzer` is incremental — ``analyzer.feed(record) -> dict`` — for live
  captures; then ``render.packet_line(d)`` prints the packet-list line.

Keys starting with ``_`` (other than Wireshark's own ``_ws.*``) are private helpers for
rendering (``_raw`` frame bytes, ``_linktype``) and never appear in JSON output.

What this package must never do: open sockets, or import scapy/dpkt/tshark (they are
test oracles only). File access is limited to reading the capture being analysed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from tcplab.analyze.http import CHAT_PORTS
from tcplab.analyze.record import Analyzer, CaptureDamage, Packet

__all__ = ["Analyzer", "AnalysisSession", "CaptureDamage", "Packet", "analyze", "CHAT_PORTS"]


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
    from tcplab.analyze.session import AnalysisSession

    session = AnalysisSession(path, two_pass=two_pass, checksums=checksums,
                              absolute=absolute, payload=payload, chat_ports=chat_ports,
                              max_packets=max_packets)
    for p in session.packets():
        yield p.fields()


def __getattr__(name: str) -> object:
    # The session imports the summary modules, which import this package: bound lazily.
    if name == "AnalysisSession":
        from tcplab.analyze.session import AnalysisSession

        return AnalysisSession
    raise AttributeError(name)
