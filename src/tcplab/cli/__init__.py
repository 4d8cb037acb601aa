"""The ``tcplab`` command: argument parsing only.

Every subcommand lives in its own module under :mod:`tcplab.cli.commands` and is
discovered at start-up, so adding a command never means editing a central list.
A command module provides:

* ``ORDER`` — an int placing it in ``tcplab --help`` (lower first);
* ``add_parser(subparsers)`` — adds its parser and calls
  ``parser.set_defaults(handler=<function(args) -> int>)``.

Handlers call library functions and return an exit status. Exit statuses:
0 success, 1 bad input (file, row, field), 2 environment problem (missing
privilege, unsupported platform, missing program), 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from tcplab import __version__
from tcplab.errors import TcplabError

EPILOG = """\
examples:
  tcplab encap examples/http_ecommerce.csv -o http.pcap     build a valid TCP conversation
  tcplab analyze http.pcap --explain                         read it the way Wireshark does
  tcplab server                                              start the chat server on 127.0.0.1:55555
  tcplab client --nick Alice                                 join the chat

Run 'tcplab COMMAND --help' for a command's options and examples.
exit status: 0 ok, 1 bad input, 2 environment problem (privilege, platform), 130 interrupted
"""


def _command_modules(only: str | None = None) -> list:
    """Import the subcommand modules (just ``only``, when the command line names one).

    Importing every command costs start-up time (the chat server pulls in ``ssl``, the
    analyzer its tables), which a one-shot ``tcplab encap`` should not pay.
    """
    from tcplab.cli import commands

    if only is not None and only.isidentifier() and not only.startswith("_"):
        # A named command is looked up directly: listing the package with pkgutil imports
        # inspect (and ast, dis, tokenize), a tenth of a short analysis's start-up.
        try:
            spec = importlib.util.find_spec(f"{commands.__name__}.{only}")
        except ImportError:
            spec = None
        if spec is not None:
            return [importlib.import_module(spec.name)]
    import pkgutil

    names = [info.name for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")]
    modules = [importlib.import_module(f"{commands.__name__}.{name}") for name in names]
    modules.sort(key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
    return modules


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser: every command, or only ``command`` when it names one."""
    parser = argparse.ArgumentParser(
        prog="tcplab",
        description=(
            "Make TCP/IP visible: turn application messages into hand-built IPv4/TCP "
            "packets, write pcap files, inject and capture on loopback, explain captures "
            "the way Wireshark does, and run a multi-user TCP chat."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tcplab {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _command_modules(command):
        module.add_parser(subparsers)
    return parser


def _escape_what_stdout_cannot_encode() -> None:
    """Under an encoding other than UTF-8 (``PYTHONIOENCODING=ascii``, a Latin-1 terminal),
    print a character stdout cannot hold (the arrows of ``--help`` and of every packet
    line, Hebrew chat text) as a backslash escape, not end the command with a traceback."""
    from tcplab.cli.common import writes_utf8

    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not writes_utf8(sys.stdout):
        reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcplab`` console script."""
    _escape_what_stdout_cannot_encode()
    argv = list(sys.argv[1:] if argv is None else argv)
    # The first word that is not an option names the command (options before it are
    # global ones like --version, which need no command modules at all).
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except TcplabError as exc:
        print(f"tcplab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tcplab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        _quiet_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        # A full disk or file-size limit is the machine's state, not a bug: say it plainly.
        print(f"tcplab: error: cannot write {exc.filename or 'the output'}: {exc.strerror}",
              file=sys.stderr)
        _quiet_stdout()
        return 2


#: Write errors that say where the output goes is full (not a bug of ours).
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what it still holds
    does not fail a second time."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
