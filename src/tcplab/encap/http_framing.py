"""Make CSV HTTP messages well-framed for a byte stream. No I/O here.

On a real TCP connection a receiver finds where one HTTP message ends and the next
begins only from the message itself: the head ends at an empty line (CRLF CRLF), and a
body's length comes from ``Content-Length`` (RFC 9112 §6). Course CSVs often hold a bare
``GET /blog HTTP/1.1`` or a response with a body but no length; carried as-is on one
connection, Wireshark would glue the next message onto the previous body. The stream
style therefore frames each message (counted and reported); the seed style never does,
so it stays byte-exact with the report.
"""

from __future__ import annotations

import re

_LENGTH = re.compile(rb"^content-length\s*:", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding\s*:.*chunked", re.I | re.M)
_STATUS = re.compile(rb"^HTTP/\d\.\d (\d{3})")
_NO_BODY_STATUS = {204, 304}


def frame_http(payload: bytes) -> tuple[bytes, bool]:
    """Return (framed message, whether anything changed).

    The head's line endings become CRLF and it gains its terminating empty line; a body
    without a length gains ``Content-Length``; a response without a body and without a
    length gains ``Content-Length: 0`` (except 1xx/204/304, which never have a body).
    """
    end = payload.find(b"\r\n\r\n")
    # Fast path for the common, already well-framed message: CRLF-only head that is either
    # a body-less request or states its body's length. Plain substring tests on the
    # lower-cased head cost a fraction of a multi-line regex, and this runs per message.
    if end >= 0 and payload.count(b"\n", 0, end) == payload.count(b"\r\n", 0, end):
        if end + 4 == len(payload) and not payload.startswith(b"HTTP/"):
            return payload, False
        head_lower = payload[:end].lower()
        if b"\r\ncontent-length:" in head_lower or (
            b"\r\ntransfer-encoding:" in head_lower and b"chunked" in head_lower
        ):
            return payload, False
    if end >= 0:
        head, body = payload[:end], payload[end + 4 :]
    elif b"\n\n" in payload:
        head, body = payload.split(b"\n\n", 1)
    else:
        head, body = payload.rstrip(b"\r\n"), b""
    lines = [ln.rstrip(b"\r") for ln in head.split(b"\n")]
    is_response = lines[0].startswith(b"HTTP/")
    status = _STATUS.match(lines[0])
    code = int(status.group(1)) if status else 0
    head_text = b"\r\n".join(lines)
    if not _LENGTH.search(head_text) and not _CHUNKED.search(head_text):
        if body:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        elif is_response and code >= 200 and code not in _NO_BODY_STATUS:
            lines.append(b"Content-Length: 0")
    framed = b"\r\n".join(lines) + b"\r\n\r\n" + body
    return framed, framed != payload
