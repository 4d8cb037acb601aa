"""The report's one door into the analyzer: every view of a capture the report shows comes from here.

A capture is read by one :class:`tcplab.analyze.session.AnalysisSession` run (two passes,
like ``tshark -2``, so completeness is final on every packet) that yields the packets and,
from the same read, the conversations, HTTP summary and explanations — the pipeline
``tcplab analyze`` uses, not a copy of it. The per-packet views (list lines, detail tree,
hex dump, flow graphs, the anatomy of one packet) are asked of the analyzer's own
renderers. Keeping all those calls in this module means the report follows the analyzer
wherever it goes.

What it must never do: word anything for the reader (that is :mod:`tcplab.report.sections`)
or hold an unbounded capture in memory — at most :data:`MAX_PACKETS` packet dicts are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tcplab.analyze import (
    CHAT_PORTS,
    anatomy,
    conversations,
    explain,
    http_summary,
    ladder,
    render,
)
from tcplab.analyze import flow as _flow
from tcplab.analyze.session import AnalysisSession
from tcplab.analyze.tcp_analysis import completeness_text
from tcplab.errors import InputError
from tcplab.packet.tcp import flags_text

#: Packets kept per capture (about 3 kB each): the demo's captures hold a few hundred; a
#: student's larger capture is reported on its first MAX_PACKETS packets, and says so.
MAX_PACKETS = 20_000

__all__ = ["CaptureFacts", "completeness_text", "completeness_names", "flags_text", "LIST_HEADER"]

LIST_HEADER = render.LIST_HEADER
completeness_names = conversations.completeness_names
Layer = anatomy.Layer


@dataclass
class CaptureFacts:
    """One capture, analyzed: its packets (field dicts) and the analyzer's views of them."""

    path: Path
    packets: list[dict]
    damage: str | None = None  # where the file broke, when it did
    truncated: bool = False  # more than MAX_PACKETS packets
    chat_ports: frozenset[int] = CHAT_PORTS
    _by_frame: dict[int, dict] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, chat_ports: frozenset[int] = CHAT_PORTS,
             max_packets: int = MAX_PACKETS) -> CaptureFacts:
        """Read ``path``; a file that is no capture raises :class:`tcplab.errors.InputError`."""
        session = AnalysisSession(path, two_pass=True, payload=True, chat_ports=chat_ports,
                                  max_packets=max_packets + 1)
        run = session.run(conversations=True, http=True, explain=True)
        packets: list[dict] = []
        for p in run:
            if len(packets) <= max_packets:
                packets.append(p.fields())
        damage = str(run.damage) if run.damage is not None else None
        truncated = len(packets) > max_packets
        del packets[max_packets:]
        facts = cls(Path(path), packets, damage, truncated, chat_ports)
        facts._by_frame = {int(d["frame.number"]): d for d in packets}
        # The summaries of the same read (cached_property slots, filled here).
        facts.__dict__["conversations"] = run.conversations
        facts.__dict__["http"] = run.http
        facts.__dict__["notes"] = run.notes
        return facts

    @property
    def name(self) -> str:
        return self.path.name

    def frame(self, number: int) -> dict | None:
        return self._by_frame.get(number)

    # -- the packet views ----------------------------------------------------------------

    @staticmethod
    def line(d: dict) -> str:
        return render.packet_line(d)

    def list_text(self, packets: Iterable[dict]) -> str:
        return "\n".join([LIST_HEADER, *(render.packet_line(d) for d in packets)])

    @staticmethod
    def list_columns(d: dict) -> tuple[str, ...]:
        """The packet-list columns of :func:`render.packet_line`, one string each, for a table."""
        return (str(d["frame.number"]), f"{d['frame.time_relative']:.6f}", d["_ws.col.Source"],
                d["_ws.col.Destination"], d["_ws.col.Protocol"], str(d["frame.len"]),
                d["_ws.col.Info"])

    @staticmethod
    def detail(d: dict) -> str:
        return render.detail_tree(d)

    @staticmethod
    def hexdump(d: dict) -> str:
        return render.hexdump(bytes(d.get("_raw", b"")))

    @staticmethod
    def layers(d: dict) -> list[anatomy.Layer]:
        return anatomy.layers(d)

    @staticmethod
    def coloured_hex(d: dict) -> list[list[tuple[str, str | None]]]:
        return anatomy.coloured_hexdump(bytes(d.get("_raw", b"")), anatomy.layers(d))

    @staticmethod
    def nesting_svg(d: dict, title: str = "") -> str:
        return anatomy.nesting_svg(anatomy.layers(d), title=title)

    @staticmethod
    def checksums(d: dict) -> list[anatomy.ChecksumWorking]:
        return anatomy.checksum_workings(d)

    @staticmethod
    def safe(text: str) -> str:
        """Capture text made printable (control characters shown as escapes)."""
        return render.safe_text(text)

    # -- summaries over the whole capture -------------------------------------------------

    @cached_property
    def conversations(self) -> list[conversations.ConversationSummary]:
        return conversations.summarize(self.packets)

    @cached_property
    def http(self) -> http_summary.HttpSummary:
        return http_summary.summarize(self.packets)

    @cached_property
    def notes(self) -> list[explain.Note]:
        return explain.explain_notes(self.packets)

    def verdict(self, conv: conversations.ConversationSummary) -> str:
        return conv.verdict or conversations.verdict(conv)

    # -- pictures ---------------------------------------------------------------------------

    def flow_svg(self, stream: int, frames: Iterable[int] | None = None, *, id_prefix: str = "",
                 note_max: int = 44) -> str:
        """Two-lane ladder of ``stream`` (only ``frames`` when given), as ``analyze --flow-svg``."""
        chosen = self._chosen(frames)
        return _flow.svg_text(_flow.build_flow(chosen, stream), id_prefix=id_prefix,
                              note_max=note_max)

    def ladder_svg(self, streams: Sequence[int], frames: Iterable[int] | None = None, *,
                   names: dict[str, str] | None = None, title: str | None = None,
                   id_prefix: str = "") -> str:
        """Multi-lane ladder of ``streams``, as ``analyze --flow-svg OUT --streams …``."""
        return ladder.svg_text(ladder.build_ladder(self._chosen(frames), streams), names=names,
                               title=title, id_prefix=id_prefix)

    def _chosen(self, frames: Iterable[int] | None) -> list[dict]:
        if frames is None:
            return self.packets
        wanted = set(frames)
        return [d for d in self.packets if d["frame.number"] in wanted]

    @staticmethod
    def endpoint(d: dict, side: str) -> str:
        """``address:port`` of the ``"src"`` or ``"dst"`` side of a TCP packet."""
        return _flow.endpoint(d, side, f"tcp.{side}port")


def tcp_options(d: dict) -> list:
    """The TCP options of a packet as :class:`tcplab.packet.tcp.TCPOption` (empty if none)."""
    from tcplab.packet.tcp import parse_options

    raw = d.get("_tcp.options")
    if not raw:
        return []
    try:
        return parse_options(bytes(raw))
    except InputError:  # a damaged options area: the detail tree shows why
        return []


def csv_messages(path: str | os.PathLike[str]) -> list:
    """The CSV scenario's messages (:class:`tcplab.encap.Message`), as encap reads them."""
    from tcplab.encap import read_messages

    return list(read_messages(os.fspath(path)))
