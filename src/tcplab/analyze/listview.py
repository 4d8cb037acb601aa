"""The packet list (``tcplab analyze FILE``'s default view) without a field dict per packet.

What this module is for: speed. The plain list shows seven columns, so for the frames
that make up almost every capture — Ethernet, Null/Loopback or raw IP carrying IPv4 (no IP
options, not fragmented, fully captured) carrying TCP — :func:`packet_lines` unpacks the
link, IPv4 and TCP headers with one precompiled ``struct`` straight from the record
bytes, runs the shared TCP analysis (:meth:`TcpTracker.step`, the same rules as every
other view) and formats the list line directly. Every other frame (IPv6, UDP, ARP,
damaged or cut packets, IP options…) goes through the full
:class:`~tcplab.analyze.Analyzer` and :func:`render.packet_line`, sharing the same
conversation table and frame numbering, so the output is the dict path's, line for line
(``tests/analyze/test_listview.py`` holds it to that).

It reads in one pass (as ``tshark -r`` does; completeness is not shown in the list) with
checksums off. What it must never do: keep anything per packet (state is per
conversation only, output leaves in bounded chunks), or decide a protocol rule of its own
— the analysis rules live in :mod:`~tcplab.analyze.tcp_analysis`, the HTTP/chat
recognition in :mod:`~tcplab.analyze.http`, the Info wording in
:mod:`~tcplab.analyze.dissect`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any

from tcplab.analyze import Analyzer, CaptureDamage, render
from tcplab.analyze import dissect as _dissect
from tcplab.analyze import http as _http
from tcplab.analyze import tcp_analysis as _ta
from tcplab.packet.errors import ParseError

__all__ = ["packet_lines", "CHUNK_LINES"]

#: Lines per chunk handed to the writer: one write call per chunk, memory bounded.
CHUNK_LINES = 2048

# Link header + IPv4 without options + the fixed TCP header, in one unpack. Only the
# fields the list or the analysis needs are decoded; the rest are pad bytes.
#   link type field, version/IHL, total length, flags/fragment offset, protocol,
#   source, destination, TCP ports, seq, ack, data offset/flags, window, urgent pointer
# The addresses and ports are adjacent (IP source, IP destination, TCP source and
# destination port): one 12-byte field, the key of the per-direction text cache.
_ETH_IP_TCP = struct.Struct("!12x2sB x H 2x H x B 2x 12s IIHH 2x H")
_NULL_IP_TCP = struct.Struct("!4sB x H 2x H x B 2x 12s IIHH 2x H")
_RAW_IP_TCP = struct.Struct("!0sB x H 2x H x B 2x 12s IIHH 2x H")
_PORTS = struct.Struct("!HH")
# Directed 4-tuple bytes → (source, destination, source port, destination port, the
# Source/Destination columns, "sport → dport"). Bounded: cleared when full.
_DIRECTIONS_MAX = 4096
_ETH_MIN = 14 + 20 + 20
_RAW_MIN = 20 + 20
# Raw IP under every number platforms use for it (the version nibble tells v4 from v6).
_RAW_LINKTYPES = frozenset({101, 12, 14, 228, 229})
_NULL_MIN = 4 + 20 + 20
_ETHERTYPE_IPV4 = b"\x08\x00"
_AF_INET_LE = b"\x02\x00\x00\x00"
_TS_WORDS = struct.Struct("!III")

_M32 = 0xFFFFFFFF
_ACK = 0x010
_SYN = 0x002
_URG = 0x020
_NO_SUBDISSECTOR = (_ta.RETRANSMISSION | _ta.FAST_RETRANSMISSION | _ta.OUT_OF_ORDER
                    | _ta.SPURIOUS_RETRANSMISSION)

# The list line for the commonest TCP segment (ACK set, no URG, no tags), in one format.
_TCP_LINE = "%6d %11.6f %s " + "TCP".ljust(8) + " %6d %s [%s] Seq=%d Ack=%d Win=%d Len=%d%s"
_APP_LINE = "%6d %11.6f %s %-8s %6d %s"


def _direction(key: bytes) -> tuple[str, str, int, int, str, str]:
    """The texts of one directed 4-tuple, formatted once per direction, not per packet."""
    src = _dissect._ntoa(key[0:4])
    dst = _dissect._ntoa(key[4:8])
    sport, dport = _PORTS.unpack_from(key, 8)
    return src, dst, sport, dport, "%15s → %-15s" % (src, dst), f"{sport} → {dport}"  # noqa: UP031


def packet_lines(path: str | os.PathLike[str], *, absolute: bool = False,
                 chat_ports: frozenset[int] = _http.CHAT_PORTS,
                 max_packets: int | None = None) -> Iterator[str]:
    """Yield the packet list of the capture at ``path`` in chunks of newline-ended lines.

    The header line is not included. The lines equal ``render.packet_line(d)`` for the
    dicts of ``analyze(path, two_pass=False, checksums=False)``. Errors as in
    :func:`tcplab.analyze.analyze`: a file that is not a capture raises
    :class:`~tcplab.errors.InputError` before any line; later damage raises
    :class:`~tcplab.analyze.CaptureDamage` after the chunk holding every good line.
    """
    from tcplab.pcap import open_capture

    # Opened here, not on the first next(): a file that is not a capture fails before
    # the caller prints anything.
    reader = open_capture(path)
    return _lines(reader, absolute, chat_ports, max_packets)


def _lines(reader: Any, absolute: bool, chat_ports: frozenset[int],
           max_packets: int | None) -> Iterator[str]:
    from tcplab.pcap import CaptureFormatError

    analyzer = Analyzer(reader.linktype, checksums=False, absolute=absolute, payload=False,
                        chat_ports=chat_ports, interfaces=reader.interfaces)
    feed = analyzer._feed
    packet_line = render.packet_line
    step = analyzer.tracker.step
    eth_unpack = _ETH_IP_TCP.unpack_from
    null_unpack = _NULL_IP_TCP.unpack_from
    raw_unpack = _RAW_IP_TCP.unpack_from
    raw_types = _RAW_LINKTYPES
    ts_unpack = _TS_WORDS.unpack_from
    directions: dict[bytes, tuple[str, str, int, int, str, str]] = {}
    flags_text = _dissect._FLAGS_TEXT
    options = _dissect._options
    tags_text = _dissect.tags_text
    info_text = _dissect.info_text
    columns = _http.columns
    tcp_line = _TCP_LINE
    app_line = _APP_LINE
    nop_nop_ts = _dissect._NOP_NOP_TS
    no_sub = _NO_SUBDISSECTOR
    dup_ack = _ta.DUPLICATE_ACK
    limit = max_packets if max_packets is not None else -1
    # Every frame adds exactly one line, so the frame count says when a chunk is full or
    # the limit is reached: one comparison per frame for both.
    flush_at = CHUNK_LINES
    stop = min(limit, flush_at) if limit > 0 else flush_at
    lines: list[str] = []
    add = lines.append
    count = 0
    first: int | None = None
    try:
        for ts, data, orig_len, linktype, interface, _offset, comment in reader:
            count += 1
            if first is None:
                first = analyzer._first_ns = ts
            n = len(data)
            fields: Any = None
            if orig_len == n:
                if linktype == 1:
                    if n >= _ETH_MIN:
                        fields = eth_unpack(data)
                        if fields[0] != _ETHERTYPE_IPV4:
                            fields = None
                        off = 14
                elif linktype == 0:
                    if n >= _NULL_MIN:
                        fields = null_unpack(data)
                        if fields[0] != _AF_INET_LE:
                            fields = None
                        off = 4
                elif linktype in raw_types and n >= _RAW_MIN:
                    fields = raw_unpack(data)
                    off = 0
            if fields is not None:
                _, vihl, total, frag, proto, key, seq, ack, offflags, window, urg = fields
                thl = (offflags >> 12) << 2
                end = off + total
                l4 = off + 20
                # IPv4 without options, not a fragment, TCP, lengths consistent: else the
                # full dissector words whatever is unusual about the frame.
                if (vihl != 0x45 or proto != 6 or frag & 0x3FFF or end > n or thl < 20
                        or l4 + thl > end):
                    fields = None
                elif thl == 20:
                    opts = ""
                    wscale = None
                elif thl == 32 and (word_ts := ts_unpack(data, l4 + 20))[0] == nop_nop_ts:
                    opts = " TSval=%d TSecr=%d" % word_ts[1:]  # noqa: UP031
                    wscale = None
                else:
                    try:
                        wscale, opts, _ = options(data[l4 + 20 : l4 + thl], l4 + 20)
                    except ParseError:
                        fields = None  # the dissector words the damage
                    else:
                        if opts:
                            opts = " " + opts
            if fields is None:
                analyzer.count = count - 1
                add(packet_line(feed(data, ts, orig_len, linktype, comment, interface)))
            else:
                texts = directions.get(key)
                if texts is None:
                    if len(directions) >= _DIRECTIONS_MAX:
                        directions.clear()
                    texts = directions[key] = _direction(key)
                src, dst, sport, dport, addrs, ports = texts
                flags = offflags & 0x1FF
                seglen = end - l4 - thl
                aflags, conv, fwd, rev = step(count, ts, src, dst, sport, dport, seq, ack, flags,
                                              seglen, window, wscale)
                cols = None
                if seglen and not aflags & no_sub:
                    cols = columns(data[l4 + thl : end], sport, dport, chat_ports)
                if cols is not None:
                    add(app_line % (count, (ts - first) / 1e9, addrs, cols[0], orig_len,
                                    cols[1]))
                else:
                    if not absolute:
                        seq = (seq - fwd.base_seq) & _M32
                        ack = (ack - rev.base_seq) & _M32
                    if flags & _SYN:
                        win = window  # never scaled on a SYN (RFC 7323 §2.2)
                    else:
                        scale = fwd.win_scale
                        win = window if scale < 0 else window << scale
                    if flags & (_ACK | _URG) == _ACK and not aflags:
                        add(tcp_line % (count, (ts - first) / 1e9, addrs, orig_len, ports,
                                        flags_text[flags], seq, ack, win, seglen, opts))
                    else:
                        tags = (tags_text(aflags, fwd.lastnondupack, fwd.dupacknum)
                                if aflags & dup_ack else tags_text(aflags, None, None)
                                if aflags else "")
                        add(app_line % (count, (ts - first) / 1e9, addrs, "TCP", orig_len,
                                        info_text(tags, sport, dport, flags, seq, ack, win, urg,
                                                  seglen, opts.lstrip(" "))))
            if count == stop:
                if count == limit:
                    break
                yield "\n".join(lines) + "\n"
                lines.clear()
                flush_at += CHUNK_LINES
                stop = min(limit, flush_at) if limit > 0 else flush_at
    except CaptureFormatError as exc:
        good = count  # the failing record was never counted
        if lines:
            yield "\n".join(lines) + "\n"
            lines.clear()
        raise CaptureDamage(
            f"{exc} (after {good} good packet{'s' if good != 1 else ''}; "
            "the rest of the file cannot be read)", good, getattr(exc, "offset", None),
            getattr(exc, "reason", ""),
        ) from None
    finally:
        reader.close()
    if lines:
        yield "\n".join(lines) + "\n"
