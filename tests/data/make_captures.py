"""Regenerate the real-traffic captures in tests/data/ (root; Linux; openssl and curl installed).

Everything runs inside a private network namespace whose only interface is its own
loopback, with the MTU lowered to 1280 (the IPv6 minimum) so that the kernel itself
fragments large datagrams: no host interface, no other process and no address outside
127.0.0.0/8 and ::1 is touched. tcpdump records each scenario:

* ``icmp-lo.pcap`` — ICMP echo and a port-unreachable error (with the quoted IP+UDP
  header) over IPv4 and IPv6, and 3000-byte echoes the kernel fragments both ways.
* ``udp-frag-lo.pcap`` — 3000-byte UDP datagrams fragmented by the kernel, answered with
  2000 bytes, and sent to a closed port (the ICMP error quotes the reassembled header), over
  IPv4 and IPv6.
* ``tls12-lo.pcap`` / ``tls13-lo.pcap`` — curl against ``openssl s_server -www``.
* ``dns-tcp-lo.pcap`` — DNS over TCP to port 53: two queries in one segment, one
  query split across two segments, answered by a tiny server built on tcplab.packet.dns.
* ``http-any-sll2.pcap`` — ``tcpdump -i any`` (Linux cooked v2) of an HTTP/1.1 exchange.

Three more are crafted with tcplab.packet's builders (no root needed: ``--crafted``), for
what loopback cannot produce:

* ``network-crafted.pcap`` — unanswered, duplicate and orphan echoes, and echoes carrying
  Linux ping's send time in their data; a Time Exceeded
  quoting a TCP header; IPv4 fragments out of order and overlapping (one arriving after
  its datagram completed); IPv6 fragments in reverse order; Neighbor Solicitation and
  Advertisement (with and without link-layer address options), Router Solicitation and
  Advertisement, MLDv2, Redirect; ICMPv6 Destination Unreachable, Packet Too Big, Time
  Exceeded and Parameter Problem; a TCP data segment carried in IPv4 and in IPv6 fragments; the other ICMP types
  (timestamp, redirect, source quench, parameter problem, fragmentation needed, router
  advertisement and solicitation, extended echo, address mask).
* ``pppoe-http.pcap`` — three HTTP/1.1 exchanges (full handshakes) inside PPPoE session
  frames, two over IPv4 and one over IPv6, with an LCP echo between them, after the
  discovery stage (PADI, PADO, PADR, PADS; PADT at the end): the shape of
  the DSL captures (Wireshark's ``nb6-http.pcap``) whose streams were lost before.
* ``l2tp-crafted.pcap`` — an L2TPv2 tunnel (UDP 1701): control connection and session
  set-up (SCCRQ … ICCN, ZLB, Hello, CDN, StopCCN), LCP and IPCP inside the session, an HTTP
  exchange over IPv4 and DNS over IPv6 through it (data messages with each optional header
  field, compressed PPP address/control and protocol), the tunnel itself over IPv6 once, and
  damaged messages (Length past the datagram, an overrunning AVP, no PPP protocol, L2TPv3).

Usage: ``sudo .venv/bin/python tests/data/make_captures.py`` (then commit the files), or
``.venv/bin/python tests/data/make_captures.py --crafted`` for the crafted three only, or
``sudo … make_captures.py --only udp_fragments`` for one real-traffic scenario.
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
        sh("ip", "netns", "exec", NETNS, sys.executable, __file__, "--inside", *sys.argv[1:])
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


def udp_fragments() -> None:
    """3000-byte UDP datagrams the kernel fragments (MTU 1280): to a listening socket, which
    answers 2000 bytes, and to a closed port, whose ICMP error quotes the reassembled header."""
    cap = Capture("udp-frag-lo.pcap", extra=("udp", "or", "icmp", "or", "icmp6", "or", "ip[6:2] & 0x3fff != 0",
                                             "or", "ip6"))
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(family, socket.SOCK_DGRAM)
        srv.bind((addr, 9999))
        cli = socket.socket(family, socket.SOCK_DGRAM)
        cli.sendto(bytes(i % 251 for i in range(3000)), (addr, 9999))
        data, peer = srv.recvfrom(65535)
        srv.sendto(data[:2000], peer)
        cli.recvfrom(65535)
        time.sleep(0.05)
        cli.sendto(b"\xab" * 3000, (addr, 9))  # closed: a port-unreachable comes back
        time.sleep(0.1)
        srv.close()
        cli.close()
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


def _eth(ethertype: int) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", ethertype)


def _icmpv6_frame(src: bytes, dst: bytes, message: bytes) -> bytes:
    from tcplab.packet import ipv6
    from tcplab.packet.checksum import internet_checksum, pseudo_header

    message = message[:2] + b"\x00\x00" + message[4:]
    csum = internet_checksum(pseudo_header(src, dst, 58, len(message)) + message)
    message = message[:2] + csum.to_bytes(2, "big") + message[4:]
    return _eth(0x86DD) + ipv6.build_header(src, dst, len(message), next_header=58, hop_limit=255) + message


def network_crafted() -> None:
    from tcplab.packet import icmp, icmpv6, ipv4, ipv6, stack, udp
    from tcplab.pcap import PcapWriter

    a, b = ipv4.addr("192.0.2.1"), ipv4.addr("192.0.2.2")
    a6, b6 = ipv6.addr("fe80::1"), ipv6.addr("fe80::2")
    v4 = _eth(0x0800)
    frames = [
        v4 + stack.ip_packet(a, b, 1, icmp.build_echo(0x11, 5, b"abcdefgh")),  # never answered
        v4 + stack.ip_packet(a, b, 1, icmp.build_echo(0x11, 6, b"abcdefgh")),
        v4 + stack.ip_packet(b, a, 1, icmp.build_echo(0x11, 6, b"abcdefgh", reply=True)),
        v4 + stack.ip_packet(b, a, 1, icmp.build_echo(0x11, 9, b"abcdefgh", reply=True)),  # orphan
        v4 + stack.ip_packet(b, a, 1, icmp.build_error(11, 0, stack.tcp_packet(a, b, 1234, 80, b"hi", seq=1000)[:28])),
    ]
    dgram = udp.build_datagram(a, b, 5000, 6000, bytes(range(200)) * 8)

    def frag4(ident: int, offset: int, more: bool, data: bytes) -> bytes:
        return v4 + ipv4.build_header(a, b, len(data), protocol=17, identification=ident, mf=more,
                                      fragment_offset=offset // 8) + data

    # Last first; the first overlaps it by 8 bytes and completes the datagram; a middle
    # piece then comes too late (a new, never-completed datagram for tshark and for us).
    frames += [frag4(9, 800, False, dgram[800:]), frag4(9, 0, True, dgram[:808]),
               frag4(9, 400, True, dgram[400:800])]
    dgram6 = udp.build_datagram(a6, b6, 5000, 6000, bytes(range(100)) * 20)

    def frag6(offset: int, more: bool, data: bytes) -> bytes:
        return (_eth(0x86DD) + ipv6.build_header(a6, b6, 8 + len(data), next_header=44)
                + ipv6.build_fragment_header(17, offset, more, 0xABC) + data)

    frames += [frag6(1000, False, dgram6[1000:]), frag6(0, True, dgram6[:1000])]
    tail: list[bytes] = []  # appended after the frames below, so earlier numbers stay put
    # Overlaps tshark reassembles all the same: IPv6 pieces sharing 8 identical bytes (RFC
    # 5722 would drop the datagram), and IPv4 whose middle piece disagrees with the first
    # on 8 bytes before the last piece completes it (the conflict shows on the last frame).
    tail += [(_eth(0x86DD) + ipv6.build_header(a6, b6, 8 + 1008, next_header=44)
              + ipv6.build_fragment_header(17, 0, True, 0xDEF) + dgram6[:1008]),
             (_eth(0x86DD) + ipv6.build_header(a6, b6, 8 + len(dgram6) - 1000, next_header=44)
              + ipv6.build_fragment_header(17, 1000, False, 0xDEF) + dgram6[1000:])]
    tail += [frag4(10, 0, True, dgram[:512]), frag4(10, 504, True, b"\xee" * 8 + dgram[512:1024]),
             frag4(10, 1024, False, dgram[1024:])]
    quoted = stack.udp_packet(a6, b6, 999, 9, b"query")
    frames += [
        _icmpv6_frame(a6, b6, struct.pack("!BBHI16s", 135, 0, 0, 0, b6)),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI16s", 136, 0, 0, 0x60000000, b6)),
        _icmpv6_frame(a6, b6, icmpv6.build_echo(a6, b6, 7, 1, b"x")),
        _icmpv6_frame(b6, a6, icmpv6.build_echo(b6, a6, 7, 1, b"x", reply=True)),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI", 1, 4, 0, 0) + quoted),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI", 2, 0, 0, 1280) + quoted),
        v4 + stack.ip_packet(a, b, 1, icmp.build_echo(0x11, 6, b"abcdefgh")),  # repeats frame 2
    ]
    t0 = 1_700_000_000_000_000_000
    # Linux ping's data: a 16-byte struct timeval (the send time, little-endian), then
    # 0x10, 0x11, … (iputils ping's fill pattern), 56 bytes in all.
    for seq in (1, 2):
        sent = t0 + len(frames) * 1_000_000 - 7_000
        body = struct.pack("<qq", sent // 10**9, sent // 1000 % 10**6) + bytes(range(0x10, 0x38))
        frames.append(v4 + stack.ip_packet(a, b, 1, icmp.build_echo(0x4321, seq, body)))
        frames.append(v4 + stack.ip_packet(b, a, 1, icmp.build_echo(0x4321, seq, body, reply=True)))
    # Neighbor Discovery as hosts send it: link-layer address options (NS/RS "from", NA/RA
    # "is at"), an MLDv2 report, a Redirect, and the errors with lower-case code names.
    mac_a, mac_b = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    slla, tlla = bytes([1, 1]) + mac_a, bytes([2, 1]) + mac_b
    routers, nodes = ipv6.addr("ff02::2"), ipv6.addr("ff02::1")
    no_next = ipv6.build_header(a6, b6, 0, next_header=59)
    tail += [
        _icmpv6_frame(a6, b6, struct.pack("!BBHI16s", 135, 0, 0, 0, b6) + slla),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI16s", 136, 0, 0, 0xE0000000, b6) + tlla),
        _icmpv6_frame(a6, routers, struct.pack("!BBHI", 133, 0, 0, 0) + slla),
        _icmpv6_frame(a6, routers, struct.pack("!BBHI", 133, 0, 0, 0)),
        _icmpv6_frame(b6, nodes, struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + tlla),
        _icmpv6_frame(a6, ipv6.addr("ff02::16"), struct.pack("!BBHHH", 143, 0, 0, 0, 1)
                      + struct.pack("!BBH16s", 4, 0, 0, ipv6.addr("ff02::1:ff00:1"))),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI16s16s", 137, 0, 0, 0, b6, a6)),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI", 3, 0, 0, 0) + no_next),
        _icmpv6_frame(b6, a6, struct.pack("!BBHI", 4, 1, 0, 40) + no_next),
    ]
    # TCP whose 2000-byte data segment crosses the network in fragments (IPv4, then IPv6):
    # the completing fragment carries the segment into the TCP analysis, as in tshark.
    from tcplab.packet import tcp

    for cli, srv, port in ((a, b, 40010), (a6, b6, 40011)):
        # A 2000-byte request with no body (a long header instead), so HTTP ends in it.
        head = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: "
        body = head + b"z" * (2000 - len(head) - 4) + b"\r\n\r\n"
        c, s_ = 5000, 9000
        for src, dst, sp, dp, seq, ack, flags, data in (
                (cli, srv, port, 80, c, 0, tcp.SYN, b""), (srv, cli, 80, port, s_, c + 1, tcp.SYN | tcp.ACK, b""),
                (cli, srv, port, 80, c + 1, s_ + 1, tcp.ACK, b"")):
            tail.append((v4 if len(src) == 4 else _eth(0x86DD))
                        + stack.tcp_packet(src, dst, sp, dp, data, seq=seq, ack=ack, flags=flags))
        segment = tcp.build_segment(cli, srv, port, 80, body, seq=c + 1, ack=s_ + 1, flags=tcp.PSH | tcp.ACK)
        if len(cli) == 4:
            tail += [v4 + ipv4.build_header(cli, srv, 1480, protocol=6, identification=77, mf=True)
                     + segment[:1480],
                     v4 + ipv4.build_header(cli, srv, len(segment) - 1480, protocol=6, identification=77,
                                            fragment_offset=1480 // 8) + segment[1480:]]
        else:
            tail += [_eth(0x86DD) + ipv6.build_header(cli, srv, 8 + 1232, next_header=44)
                     + ipv6.build_fragment_header(6, 0, True, 0x77) + segment[:1232],
                     _eth(0x86DD) + ipv6.build_header(cli, srv, 8 + len(segment) - 1232, next_header=44)
                     + ipv6.build_fragment_header(6, 1232, False, 0x77) + segment[1232:]]
        tail.append((v4 if len(cli) == 4 else _eth(0x86DD))
                    + stack.tcp_packet(srv, cli, 80, port, b"", seq=s_ + 1, ack=c + 1 + len(body), flags=tcp.ACK))
    # The other ICMP types, for their Info wording (packet-icmp.c pads the type to 20 columns).
    from tcplab.packet.checksum import internet_checksum

    def icmp4(kind: int, code: int, rest: int, body: bytes = b"") -> bytes:
        msg = struct.pack("!BBHI", kind, code, 0, rest) + body
        msg = msg[:2] + internet_checksum(msg).to_bytes(2, "big") + msg[4:]
        return v4 + stack.ip_packet(a, b, 1, msg)

    said = stack.udp_packet(a, b, 1000, 2000, b"x" * 20)[:28]
    tail += [icmp4(13, 0, (5 << 16) | 1, struct.pack("!III", 1, 2, 3)),
             icmp4(14, 0, (5 << 16) | 1, struct.pack("!III", 1, 2, 3)),
             icmp4(5, 1, int.from_bytes(b, "big"), said), icmp4(4, 0, 0, said),
             icmp4(12, 0, 0x14000000, said), icmp4(3, 4, 1400, said), icmp4(3, 1, 0, said),
             icmp4(9, 0, 0x01020708, bytes([10, 0, 0, 1, 0, 0, 0, 0])), icmp4(10, 0, 0),
             icmp4(42, 0, 0), icmp4(17, 0, (6 << 16) | 2, b"\0" * 4)]
    frames += tail
    with PcapWriter(HERE / "network-crafted.pcap", 1) as w:
        for i, f in enumerate(frames):
            w.write(f, t0 + i * 1_000_000)


def pppoe_http() -> None:
    from tcplab.packet import ipv4, ipv6, pppoe, stack, tcp
    from tcplab.pcap import PcapWriter

    # Discovery first (RFC 2516 §5): PADI broadcast, PADO from the access concentrator
    # (with its AC-Name), PADR, PADS giving session 0x2a; PADT closes it at the end.
    def discovery(code: int, session: int, tags: bytes, dst: bytes = bytes.fromhex("020000000002")) -> bytes:
        body = struct.pack("!BBHH", 0x11, code, session, len(tags)) + tags
        return (dst + bytes.fromhex("020000000001") + struct.pack("!H", pppoe.ETHERTYPE_DISCOVERY)
                + body).ljust(60, b"\x00")

    service = struct.pack("!HH", 0x0101, 3) + b"dsl" + struct.pack("!HH", 0x0103, 4) + b"\x12\x34\x56\x78"
    frames = [discovery(0x09, 0, service, b"\xff" * 6),
              discovery(0x07, 0, service + struct.pack("!HH", 0x0102, 3) + b"isp"),
              discovery(0x19, 0, service), discovery(0x65, 0x2A, service)]
    client4, server4 = ipv4.addr("10.1.1.2"), ipv4.addr("198.51.100.80")
    client6, server6 = ipv6.addr("2001:db8::2"), ipv6.addr("2001:db8::80")
    for sport, (cli, srv), path in ((40001, (client4, server4), "/a"), (40002, (client4, server4), "/b"),
                                    (40003, (client6, server6), "/c")):
        req = f"GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode()
        resp = b"HTTP/1.1 204 No Content\r\n\r\n"
        c, s = 1000 * sport, 7000
        syn = tcp.SYN
        segs = [
            (cli, srv, sport, 80, b"", c, 0, syn),
            (srv, cli, 80, sport, b"", s, c + 1, syn | tcp.ACK),
            (cli, srv, sport, 80, b"", c + 1, s + 1, tcp.ACK),
            (cli, srv, sport, 80, req, c + 1, s + 1, tcp.PSH | tcp.ACK),
            (srv, cli, 80, sport, resp, s + 1, c + 1 + len(req), tcp.PSH | tcp.ACK),
            (cli, srv, sport, 80, b"", c + 1 + len(req), s + 1 + len(resp), tcp.FIN | tcp.ACK),
            (srv, cli, 80, sport, b"", s + 1 + len(resp), c + 2 + len(req), tcp.FIN | tcp.ACK),
            (cli, srv, sport, 80, b"", c + 2 + len(req), s + 2 + len(resp), tcp.ACK),
        ]
        for src, dst, sp, dp, data, seq, ack, flags in segs:
            packet = stack.tcp_packet(src, dst, sp, dp, data, seq=seq, ack=ack, flags=flags, window=29200)
            proto = pppoe.PPP_IPV4 if len(src) == 4 else pppoe.PPP_IPV6
            frames.append(_eth(pppoe.ETHERTYPE_SESSION) + pppoe.build_session(0x2A, proto, packet))
        frames.append(_eth(pppoe.ETHERTYPE_SESSION)
                      + pppoe.build_session(0x2A, 0xC021, b"\x09\x01\x00\x08\x12\x34\x56\x78"))
    frames.append(discovery(0xA7, 0x2A, b""))
    with PcapWriter(HERE / "pppoe-http.pcap", 1) as w:
        for i, f in enumerate(frames):
            w.write(f, 1_700_000_000_000_000_000 + i * 2_000_000)


def l2tp_crafted() -> None:
    from tcplab.packet import dns, ipv4, ipv6, l2tp, ppp, stack, tcp
    from tcplab.pcap import PcapWriter

    lac, lns = ipv4.addr("192.0.2.10"), ipv4.addr("192.0.2.20")
    lac6, lns6 = ipv6.addr("2001:db8:1::10"), ipv6.addr("2001:db8:1::20")

    def tunnel(message: bytes, back: bool = False, six: bool = False) -> bytes:
        a, b = (lac6, lns6) if six else (lac, lns)
        src, dst = (b, a) if back else (a, b)
        return _eth(0x86DD if six else 0x0800) + stack.udp_packet(src, dst, 1701, 1701, message)

    def avps(kind: int, *more: bytes) -> bytes:
        return l2tp.avp(0, struct.pack("!H", kind)) + b"".join(more)

    version = l2tp.avp(2, b"\x01\x00")
    frames = [
        # Control connection and session set-up (RFC 2661 §5.1, §5.2.2), each answered.
        tunnel(l2tp.build_control(0, 0, 0, 0, avps(1, version, l2tp.avp(7, b"lac"),
                                                    l2tp.avp(9, b"\x00\x07")))),
        tunnel(l2tp.build_control(7, 0, 0, 1, avps(2, version, l2tp.avp(9, b"\x00\x09"))), back=True),
        tunnel(l2tp.build_control(9, 0, 1, 1, avps(3))),
        tunnel(l2tp.build_control(7, 0, 1, 2), back=True),  # ZLB
        tunnel(l2tp.build_control(9, 0, 2, 1, avps(10, l2tp.avp(14, b"\x00\x03")))),
        tunnel(l2tp.build_control(7, 3, 1, 3, avps(11, l2tp.avp(14, b"\x00\x05"))), back=True),
        tunnel(l2tp.build_control(9, 5, 3, 2, avps(12))),
        # PPP inside the session: LCP negotiation and echo, IPCP.
        tunnel(l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_LCP, b"\x01\x01\x00\x0a\x05\x06\x12\x34\x56\x78"))),
        tunnel(l2tp.build_data(7, 3, ppp.build_frame(ppp.PPP_LCP, b"\x02\x01\x00\x0a\x05\x06\x12\x34\x56\x78")),
               back=True),
        tunnel(l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_LCP, b"\x09\x02\x00\x08\xca\xfe\xba\xbe"),
                               sequence=(0, 0))),
        tunnel(l2tp.build_data(7, 3, ppp.build_frame(ppp.PPP_LCP, b"\x0a\x02\x00\x08\x0b\xad\xf0\x0d"),
                               length=True), back=True),
        tunnel(l2tp.build_data(9, 5, ppp.build_frame(0x8021, b"\x01\x01\x00\x0a\x03\x06\x00\x00\x00\x00"))),
        tunnel(l2tp.build_control(9, 0, 4, 3, avps(6))),  # Hello
    ]
    # An HTTP exchange in the session over IPv4 (inner ip.* doubles the outer's), one
    # segment each with the length, sequence or offset field, compressed address/control
    # or a one-byte protocol number.
    cli, srv = ipv4.addr("10.64.0.2"), ipv4.addr("198.51.100.7")
    req = b"GET /tunnel HTTP/1.1\r\nHost: example.test\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    c, s = 5000, 9000
    segs = [(cli, srv, 41000, 80, b"", c, 0, tcp.SYN),
            (srv, cli, 80, 41000, b"", s, c + 1, tcp.SYN | tcp.ACK),
            (cli, srv, 41000, 80, b"", c + 1, s + 1, tcp.ACK),
            (cli, srv, 41000, 80, req, c + 1, s + 1, tcp.PSH | tcp.ACK),
            (srv, cli, 80, 41000, resp, s + 1, c + 1 + len(req), tcp.PSH | tcp.ACK),
            (cli, srv, 41000, 80, b"", c + 1 + len(req), s + 1 + len(resp), tcp.FIN | tcp.ACK),
            (srv, cli, 80, 41000, b"", s + 1 + len(resp), c + 2 + len(req), tcp.FIN | tcp.ACK),
            (cli, srv, 41000, 80, b"", c + 2 + len(req), s + 2 + len(resp), tcp.ACK)]
    shapes = [{}, {"length": True}, {"sequence": (1, 0)}, {"offset_pad": b"\x00\x00"}, {}, {}, {}, {}]
    for i, ((src, dst, sp, dp, data, seq, ack, flags), shape) in enumerate(zip(segs, shapes, strict=True)):
        packet = stack.tcp_packet(src, dst, sp, dp, data, seq=seq, ack=ack, flags=flags, window=29200)
        if i == 4:
            body = b"\x21" + packet  # Protocol-Field-Compression, address and control kept
            pppf = b"\xff\x03" + body
        elif i == 5:
            pppf = ppp.build_frame(ppp.PPP_IPV4, packet, compress_address=True)
        else:
            pppf = ppp.build_frame(ppp.PPP_IPV4, packet)
        back = src == srv
        frames.append(tunnel(l2tp.build_data(7 if back else 9, 3 if back else 5, pppf, **shape), back=back))
    # DNS over IPv6 in the tunnel (inner udp.* doubles the outer's), the tunnel itself on IPv6.
    c6, s6 = ipv6.addr("2001:db8:64::2"), ipv6.addr("2001:db8:53::53")
    query = dns.build_query(0x4242, "example.test", dns.TYPE_A)
    frames.append(tunnel(l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_IPV6, stack.udp_packet(c6, s6, 53000, 53, query)))))
    answer = dns.build_response(0x4242, "example.test", "192.0.2.99")
    frames.append(tunnel(l2tp.build_data(7, 3, ppp.build_frame(ppp.PPP_IPV6, stack.udp_packet(s6, c6, 53, 53000, answer))),
                         back=True))
    frames.append(tunnel(l2tp.build_data(9, 5, ppp.build_frame(ppp.PPP_IPV4, stack.udp_packet(cli, srv, 40000, 9, b"x" * 40))),
                         six=True))
    # Damage: a Length field past the datagram, an AVP overrunning its message, an unknown
    # message type, a PPP frame with no protocol left; then L2TPv3 and the tunnel's end.
    frames.append(tunnel(struct.pack("!HHHH", 0xC802, 400, 9, 0) + b"\x00" * 8))
    frames.append(tunnel(l2tp.build_control(9, 0, 5, 3, struct.pack("!HHH", 0x8000 | 40, 0, 0) + b"\x00\x06")))
    frames.append(tunnel(l2tp.build_control(9, 0, 6, 3, avps(99))))
    frames.append(tunnel(l2tp.build_data(9, 5, b"\xff\x03")))
    frames.append(tunnel(struct.pack("!HHI", 0xC003, 12, 0) + b"\x00" * 4))
    frames.append(tunnel(l2tp.build_control(9, 0, 7, 3, avps(14, l2tp.avp(1, b"\x00\x03"))), back=False))
    frames.append(tunnel(l2tp.build_control(7, 0, 3, 8, avps(4, l2tp.avp(1, b"\x00\x01"))), back=True))
    with PcapWriter(HERE / "l2tp-crafted.pcap", 1) as w:
        for i, f in enumerate(frames):
            w.write(f, 1_700_000_100_000_000_000 + i * 3_000_000)


def main() -> None:
    if "--crafted" in sys.argv:
        sys.path.insert(0, str(HERE.parent.parent / "src"))
        network_crafted()
        pppoe_http()
        l2tp_crafted()
        return
    if "--inside" not in sys.argv:
        if os.geteuid() != 0:
            sys.exit("needs root (network namespace, raw sockets, tcpdump)")
        in_netns()
        return
    sys.path.insert(0, str(HERE.parent.parent / "src"))
    if "--only" in sys.argv:  # e.g. --only udp_fragments: one scenario, the others untouched
        globals()[sys.argv[sys.argv.index("--only") + 1]]()
        return
    icmp()
    udp_fragments()
    tls("1.2")
    tls("1.3")
    dns_tcp()
    http_any()


if __name__ == "__main__":
    main()
