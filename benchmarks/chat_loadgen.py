"""Load generator for the chat benchmark: many chat clients in one non-blocking process.

``bench_chat.py`` starts one or more of these as separate processes so the load
never shares an interpreter (or a GIL) with the server being measured. One
``epoll`` loop drives every connection; writes are batched (a sender's whole
window goes out in one ``send``) and received data is parsed a chunk at a time
with C-level ``bytes`` and ``re`` operations, so the generator spends little CPU
per message and reports that CPU time so a reader can check it is not the
bottleneck.

Wire protocol spoken (the chat's, see docs/protocol.md): the first line is the
nickname; ``Target: text`` sends; the target receives ``Sender: text``. Every
message carries the microsecond time it was written, so the receiving side of the
same process computes its latency on the same monotonic clock.

Control: the parent writes commands on stdin, one per line; the generator answers
with one JSON object per line on stdout. It keeps reading its sockets while it
waits for a command, so the server never sees a stalled reader.

* ``pairs`` mode — ``go WARMUP MEASURE DRAIN``: senders keep ``--window``
  messages in flight to their receivers; the result counts messages delivered in
  the MEASURE window, their latency, and losses after DRAIN.
* ``idle`` mode — ``login``: connections (already open, silent) send their
  nicknames; the result is how long until every one was accepted.

Everything is bounded: connection count, per-connection buffers, a fixed-size
latency histogram, and a deadline on every phase. Only 127.0.0.1 is ever contacted.
It must never be imported by ``src/tcplab``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import resource
import select
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable

#: Names are fixed-width so a list of 10,000 is ~70 KB (the issue's "80 KB list")
#: and a name can never be a substring of another at a line start.
NAME_FORMAT = "u{:05d}"
#: Filler resembling the seed's capture ("isabelleeee:how are youuu"); the
#: 12-digit microsecond timestamp follows it.
FILLER = b"how are youuu "
TIMESTAMP_RE = re.compile(rb"how are youuu (\d{12})\r?\n")
#: A line we cannot find the end of in this many bytes is a protocol fault, not a
#: reason to buffer more (a full 10,000-name online list is ~70 KB).
MAX_PENDING_LINE = 1 << 20
RECV_SIZE = 1 << 16
READ = select.EPOLLIN
WRITE = select.EPOLLOUT
#: Hang-up and error are reported whatever was asked for; the next recv/send says which.
TROUBLE = select.EPOLLERR | select.EPOLLHUP
#: Latency histogram: bucket i holds latencies in [e^(i/100), e^((i+1)/100)) µs,
#: so quantiles are exact to 1 % and memory is fixed whatever the message count.
HIST_SCALE = 100
HIST_BUCKETS = int(math.log(600e6) * HIST_SCALE) + 2
#: Quiet time that means "the server has finished sending online-list updates".
QUIET_S = 0.3


def now_us() -> int:
    return time.monotonic_ns() // 1000


class Histogram:
    """Fixed-size log histogram of latencies in microseconds."""

    def __init__(self) -> None:
        self.counts = [0] * HIST_BUCKETS
        self.total = 0
        self.max_us = 0

    def add(self, latency_us: int, count: int) -> None:
        latency_us = max(latency_us, 1)
        index = min(int(math.log(latency_us) * HIST_SCALE), HIST_BUCKETS - 1)
        self.counts[index] += count
        self.total += count
        if latency_us > self.max_us:
            self.max_us = latency_us

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q``, in milliseconds."""
        if not self.total:
            return None
        rank = q * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return round(math.exp((index + 1) / HIST_SCALE) / 1000.0, 3)
        return round(self.max_us / 1000.0, 3)


class Conn:
    """One simulated chat client."""

    __slots__ = ("index", "sock", "fd", "name", "inbuf", "outbuf", "state", "login_started",
                 "login_us", "peer", "is_sender", "sent", "received", "prefix", "line",
                 "events")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        self.name = NAME_FORMAT.format(index).encode()
        self.inbuf = b""
        self.outbuf = b""
        self.state = "connecting"  # connecting → connected → login-sent → in → closed
        self.login_started = 0
        self.login_us = 0
        self.peer: Conn | None = None
        self.is_sender = False
        self.sent = 0        # senders: messages handed to the kernel for the peer
        self.received = 0    # receivers: chat messages that arrived from the peer
        self.prefix = b""    # receivers: the b"Sender: " every chat line must start with
        self.line = b""      # senders: b"Target: " the line prefix they write
        self.events = 0


class LoadGen:
    #: How every line this generator writes ends (IRC's subclass uses CR LF).
    line_end = b"\n"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # epoll directly rather than selectors: one dict lookup per event instead of a
        # SelectorKey, which matters at hundreds of thousands of events per second.
        self.epoll = select.epoll()
        self.by_fd: dict[int, Conn | None] = {}
        self.conns: list[Conn] = []
        self.errors: Counter[str] = Counter()
        self.system_samples: list[str] = []
        self.other_lines = 0
        self.misattributed = 0
        self.hist = Histogram()
        self.measuring = False
        self.measured = 0
        self.sending = False
        self.to_refill: set[Conn] = set()
        self.logged_in = 0
        self.last_rx = time.monotonic()
        self.connecting = 0
        self.closed = 0
        self.stdin_buf = b""
        self.commands: list[str] = []
        self.stdin_closed = False
        os.set_blocking(sys.stdin.fileno(), False)
        try:
            self.epoll.register(sys.stdin.fileno(), READ)
            self.by_fd[sys.stdin.fileno()] = None
        except PermissionError:  # a regular file cannot be polled: no commands will come
            self.stdin_closed = True

    # -- output ---------------------------------------------------------------------
    def report(self, event: str, **fields: object) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    # -- connecting -----------------------------------------------------------------
    def open_connections(self, count: int, first_index: int, send_nick: bool) -> float:
        """Open ``count`` connections, at most ``--connect-concurrency`` in progress."""
        started = time.monotonic()
        deadline = started + self.args.phase_timeout
        next_index = first_index
        remaining = count
        in_progress = 0
        while (remaining or in_progress) and time.monotonic() < deadline:
            while remaining and in_progress < self.args.connect_concurrency:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = Conn(next_index, sock)
                conn.events = WRITE
                err = sock.connect_ex(("127.0.0.1", self.port_for(next_index - first_index)))
                if err not in (0, errno.EINPROGRESS):
                    self.errors[f"connect: {os.strerror(err)}"] += 1
                    sock.close()
                else:
                    self.epoll.register(conn.fd, WRITE)
                    self.by_fd[conn.fd] = conn
                    self.conns.append(conn)
                    self.connecting += 1
                    in_progress += 1
                next_index += 1
                remaining -= 1
            before = self.connecting
            self.poll(0.05, send_nick_on_connect=send_nick)
            in_progress -= before - self.connecting
        if self.connecting:
            self.errors["connect: timed out"] += self.connecting
        return time.monotonic() - started

    def port_for(self, j: int) -> int:
        """Port of the j-th connection: ``--port``, or with ``--ports`` (cluster nodes) pair
        j // 2 placed by ``--layout``: both ends on one node (local), on two (cross), or
        every other pair cross-node (half)."""
        ports = getattr(self.args, "ports", None)  # bench_irc builds its own args
        if not ports:
            return self.args.port
        pair, side = divmod(j, 2)
        layout = getattr(self.args, "layout", "local")
        cross = layout == "cross" or (layout == "half" and pair % 2 == 1)
        return ports[(pair // (2 if layout == "half" else 1) + (side if cross else 0)) % len(ports)]

    def on_connected(self, conn: Conn, send_nick: bool) -> None:
        self.connecting -= 1
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.errors[f"connect: {os.strerror(err)}"] += 1
            self.close(conn)
            return
        conn.state = "connected"
        self.set_events(conn, READ)
        if send_nick:
            self.send_nick(conn)

    def send_nick(self, conn: Conn) -> None:
        conn.state = "login-sent"
        conn.login_started = now_us()
        self.write(conn, conn.name + b"\n")

    # -- the loop ---------------------------------------------------------------------
    def set_events(self, conn: Conn, events: int) -> None:
        if conn.events != events:
            conn.events = events
            self.epoll.modify(conn.fd, events)

    def poll(self, timeout: float, send_nick_on_connect: bool = False) -> None:
        by_fd = self.by_fd
        for fd, mask in self.epoll.poll(timeout):
            conn = by_fd.get(fd)
            if conn is None:
                if fd not in by_fd:
                    continue  # closed earlier in this batch of events
                self.read_stdin()
                continue
            if conn.state == "connecting":
                self.on_connected(conn, send_nick_on_connect)
                continue
            if mask & (READ | TROUBLE):
                self.on_readable(conn)
            if mask & WRITE and conn.state != "closed":
                self.flush(conn)
        if self.to_refill:
            refill, self.to_refill = self.to_refill, set()
            for sender in refill:
                self.refill(sender)

    def read_stdin(self) -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:
            self.stdin_closed = True
            self.epoll.unregister(sys.stdin.fileno())
            del self.by_fd[sys.stdin.fileno()]
            return
        self.stdin_buf += data
        *lines, self.stdin_buf = self.stdin_buf.split(b"\n")
        self.commands.extend(line.decode().strip() for line in lines if line.strip())

    def wait_command(self) -> list[str]:
        """Keep serving sockets until the parent sends a command (or goes away)."""
        while not self.commands:
            if self.stdin_closed:
                return ["quit"]
            self.poll(0.1)
        return self.commands.pop(0).split()

    def run_until(self, done: Callable[[], bool], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if done():
                return True
            self.poll(min(0.05, max(0.0, deadline - time.monotonic())))
        return done()

    def wait_quiet(self, deadline: float) -> None:
        """Return once nothing has arrived for QUIET_S (the server has settled)."""
        self.last_rx = time.monotonic()
        self.run_until(lambda: time.monotonic() - self.last_rx >= QUIET_S, deadline)

    # -- I/O ---------------------------------------------------------------------------
    def write(self, conn: Conn, data: bytes) -> None:
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            written = conn.sock.send(data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self.fault(conn, f"send: {exc.strerror or exc}")
            return
        if written < len(data):
            conn.outbuf = data[written:]
            self.set_events(conn, READ | WRITE)

    def flush(self, conn: Conn) -> None:
        if conn.outbuf:
            try:
                written = conn.sock.send(conn.outbuf)
            except BlockingIOError:
                return
            except OSError as exc:
                self.fault(conn, f"send: {exc.strerror or exc}")
                return
            conn.outbuf = conn.outbuf[written:]
        if not conn.outbuf:
            self.set_events(conn, READ)
            if conn.is_sender:
                self.to_refill.add(conn)

    def on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fault(conn, f"recv: {exc.strerror or exc}")
            return
        if not data:
            self.fault(conn, "server closed the connection")
            return
        self.last_rx = time.monotonic()
        if conn.inbuf:
            data = conn.inbuf + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            conn.inbuf = data
            if len(data) > MAX_PENDING_LINE:
                self.fault(conn, f"line longer than {MAX_PENDING_LINE} bytes")
            return
        conn.inbuf = data[cut:]
        if conn.state == "login-sent":
            self.on_login_reply(conn, data[:data.index(b"\n") + 1])
            if conn.state == "closed":
                return
        self.on_lines(conn, data[:cut] if cut < len(data) else data)

    def on_login_reply(self, conn: Conn, first_line: bytes) -> None:
        """The server's first answer to a nickname says whether it was accepted."""
        if first_line.startswith(b"System:") and is_error_notice(first_line):
            self.fault(conn, "nickname refused")
            self.sample(first_line)
            return
        conn.state = "in"
        conn.login_us = now_us() - conn.login_started
        self.logged_in += 1

    def on_lines(self, conn: Conn, chunk: bytes) -> None:
        lines = chunk.count(b"\n")
        stamps = TIMESTAMP_RE.findall(chunk)
        chat = len(stamps)
        if chat:
            if not conn.prefix:
                self.misattributed += chat
            else:
                # The server stamps the sender; every chat line here must name our peer.
                good = chunk.count(b"\n" + conn.prefix) + chunk.startswith(conn.prefix)
                if good < chat:
                    self.misattributed += chat - good
            conn.received += chat
            if self.measuring:
                self.measured += chat
                now = now_us()
                if stamps[0] == stamps[-1]:  # the usual case: one window written at once
                    self.hist.add(now - int(stamps[0]), chat)
                else:
                    for stamp, count in Counter(stamps).items():
                        self.hist.add(now - int(stamp), count)
            peer = conn.peer
            if peer is not None and self.sending and not peer.outbuf:
                self.to_refill.add(peer)
        if lines > chat:
            self.other_lines += lines - chat
            if len(self.system_samples) < 5 and b"System" in chunk:
                for line in chunk.split(b"\n"):
                    if line.startswith(b"System") and is_error_notice(line):
                        self.sample(line)

    def sample(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()[:160]
        if len(self.system_samples) < 5 and text not in self.system_samples:
            self.system_samples.append(text)

    def refill(self, sender: Conn) -> None:
        """Top the sender's window up to ``--window`` messages in one write."""
        if not self.sending or sender.state != "in" or sender.outbuf:
            return
        receiver = sender.peer
        assert receiver is not None
        missing = self.args.window - (sender.sent - receiver.received)
        if missing <= 0:
            return
        line = sender.line + b"%012d" % now_us() + self.line_end
        sender.sent += missing
        self.write(sender, line * missing)

    def pair(self, sender: Conn, receiver: Conn) -> None:
        """Set the line a sender writes and the sender stamp its receiver must see."""
        sender.line = receiver.name + b": " + FILLER
        receiver.prefix = sender.name + b": "

    def fault(self, conn: Conn, reason: str) -> None:
        self.errors[reason] += 1
        self.close(conn)

    def close(self, conn: Conn) -> None:
        if conn.state == "closed":
            return
        if conn.state == "connecting":
            self.connecting -= 1
        conn.state = "closed"
        self.closed += 1
        with contextlib.suppress(OSError):
            self.epoll.unregister(conn.fd)
        self.by_fd.pop(conn.fd, None)
        conn.sock.close()

    def close_all(self) -> None:
        for conn in self.conns:
            self.close(conn)

    def cpu_seconds(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    # -- modes ---------------------------------------------------------------------------
    def run_pairs(self) -> None:
        args = self.args
        count = 2 * args.pairs
        started = time.monotonic()
        connect_s = self.open_connections(count, args.first_index, send_nick=True)
        deadline = started + args.phase_timeout
        self.run_until(lambda: self.logged_in + self.failed() >= count, deadline)
        login_s = time.monotonic() - started
        for i in range(0, len(self.conns) - 1, 2):
            sender, receiver = self.conns[i], self.conns[i + 1]
            sender.peer, receiver.peer = receiver, sender
            sender.is_sender = True
            self.pair(sender, receiver)
        self.wait_quiet(time.monotonic() + args.phase_timeout)
        self.report("ready", connected=len(self.conns), logged_in=self.logged_in,
                    connect_s=round(connect_s, 3), login_s=round(login_s, 3),
                    errors=dict(self.errors))
        command = self.wait_command()
        if command[0] != "go":
            self.close_all()
            return
        warmup, measure, drain = (float(x) for x in command[1:4])
        self.other_lines = 0
        self.sending = True
        self.to_refill.update(c for c in self.conns if c.is_sender and c.state == "in")
        t0 = time.monotonic()
        self.run_until(lambda: False, t0 + warmup)
        sent_before = sum(c.sent for c in self.conns)
        cpu_before = self.cpu_seconds()
        self.measuring = True
        t1 = time.monotonic()
        self.run_until(lambda: False, t1 + measure)
        self.measuring = False
        elapsed = time.monotonic() - t1
        cpu_used = self.cpu_seconds() - cpu_before
        sent_in_window = sum(c.sent for c in self.conns) - sent_before
        self.sending = False
        pairs = [(c, c.peer) for c in self.conns if c.is_sender]
        self.run_until(lambda: all(s.sent == r.received for s, r in pairs),
                       time.monotonic() + drain)
        sent = sum(s.sent for s, _ in pairs)
        received = sum(r.received for _, r in pairs)
        unflushed = sum(1 for s, _ in pairs if s.outbuf)
        self.report(
            "result", pairs=len(pairs), elapsed_s=round(elapsed, 4),
            delivered=self.measured, sent_in_window=sent_in_window,
            msg_per_s=round(self.measured / elapsed, 1),
            p50_ms=self.hist.quantile(0.50), p99_ms=self.hist.quantile(0.99),
            hist={i: c for i, c in enumerate(self.hist.counts) if c},
            max_ms=round(self.hist.max_us / 1000, 3),
            sent=sent, received=received, lost=sent - received,
            unflushed_senders=unflushed, misattributed=self.misattributed,
            other_lines=self.other_lines, system_samples=self.system_samples,
            loadgen_cpu_s=round(cpu_used, 3),
            loadgen_cpu_share=round(cpu_used / elapsed, 3), errors=dict(self.errors),
            closed=sum(1 for c in self.conns if c.state == "closed"),
        )
        self.close_all()

    def failed(self) -> int:
        return self.closed

    def run_idle(self) -> None:
        args = self.args
        count = args.clients
        connect_s = self.open_connections(count, args.first_index, send_nick=False)
        self.report("connected", connected=sum(1 for c in self.conns if c.state == "connected"),
                    connect_s=round(connect_s, 3), errors=dict(self.errors))
        command = self.wait_command()
        if command[0] != "login":
            self.close_all()
            return
        started = time.monotonic()
        live = [c for c in self.conns if c.state == "connected"]
        # Nicknames go out in one burst, as fast as the kernel takes them: the
        # server sees thousands of logins at once, the case the target is about.
        for conn in live:
            self.send_nick(conn)
        self.run_until(lambda: self.logged_in + self.failed() >= len(live),
                       started + args.phase_timeout)
        login_s = time.monotonic() - started
        times = sorted(c.login_us for c in self.conns if c.state == "in")

        def pick(q: float) -> float | None:
            return round(times[min(len(times) - 1, int(q * len(times)))] / 1000, 2) if times else None

        cpu = self.cpu_seconds()
        if self.logged_in == len(live):
            # A server that did not finish is still busy; its memory is not "idle".
            self.wait_quiet(time.monotonic() + args.phase_timeout)
        self.report("logged_in", attempted=len(live), logged_in=self.logged_in,
                    login_s=round(login_s, 3), complete=self.logged_in == len(live),
                    login_p50_ms=pick(0.5), login_p99_ms=pick(0.99),
                    login_max_ms=pick(1.0), loadgen_cpu_s=round(cpu, 3),
                    errors=dict(self.errors), system_samples=self.system_samples)
        self.wait_command()
        self.close_all()


SYSTEM_CODE_RE = re.compile(rb"System: (\d{3}) ")
ERROR_NUMERIC_RE = re.compile(rb"(?<![0-9a-z])43[123](?![0-9a-z])")


def is_error_notice(line: bytes) -> bool:
    """A ``System:`` line reporting an error (nickname refused, flood limit, not delivered).

    tcplab's server numbers its notices (4xx/5xx are errors, IRC-style); the
    baseline does not, so its wording is matched instead.
    """
    coded = SYSTEM_CODE_RE.match(line)
    if coded:
        return int(coded.group(1)) >= 400
    lowered = line.lower()
    # Numerics as words only: the names u00431…u00433 must not read as errors.
    return bool(ERROR_NUMERIC_RE.search(lowered)) or any(word in lowered for word in (
        b"taken", b"invalid", b"reserved", b"refused", b"not allowed", b"full", b"too many",
        b"error"))


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat load generator (driven by bench_chat.py).")
    parser.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
    parser.add_argument("--ports", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="cluster nodes' ports (instead of --port's one): see --layout")
    parser.add_argument("--layout", choices=("local", "cross", "half"), default="local",
                        help="with --ports: pairs on one node, across nodes, or half of each")
    parser.add_argument("--mode", choices=("pairs", "idle"), required=True)
    parser.add_argument("--pairs", type=int, default=50, help="pairs mode: sender/receiver pairs")
    parser.add_argument("--clients", type=int, default=1000, help="idle mode: connections")
    parser.add_argument("--first-index", type=int, default=0,
                        help="first nickname number (keeps several generators' names apart)")
    parser.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    parser.add_argument("--connect-concurrency", type=int, default=256)
    parser.add_argument("--phase-timeout", type=float, default=60.0,
                        help="seconds allowed for connecting, logging in or settling")
    args = parser.parse_args(argv)
    if args.port == 0 or not 0 < args.port < 65536:
        parser.error("--port must be 1–65535")
    raise_fd_limit((2 * args.pairs if args.mode == "pairs" else args.clients) + 64)
    gen = LoadGen(args)
    try:
        if args.mode == "pairs":
            gen.run_pairs()
        else:
            gen.run_idle()
    except KeyboardInterrupt:
        return 130
    finally:
        gen.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
