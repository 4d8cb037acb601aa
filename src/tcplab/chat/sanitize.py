"""Make peer-supplied text safe to print on a terminal.

A chat message, a nickname or a server notice is hostile input: an ``ESC [2J`` clears
the reader's screen, an OSC sequence can set the window title or (on some terminals)
write to the clipboard, a carriage return can overwrite what was printed before it, and
right-to-left overrides can make one name display as another. Every front end passes
peer text through :func:`sanitize` before showing it. Pure string work: no I/O here.
"""

from __future__ import annotations

import re

# ESC-introduced sequences, removed whole so no fragment of them reaches the terminal:
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings (ESC P/X/^/_ ... ST),
# and two-character escapes (ESC + one byte). The 8-bit CSI/OSC forms (U+009B, U+009D) too.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b.?",
    re.DOTALL,
)
# Remaining C0 controls except TAB, DEL, C1 controls, and the bidi overrides/isolates that
# reorder text on screen (Hebrew displays correctly without them).
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Shown in place of a control character so the reader sees that something was removed.
REPLACEMENT = "\ufffd"


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences, each removed whole (CSI, OSC, DCS, …), so
    no fragment such as ``[2J`` is left to show; other control characters stay."""
    return _ESCAPES.sub("", text)


def sanitize(text: str) -> str:
    """Return ``text`` without terminal escape sequences or control characters."""
    if text.isprintable():  # the common case: nothing to do
        return text
    text = strip_escapes(text)
    return _CONTROLS.sub(REPLACEMENT, text).replace("\t", " ")
