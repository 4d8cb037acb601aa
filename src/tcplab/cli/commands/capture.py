"""``tcplab capture``: read frames off an interface into a pcap file, tcpdump-style."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tcplab.cli.common import add_command, port_number, positive_float, positive_int

ORDER = 40

PROTOCOLS = ("tcp", "udp", "icmp", "icmp6", "ip", "ip6", "arp")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "capture",
        summary="capture packets on an interface (default lo) into a pcap file",
        description=(
            "Capture live packets with a Linux AF_PACKET socket, the way tcpdump and "
            "Wireshark do: the filter is compiled to classic BPF and runs in the kernel, "
            "loopback's duplicate copy of every frame is dropped, and the file is always "
            "finished cleanly, even on Ctrl-C or SIGTERM. Needs root or CAP_NET_RAW."
        ),
        examples="""\
  sudo tcplab capture -o seed.pcap tcp port 5074          like Wireshark's tcp.port == 5074
  sudo tcplab capture --port 55555 -c 100 -o chat.pcapng  the chat, first 100 packets
  sudo tcplab capture --proto udp --duration 10 -q -o udp.pcap
  tcplab capture -d 'tcp port 80 and host 127.0.0.1'      show the BPF program and exit
""",
    )
    parser.add_argument("expression", nargs="*", metavar="EXPR",
                        help="tcpdump-style filter, e.g. 'tcp port 5074 and host 127.0.0.1'")
    parser.add_argument("-i", "--interface", default="lo", help="interface to capture on")
    parser.add_argument("-o", "-w", "--output", metavar="FILE",
                        help="write packets here (.pcapng → pcapng, else pcap)")
    parser.add_argument("--format", choices=("pcap", "pcapng"), default=None,
                        help="file format (default: from the file name)")
    parser.add_argument("-c", "--count", type=positive_int, help="stop after this many packets")
    parser.add_argument("--duration", type=positive_float, metavar="SECONDS",
                        help="stop after this many seconds")
    parser.add_argument("--port", type=port_number, action="append", default=[],
                        help="only this TCP/UDP port (repeat for several)")
    parser.add_argument("--host", action="append", default=[],
                        help="only packets from or to this address (repeat for several)")
    parser.add_argument("--proto", choices=PROTOCOLS, help="only this protocol")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no live packet lines, only the summary")
    parser.add_argument("-d", "--show-filter", action="store_true",
                        help="print the compiled BPF program (tcpdump -d format) and exit")
    parser.add_argument("-D", "--list-interfaces", action="store_true",
                        help="list interfaces and exit")
    parser.set_defaults(handler=run)


def filter_expression(args: argparse.Namespace) -> str | None:
    from tcplab.wire import bpf

    words = " ".join(args.expression).strip() or None
    return bpf.expression_from_options(expression=words, ports=args.port, hosts=args.host,
                                       protocol=args.proto)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
    """Turn SIGINT/SIGTERM into a stop request so the file is always finished cleanly.

    Yields a list that receives the name of the signal that arrived (for the summary).
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def live_printer(linktype: int, stream=None) -> Callable[[int, int, bytes, int], None]:
    """One packet-list line per frame, in the analyzer's format (as ``tcplab analyze``)."""
    from tcplab.wire.lines import LiveLines

    out = stream if stream is not None else sys.stdout
    lines = LiveLines(linktype)
    out.write(lines.header + "\n")

    def show(number: int, timestamp_ns: int, data: bytes, wire_length: int) -> None:
        out.write(lines.line(data, timestamp_ns, wire_length) + "\n")
        if number % 64 == 0 or not out.isatty():
            out.flush()

    return show


def run(args: argparse.Namespace) -> int:
    from tcplab.packet import link
    from tcplab.wire import bpf, capture

    if args.list_interfaces:
        capture.require_packet_sockets()
        for index, name in enumerate(capture.interfaces(), 1):
            print(f"{index}. {name}")
        return 0
    expression = filter_expression(args)
    if args.show_filter:
        print(bpf.disassemble(bpf.compile_filter(expression, link.LINKTYPE_ETHERNET)))
        return 0
    stop = threading.Event()

    def ready(psock: capture.PacketSocket) -> None:
        shown = expression or "(none: every packet)"
        print(f"tcplab: capturing on {psock.interface}, link-type EN10MB (Ethernet), "
              f"filter {shown}; Ctrl-C to stop", file=sys.stderr, flush=True)

    on_packet = None if args.quiet else live_printer(link.LINKTYPE_ETHERNET)
    with stop_on_signals(stop) as received:
        summary = capture.run_capture(
            args.interface, args.output, expression=expression, count=args.count,
            duration=args.duration, file_format=args.format, stop=stop, on_packet=on_packet,
            on_ready=ready,
        )
    if received:
        summary.stop_reason = received[0]
    sys.stdout.flush()
    print(summary.text(), file=sys.stderr)
    return 0
