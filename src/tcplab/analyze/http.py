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
import zlib

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


# -- the body's dissector (tshark 4.0's media_type dissector table) ---------------------------
#
# tshark hands a message body to the dissector its Content-Type names in the "media_type"
# table, and each of those leaves its own trace: the protocol it adds to frame.protocols,
# what it writes in Protocol/Info. These sets are the entries of that table tshark 4.0 has
# for the dissectors below (tests/fidelity/test_http_media.py asks tshark's own table); a
# type in no set and in none of _OTHER_TYPES has no entry there, so tshark's "media"
# dissector shows it.
_TEXT_LINES = frozenset({
    "text/html", "text/plain", "text/css", "text/javascript", "application/x-javascript",
    "text/richtext", "text/enriched", "text/parameters", "text/vnd.sun.j2me.app-descriptor",
    "application/vnd.poc.refer-to", "application/vnd.drm.message",
    "application/x-rtsp-udp-packetpair", "text/xml-external-parsed-entity"})
_XML = frozenset({
    "application/xml", "text/xml", "application/soap+xml", "application/atom+xml",
    "application/rss+xml", "image/svg+xml", "text/vnd.wap.wml", "application/x-wms-logplaystats",
    "application/xml-dtd", "application/rdf+xml", "application/xslt+xml",
    "application/mathml+xml", "application/vnd.wv.csp.xml", "application/xcap-el+xml",
    "application/pidf+xml", "application/reginfo+xml", "application/simple-filter+xml"})
_JSON = frozenset({"application/json", "application/problem+json", "application/x-ndjson",
                   "application/jsonrequest"})
_FORM = frozenset({"application/x-www-form-urlencoded"})
_DATA = frozenset({"application/octet-stream"})
#: Types tshark 4.0 hands to dissectors tcplab does not have (images, multipart, OCSP,
#: certificates, DNS, gRPC, SDP …): their bodies are left as they are shown now, no layer.
_OTHER_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "application/ocsp-response", "application/pkix-cert",
    "application/dns-message", "message/http", "application/grpc", "video/mp4",
    "application/sdp"})

_CONTENT_TYPE = re.compile(rb"\nContent-Type:[ \t]*([^\r\n]{0,256})", re.IGNORECASE)
_CONTENT_ENCODING = re.compile(rb"\nContent-Encoding:[ \t]*([^\r\n]{0,64})", re.IGNORECASE)
#: Body bytes a message keeps for its dissector (the XML check reads the first 38).
BODY_PREFIX = 64
_media_cache: dict[bytes, tuple[str | None, str | None]] = {}


def _media(head: bytes) -> tuple[str | None, str | None]:
    """``(media type, content coding)`` of a header block, lower case, parameters cut
    (tshark's lookup key); None where the header is absent. Cached per header block (the
    blocks of one capture repeat), bounded in entries and in each entry's size."""
    hit = _media_cache.get(head)
    if hit is not None:
        return hit
    block = head[: _HEAD_MAX]
    m = _CONTENT_TYPE.search(block)
    kind = None if m is None else m.group(1).split(b";", 1)[0].strip().decode("latin-1").lower()
    m = _CONTENT_ENCODING.search(block)
    coding = None if m is None else m.group(1).strip().decode("latin-1").lower()
    if coding in ("", "identity"):
        coding = None
    hit = (kind, coding)
    if len(head) <= _HEAD_MAX:  # (the cache holds at most _CACHE_MAX such blocks)
        if len(_media_cache) >= _CACHE_MAX:
            _media_cache.clear()
        _media_cache[head] = hit
    return hit


def _decoded_prefix(prefix: bytes, coding: str) -> bytes | None:
    """The first bytes of a gzip/deflate body, decoded; None when tshark could not decode it."""
    wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(coding)
    if wbits is None:
        return None
    try:
        return zlib.decompressobj(wbits).decompress(prefix, BODY_PREFIX)
    except zlib.error:
        return None


def prefix_free(head: bytes) -> bool:
    """Whether :func:`body_layer` of a body under ``head`` depends only on its length, not
    on its first bytes (no content coding to decode, not a text type that may be XML)."""
    kind, coding = _media(head)
    return coding is None and kind not in _TEXT_LINES


def body_layer(head: bytes, length: int, prefix: bytes,
               ) -> tuple[str, str, str, int | None] | None:
    """What tshark 4.0's dissector of a message body adds, or None (no body, or a type
    handed to a dissector tcplab lacks).

    ``(frame.protocols suffix, Protocol suffix, Info suffix, data.len)``: text types are
    ``data-text-lines`` (``:xml`` too when the text is an XML document), XML and JSON types
    add ``/XML``/``/JSON`` to Protocol, types without a dissector are ``media``, a body
    without a type (or ``application/octet-stream``) is ``data`` with its length. Info names
    the media type (escaped: it is the sender's text) as tshark's dissectors append it.
    ``length`` is the body's (de-chunked) size, ``prefix`` its first bytes.
    """
    if length <= 0:
        return None
    kind, coding = _media(head)
    if coding is not None:
        decoded = _decoded_prefix(prefix, coding)
        if decoded is None:  # tshark shows a body it cannot decode as data, as it came
            return ":data", "", "", length
        prefix = decoded
        length = -1  # its decoded length is not known here
    if kind is None or kind in _DATA:
        return ":data", "", "", length if length >= 0 else None
    shown = safe_text(kind)
    if kind in _TEXT_LINES:
        # (the text dissector hands a document of more than 38 bytes opening "<?xml" on)
        if len(prefix) > 38 and prefix[:5].lower() == b"<?xml":
            return ":data-text-lines:xml", "/XML", "", None
        return ":data-text-lines", "", f"  ({shown})", None
    if kind in _XML:
        return ":xml", "/XML", "", None
    if kind in _JSON:
        return ":json", "/JSON", f" , JavaScript Object Notation ({shown})", None
    if kind in _FORM:
        return ":urlencoded-form", "", f"  ({shown})", None
    if kind in _OTHER_TYPES or kind.startswith("multipart/"):
        return None
    return ":media", "", f"  ({shown})", None
