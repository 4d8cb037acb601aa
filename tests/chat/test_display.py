"""The shared display helper: grapheme widths, wrapping before reordering, bidi decisions."""

from __future__ import annotations

import pytest
from bidi import get_display

from tcplab.chat.display import (
    base_direction,
    display_width,
    graphemes,
    layout,
    terminal_needs_bidi,
    visual,
    wrap,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


def test_zwj_family_is_one_cluster_two_cells() -> None:
    assert list(graphemes(f"a{FAMILY}b")) == ["a", FAMILY, "b"]
    assert display_width(FAMILY) == 2
    assert display_width("e\u0301") == 1  # combining accent adds no width
    assert display_width("\U0001f1ee\U0001f1f1") == 2  # a flag: two regional indicators
    assert display_width("שלום") == 4
    assert display_width("日本") == 4


@pytest.mark.parametrize("text,expected", [
    ("שלום world", "rtl"), ("hi שלום", "ltr"), ("123 שלום", "rtl"), ("", "ltr"), ("😀", "ltr"),
])
def test_base_direction_by_first_strong_character(text: str, expected: str) -> None:
    assert base_direction(text) == expected


def test_wrap_keeps_every_character_and_width() -> None:
    text = "שלום world זה טקסט ארוך מאוד 😀 " + FAMILY * 9 + " end"
    for width in (1, 3, 7, 12, 40):
        lines = wrap(text, width)
        assert all(display_width(ln) <= max(width, 2) for ln in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        assert all(FAMILY not in ln or ln.count("\u200d") % 2 == 0 for ln in lines)


def test_layout_wraps_in_logical_order_then_reorders_each_line() -> None:
    text = "שלום עולם זה משפט ארוך with English and 😀 inside"
    direction, lines = layout(text, 14)
    assert direction == "rtl"
    logical = wrap(text, 14)
    assert lines == [get_display(ln, base_dir="R") for ln in logical]
    assert visual("plain ascii") == "plain ascii"


def test_wrap_with_a_pixel_measure() -> None:
    lines = wrap("aaaa bbbb cccc", 45, measure=lambda s: 10 * len(s))
    assert lines == ["aaaa", "bbbb", "cccc"]


@pytest.mark.parametrize("env,expected", [
    ({"TERM": "xterm-256color", "TMUX": "/tmp/tmux-0/default,1,0"}, True),
    ({"TERM": "linux"}, True),
    ({"TERM": "screen-256color", "STY": "1.pts"}, True),
    ({"TERM": "xterm-256color", "VTE_VERSION": "7006"}, False),
    ({"TERM": "xterm-256color", "KONSOLE_VERSION": "220401"}, False),
    ({"TERM": "dumb"}, False),
])
def test_terminal_needs_bidi(env: dict[str, str], expected: bool) -> None:
    assert terminal_needs_bidi(env) is expected
