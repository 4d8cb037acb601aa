"""The new protocol layers agree with tshark 4.0 on real loopback traffic (tests/data/) and crafted frames.

tests/data/make_captures.py made the capture files: kernel-fragmented ICMP echoes and
port-unreachable errors over IPv4 and IPv6, curl against ``openssl s_server`` over TLS
1.2 and 1.3, DNS over TCP (two queries in one segment, one split across two), and
``tcpdump -i any``. For every frame, tcplab.packet's values are compared with tshark's
fields of the same name.
"""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

from tcplab.packet import defrag, dns, icmp, icmpv6, ipv4, ipv6, link, pppoe, stack, tcp, tls, udp
from tcplab.pcap import PcapWriter
from tests.fidelity.oracle import DATA, network_layers, tshark_fields
from tests.support import require_tshark

LO4 = ipv4.addr("127.0.0.1")
LO6 = ipv6.addr("::1")


def test_icmp_and_icmpv6_fields_and_quoted_headers() -> None:
    fields = ("icmp.type", "icmp.code", "icmp.ident", "icmp.seq", "udp.srcport", "udp.dstport",
              "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number",
              "_ws.col.Info")
    theirs = {int(r["frame.number"]): r for r in tshark_fields(DATA / "icmp-lo.pcap", *fields)}
    seen = {4: 0, 6: 0}
    pairs = icmp.EchoPairs()
    for number, rec, version, ip, off in network_layers(DATA / "icmp-lo.pcap"):
        t = theirs[number]
        if version == 4 and ip.protocol == icmp.PROTOCOL_NUMBER and not ip.is_fragment:
            msg = icmp.parse(rec.data, off + ip.header_length, off + ip.total_length)
            assert (str(msg.icmp_type), str(msg.code)) == (t["icmp.type"], t["icmp.code"]), number
            assert icmp.verify_checksum(rec.data[off + ip.header_length : off + ip.total_length]).good
            if msg.identifier is not None:
                assert (str(msg.identifier), str(msg.sequence)) == (t["icmp.ident"], t["icmp.seq"])
                info = msg.summary(ip.ttl)
                if msg.icmp_type == icmp.ECHO_REQUEST:
                    pairs.request(ip.src, ip.dst, msg.identifier, msg.sequence, number)
                else:
                    info += f" (request in {pairs.reply(ip.src, ip.dst, msg.identifier, msg.sequence)})"
                assert t["_ws.col.Info"] == info
            if msg.is_error:
                # The quoted IP + UDP header: tshark's second udp layer.
                q = msg.quoted
                assert q is not None and q.ip.src_str == "127.0.0.1"
                assert (str(q.src_port), str(q.dst_port)) == (t["udp.srcport"], t["udp.dstport"])
                assert t["_ws.col.Info"] == msg.summary() == "Destination unreachable (Port unreachable)"
            seen[4] += 1
        elif version == 6 and ip.upper_protocol == icmpv6.PROTOCOL_NUMBER and not (
                ip.fragment and ip.fragment.is_fragment):  # a first fragment waits for the rest
            start = off + ip.upper_offset
            msg6 = icmpv6.parse(rec.data, start, off + 40 + ip.payload_length)
            assert (str(msg6.icmp_type), str(msg6.code)) == (t["icmpv6.type"], t["icmpv6.code"]), number
            assert icmpv6.verify_checksum(ip.src, ip.dst, rec.data[start : off + 40 + ip.payload_length]).good
            if msg6.identifier is not None:
                assert f"0x{msg6.identifier:04x}" == t["icmpv6.echo.identifier"]
                assert str(msg6.sequence) == t["icmpv6.echo.sequence_number"]
                info = msg6.summary(ip.hop_limit)
                if msg6.icmp_type == icmpv6.ECHO_REQUEST:
                    pairs.request(ip.src, ip.dst, msg6.identifier, msg6.sequence, number)
                else:
                    info += f" (request in {pairs.reply(ip.src, ip.dst, msg6.identifier, msg6.sequence)})"
                assert t["_ws.col.Info"] == info
            if msg6.is_error:
                assert msg6.quoted is not None and msg6.quoted_ports is not None
                assert (str(msg6.quoted_ports[0]), str(msg6.quoted_ports[1])) == \
                    (t["udp.srcport"], t["udp.dstport"])
                assert t["_ws.col.Info"] == msg6.summary() == "Destination Unreachable (Port unreachable)"
            seen[6] += 1
    assert seen == {4: 5, 6: 5}


def test_fragments_and_reassembly_like_tshark() -> None:
    """Kernel-made IPv4 and IPv6 fragments: header fields, and which frame completes what."""
    fields = ("ip.frag_offset", "ip.flags.mf", "ip.fragment", "ip.reassembled.length",
              "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident", "ipv6.fraghdr.nxt",
              "ipv6.fragment", "ipv6.reassembled.length")
    theirs = {int(r["frame.number"]): r for r in tshark_fields(DATA / "icmp-lo.pcap", *fields)}
    d = defrag.Defragmenter()
    completed = {}
    for number, rec, version, ip, off in network_layers(DATA / "icmp-lo.pcap"):
        t = theirs[number]
        if version == 4:
            assert str(ip.fragment_offset) == t["ip.frag_offset"].split(",")[0]  # 8-byte units
            if ip.is_fragment:
                start = off + ip.header_length
                out = d.feed_ipv4(ip, rec.data[start : off + ip.total_length], rec.timestamp_ns, number)
                if out.status == "complete":
                    completed[number] = out.datagram
        elif version == 6 and ip.fragment is not None:
            f = ip.fragment
            assert (str(f.offset_units), str(int(f.more)), f"0x{f.identification:08x}", str(f.next_header)) \
                == (t["ipv6.fraghdr.offset"], t["ipv6.fraghdr.more"], t["ipv6.fraghdr.ident"],
                    t["ipv6.fraghdr.nxt"])
            start = off + ip.upper_offset
            out = d.feed_ipv6(ip.src, ip.dst, f, rec.data[start : off + 40 + ip.payload_length],
                              rec.timestamp_ns, number)
            assert out.status in ("held", "complete")
            if out.status == "complete":
                completed[number] = out.datagram
    expected = {}
    for number, t in theirs.items():
        for key in ("ip", "ipv6"):
            if t[f"{key}.reassembled.length"]:
                expected[number] = ([int(n) for n in t[f"{key}.fragment"].split(",")],
                                    int(t[f"{key}.reassembled.length"]))
    assert {n: ([tag for tag, _o, _l in dg.fragments], len(dg.payload)) for n, dg in completed.items()} \
        == expected
    assert len(expected) == 4 and d.pending == 0 and d.buffered_bytes == 0
    # The reassembled echoes are whole ICMP messages with good checksums.
    for dg in completed.values():
        if dg.version == 4:
            msg = icmp.parse(dg.payload)
            assert msg.sequence == 3 and icmp.verify_checksum(dg.payload).good
        else:
            msg6 = icmpv6.parse(dg.payload)
            assert msg6.sequence == 3 and len(dg.payload) == 3008


def _tcp_payloads(path):
    """(frame number, direction key, payload) for every TCP segment with data, in capture order."""
    for number, rec, version, ip, off in network_layers(path):
        if version == 4 and ip.protocol == 6:
            l4, end = off + ip.header_length, off + ip.total_length
        elif version == 6 and ip.upper_protocol == 6:
            l4, end = off + ip.upper_offset, off + 40 + ip.payload_length
        else:
            continue
        seg = tcp.parse(rec.data, l4)
        data = rec.data[l4 + seg.header_length : end]
        yield number, (ip.src, seg.src_port, ip.dst, seg.dst_port), data


@pytest.mark.parametrize("name", ["tls12-lo.pcap", "tls13-lo.pcap"])
def test_tls_records_and_info_like_tshark(name: str) -> None:
    fields = ("tls.record.content_type", "tls.record.opaque_type", "tls.record.version", "tls.record.length", "tls.handshake.type",
              "tls.handshake.extensions_server_name", "_ws.col.Info")
    theirs = {int(r["frame.number"]): r for r in tshark_fields(DATA / name, *fields)}
    streams: dict[tuple, tls.RecordStream] = {}
    checked = 0
    for number, key, data in _tcp_payloads(DATA / name):
        t = theirs[number]
        if not data:
            continue
        stream = streams.setdefault(key, tls.RecordStream())
        records = stream.feed(data)
        assert stream.broken is None
        # TLS 1.3 ciphertext records are tshark's opaque_type; they follow the clear ones.
        types = ",".join(x for x in (t["tls.record.content_type"], t["tls.record.opaque_type"]) if x)
        assert ",".join(str(r.content_type) for r in records) == types, number
        assert ",".join(f"0x{r.version:04x}" for r in records) == t["tls.record.version"]
        assert ",".join(str(r.length) for r in records) == t["tls.record.length"]
        words = [w for r in records for w in stream.describe(r)]
        assert ", ".join(words) == t["_ws.col.Info"], number
        if "Encrypted Handshake Message" not in words:
            hs = [str(h.handshake_type) for r in records if r.content_type == tls.HANDSHAKE
                  for h in tls.handshake_headers(r.fragment)]
            assert ",".join(hs) == t["tls.handshake.type"], number
        for r in records:
            if r.content_type == tls.HANDSHAKE and r.fragment[0] == tls.CLIENT_HELLO:
                assert tls.client_hello_server_name(r.fragment[4:]) == \
                    t["tls.handshake.extensions_server_name"] == "localhost"
        checked += 1
    assert checked >= 8 and all(not s.pending for s in streams.values())


def test_dns_over_tcp_framing_like_tshark() -> None:
    theirs = {int(r["frame.number"]): r["dns.id"] for r in tshark_fields(DATA / "dns-tcp-lo.pcap", "dns.id")}
    framers: dict[tuple, dns.TcpFramer] = {}
    ours = {}
    for number, key, data in _tcp_payloads(DATA / "dns-tcp-lo.pcap"):
        messages = framers.setdefault(key, dns.TcpFramer()).feed(data)
        ours[number] = ",".join(f"0x{int.from_bytes(m[:2], 'big'):04x}" for _o, m in messages)
    assert {n: v for n, v in ours.items() if v} == {n: v for n, v in theirs.items() if v}
    assert ours[4] == "0x1001,0x1002" and ours[10] == "" and ours[12] == "0x1003"


def test_linux_cooked_any_capture_reaches_tcp() -> None:
    rows = tshark_fields(DATA / "http-any-sll2.pcap", "tcp.srcport", "tcp.len")
    ours = []
    for _number, key, data in _tcp_payloads(DATA / "http-any-sll2.pcap"):
        ours.append((str(key[1]), str(len(data))))
    assert ours == [(r["tcp.srcport"], r["tcp.len"]) for r in rows]


def test_pppoe_session_frames_reach_ip_like_tshark(tmp_path) -> None:
    """PPPoE session frames (what DSL captures such as dpkt's nb6-http.pcap hold)."""
    path = tmp_path / "pppoe.pcap"
    with PcapWriter(path, link.LINKTYPE_ETHERNET) as w:
        for i, (sid, proto, packet) in enumerate([
            (0x1234, pppoe.PPP_IPV4, stack.tcp_packet(LO4, LO4, 40000, 80, b"GET / HTTP/1.1\r\n\r\n")),
            (0x1234, pppoe.PPP_IPV6, stack.ip_packet(LO6, LO6, 17, udp.build_datagram(LO6, LO6, 5000, 53, b"x" * 12))),
            (0x0001, 0xC021, b"\x09\x01\x00\x08\x12\x34\x56\x78"),  # LCP echo request
        ]):
            eth = struct.pack("!6s6sH", b"\x00\x11\x22\x33\x44\x55", b"\x66\x77\x88\x99\xaa\xbb",
                              pppoe.ETHERTYPE_SESSION)
            w.write(eth + pppoe.build_session(sid, proto, packet) + b"\x00" * (i * 3), 10**18 + i)
    rows = tshark_fields(path, "pppoe.session_id", "ppp.protocol", "ip.src", "ipv6.src", "tcp.dstport",
                         "udp.dstport")
    ours = []
    for _number, rec, version, ip, _off in network_layers(path):
        hdr = link.parse(rec.linktype, rec.data)
        ours.append((f"0x{hdr.fields['PPPoE Session ID']:04x}", f"0x{hdr.fields['PPP Protocol']:04x}",
                     version, ip.src_str if ip else None))
    assert [(o[0], o[1]) for o in ours] == [(r["pppoe.session_id"], r["ppp.protocol"]) for r in rows]
    assert [o[3] for o in ours] == [r["ip.src"] or r["ipv6.src"] or None for r in rows]
    assert rows[0]["tcp.dstport"] == "80" and rows[1]["udp.dstport"] == "53"


def _frag4(ident: int, offset: int, more: bool, data: bytes, proto: int = 17) -> bytes:
    return ipv4.build_header(LO4, LO4, len(data), protocol=proto, identification=ident, mf=more,
                             fragment_offset=offset // 8) + data


def test_ipv4_out_of_order_and_overlapping_fragments_like_tshark(tmp_path) -> None:
    """Reversed order and an overlap whose bytes differ: the same completing frame and bytes."""
    payload = udp.build_datagram(LO4, LO4, 5000, 6000, bytes(range(256)) * 8)  # 2056 bytes
    frames = [
        _frag4(7, 1024, False, payload[1024:]),
        _frag4(7, 512, True, payload[512:1024]),
        _frag4(7, 0, True, payload[:512]),
        _frag4(8, 0, True, payload[:1032]),
        _frag4(8, 1024, False, b"\xee" * 8 + payload[1032:]),  # overlaps 8 bytes, differently
    ]
    path = tmp_path / "frag4.pcap"
    with PcapWriter(path, link.LINKTYPE_RAW) as w:
        for i, f in enumerate(frames):
            w.write(f, 10**18 + i * 1000)
    rows = tshark_fields(path, "ip.fragment", "ip.reassembled.length", "ip.fragment.overlap",
                         "ip.fragment.overlap.conflict", "udp.length")
    d = defrag.Defragmenter()
    done = {}
    for number, rec, _v, ip, off in network_layers(path):
        out = d.feed_ipv4(ip, rec.data[off + ip.header_length : off + ip.total_length], rec.timestamp_ns, number)
        if out.datagram is not None:
            done[number] = (out.datagram, out.conflict)
    theirs = {int(r["frame.number"]): r for r in rows if r["ip.reassembled.length"]}
    assert sorted(done) == sorted(theirs) == [3, 5]
    exe = require_tshark()
    for number, (dg, conflict) in done.items():
        t = theirs[number]
        detail = subprocess.run([exe, "-r", str(path), "-V", "-Y", f"frame.number == {number}"],
                                capture_output=True, text=True, timeout=60).stdout
        listed = [(int(f), int(a), int(n)) for f, a, n in
                  re.findall(r"\[Frame: (\d+), payload: (\d+)-\d+ \((\d+) bytes\)\]", detail)]
        assert list(dg.fragments) == listed
        assert str(len(dg.payload)) == t["ip.reassembled.length"]
        assert conflict == (t["ip.fragment.overlap.conflict"] == "1")
    assert done[5][0].payload == payload  # the first bytes won


def test_analyze_reaches_tcp_inside_pppoe(tmp_path) -> None:
    """Through link.parse the analyzer already dissects IP in PPPoE (dpkt's nb6-http.pcap case)."""
    import contextlib
    import io
    import json

    from tcplab.cli import main

    path = tmp_path / "pppoe-http.pcap"
    with PcapWriter(path, link.LINKTYPE_ETHERNET) as w:
        for i, (sport, payload) in enumerate([(40000, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
                                              (40001, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")]):
            packet = stack.tcp_packet(LO4, LO4, sport, 80, payload, seq=1000, ack=1)
            eth = b"\x02" * 6 + b"\x04" * 6 + b"\x88\x64"
            w.write(eth + pppoe.build_session(0x0042, pppoe.PPP_IPV4, packet), 10**18 + i * 1000)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(path), "--json"]) == 0
    ours = [json.loads(line) for line in out.getvalue().splitlines()]
    theirs = tshark_fields(path, "tcp.stream", "tcp.srcport", "_ws.col.Info")
    assert [(str(d["tcp.stream"]), str(d["tcp.srcport"]), d["_ws.col.Info"]) for d in ours] == \
        [(t["tcp.stream"], t["tcp.srcport"], t["_ws.col.Info"].rstrip()) for t in theirs]


def test_analyze_numbers_pcapng_edge_frames_as_tshark(tmp_path) -> None:
    """Custom blocks are frames, odd block lengths are read, untimed SPBs never show negative times."""
    import contextlib
    import io

    from tcplab.cli import main
    from tests.pcap import craft
    from tests.pcap.captools import sample_frame

    t0 = 1_700_000_000_000_000
    odd = sample_frame(3)
    body = struct.pack("<IIIII", 0, (t0 + 3) >> 32, (t0 + 3) & 0xFFFFFFFF, len(odd), len(odd))
    total = 12 + len(body) + len(odd)  # the length leaves the data's padding out
    odd_epb = struct.pack("<II", 6, total) + body + craft.pad4(odd) + struct.pack("<I", total)
    data = (craft.shb() + craft.idb() + craft.epb(sample_frame(0), ts=t0)
            + craft.block(0x0BAD, struct.pack("<I", 32473) + b"custom!!") + craft.spb(sample_frame(1))
            + craft.epb(sample_frame(2), ts=t0 + 2) + odd_epb
            + craft.block(0x40000BAD, struct.pack("<I", 32473) + b"private\x00"))
    path = tmp_path / "edges.pcapng"
    path.write_bytes(data)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(path)]) == 0
    lines = out.getvalue().splitlines()[1:]
    theirs = tshark_fields(path, "frame.len", "frame.time_relative", "_ws.col.Protocol")
    assert [int(line.split()[0]) for line in lines] == [int(t["frame.number"]) for t in theirs]
    assert [line.split()[-1] if "Non-IP" in line else None for line in lines].count("frame") == 0
    assert sum(" PCAPNG " in line for line in lines) == 2  # tshark's Protocol for custom blocks
    assert [t["_ws.col.Protocol"] for t in theirs].count("PCAPNG") == 2
    # Frames without a time of their own (SPB, custom blocks) have an empty Time column, as
    # in tshark; the others never run backwards.
    shown = [line[7:18].strip() for line in lines]
    assert [bool(t) for t in shown] == [bool(t["frame.time_relative"]) for t in theirs]
    times = [float(t) for t in shown if t]
    assert min(times) >= 0 and times == sorted(times)
