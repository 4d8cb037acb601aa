"""Driving the chat windows as a person would: type into entries, press keys, click."""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable

from tcplab.gui.client import ClientWindow


def wait_until(root, cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Run Tk's loop until ``cond()`` is true (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        root.update()
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.01)


def pump(root, seconds: float) -> None:
    """Let Tk run for a while (events, after() callbacks)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)



def type_into(entry: tk.Widget, text: str, *, enter: bool = False) -> None:
    """Replace an entry's text as typing would, then optionally press Return."""
    entry.focus_force()
    entry.delete(0, "end")
    entry.insert(0, text)
    if enter:
        entry.event_generate("<Return>")


def open_login(root: tk.Tk, port: int, nick: str = "", **kwargs) -> ClientWindow:
    top = tk.Toplevel(root)
    top.geometry("760x520")
    kwargs.setdefault("remember", False)
    win = ClientWindow(top, host="127.0.0.1", port=port, **kwargs)
    if nick:
        type_into(win.nick_entry, nick)
    root.update()
    return win


def login(root: tk.Tk, port: int, nick: str, **kwargs) -> ClientWindow:
    """A Login window, ENTER clicked, waited until the chat page is up with a user list."""
    win = open_login(root, port, nick, **kwargs)
    win.enter_button.invoke()
    wait_until(root, lambda: win.model is not None and win.model.users, what=f"{nick} logged in")
    return win


def history(win: ClientWindow) -> str:
    """What the history widget shows (display order), as one string."""
    return win.text.get("1.0", "end-1c")


def user_labels(win: ClientWindow) -> list[str]:
    return [win.users.item(i, "text") for i in win.users.get_children()]


def user_unread(win: ClientWindow) -> dict[str, str]:
    return {win.users.item(i, "text"): str(win.users.item(i, "values")[0])
            for i in win.users.get_children()}


def click_user(win: ClientWindow, label_start: str) -> None:
    """Click the users-list row whose label starts with ``label_start``."""
    for iid in win.users.get_children():
        if win.users.item(iid, "text").startswith(label_start):
            win.users.selection_set(iid)
            win.users.event_generate("<<TreeviewSelect>>")
            win.top.update()
            return
    raise AssertionError(f"no user row {label_start!r} in {user_labels(win)}")


def say(win: ClientWindow, text: str) -> None:
    type_into(win.entry, text, enter=True)
    win.top.update()
