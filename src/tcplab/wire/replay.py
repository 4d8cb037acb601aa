"""The honest alternative to injection: the CSV conversation carried by the kernel's real TCP.

Which connection a message belongs to, which side sends it, and where connections open
and close are decided once, by :mod:`tcplab.encap` (stream style): this module reads
those decisions off the packets encap builds — a SYN opens a connection, a data segment
tagged with a ``msg_id`` is that message from that side, the first FIN closes it — and
re-enacts them with ordinary sockets. The kernel then does the TCP: handshake, sequence
numbers, ACKs, FIN. A capture of the run shows a complete conversation and no RST,
the contrast to ``inject`` that the course asks students to explain.

Each message is read in full by the receiving socket before the next is sent, so the
messages reach the wire in CSV order and none is merged into another's segment.
Sending and receiving are interleaved with :mod:`selectors`, so a message larger than
the socket buffers cannot deadlock the single thread.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from tcplab.errors import EnvironmentProblem, InputError
from tcplab.packet import ipv4, ipv6, tcp

#: Longest wait for one step (connect, accept, a message to arrive, the peer's FIN).
STEP_TIMEOUT = 10.0

#: Largest gap honoured with --timing; longer CSV pauses are shortened to this.
MAX_GAP = 5.0

Endpoint = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class Open:
    client: Endpoint
    server: Endpoint
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class Send:
    client: Endpoint
    server: Endpoint
    from_client: bool
    payload: bytes
    msg_id: str | None
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class Close:
    client: Endpoint
    server: Endpoint
    by_client: bool
    reset: bool
    timestamp_ns: int


Step = Open | Send | Close


def steps_from_packets(packets: Iterable[tuple[int, bytes, str | None]]) -> Iterator[Step]:
    """Turn encap's stream-style packets into socket actions (pure; flat memory).

    Consecutive data segments of one message (split at the MSS) become one :class:`Send`.
    """
    # (a, b) → a is the client; only open connections are kept, so memory follows the
    # number of simultaneously open connections, not the length of the CSV.
    clients: dict[tuple[Endpoint, Endpoint], bool] = {}
    pending: Send | None = None
    for timestamp_ns, packet, msg_id in packets:
        parsed = _segment(packet)
        if parsed is None:
            continue  # UDP (DNS) and anything else: not carried by a TCP connection
        src, dst, flags, payload = parsed
        if flags & tcp.SYN and not flags & tcp.ACK:
            if pending is not None:
                yield pending
                pending = None
            clients[(src, dst)] = True
            clients[(dst, src)] = False
            yield Open(src, dst, timestamp_ns)
            continue
        role = clients.get((src, dst))
        if role is None:
            continue
        client, server = (src, dst) if role else (dst, src)
        if payload:
            if (pending is not None and pending.msg_id == msg_id and msg_id is not None
                    and pending.client == client and pending.from_client == role):
                pending = Send(client, server, role, pending.payload + payload, msg_id,
                               pending.timestamp_ns)
                continue
            if pending is not None:
                yield pending
            pending = Send(client, server, role, payload, msg_id, timestamp_ns)
        if flags & (tcp.FIN | tcp.RST):
            # The first FIN (or RST) closes; the peer's FIN then finds no open connection.
            if pending is not None:
                yield pending
                pending = None
            clients.pop((client, server), None)
            clients.pop((server, client), None)
            yield Close(client, server, role, bool(flags & tcp.RST), timestamp_ns)
    if pending is not None:
        yield pending


def _transport_protocol(packet: bytes) -> int:
    if packet and packet[0] >> 4 == 4 and len(packet) >= 20:
        return packet[9]
    if packet and packet[0] >> 4 == 6 and len(packet) >= 40:
        return packet[6]
    return -1


def _segment(packet: bytes) -> tuple[Endpoint, Endpoint, int, bytes] | None:
    version = packet[0] >> 4 if packet else 0
    if version == 4:
        head = ipv4.parse(packet)
        if head.protocol != tcp.PROTOCOL_NUMBER:
            return None
        start, end, src_ip, dst_ip = head.header_length, head.total_length, head.src, head.dst
    elif version == 6:
        head6 = ipv6.parse(packet)
        if head6.upper_protocol != tcp.PROTOCOL_NUMBER:
            return None
        start, end = head6.upper_offset, 40 + head6.payload_length
        src_ip, dst_ip = head6.src, head6.dst
    else:
        return None
    seg = tcp.parse(packet, start, with_options=False)
    payload = packet[start + seg.header_length : end]
    return (src_ip, seg.src_port), (dst_ip, seg.dst_port), seg.flags, payload


@dataclass(slots=True)
class _Connection:
    client: socket.socket
    server: socket.socket


@dataclass(slots=True)
class ReplaySummary:
    connections: int = 0
    messages: int = 0
    bytes: int = 0
    from_client: int = 0
    from_server: int = 0
    resets: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"replayed  {self.messages:,} messages ({self.bytes:,} bytes of application data) "
            f"over {self.connections:,} real TCP connection(s) in {self.seconds:.2f} s",
            f"          {self.from_client:,} from clients, {self.from_server:,} from servers; "
            "handshake, ACKs and FIN by the kernel",
        ]
        if self.resets:
            out.append(f"          {self.resets:,} connection(s) aborted with RST, as the CSV asks")
        out.extend(self.notes)
        return out


def _family(address: bytes) -> int:
    return socket.AF_INET if len(address) == 4 else socket.AF_INET6


def _text(endpoint: Endpoint) -> str:
    ip = socket.inet_ntop(_family(endpoint[0]), endpoint[0])
    return f"[{ip}]:{endpoint[1]}" if ":" in ip else f"{ip}:{endpoint[1]}"


def _sockaddr(endpoint: Endpoint) -> tuple:
    ip = socket.inet_ntop(_family(endpoint[0]), endpoint[0])
    return (ip, endpoint[1]) if len(endpoint[0]) == 4 else (ip, endpoint[1], 0, 0)


def _bind_problem(exc: OSError, endpoint: Endpoint, role: str) -> Exception:
    where = _text(endpoint)
    if exc.errno == errno.EADDRINUSE:
        return EnvironmentProblem(f"the {role} address {where} is already in use (by a socket "
                                  "or a recent connection still in TIME_WAIT); pick free ports "
                                  "with --client-port/--server-port")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return EnvironmentProblem(f"binding the {role} to {where} needs privilege (ports below "
                                  "1024 need root or CAP_NET_BIND_SERVICE); use a higher port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return EnvironmentProblem(f"{where} is not an address of this host; replay needs local "
                                  "addresses (e.g. 127.0.0.1)")
    return EnvironmentProblem(f"cannot bind the {role} to {where}: {exc.strerror or exc}")


class Replayer:
    """Executes :class:`Step` s with real sockets; one listener per server endpoint."""

    def __init__(self, *, timing: bool = False, speed: float = 1.0,
                 step_timeout: float = STEP_TIMEOUT) -> None:
        self.timing = timing
        self.speed = speed
        self.step_timeout = step_timeout
        self.listeners: dict[Endpoint, socket.socket] = {}
        self.connections: dict[tuple[Endpoint, Endpoint], _Connection] = {}
        self.summary = ReplaySummary()
        self._last_ts: int | None = None
        self._selector = selectors.DefaultSelector()

    def prepare(self, steps: Iterable[Step]) -> None:
        """Open every listener before any traffic, so a port clash fails up front."""
        for step in steps:
            if isinstance(step, Open) and step.server not in self.listeners:
                self.listeners[step.server] = self._listen(step.server)

    def _listen(self, endpoint: Endpoint) -> socket.socket:
        sock = socket.socket(_family(endpoint[0]), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(_sockaddr(endpoint))
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise _bind_problem(exc, endpoint, "server") from None
        return sock

    def run(self, steps: Iterable[Step]) -> ReplaySummary:
        start = time.perf_counter()
        try:
            for step in steps:
                self._pace(step.timestamp_ns)
                if isinstance(step, Open):
                    self._open(step)
                elif isinstance(step, Send):
                    self._send(step)
                else:
                    self._close(step)
            for key in list(self.connections):
                client, server = key
                self._close(Close(client, server, True, False, 0))
        finally:
            self.summary.seconds = time.perf_counter() - start
            self.shutdown()
        return self.summary

    def _pace(self, timestamp_ns: int) -> None:
        if not self.timing or not timestamp_ns:
            return
        if self._last_ts is not None:
            gap = min(MAX_GAP, max(0.0, (timestamp_ns - self._last_ts) / 1e9 / self.speed))
            if gap > 0.0005:
                time.sleep(gap)
        self._last_ts = timestamp_ns

    def _open(self, step: Open) -> None:
        key = (step.client, step.server)
        if key in self.connections:
            return
        listener = self.listeners.get(step.server)
        if listener is None:
            listener = self.listeners[step.server] = self._listen(step.server)
        client = socket.socket(_family(step.client[0]), socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            client.bind(_sockaddr(step.client))
        except OSError as exc:
            client.close()
            raise _bind_problem(exc, step.client, "client") from None
        client.settimeout(self.step_timeout)
        try:
            client.connect(_sockaddr(step.server))
        except OSError as exc:
            client.close()
            raise EnvironmentProblem(f"connecting {_text(step.client)} → {_text(step.server)} "
                                     f"failed: {exc.strerror or exc}") from None
        listener.settimeout(self.step_timeout)
        try:
            server, _peer = listener.accept()
        except TimeoutError:
            client.close()
            raise EnvironmentProblem(f"no connection arrived at {_text(step.server)} within "
                                     f"{self.step_timeout:g} s") from None
        for sock in (client, server):
            # One message, one push: Nagle would hold a small message back waiting for
            # the ACK of the previous one and merge messages into one segment.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        self.connections[key] = _Connection(client, server)
        self.summary.connections += 1

    def _send(self, step: Send) -> None:
        conn = self.connections.get((step.client, step.server))
        if conn is None:
            self._open(Open(step.client, step.server, step.timestamp_ns))
            conn = self.connections[(step.client, step.server)]
        sender, receiver = (conn.client, conn.server) if step.from_client else (conn.server,
                                                                               conn.client)
        self._transfer(sender, receiver, step.payload, step)
        self.summary.messages += 1
        self.summary.bytes += len(step.payload)
        if step.from_client:
            self.summary.from_client += 1
        else:
            self.summary.from_server += 1

    def _transfer(self, sender: socket.socket, receiver: socket.socket, payload: bytes,
                  step: Send) -> None:
        view = memoryview(payload)
        sent = received = 0
        total = len(payload)
        sel = self._selector
        deadline = time.monotonic() + self.step_timeout
        while received < total:
            events = selectors.EVENT_READ
            sel.register(receiver, events)
            if sent < total:
                sel.register(sender, selectors.EVENT_WRITE)
            try:
                ready = sel.select(timeout=max(0.0, deadline - time.monotonic()))
            finally:
                sel.unregister(receiver)
                if sent < total:
                    sel.unregister(sender)
            if not ready:
                raise EnvironmentProblem(
                    f"message {step.msg_id or '?'}: only {received} of {total} bytes arrived "
                    f"within {self.step_timeout:g} s")
            for key, _mask in ready:
                if key.fileobj is sender and sent < total:
                    with _suppress_would_block():
                        sent += sender.send(view[sent:])
                elif key.fileobj is receiver:
                    try:
                        chunk = receiver.recv(min(65536, total - received))
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise EnvironmentProblem(f"message {step.msg_id or '?'}: the peer closed "
                                                 "the connection early")
                    received += len(chunk)

    def _close(self, step: Close) -> None:
        conn = self.connections.pop((step.client, step.server), None)
        if conn is None:
            return
        first, second = (conn.client, conn.server) if step.by_client else (conn.server,
                                                                          conn.client)
        if step.reset:
            # SO_LINGER with a zero timeout turns close() into an abort: the kernel sends RST.
            first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            first.close()
            second.close()
            self.summary.resets += 1
            return
        # Orderly release: FIN from the closing side, the peer reads end-of-stream and
        # answers with its own FIN; nothing is left unread, so no RST is ever provoked.
        first.shutdown(socket.SHUT_WR)
        self._wait_eof(second)
        second.close()
        self._wait_eof(first)
        first.close()

    def _wait_eof(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self.step_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnvironmentProblem("the peer did not close its side of the connection "
                                         f"within {self.step_timeout:g} s")
            sock.settimeout(remaining)
            try:
                if not sock.recv(65536):
                    return
            except TimeoutError:
                continue
            except ConnectionResetError:
                return

    def shutdown(self) -> None:
        for conn in self.connections.values():
            conn.client.close()
            conn.server.close()
        self.connections.clear()
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self._selector.close()


class _suppress_would_block:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, value: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, BlockingIOError)


def replay_csv(
    path: str,
    options: object,
    *,
    unescape: str = "auto",
    skip_bad: bool = False,
    timing: bool = False,
    speed: float = 1.0,
    on_ready: Callable[[], None] | None = None,
) -> ReplaySummary:
    """Replay a course CSV over real TCP; ``options`` are :class:`tcplab.encap.EncapOptions`.

    The CSV is read twice (once to open the listeners, once to replay), never held whole.
    """
    from tcplab.encap import build, read_messages

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    name = os.path.basename(path)

    udp_messages = 0

    def count_udp(packets: Iterable[tuple[int, bytes, str | None]]) -> Iterator[tuple]:
        nonlocal udp_messages
        for packet in packets:
            raw = packet[1]
            if packet[2] is not None and _transport_protocol(raw) == 17:
                udp_messages += 1
            yield packet

    def steps() -> Iterator[Step]:
        messages = read_messages(path, unescape=unescape, skip_bad=skip_bad)  # type: ignore[arg-type]
        return steps_from_packets(count_udp(build(messages, options, source=name)))  # type: ignore[arg-type]

    replayer = Replayer(timing=timing, speed=speed)
    try:
        replayer.prepare(steps())
    except BaseException:
        replayer.shutdown()
        raise
    if on_ready is not None:
        on_ready()
    udp_messages = 0
    summary = replayer.run(steps())
    if udp_messages:
        summary.notes.append(f"skipped   {udp_messages:,} UDP message(s) (DNS): no TCP "
                             "connection carries them; tcplab inject sends them as built")
    if summary.messages == 0:
        summary.notes.append("note      the CSV held no TCP messages to replay")
    return summary
