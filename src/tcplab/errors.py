"""The one exception family for mistakes a user can make (bad files, bad flags).

The CLI turns a :class:`TcplabError` into a one-line message and an exit code; anything
else escaping a command is a bug and keeps its traceback. Library callers can catch
``TcplabError`` to handle every user-facing failure in one place.
"""

from __future__ import annotations


class TcplabError(Exception):
    """A user-facing error: the message must name the file, row, offset or field at fault."""

    #: Process exit status the CLI uses for this error (1 = bad input, 2 = environment/permission).
    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(TcplabError):
    """Input data (CSV, pcap, arguments) is malformed; exit status 1."""


class EnvironmentProblem(TcplabError):
    """The machine lacks something we need (privilege, AF_PACKET, a program); exit status 2."""

    exit_code = 2
