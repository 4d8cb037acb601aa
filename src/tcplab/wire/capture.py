"""Live capture from a Linux ``AF_PACKET`` socket into a pcap/pcapng file.

This is a thin I/O shell: the filter program comes from :mod:`tcplab.wire.bpf`, the file
format from :mod:`tcplab.pcap`, and the packet-list line from the analyzer. What lives
here is only what the kernel interface demands:

* the filter is attached *before* the socket is bound to ``ETH_P_ALL``, so not a single
  unfiltered frame is queued (libpcap does the same);
* on a loopback device the kernel hands a packet socket each frame twice (as sent, with
  ``PACKET_OUTGOING``, and as received); the filter drops the outgoing copy in the kernel,
  leaving the copy tcpdump/dumpcap keep, so our file and theirs hold the same frames;
* a large receive buffer (``SO_RCVBUFFORCE``) absorbs bursts, and ``PACKET_STATISTICS``
  reports honestly how many frames the kernel still had to drop;
* timestamps are the kernel's (``SO_TIMESTAMPNS``), not the time Python got around to it.

Stopping (count, duration, an event set by a signal handler) always ends with the
writer closed, so the file is valid whatever stopped it. Never parse protocols here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tcplab.errors import EnvironmentProblem, InputError
from tcplab.packet import link
from tcplab.wire import bpf

# linux/if_ether.h, linux/if_packet.h, asm-generic/socket.h
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS carries a struct timespec
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772

#: Receive buffer asked for. The kernel charges each queued frame its full skb size
#: (~2 KiB for a small loopback frame), so 64 MiB holds roughly 30,000 frames: a third of
#: a second at 100,000 frames/s, enough to ride out a pause in the writer.
DEFAULT_RCVBUF = 64 * 1024 * 1024

#: The receive ring (PACKET_RX_RING, TPACKET_V3), as tcpdump and dumpcap use: frames are
#: copied back to back into blocks shared with the kernel, so a queued 60-byte frame costs
#: ~160 bytes of ring (header and frame) instead of a ~2 KiB socket buffer, and reading them
#: costs no system call. 64 blocks of 1 MiB hold ~420,000 small frames: four seconds at
#: 100,000 frames/s.
RING_BLOCK_SIZE = 1 << 20
RING_BLOCKS = 64
RING_FRAME_SIZE = 2048  # nominal; TPACKET_V3 packs frames by their real size
#: A block is handed to us when full or after this many milliseconds, whichever is first:
#: the latency of the live packet lines at low rates.
RING_RETIRE_MS = 20

#: Largest frame read in one call: tcpdump's default snapshot length, above lo's
#: 65,536-byte MTU, so nothing on lo is ever truncated.
SNAPLEN = bpf.DEFAULT_SNAPLEN

#: How long a blocking wait lasts before the stop conditions are checked again.
POLL_INTERVAL = 0.1

#: Longest time spent writing out queued frames after a stop request.
DRAIN_LIMIT = 1.0

_TIMESPEC = struct.Struct("@ll")
_U32 = struct.Struct("=I")
# struct tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac (linux/if_packet.h)
_TPACKET3_HDR = struct.Struct("=IIIIIIH")
_BLOCK_STATUS = 8  # offsetof(struct tpacket_block_desc, hdr.bh1.block_status)
_BLOCK_NUM_PKTS = 12
_BLOCK_FIRST_PKT = 16
_STATS = struct.Struct("@II")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 64

PERMISSION_HINT = (
    "needs the CAP_NET_RAW capability to open a raw (AF_PACKET) socket. Run it as root "
    "(sudo tcplab ...), or grant the capability once to the Python interpreter: "
    "sudo setcap cap_net_raw+ep \"$(readlink -f \"$(command -v python3)\")\""
)


@dataclass(slots=True)
class CaptureSummary:
    """What a capture run did, for the closing line and for callers that check it."""

    interface: str
    linktype: int
    filter_expression: str | None
    packets: int = 0  #: frames written (and shown)
    bytes: int = 0
    kernel_received: int = 0  #: frames that passed the filter, as the kernel counts them
    kernel_dropped: int = 0  #: frames the kernel discarded because our buffer was full
    started: float = 0.0
    stopped: float = 0.0
    stop_reason: str = ""
    output: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.stopped - self.started)

    def text(self) -> str:
        rate = self.packets / self.duration if self.duration > 0 else 0.0
        lines = [
            f"{self.packets:,} packets captured on {self.interface} in {self.duration:.2f} s "
            f"({rate:,.0f} packets/s), stopped by {self.stop_reason}",
            f"{self.kernel_received:,} packets received by filter, "
            f"{self.kernel_dropped:,} packets dropped by kernel",
        ]
        if self.output:
            lines.append(f"written to {self.output}")
        lines.extend(self.notes)
        return "\n".join(lines)


def require_packet_sockets() -> None:
    """Fail early, with advice, on a platform that has no ``AF_PACKET`` (macOS, Windows)."""
    if getattr(socket, "AF_PACKET", None) is None:
        raise EnvironmentProblem(
            "live capture needs Linux AF_PACKET sockets, which this system does not have. "
            "Capture with Wireshark or tcpdump instead (e.g. tcpdump -i lo0 -w out.pcap "
            "'tcp port 5074'), then read the file with: tcplab analyze out.pcap --explain"
        )


def permission_problem(what: str, exc: OSError) -> EnvironmentProblem:
    """The message for EPERM/EACCES on a raw socket: which capability, and how to grant it."""
    return EnvironmentProblem(f"{what} {PERMISSION_HINT} ({exc.strerror or exc})")


def _interface_names() -> list[str]:
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return []


def attach_filter(sock: socket.socket, program: list[bpf.Instruction]) -> None:
    """``SO_ATTACH_FILTER``: hand the kernel a ``struct sock_fprog`` pointing at the program."""
    code = bpf.pack_program(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketSocket:
    """An ``AF_PACKET`` socket on one interface with a kernel filter attached.

    ``read()`` drains what is queued without blocking; ``wait()`` blocks until more
    arrives or the timeout passes. Both leave stop decisions to the caller.
    """

    def __init__(
        self,
        interface: str = "lo",
        expression: str | None = None,
        *,
        rcvbuf: int = DEFAULT_RCVBUF,
        keep_outgoing: bool = False,
        ring: bool = True,
    ) -> None:
        require_packet_sockets()
        self.interface = interface
        self.expression = expression
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise permission_problem(f"capturing on {interface}", exc) from None
        self.sock = sock
        self._buffer = bytearray(SNAPLEN)
        self._view = memoryview(self._buffer)
        self._received = 0
        self._dropped = 0
        self._ring: mmap.mmap | None = None
        self._block = 0  # ring block we read next
        self._left = 0  # frames of that block still unread (0: block not opened yet)
        self._offset = 0  # offset of the next frame header in the ring
        #: How frames are read: "ring" (PACKET_RX_RING) or "recvmsg" (the fallback).
        self.mode = "recvmsg"
        try:
            self._setup(interface, expression, rcvbuf, keep_outgoing, ring)
        except BaseException:
            self.close()
            raise

    def _setup(self, interface: str, expression: str | None, rcvbuf: int,
               keep_outgoing: bool, ring: bool) -> None:
        sock = self.sock
        # Protocol 0: bound to the device but receiving nothing until the filter is in.
        try:
            sock.bind((interface, 0))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO) or isinstance(exc, socket.gaierror):
                names = ", ".join(_interface_names()) or "none found"
                raise InputError(f"no network interface named {interface!r} "
                                 f"(available: {names})") from None
            raise
        hatype = sock.getsockname()[3]
        if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            raise EnvironmentProblem(
                f"interface {interface} has hardware type {hatype}; tcplab capture reads "
                "Ethernet-framed interfaces (lo, eth*, veth*, wlan*). Capture this one with "
                "tcpdump -i " + interface + " -w out.pcap, then run tcplab analyze out.pcap"
            )
        self.linktype = link.LINKTYPE_ETHERNET
        self.loopback = hatype == ARPHRD_LOOPBACK
        self.program = bpf.compile_filter(
            expression, self.linktype, drop_outgoing=self.loopback and not keep_outgoing
        )
        attach_filter(sock, self.program)
        if ring:
            self._setup_ring()
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((interface, ETH_P_ALL))
        sock.setblocking(False)
        # Frames queued between the two binds were filtered; discard nothing, count nothing.
        self.statistics()
        self._received = 0
        self._dropped = 0

    def _setup_ring(self) -> None:
        """Map a TPACKET_V3 receive ring; on kernels that refuse, stay with recvmsg()."""
        sock = self.sock
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            request = struct.pack(
                "=7I", RING_BLOCK_SIZE, RING_BLOCKS, RING_FRAME_SIZE,
                RING_BLOCK_SIZE // RING_FRAME_SIZE * RING_BLOCKS, RING_RETIRE_MS, 0, 0,
            )
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
            self._ring = mmap.mmap(sock.fileno(), RING_BLOCK_SIZE * RING_BLOCKS,
                                   mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            return
        self.mode = "ring"

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, limit: int) -> Iterator[tuple[int, bytes, int]]:
        """Yield up to ``limit`` queued frames as (timestamp_ns, captured bytes, wire length)."""
        if self._ring is not None:
            return self._read_ring(limit)
        return self._read_recvmsg(limit)

    def _read_ring(self, limit: int) -> Iterator[tuple[int, bytes, int]]:
        # A block belongs to us from the moment the kernel sets TP_STATUS_USER until we
        # write TP_STATUS_KERNEL back; frames are copied out before that, so nothing we
        # hand on points into memory the kernel may reuse.
        ring = self._ring
        assert ring is not None
        u32 = _U32.unpack_from
        header = _TPACKET3_HDR.unpack_from
        for _ in range(limit):
            if self._left == 0:
                base = self._block * RING_BLOCK_SIZE
                if not u32(ring, base + _BLOCK_STATUS)[0] & TP_STATUS_USER:
                    return
                self._left = u32(ring, base + _BLOCK_NUM_PKTS)[0]
                self._offset = base + u32(ring, base + _BLOCK_FIRST_PKT)[0]
                if self._left == 0:
                    self._release_block()
                    continue
            at = self._offset
            next_offset, sec, nsec, snaplen, length, _status, mac = header(ring, at)
            data = ring[at + mac : at + mac + snaplen]
            self._offset = at + next_offset
            self._left -= 1
            if self._left == 0:
                self._release_block()
            yield sec * 1_000_000_000 + nsec, data, length

    def _release_block(self) -> None:
        assert self._ring is not None
        _U32.pack_into(self._ring, self._block * RING_BLOCK_SIZE + _BLOCK_STATUS,
                       TP_STATUS_KERNEL)
        self._block = (self._block + 1) % RING_BLOCKS
        self._left = 0

    def _read_recvmsg(self, limit: int) -> Iterator[tuple[int, bytes, int]]:
        # recvmsg_into a buffer allocated once: plain recvmsg(SNAPLEN) would allocate (and,
        # being above malloc's mmap threshold, map and unmap) 256 KiB for every frame,
        # which costs seven times the receive itself.
        recvmsg_into = self.sock.recvmsg_into
        buffers = [self._buffer]
        view = self._view
        unpack = _TIMESPEC.unpack_from
        for _ in range(limit):
            try:
                size, ancillary, _flags, _address = recvmsg_into(buffers, _ANCILLARY_SPACE)
            except BlockingIOError:
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries; belt and braces
                return
            timestamp = 0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = unpack(value)
                    timestamp = seconds * 1_000_000_000 + nanoseconds
            if not timestamp:
                timestamp = time.time_ns()
            # SNAPLEN exceeds every frame Linux hands a packet socket (lo's MTU is 64 KiB,
            # GRO merges stay below 64 KiB), so the captured length is the wire length.
            yield timestamp, bytes(view[:size]), size

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a frame; False when none arrived."""
        try:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return False
        return bool(ready)

    def statistics(self) -> tuple[int, int]:
        """Cumulative (received by filter, dropped by kernel) since the socket was bound.

        The kernel resets its counters on every read, so they are accumulated here; its
        "packets" figure already includes the drops (net/packet/af_packet.c).
        """
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        packets, drops = _STATS.unpack(raw)
        self._received += packets
        self._dropped += drops
        return self._received, self._dropped

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self.sock.close()
        self._view.release()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PacketCallback = Callable[[int, int, bytes, int], None]


def run_capture(
    interface: str = "lo",
    output: str | None = None,
    *,
    expression: str | None = None,
    count: int | None = None,
    duration: float | None = None,
    file_format: str | None = None,
    stop: threading.Event | None = None,
    on_packet: PacketCallback | None = None,
    on_ready: Callable[[PacketSocket], None] | None = None,
    rcvbuf: int = DEFAULT_RCVBUF,
    drain_on_stop: bool = True,
) -> CaptureSummary:
    """Capture until ``count`` frames, ``duration`` seconds, or ``stop`` is set.

    ``on_packet(number, timestamp_ns, data, wire_length)`` sees every frame written (the
    CLI prints the packet-list line there). ``on_ready`` runs once the socket is
    capturing, so callers can start traffic without a race. When ``stop`` ends the run,
    frames already queued in the kernel are still written (``drain_on_stop``): a capture
    wrapped around an experiment then holds its last packets too.
    """
    stop = stop if stop is not None else threading.Event()
    writer = None
    summary = CaptureSummary(interface, link.LINKTYPE_ETHERNET, expression, output=output)
    with PacketSocket(interface, expression, rcvbuf=rcvbuf) as psock:
        summary.linktype = psock.linktype
        if output is not None:
            writer = _open_writer(output, psock.linktype, file_format, interface)
        try:
            summary.started = time.monotonic()
            deadline = summary.started + duration if duration else None
            if on_ready is not None:
                on_ready(psock)
            summary.stop_reason = _loop(psock, writer, summary, count, deadline, stop, on_packet,
                                        drain_on_stop)
        finally:
            summary.stopped = time.monotonic()
            with contextlib.suppress(OSError):
                summary.kernel_received, summary.kernel_dropped = psock.statistics()
            if writer is not None:
                writer.close()
    return summary


def _loop(
    psock: PacketSocket,
    writer: object | None,
    summary: CaptureSummary,
    count: int | None,
    deadline: float | None,
    stop: threading.Event,
    on_packet: PacketCallback | None,
    drain_on_stop: bool,
) -> str:
    write = writer.write if writer is not None else None  # type: ignore[attr-defined]
    batch = 256
    while True:
        if stop.is_set():
            if drain_on_stop:
                _drain(psock, write, summary, count, on_packet)
            return "stop request"
        if count is not None and summary.packets >= count:
            return f"--count {count}"
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "--duration"
        limit = batch if count is None else min(batch, count - summary.packets)
        got = _consume(psock.read(limit), write, summary, on_packet)
        if got == 0:
            timeout = POLL_INTERVAL if deadline is None else min(POLL_INTERVAL, deadline - now)
            psock.wait(timeout)


def _consume(frames: Iterator[tuple[int, bytes, int]], write: Callable | None,
             summary: CaptureSummary, on_packet: PacketCallback | None) -> int:
    got = 0
    for timestamp, data, wire_length in frames:
        got += 1
        summary.packets += 1
        summary.bytes += wire_length
        if write is not None:
            write(data, timestamp)
        if on_packet is not None:
            on_packet(summary.packets, timestamp, data, wire_length)
    return got


def _drain(psock: PacketSocket, write: Callable | None, summary: CaptureSummary,
           count: int | None, on_packet: PacketCallback | None) -> None:
    # What the kernel had queued when the stop came, never what keeps arriving after it:
    # frames stamped later than the stop are left unread, and the drain is time-boxed.
    cutoff_ns = time.time_ns()
    give_up = time.monotonic() + DRAIN_LIMIT
    while time.monotonic() < give_up:
        limit = 256 if count is None else min(256, count - summary.packets)
        if limit <= 0:
            return
        frames = list(psock.read(limit))
        if not frames:
            # The ring hands a partly filled block over only after RING_RETIRE_MS.
            if psock.wait(2 * RING_RETIRE_MS / 1000 + 0.05):
                continue
            return
        early = [frame for frame in frames if frame[0] <= cutoff_ns]
        _consume(iter(early), write, summary, on_packet)
        if len(early) < len(frames):
            return


def _open_writer(output: str, linktype: int, file_format: str | None, interface: str) -> object:
    from tcplab.pcap import format_for_path, open_writer

    # pcapng records the interface name, so Wireshark shows "lo" as dumpcap's files do.
    extra = {"interface_name": interface} if (file_format or format_for_path(output)) == "pcapng" \
        else {}
    try:
        return open_writer(output, linktype, format=file_format, **extra)
    except OSError as exc:
        raise InputError(f"{output}: cannot write the capture: {exc.strerror or exc}") from None


def interfaces() -> list[str]:
    """Names of the network interfaces, for ``--list-interfaces`` and error messages."""
    return _interface_names()


class BackgroundCapture:
    """Capture in a thread around some other work (``inject --capture``, ``replay --capture``).

    ``start()`` returns once the socket is capturing, so no packet of the work is missed;
    ``stop()`` waits ``grace`` seconds for late packets (the kernel's RSTs, the last ACK),
    then writes what is queued and closes the file.
    """

    def __init__(
        self,
        interface: str = "lo",
        output: str | None = None,
        *,
        expression: str | None = None,
        file_format: str | None = None,
        on_packet: PacketCallback | None = None,
        rcvbuf: int = DEFAULT_RCVBUF,
    ) -> None:
        self._kwargs = dict(expression=expression, file_format=file_format, on_packet=on_packet,
                            rcvbuf=rcvbuf)
        self.interface = interface
        self.output = output
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.summary: CaptureSummary | None = None
        self._thread = threading.Thread(target=self._run, name="tcplab-capture", daemon=True)

    def _run(self) -> None:
        try:
            self.summary = run_capture(self.interface, self.output, stop=self._stop,
                                       on_ready=lambda _sock: self._ready.set(),
                                       **self._kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the caller's thread in start()/stop()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 10.0) -> BackgroundCapture:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EnvironmentProblem(f"the capture on {self.interface} did not start "
                                     f"within {timeout:g} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, grace: float = 0.2) -> CaptureSummary:
        if grace > 0 and self._thread.is_alive():
            time.sleep(grace)
        self._stop.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error
        assert self.summary is not None, "capture thread ended without a summary"
        return self.summary
