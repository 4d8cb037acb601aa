"""Messages in, packets out: the TCP conversation synthesizer. No files or sockets here.

Two styles:

* ``seed`` reproduces the report: every message is a lone PSH+ACK segment with seq 0,
  ack 0, window 8192, IP ID 1, TTL 64 (scapy's defaults), so Wireshark marks each repeat
  "[TCP Retransmission]" — exactly what the report captured.
* ``stream`` (default) builds a TCP conversation Wireshark reads as *complete*: a
  three-way handshake with MSS / window-scale / SACK-permitted options, per-direction
  sequence and acknowledgment numbers that advance by payload length, messages larger
  than the MSS split into segments (PSH on the last), ACKs from the receiver (piggybacked
  on its next segment when it answers next, as delayed-ACK stacks do; a pure ACK
  otherwise), FIN/ACK teardown, IP IDs incrementing per direction, DF set.

The :class:`Synthesizer` is fed one :class:`~tcplab.encap.csv_input.Message` at a time and
returns the packets it causes, so memory stays flat however long the CSV is: the only
state is one small record per open connection.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from tcplab.encap.csv_input import UDP_APPS, Message, is_http_start
from tcplab.encap.http_framing import frame_http
from tcplab.packet import dns, ipv4, stack, tcp

Style = Literal["seed", "stream"]

# Seed-style constants: what scapy's IP()/TCP() put in the report's packets.
SEED_WINDOW = 8192
SEED_IP_ID = 1
SEED_TTL = 64

# Stream-style constants, chosen to look like a Linux loopback connection.
SYN_WINDOW = 65535  # window field on SYN/SYN-ACK (never scaled, RFC 7323 §2.2)
WINDOW = 512  # window field afterwards; × 2^7 = 64 KiB, Linux's usual value on lo
WSCALE = 7
# Times are integer nanoseconds: float seconds since 1970 cannot hold microseconds
# exactly, and a pcap must show 0.000100, not 0.000099.
DELAYED_ACK = 200_000  # ns between the data and a pure ACK for it
GAP = 50_000  # ns between back-to-back packets of one burst
TICK = 1_000  # ns: smallest step that keeps timestamps strictly increasing (1 µs, pcap's unit)
_PSH_ACK = tcp.PSH | tcp.ACK

_SERVER_NAME_HINTS = re.compile(r"server|web|api|http|site|shop|store|host|backend|db|dns|cdn|proxy", re.I)
_HTTPS_HINT = re.compile(r"https|tls|ssl", re.I)


_new_emitted = tuple.__new__  # builds an Emitted without NamedTuple's Python-level __new__


class Emitted(NamedTuple):
    """One packet the synthesizer produced."""

    timestamp_ns: int
    packet: bytes  # a complete IPv4/IPv6 packet (no link header)
    msg_id: str | None  # the CSV message it carries, None for control/ACK packets


@dataclass(slots=True)
class EncapOptions:
    """How messages become packets; every field has a CLI flag of the same name."""

    style: Style = "stream"
    client_ip: str = "127.0.0.1"
    server_ip: str = "127.0.0.1"
    #: The first client connection's port; later connections take the next free ports.
    client_port: int = 12345
    #: The first server's port (80 as in the seed); later servers take 8080, 8081, …
    server_port: int = 80
    #: Per-application overrides: name → IP / port.
    app_ips: dict[str, str] = field(default_factory=dict)
    app_ports: dict[str, int] = field(default_factory=dict)
    mss: int = 1460
    #: Seed for ISNs and IP IDs; None → random per run.
    seed: int | None = None
    #: Seconds between messages when the CSV has no timestamps.
    interval: float = 0.1
    #: Epoch seconds that relative CSV timestamps count from.
    start_time: float = 0.0
    #: The same, exactly, in integer nanoseconds; when set it wins over ``start_time``
    #: (the CLI parses ``--start-time`` text straight into it, no float in between).
    start_time_ns: int | None = None
    connection_per_message: bool = False
    #: Stream style: give HTTP messages the framing a byte stream needs (see http_framing).
    http_framing: bool = True


@dataclass(slots=True)
class _Side:
    ip: bytes
    port: int
    isn: int
    ip_id: int
    next_seq: int = 0
    fin_sent: bool = False
    #: Precomputed header builder for this side's direction (IPv4), made on first use.
    flow: stack.TCPv4Flow | None = None

    def __post_init__(self) -> None:
        self.next_seq = self.isn


@dataclass(slots=True)
class _Conn:
    client: _Side
    server: _Side
    state: str = "new"  # new → syn_sent → syn_rcvd → established → closed
    #: The side that owes the other an ACK, and the time of the data it acknowledges.
    owes_ack: _Side | None = None
    owes_ack_time: int = 0  # ns

    def peer(self, side: _Side) -> _Side:
        return self.server if side is self.client else self.client


class Synthesizer:
    """Turns messages into packets, one message at a time (see module docstring)."""

    def __init__(self, options: EncapOptions | None = None) -> None:
        self.options = options or EncapOptions()
        self._rng = random.Random(self.options.seed)
        # Packets never get negative times (a handshake is placed just before its message).
        self._clock = -TICK
        self._start_ns = (self.options.start_time_ns if self.options.start_time_ns is not None
                          else round(self.options.start_time * 1e9))
        self._interval_ns = round(self.options.interval * 1e9)
        self._next_synthetic = self._start_ns
        self._conns_by_pair: dict[tuple[str, str], _Conn] = {}
        self._conns_by_tuple: dict[tuple[bytes, int, bytes, int], _Conn] = {}
        self._server_ports: dict[str, int] = {}
        self._servers: set[str] = set()
        # The first server's port is spoken for even before that server is seen.
        self._used_ports: set[int] = {self.options.server_port}
        self._next_client_port = self.options.client_port
        self._next_extra_server_port = 8080
        self._udp_flows: dict[tuple[str, str], _Conn] = {}
        #: (src_app, dst_app) → (connection, src is the server): skips endpoint decisions.
        self._routes: dict[tuple[str, str], tuple[_Conn, bool]] = {}
        self._dns_txids: dict[str, int] = {}
        self._ip_cache: dict[str, bytes] = {}
        self._last_conn: _Conn | None = None
        # Seed style copies scapy's defaults (TTL 64, no DF); stream style looks like Linux.
        self._ttl = SEED_TTL if self.options.style == "seed" else ipv4.DEFAULT_TTL
        self._df = self.options.style == "stream"
        self._framing = self.options.http_framing
        self._seed_style = self.options.style == "seed"
        self._mss = self.options.mss
        self.connections = 0
        self.http_framed = 0
        #: Messages whose timestamp is earlier than the previous message's: a capture's
        #: time cannot run backwards, so they are sent just after the previous packet
        #: (1 µs later). Counted, with the first few CSV lines, for the closing summary.
        self.time_nudged = 0
        self.time_nudged_lines: list[int] = []
        self._last_message_ns: int | None = None

    # ---- endpoints ------------------------------------------------------------------

    def _ip(self, app: str, given: str | None, server: bool) -> bytes:
        text = given or self.options.app_ips.get(app) or (
            self.options.server_ip if server else self.options.client_ip
        )
        raw = self._ip_cache.get(text)
        if raw is None:
            raw = stack.ip_address(text)
            self._ip_cache[text] = raw
        return raw

    def _alloc_client_port(self) -> int:
        port = self._next_client_port
        while port in self._used_ports:
            port += 1
        if port > 65535:
            # Wrap into the dynamic range rather than fail on a very long CSV.
            port = 49152
            while port in self._used_ports:
                port += 1
        self._next_client_port = port + 1
        return port

    def _server_port(self, app: str, protocol: str, given: int | None) -> int:
        if given is not None:
            return given
        if app in self.options.app_ports:
            return self.options.app_ports[app]
        port = self._server_ports.get(app)
        if port is None:
            if protocol in UDP_APPS:
                port = UDP_APPS[protocol]
            elif protocol == "HTTPS" or _HTTPS_HINT.search(app):
                port = 443
            elif not self._server_ports or self.options.server_port not in self._server_ports.values():
                port = self.options.server_port
            else:
                port = self._next_extra_server_port
                while port in self._server_ports.values():
                    port += 1
                self._next_extra_server_port = port + 1
            self._server_ports[app] = port
            self._used_ports.add(port)
        return port

    def _src_is_server(self, msg: Message) -> bool:
        """Decide which end of a new pair is the server (see docs/encap.md)."""
        if msg.src_app in self._servers:
            return True
        if msg.dst_app in self._servers:
            return False
        if msg.src_port is not None and msg.dst_port is not None:
            return msg.src_port < msg.dst_port
        if msg.app_protocol in UDP_APPS:
            return bool(msg.payload.lower().startswith(b"response"))
        if msg.is_http_request:
            return False
        if msg.is_http_response:
            return True
        if msg.control == "SYN-ACK":
            return True
        if msg.control == "SYN":
            return False
        src_hint = bool(_SERVER_NAME_HINTS.search(msg.src_app))
        dst_hint = bool(_SERVER_NAME_HINTS.search(msg.dst_app))
        if src_hint != dst_hint:
            return src_hint
        return False  # the first speaker is the client

    # ---- time -----------------------------------------------------------------------

    def _message_time(self, msg: Message) -> int:
        if msg.timestamp is None:
            t = self._next_synthetic
            self._next_synthetic = t + self._interval_ns
            return t
        # CSV rows carry the time as exact integer nanoseconds from the text; a Message
        # built in code may have only float seconds, rounded on their own so "0.266" is
        # exactly 266,000,000 ns after the start whatever the start's own float rounding.
        t = msg.timestamp_ns if msg.timestamp_ns is not None else round(msg.timestamp * 1e9)
        if not msg.absolute_time:
            t += self._start_ns
        last = self._last_message_ns
        if last is not None and t < last:
            self.time_nudged += 1
            if len(self.time_nudged_lines) < 5:
                self.time_nudged_lines.append(msg.line)
        else:
            self._last_message_ns = t
        self._next_synthetic = t + self._interval_ns
        return t

    def _stamp(self, desired: int) -> int:
        t = desired if desired > self._clock else self._clock + TICK
        self._clock = t
        return t

    # ---- public API -----------------------------------------------------------------

    def feed(self, msg: Message) -> list[Emitted]:
        """The packets that carry ``msg`` (and any handshake/ACK it implies)."""
        t = self._message_time(msg)
        out: list[Emitted] = []
        if msg.app_protocol in UDP_APPS:
            self._udp(msg, t, out)
        elif self._seed_style:
            self._seed(msg, t, out)
        else:
            self._stream(msg, t, out)
        return out

    def finish(self) -> list[Emitted]:
        """Close every open connection (stream style); call once after the last message."""
        out: list[Emitted] = []
        if self.options.style == "stream":
            for conn in list(self._conns_by_tuple.values()):
                self._close(conn, self._clock + GAP, out)
        self._conns_by_tuple.clear()
        self._conns_by_pair.clear()
        return out

    # ---- UDP ------------------------------------------------------------------------

    def _udp(self, msg: Message, t: int, out: list[Emitted]) -> None:
        src_server = self._src_is_server(msg)
        server_app = msg.src_app if src_server else msg.dst_app
        client_app = msg.dst_app if src_server else msg.src_app
        self._servers.add(server_app)
        key = (client_app, server_app)
        conn = self._udp_flows.get(key)
        if conn is None:
            conn = self._new_endpoints(msg, client_app, server_app, src_server)
            self._udp_flows[key] = conn
        src, dst = (conn.server, conn.client) if src_server else (conn.client, conn.server)
        payload = msg.payload
        parsed = dns.parse_text_form(payload.decode("utf-8", "replace")) if msg.app_protocol == "DNS" else None
        if parsed is not None:
            kind, name, address = parsed
            if kind == "query":
                txid = self._rng.randrange(1, 0x10000)
                if len(self._dns_txids) >= 1024:
                    self._dns_txids.pop(next(iter(self._dns_txids)))
                self._dns_txids[name.lower()] = txid
                payload = dns.build_query(txid, name)
            else:
                txid = self._dns_txids.pop(name.lower(), None) or self._rng.randrange(1, 0x10000)
                payload = dns.build_response(txid, name, address or "0.0.0.0")
        ident = src.ip_id
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        packet = stack.udp_packet(src.ip, dst.ip, src.port, dst.port, payload, identification=ident,
                                  df=self.options.style == "stream")
        out.append(Emitted(self._stamp(t), packet, msg.msg_id))

    # ---- connections ----------------------------------------------------------------

    def _new_conn(self, msg: Message, client_app: str, server_app: str, src_server: bool) -> _Conn:
        conn = self._new_endpoints(msg, client_app, server_app, src_server)
        client, server = conn.client, conn.server
        self._conns_by_pair[(client_app, server_app)] = conn
        self._conns_by_tuple[(client.ip, client.port, server.ip, server.port)] = conn
        self.connections += 1
        return conn

    def _new_endpoints(self, msg: Message, client_app: str, server_app: str, src_server: bool) -> _Conn:
        given_client_port = msg.dst_port if src_server else msg.src_port
        given_server_port = msg.src_port if src_server else msg.dst_port
        given_client_ip = msg.dst_ip if src_server else msg.src_ip
        given_server_ip = msg.src_ip if src_server else msg.dst_ip
        # The server's port first, so a client port is never handed out on top of it.
        sport = self._server_port(server_app, msg.app_protocol, given_server_port)
        cport = given_client_port
        if cport is None:
            wanted = self.options.app_ports.get(client_app)
            cport = wanted if wanted is not None and wanted not in self._used_ports else None
        if cport is None:
            cport = self._alloc_client_port()
        self._used_ports.add(cport)
        rng = self._rng
        client = _Side(self._ip(client_app, given_client_ip, False), cport, rng.getrandbits(32),
                       rng.getrandbits(16))
        server = _Side(self._ip(server_app, given_server_ip, True), sport, rng.getrandbits(32),
                       rng.getrandbits(16))
        if len(client.ip) != len(server.ip):
            raise ValueError(
                f"line {msg.line}: {client_app} and {server_app} mix IPv4 and IPv6 addresses"
            )
        return _Conn(client, server)

    def _conn_for(self, msg: Message, t: int, out: list[Emitted]) -> tuple[_Conn, bool]:
        """Find or open the connection for ``msg`` → (connection, message travels server→client)."""
        route_key = None
        if msg.src_port is None and msg.dst_port is None and not self.options.connection_per_message:
            # The common case, and the hot path: the same application pair as before.
            route_key = (msg.src_app, msg.dst_app)
            hit = self._routes.get(route_key)
            if hit is not None and hit[0].state != "closed":
                return hit
        if msg.src_port is not None and msg.dst_port is not None:
            s_ip = self._ip(msg.src_app, msg.src_ip, False)
            d_ip = self._ip(msg.dst_app, msg.dst_ip, True)
            conn = self._conns_by_tuple.get((s_ip, msg.src_port, d_ip, msg.dst_port))
            if conn is not None:
                return conn, False
            conn = self._conns_by_tuple.get((d_ip, msg.dst_port, s_ip, msg.src_port))
            if conn is not None:
                return conn, True
        src_server = self._src_is_server(msg)
        server_app = msg.src_app if src_server else msg.dst_app
        client_app = msg.dst_app if src_server else msg.src_app
        self._servers.add(server_app)
        key = (client_app, server_app)
        conn = self._conns_by_pair.get(key)
        explicit_ports = msg.src_port is not None and msg.dst_port is not None
        new_request = (
            self.options.connection_per_message and not src_server and conn is not None
            and conn.state == "established" and msg.control is None
        )
        if conn is None or explicit_ports or new_request or conn.state == "closed":
            if conn is not None and self.options.style == "stream":
                self._close(conn, t - 4 * GAP, out)
            conn = self._new_conn(msg, client_app, server_app, src_server)
        if route_key is not None and len(self._routes) < 65536:
            self._routes[route_key] = (conn, src_server)
        return conn, src_server

    def _forget(self, conn: _Conn) -> None:
        key = (conn.client.ip, conn.client.port, conn.server.ip, conn.server.port)
        self._conns_by_tuple.pop(key, None)
        for pair, c in list(self._conns_by_pair.items()):
            if c is conn:
                del self._conns_by_pair[pair]

    # ---- seed style -----------------------------------------------------------------

    _CONTROL_FLAGS = {
        "SYN": tcp.SYN,
        "SYN-ACK": tcp.SYN | tcp.ACK,
        "ACK": tcp.ACK,
        "FIN": tcp.FIN | tcp.ACK,
        "FIN-ACK": tcp.FIN | tcp.ACK,
        "RST": tcp.RST,
        "RST-ACK": tcp.RST | tcp.ACK,
    }

    def _seed(self, msg: Message, t: int, out: list[Emitted]) -> None:
        conn, from_server = self._conn_for(msg, t, out)
        src, dst = (conn.server, conn.client) if from_server else (conn.client, conn.server)
        flags = self._CONTROL_FLAGS[msg.control] if msg.control else tcp.PSH | tcp.ACK
        packet = self._tcp(src, dst, msg.payload, 0, 0, flags, SEED_WINDOW, SEED_IP_ID)
        out.append(Emitted(self._stamp(t), packet, msg.msg_id))

    # ---- stream style ---------------------------------------------------------------

    def _tcp(self, src: _Side, dst: _Side, payload: bytes, seq: int, ack: int, flags: int,
             window: int, ident: int, options: bytes = b"") -> bytes:
        flow = src.flow
        if flow is None:
            if len(src.ip) != 4:
                return stack.tcp_packet(
                    src.ip, dst.ip, src.port, dst.port, payload, seq=seq, ack=ack, flags=flags,
                    window=window, options=options, identification=ident, ttl=self._ttl, df=self._df,
                )
            flow = src.flow = stack.TCPv4Flow(src.ip, dst.ip, src.port, dst.port, ttl=self._ttl, df=self._df)
        return flow.packet(payload, seq, ack, flags, window, ident, options)

    def _emit(self, conn: _Conn, src: _Side, flags: int, t: int, out: list[Emitted],
              payload: bytes = b"", msg_id: str | None = None, options: bytes = b"") -> None:
        dst = conn.server if src is conn.client else conn.client
        ident = src.ip_id
        src.ip_id = (ident + 1) & 0xFFFF
        window = SYN_WINDOW if flags & tcp.SYN else WINDOW
        ack = dst.next_seq if flags & tcp.ACK else 0
        seq = src.next_seq
        flow = src.flow
        if flow is not None:  # the hot path: the direction's precomputed builder
            packet = flow.packet(payload, seq, ack, flags, window, ident, options)
        else:
            packet = self._tcp(src, dst, payload, seq, ack, flags, window, ident, options)
        src.next_seq = (seq + len(payload) + (1 if flags & (tcp.SYN | tcp.FIN) else 0)) & 0xFFFFFFFF
        # Timestamps strictly increase (see _stamp), inlined here: this is the hot path.
        if t <= self._clock:
            t = self._clock + TICK
        self._clock = t
        out.append(_new_emitted(Emitted, (t, packet, msg_id)))
        if flags & tcp.ACK and conn.owes_ack is src:
            conn.owes_ack = None

    def _syn_options(self) -> bytes:
        return tcp.pack_options([tcp.mss(self.options.mss), tcp.NOP, tcp.window_scale(WSCALE),
                                 tcp.NOP, tcp.NOP, tcp.sack_permitted()])

    def _handshake(self, conn: _Conn, t: int, out: list[Emitted], upto: str = "established") -> None:
        if conn.state == "new":
            self._emit(conn, conn.client, tcp.SYN, t - 3 * GAP, out, options=self._syn_options())
            conn.state = "syn_sent"
        if upto == "syn_sent":
            return
        if conn.state == "syn_sent":
            self._emit(conn, conn.server, tcp.SYN | tcp.ACK, t - 2 * GAP, out, options=self._syn_options())
            conn.state = "syn_rcvd"
        if upto == "syn_rcvd":
            return
        if conn.state == "syn_rcvd":
            self._emit(conn, conn.client, tcp.ACK, t - GAP, out)
            conn.state = "established"

    def _flush_ack(self, conn: _Conn, t: int, out: list[Emitted]) -> None:
        debtor = conn.owes_ack
        if debtor is not None:
            self._emit(conn, debtor, tcp.ACK, min(conn.owes_ack_time + DELAYED_ACK, t), out)

    def _flush_other_acks(self, keep: _Conn | None, t: int, out: list[Emitted]) -> None:
        # Invariant: every message flushes the ACKs owed on other connections, so only the
        # connection that carried the previous message can still owe one.
        last = self._last_conn
        if last is not None and last is not keep and last.owes_ack is not None and last.state != "closed":
            self._flush_ack(last, t, out)
        self._last_conn = keep

    def _close(self, conn: _Conn, t: int, out: list[Emitted]) -> None:
        if conn.state == "closed":
            self._forget(conn)
            return
        if conn.state != "established":
            self._handshake(conn, t, out)
        for side in (conn.client, conn.server):
            if not side.fin_sent:
                # FIN+ACK also acknowledges whatever this side still owed.
                self._emit(conn, side, tcp.FIN | tcp.ACK, t, out)
                side.fin_sent = True
                conn.owes_ack = conn.peer(side)
                conn.owes_ack_time = t
                t += GAP
        # Whoever sent the last FIN is owed a final ACK.
        self._flush_ack(conn, t, out)
        conn.state = "closed"
        self._forget(conn)

    def _stream(self, msg: Message, t: int, out: list[Emitted]) -> None:
        conn, from_server = self._conn_for(msg, t, out)
        if self._last_conn is not conn:
            self._flush_other_acks(conn, t, out)
        if from_server:
            src, dst = conn.server, conn.client
        else:
            src, dst = conn.client, conn.server
        if msg.control:
            self._stream_control(conn, src, msg, t, out)
            return
        if conn.state != "established":
            self._handshake(conn, t, out)
        if conn.owes_ack is dst:
            # The sender of this message is owed an ACK for its previous data: the receiver
            # acknowledges before more arrives (a delayed ACK timer would have fired).
            self._flush_ack(conn, t, out)
        payload = msg.payload
        if self._framing and msg.app_protocol.startswith("HTTP") and is_http_start(payload):
            payload, changed = frame_http(payload)
            if changed:
                self.http_framed += 1
        mss = self._mss
        n = len(payload)
        if n <= mss:
            self._emit(conn, src, _PSH_ACK, t, out, payload, msg.msg_id)
        else:
            pos = 0
            seg_no = 0
            while pos < n:
                chunk = payload[pos : pos + mss]
                pos += len(chunk)
                last = pos >= n
                self._emit(conn, src, _PSH_ACK if last else tcp.ACK, t, out, chunk, msg.msg_id)
                t += GAP // 5
                seg_no += 1
                if not last and seg_no % 2 == 0:
                    # RFC 1122 §4.2.3.2: ACK at least every second full-sized segment.
                    self._emit(conn, dst, tcp.ACK, t, out)
        conn.owes_ack = dst
        conn.owes_ack_time = t

    def _stream_control(self, conn: _Conn, src: _Side, msg: Message, t: int, out: list[Emitted]) -> None:
        word = msg.control
        if word == "SYN":
            if conn.state == "new":
                self._handshake(conn, t, out, upto="syn_sent")
                return
        elif word == "SYN-ACK":
            if conn.state in ("new", "syn_sent"):
                self._handshake(conn, t, out, upto="syn_rcvd")
                return
        elif word == "ACK":
            if conn.state in ("new", "syn_sent", "syn_rcvd"):
                self._handshake(conn, t, out)
                return
            self._emit(conn, src, tcp.ACK, t, out)
            return
        elif word in ("FIN", "FIN-ACK"):
            self._handshake(conn, t, out)
            if not src.fin_sent:
                self._emit(conn, src, tcp.FIN | tcp.ACK, t, out)
                src.fin_sent = True
                conn.owes_ack = conn.peer(src)
                conn.owes_ack_time = t
            return
        elif word in ("RST", "RST-ACK"):
            self._handshake(conn, t, out)
            self._emit(conn, src, tcp.RST | tcp.ACK, t, out)
            conn.state = "closed"
            self._forget(conn)
            return
        # A control word that does not fit the connection's state (e.g. SYN mid-connection):
        # send what the CSV asks for, as it asks.
        self._emit(conn, src, self._CONTROL_FLAGS[word], t, out)
