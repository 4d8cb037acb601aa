"""``tcplab demo``: both parts of the course report, end to end, written up as report.html."""

from __future__ import annotations

import argparse
import sys

from tcplab.cli.common import add_command

ORDER = 90

EXAMPLES = """\
  sudo tcplab demo                 everything, including live injection, replay and capture on lo
  tcplab demo --out /tmp/demo      without root: the live sections are replaced and say how to get them
  sudo tcplab demo --open          and open out/demo/report.html in the default browser
  tcplab demo --gui                and screenshots of the desktop client in the report (needs a
                                   display or Xvfb, python3-tk and ImageMagick's import)
  tcplab demo --no-chat            Part 1 only
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "demo",
        summary="run the end-to-end demo (encapsulation, live wire, chat) and write its report",
        description=(
            "Rebuild the report's frame 351 by hand, turn the bundled HTTP conversation into "
            "packets in both styles, repeat the report's live experiment on loopback (root), "
            "and run the chat with five users through scenarios A-F while capturing its "
            "traffic. Then write report.html (one self-contained page: inline CSS and SVG, "
            "no script) and report.md, both regenerated from the captured packets, into --out "
            "with the captures themselves."
        ),
        examples=EXAMPLES,
    )
    p.add_argument("--out", default="out/demo", metavar="DIR",
                   help="folder for the captures and the report")
    p.add_argument("--open", action="store_true",
                   help="open report.html in the default browser when done")
    live = p.add_mutually_exclusive_group()
    live.add_argument("--live", dest="live", action="store_true", default=None,
                      help="require the live steps (fail if raw sockets are not allowed)")
    live.add_argument("--no-live", dest="live", action="store_false",
                      help="skip injection, replay and capture even when running as root")
    p.add_argument("--no-chat", action="store_true", help="skip Part 2 (the chat)")
    p.add_argument("--gui", action="store_true",
                   help="also drive the desktop client for two users and put its screenshots in "
                        "the report (uses DISPLAY, else a private Xvfb; says why when it cannot)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.demo import run_demo

    command = "tcplab " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["demo"] else "tcplab demo"
    result = run_demo(args.out, live=args.live, chat=not args.no_chat, command=command,
                      gui=args.gui)
    if args.open and result.report_html is not None:
        open_in_browser(result.report_html)
    return 1 if result.failures else 0


def open_in_browser(path) -> None:
    """Hand the page to the desktop's browser; say so plainly when there is none."""
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        print(f"tcplab: no browser found; open {path} yourself", file=sys.stderr)
