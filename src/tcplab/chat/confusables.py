"""Look-alike characters, as data: which characters a reader cannot tell from which.

A hand-picked subset of Unicode's ``confusables.txt`` (UTS #39, "Unicode Security
Mechanisms") for the scripts a chat of this course meets — Latin, Cyrillic, Greek and
Armenian letters that look like Latin ones, digits that look like letters, and every
character that renders like the protocol's separators ``:`` and ``,`` or the broadcast
mark ``*``. Full-width and mathematical forms need no entry: NFKC folds them first.
The full table has ~6,000 lines; this one keeps the few hundred characters that matter
here so nothing is downloaded and the module stays readable.

Each map sends a character to its *prototype*, the character it is mistaken for.
Keys are single code points; values are short strings (``rn`` looks like ``m``, so the
skeleton replaces sequences too). No logic here: :mod:`tcplab.chat.nickname` uses it.
"""

from __future__ import annotations


def _pairs(spec: str) -> dict[str, str]:
    """``"аa еe"`` → {"а": "a", "е": "e"}: first character the look-alike, rest the prototype."""
    return {item[0]: item[1:] for item in spec.split()}


#: Upper-case look-alikes, applied *before* case folding: Cyrillic ``В`` looks like Latin
#: ``B`` but folds to ``в``, which does not look like ``b``.
UPPER = _pairs(
    # Cyrillic capitals
    "АA ВB ЕE ЅS ІI ЈJ КK МM НH ОO РP СC ТT УY ХX ҮY ԚQ ԜW ӀI"
    # Greek capitals
    " ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX"
    # Armenian and Cherokee capitals that copy Latin shapes
    " ՕO ՍU ՏS ԼL ᎪA ᏴB ᏟC ᎠD ᎬE ᎻH ᏆI ᎫJ ᏦK ᏞL ᎷM ᏢP ᏚS ᎢT ᏙV ᏔW ᏃZ ᎾO ᏒR ᎩY ᏀG ᎳW ᏕS Ꮒh ᏏB"
    # Cyrillic capital soft sign: a Latin small b
    " Ьb"
    # Latin capital I is small l in most sans-serif fonts
    " Il"
)

#: Lower-case look-alikes, applied after case folding.
LOWER = _pairs(
    # Cyrillic small letters
    "аa вʙ еe ёë һh іl їï јj кĸ ӏl оo рp сc ԁd ѕs ԛq ԝw хx уy үy ґr ɡg"
    # Cyrillic small letters shaped like Latin small capitals (т ᴛ, м ᴍ, н ʜ, г ᴦ, ь ʙ)
    " тt мm нh гr ьb"
    # Greek small letters
    " αa βß γy ιl κĸ νv οo ρp σo τt υu χx ϲc ϳj ϵe"
    # Armenian small letters
    " օo ոn սu հh ցg զq"
    # Latin look-alikes: dotless i, long s, script g, small capitals, digits as letters
    " ıl ſf ɑa ɩl ɪl ʟl ᴏo ᴄc ᴠv ᴡw ᴢz 0o 1l |l ǀl ɵo ꞵß"
    # and since capital I is l while case folding makes it i, small i joins the same class:
    # "AIice", "ALICE" and "Alice" are one name (at the price of "Alice" = "Allce")
    " il"
)

#: Sequences that read as one letter (after the maps above).
SEQUENCES = (("rn", "m"), ("vv", "w"))

#: Everything that renders like ``:`` — a name containing one could forge the ``Sender:``
#: boundary (``System꞉ Server is shutting down`` with U+A789).
COLON_LIKE = frozenset(
    "\u02d0\u02f8\u0589\u05c3\u0703\u0704\u0903\u0a83\u1361\u16ec\u1803\u1809\u205a"
    "\u2236\u2e35\ua4fd\ua6f4\ua789\ufe13\ufe30\ufe55\uff1a\U0001d108"
)

#: Everything that renders like ``,`` — it would split a name in ``ONLINE_USERS``.
COMMA_LIKE = frozenset(
    "\u00b8\u02cf\u055d\u060c\u066b\u07f8\u1802\u1808\u201a\u201e\u2e32\u2e34\u2e41"
    "\u3001\ua4f9\ufe10\ufe11\ufe50\ufe51\uff0c\uff64"
)

#: Everything that renders like ``*`` — a name starting with one looks like a broadcast.
ASTERISK_LIKE = frozenset(
    "\u066d\u204e\u2055\u2217\u2731\u2732\u2733\u2734\u2735\u2736\u2737\u2738\u2739\u273a"
    "\u273b\u273c\u273d\u2743\u2749\u274a\u274b\ua673\ufe61\uff0a\U0001f7af"
    # stars and asterisk-shaped signs (the name rule also refuses any leading symbol whose
    # Unicode name says STAR or ASTERISK)
    "\u2051\u2605\u2606\u2722\u2726\u2727\u229b\u22c6\u26b9"
)
