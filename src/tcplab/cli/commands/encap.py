"""``tcplab encap``: CSV of application messages → pcap/pcapng of hand-built packets."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tcplab.cli.common import (
    Progress,
    add_command,
    ip_address,
    non_negative_float,
    port_number,
    positive_int,
)
from tcplab.encap import EncapOptions, encapsulate_csv
from tcplab.encap.csv_input import parse_timestamp_ns
from tcplab.errors import InputError
from tcplab.packet import link

ORDER = 10

EXAMPLES = """\
  tcplab encap examples/http_ecommerce.csv -o http.pcap
      a complete TCP conversation (handshake, data + ACKs, FIN) that Wireshark reads as Complete
  tcplab encap examples/http_ecommerce.csv --style seed --linktype null -o seed.pcap
      the report's packets: lone PSH+ACK segments, seq 0, shown as [TCP Retransmission]
  tcplab encap in.csv --style seed --client-port 5074 --server-port 12345 --linktype null -o f351.pcap
      byte-exact with the report's frame 351 for a 'GET /blog HTTP/1.1' row
  tcplab encap in.csv -o out.pcapng --seed 7 --start-time 2024-05-01T10:00:00
      reproducible output; pcapng keeps each packet's CSV msg_id as a comment
  tcplab encap in.csv --app web_server=127.0.0.2:8080 --app client_browser=127.0.0.1:40000
      put named applications on chosen addresses/ports
"""

DESCRIPTION = """\
Read a CSV of application messages (course format: msg_id,app_protocol,src_app,dst_app,
message,timestamp; optional src_ip,dst_ip,src_port,dst_port) and walk each message down
the stack: TCP (or UDP for DNS) → IPv4/IPv6 → link header, every checksum computed by
hand, written to a capture file that Wireshark and tshark open.

Rows whose app_protocol is TCP with message SYN, SYN-ACK, ACK, FIN, FIN-ACK or RST
become those control segments; DNS rows ('Query: NAME' / 'Response: NAME -> ADDR')
become real DNS datagrams to port 53. Empty messages are counted and skipped."""


def _app_override(text: str) -> tuple[str, str | None, int | None]:
    name, sep, where = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=IP, NAME=IP:PORT or NAME=:PORT")
    where = where.strip()
    ip: str | None = None
    port: int | None = None
    if where.startswith("["):  # [v6]:port
        host, _, rest = where[1:].partition("]")
        ip, port_text = host, rest.lstrip(":")
    elif where.count(":") == 1:
        ip, port_text = where.split(":")
    elif ":" in where:
        ip, port_text = where, ""
    else:
        ip, port_text = where, ""
    ip = ip or None
    if ip is not None:
        ip_address(ip)
    if port_text:
        port = port_number(port_text)
    return name.strip(), ip, port



def _start_time(text: str) -> int:
    """Epoch nanoseconds, exactly as written (``…05.123`` stays .123000000)."""
    try:
        return parse_timestamp_ns(text)[0]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch seconds nor an ISO 8601 time"
        ) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "encap",
        summary="CSV of application messages → hand-built IPv4/TCP packets in a pcap file",
        description=DESCRIPTION,
        examples=EXAMPLES,
    )
    p.add_argument("input", metavar="INPUT.csv", help="the CSV of application messages")
    p.add_argument("-o", "--output", metavar="OUT.pcap",
                   help="capture file to write (.pcapng → pcapng); default: INPUT with .pcap")
    p.add_argument("--style", choices=("stream", "seed"), default="stream",
                   help="stream: a valid, complete TCP conversation; seed: the report's lone "
                        "PSH+ACK segments with seq 0")
    p.add_argument("--linktype", choices=sorted(link.LINKTYPE_BY_NAME), default="ethernet",
                   help="link header: ethernet (as Linux lo captures), null (the report's BSD "
                        "loopback frames), raw IP, or Linux cooked sll/sll2")
    p.add_argument("--format", choices=("pcap", "pcapng"), default=None,
                   help="capture format (default: from the output file's extension)")
    g = p.add_argument_group("endpoints")
    g.add_argument("--client-ip", type=ip_address, default="127.0.0.1", help="address of client applications")
    g.add_argument("--server-ip", type=ip_address, default="127.0.0.1", help="address of server applications")
    g.add_argument("--client-port", type=port_number, default=12345,
                   help="port of the first client connection; later ones count up")
    g.add_argument("--server-port", type=port_number, default=80,
                   help="port of the first server; further servers get 8080, 8081, … (443 for https)")
    g.add_argument("--app", type=_app_override, action="append", default=[], metavar="NAME=IP[:PORT]",
                   help="place an application (src_app/dst_app name) at an address and/or port; repeatable")
    g.add_argument("--connection-per-message", action="store_true",
                   help="open a new connection for every client request instead of one per client/server pair")
    t = p.add_argument_group("TCP and timing")
    t.add_argument("--mss", type=positive_int, default=1460,
                   help="maximum segment size: larger messages are split into several segments")
    t.add_argument("--seed", type=int, default=None,
                   help="fix initial sequence numbers and IP IDs for reproducible output")
    t.add_argument("--interval", type=non_negative_float, default=0.1,
                   help="seconds between messages when the CSV has no timestamps (the report: ~0.1)")
    t.add_argument("--start-time", type=_start_time, default=None, metavar="TIME",
                   help="epoch seconds or ISO time that relative CSV timestamps count from (default: now)")
    c = p.add_argument_group("input handling")
    c.add_argument("--unescape", choices=("auto", "always", "never"), default="auto",
                   help="turn literal \\r\\n escapes into line breaks (auto: HTTP messages that use them)")
    c.add_argument("--skip-bad", action="store_true",
                   help="skip malformed rows (counted in the summary) instead of stopping at the first")
    c.add_argument("--no-http-framing", action="store_true",
                   help="stream style: send HTTP messages exactly as written, even without the CRLF "
                        "terminator or Content-Length a byte stream needs")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not os.path.exists(args.input):
        raise InputError(f"{args.input}: no such file")
    output = args.output or os.path.splitext(args.input)[0] + ".pcap"
    if os.path.abspath(output) == os.path.abspath(args.input):
        raise InputError(f"{output}: refusing to overwrite the input file")
    if args.mss < 64 or args.mss > 65495:
        raise InputError(f"--mss {args.mss}: must be between 64 and 65495")
    app_ips: dict[str, str] = {}
    app_ports: dict[str, int] = {}
    for name, ip, port in args.app:
        if ip:
            app_ips[name] = ip
        if port is not None:
            app_ports[name] = port
    options = EncapOptions(
        style=args.style,
        client_ip=args.client_ip,
        server_ip=args.server_ip,
        client_port=args.client_port,
        server_port=args.server_port,
        app_ips=app_ips,
        app_ports=app_ports,
        mss=args.mss,
        seed=args.seed,
        interval=args.interval,
        start_time_ns=args.start_time if args.start_time is not None else time.time_ns(),
        connection_per_message=args.connection_per_message,
        http_framing=not args.no_http_framing,
    )
    progress = Progress("encap", bytes=True)
    try:
        summary = encapsulate_csv(
            args.input,
            output,
            options,
            linktype=link.LINKTYPE_BY_NAME[args.linktype],
            format=args.format,
            unescape=args.unescape,
            skip_bad=args.skip_bad,
            progress=progress.update if progress.enabled else None,
        )
    finally:
        progress.close()
    if not args.quiet:
        for line in summary.lines():
            print(line)
        if summary.read.messages == 0:
            print("note: the CSV held no messages, so the capture file has no packets", file=sys.stderr)
    return 0
