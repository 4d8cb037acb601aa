"""``tcplab inject``: send encap's hand-built packets through a raw socket (the report's experiment)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from tcplab.cli.common import (
    Progress,
    add_command,
    ip_address,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
)
from tcplab.errors import InputError

ORDER = 41

EXAMPLES = """\
  sudo tcplab inject examples/http_ecommerce.csv --capture seed.pcap
      the report's experiment: lone PSH+ACK segments to 127.0.0.1:12345, ~100 ms apart,
      each answered by the kernel with RST; then: tcplab analyze seed.pcap --explain
  sudo tcplab inject in.csv --style stream --rate 1000
      a whole synthetic conversation (handshake included) — still refused: no socket owns it
  sudo tcplab inject http.pcap --topspeed --loop 10
      resend the IP packets of a capture file as fast as the kernel takes them
"""

DESCRIPTION = """\
Send the packets 'tcplab encap' builds from a CSV (or the IP packets of a pcap/pcapng file)
through a raw IPv4/IPv6 socket with IP_HDRINCL, so they reach the destination exactly as
built. With nothing listening — and, seed style, with no handshake at all — the kernel
answers each segment with RST; a capture on lo watches for those answers and the summary
says what happened and why. Needs root or CAP_NET_RAW."""



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "inject",
                    summary="send hand-built packets onto loopback with a raw socket",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("input", metavar="INPUT", help="course CSV, or a pcap/pcapng file to resend")
    b = p.add_argument_group("packets (CSV input; the same options as tcplab encap)")
    b.add_argument("--style", choices=("seed", "stream"), default="seed",
                   help="seed: the report's lone PSH+ACK segments; stream: a full conversation")
    b.add_argument("--client-ip", type=ip_address, default="127.0.0.1")
    b.add_argument("--server-ip", type=ip_address, default="127.0.0.1")
    b.add_argument("--client-port", type=port_number, default=5074,
                   help="port of the client (the report's packets come from 5074)")
    b.add_argument("--server-port", type=port_number, default=12345,
                   help="port of the server (the report's packets go to 12345)")
    b.add_argument("--seed", type=int, default=None, help="fix ISNs and IP IDs (stream style)")
    b.add_argument("--unescape", choices=("auto", "always", "never"), default="auto")
    b.add_argument("--skip-bad", action="store_true", help="skip malformed CSV rows")
    t = p.add_argument_group("pacing")
    pace = t.add_mutually_exclusive_group()
    pace.add_argument("--interval", type=non_negative_float, default=None, metavar="SECONDS",
                      help="pause between packets (default 0.1, the report's spacing)")
    pace.add_argument("--rate", type=positive_float, metavar="PPS", help="packets per second")
    pace.add_argument("--topspeed", action="store_true", help="no pacing at all")
    t.add_argument("-c", "--count", type=positive_int, help="stop after this many packets")
    t.add_argument("--loop", type=int, default=1, metavar="N",
                   help="send the input N times over (0 = until Ctrl-C)")
    p.add_argument("--device", metavar="DEV",
                   help="write frames straight onto this loopback device with AF_PACKET, as "
                        "tcpreplay does, instead of a raw IP socket (faster; loopback only)")
    w = p.add_argument_group("watching")
    w.add_argument("--capture", metavar="OUT.pcap",
                   help="also write what happens on lo (our segments and the RSTs) to a file")
    w.add_argument("--no-watch", action="store_true",
                   help="do not open a capture socket to count the kernel's RSTs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.wire import inject as inject_mod
    from tcplab.wire.rawsock import DeviceSender, RawSender

    # The privilege check comes first: no point reading a large CSV to be refused later.
    sender = DeviceSender(args.device) if args.device else RawSender()
    sender.open(4)
    try:
        summary, stopped = _inject(args, inject_mod, sender)
    finally:
        sender.close()
    for line in summary.lines():
        print(line)
    if stopped:
        print("tcplab: stopped by signal; the summary covers what was sent", file=sys.stderr)
    return 0


def _inject(args: argparse.Namespace, inject_mod, sender) -> tuple[object, bool]:
    path = args.input
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if args.loop < 0:
        raise InputError("--loop must be 0 (forever) or a positive number")
    watching = not args.no_watch or args.capture
    if inject_mod.is_capture_file(path):
        def source():
            return inject_mod.packets_from_capture(path)
        # The watch filter learns the ports, so the rest of lo's traffic stays out.
        capture_filter = inject_mod.watch_filter(source()) if watching else None
    else:
        from tcplab.encap import EncapOptions

        options = EncapOptions(style=args.style, client_ip=args.client_ip,
                               server_ip=args.server_ip, client_port=args.client_port,
                               server_port=args.server_port, seed=args.seed,
                               start_time=time.time())

        def source():
            return inject_mod.packets_from_csv(path, options, unescape=args.unescape,
                                               skip_bad=args.skip_bad)
        # Always one pass first: a bad CSV fails before any packet leaves.
        capture_filter = inject_mod.watch_filter(source())
    interval = None if args.topspeed or args.rate else (0.1 if args.interval is None
                                                         else args.interval)
    progress = Progress("inject: packets")
    stop = threading.Event()
    from tcplab.cli.commands.capture import stop_on_signals

    with stop_on_signals(stop):
        try:
            summary = inject_mod.inject(
                source, loops=args.loop, rate=args.rate, interval=interval, count=args.count,
                watch=not args.no_watch, capture_path=args.capture,
                capture_filter=capture_filter,
                on_sent=None if args.quiet else (lambda n, _p: progress.update(n)),
                should_stop=stop.is_set, sender=sender,
            )
        finally:
            progress.close()
    return summary, stop.is_set()
