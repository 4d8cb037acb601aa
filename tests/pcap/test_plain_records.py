"""``open_capture(plain=True)``: the same records as plain tuples, damage raised the same way."""

from __future__ import annotations

import pytest

from tcplab.pcap import CaptureFormatError, Record, open_capture
from tests.analyze.golden.make_golden import HERE as GOLDEN

CAPTURES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng"))


def _read(path, plain):
    got, error = [], None
    with open_capture(path, plain=plain) as reader:
        try:
            got.extend(reader)
        except CaptureFormatError as exc:
            error = str(exc)
    return got, error


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_plain_tuples_hold_the_same_fields(path):
    records, error = _read(path, plain=False)
    tuples, plain_error = _read(path, plain=True)
    assert records and all(type(r) is not tuple for r in records)
    assert tuples == records  # field for field, in Record's order
    assert plain_error == error
    if path.suffix == ".pcap":
        assert all(type(t) is tuple for t in tuples)
    else:  # pcapng: Records either way
        assert all(isinstance(t, Record) for t in tuples)
    if path.name.startswith("cut"):
        assert error is not None  # so the damage comparison above can fail
