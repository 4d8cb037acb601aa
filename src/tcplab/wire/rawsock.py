"""Send hand-built IP packets as they are, through raw sockets with ``IP_HDRINCL``.

An ``AF_INET``/``SOCK_RAW``/``IPPROTO_RAW`` socket implies ``IP_HDRINCL``: the kernel takes
our IPv4 header instead of writing its own, so the bytes a capture sees are the bytes
:mod:`tcplab.encap` built. Linux still touches three fields (raw(7)): it rewrites the total
length and header checksum (to the values we already computed) and, only when the
identification is 0 *and* DF is clear, picks an ID of its own. :func:`kernel_rewrites`
says in advance when that will happen. IPv6 uses ``AF_INET6``/``IPPROTO_RAW``, which
implies ``IPV6_HDRINCL`` on Linux ≥ 4.5.

The :class:`Pacer` spaces packets by ``--rate``/``--interval`` without busy-waiting: it
sleeps only when ahead of schedule by more than the sleep granularity. Nothing here
builds or parses protocols beyond reading the destination address out of a header.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tcplab.errors import EnvironmentProblem, InputError
from tcplab.packet import ipv4, link

ARPHRD_LOOPBACK = 772  # sll_hatype of a loopback device (linux/if_arp.h)

#: Sleeping is pointless for gaps shorter than this: the scheduler wakes us later anyway.
SLEEP_GRANULARITY = 0.001

#: When the device queue is full (ENOBUFS), wait this long before trying again, at most
#: MAX_RETRIES times for one packet; a persistent failure is reported, never spun on.
ENOBUFS_BACKOFF = 0.0005
MAX_RETRIES = 2000

RAW_PERMISSION_HINT = (
    "needs the CAP_NET_RAW capability to open a raw IP socket. Run it as root "
    "(sudo tcplab ...), or grant the capability once to the Python interpreter: "
    "sudo setcap cap_net_raw+ep \"$(readlink -f \"$(command -v python3)\")\""
)


def kernel_rewrites(packet: bytes) -> bool:
    """True when Linux will replace this IPv4 packet's identification (ID 0, DF clear)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return False
    ident = int.from_bytes(packet[4:6], "big")
    df = bool(packet[6] & 0x40)
    return ident == 0 and not df


def destination(packet: bytes) -> tuple[int, str]:
    """(IP version, destination address text) read from an IP packet's header."""
    if not packet:
        raise InputError("cannot send an empty packet")
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        return 4, ipv4.ntoa(packet[16:20])
    if version == 6 and len(packet) >= 40:
        return 6, socket.inet_ntop(socket.AF_INET6, packet[24:40])
    raise InputError(f"not an IPv4/IPv6 packet (version {version}, {len(packet)} bytes)")


class RawSender:
    """One raw socket per IP version, opened on first use; ``send`` writes one packet."""

    def __init__(self) -> None:
        self._sockets: dict[int, socket.socket] = {}
        self._last_key: bytes | None = None
        self._last_address: tuple = ()
        self._last_socket: socket.socket | None = None
        self.retries = 0

    def _socket(self, version: int) -> socket.socket:
        sock = self._sockets.get(version)
        if sock is None:
            family = socket.AF_INET if version == 4 else socket.AF_INET6
            try:
                sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
            except PermissionError as exc:
                raise EnvironmentProblem(
                    f"sending hand-built packets {RAW_PERMISSION_HINT} ({exc.strerror})"
                ) from None
            except OSError as exc:
                raise EnvironmentProblem(
                    f"cannot open a raw IPv{version} socket: {exc.strerror or exc}"
                ) from None
            self._sockets[version] = sock
        return sock

    def open(self, version: int = 4) -> None:
        """Open the socket now, so permission problems surface before any work is done."""
        self._socket(version)

    def send(self, packet: bytes) -> None:
        """Send one complete IP packet to the destination in its own header."""
        # Hot path: a run of packets to the same destination reuses the last lookup.
        if packet[16:20] == self._last_key and packet[:1] and packet[0] >> 4 == 4:
            try:
                self._last_socket.sendto(packet, self._last_address)  # type: ignore[union-attr]
                return
            except OSError:
                pass  # the general path below retries or explains
        version, text = destination(packet)
        address: tuple = (text, 0) if version == 4 else (text, 0, 0, 0)
        sock = self._sockets.get(version) or self._socket(version)
        if version == 4:
            self._last_key, self._last_address, self._last_socket = packet[16:20], address, sock
        for _attempt in range(MAX_RETRIES):
            try:
                sock.sendto(packet, address)
                return
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    self.retries += 1
                    time.sleep(ENOBUFS_BACKOFF)
                    continue
                raise _send_problem(exc, address[0], len(packet)) from None
        raise EnvironmentProblem(f"the kernel kept refusing packets to {address[0]} "
                                 f"(no buffer space) after {MAX_RETRIES} retries")

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._last_key = self._last_socket = None

    def __enter__(self) -> RawSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _send_problem(exc: OSError, address: str, size: int) -> Exception:
    if exc.errno == errno.EMSGSIZE:
        return InputError(f"a {size}-byte packet to {address} is larger than the route's MTU")
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        return EnvironmentProblem(f"no route to {address}: {exc.strerror}")
    if exc.errno in (errno.EPERM, errno.EACCES):
        return EnvironmentProblem(f"the kernel refused a packet to {address} ({exc.strerror}); "
                                  "a firewall rule may drop it")
    return EnvironmentProblem(f"sending to {address} failed: {exc.strerror or exc}")


class DeviceSender:
    """Write IP packets straight onto a loopback device with ``AF_PACKET`` (as tcpreplay does).

    The kernel then touches nothing at all — no route lookup, no length/checksum/ID
    rewrite — and skips the IP output path, which makes it the faster way onto ``lo``
    and the same path ``tcpreplay -i lo`` takes. The price: a frame that arrives on a
    device carries no route, and Linux drops 127.0.0.0/8 packets arriving that way as
    martians (``route_localnet`` is off by default), so the stack never answers them —
    captures see the segments, but no RST comes back. Only loopback devices are accepted:
    a real NIC would need the next hop's MAC address, which is ARP's business, not ours.
    """

    def __init__(self, device: str = "lo") -> None:
        self.device = device
        self.retries = 0
        self._sock: socket.socket | None = None
        self._headers = {4: link.header_for(link.LINKTYPE_ETHERNET, 4),
                         6: link.header_for(link.LINKTYPE_ETHERNET, 6)}

    def open(self, version: int = 4) -> None:
        if self._sock is not None:
            return
        if getattr(socket, "AF_PACKET", None) is None:
            raise EnvironmentProblem("--device needs Linux AF_PACKET sockets; leave it out to "
                                     "send through a raw IP socket instead")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise EnvironmentProblem(
                f"sending on {self.device} {RAW_PERMISSION_HINT} ({exc.strerror})") from None
        try:
            sock.bind((self.device, 0))
            hatype = sock.getsockname()[3]
        except OSError as exc:
            sock.close()
            raise InputError(f"no network interface named {self.device!r} "
                             f"({exc.strerror or exc})") from None
        if hatype != ARPHRD_LOOPBACK:
            sock.close()
            raise InputError(f"--device {self.device}: only loopback devices can take frames "
                             "without a next-hop MAC address; use lo, or leave --device out")
        self._sock = sock

    def send(self, packet: bytes) -> None:
        if self._sock is None:
            self.open()
        version = packet[0] >> 4 if packet else 0
        header = self._headers.get(version)
        if header is None:
            raise InputError(f"not an IPv4/IPv6 packet (version {version}, {len(packet)} bytes)")
        frame = header + packet
        for _attempt in range(MAX_RETRIES):
            try:
                self._sock.send(frame)  # type: ignore[union-attr]
                return
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    self.retries += 1
                    time.sleep(ENOBUFS_BACKOFF)
                    continue
                raise _send_problem(exc, self.device, len(packet)) from None
        raise EnvironmentProblem(f"{self.device} kept refusing frames (no buffer space) after "
                                 f"{MAX_RETRIES} retries")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> DeviceSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pacer:
    """Hold each packet until its slot: ``rate`` packets/s or one per ``interval`` seconds.

    Slots are measured from the start, not from the previous packet, so a slow send is
    caught up rather than accumulated as drift.
    """

    def __init__(self, rate: float | None = None, interval: float | None = None) -> None:
        if rate:
            self.gap = 1.0 / rate
        elif interval:
            self.gap = interval
        else:
            self.gap = 0.0
        self.start: float | None = None

    def wait(self, index: int) -> None:
        if not self.gap:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = now
            return
        ahead = self.start + index * self.gap - now
        if ahead > SLEEP_GRANULARITY:
            time.sleep(ahead)


@dataclass(slots=True)
class SendSummary:
    packets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    retries: int = 0
    kernel_rewrote_id: int = 0

    @property
    def rate(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0


def send_all(
    packets: Iterable[bytes],
    sender: RawSender | DeviceSender,
    *,
    rate: float | None = None,
    interval: float | None = None,
    count: int | None = None,
    on_sent: Callable[[int, bytes], None] | None = None,
    before_send: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SendSummary:
    """Send ``packets`` in order with pacing; stop after ``count`` or when ``should_stop()``."""
    pacer = Pacer(rate, interval)
    summary = SendSummary()
    send = sender.send
    limit = count if count is not None else -1
    check_mask = 0 if pacer.gap else 0xFF
    sent = nbytes = rewritten = 0
    start = time.perf_counter()
    try:
        for packet in packets:
            if sent == limit:
                break
            # At full speed checked every 256 packets (a stop is still honoured within
            # microseconds, without a call per packet); when paced, before every packet.
            if should_stop is not None and not sent & check_mask and should_stop():
                break
            if pacer.gap:
                pacer.wait(sent)
            if before_send is not None:
                before_send(packet)
            send(packet)
            sent += 1
            nbytes += len(packet)
            if not packet[4] and not packet[5] and not packet[6] & 0x40 and packet[0] >> 4 == 4:
                rewritten += 1
            if on_sent is not None:
                on_sent(sent, packet)
    finally:
        summary.seconds = time.perf_counter() - start
        summary.packets, summary.bytes, summary.kernel_rewrote_id = sent, nbytes, rewritten
        summary.retries = sender.retries
    return summary
