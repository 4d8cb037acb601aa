"""Regenerate the real-traffic files of the fidelity corpus (root; Linux; tcpdump, dumpcap, curl).

The corpus is the yardstick of tests/oracle/test_corpus.py: captures that tcplab did not
write, measured against tshark. The files here are the kernel's own traffic, recorded by
tcpdump and dumpcap; nothing in them is built by tcplab (the DNS responder below packs its
answers with ``struct``, not with tcplab.packet.dns), so they test the analyzer on what other
programs send. Everything runs inside a private network namespace whose only interface is its
own loopback (MTU 1500, like Ethernet, so large transfers are cut into MSS-sized segments):
no host interface, no other process, no address outside 127.0.0.0/8 and ::1.

* ``http-keepalive-lo.pcap`` — ``python -m http.server --protocol HTTP/1.1`` on port 8080
  and ``urllib``/``http.client`` with keep-alive: GET, HEAD, POST and PUT (501), 404, a
  200 kB download, two requests in one segment (pipelined) and one request split across two
  segments.
* ``http-methods-lo.pcapng`` — dumpcap (pcapng) of curl against a small HTTP/1.1 server on
  port 80: GET, HEAD, POST, PUT, DELETE, OPTIONS, a 301 redirect followed, a chunked
  response, 404 and 500, all on kept-alive connections.
* ``http6-curl-lo.pcapng`` — the same http.server over IPv6 (``[::1]:8080``), curl fetching
  three URLs on one connection.
* ``rst-lo.pcap`` — RSTs as the kernel sends them: connecting to a closed port (IPv4 and
  IPv6), a server that aborts with ``SO_LINGER`` 0, and a client closing with unread data.
* ``zerowin-lo.pcap`` — a receiver with a small buffer that stops reading: window full, zero
  window, zero-window probes, then a window update when it drains.
* ``tcp-oddities-lo.pcap`` — urgent data (``MSG_OOB``), keep-alive probes and their ACKs, and a
  connection aborted and opened again from the same client port (port reuse).
* ``udp-dns-lo.pcap.gz`` (gzip-compressed, as tshark and tcplab both read it) — DNS over
  UDP to a tiny responder on 127.0.0.1:53 and [::1]:53 (A, AAAA, NXDOMAIN), a datagram to a
  closed port answered by ICMP port unreachable, and ICMP/ICMPv6 echoes.
* ``any-sll-lo.pcap`` — ``tcpdump -i any -y LINUX_SLL`` (cooked v1) of HTTP, DNS and ping.

Usage: ``sudo .venv/bin/python tests/data/corpus/make_corpus.py`` (then commit the files;
SOURCES.md says where every file of the corpus comes from).
"""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NETNS = "tcplab-corpus"
HERE = Path(__file__).resolve().parent
DOWNLOAD_BYTES = 200_000  # ~140 full segments: enough for window growth, small enough to commit


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def in_netns() -> None:
    """Re-run this script inside a fresh namespace (its loopback only), then clean up."""
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", NETNS)
    try:
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "mtu", "1500", "up")
        sh("ip", "netns", "exec", NETNS, sys.executable, __file__, "--inside")
    finally:
        sh("ip", "netns", "del", NETNS)


class Capture:
    """tcpdump (or dumpcap for pcapng) recording one scenario to one file."""

    def __init__(self, name: str, bpf: str, iface: str = "lo", tool: str = "tcpdump",
                 extra: tuple[str, ...] = ()) -> None:
        self.path = HERE / name
        if tool == "dumpcap":
            cmd = ["dumpcap", "-q", "-i", iface, "-f", bpf, "-w", str(self.path)]
        else:
            cmd = ["tcpdump", "--immediate-mode", "-i", iface, "-s", "0", "-U", *extra,
                   "-w", str(self.path), bpf]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        time.sleep(1.5)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.terminate()
        _out, err = self.proc.communicate(timeout=10)
        tail = err.decode().strip().splitlines()
        print(f"{self.path.name}: {tail[-3:] if tail else 'done'}")


def wait_listening(port: int, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def http_server(directory: Path, bind: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "8080", "--bind", bind,
                             "--protocol", "HTTP/1.1", "--directory", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(8080, "::1" if ":" in bind else "127.0.0.1")
    return proc


def http_keepalive(site: Path) -> None:
    server = http_server(site, "127.0.0.1")
    cap = Capture("http-keepalive-lo.pcap", "tcp port 8080")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
        for method, path, body in (("GET", "/", None), ("GET", "/big.bin", None), ("HEAD", "/index.html", None),
                                   ("GET", "/missing", None), ("POST", "/form", b"name=alice&n=1"),
                                   ("PUT", "/index.html", b"replace me")):
            conn.request(method, path, body=body)
            conn.getresponse().read()
            time.sleep(0.02)
        conn.close()
        with urllib.request.urlopen("http://127.0.0.1:8080/index.html", timeout=10) as r:
            r.read()
        # Two requests in one segment, then one request split across two segments.
        s = socket.create_connection(("127.0.0.1", 8080))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.3)
        s.sendall(b"GET /small.txt HTTP/1.1\r\nHo")
        time.sleep(0.1)
        s.sendall(b"st: a\r\nConnection: close\r\n\r\n")
        s.settimeout(5)
        while s.recv(65536):
            pass
        s.close()
    finally:
        cap.stop()
        server.terminate()
        server.wait(10)


class MethodsHandler(BaseHTTPRequestHandler):
    """A small HTTP/1.1 server that answers every method, with redirects, chunks and errors."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, code: int, body: bytes = b"", extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/old":
            self._send(301, b"moved\n", {"Location": "/new"})
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first chunk\n", b"second chunk\n", b""):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
        elif self.path == "/boom":
            self._send(500, b"internal error\n")
        elif self.path in ("/", "/new"):
            self._send(200, b"hello from " + self.path.encode() + b"\n", {"Content-Type": "text/plain"})
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._send(201, b"created: " + self._body() + b"\n")

    def do_PUT(self) -> None:
        self._body()
        self._send(204)

    def do_DELETE(self) -> None:
        self._send(200, b"deleted\n")

    def do_OPTIONS(self) -> None:
        self._send(200, extra={"Allow": "GET, HEAD, POST, PUT, DELETE, OPTIONS"})


def http_methods() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 80), MethodsHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cap = Capture("http-methods-lo.pcapng", "tcp port 80", tool="dumpcap")
    try:
        base = "http://127.0.0.1"
        sh("curl", "-s", "-o", os.devnull, "-o", os.devnull, "-o", os.devnull, "-o", os.devnull,
           f"{base}/", f"{base}/chunked", f"{base}/nothing", f"{base}/boom")
        sh("curl", "-s", "-L", "-o", os.devnull, f"{base}/old")
        sh("curl", "-s", "-I", "-o", os.devnull, f"{base}/")
        sh("curl", "-s", "-o", os.devnull, "-d", "user=bob&text=hello+there", f"{base}/msg")
        sh("curl", "-s", "-o", os.devnull, "-X", "PUT", "--data-binary", "x" * 3000, f"{base}/blob")
        sh("curl", "-s", "-o", os.devnull, "-X", "DELETE", f"{base}/blob")
        sh("curl", "-s", "-o", os.devnull, "-X", "OPTIONS", f"{base}/")
    finally:
        cap.stop()
        srv.shutdown()
        srv.server_close()


def http6(site: Path) -> None:
    server = http_server(site, "::1")
    cap = Capture("http6-curl-lo.pcapng", "tcp port 8080", tool="dumpcap")
    try:
        sh("curl", "-s", "-g", "-o", os.devnull, "-o", os.devnull, "-o", os.devnull,
           "http://[::1]:8080/", "http://[::1]:8080/small.txt", "http://[::1]:8080/nope")
    finally:
        cap.stop()
        server.terminate()
        server.wait(10)


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rsts() -> None:
    closed4, closed6 = free_port(), free_port(socket.AF_INET6, "::1")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    cap = Capture("rst-lo.pcap", f"tcp port {closed4} or tcp port {closed6} or tcp port {port}")
    try:
        for family, host, p in ((socket.AF_INET, "127.0.0.1", closed4), (socket.AF_INET6, "::1", closed6)):
            with socket.socket(family) as s:
                try:
                    s.connect((host, p))
                except OSError:
                    pass
        # The server aborts: SO_LINGER with a zero timeout turns close() into a RST.
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        c.sendall(b"hello, are you there?\n")
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        time.sleep(0.1)
        c.close()
        # The client closes with data it never read: the kernel answers with RST (RFC 2525 2.17).
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.sendall(b"unsolicited banner nobody reads\n")
        time.sleep(0.1)
        c.close()
        time.sleep(0.1)
        conn.close()
    finally:
        listener.close()
        cap.stop()


def zero_window() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    cap = Capture("zerowin-lo.pcap", f"tcp port {port}")
    try:
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        c.setblocking(False)
        sent, deadline = 0, time.monotonic() + 1.5
        while time.monotonic() < deadline:  # fill the receiver; it reads nothing meanwhile
            try:
                sent += c.send(b"z" * 1000)
            except BlockingIOError:
                time.sleep(0.05)
        got = 0
        conn.settimeout(5)
        while got < sent:  # drain: window updates
            got += len(conn.recv(1024))
            time.sleep(0.005)
        c.close()
        conn.close()
    finally:
        listener.close()
        cap.stop()


def tcp_oddities() -> None:
    """Urgent data, keep-alive probes and a client port used again by a new connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client_port = free_port()
    cap = Capture("tcp-oddities-lo.pcap", f"tcp port {port}")
    try:
        c = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.1", client_port))
        conn, _ = listener.accept()
        c.sendall(b"before the urgent byte ")
        c.send(b"!", socket.MSG_OOB)  # URG set, urgent pointer after the byte
        c.sendall(b"after it")
        time.sleep(0.1)
        conn.recv(100)
        # Keep-alive probes after one idle second, one a second (Linux's TCP_KEEP* options).
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        time.sleep(3.5)
        # Abort (RST: no TIME_WAIT), then connect again from the same port: a new SYN on a known 4-tuple.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        conn.close()
        time.sleep(0.1)
        c = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.1", client_port))
        conn, _ = listener.accept()
        c.sendall(b"second connection, same ports\n")
        conn.recv(100)
        c.close()
        conn.close()
    finally:
        listener.close()
        cap.stop()


def dns_response(query: bytes) -> bytes:
    """An answer to a one-question query: A/AAAA for names under .test, NXDOMAIN otherwise."""
    txid = query[:2]
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    qtype = struct.unpack("!H", query[end + 1:end + 3])[0]
    name = b".".join(query[12:end][i + 1:i + 1 + n] for i, n in _labels(query[12:end]))
    if not name.endswith(b".test"):
        return txid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    rdata = socket.inet_pton(socket.AF_INET6, "::1") if qtype == 28 else socket.inet_aton("127.0.0.1")
    answer = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
    return txid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


def _labels(raw: bytes):
    i = 0
    while i < len(raw) and raw[i]:
        yield i, raw[i]
        i += raw[i] + 1


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)


def dns_responder(family: int, host: str, stop: threading.Event) -> threading.Thread:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 53))
    sock.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            sock.sendto(dns_response(data), peer)
        sock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def udp_traffic() -> None:
    """DNS queries, a datagram to a closed port and ICMP echoes (used by two scenarios)."""
    txid = 0x4242
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_DGRAM) as c:
            c.settimeout(2)
            for name, qtype in (("www.corpus.test", 1), ("www.corpus.test", 28), ("nowhere.example", 1)):
                c.sendto(dns_query(txid, name, qtype), (host, 53))
                c.recvfrom(512)
                txid += 1
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.sendto(b"anyone on the discard port?", (host, 9))
            time.sleep(0.05)
    for family, host, proto, kind in ((socket.AF_INET, "127.0.0.1", socket.IPPROTO_ICMP, 8),
                                      (socket.AF_INET6, "::1", socket.IPPROTO_ICMPV6, 128)):
        with socket.socket(family, socket.SOCK_RAW, proto) as s:
            for seq in (1, 2):
                msg = struct.pack("!BBHHH", kind, 0, 0, 0x0C0C, seq) + b"corpus ping payload"
                if family == socket.AF_INET:  # the kernel fills the ICMPv6 checksum itself
                    msg = msg[:2] + struct.pack("!H", _checksum(msg)) + msg[4:]
                s.sendto(msg, (host, 0))
                time.sleep(0.05)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_dns() -> None:
    stop = threading.Event()
    threads = [dns_responder(socket.AF_INET, "127.0.0.1", stop), dns_responder(socket.AF_INET6, "::1", stop)]
    cap = Capture("udp-dns-lo.pcap", "udp or icmp or icmp6")
    try:
        udp_traffic()
    finally:
        cap.stop()
        stop.set()
        for t in threads:
            t.join(5)
    plain = HERE / "udp-dns-lo.pcap"
    (HERE / "udp-dns-lo.pcap.gz").write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    plain.unlink()


def any_sll(site: Path) -> None:
    stop = threading.Event()
    threads = [dns_responder(socket.AF_INET, "127.0.0.1", stop), dns_responder(socket.AF_INET6, "::1", stop)]
    server = http_server(site, "127.0.0.1")
    cap = Capture("any-sll-lo.pcap", "tcp port 8080 or udp or icmp or icmp6", iface="any",
                  extra=("-y", "LINUX_SLL"))
    try:
        sh("curl", "-s", "-o", os.devnull, "-o", os.devnull, "http://127.0.0.1:8080/small.txt",
           "http://127.0.0.1:8080/index.html")
        udp_traffic()
    finally:
        cap.stop()
        stop.set()
        server.terminate()
        server.wait(10)
        for t in threads:
            t.join(5)


def make_site() -> Path:
    site = Path(tempfile.mkdtemp())
    (site / "index.html").write_text("<html><body><h1>corpus</h1><p>keep-alive test page</p></body></html>\n")
    (site / "small.txt").write_text("small text file\n" * 4)
    (site / "big.bin").write_bytes(bytes(i * 7 & 0xFF for i in range(DOWNLOAD_BYTES)))
    return site


def main() -> None:
    if "--inside" not in sys.argv:
        if os.geteuid() != 0:
            sys.exit("needs root (network namespace, raw sockets, tcpdump)")
        in_netns()
        return
    site = make_site()
    http_keepalive(site)
    http_methods()
    http6(site)
    rsts()
    zero_window()
    tcp_oddities()
    udp_dns()
    any_sll(site)


if __name__ == "__main__":
    main()
