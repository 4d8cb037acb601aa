"""flags_text / flags_str: the strings tshark 4.0 prints (values copied from its output)."""

from __future__ import annotations

import pytest

from tcplab.packet import tcp


@pytest.mark.parametrize(
    ("flags", "text", "letters"),
    [
        (0x000, "<None>", "············"),
        (0x001, "FIN", "···········F"),
        (0x002, "SYN", "··········S·"),
        (0x012, "SYN, ACK", "·······A··S·"),
        (0x018, "PSH, ACK", "·······AP···"),
        (0x019, "FIN, PSH, ACK", "·······AP··F"),
        (0x014, "RST, ACK", "·······A·R··"),
        (0x0C2, "SYN, ECE, CWR", "····CE····S·"),
        (0x1FE, "SYN, RST, PSH, ACK, URG, ECE, CWR, AE", "···ACEUAPRS·"),
        (0x1FF, "FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE", "···ACEUAPRSF"),
        (0x200, "Reserved", "··R·········"),
        (0x257, "FIN, SYN, RST, ACK, ECE, Reserved", "··R··E·A·RSF"),
        (0xF9F, "FIN, SYN, RST, PSH, ACK, CWR, AE, Reserved", "RRRAC··APRSF"),
    ],
)
def test_flag_strings(flags: int, text: str, letters: str) -> None:
    assert tcp.flags_text(flags) == text
    assert tcp.flags_str(flags) == letters


def test_every_flag_has_one_letter_and_one_name() -> None:
    for bit in range(9):
        value = 1 << bit
        assert tcp.flags_str(value).count("·") == 11
        assert "," not in tcp.flags_text(value)
    assert len({tcp.flags_text(1 << b) for b in range(9)}) == 9
