"""Nickname policy: which names may be used, and when two names are "the same".

A nickname is shown to everyone in front of that user's words (``Alice: hi``) and in
every ``ONLINE_USERS`` list, so a name must be what it looks like. The rules follow the
spirit of RFC 8265 (PRECIS ``UsernameCaseMapped``) and UTS #39 (confusable skeletons),
kept small enough to read; ``docs/protocol.md`` states them for users:

* only visible characters: no control, format (zero-width, bidi), private-use,
  unassigned or default-ignorable code points, no blank fillers (U+3164, U+2800), and
  no space other than U+0020 — an invisible character lets ``System`` + U+200D or
  ``Alice`` + U+200B pass for the real one;
* at least one letter or digit, and no leading combining mark;
* nothing that renders like ``:`` or ``,`` (they delimit the protocol) and no leading
  character that renders like ``*`` (the broadcast mark) or ``/`` (commands);
* Latin, Cyrillic, Greek, Armenian and Cherokee letters are not mixed in one name (UTS
  #39's "moderately restrictive" level): ``Alіce`` with a Cyrillic ``і`` is refused
  outright;
* uniqueness and the reserved names are judged on the **skeleton** — NFKC, look-alike
  mapping, case folding, stray combining marks on Latin/Cyrillic/Greek letters dropped,
  runs of spaces as one — so ``Alice``, ``ＡＬＩＣＥ``, ``AIice``
  (capital I) and ``Аlice`` (Cyrillic А) are one name and only one of them can be online.

Pure functions over strings; no I/O. The look-alike tables are data in
:mod:`tcplab.chat.confusables`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from tcplab.chat.confusables import (
    ASTERISK_LIKE,
    COLON_LIKE,
    COMMA_LIKE,
    LOWER,
    SEQUENCES,
    UPPER,
)

#: Nickname length in characters (code points), as the course rules demand.
MAX_NICK_CHARS = 32
#: Names nobody may take (compared on the skeleton), so nobody can pose as the server or as
#: a protocol keyword.
RESERVED_NAMES = ("System", "ONLINE_USERS", "online", "all", "*", "everyone", "server",
                  "admin", "root")

#: Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt): code points
#: that render as nothing at all. Python's unicodedata does not expose it.
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
#: Blank characters that are ordinary letters or symbols to Unicode yet show as nothing.
_BLANK = frozenset("\u2800\u3000\u1680\U0001d159")
#: General categories never allowed: controls, format, surrogates, private use, unassigned,
#: line and paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SPACES = re.compile(r" +")
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")
#: Scripts whose letters carry no combining mark NFC cannot fold in (see _drop_stray_marks).
_PRECOMPOSED_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
_STAR_WORDS = frozenset({"STAR", "STARS", "ASTERISK", "ASTERISKS"})


def _fold(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(ch, ch) for ch in text)


@lru_cache(maxsize=4096)
def skeleton(name: str) -> str:
    """The identity of a nickname: two names with the same skeleton look alike.

    NFKC folds compatibility forms (full-width ``Ａ``, mathematical ``𝐀``, ligatures),
    then look-alikes map to their prototypes before and after case folding, invisible
    characters drop out and runs of spaces count as one. Cached: the server asks for the
    same few names again and again (targets of messages).
    """
    text = _DEFAULT_IGNORABLE.sub("", unicodedata.normalize("NFKC", name))
    # (UPPER twice: case folding turns Cherokee small letters into the capitals it maps)
    text = _fold(_fold(_fold(text, UPPER).casefold(), UPPER).casefold(), LOWER)
    for seq, proto in SEQUENCES:
        text = text.replace(seq, proto)
    text = unicodedata.normalize("NFC", text)
    if any(unicodedata.category(ch) == "Mn" for ch in text):
        text = _drop_stray_marks(text)
    return _SPACES.sub(" ", text).strip()


def _drop_stray_marks(text: str) -> str:
    """Without the combining marks left on Latin, Cyrillic or Greek letters after NFC.

    A mark with a precomposed form (``é``) is part of its letter by then and stays; one
    without (``e`` + U+0332 COMBINING LOW LINE, ``c`` + U+0323 DOT BELOW) is a faint
    smudge on a name it would otherwise copy. Marks on other scripts' letters are how
    those scripts write (Hebrew points, Devanagari vowel signs) and stay.
    """
    out: list[str] = []
    base_script: str | None = None
    for ch in text:
        if unicodedata.category(ch) == "Mn":
            if base_script in _PRECOMPOSED_SCRIPTS:
                continue
        else:
            base_script = _script(ch)
        out.append(ch)
    return "".join(out)


_RESERVED = frozenset(skeleton(n) for n in RESERVED_NAMES)


def _script(ch: str) -> str | None:
    """LATIN, CYRILLIC or GREEK for a letter of one of those scripts, else None."""
    name = unicodedata.name(ch, "")
    for script in _CONFUSABLE_SCRIPTS:
        if name.startswith(script):
            return script
    return None


def nick_problem(nick: str) -> str | None:
    """Explain why ``nick`` cannot be used, or return None when it is acceptable."""
    if not nick:
        return "A nickname cannot be empty."
    if len(nick) > MAX_NICK_CHARS:
        return f"A nickname has at most {MAX_NICK_CHARS} characters."
    if nick[0] == " " or nick[-1] == " ":
        return "A nickname cannot start or end with a space."
    letters = False
    scripts: set[str] = set()
    for ch in nick:
        if ch == ":" or ch in COLON_LIKE:
            return "A nickname cannot contain ':' or anything that looks like it."
        if ch == "," or ch in COMMA_LIKE:
            return "A nickname cannot contain ',' or anything that looks like it."
        cat = unicodedata.category(ch)
        if cat in _BAD_CATEGORIES:
            return ("A nickname cannot contain control characters."
                    if cat == "Cc" or ch in "\u2028\u2029" else
                    "A nickname cannot contain invisible control, format, private-use or "
                    f"unassigned characters (U+{ord(ch):04X}).")
        if (cat == "Zs" and ch != " ") or ch in _BLANK or _DEFAULT_IGNORABLE.match(ch):
            return f"A nickname cannot contain invisible or blank characters (U+{ord(ch):04X})."
        if cat[0] in "LN":
            letters = True
            if cat[0] == "L":
                script = _script(ch)
                if script is not None:
                    scripts.add(script)
    first = nick[0]
    if (first == "*" or first in ASTERISK_LIKE or unicodedata.normalize("NFKC", first) == "*"
            or (unicodedata.category(first)[0] in "SP"
                and _STAR_WORDS & set(unicodedata.name(first, "").replace("-", " ").split()))):
        return "A nickname cannot start with '*' or anything that looks like it."
    if first == "/":
        return "A nickname cannot start with '/'."
    if unicodedata.category(first)[0] == "M":
        return "A nickname cannot start with a combining mark."
    if not letters:
        return "A nickname needs at least one letter or digit."
    if len(scripts) > 1:
        return ("A nickname cannot mix " + " and ".join(s.title() for s in sorted(scripts))
                + " letters (they look alike).")
    key = skeleton(nick)
    if key in _RESERVED:
        return f"The name {nick!r} is reserved."
    if ":" in key or "," in key:  # a compatibility form of a separator NFKC revealed
        return "A nickname cannot contain ':' or ',' or anything that looks like them."
    return None
