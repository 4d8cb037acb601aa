"""Recognise application payloads in one TCP segment: HTTP/1.x and the tcplab chat lines.

What this module is for: the Protocol and Info columns and the ``http.*`` fields of one
message: its request or status line, plus ``Host`` and ``Content-Length``. Which bytes make
up a message — across segments, or several in one segment — is decided by
:mod:`tcplab.analyze.reassembly`, which hands each message's header block here.

HTTP is recognised by content, on any port (Wireshark would need port 80 or "Decode
As"), because captures made by ``tcplab encap`` use the course's ports 5074/12345.

What it must never do: trust the bytes. Payload text reaches a terminal, so everything
shown goes through :func:`tcplab.analyze.render.safe_text`; no I/O here.
"""

from __future__ import annotations

import re

from tcplab.analyze.render import safe_text

#: The chat server's default port (``tcplab server``), where lines are shown as CHAT.
CHAT_PORTS = frozenset({55555})

# Request methods of RFC 9110 §9 plus PATCH (RFC 5789): a payload starting otherwise is
# not an HTTP request line.
_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT",
            b"TRACE")
_REQUEST = re.compile(rb"(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT|TRACE) (\S{1,8192}) "
                      rb"(HTTP/1\.[01])(?:\r?\n|$)")
_RESPONSE = re.compile(rb"(HTTP/1\.[01]) ([1-5]\d\d)(?: ([^\r\n]{0,512}))?(?:\r?\n|$)")
_HOST = re.compile(rb"\nHost:[ \t]*([^\r\n]{0,1024})", re.IGNORECASE)
_LENGTH = re.compile(rb"\nContent-Length:[ \t]*(\d{1,18})[ \t]*\r?\n", re.IGNORECASE)
# Headers are looked for in the first few KiB only: one segment's worth, bounded work.
_HEAD_MAX = 8192
_FIRST_BYTES = frozenset(m[0] for m in _METHODS) | {ord("H")}

# Matched request/status line → its parse for :func:`message`. Bounded: cleared when full.
_CACHE_MAX = 256
_message_cache: dict[bytes, tuple] = {}

#: How much of a chat segment the Info column shows before eliding.
CHAT_INFO_MAX = 200


def _headers(payload: bytes, d: dict) -> None:
    end = payload.find(b"\r\n\r\n", 0, _HEAD_MAX)
    head = payload[: end + 2 if end >= 0 else _HEAD_MAX]
    m = _HOST.search(head)
    if m is not None:
        d["http.host"] = safe_text(m.group(1).decode("latin-1").strip())
    m = _LENGTH.search(head)
    if m is not None:
        d["http.content_length"] = int(m.group(1))


def _request_info(m: re.Match[bytes]) -> tuple[str, str, str]:
    """A request line's method, shown URI (escaped) and version."""
    return m.group(1).decode(), safe_text(m.group(2).decode("latin-1")), m.group(3).decode()


def _response_info(m: re.Match[bytes]) -> tuple[str, int, str]:
    """A status line's version, code and shown reason phrase (escaped)."""
    version, code, phrase = m.groups()
    return version.decode(), int(code), safe_text((phrase or b"").decode("latin-1").strip())


def classify(payload: bytes, sport: int, dport: int, d: dict,
             chat_ports: frozenset[int] = CHAT_PORTS) -> bool:
    """Set Protocol/Info and ``http.*`` fields in ``d`` if ``payload`` is HTTP or chat.

    Returns True when the payload was recognised (so the caller keeps the TCP summary
    out of the Info column, as Wireshark does when a sub-dissector takes the payload).
    """
    if not payload:
        return False
    if payload[0] in _FIRST_BYTES:
        m = _REQUEST.match(payload)
        if m is not None:
            method, uri, version = _request_info(m)
            d["http.request"] = True
            d["http.request.method"] = method
            d["http.request.uri"] = uri
            d["http.request.version"] = version
            _headers(payload, d)
            d["_ws.col.Protocol"] = "HTTP"
            d["_ws.col.Info"] = f"{method} {uri} {version}"
            return True
        m = _RESPONSE.match(payload)
        if m is not None:
            version, code, text = _response_info(m)
            d["http.response"] = True
            d["http.response.version"] = version
            d["http.response.code"] = code
            d["http.response.phrase"] = text
            _headers(payload, d)
            d["_ws.col.Protocol"] = "HTTP"
            d["_ws.col.Info"] = f"{version} {code} {text}".rstrip()
            return True
    if sport in chat_ports or dport in chat_ports:
        d["_ws.col.Protocol"] = "CHAT"
        d["_ws.col.Info"] = chat_info(payload, to_server=dport in chat_ports)
        return True
    return False


def message(payload: bytes, start: int = 0, end: int | None = None,
            ) -> tuple[tuple[str, str], str | None, str | None, int | None, str | None] | None:
    """The HTTP request or status line at the start of ``payload[start:end]``, parsed, or None.

    ``((Protocol, Info), method, uri, code, phrase)`` with the fields the other kind of
    message lacks as None; texts shown as :func:`classify` shows them. Headers are not
    searched. Captures repeat a few request and status lines: each distinct line is
    decoded and escaped once (bounded cache). ``start``/``end`` let a caller pass a whole
    frame without copying its payload out.
    """
    if end is None:
        end = len(payload)
    if start >= end or payload[start] not in _FIRST_BYTES:
        return None
    # A line seen before is found without the regular expression: the cache holds only
    # lines the expression matched whole, and neither one can match a newline before its
    # last byte, so a payload whose text up to its first newline is such a line matches it
    # again, to the same line.
    nl = payload.find(b"\n", start, end)
    if nl >= 0:
        entry = _message_cache.get(payload[start : nl + 1])
        if entry is not None:
            return entry
    # A status line starts "HTTP/", which no request method does: try it first then.
    response = payload.startswith(b"HTTP/", start, end)
    m = (_RESPONSE if response else _REQUEST).match(payload, start, end)
    if m is None:
        return None
    line = m.group(0)
    entry = _message_cache.get(line)
    if entry is None:
        if len(_message_cache) >= _CACHE_MAX:
            _message_cache.clear()
        if response:
            version, code, text = _response_info(m)
            entry = (("HTTP", f"{version} {code} {text}".rstrip()), None, None, code, text)
        else:
            method, uri, version = _request_info(m)
            entry = (("HTTP", f"{method} {uri} {version}"), method, uri, None, None)
        _message_cache[line] = entry
    return entry


def columns(payload: bytes, sport: int, dport: int,
            chat_ports: frozenset[int] = CHAT_PORTS) -> tuple[str, str] | None:
    """The Protocol and Info columns :func:`classify` would set, without any ``http.*`` field.

    The packet list needs only these two texts, so the headers (``Host``,
    ``Content-Length``) are not searched for; None when the payload is neither HTTP nor chat.
    """
    entry = message(payload)
    if entry is not None:
        return entry[0]
    if payload and (sport in chat_ports or dport in chat_ports):
        return "CHAT", chat_info(payload, to_server=dport in chat_ports)
    return None


def _chat_line(line: str, to_server: bool) -> str:
    """One chat line for the Info column (wire format in docs/protocol.md)."""
    if line.startswith("ONLINE_USERS:"):
        return "online: " + ", ".join(n for n in line[13:].split(",") if n)
    if line.startswith("/") or ":" not in line:
        return line  # a command, or the nickname a client sends first
    head, _, text = line.partition(":")
    head, text = head.strip(), text.strip()
    if not head:
        return line
    if to_server:
        return f"{head} → {text}" if head != "*" else f"everyone → {text}"
    if head == "System":
        return f"System: {text}"
    if head.startswith("* "):
        return f"{head[2:]} (to everyone): {text}"
    return f"from {head}: {text}"


def chat_info(payload: bytes, *, to_server: bool = True) -> str:
    """Readable Info for chat text: a client's ``Target: Message`` shows as ``Target → Message``,
    the server's ``Sender: Message`` as ``from Sender: Message``."""
    text = payload.decode("utf-8", errors="replace")
    shown = [_chat_line(line.strip(), to_server) for line in text.splitlines() if line.strip()]
    info = safe_text(" | ".join(shown)) or "(blank line)"
    if len(info) > CHAT_INFO_MAX:
        info = info[: CHAT_INFO_MAX - 1] + "…"
    return info
