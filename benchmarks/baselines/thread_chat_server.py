"""BASELINE ONLY — the course report's thread-per-client chat server, kept for comparison.

This is the design SEED.md Part 2 describes: a ``clients`` dict (nickname → socket),
an accept loop in ``start_server`` and one thread per client running
``handle_client``, one ``recv`` per turn of that loop, the full ``ONLINE_USERS:``
list sent to everybody on every join and leave. It is *not* tcplab's server
(see ``tcplab.chat``) and must never be used as one.

Two changes make the measurement fair rather than flattering tcplab:

* correct line framing: each ``recv`` is appended to a buffer and every complete
  ``\\n``-terminated line in it is handled, so merged or split messages are not
  lost (the report's one-``recv``-per-message design drops them under load);
* a per-client send lock, so two threads writing to the same socket cannot
  interleave partial lines.

It keeps the report's weaknesses on purpose: a thread and its stack per client,
``sendall`` to a slow reader blocks the sending client's thread, the online list
is quadratic in the number of joins, and there are no limits of any kind.
Loopback benchmarking only; no I/O beyond its own sockets.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading

#: Bytes asked of each ``recv``; the report reads 1024 at a time.
RECV_SIZE = 1024

clients: dict[str, socket.socket] = {}
send_locks: dict[str, threading.Lock] = {}
clients_lock = threading.Lock()


def send_line(name: str, sock: socket.socket, line: str) -> None:
    """Write one line to a client; a dead peer is cleaned up by its own thread."""
    lock = send_locks.get(name)
    if lock is None:
        return
    try:
        with lock:
            sock.sendall(line.encode("utf-8"))
    except OSError:
        pass


def broadcast_online_users() -> None:
    """The report's behaviour: the whole list to everyone on every join and leave."""
    with clients_lock:
        snapshot = list(clients.items())
    line = "ONLINE_USERS:" + ",".join(name for name, _ in snapshot) + "\n"
    for name, sock in snapshot:
        send_line(name, sock, line)


def parse_message(line: str) -> tuple[str, str] | None:
    """``Target: message`` → (target, message); None when there is no colon."""
    if ":" not in line:
        return None
    target, _, message = line.partition(":")
    return target.strip(), message.strip()


def handle_client(conn: socket.socket) -> None:
    buffer = b""
    nickname: str | None = None
    try:
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                break
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
                if nickname is None:
                    nickname = login(conn, text.strip())
                    continue
                handle_line(nickname, conn, text)
    except (ConnectionResetError, OSError):
        pass
    finally:
        if nickname is not None:
            with clients_lock:
                clients.pop(nickname, None)
                send_locks.pop(nickname, None)
            broadcast_online_users()
        conn.close()


def login(conn: socket.socket, name: str) -> str | None:
    """Register ``name``; on a taken or empty name the client may try again."""
    if not name or ":" in name:
        conn.sendall(b"System: Invalid nickname.\n")
        return None
    with clients_lock:
        if name in clients:
            taken = True
        else:
            taken = False
            clients[name] = conn
            send_locks[name] = threading.Lock()
    if taken:
        conn.sendall(b"System: Nickname already taken. Choose another.\n")
        return None
    broadcast_online_users()
    return name


def handle_line(sender: str, conn: socket.socket, line: str) -> None:
    parsed = parse_message(line)
    if parsed is None:
        send_line(sender, conn, "System: Invalid format! Use: TargetName: Message\n")
        return
    target, message = parsed
    if not target or not message:
        send_line(sender, conn, "System: Name or message cannot be empty.\n")
        return
    with clients_lock:
        target_sock = clients.get(target)
    if target_sock is None:
        send_line(sender, conn, f"System: User {target} is not connected.\n")
        return
    send_line(target, target_sock, f"{sender}: {message}\n")


def start_server(host: str, port: int) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    # The report's listen() backlog would refuse connections in a burst of
    # thousands of logins; give the baseline the kernel's maximum so the
    # benchmark measures its threads, not its backlog.
    server.listen(socket.SOMAXCONN)
    print(f"baseline thread-per-client server listening on {host}:{port}", flush=True)
    while True:
        conn, _addr = server.accept()
        threading.Thread(target=handle_client, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=55555)
    args = parser.parse_args(argv)
    # Thousands of threads: keep each stack small so the baseline is limited by
    # its design, not by address space.
    threading.stack_size(256 * 1024)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        start_server(args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
