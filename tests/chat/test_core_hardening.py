"""The hardening rules of the sans-IO core, driven with byte strings and a fake clock:
nickname skeletons, text cleaning, uncoded System lines, huge lists, password throttling."""

from __future__ import annotations

import pytest

from tcplab.chat.client import LoggedIn, SystemNotice, parse_server_line
from tcplab.chat.nickname import nick_problem, skeleton
from tcplab.chat.protocol import (
    PASS_DELAY_MAX,
    ChatCore,
    Close,
    Code,
    Limits,
    ListLine,
    clean_text,
    guess_code,
    password_delay,
)
from tests.chat.test_hardening import HOSTILE


def outputs_for(out, conn):
    return [item for cid, item in out if cid == conn]


# -- nicknames -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
def test_every_hostile_name_is_invalid_or_the_same_as_alice(name):
    assert nick_problem(name) is not None or skeleton(name) == skeleton("Alice"), name


@pytest.mark.parametrize("a, b", [
    ("Alice", "ALICE"), ("Alice", "Ａｌｉｃｅ"), ("Alice", "AIice"), ("Alice", "Аlice"),
    ("Alice", "𝐀𝐥𝐢𝐜𝐞"), ("Bob", "B0b"), ("Britney Spears", "Britney  Spears"),
    ("Paris", "Ρaris"), ("modern", "rnodern"), ("System", "Ѕуѕtеm"),
    # Cyrillic soft sign, Cherokee capitals and small letters, Cyrillic small capitals
    ("Bob", "ВоЬ"), ("Tom", "ᎢᎾᎷ"), ("Tom", "ꭲꮎꮇ"), ("Ezra", "ᎬᏃᏒᎪ"), ("System", "ѕуѕтем"),
    ("System", "ᏚᎩᏚᎢᎬᎷ"),
    # a faint mark that has no precomposed letter: a smudge on a copied name
    ("Alice", "Alice\u0332"), ("Alice", "Alic\u0323e"),
])
def test_look_alikes_share_a_skeleton(a, b):
    assert skeleton(a) == skeleton(b)


@pytest.mark.parametrize("a, b", [("Alice", "Alicia"), ("דני", "דנה"), ("Zoë", "Zoe"),
                                  ("Иван", "Ivan"), ("José", "Jose"), ("गुप्ता", "गपता")])
def test_different_names_keep_different_skeletons(a, b):
    assert skeleton(a) != skeleton(b)


@pytest.mark.parametrize("name", ["ՏYՏTEM", "ᏴoB", "⋆ Bob", "★Bob", "☆Bob", "✦Bob", "⊛Bob",
                                  "⚹Bob", "✢Bob", "⁑Bob", "\U0001f7b1Bob"])
def test_mixed_scripts_and_star_signs_are_refused(name):
    """Armenian or Cherokee letters mixed with Latin ones (ՏYՏTEM would pass for SYSTEM),
    and a leading star of any kind (a private message from '⋆ Bob' reads as a broadcast)."""
    assert nick_problem(name) is not None


def test_problems_say_what_is_wrong():
    assert "mix" in nick_problem("Alіce")  # Cyrillic і among Latin letters
    assert "letter or digit" in nick_problem("🎉🎉")
    assert "':'" in nick_problem("System\ua789 x")
    assert "','" in nick_problem("a\u201ab")
    assert "'*'" in nick_problem("\uff0aAlice")
    assert "invisible" in nick_problem("Alice\u200b")
    assert "reserved" in nick_problem("ＳＹＳＴＥＭ")
    assert nick_problem("Dana 😀") is None and nick_problem("🎉 party 2026") is None


# -- relayed text --------------------------------------------------------------------------

def test_clean_text_fast_path_returns_the_same_object():
    text = b"plain ascii text with a tab\tand punctuation: ok!"
    assert clean_text(text) is text
    hebrew = "שלום 😀 \u200f".encode()
    assert clean_text(hebrew) is hebrew


def test_clean_text_removes_escapes_whole_and_marks_other_controls():
    raw = "a\rb\x00c\x1b[2J\x7f\u0085\u2028\u202e\u2066".encode()
    assert clean_text(raw).decode() == "a\ufffdb\ufffdc" + "\ufffd" * 5


def test_target_echo_in_401_is_cleaned():
    core = ChatCore(Limits(rate=0))
    core.connect(1, 0.0)
    core.receive(1, b"Alice\n", 0.0)
    (line,) = outputs_for(core.receive(1, b"\x1b]0;pwn\x07: hi\n", 1.0), 1)
    assert b"\x1b" not in line and b"\x07" not in line


# -- the seed's wording and codes ----------------------------------------------------------

def test_default_is_the_seed_wording_codes_on_request():
    core = ChatCore(Limits(rate=0))
    core.connect(1, 0.0)
    assert core.receive(1, b"NoGui_User\n", 0.0)[0] == (
        1, b"System: Welcome, NoGui_User! Usage: 'TargetName: Your Message'; "
           b"'*: Message' for everyone.\n")
    assert core.receive(1, b":Hello!\n", 0.0) == [(1, b"System: Name or message cannot be empty.\n")]
    assert core.receive(1, b"/codes on\n:Hello!\n", 0.0) == [
        (1, b"System: 204 Numeric codes on.\n"),
        (1, b"System: 412 Name or message cannot be empty.\n")]


@pytest.mark.parametrize("text, code", [
    ("Welcome, Alice! Usage: 'TargetName: Your Message'", Code.WELCOME),
    ("Name or message cannot be empty.", Code.NO_TEXT),
    ("Invalid format! Use: TargetName: Message", Code.NO_RECIPIENT),
    ("User 'Ghost' is not connected.", Code.NO_SUCH_NICK),
    ("Nickname 'Alice' is already taken. Choose another nickname.", Code.NICK_IN_USE),
    ("The name 'System' is reserved. Choose another nickname.", Code.BAD_NICK),
    ("Nickname already taken. Choose another.", Code.NICK_IN_USE),  # the report's server
    ("Password required: send '/pass <password>' before the nickname.", Code.PASSWORD),
    ("Server full (3 clients); try later.", Code.SERVER_FULL),
    ("Too many connections from your address (3); try later.", Code.TOO_MANY_FROM_ADDRESS),
    ("Server is shutting down.", Code.SHUTTING_DOWN),
    ("3 message(s) to 'Slow' not delivered: Slow was disconnected.", Code.NOT_DELIVERED),
    ("Britney Spears joined.", Code.JOINED), ("Paris Hilton left.", Code.LEFT),
    ("Something new.", 0),
])
def test_uncoded_lines_get_their_code_from_the_wording(text, code):
    assert guess_code(text) == code
    assert parse_server_line("System: " + text) == SystemNotice(code, text)


def test_client_core_sends_codes_on_first():
    from tcplab.chat.client import ChatClient
    from tests.chat.helpers import running_server

    with running_server(limits=Limits(rate=0, password="pw")) as server:
        client = ChatClient(*server.address, password="pw")
        client.start()
        client.login("Alice")
        assert isinstance(client.wait_for(LoggedIn), LoggedIn)
        sess = next(s for s in server.core.sessions.values() if s.nick == "Alice")
        assert sess.codes
        client.close()


# -- online lists at 10,000 users × 32 characters ------------------------------------------

def test_ten_thousand_long_emoji_names_make_one_list_per_request_and_no_more():
    core = ChatCore(Limits(rate=0))
    names = [f"{i:04d}" + "😀" * 28 for i in range(10_000)]  # 32 characters, 116 bytes
    for i, name in enumerate(names):
        core.connect(i, 0.0)
        core.receive(i, name.encode() + b"\n", 0.0)
    out = core.receive(0, b"/users\n/users\n", 1.0)
    assert [type(item) for _, item in out] == [ListLine, ListLine]
    assert out[0][1] is out[1][1]  # one shared object, never a copy per request
    assert len(out[0][1]) > 1_100_000 > 4 * 256 * 1024
    # The shell could not queue the second: the core owes one list, sent once drained.
    core.defer_list(0)
    assert core.due_lists(2.0, lambda c: False) == []
    sent = [item for cid, item in core.due_lists(2.1, lambda c: c == 0) if cid == 0]
    assert len(sent) == 1 and isinstance(sent[0], ListLine)
    assert [cid for cid, _ in core.due_lists(2.2, lambda c: c == 0)] == []


# -- password throttling -------------------------------------------------------------------

def test_password_delays_grow_and_are_capped():
    assert [password_delay(n) for n in range(1, 6)] == [0.0, 0.0, 1.0, 2.0, 4.0]
    assert password_delay(50) == PASS_DELAY_MAX


def test_throttled_attempt_waits_for_the_timer_and_held_lines_follow():
    core = ChatCore(Limits(rate=0, password="pw"))
    conn = 0
    for t in (0.0, 0.1, 0.2):  # three wrong guesses, answered at once
        conn += 1
        core.connect(conn, t, "10.0.0.1")
        out = core.receive(conn, b"/pass guess\n", t)
        assert isinstance(out[-1][1], Close)
    assert core._guesses["10.0.0.1"].next_allowed == pytest.approx(1.2)
    conn += 1
    core.connect(conn, 0.3, "10.0.0.1")
    assert core.receive(conn, b"/pass pw\nAlice\n", 0.3) == []  # waits its turn
    assert core.receive(conn, b"Bob: early\n", 0.5) == []  # held, in order
    assert core.timers(1.0) == []
    out = core.timers(1.25)
    assert outputs_for(out, conn)[0] == b"System: Password accepted.\n"
    assert outputs_for(out, conn)[1].startswith(b"System: Welcome, Alice!")
    assert b"System: User 'Bob' is not connected.\n" in outputs_for(out, conn)
    # Another address is never slowed down by this one.
    core.connect(99, 1.3, "10.0.0.2")
    assert outputs_for(core.receive(99, b"/pass nope\n", 1.3), 99)[0] == b"System: Wrong password.\n"


def test_too_many_waiting_attempts_are_refused_without_a_look():
    core = ChatCore(Limits(rate=0, password="pw"))
    for conn in range(1, 4):
        core.connect(conn, 0.0, "10.0.0.1")
        core.receive(conn, b"/pass x\n", 0.0)
    answers = []
    for conn in range(4, 14):
        core.connect(conn, 0.0, "10.0.0.1")
        answers.append(core.receive(conn, b"/pass pw\n", 0.0))
    assert answers[:8] == [[]] * 8
    assert answers[8][0][1] == b"System: Too many password attempts from your address; try again later.\n"


def test_guesses_are_forgotten_after_a_quiet_while_or_a_correct_password():
    core = ChatCore(Limits(rate=0, password="pw"))
    for conn in range(1, 4):
        core.connect(conn, 0.0, "10.0.0.1")
        core.receive(conn, b"/pass x\n", 0.0)
    core.idle(10_000.0)
    assert "10.0.0.1" not in core._guesses
    core.connect(9, 10_000.0, "10.0.0.1")
    core.receive(9, b"/pass x\n", 10_000.0)
    core.connect(10, 10_000.0, "10.0.0.1")
    core.receive(10, b"/pass pw\n", 10_000.0)
    assert "10.0.0.1" not in core._guesses


def test_controls_are_found_across_reads_and_beside_crlf_line_ends():
    core = ChatCore(Limits(rate=0))
    for conn, nick in ((1, b"Alice"), (2, b"Bob")):
        core.connect(conn, 0.0)
        core.receive(conn, nick + b"\n", 0.0)
    assert core.receive(1, b"Bob: half \x1b[2", 1.0) == []
    assert core.receive(1, b"J rest\n", 1.0) == [(2, b"Alice: half  rest\n")]
    assert core.receive(1, b"Bob: crlf is fine\r\nBob: a\rb\r\n", 1.0) == [
        (2, b"Alice: crlf is fine\n"), (2, "Alice: a\ufffdb\n".encode())]
    assert core.receive(1, "Bob: em — dash, “quotes”\n".encode(), 1.0) == [
        (2, "Alice: em — dash, “quotes”\n".encode())]
    assert core.receive(1, "Bob: over\u202eride\n".encode(), 1.0) == [
        (2, "Alice: over\ufffdride\n".encode())]
