"""``tcplab server``: run the multi-user chat server (argument parsing only)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from tcplab.cli.common import (
    add_command,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_int,
)

ORDER = 60

EXAMPLES = """\
  tcplab server                                   serve on 127.0.0.1:55555 (the report's defaults)
  tcplab server --host :: --port 6000             every IPv6 and IPv4 address, port 6000
  tcplab server --max-clients 20000 --rate 0 --max-per-address 0
                                                  load testing from one machine: more clients,
                                                  no flood limit, no per-address limit
  tcplab server --password s3cret --tls-cert cert.pem --tls-key key.pem
                                                  beyond loopback: TLS and a shared password
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from tcplab.chat import protocol, server

    p = add_command(
        subparsers, "server",
        summary="run the multi-user TCP chat server",
        description=(
            "Run the chat server: clients log in with a nickname and send 'TargetName: Message' "
            "lines; the server stamps the sender, routes the message and keeps everyone's "
            "ONLINE_USERS list up to date. One event loop serves thousands of clients. "
            "Stop it with Ctrl-C or SIGTERM: clients are told and disconnected cleanly. "
            "Logs (stderr) carry metadata only. Protocol: docs/protocol.md."
        ),
        examples=EXAMPLES,
    )
    p.add_argument("--host", default=server.DEFAULT_HOST,
                   help="address to listen on (IPv4 or IPv6; '::' for every address)")
    p.add_argument("--port", type=port_number, default=server.DEFAULT_PORT,
                   help="TCP port to listen on (0 picks a free one and prints it)")
    p.add_argument("--max-clients", type=positive_int, default=server.DEFAULT_MAX_CLIENTS,
                   help="connections served at once; more are refused with code 503")
    p.add_argument("--max-per-address", type=non_negative_int,
                   default=server.DEFAULT_MAX_PER_ADDRESS,
                   help="connections one address (IPv6: one /64) may hold at once; more are "
                        "refused and logged (0 = no limit; raise it for many users behind one NAT)")
    p.add_argument("--max-line", type=positive_int, default=protocol.DEFAULT_MAX_LINE,
                   help="longest accepted line in bytes; longer ones get code 417")
    p.add_argument("--max-output", type=positive_int, default=server.DEFAULT_MAX_OUTPUT,
                   help="unsent bytes queued per client before it is dropped as a slow consumer")
    p.add_argument("--sndbuf", type=non_negative_int, default=0, metavar="BYTES",
                   help="kernel send buffer per client (SO_SNDBUF); 0 = the kernel's "
                        "autotuning, which on loopback grows to megabytes before a stalled "
                        "reader's output starts counting against --max-output")
    p.add_argument("--rate", type=non_negative_float, default=protocol.DEFAULT_RATE,
                   help="flood limit: messages per second per client (0 = no limit)")
    p.add_argument("--burst", type=positive_int, default=int(protocol.DEFAULT_BURST),
                   help="flood limit: messages a client may send at once above the rate")
    p.add_argument("--idle-timeout", type=non_negative_float, default=300.0,
                   help="disconnect clients silent this many seconds (0 = never); the tcplab "
                        "client pings every 60 s")
    p.add_argument("--login-timeout", type=non_negative_float, default=60.0,
                   help="disconnect connections that send no nickname within this many "
                        "seconds (0 = never), so silent sockets cannot hold client slots")
    p.add_argument("--password", default=None,
                   help="clients must send '/pass PASSWORD' before their nickname (or set "
                        "TCPLAB_CHAT_PASSWORD, which other users cannot read in 'ps'); after "
                        f"{protocol.PASS_FREE_FAILURES - 1} wrong passwords from one address each "
                        "further attempt waits 1, 2, 4 … up to "
                        f"{protocol.PASS_DELAY_MAX:g} s (logged as password_failed/_delayed)")
    p.add_argument("--tls-cert", metavar="PEM", default=None, help="serve TLS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", default=None,
                   help="private key for --tls-cert (if not inside the certificate file)")
    p.add_argument("--log-messages", action="store_true",
                   help="also log message text (off by default: logs hold metadata only)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(handler=run)


def _raise_fd_limit(wanted: int) -> int:
    """Each client is a file descriptor; lift the soft limit toward the hard one if needed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    return soft


def run(args: argparse.Namespace) -> int:
    from tcplab.chat.protocol import Limits
    from tcplab.chat.server import ChatServer, format_peer, make_server_ssl_context
    from tcplab.errors import InputError

    if args.tls_key and not args.tls_cert:
        raise InputError("--tls-key needs --tls-cert")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    max_clients = args.max_clients
    soft = _raise_fd_limit(max_clients + 64)
    if soft < max_clients + 16:
        max_clients = max(1, soft - 16)
        logging.getLogger("tcplab.chat.server").warning(
            "file descriptor limit %d: serving at most %d clients (raise it with ulimit -n)",
            soft, max_clients)
    ctx = make_server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    password = args.password or os.environ.get("TCPLAB_CHAT_PASSWORD") or None
    limits = Limits(max_line=args.max_line, rate=args.rate, burst=float(args.burst),
                    idle_timeout=args.idle_timeout, login_timeout=args.login_timeout,
                    password=password,
                    log_messages=args.log_messages)
    srv = ChatServer(args.host, args.port, limits=limits, max_clients=max_clients,
                     max_output=args.max_output, max_per_address=args.max_per_address,
                     ssl_context=ctx, sndbuf=args.sndbuf)

    def stop(signum: int, _frame: object) -> None:
        srv.request_shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"Chat server listening on {format_peer(srv.address)}"
          f"{' (TLS)' if ctx else ''} — Ctrl-C to stop", flush=True)
    srv.serve_forever()
    print("Chat server stopped.", flush=True)
    return 0
