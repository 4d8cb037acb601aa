"""The one exception a header parser raises when bytes do not form the header."""

from __future__ import annotations

from tcplab.errors import InputError


class ParseError(InputError):
    """Bytes that cannot be the header being parsed.

    Carries the protocol, the field and the byte offset (from the start of the buffer
    handed to the parser) so the analyzer can report "[Malformed Packet: …]" precisely.
    """

    def __init__(self, protocol: str, field: str, offset: int, reason: str) -> None:
        self.protocol = protocol
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__(f"{protocol}: {field} at byte {offset}: {reason}")
