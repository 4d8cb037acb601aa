"""``RawTCPTransport`` — the report's class, by name, on top of the layered engine.

A student reading the course report finds the same names here: ``encapsulate`` walks a
payload down the stack (TCP header with pseudo-header checksum, then IPv4 header) and
``send`` puts the packet on the wire through a raw socket. The defaults are the report's:
127.0.0.1:5074 → 127.0.0.1:12345, PSH+ACK, seq 0, ack 0, window 8192, IP ID 1, TTL 64.
``encapsulate`` is pure; only ``send`` touches the network (via :mod:`tcplab.wire`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.packet import ipv4, link, stack, tcp

if TYPE_CHECKING:
    from tcplab.wire.rawsock import RawSender


class RawTCPTransport:
    """Build (and optionally send) hand-made TCP/IPv4 packets between two fixed endpoints."""

    def __init__(
        self,
        src_ip: str = "127.0.0.1",
        dst_ip: str = "127.0.0.1",
        src_port: int = 5074,
        dst_port: int = 12345,
    ) -> None:
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.src_port = src_port
        self.dst_port = dst_port
        self._src = ipv4.addr(src_ip)
        self._dst = ipv4.addr(dst_ip)
        self._sender: RawSender | None = None

    def encapsulate(
        self,
        payload: bytes | str,
        flags: int = tcp.PSH | tcp.ACK,
        *,
        seq: int = 0,
        ack: int = 0,
        window: int = 8192,
        identification: int = 1,
        ttl: int = 64,
    ) -> bytes:
        """Return the complete IPv4 packet (IP header + TCP header + payload) for ``payload``."""
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        return stack.tcp_packet(
            self._src, self._dst, self.src_port, self.dst_port, data,
            seq=seq, ack=ack, flags=flags, window=window, identification=identification, ttl=ttl,
        )

    def frame(self, payload: bytes | str, linktype: int = link.LINKTYPE_NULL, **kwargs: int) -> bytes:
        """The packet with a link header, as a capture file stores it (the report's 62-byte frame)."""
        return stack.frame(linktype, self.encapsulate(payload, **kwargs))

    def send(self, payload: bytes | str, flags: int = tcp.PSH | tcp.ACK, **kwargs: int) -> bytes:
        """Build the packet for ``payload`` and put it on the wire; returns the bytes sent.

        Needs root or CAP_NET_RAW (raises :class:`~tcplab.errors.EnvironmentProblem`
        saying how to grant it). On loopback with nothing listening on ``dst_port`` the
        kernel answers with RST — the report's experiment.
        """
        from tcplab.wire.rawsock import RawSender

        packet = self.encapsulate(payload, flags, **kwargs)
        if self._sender is None:
            self._sender = RawSender()
        self._sender.send(packet)
        return packet

    def close(self) -> None:
        """Close the raw socket ``send`` opened (if any)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def __enter__(self) -> RawTCPTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
