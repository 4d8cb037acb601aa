"""IPv4 and IPv6 fragment reassembly as a sans-IO state machine with hard memory bounds. No I/O here.

Feed it every fragment with the capture time; it answers what became of the fragment
and, on the fragment that completes a datagram, hands back the whole payload and the
fragments (caller tags, e.g. frame numbers) it was built from — what Wireshark shows as
"[2 IPv4 Fragments (3008 bytes): #1(1480), #2(1528)]" on the last frame.

Datagrams are told apart as the RFCs say: IPv4 by (source, destination, protocol,
identification) (RFC 791), IPv6 by (source, destination, identification) (RFC 8200
§4.5). Overlaps:

* IPv6: RFC 5722 — a fragment overlapping another abandons the whole datagram, and its
  later fragments are dropped until the timeout (so an attacker cannot restart it with
  a chosen piece). An exact duplicate (same offset, same bytes) is ignored, as Linux does.
* IPv4: RFC 791 allows overlaps; the bytes that arrived first are kept (a later copy
  never rewrites data already seen, which defeats overlap tricks against IDSes that
  favour the other policy) and the fragment is reported as an overlap, with
  ``conflict`` when its bytes differ, like Wireshark's ``ip.fragment.overlap.conflict``.

Bounds (all in :class:`Limits`, each with its reason): partial datagrams held at once,
fragments per datagram, bytes buffered in total, the reassembled size (65,535 bytes of
payload for IPv4, the IPv6 payload length field's limit), and a timeout after the
first fragment (Linux's 30 s for IPv4, RFC 8200's 60 s for IPv6). When a bound is hit the
oldest partial datagram is dropped first; nothing grows without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from tcplab.packet import ipv4, ipv6

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    #: Partial datagrams held at once. A busy link has a handful; 1024 covers a capture
    #: of many interleaved fragmented flows while capping a flood of first fragments.
    max_datagrams: int = 1024
    #: Fragments per datagram. A 64 KiB datagram over a 1280-byte IPv6 MTU needs 52;
    #: 8-byte slivers (an attack) would need 8192.
    max_fragments: int = 128
    #: Bytes of fragment data held across all partial datagrams (64 full-size datagrams).
    max_buffered_bytes: int = 4 * 1024 * 1024
    #: Largest reassembled payload: the 16-bit length fields cannot describe more.
    max_datagram_bytes: int = 65535
    timeout_ipv4_ns: int = 30 * _NS_PER_S  # Linux net.ipv4.ipfrag_time
    timeout_ipv6_ns: int = 60 * _NS_PER_S  # RFC 8200 §4.5


class Datagram(NamedTuple):
    """A reassembled datagram: its upper protocol, the whole payload, and what it was made of."""

    version: int  #: 4 or 6
    protocol: int  #: IPv4 protocol / IPv6 next header of the first fragment
    payload: bytes
    #: (tag, offset, length) of each fragment as it was sent (overlaps included, exact
    #: duplicates not), in offset order — Wireshark's "[Frame: 4, payload: 0-1031]" list.
    fragments: tuple[tuple[Hashable, int, int], ...]
    #: Tags of the fragments whose overlapping bytes differ from their neighbour's (of the
    #: two, the one later in offset order: Wireshark's ``ip.fragment.error``).
    conflicts: frozenset = frozenset()


class Outcome(NamedTuple):
    """What happened to one fragment.

    ``status``: "held" (waiting for more), "complete" (``datagram`` is set), "duplicate"
    (exact copy, ignored), "overlap" (IPv4: kept, first bytes win; ``conflict`` says the
    bytes differed), "abandoned" (IPv6 overlap: the datagram is dropped), "dropped"
    (a bound, a malformed fragment, or a datagram already abandoned; ``reason`` says which).
    """

    status: str
    datagram: Datagram | None = None
    reason: str = ""
    conflict: bool = False


@dataclass(slots=True)
class _Partial:
    version: int
    started_ns: int
    protocol: int | None = None  # known once the first fragment (offset 0) arrives
    total: int | None = None  # known once the last fragment (no MF) arrives
    #: offset → (data, tag), never overlapping one another.
    pieces: dict[int, tuple[bytes, Hashable]] = field(default_factory=dict)
    #: (tag, offset, length) of every fragment taken, as sent.
    sent: list[tuple[Hashable, int, int]] = field(default_factory=list)
    size: int = 0
    #: Whether any overlap so far brought different bytes, and which fragments did.
    conflict: bool = False
    conflict_tags: set = field(default_factory=set)

    def covered(self) -> bool:
        if self.total is None or self.protocol is None:
            return False
        expect = 0
        for off in sorted(self.pieces):
            if off != expect:
                return False
            expect += len(self.pieces[off][0])
        return expect == self.total


class Defragmenter:
    """Reassembles fragments fed in capture order; see the module docstring for the rules.

    ``rfc5722=False`` treats overlapping IPv6 fragments as IPv4's are treated (kept, the
    first bytes winning) instead of abandoning the datagram: what Wireshark does, so an
    analyzer showing a capture as Wireshark does passes it.
    """

    def __init__(self, limits: Limits | None = None, *, rfc5722: bool = True) -> None:
        self.limits = limits or Limits()
        self.rfc5722 = rfc5722
        self._partials: OrderedDict[tuple, _Partial] = OrderedDict()
        #: Abandoned IPv6 datagrams → when they may be started again.
        self._abandoned: OrderedDict[tuple, int] = OrderedDict()
        self.buffered_bytes = 0
        #: Counters for a closing summary; nothing is dropped without being counted.
        self.stats = {"complete": 0, "timed_out": 0, "evicted": 0, "overlaps": 0, "abandoned": 0,
                      "dropped": 0}

    @property
    def pending(self) -> int:
        """Partial datagrams held now."""
        return len(self._partials)

    # ---- the two front doors ------------------------------------------------------------

    def feed_ipv4(self, header: ipv4.IPv4Header, payload: bytes, now_ns: int,
                  tag: Hashable = None) -> Outcome:
        """Feed an IPv4 fragment (``header.is_fragment``); ``payload`` is the bytes after its header."""
        key = (4, header.src, header.dst, header.protocol, header.identification)
        return self._feed(key, 4, header.protocol, header.fragment_offset * 8, header.mf, payload,
                          now_ns, tag, self.limits.timeout_ipv4_ns)

    def feed_ipv6(self, src: bytes, dst: bytes, fragment: ipv6.FragmentHeader, payload: bytes,
                  now_ns: int, tag: Hashable = None) -> Outcome:
        """Feed an IPv6 fragment; ``payload`` is the fragmentable part after the Fragment header."""
        key = (6, src, dst, fragment.identification)
        return self._feed(key, 6, fragment.next_header, fragment.offset, fragment.more, payload,
                          now_ns, tag, self.limits.timeout_ipv6_ns)

    # ---- the state machine --------------------------------------------------------------

    def _drop(self, reason: str) -> Outcome:
        self.stats["dropped"] += 1
        return Outcome("dropped", reason=reason)

    def _forget(self, key: tuple) -> None:
        partial = self._partials.pop(key)
        self.buffered_bytes -= partial.size

    def expire(self, now_ns: int) -> None:
        """Drop partial datagrams whose first fragment is older than their timeout."""
        limits = self.limits
        while self._partials:
            key, partial = next(iter(self._partials.items()))
            timeout = limits.timeout_ipv4_ns if partial.version == 4 else limits.timeout_ipv6_ns
            if now_ns - partial.started_ns <= timeout:
                break
            self._forget(key)
            self.stats["timed_out"] += 1
        while self._abandoned:
            key, until = next(iter(self._abandoned.items()))
            if now_ns <= until:
                break
            del self._abandoned[key]

    def _feed(self, key: tuple, version: int, protocol: int, offset: int, more: bool, data: bytes,
              now_ns: int, tag: Hashable, timeout: int) -> Outcome:
        limits = self.limits
        self.expire(now_ns)
        if key in self._abandoned:
            return self._drop("part of a datagram abandoned for overlapping fragments (RFC 5722)")
        end = offset + len(data)
        if end > limits.max_datagram_bytes:
            return self._drop(f"fragment ends at byte {end}, beyond the {limits.max_datagram_bytes}-byte "
                              "datagram limit")
        if more and len(data) % 8:
            # RFC 791 and RFC 8200 §4.5: every fragment but the last carries a multiple of 8.
            return self._drop(f"a fragment with more to follow carries {len(data)} bytes, not a "
                              "multiple of 8")
        partial = self._partials.get(key)
        if partial is None:
            while len(self._partials) >= limits.max_datagrams:
                self._evict_oldest()
            partial = self._partials[key] = _Partial(version, now_ns)
        # Does this fragment fit what is known?
        if partial.total is not None and (end > partial.total or (not more and end != partial.total)):
            return self._conflict(key, partial, version, "its end disagrees with the last fragment's")
        if not more and partial.total is None:
            beyond = max((o + len(d) for o, (d, _t) in partial.pieces.items()), default=0)
            if beyond > end:
                return self._conflict(key, partial, version, "data was seen beyond this last fragment")
        overlap_conflict = False
        overlapped = False
        pieces = partial.pieces
        new_pieces: list[tuple[int, bytes]] = [(offset, data)]
        for o, (d, held_tag) in sorted(pieces.items()):
            e = o + len(d)
            if e <= offset or o >= end:
                continue
            if o == offset and d == data:
                return Outcome("duplicate")
            if version == 6 and self.rfc5722:
                return self._conflict(key, partial, version, "it overlaps an earlier fragment")
            overlapped = True
            lo, hi = max(o, offset), min(e, end)
            if d[lo - o : hi - o] != data[lo - offset : hi - offset]:
                overlap_conflict = True
                partial.conflict_tags.add(tag if offset >= o else held_tag)
            # First bytes win: keep only the parts of the new data no earlier piece covers.
            remaining: list[tuple[int, bytes]] = []
            for no, nd in new_pieces:
                ne = no + len(nd)
                if ne <= o or no >= e:
                    remaining.append((no, nd))
                    continue
                if no < o:
                    remaining.append((no, nd[: o - no]))
                if ne > e:
                    remaining.append((e, nd[e - no :]))
            new_pieces = remaining
        added = sum(len(d) for _o, d in new_pieces)
        if len(partial.sent) + 1 > limits.max_fragments:
            self._forget(key)
            return self._drop(f"more than {limits.max_fragments} fragments in one datagram")
        while self.buffered_bytes + added > limits.max_buffered_bytes and len(self._partials) > 1:
            self._evict_oldest(keep=key)
        if self.buffered_bytes + added > limits.max_buffered_bytes:
            self._forget(key)
            return self._drop(f"more than {limits.max_buffered_bytes} bytes of fragments buffered")
        for o, d in new_pieces:
            if d:
                pieces[o] = (d, tag)
        partial.sent.append((tag, offset, len(data)))
        partial.size += added
        partial.conflict = partial.conflict or overlap_conflict
        self.buffered_bytes += added
        if offset == 0:
            partial.protocol = protocol
        if not more:
            partial.total = end
        if partial.covered():
            self._forget(key)
            self.stats["complete"] += 1
            ordered = sorted(pieces.items())
            payload = b"".join(d for _o, (d, _t) in ordered)
            datagram = Datagram(version, partial.protocol or 0, payload,
                                tuple(sorted(partial.sent, key=lambda f: (f[1], f[2]))),
                                frozenset(partial.conflict_tags))
            return Outcome("complete", datagram, conflict=partial.conflict)
        if overlapped:
            self.stats["overlaps"] += 1
            return Outcome("overlap", conflict=overlap_conflict)
        return Outcome("held")

    def _conflict(self, key: tuple, partial: _Partial, version: int, why: str) -> Outcome:
        self._forget(key)
        if version == 6:
            self._abandoned[key] = partial.started_ns + self.limits.timeout_ipv6_ns
            while len(self._abandoned) > self.limits.max_datagrams:
                self._abandoned.popitem(last=False)
            self.stats["abandoned"] += 1
            return Outcome("abandoned", reason=f"datagram abandoned: {why} (RFC 5722)")
        return self._drop(f"datagram dropped: {why}")

    def _evict_oldest(self, keep: tuple | None = None) -> None:
        for key in self._partials:
            if key != keep:
                self._forget(key)
                self.stats["evicted"] += 1
                return
