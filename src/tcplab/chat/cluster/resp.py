"""RESP2, the Redis wire protocol, as a sans-IO codec: commands to bytes, bytes to replies.

The cluster shell talks to Redis (or Valkey) from inside the chat server's selectors loop,
so it cannot use a blocking client: it writes :func:`encode` output to a non-blocking
socket and feeds whatever ``recv`` returns to :class:`RespParser`, which yields complete
replies and keeps partial ones. Replies are hostile bytes like any other: lengths, element
counts and nesting depth are bounded, and a violation raises :class:`RespProtocolError`
(the caller drops the connection and reconnects) instead of allocating what a corrupt
stream asks for.

Reply mapping: simple string → ``str``, error → :class:`RespError`, integer → ``int``,
bulk string → ``bytes`` (``None`` for the null bulk), array → ``list`` (``None`` for the
null array).
"""

from __future__ import annotations

#: Largest bulk string accepted (Redis's own proto-max-bulk-len default is 512 MB). The chat
#: never reads a value larger than one batch of cross-node messages (about 256 KiB); a
#: snapshot is an array of small bulks. Kept small because a partial bulk is re-joined with
#: each read.
MAX_BULK = 4 * 1024 * 1024
#: Largest array accepted (elements), e.g. HGETALL of 100,000 users is 200,000 elements.
MAX_ARRAY = 4_000_000
#: Nesting depth of arrays; the chat's replies nest at most two levels.
MAX_DEPTH = 8
#: A header line (``$123``, ``:42``, ``-ERR ...``) longer than this is not RESP.
MAX_LINE = 64 * 1024


class RespProtocolError(Exception):
    """The byte stream is not valid RESP2 (or exceeds a bound): the connection is unusable."""


class RespError:
    """An error reply (``-ERR ...``): a value, not an exception, so one failed command in a
    pipeline does not disturb the replies after it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    @property
    def kind(self) -> str:
        """The first word, e.g. ``NOSCRIPT``, ``WRONGTYPE``, ``ERR``."""
        return self.message.split(" ", 1)[0]

    def __repr__(self) -> str:
        return f"RespError({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RespError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


def _arg(value: bytes | str | int | float) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("a Redis argument cannot be a bool")
    if isinstance(value, (int, float)):
        return repr(value).encode() if isinstance(value, float) else str(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def encode(*args: bytes | str | int | float) -> bytes:
    """One command as a RESP array of bulk strings (binary-safe: any byte may be in an arg)."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(b"\r\n")
    return b"".join(parts)


_INCOMPLETE = object()


class RespParser:
    """Incremental RESP2 reply parser; :meth:`feed` returns the replies completed so far.

    Arrays under construction are kept on a stack between reads, so a large reply (a
    presence snapshot) arriving in many reads is parsed once, in linear time.
    """

    __slots__ = ("_buf", "_pos", "_stack")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._stack: list[tuple[list, int]] = []  # (items so far, expected length)

    @property
    def buffered(self) -> int:
        """Bytes of incomplete replies held right now."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list:
        buf = self._buf = self._buf[self._pos:] + data if self._buf else bytes(data)
        self._pos = 0
        size = len(buf)
        out: list = []
        stack = self._stack
        while self._pos < size:
            start = self._pos
            value = _INCOMPLETE
            if stack and buf[start] == 36:  # "$": the common case inside arrays, inlined
                end = buf.find(b"\r\n", start, start + 24)
                if end > start + 1 and buf[start + 1] != 45:  # a length, and not "$-1"
                    stop = end + 2 + int(buf[start + 1:end]) if buf[start + 1:end].isdigit() else -1
                    if end + 2 <= stop <= end + 2 + MAX_BULK and stop + 2 <= size \
                            and buf[stop:stop + 2] == b"\r\n":
                        value = buf[end + 2:stop]
                        self._pos = stop + 2
            if value is _INCOMPLETE:
                value = self._parse_one(len(stack))
            if value is _INCOMPLETE:
                self._pos = start
                break
            if value is _ARRAY_STARTED:
                continue
            while True:
                if not stack:
                    out.append(value)
                    break
                items, n = stack[-1]
                items.append(value)
                if len(items) < n:
                    break
                stack.pop()
                value = items
        return out

    def _line(self) -> bytes | object:
        buf = self._buf
        end = buf.find(b"\r\n", self._pos, self._pos + MAX_LINE + 2)
        if end < 0:
            if len(buf) - self._pos > MAX_LINE:
                raise RespProtocolError(f"header line longer than {MAX_LINE} bytes")
            return _INCOMPLETE
        line = bytes(buf[self._pos:end])
        self._pos = end + 2
        return line

    @staticmethod
    def _int(raw: bytes, what: str) -> int:
        try:
            return int(raw)
        except ValueError:
            raise RespProtocolError(f"bad {what} {raw[:40]!r}") from None

    def _parse_one(self, depth: int):  # noqa: ANN202 - returns any reply type
        line = self._line()
        if line is _INCOMPLETE:
            return _INCOMPLETE
        assert isinstance(line, bytes)
        if not line:
            raise RespProtocolError("empty reply header")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return self._int(rest, "integer")
        if kind == b"$":
            n = self._int(rest, "bulk length")
            if n == -1:
                return None
            if n < 0 or n > MAX_BULK:
                raise RespProtocolError(f"bulk length {n} out of range (max {MAX_BULK})")
            end = self._pos + n
            if len(self._buf) < end + 2:
                return _INCOMPLETE
            if self._buf[end:end + 2] != b"\r\n":
                raise RespProtocolError("bulk string not terminated by CRLF")
            value = bytes(self._buf[self._pos:end])
            self._pos = end + 2
            return value
        if kind == b"*":
            n = self._int(rest, "array length")
            if n == -1:
                return None
            if n < 0 or n > MAX_ARRAY:
                raise RespProtocolError(f"array length {n} out of range (max {MAX_ARRAY})")
            if n == 0:
                return []
            if depth >= MAX_DEPTH:
                raise RespProtocolError(f"arrays nested deeper than {MAX_DEPTH}")
            self._stack.append(([], n))
            return _ARRAY_STARTED
        raise RespProtocolError(f"unknown reply type {kind!r}")


_ARRAY_STARTED = object()


__all__ = ["encode", "RespParser", "RespError", "RespProtocolError", "MAX_BULK", "MAX_ARRAY"]
