"""``tcplab client``: the chat client for the terminal (argument parsing only)."""

from __future__ import annotations

import argparse
import os

from tcplab.cli.common import add_command, port_number, positive_float

ORDER = 61
#: Kept here (not imported) so --help needs no import of the chat client.
BIDI_CHOICES = ("auto", "on", "off")

EXAMPLES = """\
  tcplab client                                  asks for host, port and nickname (the report's flow)
  tcplab client --nick "Britney Spears"          default server 127.0.0.1:55555, no questions
  tcplab client --host ::1 --port 6000 --nick Bob --reconnect
  tcplab client --tls --tls-ca cert.pem --password s3cret --nick Alice
  printf 'Alice\\nBob: hi\\n' | tcplab client --port 55555   scripted (plain line mode)
  tcplab client --gui                            the chat window (Login, then conversations)
  tcplab client --gui --nick Alice --nick Bob    two windows, logged in at once (demos)

in the chat:
  TargetName: message    private message (Tab completes online names)
  *: message             message to everyone
  /users /ping /help     who is online, round-trip time, every command
  exit (or /quit)        leave

--bidi: terminals such as tmux, screen, xterm and the Linux console draw Hebrew and Arabic
left to right, i.e. reversed. 'auto' (the default) reorders lines for display under tmux or
screen (TMUX/STY set), and when TERM is linux/screen/tmux/xterm/rxvt/vt100/vt220 unless the
terminal is VTE (GNOME Terminal) or Konsole, which do bidi themselves.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "client",
        summary="join the chat from the terminal",
        description=(
            "Connect to a tcplab chat server, choose a nickname and chat. Messages arriving "
            "while you type appear above your input line. Host, port and nickname are asked "
            "for unless given as options; a password is asked for (hidden) when the server "
            "needs one and --password is not given. Exit status: 0 after 'exit' or '/quit', "
            "1 if the connection was lost or the login refused, 2 if the server cannot be "
            "reached."
        ),
        examples=EXAMPLES,
    )
    p.add_argument("--host", default=None, help="server address (asked if omitted; default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=None,
                   help="server port (asked if omitted; default 55555)")
    p.add_argument("--nick", action="append", default=None,
                   help="nickname (asked if omitted); with --gui, repeat it for several windows")
    p.add_argument("--password", default=None,
                   help="server password (or set TCPLAB_CHAT_PASSWORD)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--tls-ca", metavar="PEM", default=None,
                   help="trust this CA/self-signed certificate for --tls")
    p.add_argument("--insecure", action="store_true",
                   help="with --tls: do not verify the server certificate (testing only)")
    p.add_argument("--reconnect", action="store_true",
                   help="on a lost connection, reconnect with the same nickname (with back-off)")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="connect timeout, seconds")
    p.add_argument("--bidi", choices=BIDI_CHOICES, default="auto",
                   help="reorder right-to-left text for terminals without bidi "
                        "(default auto: see below)")
    p.add_argument("--gui", action="store_true",
                   help="open the chat window instead of the terminal client (docs/gui.md)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tcplab.chat.cli_client import Options, run_client
    from tcplab.errors import InputError

    password = args.password or os.environ.get("TCPLAB_CHAT_PASSWORD") or None
    if args.gui:
        if args.tls or args.tls_ca:
            raise InputError("--gui does not do TLS yet; use the terminal client for --tls")
        from tcplab.gui.client import run as run_gui

        return run_gui(args.nick, host=args.host, port=args.port, password=password)
    if args.nick and len(args.nick) > 1:
        raise InputError("--nick was given more than once: several nicknames need --gui")
    nick = args.nick[0] if args.nick else None
    opts = Options(host=args.host, port=args.port, nick=nick, password=password,
                   tls=args.tls or bool(args.tls_ca), tls_ca=args.tls_ca, insecure=args.insecure,
                   reconnect=args.reconnect, connect_timeout=args.timeout, bidi=args.bidi)
    return run_client(opts)
