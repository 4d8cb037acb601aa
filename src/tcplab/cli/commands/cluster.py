"""``tcplab cluster up``: several chat nodes and a private Redis on this machine (argument parsing only)."""

from __future__ import annotations

import argparse
import signal

from tcplab.cli.common import add_command, port_number, positive_int

ORDER = 61

EXAMPLES = """\
  tcplab cluster up --nodes 2                     Redis + nodes on 127.0.0.1:55555 and :55556
  tcplab cluster up --nodes 3 --base-port 6000    nodes on ports 6000-6002
  tcplab cluster up --nodes 2 --shared-port       both nodes on port 55555 (SO_REUSEPORT)
  tcplab cluster up --nodes 2 -- --rate 0         pass options to every 'tcplab server'
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "cluster",
        summary="run several chat server nodes as one chat (Redis)",
        description=(
            "Run the chat as a cluster on this machine: start a private redis-server on a free "
            "port and N 'tcplab server --cluster' nodes, each pinned to a CPU where the OS "
            "allows. Users on any node see one chat: one nickname namespace, one online list, "
            "private messages and broadcasts across nodes. Ctrl-C stops the nodes, then Redis. "
            "On several machines run 'tcplab server --cluster redis://HOST:PORT/0' on each "
            "instead (docs/cluster.md)."
        ),
        examples=EXAMPLES,
    )
    sub = p.add_subparsers(title="actions", metavar="ACTION")
    up = sub.add_parser("up", help="start Redis and the nodes; stop them all on Ctrl-C",
                        description="Start a private redis-server and N chat nodes; Ctrl-C stops everything.",
                        epilog="examples:\n" + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--nodes", type=positive_int, default=2, help="number of chat server nodes (default 2)")
    up.add_argument("--host", default="127.0.0.1", help="address the nodes listen on (default 127.0.0.1)")
    up.add_argument("--base-port", type=port_number, default=55555,
                    help="the first node's port; the others follow on consecutive ports (default 55555)")
    up.add_argument("--shared-port", action="store_true",
                    help="every node listens on --base-port with SO_REUSEPORT, so clients need "
                         "not choose a node")
    up.add_argument("--redis", metavar="URL", default=None,
                    help="use this running Redis (redis://HOST:PORT/DB) instead of starting one")
    up.add_argument("--no-pin", action="store_true", help="do not pin the nodes to CPUs")
    up.add_argument("server_args", nargs=argparse.REMAINDER,
                    help="after '--': options passed to every 'tcplab server' node")
    up.set_defaults(handler=run_up)
    p.set_defaults(handler=lambda args: (p.print_help(), 0)[1])


def run_up(args: argparse.Namespace) -> int:
    from tcplab.chat.cluster.launcher import Cluster
    from tcplab.errors import InputError

    extra = list(args.server_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if args.base_port == 0:
        raise InputError("--base-port must name a port (the nodes' ports must be known)")
    cluster = Cluster(args.nodes, host=args.host, base_port=args.base_port,
                      shared_port=args.shared_port, redis_url=args.redis, server_args=extra,
                      pin=not args.no_pin, say=lambda line: print(line, flush=True))

    def stop(signum: int, _frame: object) -> None:
        cluster.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    cluster.start()
    for line in cluster.describe():
        print(line, flush=True)
    print("Cluster running — Ctrl-C to stop.", flush=True)
    try:
        status = cluster.wait()
    finally:
        print("Stopping the nodes, then Redis...", flush=True)
        cluster.stop()
    print("Cluster stopped.", flush=True)
    return status
