"""BASELINE ONLY — the smallest selectors relay that speaks the chat's wire protocol.

A reference point for the benchmark, not a chat server: first line = nickname,
then ``Target: text`` is relayed as ``Sender: text``. No validation, no online
list, no limits of any kind (output buffers grow without bound). It shows what a
plain selectors loop costs per message (one Python step per line), and how fast
the load generator drives a server that does almost nothing.
Loopback benchmarking only; never imported by ``src/tcplab``.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys


class Client:
    __slots__ = ("sock", "name", "inbuf", "outbuf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = b""
        self.inbuf = b""
        self.outbuf = bytearray()


def serve(host: str, port: int) -> None:
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(socket.SOMAXCONN)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    by_name: dict[bytes, Client] = {}
    dirty: set[Client] = set()

    def drop(client: Client) -> None:
        sel.unregister(client.sock)
        client.sock.close()
        if by_name.get(client.name) is client:
            del by_name[client.name]
        dirty.discard(client)

    while True:
        for key, mask in sel.select():
            if key.data is None:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, Client(sock))
                continue
            client: Client = key.data
            if mask & selectors.EVENT_WRITE:
                dirty.add(client)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                data = client.sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                drop(client)
                continue
            *lines, client.inbuf = (client.inbuf + data).split(b"\n")
            for line in lines:
                if not client.name:
                    client.name = line.strip()
                    by_name[client.name] = client
                    client.outbuf += b"ONLINE_USERS:" + client.name + b"\n"
                    dirty.add(client)
                    continue
                target, _, text = line.partition(b":")
                peer = by_name.get(target.strip())
                if peer is not None:
                    peer.outbuf += client.name + b": " + text.strip() + b"\n"
                    dirty.add(peer)
        for client in dirty:
            try:
                sent = client.sock.send(client.outbuf)
            except BlockingIOError:
                sent = 0
            except OSError:
                continue
            del client.outbuf[:sent]
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
            sel.modify(client.sock, events, client)
        dirty.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=55555)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
