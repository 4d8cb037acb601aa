"""The RESP codec: byte-exact encoding, incremental parsing, bounds on hostile replies."""

from __future__ import annotations

import pytest

from tcplab.chat.cluster import resp
from tcplab.chat.cluster.resp import RespError, RespParser, RespProtocolError, encode


def test_encode_is_binary_safe() -> None:
    assert encode("SET", "k", b"a\r\nb", 5) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$1\r\n5\r\n"
    assert encode("X", "é") == b"*2\r\n$1\r\nX\r\n$2\r\n\xc3\xa9\r\n"
    with pytest.raises(ValueError):
        encode()
    with pytest.raises(TypeError):
        encode("SET", True)  # type: ignore[arg-type]


REPLIES = (b"+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*-1\r\n*0\r\n"
           b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*2\r\n:1\r\n$0\r\n\r\n")
EXPECTED = ["OK", RespError("ERR wrong"), 42, b"he\r\nl", None, None, [],
            [b"message", b"ch", [1, b""]]]


def test_parse_all_types_at_once_and_byte_by_byte() -> None:
    assert RespParser().feed(REPLIES) == EXPECTED
    p = RespParser()
    got = []
    for i in range(len(REPLIES)):
        got += p.feed(REPLIES[i:i + 1])
    assert got == EXPECTED
    assert p.buffered == 0


def test_every_split_point() -> None:
    for cut in range(len(REPLIES) + 1):
        p = RespParser()
        assert p.feed(REPLIES[:cut]) + p.feed(REPLIES[cut:]) == EXPECTED, cut


def test_large_reply_in_many_chunks() -> None:
    items = [b"x" * 10] * 50_000
    data = b"*%d\r\n" % len(items) + b"".join(b"$10\r\n" + i + b"\r\n" for i in items)
    p = RespParser()
    got = []
    for i in range(0, len(data), 4096):
        got += p.feed(data[i:i + 4096])
    assert got == [items]


@pytest.mark.parametrize("bad", [
    b"?what\r\n", b"\r\n", b":12x\r\n", b"$-2\r\n", b"*-5\r\n",
    b"$%d\r\n" % (resp.MAX_BULK + 1), b"*%d\r\n" % (resp.MAX_ARRAY + 1),
    b"$3\r\nabcXY", b"*1\r\n" * (resp.MAX_DEPTH + 1) + b":1\r\n",
    b"+" + b"a" * (resp.MAX_LINE + 10),
])
def test_hostile_replies_raise(bad: bytes) -> None:
    with pytest.raises(RespProtocolError):
        RespParser().feed(bad)


def test_against_a_real_redis() -> None:
    from tests.cluster.redis_support import redis_server

    with redis_server() as r:
        assert r.command("SET", "k", b"\x00\r\n\xff") == "OK"
        assert r.command("GET", "k") == b"\x00\r\n\xff"
        assert r.command("GET", "missing") is None
        assert r.command("RPUSH", "l", "a", "b") == 2
        assert r.command("LRANGE", "l", 0, -1) == [b"a", b"b"]
        assert isinstance(r.command("NOSUCHCOMMAND"), RespError)
