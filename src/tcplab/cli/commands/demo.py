"""``tcplab demo``: both parts of the course report, end to end, with a report."""

from __future__ import annotations

import argparse

from tcplab.cli.common import add_command

ORDER = 90

EXAMPLES = """\
  sudo tcplab demo                 everything, including live injection and capture on lo
  tcplab demo --out /tmp/demo      the steps that need no privilege; live ones are skipped with the reason
  tcplab demo --no-chat            Part 1 only
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "demo",
        summary="run the end-to-end demo (encapsulation, analysis, live wire, chat) with a report",
        description=(
            "Rebuild the report's frame 351 by hand, turn the bundled HTTP conversation into "
            "packets in both styles, analyze them, repeat the report's live experiment on "
            "loopback (root), and run the chat with five users through scenarios A–F while "
            "capturing its traffic. Everything produced, and a REPORT.md, goes to --out."
        ),
        examples=EXAMPLES,
    )
    p.add_argument("--out", default="out/demo", metavar="DIR", help="folder for the files the demo makes")
    live = p.add_mutually_exclusive_group()
    live.add_argument("--live", dest="live", action="store_true", default=None,
                      help="require the live steps (fail if raw sockets are not allowed)")
    live.add_argument("--no-live", dest="live", action="store_false",
                      help="skip injection, replay and capture even when running as root")
    p.add_argument("--no-chat", action="store_true", help="skip Part 2 (the chat)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.demo import run_demo

    result = run_demo(args.out, live=args.live, chat=not args.no_chat)
    return 1 if result.failures else 0
