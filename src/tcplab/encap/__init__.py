"""CSV of application messages → hand-built packets → capture file.

The pure parts are :mod:`~tcplab.encap.csv_input` (rows → :class:`Message`) and
:mod:`~tcplab.encap.conversation` (messages → packets); this module is the thin shell
that streams one into the other and into a pcap/pcapng writer, counting everything so
the closing summary can prove nothing was dropped silently.

Python API::

    from tcplab.encap import EncapOptions, encapsulate_csv
    summary = encapsulate_csv("examples/http_ecommerce.csv", "http.pcap", EncapOptions(style="stream"))

    from tcplab.encap import build          # messages → Emitted(timestamp_ns, ip_packet, msg_id)
    for pkt in build(read_messages("in.csv"), EncapOptions(style="seed")): ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from tcplab.encap.conversation import Emitted, EncapOptions, Synthesizer
from tcplab.encap.csv_input import Message, ReadStats, Unescape, read_messages
from tcplab.errors import InputError
from tcplab.packet import link

__all__ = [
    "EncapOptions",
    "EncapSummary",
    "Emitted",
    "Message",
    "ReadStats",
    "Synthesizer",
    "build",
    "encapsulate_csv",
    "read_messages",
]


def build(
    messages: Iterable[Message],
    options: EncapOptions | None = None,
    *,
    synthesizer: Synthesizer | None = None,
    source: str = "input",
) -> Iterator[Emitted]:
    """Stream the packets for ``messages`` (handshakes, data, ACKs and teardown included).

    Pass your own ``synthesizer`` to read its counters (connections, HTTP framing) afterwards.
    """
    synth = synthesizer if synthesizer is not None else Synthesizer(options)
    for msg in messages:
        try:
            emitted = synth.feed(msg)
        except ValueError as exc:
            raise InputError(f"{source}: line {msg.line}: {exc}") from None
        yield from emitted
    yield from synth.finish()


@dataclass(slots=True)
class EncapSummary:
    """What one run produced; printed by the CLI and returned to API callers."""

    input_path: str
    output_path: str
    style: str
    linktype: int
    format: str
    read: ReadStats = field(default_factory=ReadStats)
    packets: int = 0
    bytes: int = 0
    connections: int = 0
    http_framed: int = 0
    #: Messages whose CSV timestamp went backwards (sent just after the previous packet).
    time_nudged: int = 0
    time_nudged_lines: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        r = self.read
        out = [
            f"read      {r.rows:,} rows from {self.input_path} ({r.delimiter_name}-separated): "
            f"{r.messages:,} messages",
            f"wrote     {self.packets:,} packets ({self.bytes:,} bytes on the wire) to {self.output_path}",
            f"style     {self.style}; {self.connections:,} connection(s); link type "
            f"{link.LINKTYPE_NAMES.get(self.linktype, self.linktype)}; {self.format}",
        ]
        if r.empty_skipped or r.bad_skipped:
            out.append(f"skipped   {r.empty_skipped:,} empty message(s), {r.bad_skipped:,} bad row(s)")
            out.extend(f"          {example}" for example in r.skipped_examples)
        if r.unescaped:
            out.append(f"unescaped {r.unescaped:,} message(s) written with literal \\r\\n escapes")
        if self.time_nudged:
            where = ", ".join(str(n) for n in self.time_nudged_lines)
            more = ", …" if self.time_nudged > len(self.time_nudged_lines) else ""
            out.append(
                f"nudged    {self.time_nudged:,} message(s) forward whose timestamp is earlier "
                f"than the previous message's (line {where}{more}): each is sent 1 µs after the "
                "packet before it, since a capture's time cannot run backwards"
            )
        if self.http_framed:
            out.append(
                f"framed    {self.http_framed:,} HTTP message(s): added the CRLF head terminator or "
                "Content-Length a byte stream needs (--no-http-framing keeps them as written)"
            )
        return out


def _output_paths(out_path: str) -> tuple[str, str | None]:
    """Where to write, and the name to rename that to at the end (None: written in place).

    A regular file (or a new name) is written beside itself and renamed over at the end.
    Anything else is written in place: renaming over ``/dev/null``, a FIFO or a socket
    would replace it with a regular file (and, run as root, break ``/dev/null`` for the
    whole machine). A symbolic link keeps pointing where it did: its target is replaced.
    """
    import stat

    try:
        mode = os.stat(out_path).st_mode
    except OSError:
        return f"{out_path}.part", out_path  # a new file (or one we cannot see: open() says why)
    if not stat.S_ISREG(mode):
        return out_path, None
    target = os.path.realpath(out_path)
    return f"{target}.part", target


def encapsulate_csv(
    csv_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    options: EncapOptions | None = None,
    *,
    linktype: int = link.LINKTYPE_ETHERNET,
    format: str | None = None,
    unescape: Unescape = "auto",
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> EncapSummary:
    """Read a course CSV and write the packets to a pcap (or pcapng) file.

    ``progress(bytes_read, file_size)`` is called now and then while reading.
    pcapng output carries each data packet's CSV ``msg_id`` as a packet comment, which
    ``tcplab analyze --http`` uses to map HTTP messages back to CSV rows. The output is
    written to a temporary name and renamed at the end, so a failure never leaves a
    half-written file behind under the requested name (:func:`_output_paths`).
    """
    from tcplab.pcap import open_writer

    options = options or EncapOptions()
    out_path = os.fspath(out_path)
    stats = ReadStats()
    messages = read_messages(csv_path, unescape=unescape, skip_bad=skip_bad, stats=stats)
    tmp_path, final_path = _output_paths(out_path)
    fmt = format or ("pcapng" if out_path.endswith(".pcapng") else "pcap")
    summary = EncapSummary(os.fspath(csv_path), out_path, options.style, linktype, fmt, stats)
    header = link.header_for(linktype, 4)
    header6 = link.header_for(linktype, 6)
    try:
        writer = open_writer(tmp_path, linktype, format=fmt)
    except OSError as exc:
        raise InputError(f"{out_path}: cannot write: {exc.strerror}") from None
    comments = fmt == "pcapng"
    packets = 0
    nbytes = 0
    synth = Synthesizer(options)
    source = os.path.basename(os.fspath(csv_path))
    msg = None
    try:
        with writer:
            write = writer.write
            # The same loop as build(), unrolled: this is the hot path of `tcplab encap`.
            feed = synth.feed
            for msg in messages:
                for ts, packet, msg_id in feed(msg):
                    frame = (header if packet[0] >> 4 == 4 else header6) + packet
                    write(frame, ts, None, f"msg_id={msg_id}" if comments and msg_id else None)
                    nbytes += len(frame)
                    packets += 1
                if progress is not None and not stats.rows & 1023:
                    progress(stats.bytes_read, stats.file_size)
            msg = None
            for ts, packet, _msg_id in synth.finish():
                frame = (header if packet[0] >> 4 == 4 else header6) + packet
                write(frame, ts, None, None)
                nbytes += len(frame)
                packets += 1
        if final_path is not None:
            os.replace(tmp_path, final_path)
    except BaseException as exc:
        if final_path is not None:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
        if isinstance(exc, ValueError) and msg is not None:
            raise InputError(f"{source}: line {msg.line}: {exc}") from None
        raise
    summary.packets = packets
    summary.bytes = nbytes
    summary.connections = synth.connections
    summary.http_framed = synth.http_framed
    summary.time_nudged = synth.time_nudged
    summary.time_nudged_lines = list(synth.time_nudged_lines)
    return summary
