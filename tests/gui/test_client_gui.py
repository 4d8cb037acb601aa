"""The chat window under Xvfb against a real server: login, conversations, errors, Hebrew,
emoji, responsiveness. Every assertion reads what a widget shows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tkinter as tk

import pytest

from tcplab.chat.display import _get_display, graphemes, wrap
from tcplab.chat.protocol import Limits
from tcplab.gui import model as m
from tcplab.gui.client import ClientWindow
from tests.chat.helpers import RawClient, running_server
from tests.gui.helpers import (
    click_user,
    history,
    login,
    open_login,
    pump,
    say,
    type_into,
    user_labels,
    user_unread,
    wait_until,
)


@pytest.fixture
def server(gui_env):
    with running_server(limits=Limits(rate=0)) as srv:
        yield srv


def test_duplicate_nickname_refused_inline_then_retry_and_messages_both_ways(root, server):
    alice = login(root, server.port, "Alice")
    bob = open_login(root, server.port, "Alice")
    bob.nick_entry.event_generate("<Return>")  # the Enter key, like the ENTER button
    wait_until(root, lambda: bob.nick_error.cget("text"), what="inline refusal")
    assert "Alice" in bob.nick_error.cget("text") and bob.model is None
    assert bob.top.title() == "Login"
    type_into(bob.nick_entry, "Bob")
    bob.enter_button.invoke()  # same connection, second try: no restart
    wait_until(root, lambda: bob.model is not None, what="Bob logged in")
    wait_until(root, lambda: "Bob" in user_labels(alice), what="Bob in Alice's list")
    assert user_labels(bob) == ["Everyone", "Alice", "Bob (you)"]

    click_user(alice, "Bob")
    assert alice.header.cget("text") == "Bob"
    say(alice, "hi Bob, how are you?")
    assert "hi Bob, how are you?" in history(alice)
    wait_until(root, lambda: user_unread(bob).get("Alice") == "1", what="unread count")
    assert bob.top.title() == "Bob — tcplab chat (1 unread)"
    assert "hi Bob" not in history(bob)  # Bob is still on Everyone
    click_user(bob, "Alice")
    assert "hi Bob, how are you?" in history(bob)
    assert user_unread(bob).get("Alice") == ""
    assert bob.top.title() == "Bob — tcplab chat"
    say(bob, "fine, thanks")
    wait_until(root, lambda: "fine, thanks" in history(alice), what="reply")

    carol = login(root, server.port, "Carol")
    click_user(alice, "Everyone")
    say(alice, "hello everyone")
    wait_until(root, lambda: "hello everyone" in history(carol))  # Carol is on Everyone
    assert "* " not in history(carol)
    wait_until(root, lambda: user_unread(bob).get("Everyone") == "1")
    for win in (alice, bob, carol):
        win.close()


def test_errors_b_c_d_appear_in_the_conversation_they_answer(root, server):
    alice = login(root, server.port, "Alice")
    bob = login(root, server.port, "Bob")
    wait_until(root, lambda: "Bob" in user_labels(alice))
    click_user(alice, "Bob")
    bob.close()  # FIN: Bob leaves cleanly
    wait_until(root, lambda: "Bob (offline)" in user_labels(alice), what="Bob offline")
    assert "Bob left." in history(alice)
    assert alice.header.cget("text") == "Bob  (offline)"
    say(alice, "are you there?")  # scenario B: target not connected
    wait_until(root, lambda: "is not connected" in history(alice), what="B error")
    assert "System: User 'Bob' is not connected." in history(alice)

    click_user(alice, "Everyone")
    assert "is not connected" not in history(alice)  # the error stayed in Bob's conversation
    say(alice, "/raw hello there")  # scenario C: a line without a target
    wait_until(root, lambda: "Invalid format" in history(alice), what="C error")
    say(alice, "")  # scenario D: an empty message
    wait_until(root, lambda: "cannot be empty" in history(alice), what="D error")
    err_ranges = alice.text.tag_ranges("error")
    assert err_ranges, "errors are styled apart"
    click_user(alice, "Bob")
    assert "Invalid format" not in history(alice) and "cannot be empty" not in history(alice)
    alice.close()


def test_users_list_follows_joins_and_an_abrupt_kill(root, server):
    alice = login(root, server.port, "Alice")
    code = ("import socket,time,sys; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
            "s.sendall(b'Frank\\n'); s.sendall(b'Alice: hello from Frank\\n'); time.sleep(60)")
    frank = subprocess.Popen([sys.executable, "-c", code, str(server.port)])
    try:
        wait_until(root, lambda: "Frank" in user_labels(alice), what="Frank joined")
        assert "Frank joined." in history(alice)
        wait_until(root, lambda: user_unread(alice).get("Frank") == "1")
        click_user(alice, "Frank")
        os.kill(frank.pid, signal.SIGKILL)  # scenario F: the process dies, no goodbye
        wait_until(root, lambda: "Frank (offline)" in user_labels(alice), what="Frank gone")
        assert "hello from Frank" in history(alice)  # the conversation stays readable
        assert "Frank left." in history(alice)
        online = [lbl for lbl in user_labels(alice) if "offline" not in lbl]
        assert online == ["Everyone", "Alice (you)"]
    finally:
        frank.kill()
        frank.wait()
    alice.close()


def test_unreachable_server_is_an_inline_message_and_retry_works(root, gui_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    win = open_login(root, free, "Alice")
    win.enter_button.invoke()
    wait_until(root, lambda: win.server_error.cget("text"), what="unreachable")
    assert "cannot connect" in win.server_error.cget("text").lower()
    assert win.server_section.opened
    with running_server() as srv:
        type_into(win.port_entry, str(srv.port))
        win.port_entry.event_generate("<Return>")
        wait_until(root, lambda: win.model is not None, what="login after retry")
        win.close()


def test_invalid_and_reserved_names_are_refused_before_sending(root, server):
    win = open_login(root, server.port, "System")
    win.enter_button.invoke()
    root.update()
    assert "reserved" in win.nick_error.cget("text")
    type_into(win.nick_entry, "a:b")
    win.enter_button.invoke()
    assert "':'" in win.nick_error.cget("text")
    assert win.client is None  # nothing was sent
    win.close()


def test_password_is_asked_for_when_the_server_needs_it(root, gui_env):
    with running_server(limits=Limits(rate=0, password="s3cret")) as srv:
        win = open_login(root, srv.port, "Alice")
        win.enter_button.invoke()
        wait_until(root, lambda: win.password_error.cget("text"), what="password asked")
        assert win.password_box.winfo_manager() and not win.nick_error.cget("text")
        type_into(win.password_entry, "s3cret", enter=True)
        wait_until(root, lambda: win.model is not None, what="login with password")
        win.close()


HEBREW = ("שלום לכולם! this is a long message with English words inside, "
          "ועוד קצת טקסט בעברית 😀👍 כדי שהשורה תהיה ארוכה מרוחב החלון 🎉 סוף")


def test_hebrew_message_is_wrapped_then_reordered_per_line_and_right_aligned(root, server):
    bob = login(root, server.port, "Bob")
    alice = login(root, server.port, "Alice")
    alice.top.geometry("620x480")
    wait_until(root, lambda: "Bob" in user_labels(alice))
    click_user(alice, "Bob")
    raw = RawClient(server.address)
    raw.send("Dana")
    raw.send(f"Alice: {HEBREW}")
    wait_until(root, lambda: user_unread(alice).get("Dana") == "1")
    click_user(alice, "Dana")
    pump(root, 0.3)
    width = alice.body_width()
    logical = wrap(HEBREW, width, alice.measure)
    assert len(logical) >= 2, "the message must be longer than the window"
    get_display = _get_display()
    expected = [get_display(line, base_dir="R") for line in logical]
    shown = history(alice).splitlines()
    start = shown.index(expected[0])
    assert shown[start:start + len(expected)] == expected
    text = alice.text
    win_w = text.winfo_width()
    for i in range(len(expected)):
        index = f"{start + i + 1}.0"
        assert "rtl" in text.tag_names(index)
        x, _y, w, _h, _base = text.dlineinfo(index)
        assert x > 30 or w > width * 0.8, "short lines start far from the left edge"
        right = x + w
        assert abs(right - (win_w - int(text.cget("padx")) - 6 - 1)) <= 8, (right, win_w)
        assert alice.measure(logical[i]) <= width
    # Copy gives logical order, the text as it was typed.
    text.tag_add("sel", f"{start + 1}.0", f"{start + 2}.end")
    text.event_generate("<<Copy>>")
    assert HEBREW in root.clipboard_get()
    # A narrower window wraps again.
    alice.top.geometry("480x480")
    wait_until(root, lambda: abs(alice._render_width - alice.body_width()) < 2 and
               alice._render_width < width, what="re-wrap on resize")
    narrower = [get_display(line, base_dir="R")
                for line in wrap(HEBREW, alice._render_width, alice.measure)]
    assert len(narrower) > len(expected)
    shown = history(alice).splitlines()
    start = shown.index(narrower[0])
    assert shown[start:start + len(narrower)] == narrower
    raw.close()
    alice.close()
    bob.close()


def test_hebrew_nickname_logs_in_and_shows_in_lists_and_headers(root, server):
    alice = login(root, server.port, "Alice")
    dana = login(root, server.port, "דנה כהן")
    shown = m.display_name("דנה כהן")
    assert shown == "ןהכ הנד"
    assert f"{shown} (you)" in user_labels(dana)
    assert "דנה" in dana.top.title() or shown in dana.top.title()
    wait_until(root, lambda: shown in user_labels(alice))
    click_user(alice, shown)
    assert alice.header.cget("text") == shown
    say(alice, "שלום דנה")
    wait_until(root, lambda: user_unread(dana).get("Alice") == "1")
    click_user(dana, "Alice")
    assert _get_display()("שלום דנה", base_dir="R") in history(dana)
    alice.close()
    dana.close()


def test_hebrew_typing_preview_shows_display_order(root, server):
    alice = login(root, server.port, "Alice")
    alice.entry.insert("end", "שלום world")
    root.update()
    assert alice.preview.cget("text") == _get_display()("שלום world", base_dir="R")
    assert alice.preview.cget("anchor") == "e"
    alice.entry.delete(0, "end")
    root.update()
    assert alice.preview.cget("text") == ""
    alice.close()


def test_emoji_picker_inserts_at_the_cursor_and_indices_stay_right(root, server):
    alice = login(root, server.port, "Alice")
    e = alice.entry
    e.insert(0, "ab")
    e.icursor(1)
    alice.emoji_button.invoke()
    assert alice._emoji_picker is not None
    buttons = [b for b in alice._emoji_picker.grid_slaves() if isinstance(b, tk.Button)]
    assert len(buttons) == len(alice_emoji())
    grin = next(b for b in buttons if b.cget("text") == "😀")
    grin.focus_force()  # keyboard users Tab through the grid
    wait_until(root, lambda: alice.emoji_name.cget("text"), what="emoji name")
    assert alice.emoji_name.cget("text") == "grinning face"
    grin.invoke()
    assert alice._emoji_picker is None  # closed after picking
    assert e.get() == "a😀b"
    assert int(e.index("insert")) == 1 + m.tk_length("😀") == 3  # Tk 8.6: two units
    e.insert("insert", "x")
    assert e.get() == "a😀xb"
    alice.emoji_button.invoke()
    alice._emoji_picker.focus_force()
    root.update()
    alice._emoji_picker.event_generate("<Escape>")
    root.update()
    assert alice._emoji_picker is None  # Esc closes the picker
    # In the history: tags sit exactly on the emoji, and text after them is intact.
    click_user(alice, "Everyone")
    msg = "x😀y 👨‍👩‍👧 z🇮🇱w"
    say(alice, msg)
    t = alice.text
    ranges = t.tag_ranges("emoji")
    spans = [t.get(ranges[i], ranges[i + 1]) for i in range(0, len(ranges), 2)]
    if alice.fonts.has_emoji_font:
        assert "😀" in spans and "👨‍👩‍👧" in spans and "🇮🇱" in spans
        assert all(all(m.is_emoji_cluster(g) for g in graphemes(s_)) for s_ in spans)
    line = next(ln for ln in history(alice).splitlines() if "x😀y" in ln)
    assert line == msg
    lineno = history(alice).splitlines().index(line) + 1
    # Tk 8.6: a column counts UTF-16 units (an emoji outside the BMP is two), "+N chars"
    # counts characters; both must land on the same boundary.
    assert t.index(f"{lineno}.end") == f"{lineno}.{m.tk_length(msg)}"
    assert t.get(f"{lineno}.0", f"{lineno}.{m.tk_length('x😀')}") == "x😀"
    assert t.get(f"{lineno}.0", f"{lineno}.0 + 2 chars") == "x😀"
    assert t.get(f"{lineno}.{m.tk_length('x😀y ')}", f"{lineno}.end") == msg[4:]
    alice.close()


def test_without_an_emoji_font_emoji_still_render_and_indices_hold(root, server):
    alice = login(root, server.port, "Alice")
    saved = alice.fonts.has_emoji_font
    alice.fonts.has_emoji_font = False  # as on a machine without fonts-noto-color-emoji
    try:
        say(alice, "a😀b 👍")
        line = next(ln for ln in history(alice).splitlines() if ln.startswith("a😀"))
        assert line == "a😀b 👍"
        assert not alice.text.tag_ranges("emoji")
    finally:
        alice.fonts.has_emoji_font = saved
    alice.close()


def alice_emoji() -> tuple[str, ...]:
    from tcplab.gui.client import EMOJI

    return EMOJI


def test_keyboard_ctrl_k_jumps_to_a_user_and_ctrl_w_closes(root, server):
    alice = login(root, server.port, "Alice")
    bob = login(root, server.port, "Bobby")
    wait_until(root, lambda: "Bobby" in user_labels(alice))
    alice.top.focus_force()
    alice.entry.focus_force()
    root.update()
    alice.entry.event_generate("<Control-k>")
    root.update()
    assert alice.top.focus_get() is alice.search_entry
    alice.search_entry.insert(0, "bob")
    root.update()
    assert user_labels(alice) == ["Everyone", "Bobby"]  # searchable
    alice.search_entry.event_generate("<Return>")
    root.update()
    assert alice.header.cget("text") == "Bobby"
    assert alice.model.active == "Bobby"
    alice.entry.event_generate("<Control-w>")
    root.update()
    assert alice.model.active == m.EVERYONE and "Bobby" not in alice.model.conversations
    alice.close()
    bob.close()


def test_closing_the_window_sends_fin_and_the_others_see_the_leave(root, server):
    alice = login(root, server.port, "Alice")
    bob = login(root, server.port, "Bob")
    wait_until(root, lambda: "Bob" in user_labels(alice))
    bob.top.protocol("WM_DELETE_WINDOW")  # what the window manager's close button calls
    bob.top.tk.call(bob.top.protocol("WM_DELETE_WINDOW"))
    wait_until(root, lambda: "Bob left." in history(alice), what="Bob's leave")
    assert "Bob" not in " ".join(user_labels(alice))
    alice.close()


def test_flood_of_5000_messages_keeps_after_callbacks_flowing_and_history_bounded(root, server):
    alice = login(root, server.port, "Alice", history=300)
    flooder = RawClient(server.address)
    flooder.send("Flood")
    wait_until(root, lambda: "Flood" in user_labels(alice))
    click_user(alice, "Flood")
    gaps: list[tuple[float, float]] = []  # (wall, CPU of this thread) between two callbacks
    last = [time.monotonic(), time.thread_time()]
    running = [True]

    def beat() -> None:
        now, cpu = time.monotonic(), time.thread_time()
        gaps.append((now - last[0], cpu - last[1]))
        last[:] = [now, cpu]
        if running[0]:
            root.after(10, beat)

    root.after(10, beat)
    payload = b"".join(f"Alice: message {i} שלום 😀 with some words to wrap\n".encode()
                       for i in range(5000))
    flooder.sock.sendall(payload)
    wait_until(root, lambda: any(e.text.startswith("message 4999 ")
                                 for e in alice.model.conversations["Flood"].entries),
               timeout=120, what="all 5000 messages")
    running[0] = False
    pump(root, 0.05)
    # The window's own work (CPU time of the Tk thread) never holds callbacks back for
    # 200 ms; on the wall clock, which also counts time this process waited for a CPU on a
    # shared machine, 95% of the gaps stay under 200 ms too.
    walls = sorted(w for w, _c in gaps)
    worst_cpu = max(c for _w, c in gaps)
    assert len(gaps) > 20
    assert worst_cpu < 0.2, f"the Tk thread worked {worst_cpu * 1000:.0f} ms between callbacks"
    assert walls[int(len(walls) * 0.95)] < 0.2, f"wall-clock gaps: {walls[-10:]}"
    conv = alice.model.conversations["Flood"]
    assert len(conv.entries) == 300
    lines = history(alice).splitlines()
    assert sum(n for _s, n in alice._shown) == len(lines)
    assert len(alice._shown) == 300
    assert "message 4999 " in history(alice) and "message 4699 " not in history(alice)
    flooder.close()
    alice.close()


def test_tcplab_client_gui_opens_one_logged_in_window_per_nick(gui_env):
    code = ("import sys; from tcplab.gui import client as c; from tcplab.cli import main\n"
            "orig = c.ClientWindow.__init__\n"
            "def init(self, *a, **k):\n"
            "    orig(self, *a, **k)\n"
            "    self.top.after(3000, self.close)\n"
            "c.ClientWindow.__init__ = init\n"
            "sys.exit(main(sys.argv[1:]))")
    events: list[tuple[str, dict]] = []
    with running_server(observer=lambda ev, _c, f: events.append((ev, f))) as srv:
        proc = subprocess.run([sys.executable, "-c", code, "client", "--gui", "--port",
                               str(srv.port), "--nick", "Ann", "--nick", "Ben"], timeout=60,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    joined = {f["nick"] for ev, f in events if ev == "join"}
    left = {(f["nick"], f["reason"]) for ev, f in events if ev == "leave"}
    assert joined == {"Ann", "Ben"}
    assert left == {("Ann", "closed by client"), ("Ben", "closed by client")}  # FIN, not RST


def test_tcplab_client_without_gui_refuses_several_nicks():
    proc = subprocess.run([sys.executable, "-m", "tcplab", "client", "--nick", "A", "--nick", "B"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "need --gui" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gui_without_a_display_says_so_without_a_traceback(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    proc = subprocess.run([sys.executable, "-m", "tcplab", "client", "--gui"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "cannot open a window" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_host_and_port_are_remembered_between_runs(root, server):
    win = login(root, server.port, "Alice", remember=True)
    win.close()
    top = tk.Toplevel(root)
    again = ClientWindow(top)  # no host/port given: the last ones used
    assert (again.host_var.get(), again.port_var.get()) == ("127.0.0.1", str(server.port))
    again.close()


def test_tab_order_follows_the_layout(root, server):
    win = open_login(root, server.port, "Alice")
    assert win.nick_entry.tk_focusNext() is win.server_section.toggle_button
    win.enter_button.invoke()
    wait_until(root, lambda: win.model is not None)
    assert win.entry.tk_focusNext() is win.emoji_button
    assert win.emoji_button.tk_focusNext() is win.send_button
    assert win.search_entry.tk_focusNext() is win.users
    win.close()


def test_reconnect_when_the_name_was_taken_meanwhile_can_be_retried(root, gui_env):
    import threading

    from tcplab.chat.server import ChatServer

    def serve(port: int = 0) -> tuple[ChatServer, threading.Thread]:
        srv = ChatServer("127.0.0.1", port, limits=Limits(rate=0))
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        srv.ready.wait(10)
        return srv, th

    srv, th = serve()
    port = srv.port
    alice = login(root, port, "Alice")
    srv.request_shutdown()
    th.join(10)
    wait_until(root, lambda: alice.banner_text.startswith("Disconnected"), what="banner")
    srv, th = serve(port)  # the same port, at once
    try:
        thief = RawClient(srv.address)
        thief.send("Alice")
        wait_until(root, lambda: len(srv.core.users) == 1)
        alice.reconnect_button.invoke()
        wait_until(root, lambda: alice.banner_text.startswith("Could not log in again"),
                   what="refused reconnect")
        assert "Alice" in alice.banner_text
        thief.close()
        wait_until(root, lambda: len(srv.core.users) == 0)
        alice.reconnect_button.invoke()
        wait_until(root, lambda: alice.banner_text == "", what="reconnected")
        assert "Reconnected." in history(alice)
        alice.close()
    finally:
        srv.request_shutdown()
        th.join(10)


def test_measure_matches_tk_and_a_hostile_long_word_is_wrapped_quickly(root, server):
    alice = login(root, server.port, "Alice")
    f = alice.fonts
    for s_ in ("Hello, World! AVAWAT", "שלום עולם, מה נשמע?", "ffi fl Te"):
        assert alice.measure(s_) == f.text.measure(s_)
    for s_ in ("😀👍🎉", "👨‍👩‍👧", "❤️"):
        assert alice.measure(s_) == (f.emoji if f.has_emoji_font else f.text).measure(s_)
    raw = RawClient(server.address)
    raw.send("Mallory")
    wait_until(root, lambda: "Mallory" in user_labels(alice))
    click_user(alice, "Mallory")
    word = "ש" * 1000 + "😀" * 500  # 4000 bytes, no space: cut between characters
    start = time.thread_time()
    raw.send(f"Alice: {word}")
    wait_until(root, lambda: "ששש" in history(alice), what="long word shown")
    assert time.thread_time() - start < 1.0
    width = alice.body_width()
    body = [ln for ln in history(alice).splitlines() if "ש" in ln or "😀" in ln]
    assert len(body) > 5 and all(alice.measure(ln) <= width for ln in body)
    assert "".join(body).count("ש") == 1000 and "".join(body).count("😀") == 500
    raw.close()
    alice.close()


def test_thousands_online_the_list_stays_short_and_searchable(root, server):
    from tcplab.chat import client as core
    from tcplab.gui.client import MAX_ROWS

    alice = login(root, server.port, "Alice")
    names = ("Alice", *(f"user{i:05d}" for i in range(10_000)))
    start = time.monotonic()
    alice._handle(alice.client, core.OnlineUsers(names))  # as a 10,000-name list arrives
    alice._refresh_users()
    assert time.monotonic() - start < 1.0
    labels = user_labels(alice)
    assert len(labels) == MAX_ROWS + 1 and labels[-1].startswith("… ")
    alice.search_entry.insert(0, "user09999")
    root.update()
    assert user_labels(alice) == ["Everyone", "user09999"]
    alice.close()
