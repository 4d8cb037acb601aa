"""Turn chat text into lines a screen can show: grapheme widths, wrapping, bidi order.

Text stays in *logical* order everywhere it is stored or sent (the wire, the client core,
history); this module is the one place that prepares it for a display that cannot do the
Unicode bidirectional algorithm itself — Tk on X11, tmux, the Linux console. The order of
work matters and is the reason this module exists: **wrap first, in logical order, then
reorder each displayed line** (UAX #9, rule L1–L4 apply per line). Reordering a whole
paragraph and then cutting it puts the end of a Hebrew sentence on the first line.

Both front ends use it: the CLI client (``--bidi``) measures in terminal cells, the GUI
passes a measuring function in pixels (``font.measure``). Pure string work, no I/O.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterator

from wcwidth import wcwidth

ZWJ = "\u200d"
VS16 = "\ufe0f"  # emoji presentation selector: the preceding character is drawn 2 cells wide

#: Bidi classes of strong characters (UAX #9 table 4).
_RTL_CLASSES = frozenset({"R", "AL"})


def base_direction(text: str) -> str:
    """``"rtl"`` or ``"ltr"``: the paragraph direction by the first strong character (UAX #9
    P2–P3), ``"ltr"`` when there is none — so ``"שלום world"`` is right-to-left and
    ``"hi שלום"`` left-to-right, as a bidi-aware terminal would decide."""
    for ch in text:
        cls = unicodedata.bidirectional(ch)
        if cls in _RTL_CLASSES:
            return "rtl"
        if cls == "L":
            return "ltr"
    return "ltr"


def has_rtl(text: str) -> bool:
    """True when any character is right-to-left (the cheap test before reordering)."""
    if text.isascii():
        return False
    return any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in text)


def _extends(ch: str) -> bool:
    """Characters that belong to the grapheme cluster before them (a practical subset of
    UAX #29: combining marks, variation selectors, emoji modifiers, ZWJ, tag characters)."""
    if ch == ZWJ or "\ufe00" <= ch <= "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return True
    if "\U000e0020" <= ch <= "\U000e007f":  # emoji tag sequences (subdivision flags)
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc")


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def graphemes(text: str) -> Iterator[str]:
    """Split ``text`` into user-perceived characters: ``👨‍👩‍👧`` (five code points joined by
    ZWJ) is one, a letter with its combining accent is one, a flag (two regional
    indicators) is one — what a cursor steps over and what a terminal draws as a unit."""
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        if _regional(text[i]) and j < n and _regional(text[j]):
            j += 1
        while j < n:
            ch = text[j]
            if _extends(ch):
                j += 1
                if ch == ZWJ and j < n:  # ZWJ glues the next character into this cluster
                    j += 1
                continue
            break
        yield text[i:j]
        i = j


def cluster_width(cluster: str) -> int:
    """Terminal cells of one grapheme cluster: the base character's width, 2 when an emoji
    presentation selector or a join makes it an emoji, never negative (controls count 0)."""
    base = cluster[0]
    w = wcwidth(base)
    if w < 0:
        return 0
    if len(cluster) > 1 and (VS16 in cluster or ZWJ in cluster or _regional(base)):
        return 2
    return w


def display_width(text: str) -> int:
    """Terminal cells ``text`` occupies, counted per grapheme cluster (``wcswidth`` counts
    each code point of a ZWJ sequence and disagrees with every terminal that joins them)."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(cluster_width(g) for g in graphemes(text))


def wrap(text: str, width: float, measure: Callable[[str], float] = display_width) -> list[str]:
    """Break ``text`` (logical order) into lines no wider than ``width`` as ``measure`` counts.

    Breaks at spaces when a word fits on a line, inside a word (between grapheme clusters,
    never inside one) when it does not. ``measure`` is terminal cells by default; the GUI
    passes its font's pixel measure. Always returns at least one line, and every line has at
    least one cluster, so a window narrower than one character still makes progress.
    """
    if width <= 0 or measure(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in _words(text):
        candidate = line + word
        if measure(candidate.rstrip(" ")) <= width:
            line = candidate
            continue
        if line.strip(" "):
            lines.append(line.rstrip(" "))
            line = ""
            word = word.lstrip(" ") or word
        if measure(word.rstrip(" ")) <= width:
            line = word
            continue
        for g in graphemes(word):  # a word longer than the line: cut between clusters
            if line and measure(line + g) > width:
                lines.append(line)
                line = ""
            line += g
    if line.strip(" ") or not lines:
        lines.append(line.rstrip(" "))
    return lines


def _words(text: str) -> Iterator[str]:
    """Words with the spaces that follow them, so joining them gives ``text`` back."""
    start = 0
    n = len(text)
    i = 0
    while i < n:
        if text[i] == " ":
            while i < n and text[i] == " ":
                i += 1
            yield text[start:i]
            start = i
        else:
            i += 1
    if start < n:
        yield text[start:]


def visual(line: str, base: str | None = None) -> str:
    """One *display line* reordered for a screen that draws characters left to right.

    ``base`` is ``"rtl"``/``"ltr"`` (the paragraph's direction, so every line of a wrapped
    Hebrew paragraph keeps it) or None to decide from this line. A left-to-right line
    without right-to-left characters is returned unchanged, without the cost of the
    algorithm (in a right-to-left paragraph even an English line moves its neutrals).
    """
    if base != "rtl" and not has_rtl(line):
        return line
    return _get_display()(line, base_dir="R" if (base or base_direction(line)) == "rtl" else "L")


def layout(text: str, width: float, measure: Callable[[str], float] = display_width
           ) -> tuple[str, list[str]]:
    """``(direction, visual_lines)`` for a paragraph: wrapped in logical order, then each
    line reordered; ``direction`` tells the caller to right-align (``"rtl"``) or not."""
    direction = base_direction(text)
    return direction, [visual(ln, direction) for ln in wrap(text, width, measure)]


_GET_DISPLAY: Callable[..., str] | None = None


def _get_display() -> Callable[..., str]:
    """python-bidi's ``get_display``: ``bidi.get_display`` since 0.5 (Rust core), the pure
    Python ``bidi.algorithm.get_display`` before; both take ``base_dir='L'|'R'``."""
    global _GET_DISPLAY
    if _GET_DISPLAY is None:
        try:
            from bidi import get_display
        except ImportError:  # python-bidi < 0.5
            from bidi.algorithm import get_display
        _GET_DISPLAY = get_display
    return _GET_DISPLAY


#: Terminals known to draw text strictly left to right (no bidi): reorder for them.
_NO_BIDI_TERMS = ("linux", "screen", "tmux", "vt100", "vt220", "xterm", "rxvt")


def terminal_needs_bidi(environ: dict[str, str] | None = None) -> bool:
    """``--bidi auto``: True when the terminal is known not to reorder right-to-left text.

    Under tmux or screen, on the Linux console and in xterm/rxvt the characters are drawn in
    the order received, so Hebrew would appear reversed; GNOME Terminal/VTE ≥ 0.58, Konsole
    and mlterm do bidi themselves and get logical order (reordering twice would reverse it
    again). VTE and Konsole announce themselves with ``VTE_VERSION``/``KONSOLE_VERSION``.
    """
    env = os.environ if environ is None else environ
    if env.get("TMUX") or env.get("STY"):
        return True
    if env.get("VTE_VERSION") or env.get("KONSOLE_VERSION") or env.get("MLTERM"):
        return False
    term = env.get("TERM", "")
    return term.startswith(_NO_BIDI_TERMS)


__all__ = [
    "base_direction", "cluster_width", "display_width", "graphemes", "has_rtl", "layout",
    "terminal_needs_bidi", "visual", "wrap",
]
