"""``tcplab report``: your own captures analyzed and written up as report.html and report.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from tcplab.cli.common import add_command, port_number
from tcplab.errors import InputError

ORDER = 85

EXAMPLES = """\
  tcplab report capture.pcap -o report.html
      one page: packet list, conversations, flow graph, explanations, one packet taken apart
  tcplab report seed.pcap real.pcap -o out/report.html --open
      several captures in one report, opened in the browser
  tcplab report chat.pcap --chat-port 55555 -o chat.html
      show the chat's lines (port 55555) instead of raw TCP payload
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "report",
        summary="write an analysis report (HTML + Markdown) of captures",
        description=(
            "Analyze pcap/pcapng files the way 'tcplab analyze' does and write the result as "
            "one self-contained HTML page (inline CSS and SVG, no script, prints on A4) plus "
            "a Markdown file with the same sections and its pictures in images/ beside it."
        ),
        examples=EXAMPLES,
    )
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files")
    p.add_argument("-o", "--output", default="report.html", metavar="OUT.html",
                   help="the HTML file; the Markdown copy goes beside it (same name, .md), "
                        "its pictures in images/")
    p.add_argument("--chat-port", metavar="PORT", type=port_number, action="append",
                   help="port whose payload is shown as chat lines (repeatable)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.analyze import CHAT_PORTS
    from tcplab.cli.commands.demo import open_in_browser
    from tcplab.report import build_capture_report, write_report

    out = Path(args.output)
    if out.suffix.lower() == ".md":
        raise InputError(f"-o {out}: name the HTML file (e.g. report.html); the .md copy is "
                         "written beside it")
    chat = frozenset(args.chat_port) if args.chat_port else CHAT_PORTS
    report = build_capture_report(args.captures, chat_ports=chat,
                                  command="tcplab report " + " ".join(args.captures))
    html_path, md_path = write_report(report, out.parent, html_name=out.name,
                                      md_name=out.with_suffix(".md").name)
    print(f"wrote {html_path} and {md_path}")
    if args.open:
        open_in_browser(html_path)
    return 0
