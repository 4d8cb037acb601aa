"""The GUI's presentation model without a display: conversations, unread counts, where
errors go, colours, bidi line layout, history caps, the console's counters."""

from __future__ import annotations

import json
import sys

import pytest

from tcplab.chat.display import _get_display, wrap
from tcplab.chat.protocol import Code, Limits
from tcplab.gui import model as m
from tests.chat.helpers import RawClient, running_server
from tests.chat.helpers import wait_until as wait_for


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def chat(me: str = "Alice", **kw) -> tuple[m.ChatModel, Clock]:
    clock = Clock()
    model = m.ChatModel(me, clock=clock, **kw)
    model.set_users([me, "Bob", "Carol"])
    return model, clock


def test_tkinter_is_there_for_the_window_tests():
    from tests.gui.conftest import HAVE_TK, _missing

    if not HAVE_TK:
        _missing("tkinter is not installed (apt-get install python3-tk): window tests not collected")


def test_the_gui_model_imports_no_tk():
    import subprocess

    code = "import sys, tcplab.gui.model; sys.exit('tkinter' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_messages_open_conversations_and_count_unread_until_read():
    model, _ = chat()
    assert model.active == m.EVERYONE
    model.incoming("Bob", "hi")
    model.incoming("Bob", "there")
    model.incoming("Carol", "all", broadcast=True)
    assert model.conversations["Bob"].unread == 2
    assert model.conversations[m.EVERYONE].unread == 0  # on screen
    assert model.total_unread == 2
    assert model.title() == "Alice — tcplab chat (2 unread)"
    model.switch("Bob")
    assert model.conversations["Bob"].unread == 0 and model.title() == "Alice — tcplab chat"
    model.sent("Bob", "hello")
    assert [e.kind for e in model.conversations["Bob"].entries] == ["in", "in", "own"]


def test_peer_text_is_sanitized_before_it_is_stored():
    model, _ = chat()
    model.incoming("Bob", "ok\x1b[2J\rSystem: fake")
    text = model.conversations["Bob"].entries[0].text
    assert "\x1b" not in text and "\r" not in text


def test_errors_go_to_the_conversation_that_caused_them():
    model, clock = chat()
    model.switch("Bob")
    model.sent("Bob", "x")
    model.switch("Carol")  # the user moved on before the answer came
    conv = model.server_notice(Code.NO_SUCH_NICK, "User 'Bob' is not connected.")
    assert conv.key == "Bob" and conv.entries[-1].kind == m.ERROR
    model.sent_raw("Carol")
    assert model.server_notice(Code.NO_TEXT, "Name or message cannot be empty.").key == "Carol"
    model.switch(m.EVERYONE)
    model.sent_raw(m.EVERYONE)
    assert model.server_notice(Code.NO_RECIPIENT, "Invalid format!").key == m.EVERYONE
    clock.t += m.ERROR_CONTEXT_SECONDS + 1  # an old error lands where the user is now
    model.switch("Carol")
    assert model.server_notice(Code.FLOOD, "slow down").key == "Carol"
    # Without a code (a server not asked for codes): still routed by context.
    model.sent("Bob", "y")
    assert model.server_notice(0, "Name or message cannot be empty.").key == "Bob"
    assert model.server_notice(Code.SHUTTING_DOWN, "bye").key == m.EVERYONE


def test_join_and_leave_notices_and_offline_conversations():
    model, _ = chat()
    model.incoming("Bob", "hi")
    changed = model.set_users(["Alice", "Carol", "Dan"])
    assert {c.key for c in changed} == {m.EVERYONE, "Bob"}
    assert [e.text for e in model.conversations[m.EVERYONE].entries] == ["Dan joined.",
                                                                         "Bob left."]
    assert not model.conversations["Bob"].online
    assert [e.text for e in model.conversations["Bob"].entries] == ["hi", "Bob left."]
    rows = model.rows()
    assert [r.label for r in rows] == ["Everyone", "Alice (you)", "Bob (offline)", "Carol", "Dan"]
    assert rows[1].me and not rows[2].online
    model.set_users(["Alice", "Bob", "Carol", "Dan"])
    assert model.conversations["Bob"].online
    model.disconnected()
    assert all(not r.online for r in model.rows()[1:])
    assert "Alice (you)" in [r.label for r in model.rows()]


def test_a_login_storm_is_summed_up_in_one_notice():
    model, _ = chat()
    model.incoming("user3", "hi")
    changed = model.set_users(["Alice", "Bob", "Carol", *(f"user{i}" for i in range(500))])
    assert [e.text for e in model.conversations[m.EVERYONE].entries] == [
        "500 users joined, 0 left."]
    assert model.conversations["user3"].entries[-1].text == "user3 joined."
    assert len(changed) == 2


def test_first_list_after_login_announces_nobody():
    model = m.ChatModel("Alice")
    assert model.set_users(["Alice", "Bob"]) == []


def test_rows_are_sorted_case_insensitively_and_searchable():
    model = m.ChatModel("me")
    model.set_users(["me", "zed", "Adam", "bob", "דנה"])
    assert [r.key for r in model.rows()] == ["*", "Adam", "bob", "me", "zed", "דנה"]
    assert [r.key for r in model.rows("B")] == ["*", "bob"]
    assert [r.label for r in model.rows("דנ")] == ["Everyone", _get_display()("דנה")]


def test_history_is_capped_per_conversation():
    model, _ = chat(history=5)
    for i in range(20):
        model.incoming("Bob", f"m{i}")
    entries = model.conversations["Bob"].entries
    assert [e.text for e in entries] == [f"m{i}" for i in range(15, 20)]
    assert model.conversations["Bob"].unread == 20  # unread counts what arrived
    with pytest.raises(ValueError):
        m.ChatModel("x", history=0)


def test_close_conversation_keeps_everyone():
    model, _ = chat()
    model.switch("Bob")
    assert model.close("Bob") == m.EVERYONE and "Bob" not in model.conversations
    assert model.close(m.EVERYONE) == m.EVERYONE and m.EVERYONE in model.conversations


def test_colours_are_stable_and_follow_the_servers_name_comparison():
    assert m.colour_for("Alice") == m.colour_for("Alice") == m.colour_for("ALICE")
    assert m.colour_for("Alice") in m.PALETTE
    assert len({m.colour_for(f"user{i}") for i in range(100)}) >= len(m.PALETTE) - 2


@pytest.mark.parametrize("text", [
    "שלום לכולם, this is English inside Hebrew and more עברית כאן בסוף 😀",
    "English first, then עברית בסוף השורה and English again",
    "short",
    "😀👍🎉 " * 20,
])
def test_body_lines_are_wrapped_then_reordered_line_by_line(text):
    width = 20
    lines = m.body_lines(text, width, len)
    logical = wrap(text, width, len)
    assert len(lines) == len(logical)
    get_display = _get_display()
    for dl, lg in zip(lines, logical):
        assert len(lg) <= width or " " not in lg
        if dl.rtl:
            assert dl.text == get_display(lg, base_dir="R")
        else:
            assert dl.text == (get_display(lg, base_dir="L") if m.has_rtl(lg) else lg)


def test_tk_length_counts_utf16_units():
    assert m.tk_length("abc") == 3
    assert m.tk_length("a😀b") == 4
    assert m.tk_length("👨‍👩‍👧") == 8  # 3 non-BMP + 2 ZWJ
    assert m.tk_length("שלום") == 4


def test_emoji_runs_split_text_and_emoji_without_losing_a_character():
    text = "hi 😀👍 שלום 👨‍👩‍👧 🇮🇱 ❤️ end"
    runs = m.emoji_runs(text)
    assert "".join(r for r, _ in runs) == text
    assert [r for r, e in runs if e] == ["😀👍", "👨‍👩‍👧", "🇮🇱", "❤️"]
    assert m.codepoint_names("a😀") == "a[GRINNING FACE]"


def test_copy_text_is_logical_order():
    model, _ = chat()
    model.incoming("Bob", "שלום world")
    entry = model.conversations["Bob"].entries[0]
    assert entry.copy_text().endswith("Bob: שלום world")


def test_settings_round_trip_and_hostile_files_are_ignored(tmp_path):
    path = tmp_path / "gui.json"
    m.save_settings({"host": "::1", "port": 6000}, path)
    assert m.load_settings(path) == {"host": "::1", "port": 6000}
    for junk in ("{", "[]", json.dumps({"host": 5, "port": "x"}),
                 json.dumps({"host": "h" * 300, "port": 70000})):
        path.write_text(junk)
        assert m.load_settings(path) == {}
    assert m.load_settings(tmp_path / "missing.json") == {}
    m.save_settings({"host": "x"}, tmp_path / "file-not-dir" / "sub" / "gui.json")  # no raise


def test_config_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert m.config_path() == tmp_path / "tcplab" / "gui.json"


# --- the console model and the server's observer -------------------------------------------


def test_console_model_counts_users_peak_errors_and_messages():
    clock = Clock()
    c = m.ConsoleModel(clock=clock, max_log=3)
    c.apply("listening", 0, {"address": "127.0.0.1:1"})
    c.apply("connect", 1, {"peer": "127.0.0.1:5000"})
    c.apply("join", 1, {"nick": "Alice", "online": 1})
    c.apply("connect", 2, {"peer": "127.0.0.1:5001"})
    line = c.apply("error", 2, {"code": Code.NICK_IN_USE})
    assert "login_refused conn=2 code=433" in line
    c.apply("join", 2, {"nick": "Bob", "online": 2})
    assert c.apply("stats", 0, {"sent": {1: 4, 2: 1}, "routed": 5}) is None
    assert [(r[1], r[2], r[4]) for r in c.table()] == [("Alice", "127.0.0.1:5000", 4),
                                                       ("Bob", "127.0.0.1:5001", 1)]
    c.apply("leave", 1, {"nick": "Alice", "reason": "connection reset"})
    c.apply("disconnect", 1, {"peer": "127.0.0.1:5000", "reason": "connection reset"})
    assert len(c.users) == 1 and c.peak == 2 and c.errors == 1 and c.routed == 5
    assert len(c.log) == 3  # bounded
    clock.t += 3725
    assert c.uptime() == "1:02:05"
    c.apply("stopped", 0, {})
    assert c.users == {} and c.uptime() == "—"


def test_server_observer_sees_every_logged_event_and_stats():
    events: list[tuple[str, int, dict]] = []
    with running_server(limits=Limits(rate=0), observer=lambda *e: events.append(e)) as srv:
        a = RawClient(srv.address)
        a.send("Alice")
        b = RawClient(srv.address)
        b.send("Bob")
        assert wait_for(lambda: len(srv.core.users) == 2)
        a.send("Bob: one")
        a.send("*: two")
        a.send("Nobody: three")  # not routed
        b.expect(lambda ln: ln.endswith("two"))
        assert wait_for(lambda: any(e[0] == "stats" and e[2]["sent"].get(1) == 2
                                    for e in events), timeout=5)
        a.close()
        wait_for(lambda: any(e[0] == "leave" for e in events))
    kinds = [e[0] for e in events]
    for kind in ("listening", "connect", "join", "leave", "disconnect", "shutdown", "stopped"):
        assert kind in kinds
    last_stats = [e for e in events if e[0] == "stats"][-1][2]
    assert last_stats["routed"] >= 2


def test_a_failing_observer_costs_no_client_its_connection():
    def boom(*_a):
        raise RuntimeError("observer bug")

    with running_server(observer=boom) as srv:
        a = RawClient(srv.address)
        a.send("Alice")
        wait_for(lambda: len(srv.core.users) == 1)
        b = RawClient(srv.address)
        b.send("Bob")
        wait_for(lambda: len(srv.core.users) == 2)
        a.send("Bob: still here")
        b.expect(lambda ln: ln.endswith("still here"))
