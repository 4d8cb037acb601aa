"""How one nickname looks in every dialect, and why two users can never collide.

The native line protocol allows spaces in nicknames (the report's ``Britney Spears``);
IRC cannot carry a space in a nickname, and gives ``!``, ``@``, ``*``, ``?`` and a few
leading characters special meanings (the ``nick!user@host`` source, wildcard masks,
channel names, membership prefixes in ``NAMES``). :func:`irc_form` replaces each of them
with ``_``: IRC users see ``Britney_Spears``, and a message to ``Britney_Spears`` reaches
her because the chat core compares names on the folded form (:func:`fold`), so
``Britney Spears`` and ``Britney_Spears`` are the *same* name and cannot both be online.
That reservation is what makes the mapping reversible: among the users online, exactly
one has a given IRC form.

Pure string functions; no I/O, no imports from the rest of the chat (the core and every
dialect import this module).
"""

from __future__ import annotations

import re

#: Characters an IRC nickname cannot hold anywhere: the parameter separator, the
#: ``nick!user@host`` delimiters, mask wildcards, the target-list separator and the
#: trailing-parameter mark.
IRC_UNSAFE = frozenset(" !@*?,:")
#: Characters an IRC nickname cannot start with: channel types (``#``, ``&``), server/host
#: masks (``$``) and the membership prefixes clients strip from ``NAMES`` replies
#: (``@ + % ~``), so ``+Bob`` would otherwise show as a voiced ``Bob``.
IRC_UNSAFE_FIRST = frozenset("#&$@+%~")
#: What every unsafe character becomes.
IRC_SUBSTITUTE = "_"


_UNDERSCORES = re.compile("_{2,}")
_UNSAFE_TABLE = {ord(ch): IRC_SUBSTITUTE for ch in IRC_UNSAFE}


def irc_form(nick: str) -> str:
    """The nickname IRC clients see (and may send) for ``nick``; identity for IRC-safe names."""
    if not nick:
        return nick
    mapped = nick.translate(_UNSAFE_TABLE)
    if mapped[0] in IRC_UNSAFE_FIRST:
        mapped = IRC_SUBSTITUTE + mapped[1:]
    return mapped


def irc_safe(nick: str) -> bool:
    """True when ``nick`` can be used as it is on IRC (it is its own IRC form)."""
    return irc_form(nick) == nick


def fold(nick: str) -> str:
    """The part of a nickname's identity that dialects contribute: its IRC form, with runs
    of ``_`` as one (the core treats runs of spaces as one, so ``A  B``, ``A B``, ``A__B``
    and ``A_B`` must be one name too, whichever dialect a client speaks).

    The chat core applies its own normalisation (case, look-alikes) on top of this, so the
    uniqueness rule is one rule for every dialect.
    """
    return _UNDERSCORES.sub(IRC_SUBSTITUTE, irc_form(nick))
