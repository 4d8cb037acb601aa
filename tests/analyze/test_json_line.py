"""``render.json_line`` writes exactly what the ``json`` encoder writes for the same fields.

It lays each packet out from a %-format made once per key layout and value types (keys
encoded once); this holds the text to ``json.dumps`` of the trimmed fields on every golden
capture, with and without payload, and on the values that take the encoder's own path.
"""

from __future__ import annotations

import enum
import json

import pytest

from tcplab.analyze import analyze, render
from tests.analyze.golden.make_golden import HERE as GOLDEN

CAPTURES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng")
                  and not p.name.startswith("cut"))


def _reference(d: dict, payload: bool) -> str:
    out = {}
    for k, v in d.items():
        if k.startswith("_") and not k.startswith("_ws."):
            continue
        if isinstance(v, bytes | bytearray | memoryview):
            if not payload:
                continue
            v = bytes(v).hex(":")
        out[k] = v
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
@pytest.mark.parametrize("payload", [False, True])
def test_every_packet_as_the_encoder_writes_it(path, payload):
    dicts = list(analyze(path, payload=True))
    assert dicts
    for d in dicts:
        assert render.json_line(d, payload=payload) == _reference(d, payload)


class _Small(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("d", [
    {},
    {"a": float("nan"), "b": 1},
    {"a": float("inf")},
    {"a": -float("inf"), "b": "x"},
    {"n": None, "l": [1, 2, "x"], "t": True, "f": False, "i": 0, "x": 0.1},
    {"100%": "50%", "%d": "%s", "q": 'say "hi"\n\t\\', "u": "שלום ·AP·"},
    {"e": _Small.ONE, "nested": {"k": [None, 1.5]}},
    {"_raw": b"\x00\x01", "_ws.col.Info": "kept", "tcp.payload": b"\xff", "other": b"\x02"},
])
@pytest.mark.parametrize("payload", [False, True])
def test_values_that_take_the_encoders_own_path(d, payload):
    # Twice: the second time through the format made by the first.
    assert render.json_line(d, payload=payload) == _reference(d, payload)
    assert render.json_line(d, payload=payload) == _reference(d, payload)
