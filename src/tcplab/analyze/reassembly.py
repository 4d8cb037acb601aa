"""HTTP/1.x messages over a TCP byte stream: which segments make up each message.

What this module is for: Wireshark's TCP reassembly as the packet list and the HTTP
fields see it. tshark shows an HTTP message carried by several segments on the segment
that *completes* it (with ``tcp.segment``, ``tcp.segment.count``,
``tcp.reassembled.length``), and marks the earlier ones ``[TCP segment of a reassembled
PDU]`` (with ``tcp.reassembled_in`` once a first pass has seen the end). It also
dissects every message a segment holds, so two pipelined requests in one segment are two
requests. :class:`Reassembler` reproduces that one direction at a time: each in-order
segment's payload goes through :meth:`Reassembler.segment`, which returns a
:class:`SegmentView` saying what the segment shows, or None when the payload is not HTTP
(the caller's other recognisers — chat lines — then take it).

Which segments take part follows tshark 4.0: retransmitted, spurious and out-of-order
segments are not handed over (the caller leaves them out); bytes already seen are
skipped; a hole (a segment not captured) means the message in progress can never be
completed, so its remaining segments are only marked, never dissected.

Memory is bounded per direction, whatever the capture (the limits below are part of
``docs/analyze.md``): message bodies are counted, never buffered; only a message's
header block is kept until it is complete, up to :data:`MAX_HEADER_BYTES`; a message
lists at most :data:`MAX_LISTED_SEGMENTS` frames (its count stays exact); a direction
remembers one request method (a response to HEAD has no body). For ``-2`` the
first pass keeps one 4-byte frame number per message that spanned several segments, up
to :data:`MAX_INDEX_ENTRIES` in all. What it must never do: I/O, or keep a segment's
bytes once the message's header block is complete.
"""

from __future__ import annotations

import re
from array import array

from tcplab.analyze import http as _http

#: A header block still incomplete after this many bytes is given up (not HTTP after all,
#: or a peer that never ends its headers). h11 allows 16 KiB; Apache 8 KiB per line.
MAX_HEADER_BYTES = 64 * 1024
#: Frames listed in ``tcp.segment`` for one message; more are counted, not listed.
MAX_LISTED_SEGMENTS = 4096
#: Messages (over all directions) whose completing frame a first pass records for
#: ``tcp.reassembled_in`` in the second; beyond it the field is left out.
MAX_INDEX_ENTRIES = 1_000_000
#: A chunk-size line longer than this is not chunked encoding: the message ends there.
MAX_CHUNK_LINE = 1024

#: tshark 4.0's default HTTP ports (``http.tcp.port``): there it takes even the first bytes
#: of a request line ("PO") for HTTP. Elsewhere tcplab waits for one whole message on a
#: direction before it does, so a stray letter on another port starts nothing.
HTTP_PORTS = frozenset({80, 3128, 3132, 5985, 8080, 8088, 11371, 1900, 2869, 2710})

#: The Info note tshark gives a segment whose bytes belong to a message completed later.
SEGMENT_NOTE = " [TCP segment of a reassembled PDU]"

_M32 = 0xFFFFFFFF
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LENGTH = re.compile(rb"\nContent-Length:[ \t]*(\d{1,18})[ \t]*\r?\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\nTransfer-Encoding:[^\r\n]*\bchunked\b", re.IGNORECASE)
# What a request or status line starts with: a segment may end inside it ("PO", "GET /ve").
_LINE_STARTS = tuple(m + b" " for m in _http._METHODS) + (b"HTTP/",)
_FIRST_BYTES = _http._FIRST_BYTES
_BODY_PREFIX = _http.BODY_PREFIX

# Body framing of a message whose header block is complete.
_NONE, _LENGTH_BODY, _CHUNKS, _TO_END = 0, 1, 2, 3
# Chunked-body parser states: size line, chunk data, CRLF after data, trailer lines.
_SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3


def _could_start(fragment: bytes) -> bool:
    """Whether ``fragment`` (a segment's last bytes) may begin a request or status line."""
    return any(fragment.startswith(s) or s.startswith(fragment) for s in _LINE_STARTS)


class Message:
    """One HTTP message a segment completes: its first line and header block."""

    __slots__ = ("entry", "head", "segments", "count", "length", "final_length", "body",
                 "whole", "_fields")

    def __init__(self, entry: tuple, head: bytes, segments: list[int] | None = None,
                 count: int = 1, length: int = 0, body: tuple[int, bytes] | None = None) -> None:
        #: :func:`tcplab.analyze.http.message`'s parse: ((Protocol, Info), method, uri, code, phrase)
        self.entry = entry
        self.head = head  # request/status line and headers (no body)
        self.segments = segments  # frames, when the message spanned several segments
        self.count = count
        self.length = length
        #: The length tshark's second pass shows: the reassembled buffer stops where a
        #: message still incomplete at the segment's end begins (its first pass keeps it).
        self.final_length = length
        #: (de-chunked body length, its first http.BODY_PREFIX bytes), for the body's
        #: dissector; None for the shared views of one whole message in one segment, whose
        #: body is the rest of the segment after ``head``.
        self.body = body
        #: its reassembled buffer took the completing segment whole (the header block or a
        #: chunked body ended there): ``length`` runs to the segment's end
        self.whole = False
        self._fields: dict | None = None

    def http_fields(self) -> dict:
        """The ``http.*`` fields of the header block, parsed on first use; read-only.

        The message of a shared view stands for every segment that repeats its header
        block, so a capture parses each such block once however many frames show it.
        """
        fields = self._fields
        if fields is None:
            fields = {}
            _http.classify(self.head, 0, 0, fields, frozenset())
            fields.pop("_ws.col.Protocol", None)  # the columns are the record's to make
            fields.pop("_ws.col.Info", None)
            self._fields = fields
        return fields


class SegmentView:
    """What one segment shows once its bytes are placed in its direction's byte stream.

    ``messages``: messages completed in this segment (Protocol becomes HTTP).
    ``started``: the first line of a message begun here and completed later (a
    :func:`~tcplab.analyze.http.message` entry, or None if even that line is not whole).
    ``opens``: a message begun here continues in later segments. ``part``: the segment
    carries bytes of a message it does not complete. ``reassembled_in``: with ``-2``, the
    frame completing that message (None when not known or never completed).
    """

    __slots__ = ("messages", "started", "opens", "part", "reassembled_in", "cols", "entries",
                 "shown")

    def __init__(self) -> None:
        #: (Protocol, Info) when the segment is one whole message (views shared by such
        #: segments, never changed once made).
        self.cols: tuple[str, str] | None = None
        #: (method, uri, code, phrase) of each message, made once for a shared view
        self.entries: list[tuple] | None = None
        #: a shared view's (body length, body layers, (Protocol, Info), payload length,
        #: those columns as the packet list writes them) for a body whose layer does not
        #: depend on its bytes
        #: (:func:`tcplab.analyze.http.prefix_free`), kept by the record module for the
        #: next segment with a body of that length
        self.shown: tuple | None = None
        self.messages: list[Message] = []
        self.started: tuple | None = None
        self.opens = False
        self.part = False
        self.reassembled_in: int | None = None


class _Pdu:
    """A message in progress across segments."""

    __slots__ = ("frames", "count", "length", "head", "block", "entry", "framing", "left",
                 "chunk", "line", "slot", "reassembled_in", "blen", "bprefix", "to_end")

    def __init__(self, frame: int) -> None:
        self.frames = [frame]
        self.count = 1
        self.length = 0
        self.head: bytearray | None = bytearray()  # None once the header block is complete
        self.block = b""  # the complete header block, kept for the fields until completion
        self.entry: tuple | None = None
        self.framing = _NONE
        self.left = 0  # body bytes still to come (Content-Length)
        self.chunk = _SIZE
        self.line = bytearray()  # the chunk-size / trailer line being read
        self.slot = -1  # index of this message in its direction's completion record
        self.reassembled_in: int | None = None
        self.blen = 0  # body bytes so far (chunk data only, for a chunked body)
        self.bprefix = b""  # their first http.BODY_PREFIX bytes
        self.to_end = False  # a response without a length: its body runs to the end

    def took(self, data: bytes, pos: int, take: int) -> None:
        """Count ``take`` body bytes at ``data[pos:]`` (bounded: only a prefix is kept)."""
        self.blen += take
        have = len(self.bprefix)
        if have < _BODY_PREFIX:
            self.bprefix += data[pos : pos + min(take, _BODY_PREFIX - have)]

    def body(self) -> tuple[int, bytes]:
        return self.blen, self.bprefix


_UNSEEN = object()


class Direction:
    """One direction of one TCP conversation, as the HTTP reassembly sees it."""

    __slots__ = ("key", "next_seq", "pdu", "broken_end", "method", "peer", "completions",
                 "expected", "taken", "partial")

    def __init__(self, key: tuple[int, bool], partial: bool = False) -> None:
        self.key = key  # (stream index, is the conversation's first direction)
        #: A message may begin with a request line cut short (see HTTP_PORTS).
        self.partial = partial
        self.next_seq: int | None = None
        self.pdu: _Pdu | None = None
        #: After a hole: where the message that can no longer complete would have ended.
        self.broken_end: int | None = None
        #: The method of the latest request sent this way: a response to HEAD has no body.
        #: tshark 4.0 judges by the latest request, not by pairing pipelined ones.
        self.method: str | None = None
        self.peer: Direction | None = None
        self.completions: array | None = None  # first pass: completing frame per message
        self.expected: array | None = None  # second pass: the first pass's completions
        self.taken = 0


class Reassembler:
    """Every direction's reassembly state; ``index`` is a first pass's record (``-2``).

    ``carry=False`` (``--no-reassemble``) keeps nothing between segments: each segment's
    messages are dissected from its own bytes, a message cut at the segment's end is
    shown on that segment as far as it goes, as Wireshark does with reassembly off.
    """

    def __init__(self, *, carry: bool = True,
                 index: dict[tuple[int, bool], array] | None = None) -> None:
        self.carry = carry
        self.index = index
        self._recorded = 0
        self._directions: list[Direction] = []
        # Header block → (shared view, request method, body length) for segments that are
        # one whole message: most HTTP segments of a capture, and their header blocks
        # repeat. Bounded: cleared when full.
        self._whole: dict[bytes, tuple[SegmentView, str | None, int] | None] = {}

    def direction(self, key: tuple[int, bool], peer: Direction | None,
                  http_port: bool = False) -> Direction:
        """A new direction's state (the caller stores it on its TCP flow); ``http_port``:
        one of the conversation's ports is in :data:`HTTP_PORTS`."""
        d = Direction(key, http_port)
        d.peer = peer
        if peer is not None:
            peer.peer = d
        if self.index is not None:
            d.expected = self.index.get(key)
        else:
            d.completions = array("I")
            self._directions.append(d)
        return d

    def completions(self) -> dict[tuple[int, bool], array]:
        """A first pass's record: per direction, the completing frame of each message that
        spanned several segments (0: never completed), in the order they began."""
        return {d.key: d.completions for d in self._directions if d.completions}

    # -- one segment ------------------------------------------------------------------------
    def segment(self, st: Direction, frame: int, seq: int, data: bytes, start: int,
                end: int) -> SegmentView | None:
        """Place ``data[start:end]`` (the payload at raw sequence number ``seq``)."""
        if not self.carry:
            if data[start] not in _FIRST_BYTES:
                return None
            view = SegmentView()
            self._parse(st, view, frame, data, start, end, carry=False)
            return view if view.messages else None
        nxt = st.next_seq
        if (st.pdu is None and st.broken_end is None and (nxt is None or seq == nxt)
                and data[start] in _FIRST_BYTES):
            # The commonest HTTP segment: exactly one whole message, nothing pending.
            hend = data.find(b"\r\n\r\n", start, start + MAX_HEADER_BYTES) + 4
            if 4 <= hend <= end:  # (bare-LF header blocks take the general path)
                head = data[start:hend]
                whole = self._whole
                hit = whole.get(head, _UNSEEN)
                if hit is _UNSEEN:
                    hit = self._learn(head)
                if hit is not None:
                    st.partial = True
                    view, method, body = hit
                    if body == end - hend or (body < 0 and (hend == end
                                                             or data[hend] not in _FIRST_BYTES)):
                        if method is not None:
                            st.method = method
                            st.next_seq = (seq + end - start) & _M32
                            return view
                        peer = st.peer
                        if peer is None or peer.method != "HEAD" or body == -2:
                            st.next_seq = (seq + end - start) & _M32
                            return view
        if nxt is not None and seq != nxt:
            ahead = (seq - nxt) & _M32
            if ahead >= 0x80000000:  # bytes already placed: keep only the new ones
                skip = (nxt - seq) & _M32
                if skip >= end - start:
                    return None
                start += skip
                seq = nxt
            else:  # a hole: the message in progress cannot be completed any more
                self._break(st, nxt)
        st.next_seq = (seq + end - start) & _M32
        view = None
        broken = st.broken_end
        if broken is not None:
            view = SegmentView()
            view.part = True
            if ((broken - seq) & _M32) >= end - start:  # all of it is the lost message's
                if broken == st.next_seq:
                    st.broken_end = None
                return view
            start += (broken - seq) & _M32
            seq = broken
            st.broken_end = None
        pdu = st.pdu
        if pdu is None and data[start] not in _FIRST_BYTES:
            return view
        if view is None:
            view = SegmentView()
        if pdu is not None:
            start = self._continue(st, pdu, view, frame, data, start, end)
            if start >= end or st.pdu is not None:
                # (nothing to show when the message in progress was given up here)
                return view if view.messages or view.opens or view.part else None
        self._parse(st, view, frame, data, start, end, carry=True, first=pdu is None)
        if pdu is not None and view.opens and view.messages and st.pdu is not None:
            first = view.messages[0]
            nxt_pdu = st.pdu
            # Seen from tshark's second pass: a buffer that took the segment whole was cut
            # where the message begun after it (and continued later) starts.
            if first.segments is not None and first.whole and first.length >= nxt_pdu.length:
                first.final_length = first.length - nxt_pdu.length
        if not view.messages and not view.opens and not view.part:
            return None
        return view

    def _learn(self, head: bytes) -> tuple[SegmentView, str | None, int] | None:
        """How a header block frames its message, for :meth:`segment`'s shortcut.

        The body length the block announces; -1 for a response whose body runs to the
        connection's end; -2 for an interim (1xx) response, which answers no request.
        None when the block is not HTTP or its body is chunked (the general path).
        """
        whole = self._whole
        if len(whole) >= 256:
            whole.clear()
        entry = _http.message(head)
        hit: tuple[SegmentView, str | None, int] | None = None
        if entry is not None and not _CHUNKED.search(head):
            m = _LENGTH.search(head)
            length = int(m.group(1)) if m is not None else None
            method, code = entry[1], entry[3]
            if method is not None:
                body = length or 0
            elif code < 200 and code != 101:
                body = -2
            elif code in (204, 304) or code == 101:
                body = 0
            else:
                body = -1 if length is None else length
            view = SegmentView()
            view.messages.append(Message(entry, head))
            view.cols = entry[0]
            view.entries = [entry[1:]]
            hit = (view, method, body)
        whole[head] = hit
        return hit

    def _break(self, st: Direction, nxt: int) -> None:
        pdu = st.pdu
        if pdu is None:
            return
        st.pdu = None
        if pdu.head is None and pdu.framing == _LENGTH_BODY:
            st.broken_end = (nxt + pdu.left) & _M32

    def _continue(self, st: Direction, pdu: _Pdu, view: SegmentView, frame: int, data: bytes,
                  start: int, end: int) -> int:
        """Feed a message in progress; return where its bytes end in ``data``."""
        if pdu.count < MAX_LISTED_SEGMENTS:
            pdu.frames.append(frame)
        pdu.count += 1
        pos = start
        before = pdu.length
        headed = False  # the header block ends in this segment
        # tshark's reassembly takes a segment whole while HTTP asks for "one more segment"
        # (headers, chunks), and only the bytes it asked for once a length is known.
        whole = pdu.head is not None or pdu.framing == _CHUNKS
        if pdu.head is not None:
            head = pdu.head
            old = len(head)
            head += data[start:end]
            if pdu.entry is None:
                # The first line counts once its line end is here (tshark waits for it).
                if b"\n" in head:
                    pdu.entry = _http.message(bytes(head))
                if pdu.entry is None and (b"\n" in head or not _could_start(bytes(head[:16]))):
                    st.pdu = None  # its first line is not HTTP after all
                    self._record(st, pdu, 0)
                    return end
            m = _HEAD_END.search(head, max(0, old - 3))
            if m is None:
                if len(head) > MAX_HEADER_BYTES:
                    st.pdu = None  # not a header block we will ever see end
                    self._record(st, pdu, 0)
                    return end
                pdu.length += end - start
                view.part = True
                # tshark's one pass runs HTTP again on the headers so far: its first line
                # shows before the note once it is whole.
                view.started = pdu.entry
                view.reassembled_in = pdu.reassembled_in
                return end
            pos = start + m.end() - old
            pdu.head = None
            pdu.block = bytes(head[: m.end()])
            self._frame_body(st, pdu, pdu.block)
            headed = True
        pos = self._body(pdu, data, pos, end)
        if pdu.to_end and whole:  # the rest of this segment is the body it shows
            pdu.took(data, pos, end - pos)
        pdu.length += pos - start
        if pdu.framing == _NONE:
            st.pdu = None
            msg = Message(pdu.entry, pdu.block, pdu.frames, pdu.count,
                          before + (end if whole else pos) - start, pdu.body())
            msg.whole = whole
            view.messages.append(msg)
            self._record(st, pdu, frame)
            return pos
        view.part = True
        if headed or pdu.framing == _CHUNKS:  # HTTP ran on it: its first line shows
            view.started = pdu.entry
        view.reassembled_in = pdu.reassembled_in
        return end

    def _parse(self, st: Direction, view: SegmentView, frame: int, data: bytes, pos: int,
               end: int, *, carry: bool, first: bool = True) -> None:
        """Messages that begin in this segment, one after the other (``first``: the first
        of them starts the segment)."""
        while pos < end and data[pos] in _FIRST_BYTES:
            entry = _http.message(data, pos, end)
            if entry is None and (data.find(b"\n", pos, end) >= 0 or not st.partial
                                  or not _could_start(data[pos : pos + 16])):
                return  # not (the start of) an HTTP message: the rest is not ours
            m = _HEAD_END.search(data, pos, min(end, pos + MAX_HEADER_BYTES))
            if m is None:  # the header block goes on in later segments
                if first and entry is not None and data.find(b"\n", pos, end) < 0:
                    # A bare request or status line filling the segment, no line end: the
                    # encapsulator's seed messages. Shown as a message on its own (real
                    # clients end the line; a split inside it is not reassembled).
                    view.messages.append(Message(entry, data[pos:end], body=(0, b"")))
                    return
                if not carry:
                    if entry is not None:
                        view.messages.append(Message(entry, data[pos:end], body=(0, b"")))
                    return
                pdu = _Pdu(frame)
                pdu.entry = entry
                pdu.head = bytearray(data[pos:end])
                pdu.length = end - pos
                self._open(st, view, pdu)
                return
            head = data[pos : m.end()]
            pdu = _Pdu(frame)
            pdu.entry = entry
            pdu.head = None
            self._frame_body(st, pdu, head)
            after = self._body(pdu, data, m.end(), end)
            st.partial = True  # this direction carries HTTP
            if pdu.to_end:  # the rest of the segment is its body (as in the shortcut)
                pdu.took(data, after, end - after)
            if pdu.framing == _NONE or not carry:
                view.messages.append(Message(entry, head, body=pdu.body()))
            if pdu.to_end:
                return
            if pdu.framing == _NONE:
                pos = after
                first = False
                continue
            if not carry:
                return  # shown as far as this segment goes
            pdu.length = end - pos
            pdu.block = head
            self._open(st, view, pdu)
            return

    def _open(self, st: Direction, view: SegmentView, pdu: _Pdu) -> None:
        st.pdu = pdu
        view.started = pdu.entry
        view.opens = True
        if st.expected is not None:
            if st.taken < len(st.expected):
                done = st.expected[st.taken]
                view.reassembled_in = pdu.reassembled_in = done or None
            st.taken += 1
        elif st.completions is not None and self._recorded < MAX_INDEX_ENTRIES:
            pdu.slot = len(st.completions)
            st.completions.append(0)
            self._recorded += 1

    def _record(self, st: Direction, pdu: _Pdu, frame: int) -> None:
        if pdu.slot >= 0 and st.completions is not None:
            st.completions[pdu.slot] = frame

    def _frame_body(self, st: Direction, pdu: _Pdu, head: bytes) -> None:
        """How the body of a message with this header block ends (RFC 9112 §6.3)."""
        entry = pdu.entry
        method = entry[1] if entry else None
        if method is not None:
            st.method = method
        else:
            code = entry[3] if entry else None
            peer = st.peer
            asked = peer.method if peer is not None else None
            if code is None or code < 200 or code in (204, 304) or asked == "HEAD":
                pdu.framing = _NONE
                return
        if _CHUNKED.search(head):
            pdu.framing = _CHUNKS
            pdu.chunk = _SIZE
            pdu.line = bytearray()
            return
        m = _LENGTH.search(head)
        if m is not None and int(m.group(1)):
            pdu.framing = _LENGTH_BODY
            pdu.left = int(m.group(1))
            return
        # A response without a length runs to the connection's end: tshark shows its
        # first segment and calls the rest continuation; so does tcplab (as plain TCP).
        pdu.framing = _NONE
        pdu.to_end = method is None and m is None

    def _body(self, pdu: _Pdu, data: bytes, pos: int, end: int) -> int:
        """Consume body bytes; ``pdu.framing`` becomes _NONE when the body is complete."""
        if pdu.framing == _LENGTH_BODY:
            take = min(pdu.left, end - pos)
            pdu.left -= take
            pdu.took(data, pos, take)
            if not pdu.left:
                pdu.framing = _NONE
            return pos + take
        if pdu.framing == _CHUNKS:
            return self._chunks(pdu, data, pos, end)
        return pos

    def _chunks(self, pdu: _Pdu, data: bytes, pos: int, end: int) -> int:
        """The chunked transfer coding (RFC 9112 §7.1), streamed: sizes, data, trailers."""
        while pos < end:
            state = pdu.chunk
            if state == _DATA:
                take = min(pdu.left, end - pos)
                pdu.left -= take
                pdu.took(data, pos, take)
                pos += take
                if not pdu.left:
                    pdu.chunk = _DATA_END
                continue
            nl = data.find(b"\n", pos, end)
            if nl < 0:
                pdu.line += data[pos:end]
                if len(pdu.line) > MAX_CHUNK_LINE:
                    pdu.framing = _NONE  # not chunked after all: stop here
                return end
            line = bytes(pdu.line) + data[pos:nl]
            pdu.line = bytearray()
            pos = nl + 1
            text = line.strip()
            if state == _DATA_END:
                pdu.chunk = _SIZE
                if text:  # data longer than its size said: give the rest up
                    pdu.framing = _NONE
                    return pos
            elif state == _SIZE:
                size_text = text.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    pdu.framing = _NONE
                    return pos
                if size:
                    pdu.left = size
                    pdu.chunk = _DATA
                else:
                    pdu.chunk = _TRAILER
            elif not text:  # the empty line after the last chunk's trailers
                pdu.framing = _NONE
                return pos
        return pos
