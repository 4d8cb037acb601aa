"""The sans-IO chat core driven with byte strings and a fake clock: no sockets."""

from __future__ import annotations

import pytest

from tcplab.chat.client import (
    BroadcastMessage,
    OnlineUsers,
    PrivateMessage,
    SystemNotice,
    parse_server_line,
    split_chat_input,
)
from tcplab.chat.protocol import (
    OVERLONG,
    ChatCore,
    Close,
    Limits,
    LineFramer,
    nick_key,
    nick_problem,
)
from tcplab.chat.sanitize import sanitize


def sent_to(outputs, conn):
    return [item for cid, item in outputs if cid == conn and isinstance(item, bytes)]


def connect(core, conn, now=0.0, codes=True, peer="127.0.0.1"):
    """Connect ``conn``; with ``codes`` it asks for numeric codes as tcplab's clients do."""
    core.connect(conn, now, peer)
    if codes:
        assert core.receive(conn, b"/codes on\n", now) == [(conn, b"System: 204 Numeric codes on.\n")]


def core_with(*nicks, limits=None):
    core = ChatCore(limits or Limits(rate=0))
    for i, nick in enumerate(nicks, start=1):
        connect(core, i)
        out = core.receive(i, nick.encode() + b"\n", 0.0)
        assert sent_to(out, i)[0].startswith(b"System: 001 Welcome")
    return core


# -- framing -------------------------------------------------------------------------------

def test_framer_reassembles_split_lines_and_multibyte_characters():
    framer = LineFramer()
    data = "Bob: שלום 😀\n".encode()
    got = []
    for i in range(len(data)):
        got += framer.feed(data[i:i + 1])
    assert got == ["Bob: שלום 😀".encode()]
    assert got[0].decode() == "Bob: שלום 😀"


def test_framer_splits_merged_lines_and_accepts_crlf():
    framer = LineFramer()
    assert framer.feed(b"a\r\nb\nc") == [b"a", b"b"]
    assert framer.feed(b"\r\n") == [b"c"]
    assert framer.feed(b"\n") == [b""]


def test_framer_overlong_line_reported_once_and_discarded_without_buffering():
    framer = LineFramer(max_line=10)
    assert framer.feed(b"x" * 8) == []
    assert framer.feed(b"x" * 8) == [OVERLONG]
    assert framer.buffered == 0
    for _ in range(100):
        assert framer.feed(b"y" * 1000) == []
        assert framer.buffered == 0
    assert framer.feed(b"zz\nok\n") == [b"ok"]
    # An overlong line inside one read, between good ones.
    assert framer.feed(b"a\n" + b"q" * 11 + b"\nb\n") == [b"a", OVERLONG, b"b"]
    # Exactly the limit is fine, with or without \r.
    assert framer.feed(b"0123456789\n0123456789\r\n") == [b"0123456789", b"0123456789"]


# -- nicknames -----------------------------------------------------------------------------

@pytest.mark.parametrize("nick", ["Britney Spears", "NoGui_User", "דני", "😀 Dana", "a" * 32])
def test_valid_nicknames(nick):
    assert nick_problem(nick) is None


@pytest.mark.parametrize("nick, why", [
    ("", "empty"), ("a" * 33, "at most"), (" Bob", "space"), ("Bob ", "space"),
    ("a:b", "':'"), ("a,b", "','"), ("a\x1bb", "control"), ("a\u202eb", "control"),
    ("System", "reserved"), ("SYSTEM", "reserved"), ("ONLINE_USERS", "reserved"),
    ("all", "reserved"), ("*", "start"), ("*bob", "start"), ("/nick", "start"),
    ("Ｓｙｓｔｅｍ", "reserved"),
])
def test_invalid_nicknames(nick, why):
    problem = nick_problem(nick)
    assert problem is not None and why in problem


def test_nick_key_folds_case_and_width():
    assert nick_key("Alice") == nick_key("ALICE") == nick_key("Ａｌｉｃｅ")


# -- login and routing ---------------------------------------------------------------------

def test_login_sends_welcome_then_online_list_to_newcomer():
    core = ChatCore()
    connect(core, 1, 0.0)
    out = core.receive(1, b"Britney Spears\n", 0.0)
    assert sent_to(out, 1) == [
        b"System: 001 Welcome, Britney Spears! Usage: 'TargetName: Your Message'; "
        b"'*: Message' for everyone.\n",
        b"ONLINE_USERS:Britney Spears\n",
    ]


def test_duplicate_and_case_variant_names_refused_and_retry_without_reconnect():
    core = core_with("Alice")
    connect(core, 2, 0.0)
    for attempt in (b"Alice\n", b"alice\n", b"ALICE\n"):
        (line,) = sent_to(core.receive(2, attempt, 0.0), 2)
        assert line.startswith(b"System: 433 Nickname '")
        assert b"already taken" in line
    out = core.receive(2, b"Bob\n", 0.0)
    assert sent_to(out, 2)[1] == b"ONLINE_USERS:Alice,Bob\n"


def test_private_message_is_stamped_with_sender_and_trimmed():
    core = core_with("Alice", "Bob", "Carol")
    out = core.receive(1, b"  Bob :   hello there  \n", 1.0)
    assert out == [(2, b"Alice: hello there\n")]


def test_target_lookup_is_case_insensitive():
    core = core_with("Alice", "Bob")
    assert core.receive(1, b"bob: hi\n", 1.0) == [(2, b"Alice: hi\n")]


def test_spoofed_system_line_arrives_attributed_to_the_user():
    core = core_with("Mallory", "Bob")
    out = core.receive(1, b"Bob: System: 001 You are now admin\n", 1.0)
    assert out == [(2, b"Mallory: System: 001 You are now admin\n")]
    assert isinstance(parse_server_line(out[0][1].decode().rstrip("\n")), PrivateMessage)


def test_scenarios_b_c_d_errors_with_codes_and_seed_wording():
    core = core_with("NoGui_User", "Britney Spears")
    assert sent_to(core.receive(1, b"Nobody: hi\n", 1.0), 1) == [
        b"System: 401 User 'Nobody' is not connected.\n"]
    assert sent_to(core.receive(1, b"hello\n", 1.0), 1) == [
        b"System: 411 Invalid format! Use: TargetName: Message\n"]
    for line in (b"Britney Spears:\n", b":Hello!\n", b" : \n"):
        assert sent_to(core.receive(1, line, 1.0), 1) == [
            b"System: 412 Name or message cannot be empty.\n"]


@pytest.mark.parametrize("text", [b"\x1b[2J", b"\x1b]0;title\x07", b"\x1b[0m \x1b[1m",
                                  b"\x1b[31m\t"])
@pytest.mark.parametrize("target", [b"Bob", b"*"])
def test_a_message_of_only_escape_sequences_is_empty(text, target):
    """Cleaning removes escape sequences whole; a message that was nothing else would
    reach Bob as 'Alice: ' with no text. It gets 412, as an empty message does."""
    core = core_with("Alice", "Bob")
    assert core.receive(1, target + b": " + text + b"\n", 1.0) == [
        (1, b"System: 412 Name or message cannot be empty.\n")]
    assert core.receive(1, target + b": \x1b[1mhi\n", 1.0) == [
        (2, b"* Alice: hi\n" if target == b"*" else b"Alice: hi\n")]


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d", "\u00a0", "\u3000 \u2060",
                                  "\ufeff", "\u3164", "\u2003\u200b\t\u00a0"])
@pytest.mark.parametrize("target", [b"Bob", b"*"])
def test_a_message_of_only_invisible_characters_is_empty(text, target):
    """Zero-width characters, Unicode spaces and Hangul fillers show nothing: the reader
    would get 'Alice: ' alone. 412, as for an empty message; nobody receives anything."""
    core = core_with("Alice", "Bob", "Carol")
    assert core.receive(1, target + b": " + text.encode() + b"\n", 1.0) == [
        (1, b"System: 412 Name or message cannot be empty.\n")]


@pytest.mark.parametrize("text", ["a\u200bb", "\u200b\U0001f600", "\u00a0\u05e9\u05dc\u05d5\u05dd",
                                  "\u0301", "\ufffd"])
def test_a_message_with_something_visible_is_delivered(text):
    """Invisible characters around a letter, an emoji, Hebrew or even a lone combining
    mark leave something to see: delivered as sent."""
    core = core_with("Alice", "Bob")
    assert core.receive(1, b"Bob: " + text.encode() + b"\n", 1.0) == [
        (2, b"Alice: " + text.encode() + b"\n")]


def test_broadcast_reaches_everyone_else_marked():
    core = core_with("Alice", "Bob", "Carol")
    out = core.receive(2, b"*: hi all\n", 1.0)
    assert sorted(out) == [(1, b"* Bob: hi all\n"), (3, b"* Bob: hi all\n")]
    assert parse_server_line("* Bob: hi all") == BroadcastMessage("Bob", "hi all")


def test_invalid_utf8_and_overlong_lines_get_errors_and_session_continues():
    core = core_with("Alice", "Bob", limits=Limits(rate=0, max_line=64))
    out = core.receive(1, b"Bob: \xff\xfe\n" + b"Bob: " + b"x" * 100 + b"\nBob: ok\n", 1.0)
    assert out[0][1].startswith(b"System: 400 Invalid UTF-8 at byte 5")
    assert out[1][1].startswith(b"System: 417 Line too long (max 64 bytes)")
    assert out[2] == (2, b"Alice: ok\n")


def test_invalid_utf8_nickname_refused():
    core = ChatCore()
    connect(core, 1, 0.0)
    (line,) = sent_to(core.receive(1, b"Al\xc3ice\n", 0.0), 1)
    assert line.startswith(b"System: 400 ")


def test_flood_limit_drops_tells_once_then_reports_count():
    core = core_with("Alice", "Bob", limits=Limits(rate=2, burst=3))
    out = core.receive(1, b"".join(b"Bob: m%d\n" % i for i in range(10)), 10.0)
    delivered = sent_to(out, 2)
    notices = sent_to(out, 1)
    assert len(delivered) == 3
    assert len(notices) == 1 and notices[0].startswith(b"System: 429 Flood limit")
    out = core.receive(1, b"Bob: later\n", 12.0)  # 2 s later: 4 tokens back
    assert sent_to(out, 2) == [b"Alice: later\n"]
    assert sent_to(out, 1) == [b"System: 429 7 message(s) were dropped by the flood limit.\n"]


def test_password_required_before_nickname():
    core = ChatCore(Limits(password="s3cret"))
    connect(core, 1, 0.0)
    (line,) = sent_to(core.receive(1, b"Alice\n", 0.0), 1)
    assert line.startswith(b"System: 464 Password required")
    assert sent_to(core.receive(1, b"/pass s3cret\n", 0.0), 1)[0].startswith(b"System: 003")
    assert sent_to(core.receive(1, b"Alice\n", 0.0), 1)[0].startswith(b"System: 001")
    connect(core, 2, 0.0)
    out = core.receive(2, b"/pass wrong\nBob\n", 0.0)
    assert out[0][1].startswith(b"System: 464 Wrong password")
    assert isinstance(out[1][1], Close)
    assert len(out) == 2  # nothing after the close is processed


def test_commands_users_ping_quit_unknown():
    core = core_with("Alice", "Bob")
    assert sent_to(core.receive(1, b"/users\n", 1.0), 1) == [b"ONLINE_USERS:Alice,Bob\n"]
    assert sent_to(core.receive(1, b"/ping\n", 1.0), 1) == [b"System: 002 Pong.\n"]
    assert sent_to(core.receive(1, b"/frob\n", 1.0), 1)[0].startswith(b"System: 421 ")
    out = core.receive(1, b"/quit\nBob: not processed\n", 1.0)
    assert [type(item) for _, item in out] == [Close]


def test_deltas_opt_in_gets_join_and_leave_notices_instead_of_lists():
    core = core_with("Alice")
    out = core.receive(1, b"/deltas\n", 1.0)
    assert sent_to(out, 1)[1] == b"ONLINE_USERS:Alice\n"
    connect(core, 2, 1.0)
    out = core.receive(2, b"Bob\n", 1.0)
    assert (1, b"System: 201 Bob joined.\n") in out
    assert core.due_lists(5.0, lambda c: True) == []  # Alice takes deltas, Bob is current
    assert core.disconnect(2, "closed") == [(1, b"System: 202 Bob left.\n")]


# -- coalesced online lists ----------------------------------------------------------------

def test_online_lists_coalesced_one_per_client_after_drain():
    core = core_with("A")
    for i, nick in enumerate(["B", "C", "D"], start=2):
        connect(core, i, 0.0)
        core.receive(i, nick.encode() + b"\n", 0.0)
    # Three joins: A's copy is stale but it was sent a list at t=0, so wait for the interval.
    assert core.due_lists(0.01, lambda c: True) == []
    out = core.due_lists(1.0, lambda c: True)
    assert out == [(1, b"ONLINE_USERS:A,B,C,D\n"), (2, b"ONLINE_USERS:A,B,C,D\n"),
                   (3, b"ONLINE_USERS:A,B,C,D\n")]
    assert core.due_lists(2.0, lambda c: True) == []  # everyone current
    core.disconnect(4, "reset")
    assert core.due_lists(3.0, lambda c: c != 2) == [(1, b"ONLINE_USERS:A,B,C\n"),
                                                    (3, b"ONLINE_USERS:A,B,C\n")]
    # The client that was not drained gets it once it is.
    assert core.due_lists(4.0, lambda c: True) == [(2, b"ONLINE_USERS:A,B,C\n")]


def test_list_interval_grows_with_roster_cost():
    small = core_with("a", "b")
    assert small.list_interval() == pytest.approx(0.05)
    big = ChatCore(Limits(rate=0))
    for i in range(3000):
        connect(big, i, 0.0)
        big.receive(i, b"user%05d\n" % i, 0.0)
    assert 0.5 < big.list_interval() <= 10.0


def test_idle_timeout_closes_silent_connections():
    core = ChatCore(Limits(idle_timeout=5))
    connect(core, 1, 0.0)
    connect(core, 2, 0.0)
    core.receive(2, b"Bob\n", 4.0)
    out = core.idle(6.0)
    assert [cid for cid, _ in out] == [1, 1]
    assert out[0][1].startswith(b"System: 408 ")
    assert isinstance(out[1][1], Close)


def test_undelivered_tells_each_sender_with_count():
    core = core_with("Alice", "Bob", "Slow")
    pending = b"ONLINE_USERS:Alice,Bob,Slow\nAlice: one\nBob: two\n* Alice: three\nSystem: 002 Pong.\n"
    out = core.undelivered(3, pending)
    assert sorted(out) == [
        (1, b"System: 404 2 message(s) to 'Slow' not delivered: Slow was disconnected.\n"),
        (2, b"System: 404 1 message(s) to 'Slow' not delivered: Slow was disconnected.\n"),
    ]


def test_leave_updates_roster_and_frees_name():
    core = core_with("Alice", "Bob")
    core.disconnect(1, "reset")
    connect(core, 3, 1.0)
    assert sent_to(core.receive(3, b"alice\n", 1.0), 3)[1] == b"ONLINE_USERS:Bob,alice\n"


# -- client-side pure helpers --------------------------------------------------------------

def test_parse_server_lines():
    assert parse_server_line("ONLINE_USERS:a b,c") == OnlineUsers(("a b", "c"))
    assert parse_server_line("System: 412 Name or message cannot be empty.") == SystemNotice(
        412, "Name or message cannot be empty.")
    assert parse_server_line("Britney Spears: hi: there") == PrivateMessage("Britney Spears",
                                                                            "hi: there")
    assert SystemNotice(433, "x").is_error and not SystemNotice(1, "x").is_error


def test_split_chat_input_only_needs_a_colon():
    assert split_chat_input("hello") is None
    assert split_chat_input("Britney Spears:") == ("Britney Spears", "")
    assert split_chat_input(" Bob :  hi ") == ("Bob", "hi")


@pytest.mark.parametrize("raw, shown", [
    ("plain", "plain"), ("a\x1b[2Jb", "ab"), ("x\x1b]0;pwned\x07y", "xy"),
    ("c\rd", "c\ufffdd"), ("\u202egnp.exe", "\ufffdgnp.exe"), ("\x9b31mred", "red"),
    ("שלום 😀", "שלום 😀"),
])
def test_sanitize_strips_terminal_control(raw, shown):
    assert sanitize(raw) == shown


def test_login_timeout_closes_connections_that_never_log_in():
    core = ChatCore(Limits(login_timeout=10))
    connect(core, 1, 0.0)
    connect(core, 2, 0.0)
    core.receive(2, b"Bob\n", 1.0)
    core.receive(1, b"/ping\n", 9.0)  # talking is not logging in
    assert core.idle(9.5) == []
    out = core.idle(10.5)
    assert [cid for cid, _ in out] == [1, 1]
    assert out[0][1] == b"System: 408 No login within 10 s; disconnecting.\n"
    assert out[1][1].reason == "login timeout"
