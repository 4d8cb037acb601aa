"""Regenerate the real-traffic captures in tests/data/ (root; Linux; openssl and curl installed).

Everything runs inside a private network namespace whose only interface is its own
loopback, with the MTU lowered to 1280 (the IPv6 minimum) so that the kernel itself
fragments large datagrams: no host interface, no other process and no address outside
127.0.0.0/8 and ::1 is touched. tcpdump records each scenario:

* ``icmp-lo.pcap`` — ICMP echo and a port-unreachable error (with the quoted IP+UDP
  header) over IPv4 and IPv6, and 3000-byte echoes the kernel fragments both ways.
* ``tls12-lo.pcap`` / ``tls13-lo.pcap`` — curl against ``openssl s_server -www``.
* ``dns-tcp-lo.pcap`` — DNS over TCP to port 53: two queries in one segment, one
  query split across two segments, answered by a tiny server built on tcplab.packet.dns.
* ``http-any-sll2.pcap`` — ``tcpdump -i any`` (Linux cooked v2) of an HTTP/1.1 exchange.

Usage: ``sudo .venv/bin/python tests/data/make_captures.py`` (then commit the files).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NETNS = "tcplab-capture"
HERE = Path(__file__).resolve().parent


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def in_netns() -> None:
    """Re-run this script inside a fresh namespace (its loopback only), then clean up."""
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", NETNS)
    try:
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "mtu", "1280", "up")
        sh("ip", "netns", "exec", NETNS, sys.executable, __file__, "--inside")
    finally:
        sh("ip", "netns", "del", NETNS)


class Capture:
    def __init__(self, name: str, iface: str = "lo", extra: tuple[str, ...] = ()) -> None:
        self.path = HERE / name
        self.proc = subprocess.Popen(["tcpdump", "--immediate-mode", "-i", iface, "-s", "0", "-U", "-w", str(self.path),
                                      *extra], stderr=subprocess.PIPE)
        time.sleep(1.0)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.terminate()
        _out, err = self.proc.communicate(timeout=10)
        print(f"{self.path.name}: {err.decode().strip().splitlines()[-3]}")


def icmp() -> None:
    cap = Capture("icmp-lo.pcap")
    for family, addr, proto in ((socket.AF_INET, "127.0.0.1", socket.IPPROTO_ICMP),
                                (socket.AF_INET6, "::1", socket.IPPROTO_ICMPV6)):
        s = socket.socket(family, socket.SOCK_RAW, proto)
        for seq, size in ((1, 16), (2, 16), (3, 3000)):
            kind = 8 if family == socket.AF_INET else 128
            body = bytes(i & 0xFF for i in range(size))
            msg = struct.pack("!BBHHH", kind, 0, 0, 0x7E57, seq) + body
            if family == socket.AF_INET:  # the kernel fills the ICMPv6 checksum itself
                from tcplab.packet.checksum import internet_checksum
                msg = msg[:2] + internet_checksum(msg).to_bytes(2, "big") + msg[4:]
            s.sendto(msg, (addr, 0))
            time.sleep(0.05)
        s.close()
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.sendto(b"is anybody there?", (addr, 9))  # the discard port, closed: ICMP error back
        time.sleep(0.05)
        u.close()
    cap.stop()


def tls(version: str) -> None:
    work = Path(tempfile.mkdtemp())
    key, cert = work / "key.pem", work / "cert.pem"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", str(key), "-out", str(cert),
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:4433", "-key", str(key),
                               "-cert", str(cert), "-www", "-quiet"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    cap = Capture(f"tls{version.replace('.', '')}-lo.pcap", extra=("tcp", "port", "4433"))
    flag = "--tlsv1.2" if version == "1.2" else "--tlsv1.3"
    sh("curl", "-sk", flag, "--tls-max", version, "-o", os.devnull, "https://localhost:4433/",
       "--resolve", "localhost:4433:127.0.0.1")
    cap.stop()
    server.terminate()
    server.wait(10)
    shutil.rmtree(work)


def dns_tcp() -> None:
    from tcplab.packet import dns

    ready = threading.Event()

    def serve() -> None:
        srv = socket.create_server(("127.0.0.1", 53))
        ready.set()
        conn, _ = srv.accept()
        framer = dns.TcpFramer()
        answered = 0
        while answered < 3:
            data = conn.recv(4096)
            if not data:
                break
            for _off, query in framer.feed(data):
                txid = int.from_bytes(query[:2], "big")
                name, _ = dns.read_name(query, 12)
                conn.sendall(dns.frame_tcp(dns.build_response(txid, name, "127.0.0.1")))
                answered += 1
        conn.close()
        srv.close()

    cap = Capture("dns-tcp-lo.pcap", extra=("tcp", "port", "53"))
    t = threading.Thread(target=serve)
    t.start()
    ready.wait()
    c = socket.create_connection(("127.0.0.1", 53))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    two = dns.frame_tcp(dns.build_query(0x1001, "one.example")) + \
        dns.frame_tcp(dns.build_query(0x1002, "two.example"))
    c.sendall(two)
    time.sleep(0.2)
    third = dns.frame_tcp(dns.build_query(0x1003, "three.example"))
    c.sendall(third[:9])
    time.sleep(0.2)
    c.sendall(third[9:])
    time.sleep(0.2)
    while c.recv(4096):
        pass
    c.close()
    t.join(10)
    cap.stop()


def http_any() -> None:
    server = subprocess.Popen([sys.executable, "-m", "http.server", "8000", "--bind", "127.0.0.1",
                               "--directory", str(HERE)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    cap = Capture("http-any-sll2.pcap", iface="any", extra=("tcp", "port", "8000"))
    sh("curl", "-s", "-o", os.devnull, "-o", os.devnull, "http://127.0.0.1:8000/make_captures.py",
       "http://127.0.0.1:8000/missing")
    cap.stop()
    server.terminate()
    server.wait(10)


def main() -> None:
    if "--inside" not in sys.argv:
        if os.geteuid() != 0:
            sys.exit("needs root (network namespace, raw sockets, tcpdump)")
        in_netns()
        return
    sys.path.insert(0, str(HERE.parent.parent / "src"))
    icmp()
    tls("1.2")
    tls("1.3")
    dns_tcp()
    http_any()


if __name__ == "__main__":
    main()
