"""The IRC message codec against the ircdocs ``irc-parser-tests`` corpus, and the pieces of
the IRC dialect that are pure functions (line limits, text splitting, nickname mapping)."""

from __future__ import annotations

import parser_tests.data as parser_tests  # the irc-parser-tests corpus ([test] extra)
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.chat.irc import (
    MAX_MESSAGE,
    IrcParseError,
    Message,
    format_message,
    irc_nick_problem,
    parse,
    plain_text,
    server_line,
    text_lines,
)
from tcplab.chat.nickmap import irc_form, irc_safe
from tcplab.chat.protocol import nick_key


def _atoms(msg: Message) -> dict:
    return {"tags": msg.tags or None, "source": msg.source, "verb": msg.verb,
            "params": msg.params or None}


def _expected(atoms: dict) -> dict:
    return {"tags": atoms.get("tags") or None, "source": atoms.get("source"),
            "verb": atoms["verb"], "params": atoms.get("params") or None}


SPLIT = parser_tests.msg_split["tests"]
JOIN = parser_tests.msg_join["tests"]


@pytest.mark.parametrize("case", SPLIT, ids=[c["input"][:40] for c in SPLIT])
def test_msg_split_corpus(case):
    assert _atoms(parse(case["input"])) == _expected(case["atoms"])


@pytest.mark.parametrize("case", JOIN, ids=[c.get("desc", "")[:40] for c in JOIN])
def test_msg_join_corpus(case):
    atoms = case["atoms"]
    msg = Message(atoms["verb"], list(atoms.get("params") or []), atoms.get("source"),
                  dict(atoms.get("tags") or {}))
    assert format_message(msg) in case["matches"]


def test_corpus_is_not_empty():
    # A corpus that failed to load must not pass as "zero cases".
    assert len(SPLIT) >= 30 and len(JOIN) >= 10


@pytest.mark.parametrize("line", ["", "   ", "@a=b", "@a=b   ", ":src", ":src   "])
def test_lines_without_a_command_are_refused(line):
    with pytest.raises(IrcParseError):
        parse(line)


_param = st.text(st.characters(blacklist_characters="\x00\r\n ", blacklist_categories=("Cs",)),
                 min_size=1, max_size=20).filter(lambda p: p[0] != ":")


@given(verb=st.from_regex(r"[A-Z]{1,10}|[0-9]{3}", fullmatch=True),
       middle=st.lists(_param, max_size=5),
       last=st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)),
                    max_size=30),
       tags=st.dictionaries(st.from_regex(r"[a-z][a-z0-9/.-]{0,8}", fullmatch=True),
                            st.text(st.characters(blacklist_categories=("Cs",),
                                                  blacklist_characters="\x00"), max_size=8),
                            max_size=3))
def test_format_then_parse_round_trips(verb, middle, last, tags):
    msg = Message(verb, [*middle, last], "nick!user@host", tags)
    back = parse(format_message(msg))
    assert (back.verb, back.params, back.source, back.tags) == (verb, [*middle, last],
                                                                "nick!user@host", tags)


def test_server_lines_never_exceed_512_bytes():
    line = server_line("NOTICE", "alice", "é" * 600)
    assert len(line) <= MAX_MESSAGE and line.endswith(b"\r\n")
    line.decode()  # cut at a character boundary


@given(st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
               max_size=2000))
def test_long_text_is_split_into_lines_that_fit_and_lose_nothing(text):
    head = b":Britney_Spears!native@native.tcplab PRIVMSG alice :"
    raw = text.encode()
    data = text_lines(head, raw)
    lines = data.split(b"\r\n")
    assert lines.pop() == b""
    assert all(len(ln) + 2 <= MAX_MESSAGE and ln.startswith(head) for ln in lines)
    assert b"".join(ln[len(head):] for ln in lines) == raw
    for ln in lines:
        ln.decode()


def test_formatting_and_controls_are_removed_from_irc_text():
    assert plain_text(b"\x02bold\x02 \x0304,01red\x03 \x1ditalic\x1d\x0f") == b"bold red italic"
    assert plain_text(b"a\rb\x00c\x1b[2Jd\x7f") == b"abc[2Jd"
    assert plain_text(b"tab\tkept") == b"tab\tkept"


# --- nicknames ----------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "irc"), [
    ("Britney Spears", "Britney_Spears"),
    ("Paris Hilton", "Paris_Hilton"),
    ("NoGui_User", "NoGui_User"),
    ("a!b@c", "a_b_c"),
    ("#hash", "_hash"),
    ("+voice", "_voice"),
    ("mid#dle+", "mid#dle+"),
    ("שלום עולם", "שלום_עולם"),
    ("what?*", "what__"),
])
def test_irc_form(native, irc):
    assert irc_form(native) == irc
    assert irc_safe(irc)
    assert nick_key(native) == nick_key(irc)  # one identity: they can never coexist


def test_irc_side_nick_rules():
    assert irc_nick_problem("alice") is None
    assert irc_nick_problem("Britney_Spears") is None
    for bad in ["a!b", "a@b", "#chan", "+v", "x*", "q?", "x" * 33]:
        assert irc_nick_problem(bad) is not None, bad


def test_runs_of_spaces_and_underscores_are_one_name_across_dialects():
    assert nick_key("A  B") == nick_key("A B") == nick_key("A__B") == nick_key("a_b")
    assert nick_key("Ａ！Ｂ") == nick_key("a_b")  # full-width forms fold before the mapping
