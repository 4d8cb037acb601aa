"""Hand-built pcap/pcapng bytes for tests, written independently of tcplab.pcap's writers.

Each helper lays the fields down exactly as the format documents show them, so a reader
test does not rely on the writer it is testing.
"""

from __future__ import annotations

import struct


def pcap_header(endian: str = "<", magic: int = 0xA1B2C3D4, snaplen: int = 65535,
                linktype: int = 1, version: tuple[int, int] = (2, 4)) -> bytes:
    return struct.pack(endian + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)


def pcap_record(data: bytes, sec: int = 0, frac: int = 0, endian: str = "<",
                caplen: int | None = None, orig_len: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    orig_len = len(data) if orig_len is None else orig_len
    return struct.pack(endian + "IIII", sec, frac, caplen, orig_len) + data


def pad4(raw: bytes) -> bytes:
    return raw + b"\x00" * (-len(raw) % 4)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + pad4(value)


def options(items: list[tuple[int, bytes]], endian: str = "<") -> bytes:
    if not items:
        return b""
    return b"".join(option(c, v, endian) for c, v in items) + struct.pack(endian + "HH", 0, 0)


def block(btype: int, body: bytes, endian: str = "<", length: int | None = None,
          trailer: int | None = None) -> bytes:
    total = 12 + len(body)
    return (struct.pack(endian + "II", btype, total if length is None else length) + body
            + struct.pack(endian + "I", total if trailer is None else trailer))


def shb(endian: str = "<", opts: list[tuple[int, bytes]] | None = None,
        version: tuple[int, int] = (1, 0)) -> bytes:
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, *version, -1) + options(opts or [], endian)
    return block(0x0A0D0D0A, body, endian)


def idb(linktype: int = 1, snaplen: int = 0, endian: str = "<",
        opts: list[tuple[int, bytes]] | None = None) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, snaplen) + options(opts or [], endian)
    return block(1, body, endian)


def epb(data: bytes, ts: int = 0, ifid: int = 0, endian: str = "<", orig_len: int | None = None,
        opts: list[tuple[int, bytes]] | None = None, caplen: int | None = None) -> bytes:
    body = struct.pack(endian + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen,
                       len(data) if orig_len is None else orig_len)
    return block(6, body + pad4(data) + options(opts or [], endian), endian)


def spb(data: bytes, orig_len: int | None = None, endian: str = "<") -> bytes:
    body = struct.pack(endian + "I", len(data) if orig_len is None else orig_len) + pad4(data)
    return block(3, body, endian)


def packet_block(data: bytes, ts: int = 0, ifid: int = 0, endian: str = "<") -> bytes:
    """The obsolete Packet Block (type 2)."""
    body = struct.pack(endian + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return block(2, body + pad4(data), endian)
