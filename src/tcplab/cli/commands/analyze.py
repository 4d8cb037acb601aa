"""``tcplab analyze``: read a pcap/pcapng the way Wireshark does, from a terminal.

Argument parsing and wiring only: the work is :func:`tcplab.analyze.analyze`, the output
is :mod:`tcplab.analyze.render`, and the summaries come from the analyzer's summary
modules (conversations, flow, http_summary, explain, filter).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tcplab.analyze import CHAT_PORTS, CaptureDamage, analyze, render
from tcplab.cli.common import add_command, port_number, positive_int
from tcplab.errors import InputError

ORDER = 20

EXAMPLES = """\
  tcplab analyze capture.pcap
      the packet list, one line per packet, as Wireshark shows it
  tcplab analyze capture.pcap --packet 351 --hex
      frame 351 as a layered detail tree, then its bytes
  tcplab analyze capture.pcap -Y 'tcp.port == 5074 && !tcp.analysis.retransmission'
      only the packets a Wireshark display filter selects
  tcplab analyze capture.pcap --conversations --explain
      one line per TCP stream, then plain-language notes on what happened
  tcplab analyze http.pcapng --http
      requests by method, responses by status, request/response pairs (and CSV msg_id)
  tcplab analyze capture.pcap --flow 0 --flow-svg stream0.svg
      a ladder diagram of stream 0 in the terminal, and as a picture
  tcplab analyze chat.pcap --flow-svg relay.svg --streams 4,3
      one ladder, three lanes: sender → server → recipient across two TCP streams
  tcplab analyze capture.pcap --json | jq 'select(."tcp.analysis.retransmission")'
      JSON Lines keyed by Wireshark field names, for scripts and tshark users
"""

DESCRIPTION = """\
Dissect every packet of a capture (classic pcap or pcapng, as written by Wireshark,
tcpdump, scapy or 'tcplab encap'): link layer, IPv4/IPv6, TCP/UDP, HTTP and chat lines.
TCP conversations are numbered and analysed with Wireshark 4.0's rules: relative
sequence numbers, [TCP Retransmission], [TCP Dup ACK], [TCP ZeroWindow] and the other
analysis tags, and conversation completeness. For JSON, the detail view and summaries the
file is read twice (like 'tshark -2') so values that depend on the whole conversation
are final on every packet; memory stays flat however large the file."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "analyze", summary="read a capture the way Wireshark does",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="pcap or pcapng file (gzip-compressed is fine)")
    view = p.add_argument_group("what to show (default: the packet list)")
    view.add_argument("--packet", metavar="N", type=positive_int,
                      help="show frame N as a detail tree (Frame, link, IP, TCP, payload)")
    view.add_argument("--hex", action="store_true",
                      help="with --packet: add the bytes as Wireshark's hex/ASCII dump")
    view.add_argument("--list", action="store_true",
                      help="print the packet list even when a summary option is given")
    view.add_argument("--conversations", action="store_true",
                      help="per TCP stream: endpoints, packets/bytes each way, completeness, verdict")
    view.add_argument("--flow", metavar="STREAM", nargs="?", type=int, const=0, default=None,
                      help="ladder diagram of one TCP stream (default stream 0)")
    view.add_argument("--flow-svg", metavar="SVG", help="write the --flow diagram as an SVG picture")
    view.add_argument("--streams", metavar="N,M", help="with --flow-svg: draw these TCP streams "
                      "on one ladder, one lane per endpoint (a chat message through the server)")
    view.add_argument("--http", action="store_true",
                      help="HTTP summary: methods, status codes, request/response pairs, msg_id")
    view.add_argument("--explain", action="store_true",
                      help="plain-language notes on the flags and anomalies in this capture")
    view.add_argument("--json", action="store_true",
                      help="JSON Lines: one object per packet keyed by Wireshark field names, "
                           "then one object per summary (with a 'summary' key)")
    view.add_argument("--payload", action="store_true",
                      help="with --json: include tcp.payload as colon-separated hex")
    opts = p.add_argument_group("analysis options")
    opts.add_argument("-Y", "--display-filter", metavar="EXPR", dest="filter",
                      help="Wireshark display filter subset, e.g. 'tcp.port == 80 && tcp.flags.reset == 1'")
    opts.add_argument("-c", "--count", metavar="N", type=positive_int,
                      help="read only the first N packets")
    opts.add_argument("--absolute", action="store_true",
                      help="raw sequence/ack numbers in the Info column (tcp.seq stays relative)")
    opts.add_argument("--no-checksums", action="store_true",
                      help="skip IP/TCP/UDP checksum verification (faster)")
    passes = opts.add_mutually_exclusive_group()
    passes.add_argument("-2", "--two-pass", action="store_true",
                        help="read the file twice like 'tshark -2' even for the plain list "
                             "(the default for --json, --packet and summaries)")
    passes.add_argument("--one-pass", action="store_true",
                        help="read the file once, like 'tshark -r' (the default for the plain "
                             "list): completeness is then the value so far, as in a live capture")
    opts.add_argument("--chat-port", metavar="PORT", type=port_number, action="append",
                      help=f"port whose payload is shown as chat lines (default {min(CHAT_PORTS)}; "
                           "repeatable)")
    p.set_defaults(handler=run)


def _extra(name: str) -> Any:
    """A summary module of the analyzer, with a clear error if this build lacks it."""
    try:
        return importlib.import_module(f"tcplab.analyze.{name}")
    except ImportError as exc:
        raise InputError(f"this tcplab build has no tcplab.analyze.{name} ({exc})") from None


def _packets(args: argparse.Namespace, *, payload: bool) -> Iterator[dict]:
    chat = frozenset(args.chat_port) if args.chat_port else CHAT_PORTS
    # A filter on tcp.payload needs the bytes the analyzer otherwise drops.
    payload = payload or getattr(args, "filter_needs_payload", False)
    # The plain list shows no conversation-wide value, so it reads once (as 'tshark -r');
    # everything that shows completeness reads twice (as 'tshark -2').
    wants_final = bool(args.json or args.packet is not None or args.conversations or args.http
                       or args.explain or args.flow is not None or args.flow_svg)
    two_pass = args.two_pass or (wants_final and not args.one_pass)
    # Checksum verdicts appear in JSON, the detail tree, --explain and filters, never in the list.
    checksums = not args.no_checksums and bool(wants_final or args.filter)
    return analyze(args.file, two_pass=two_pass, checksums=checksums,
                   absolute=args.absolute, payload=payload, chat_ports=chat,
                   max_packets=args.count)


def _filtered(packets: Iterable[dict], keep: Callable[[dict], bool] | None) -> Iterator[dict]:
    if keep is None:
        yield from packets
        return
    for d in packets:
        if keep(d):
            yield d


class _Output:
    """Buffered stdout writes: one system call per few hundred lines, not per packet."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.write = sys.stdout.write

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= 512:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.write("\n".join(self.lines) + "\n")
            self.lines.clear()
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.hex and args.packet is None:
        raise InputError("--hex shows the bytes of one packet: add --packet N")
    if args.streams and not args.flow_svg:
        raise InputError("--streams draws a picture: add --flow-svg OUT.svg")
    keep = None
    if args.filter:
        keep = _extra("filter").compile_filter(args.filter, option="-Y")
        args.filter_needs_payload = _extra("filter").needs_payload(keep)
    summaries = args.conversations or args.http or args.explain
    flow = args.flow is not None or args.flow_svg
    show_list = args.list or not (summaries or flow or args.packet is not None)
    out = _Output()
    damage: CaptureDamage | None = None

    consumers = []
    conv_table = http_table = explainer = None
    if args.conversations:
        conv_table = _extra("conversations").ConversationTable()
        consumers.append(conv_table.add)
    if args.http:
        http_table = _extra("http_summary").HttpTable()
        consumers.append(http_table.add)
    if args.explain:
        explainer = _extra("explain").Explainer()
        consumers.append(explainer.add)

    if (show_list and not (args.json or keep or consumers or flow or args.two_pass)
            and args.packet is None):
        return _plain_list(out, args)

    found = False
    try:
        packets = _filtered(_packets(args, payload=args.payload or args.packet is not None), keep)
        if args.packet is not None and not (summaries or show_list):
            for d in packets:
                if d["frame.number"] == args.packet:
                    _detail(out, d, args)
                    found = True
                    break
        else:
            if show_list and not args.json:
                out.add(render.LIST_HEADER)
            line = render.packet_line
            json_line = render.json_line
            for d in packets:
                for consume in consumers:
                    consume(d)
                if args.packet is not None:
                    if d["frame.number"] == args.packet:
                        _detail(out, d, args)
                        found = True
                    continue
                if args.json:
                    out.add(json_line(d, payload=args.payload))
                elif show_list:
                    out.add(line(d))
    except CaptureDamage as exc:
        damage = exc
        bad = exc.as_packet()
        if args.json and args.packet is None:
            out.add(render.json_line(bad))
        elif show_list:
            _damage_line(out, bad)
    if args.packet is not None and not found and damage is None:
        out.flush()
        raise InputError(f"{args.file}: there is no frame {args.packet}"
                         + (" that matches the display filter" if keep else ""))

    if conv_table is not None:
        conv = _extra("conversations")
        result = conv_table.summaries()
        _summary(out, args, conv.to_json(result), conv.render(result), "TCP conversations")
    if http_table is not None:
        hs = _extra("http_summary")
        result = http_table.finish()
        _summary(out, args, hs.to_json(result), hs.render(result), "HTTP")
    if explainer is not None:
        ex = _extra("explain")
        notes = explainer.notes()
        _summary(out, args, ex.to_json(notes), "\n\n".join(n.text for n in notes), "Explanations")
    out.flush()
    if flow:
        _flow(out, args, keep)
    out.flush()
    if damage is not None:
        raise damage
    return 0


def _plain_list(out: _Output, args: argparse.Namespace) -> int:
    """The default view: the packet list alone, read once, lines written in chunks."""
    from tcplab.analyze.listview import packet_lines

    chunks = packet_lines(args.file, absolute=args.absolute,
                          chat_ports=frozenset(args.chat_port or CHAT_PORTS),
                          max_packets=args.count)  # a file that is no capture fails here
    out.add(render.LIST_HEADER)
    out.flush()
    write = sys.stdout.write
    try:
        for chunk in chunks:
            write(chunk)
    except CaptureDamage as exc:
        _damage_line(out, exc.as_packet())
        out.flush()
        raise
    out.flush()
    return 0


def _damage_line(out: _Output, bad: dict) -> None:
    """The list line for a capture record that could not be read, in its place."""
    out.add(f"{bad['frame.number']:>6} {'':>11} {'':>15}   {'':<15} {'Frame':<8} {'':>6} "
            f"{bad['_ws.col.Info']}")


def _detail(out: _Output, d: dict, args: argparse.Namespace) -> None:
    if args.json:
        out.add(render.json_line(d, payload=args.payload))
        return
    out.add(render.detail_tree(d))
    if args.hex:
        out.add("")
        out.add(render.hexdump(d.get("_raw", b"")))


def _summary(out: _Output, args: argparse.Namespace, as_json: dict, text: str, title: str) -> None:
    if args.json:
        out.add(json.dumps(as_json, ensure_ascii=False, separators=(",", ":")))
        return
    out.add("")
    out.add(f"== {title} ==")
    out.add(text)


def _flow(out: _Output, args: argparse.Namespace, keep: Callable[[dict], bool] | None) -> None:
    flow_mod = _extra("flow")
    stream = args.flow if args.flow is not None else 0
    if args.flow is not None and not args.json:
        try:
            text = flow_mod.render_ladder(_filtered(_packets(args, payload=False), keep), stream)
        except CaptureDamage:
            text = flow_mod.render_ladder(
                _until_damage(_filtered(_packets(args, payload=False), keep)), stream)
        out.add("")
        out.add(f"== Flow of TCP stream {stream} ==")
        out.add(text)
        out.flush()
    if args.streams:
        streams = _extra("ladder").parse_streams(args.streams)
        _extra("ladder").write_svg(_until_damage(_filtered(_packets(args, payload=False), keep)),
                                   streams, args.flow_svg)
        print(f"wrote {args.flow_svg} (TCP streams {args.streams})", file=sys.stderr)
    elif args.flow_svg:
        flow_mod.write_svg(_until_damage(_filtered(_packets(args, payload=False), keep)), stream,
                           args.flow_svg)
        print(f"wrote {args.flow_svg} (TCP stream {stream})", file=sys.stderr)


def _until_damage(packets: Iterator[dict]) -> Iterator[dict]:
    try:
        yield from packets
    except CaptureDamage:
        return
