"""``tcplab replay``: the CSV conversation over the kernel's real TCP (optionally captured)."""

from __future__ import annotations

import argparse
import time

from tcplab.cli.common import add_command, ip_address, port_number, positive_float

ORDER = 42

EXAMPLES = """\
  tcplab replay examples/http_ecommerce.csv
      handshake, every message from the right side, FIN — all by real sockets
  sudo tcplab replay examples/http_ecommerce.csv --capture real.pcap
      the same, captured: Wireshark shows a complete conversation and no RST;
      compare with: sudo tcplab inject examples/http_ecommerce.csv --capture seed.pcap
  tcplab replay in.csv --timing --speed 10
      keep the CSV's pauses between messages, ten times faster
"""

DESCRIPTION = """\
The honest alternative to 'inject': listen on the server port, connect a client socket
from the client port, let the kernel make the three-way handshake, send each CSV message
in order from its own side (requests from the client, responses from the server), and
close with FIN. Which side sends what, and where connections open and close, comes from
the same planning 'tcplab encap --style stream' does. No privilege needed unless
--capture is used (CAP_NET_RAW) or a port is below 1024."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "replay", summary="replay a CSV conversation over real TCP sockets",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("input", metavar="INPUT.csv", help="course CSV of application messages")
    g = p.add_argument_group("endpoints (local addresses only)")
    g.add_argument("--client-ip", type=ip_address, default="127.0.0.1")
    g.add_argument("--server-ip", type=ip_address, default="127.0.0.1")
    g.add_argument("--client-port", type=port_number, default=5074,
                   help="port of the first client connection; later ones count up")
    g.add_argument("--server-port", type=port_number, default=12345,
                   help="port of the first server; further servers get 8080, 8081, …")
    g.add_argument("--connection-per-message", action="store_true",
                   help="a new connection for every client request")
    t = p.add_argument_group("timing")
    t.add_argument("--timing", action="store_true",
                   help="keep the CSV's pauses between messages (each capped at 5 s)")
    t.add_argument("--speed", type=positive_float, default=1.0,
                   help="with --timing: play this many times faster")
    c = p.add_argument_group("input and capture")
    c.add_argument("--unescape", choices=("auto", "always", "never"), default="auto")
    c.add_argument("--skip-bad", action="store_true", help="skip malformed CSV rows")
    c.add_argument("--capture", metavar="OUT.pcap",
                   help="capture the replay on lo into this file (needs CAP_NET_RAW)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.encap import EncapOptions
    from tcplab.wire import capture as capture_mod
    from tcplab.wire import inject, replay

    options = EncapOptions(style="stream", client_ip=args.client_ip, server_ip=args.server_ip,
                           client_port=args.client_port, server_port=args.server_port,
                           connection_per_message=args.connection_per_message,
                           start_time=time.time(), seed=0)
    background = None
    if args.capture:
        capture_filter = inject.watch_filter(
            inject.packets_from_csv(args.input, options, unescape=args.unescape,
                                    skip_bad=args.skip_bad))
        background = capture_mod.BackgroundCapture("lo", args.capture,
                                                   expression=capture_filter).start()
    capture_summary = None
    try:
        summary = replay.replay_csv(args.input, options, unescape=args.unescape,
                                    skip_bad=args.skip_bad, timing=args.timing, speed=args.speed)
    finally:
        if background is not None:
            capture_summary = background.stop(grace=0.3)
    for line in summary.lines():
        print(line)
    if capture_summary is not None:
        print(f"captured  {capture_summary.packets:,} packets to {args.capture} "
              f"({capture_summary.kernel_dropped:,} dropped by the kernel); "
              f"read it with: tcplab analyze {args.capture} --explain")
    return 0
