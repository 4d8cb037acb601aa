"""One analysis session: every requested view of a capture from one read of it.

What this module is for: the analyzer's pipeline, in one place for every caller — the
``tcplab analyze`` command, the report, a script. A session opens the capture, runs
``tshark -2``'s cheap first pass when a view shows conversation-wide values, reads the
file once more as :class:`~tcplab.analyze.record.Packet` records, applies the display
filter, feeds the summaries (conversations, HTTP, explanations, flow graphs) and keeps the
frames asked for, then says where the file broke, if it did::

    from tcplab.analyze.session import AnalysisSession

    session = AnalysisSession("capture.pcap", display_filter="tcp.port == 80")
    run = session.run(conversations=True, http=True, explain=True, flows=[0], frames=[4])
    for packet in run:                   # each packet the filter keeps, in capture order
        print(packet.list_line())        # or render.json_line(packet.fields())
    run.conversations                    # [ConversationSummary, ...]
    run.http                             # HttpSummary
    run.notes                            # [Note, ...]  (explanations)
    run.flows[0]                         # flow.Flow: rows for render_ladder / svg_text
    run.frames[4]                        # the Packet record of frame 4
    if run.damage: raise run.damage      # CaptureDamage: good packets were all handed out

Shortcuts read the file for one view each: :meth:`AnalysisSession.list_lines`,
:meth:`~AnalysisSession.conversations`, :meth:`~AnalysisSession.http`,
:meth:`~AnalysisSession.explanations`, :meth:`~AnalysisSession.flow`,
:meth:`~AnalysisSession.frame`, :meth:`~AnalysisSession.detail`,
:meth:`~AnalysisSession.hexdump`, :meth:`~AnalysisSession.json`.

What it must never do: print, or keep anything per packet beyond the frames asked for and
the summaries' bounded tables; memory stays flat however large the capture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from tcplab.analyze import render
from tcplab.analyze.http import CHAT_PORTS
from tcplab.analyze.network import FirstPass, NetworkLayers
from tcplab.analyze.record import Analyzer, CaptureDamage, Packet
from tcplab.analyze.tcp_analysis import FinalState, displayed_completeness
from tcplab.errors import InputError

if TYPE_CHECKING:  # the summary modules are imported when a view asks for them
    from tcplab.analyze import conversations as _conversations
    from tcplab.analyze import explain as _explain
    from tcplab.analyze import flow as _flow
    from tcplab.analyze import http_summary as _http_summary

#: Default cap on a flow graph's drawn rows (tcplab.analyze.flow.MAX_ROWS).
FLOW_MAX_ROWS = 2000

__all__ = ["AnalysisSession", "Run"]


def _open(path: str | os.PathLike[str] | BinaryIO) -> Any:
    from tcplab.pcap import open_capture

    # The analyzer unpacks each record at once: plain tuples spare making Record objects.
    return open_capture(path, plain=True)


class AnalysisSession:
    """A capture and how to read it; :meth:`run` reads it once for every view asked.

    ``two_pass`` gives every packet the values of ``tshark -2`` (completeness, relative
    numbers and windows as of the end of the capture); a pipe is always read once.
    ``display_filter`` is a Wireshark display filter (text, or a predicate from
    :func:`tcplab.analyze.filter.compile_filter`): only packets it keeps are yielded and
    summarised. ``checksums`` verifies checksums in the field dictionaries;
    ``absolute`` shows raw numbers in Info; ``payload`` keeps ``tcp.payload`` bytes in the
    fields; ``max_packets`` stops after that many frames (``tshark -c``); ``defragment``
    reassembles IPv4/IPv6 fragments (Wireshark's default; ``--no-defrag`` turns it off).
    """

    def __init__(self, path: str | os.PathLike[str] | BinaryIO, *, two_pass: bool = True,
                 display_filter: str | Callable[[Any], bool] | None = None,
                 checksums: bool = True, absolute: bool = False, payload: bool = False,
                 chat_ports: frozenset[int] = CHAT_PORTS,
                 max_packets: int | None = None, defragment: bool = True,
                 reassemble: bool = True) -> None:
        self.path = path
        self.defragment = defragment
        self._first_pass: FirstPass | None = None
        #: TLS streams' final session versions, learnt by the first pass (see _skim).
        self._tls_versions: dict[int, int] | None = None
        self._app_index: dict[int, int] | None = None
        #: A stream (``tcplab analyze -`` reads stdin) can be read once: no skim, one run.
        self._stream = not isinstance(path, str | os.PathLike)
        self._runs = 0
        self._reassembly_index: dict | None = None
        self.two_pass = two_pass
        if isinstance(display_filter, str):
            from tcplab.analyze.filter import compile_filter

            display_filter = compile_filter(display_filter, option="-Y")
        self.display_filter = display_filter
        self.checksums = checksums
        self.absolute = absolute
        self.payload = payload
        self.chat_ports = chat_ports
        self.max_packets = max_packets
        self.reassemble = reassemble

    @property
    def _name(self) -> str:
        from tcplab.pcap.records import source_name

        return source_name(self.path)

    def run(self, *, conversations: bool = False, http: bool = False, explain: bool = False,
            flows: Iterable[int] = (), frames: Iterable[int] = (),
            per_packet: bool = True) -> Run:
        """Open the capture for one read that feeds every view asked for.

        Iterate the returned :class:`Run` for the packets, or call :meth:`Run.finish`;
        the summaries are complete once the read is. ``per_packet=False`` says the
        caller shows no per-packet value: a session that asked for two passes then
        skips the first when the views asked do not need it (conversations and HTTP
        come out the same from one read). A file that is not a capture raises
        :class:`~tcplab.errors.InputError` here, before any packet.
        """
        keep = self.display_filter
        filter_payload = False
        if keep is not None:
            from tcplab.analyze.filter import needs_payload

            filter_payload = needs_payload(keep)
        frames = frozenset(frames)
        flows = tuple(dict.fromkeys(flows))
        final_needed = (per_packet or keep is not None or explain or bool(flows)
                        or bool(frames))
        if self._stream and self._runs:
            raise InputError(f"{self._name}: a capture read from a pipe can be read only once; "
                             "save it to a file for this view")
        self._runs += 1
        two_pass = self.two_pass and not self._stream and os.path.isfile(self.path)
        final = self._skim() if two_pass and final_needed else None
        learnt = self._first_pass if final is not None else None
        tls_versions = self._tls_versions if final is not None else None
        app_index = self._app_index if final is not None else None
        index = self._reassembly_index if final is not None else None
        reader = _open(self.path)
        analyzer = Analyzer(
            reader.linktype, checksums=self.checksums, absolute=self.absolute,
            payload=self.payload or bool(frames) or filter_payload,
            chat_ports=self.chat_ports, interfaces=reader.interfaces, final=final,
            network=NetworkLayers(defragment=self.defragment, first_pass=learnt),
            tls_versions=tls_versions, reassemble=self.reassemble, reassembly_index=index,
            app_index=app_index)
        return Run(self, reader, analyzer, conversations=conversations, http=http,
                   explain=explain, flows=flows, frames=frames,
                   fix_completeness=final is None)

    def _skim(self) -> list[FinalState]:
        """``tshark -2``'s first pass: each stream's end state, from headers alone; also
        which frames complete which fragmented datagrams and answer which pings (kept in
        ``_first_pass`` for the second pass), each TLS stream's final session version
        (``_tls_versions``: its records are read, as every frame of the second pass names it),
        which frame completes each TLS record or DNS message cut across segments
        (``_app_index``),
        and which frame completes each HTTP message spanning several segments
        (``_reassembly_index``: ``tcp.reassembled_in`` on the earlier ones)."""
        reader = _open(self.path)
        network = NetworkLayers(defragment=self.defragment, record=True)
        analyzer = Analyzer(reader.linktype, checksums=False, payload=False,
                            chat_ports=self.chat_ports, network=network,
                            reassemble=self.reassemble)
        try:
            for _ in analyzer.packets(reader, self.max_packets, skim=True):
                pass
        except CaptureDamage:
            pass  # reported by the second pass, after its good packets
        finally:
            reader.close()
        self._first_pass = network.learnt
        self._tls_versions = analyzer.app.final_versions()
        self._app_index = analyzer.app.completions()
        self._reassembly_index = analyzer.reassembler.completions() if self.reassemble else None
        return analyzer.tracker.final_states()

    # -- one view per read -----------------------------------------------------------------
    def packets(self) -> Iterator[Packet]:
        """Every packet the filter keeps; damage raises :class:`CaptureDamage` at the end."""
        run = self.run()
        yield from run
        if run.damage is not None:
            raise run.damage

    def list_lines(self) -> Iterator[str]:
        """The packet list (without its header, :data:`render.LIST_HEADER`), line by line."""
        run = self.run()
        for block in run.list_blocks():
            for line in block:
                yield line.decode()
        if run.damage is not None:
            raise run.damage

    def conversations(self) -> list[_conversations.ConversationSummary]:
        return self.run(conversations=True, per_packet=False).finish(raise_damage=True).conversations

    def http(self) -> _http_summary.HttpSummary:
        return self.run(http=True, per_packet=False).finish(raise_damage=True).http

    def explanations(self) -> list[_explain.Note]:
        return self.run(explain=True, per_packet=False).finish(raise_damage=True).notes

    def flow(self, stream: int, *, max_rows: int = FLOW_MAX_ROWS) -> _flow.Flow:
        """The flow graph rows of one TCP stream (:func:`flow.render_ladder`, :func:`flow.svg_text`)."""
        run = self.run(flows=[stream], per_packet=False)
        run.max_rows = max_rows
        return run.finish(raise_damage=True).flows[stream]

    def frame(self, number: int) -> Packet:
        """The record of frame ``number`` (an :class:`InputError` if there is none)."""
        run = self.run(frames=[number], per_packet=False)
        for p in run:
            if p.number == number:
                return p
        if run.damage is not None:
            raise run.damage
        raise InputError(f"{self._name}: there is no frame {number}"
                         + (" that matches the display filter" if self.display_filter else ""))

    def detail(self, number: int) -> str:
        """Frame ``number`` as Wireshark's packet-detail tree."""
        return render.detail_tree(self.frame(number).fields())

    def hexdump(self, number: int) -> str:
        """Frame ``number``'s bytes as Wireshark's hex/ASCII pane."""
        return render.hexdump(self.frame(number).data)

    def json(self, number: int, *, payload: bool = False) -> str:
        """Frame ``number`` as one ``--json`` line (Wireshark field names)."""
        return render.json_line(self.frame(number).fields(), payload=payload)


class Run:
    """One read of a capture: iterate it for the packets; the summaries fill as it goes.

    Attributes once the read is over (iterated to the end, or :meth:`finish`):
    ``conversations``, ``http``, ``notes`` (each None if not asked), ``flows`` (stream →
    :class:`~tcplab.analyze.flow.Flow`; a stream not in the capture raises
    :class:`~tcplab.errors.InputError` when looked up), ``frames`` (number → record) and
    ``damage`` (:class:`CaptureDamage` or None; it is not raised, the caller says it).
    """

    def __init__(self, session: AnalysisSession, reader: Any, analyzer: Analyzer, *,
                 conversations: bool, http: bool, explain: bool, flows: tuple[int, ...],
                 frames: frozenset[int], fix_completeness: bool) -> None:
        self.session = session
        self._reader = reader
        self._analyzer = analyzer
        self._conv = self._http = self._explainer = None
        if conversations:
            from tcplab.analyze.conversations import ConversationTable

            self._conv = ConversationTable()
        if http:
            from tcplab.analyze.http_summary import HttpTable

            self._http = HttpTable()
        if explain:
            from tcplab.analyze.explain import Explainer

            self._explainer = Explainer()
        self._flow_builders: dict[int, _flow.FlowBuilder] = {}
        if flows:
            from tcplab.analyze.flow import FlowBuilder

            self._flow_builders = {s: FlowBuilder(s) for s in flows}
        self._wanted_frames = frames
        self._fix_completeness = fix_completeness
        self.max_rows = FLOW_MAX_ROWS
        self.frames: dict[int, Packet] = {}
        self.damage: CaptureDamage | None = None
        self.done = False
        self._started = False
        self._results: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Packet]:
        return self._read(yielding=True)

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("a Run is read once; start another with session.run()")
        self._started = True

    def list_blocks(self, block: int = 2048) -> Iterator[list[bytes]]:
        """The packet list of the frames the filter keeps: their lines (UTF-8, without
        newlines) in lists of up to ``block``; the summaries are fed as by iterating.

        A plain list (no filter, summary or kept frame) comes from
        :meth:`Analyzer.list_blocks`, which writes the commonest lines without making
        their records; any other from the records, with :meth:`Packet.list_bytes`.
        """
        if block < 1:
            raise ValueError(f"a block holds at least one line, not {block}")
        if (self.session.display_filter is not None or self._wanted_frames or self._conv
                or self._http or self._explainer or self._flow_builders):
            lines: list[bytes] = []
            for p in self._read(yielding=True):
                lines.append(p.list_bytes())
                if len(lines) >= block:
                    yield lines
                    lines = []
            if lines:
                yield lines
            return
        self._start()
        reader = self._reader
        try:
            yield from self._analyzer.list_blocks(reader, self.session.max_packets, block)
        except CaptureDamage as exc:
            self.damage = exc
        finally:
            reader.close()
        self.done = True

    def finish(self, *, raise_damage: bool = False) -> Run:
        """Read whatever is left (the summaries need the whole file); returns the run."""
        if not self._started:
            for _ in self._read(yielding=False):
                pass
        if raise_damage and self.damage is not None:
            raise self.damage
        return self

    def _read(self, *, yielding: bool) -> Iterator[Packet]:
        """The one read: filter, feed the summaries, keep the frames asked for.

        Not ``yielding`` (a caller that only wants the summaries) hands nothing out:
        a generator layer less per packet.
        """
        self._start()
        keep = self.session.display_filter
        consumers: list[Callable[[Any], None]] = [
            c.add for c in (self._conv, self._http, self._explainer) if c is not None]
        for builder in self._flow_builders.values():
            builder.max_rows = self.max_rows
            consumers.append(builder.add)
        wanted = self._wanted_frames
        frames = self.frames
        reader = self._reader
        # A read that only feeds summaries which look at payload alone (the HTTP table)
        # needs no record for a segment without payload: the analysis still sees it.
        payload_only = (not yielding and keep is None and not wanted and bool(consumers)
                        and all(getattr(c, "__self__", None) is not None
                                and getattr(c.__self__, "payload_only", False)
                                for c in consumers))
        # Nor HTTP/TLS/DNS views when no summary it feeds reads them (the conversations).
        payload_views = not (not yielding and keep is None and not wanted and bool(consumers)
                             and all(getattr(c, "__self__", None) is not None
                                     and not getattr(c.__self__, "payload_views", True)
                                     for c in consumers))
        # A filter on held fields alone is tested inside the analyzer's loop, before the
        # rest of a record is made; any other is tested here on whole records.
        early = None
        if keep is not None:
            from tcplab.analyze.filter import reads_held_only

            if reads_held_only(keep):
                early, keep = keep, None
        packets = self._analyzer.packets(reader, self.session.max_packets,
                                         payload_only=payload_only, payload_views=payload_views,
                                         keep=early)
        try:
            if keep is None and not consumers and not wanted:
                if yielding:
                    yield from packets  # nothing to do between the reader and the caller
                else:
                    for _ in packets:
                        pass
            elif not consumers and not wanted and yielding:
                yield from filter(keep, packets)  # a filtered list: the test is all there is
            elif keep is None and len(consumers) == 1 and not wanted and not yielding:
                consume = consumers[0]  # one summary and nothing else: the tightest loop
                for p in packets:
                    consume(p)
            else:
                for p in packets:
                    if keep is not None and not keep(p):
                        continue
                    for consume in consumers:
                        consume(p)
                    if wanted and p.number in wanted:
                        frames[p.number] = p
                    if yielding:
                        yield p
        except CaptureDamage as exc:
            self.damage = exc
        finally:
            reader.close()
        self.done = True

    @property
    def conversations(self) -> list[_conversations.ConversationSummary] | None:
        if self._conv is None:
            return None
        if "conversations" not in self._results:
            result = self._conv.summaries()
            if self._fix_completeness:
                self._final_completeness(result)
            self._results["conversations"] = result
        return self._results["conversations"]

    def _final_completeness(self, result: list[_conversations.ConversationSummary]) -> None:
        """Each stream's completeness from its end state, not from its last frame.

        The one read shows on each frame the value before that frame's own bits (as
        tshark's one pass does). A summary is about the whole stream: read for two passes,
        it shows what the two-pass read shows on the stream's last frame; with
        ``--one-pass``, every bit the stream's frames set.
        """
        tracker = self._analyzer.tracker
        finals = tracker.final_states()
        two_pass = self.session.two_pass
        for c in result:
            if c.stream < len(finals):
                f = finals[c.stream]
                if two_pass:
                    c.completeness = displayed_completeness(f.completeness, f.first_bits,
                                                            f.first_frame == c.last_frame)
                else:
                    c.completeness = f.completeness | f.first_bits

    @property
    def http(self) -> _http_summary.HttpSummary | None:
        if self._http is None:
            return None
        if "http" not in self._results:
            self._results["http"] = self._http.finish()
        return self._results["http"]

    @property
    def notes(self) -> list[_explain.Note] | None:
        if self._explainer is None:
            return None
        if "notes" not in self._results:
            self._results["notes"] = self._explainer.notes()
        return self._results["notes"]

    @property
    def flows(self) -> _Flows:
        return _Flows(self._flow_builders)


class _Flows:
    """stream → Flow, built on first lookup (raises InputError for a stream not captured)."""

    def __init__(self, builders: dict[int, _flow.FlowBuilder]) -> None:
        self._builders = builders

    def __getitem__(self, stream: int) -> _flow.Flow:
        return self._builders[stream].finish()

    def __contains__(self, stream: object) -> bool:
        return stream in self._builders

    def __iter__(self) -> Iterator[int]:
        return iter(self._builders)
