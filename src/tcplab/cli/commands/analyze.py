"""``tcplab analyze``: read a pcap/pcapng the way Wireshark does, from a terminal.

Argument parsing only: one :class:`tcplab.analyze.session.AnalysisSession` reads the
capture for every view asked; the output is drawn by :mod:`tcplab.analyze.render` and the
summary modules (conversations, flow, http_summary, explain).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tcplab.analyze import CHAT_PORTS, Packet, render
from tcplab.analyze.session import AnalysisSession
from tcplab.cli.common import add_command, port_number, positive_int, writes_utf8
from tcplab.errors import InputError

ORDER = 20

EXAMPLES = """\
  tcplab analyze capture.pcap
      the packet list, one line per packet, as Wireshark shows it
  tcplab analyze capture.pcap --packet 351 --hex
      frame 351 as a layered detail tree, then its bytes
  tcplab analyze capture.pcap -Y 'tcp.port == 5074 && !tcp.analysis.retransmission'
      only the packets a Wireshark display filter selects
  tcplab analyze https.pcapng -Y 'tls.handshake.type == 1 || dns.flags.response == 0'
      TLS Client Hellos and DNS queries (tls.* and dns.* fields as tshark names them)
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
  tcpdump -i lo -w - | tcplab analyze -Y 'dns || tls.handshake' -
      read a capture from standard input (pcap, pcapng or gzip), one pass
  tcplab analyze download.pcap --http --no-reassemble
      HTTP counted per segment, without reassembling messages split across segments
"""

DESCRIPTION = """\
Dissect every packet of a capture (classic pcap or pcapng, as written by Wireshark,
tcpdump, scapy or 'tcplab encap'): link layer (Ethernet, PPPoE, Linux cooked...), IPv4/IPv6
with fragments reassembled, ICMP/ICMPv6 (ping pairing, the header quoted in errors),
TCP/UDP, L2TP tunnels (UDP 1701: the PPP session and the packet inside it), TLS records
(on tshark's TLS ports and by its record heuristic), DNS (UDP 53, TCP 53/5353), HTTP
(reassembled across TCP segments, like Wireshark) and chat lines, with tshark's Info
text and field names.
TCP conversations are numbered and analysed with Wireshark 4.0's rules: relative
sequence numbers, [TCP Retransmission], [TCP Dup ACK], [TCP ZeroWindow] and the other
analysis tags, and conversation completeness. For JSON, the detail view and summaries the
file is read twice (like 'tshark -2'; the first pass only skims the headers) so values
that depend on the whole conversation are final on every packet; memory grows with the
number of conversations, never with the number of packets."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "analyze", summary="read a capture the way Wireshark does",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("file", metavar="FILE",
                   help="pcap or pcapng file (gzip-compressed is fine); '-' reads standard input, "
                        "as 'tshark -r -' does (read once: one pass)")
    view = p.add_argument_group("what to show (default: the packet list)")
    view.add_argument("--packet", metavar="N", type=positive_int,
                      help="show frame N as a detail tree (Frame, link, IP, TCP, payload, "
                           "HTTP/TLS/DNS)")
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
                             "list): completeness is then the value before each packet, as "
                             "tshark's one pass shows it")
    opts.add_argument("--no-defrag", action="store_true",
                      help="do not reassemble IPv4/IPv6 fragments (Wireshark's ip.defragment and "
                           "ipv6.defragment off): each fragment is shown alone, a first one "
                           "dissected as far as its bytes go")
    opts.add_argument("--no-reassemble", action="store_true",
                      help="do not reassemble HTTP messages carried by several TCP segments "
                           "(like tshark -o tcp.desegment_tcp_streams:FALSE): each segment "
                           "shows the messages it starts; by default a message is shown on "
                           "the segment that completes it and the earlier ones say "
                           "[TCP segment of a reassembled PDU]")
    opts.add_argument("--chat-port", metavar="PORT", type=port_number, action="append",
                      help=f"port whose payload is shown as chat lines (default {min(CHAT_PORTS)}; "
                           "repeatable)")
    p.set_defaults(handler=run)


#: Lines gathered before one write to stdout.
_BLOCK = 2048
#: The same for --json, whose lines are ~13 times longer: a block of 2048 of them is a
#: few megabytes of text, which the allocator maps fresh from the kernel for each write
#: (page faults: a tenth of the view's time); 64 lines (~85 KB) reuse the same memory.
_JSON_BLOCK = 64


class _Output:
    """Buffered stdout writes, one per ``block`` lines, in UTF-8 (as tshark writes).

    Lines are kept as bytes: the list and --json lines are made as UTF-8 to begin with
    (:meth:`Packet.list_bytes`, :func:`render.json_bytes`), other text is encoded as it
    is added. They go to stdout's bytes layer when its encoding is UTF-8; under any other
    (``PYTHONIOENCODING=ascii``, a Latin-1 terminal) through its text layer, with a
    backslash escape for each character it cannot show instead of a traceback.
    """

    def __init__(self, block: int = _BLOCK) -> None:
        self.lines: list[bytes] = []
        self.block = block
        self.write, self._flush = _stdout_writer()

    def add(self, line: str) -> None:
        self.add_bytes(line.encode())

    def add_bytes(self, line: bytes) -> None:
        lines = self.lines
        lines.append(line)
        if len(lines) >= self.block:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.lines.append(b"")  # the last line's newline, without copying the text again
            self.write(b"\n".join(self.lines))
            self.lines.clear()
        self._flush()


def _stdout_writer() -> tuple[Callable[[bytes], object], Callable[[], None]]:
    """How UTF-8 text reaches stdout: ``(write, flush)``."""
    out = sys.stdout
    if out is None:  # started with stdout closed: discarded, as print() does then
        return (lambda data: None), (lambda: None)
    buffer = getattr(out, "buffer", None)
    if buffer is not None and writes_utf8(out):
        out.flush()  # what was written as text goes first
        return buffer.write, buffer.flush
    write = out.write  # (main() has it escape what the encoding lacks)
    return (lambda data: write(data.decode())), out.flush


def run(args: argparse.Namespace) -> int:
    if args.hex and args.packet is None:
        raise InputError("--hex shows the bytes of one packet: add --packet N")
    streams = None
    if args.streams:
        if not args.flow_svg:
            raise InputError("--streams draws a picture: add --flow-svg OUT.svg")
        from tcplab.analyze import ladder

        streams = ladder.parse_streams(args.streams)
    summaries = args.conversations or args.http or args.explain
    flow = args.flow is not None or bool(args.flow_svg)
    one_flow = args.flow is not None or (bool(args.flow_svg) and streams is None)
    show_list = args.list or not (summaries or flow or args.packet is not None)
    # The plain list shows no conversation-wide value, so it reads once (as 'tshark -r');
    # every view that shows completeness reads twice (as 'tshark -2').
    wants_final = bool(args.json or args.packet is not None or summaries or flow)
    source = args.file
    if source == "-":
        if streams is not None:
            raise InputError("--streams reads the capture a second time, which standard input "
                             "cannot do: save it to a file first")
        source = sys.stdin.buffer
    session = AnalysisSession(
        source, two_pass=args.two_pass or (wants_final and not args.one_pass),
        display_filter=args.filter, checksums=not args.no_checksums, absolute=args.absolute,
        payload=args.payload or args.packet is not None,
        chat_ports=frozenset(args.chat_port) if args.chat_port else CHAT_PORTS,
        max_packets=args.count, defragment=not args.no_defrag,
        reassemble=not args.no_reassemble)
    stream = args.flow if args.flow is not None else 0
    lines = show_list or args.json or args.packet is not None
    analysis = session.run(conversations=args.conversations, http=args.http,
                           explain=args.explain, flows=[stream] if one_flow else [],
                           per_packet=bool(lines))
    out = _Output(_JSON_BLOCK if args.json else _BLOCK)
    found = False
    if args.packet is not None:
        # The detail view of one frame: the list is not printed beside it.
        if show_list and not args.json:
            out.add(render.LIST_HEADER)
        for p in analysis:
            if p.number == args.packet:
                _detail(out, p, args)
                found = True
                if not (summaries or show_list or flow):
                    break
    elif args.json:
        json_bytes = render.json_bytes
        add = out.add_bytes
        for p in analysis:
            add(json_bytes(p.fields(), payload=args.payload))
    elif show_list:
        out.add(render.LIST_HEADER)
        out.flush()
        # The list's own loop: lines come a block at a time (Run.list_blocks) and are
        # written with one call each, not passed one by one through _Output.add.
        write = out.write
        for block in analysis.list_blocks(_BLOCK):
            block.append(b"")  # the last line's newline
            write(b"\n".join(block))
    else:
        analysis.finish()
    damage = analysis.damage
    if damage is not None:
        bad = damage.as_packet()
        if args.json and args.packet is None:
            out.add_bytes(render.json_bytes(bad))
        elif show_list:
            _damage_line(out, bad)
    if args.packet is not None and not found and damage is None:
        out.flush()
        raise InputError(f"{args.file}: there is no frame {args.packet}"
                         + (" that matches the display filter" if args.filter else ""))

    # The summary modules are imported only for the views that use them (start-up time).
    if analysis.conversations is not None:
        from tcplab.analyze import conversations

        result = analysis.conversations
        _summary(out, args, conversations.to_json(result), conversations.render(result),
                 "TCP conversations")
    if analysis.http is not None:
        from tcplab.analyze import http_summary

        summary = analysis.http
        _summary(out, args, http_summary.to_json(summary), http_summary.render(summary), "HTTP")
    if analysis.notes is not None:
        from tcplab.analyze import explain

        notes = analysis.notes
        _summary(out, args, explain.to_json(notes), "\n\n".join(n.text for n in notes),
                 "Explanations")
    out.flush()
    if flow:
        from tcplab.analyze import flow as flow_graph
    if args.flow is not None and not args.json:
        out.add("")
        out.add(f"== Flow of TCP stream {stream} ==")
        out.add("\n".join(flow_graph.iter_ladder_lines(analysis.flows[stream])))
        out.flush()
    if streams is not None:
        # The multi-lane ladder follows several streams: one more read, its own builder.
        ladder.write_svg((p.fields() for p in session.run()), streams, args.flow_svg)
        print(f"wrote {args.flow_svg} (TCP streams {args.streams})", file=sys.stderr)
    elif args.flow_svg:
        flow_graph.write_flow_svg(analysis.flows[stream], args.flow_svg)
        print(f"wrote {args.flow_svg} (TCP stream {stream})", file=sys.stderr)
    out.flush()
    if damage is not None:
        raise damage
    return 0


def _damage_line(out: _Output, bad: dict) -> None:
    """The list line for a capture record that could not be read, in its place."""
    out.add(f"{bad['frame.number']:>6} {'':>11} {'':>15}   {'':<15} {'Frame':<8} {'':>6} "
            f"{bad['_ws.col.Info']}")


def _detail(out: _Output, p: Packet, args: argparse.Namespace) -> None:
    if args.json:
        out.add_bytes(render.json_bytes(p.fields(), payload=args.payload))
        return
    out.add(render.detail_tree(p.fields()))
    if args.hex:
        out.add("")
        out.add(render.hexdump(p.data))


def _summary(out: _Output, args: argparse.Namespace, as_json: dict, text: str, title: str) -> None:
    if args.json:
        import json  # only --json prints it (start-up time)

        out.add(json.dumps(as_json, ensure_ascii=False, separators=(",", ":")))
        return
    out.add("")
    out.add(f"== {title} ==")
    out.add(text)
