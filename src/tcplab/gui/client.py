"""The chat client window (``tcplab client --gui``, ``python -m tcplab.gui.client``).

A thin Tk view: the connection is :class:`tcplab.chat.client.ChatClient` (all socket work on
its own thread), what is shown is decided by :class:`tcplab.gui.model.ChatModel`, and this
module only turns events into widgets. Events are drained from the client's queue with
``after()`` in batches bounded in count and time, so a flood of messages never freezes the
window. Text stays in logical order in the model; each message is wrapped to the history's
width in pixels, then every display line is reordered with python-bidi (Tk on X11 does no
bidi) and right-to-left lines are right-aligned — again whenever the window is resized.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import threading
import time
import tkinter as tk
from collections import deque
from collections.abc import Callable
from tkinter import ttk

from tcplab.chat import client as core
from tcplab.chat.display import base_direction, has_rtl, visual
from tcplab.chat.protocol import Code, nick_problem
from tcplab.chat.sanitize import sanitize
from tcplab.gui import model as m
from tcplab.gui.tkcommon import (
    Collapsible,
    Fonts,
    drop_tk_variables,
    fonts,
    new_root,
    release_tk,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
#: Queue polling: every POLL_MS when idle; while events keep coming, at most MAX_BATCH
#: events or BATCH_SECONDS of work per callback, then Tk gets to redraw and handle input.
POLL_MS = 30
MAX_BATCH = 200
BATCH_SECONDS = 0.025
#: A small grid of common emoji for the picker.
EMOJI = ("😀", "😂", "😊", "😍", "😎", "🤔", "😢", "😡", "👍", "👎", "👏", "🙏",
         "🎉", "❤️", "🔥", "✨", "✅", "❌", "⚠️", "💬", "☕", "🍕", "🚀", "🌍",
         "🐍", "💻", "📦", "🔒", "🇮🇱", "🙂", "👋", "💡")
EMOJI_COLUMNS = 8
#: Rows drawn in the users list; with more users online the search box finds the rest (a
#: Treeview of 10,000 rows rebuilt on every list update would freeze the window).
MAX_ROWS = 300
BANNER_BG = "#fde7e7"


class _Widths(dict):
    """Character → pixel width in the font the history draws it with (asked of Tk once)."""

    def __init__(self, f: Fonts) -> None:
        super().__init__()
        self.text = f.text
        self.emoji = f.emoji if f.has_emoji_font else f.text

    def __missing__(self, ch: str) -> int:
        width = self[ch] = (self.emoji if m.is_emoji_char(ch) else self.text).measure(ch)
        return width


class ClientWindow:
    """One user's chat: a Login page, then the chat page, in one toplevel window."""

    def __init__(self, top: tk.Toplevel | tk.Tk, *, host: str | None = None,
                 port: int | None = None, nick: str = "", password: str | None = None,
                 auto_login: bool = False, history: int = m.DEFAULT_HISTORY,
                 remember: bool = True, on_closed: Callable[[ClientWindow], None] | None = None,
                 ) -> None:
        self.top = top
        self.fonts = fonts(top)
        self._widths = _Widths(self.fonts)
        saved = m.load_settings() if remember else {}
        self.remember = remember
        self.history = history
        self.on_closed = on_closed
        self.client: core.ChatClient | None = None
        self.model: m.ChatModel | None = None
        self.password = password
        self._pending_nick: str | None = None
        self._reconnecting = False
        self._closed = False
        self._shown: deque[tuple[int, int]] = deque()  # (entry seq, Text lines) of the active conversation
        self._shown_key: str | None = None
        self._render_width = 0
        self._resize_job: str | None = None
        self._users_dirty = False
        self._row_keys: dict[str, str] = {}
        self._emoji_picker: tk.Toplevel | None = None
        self._editing = False
        self._at_bottom = True
        #: Longest gap between two drain callbacks, for the responsiveness test and --debug.
        self.max_gap = 0.0
        self._last_tick = time.monotonic()

        top.title("Login")
        top.protocol("WM_DELETE_WINDOW", self.close)
        top.minsize(360, 260)
        self._build_login(host or saved.get("host", DEFAULT_HOST),
                          port or saved.get("port", DEFAULT_PORT), nick)
        self._job = top.after(POLL_MS, self._drain)
        if auto_login and nick:
            top.after_idle(self.enter)

    # -- the Login page ------------------------------------------------------------------

    def _build_login(self, host: str, port: int, nick: str) -> None:
        page = self.login_page = ttk.Frame(self.top, padding=24)
        page.pack(fill="both", expand=True)
        ttk.Label(page, text="Choose a nickname", font=self.fonts.bold).pack(anchor="w")
        self.nick_var = tk.StringVar(value=nick)
        self.nick_entry = ttk.Entry(page, textvariable=self.nick_var, width=32, font=self.fonts.text)
        self.nick_entry.pack(fill="x", pady=(6, 0))
        self.nick_error = ttk.Label(page, text="", style="Error.TLabel", wraplength=420)
        self.nick_error.pack(anchor="w", pady=(2, 6))
        self.password_box = ttk.Frame(page)
        ttk.Label(self.password_box, text="Server password").pack(anchor="w")
        self.password_var = tk.StringVar(value=self.password or "")
        self.password_entry = ttk.Entry(self.password_box, textvariable=self.password_var,
                                        show="•", width=32)
        self.password_entry.pack(fill="x")
        self.password_error = ttk.Label(self.password_box, text="", style="Error.TLabel",
                                        wraplength=420)
        self.password_error.pack(anchor="w")
        self.server_section = Collapsible(page, "Server")
        self.server_section.pack(fill="x", pady=(4, 4))
        body = self.server_section.body
        ttk.Label(body, text="Host").grid(row=0, column=0, sticky="w")
        self.host_var = tk.StringVar(value=host)
        self.host_entry = ttk.Entry(body, textvariable=self.host_var, width=24)
        self.host_entry.grid(row=0, column=1, sticky="we", padx=6, pady=2)
        ttk.Label(body, text="Port").grid(row=1, column=0, sticky="w")
        self.port_var = tk.StringVar(value=str(port))
        self.port_entry = ttk.Entry(body, textvariable=self.port_var, width=8)
        self.port_entry.grid(row=1, column=1, sticky="w", padx=6, pady=2)
        self.server_error = ttk.Label(body, text="", style="Error.TLabel", wraplength=380)
        self.server_error.grid(row=2, column=0, columnspan=2, sticky="w")
        self.enter_button = ttk.Button(page, text="ENTER", command=self.enter, style="Big.TButton")
        self.enter_button.pack(anchor="e", pady=(12, 0))
        self.status = ttk.Label(page, text="", style="Muted.TLabel")
        self.status.pack(anchor="w", pady=(8, 0))
        for w in (self.nick_entry, self.password_entry, self.host_entry, self.port_entry):
            w.bind("<Return>", lambda _e: self.enter())
        self.nick_entry.focus_set()
        if self.password:
            self.password_box.pack(fill="x", before=self.server_section, pady=(0, 4))

    def _login_message(self, where: str, text: str) -> None:
        for label in (self.nick_error, self.password_error, self.server_error):
            label.configure(text="")
        label = {"nick": self.nick_error, "password": self.password_error,
                 "server": self.server_error}[where]
        label.configure(text=text)
        if where == "server":
            self.server_section.open()
        if where == "password":
            self.password_box.pack(fill="x", before=self.server_section, pady=(0, 4))
            self.password_entry.focus_set()
        self.enter_button.state(["!disabled"])
        self.status.configure(text="")

    def enter(self) -> None:
        """ENTER: check the form locally, then connect (or reuse the connection) and log in."""
        if self.model is not None or self._closed:
            return
        nick = self.nick_var.get().strip()
        problem = nick_problem(nick)
        if problem is not None:
            self._login_message("nick", problem)
            self.nick_entry.focus_set()
            return
        host = self.host_var.get().strip()
        if not host:
            self._login_message("server", "Enter the server's address (e.g. 127.0.0.1).")
            return
        try:
            port = int(self.port_var.get().strip())
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self._login_message("server", "The port is a number from 1 to 65535.")
            return
        password = self.password_var.get() or None
        self._pending_nick = nick
        self.enter_button.state(["disabled"])
        for label in (self.nick_error, self.password_error, self.server_error):
            label.configure(text="")
        client = self.client
        if (client is not None and client.connected and (client.host, client.port) == (host, port)
                and password == self.password):
            self.status.configure(text=f"Logging in as {nick}…")
            client.login(nick)
            return
        self._drop_client()
        self.password = password
        self.status.configure(text=f"Connecting to {host}:{port}…")
        self._start_client(host, port)

    def _start_client(self, host: str, port: int) -> None:
        self.client = core.ChatClient(host, port, password=self.password)
        self.client.start()

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            threading.Thread(target=client.close, name="tcplab-gui-close", daemon=True).start()

    # -- events ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Handle queued client events, bounded in count and time, then yield to Tk."""
        now = time.monotonic()
        self.max_gap = max(self.max_gap, now - self._last_tick)
        deadline = now + BATCH_SECONDS
        handled = 0
        client = self.client
        while client is not None and handled < MAX_BATCH:
            try:
                event = client.events.get_nowait()
            except queue.Empty:
                break
            self._handle(client, event)
            handled += 1
            if client is not self.client or time.monotonic() >= deadline:
                break
        self._end_edit()
        if self._users_dirty:
            self._refresh_users()
        if self.model is not None:
            self.top.title(self.model.title())
        self._last_tick = time.monotonic()
        if not self._closed:
            self._job = self.top.after(1 if handled else POLL_MS, self._drain)

    def _handle(self, client: core.ChatClient, ev: core.Event) -> None:
        if isinstance(ev, core.Connected):
            nick = self.model.me if self.model is not None else self._pending_nick
            if nick:
                client.login(nick)
        elif isinstance(ev, core.LoggedIn):
            if self.model is None:
                self._logged_in(ev.nick)
            else:
                self._reconnecting = False
                self._hide_banner()
                self._append(self.model.local_notice(m.EVERYONE, "Reconnected."))
        elif isinstance(ev, core.LoginRefused):
            text = sanitize(ev.text)
            if ev.code == Code.PASSWORD:
                self._drop_client()  # a password goes first on a new connection
            if self.model is None:
                self._login_message("password" if ev.code == Code.PASSWORD else "nick", text)
                if ev.code != Code.PASSWORD:
                    self.nick_entry.focus_set()
                    self.nick_entry.select_range(0, "end")
            else:
                self._drop_client()
                self._reconnecting = False
                self._show_banner(f"Could not log in again: {text}")
        elif isinstance(ev, core.Disconnected):
            self._disconnected(ev)
        elif self.model is None:
            if isinstance(ev, core.SystemNotice) and ev.is_error:
                self._login_message("nick", sanitize(ev.text))  # e.g. 503 server full
        elif isinstance(ev, core.PrivateMessage):
            self._append(self.model.incoming(ev.sender, ev.text))
        elif isinstance(ev, core.BroadcastMessage):
            self._append(self.model.incoming(ev.sender, ev.text, broadcast=True))
        elif isinstance(ev, core.OnlineUsers):
            for conv in self.model.set_users(ev.users):
                self._append(conv)
            self._users_dirty = True
        elif isinstance(ev, core.SystemNotice):
            self._append(self.model.server_notice(ev.code, ev.text))
        elif isinstance(ev, (core.UserJoined, core.UserLeft)):
            for conv in self.model.set_users(client.online):
                self._append(conv)
            self._users_dirty = True

    def _disconnected(self, ev: core.Disconnected) -> None:
        self._drop_client()
        reason = sanitize(ev.reason)
        if self.model is None:
            self._login_message("server", reason[:1].upper() + reason[1:])
            return
        if ev.by_user:
            return
        self.model.disconnected()
        self._users_dirty = True
        self._reconnecting = False
        self._show_banner(f"Disconnected: {reason}.")

    # -- the chat page ---------------------------------------------------------------------

    def _logged_in(self, nick: str) -> None:
        if self.remember and self.client is not None:
            m.save_settings({"host": self.client.host, "port": self.client.port})
        self.model = m.ChatModel(nick, history=self.history)
        self.login_page.destroy()
        self._build_chat()
        self.top.minsize(560, 360)
        self._switch(m.EVERYONE)
        self._users_dirty = True

    def _build_chat(self) -> None:
        top, f = self.top, self.fonts
        panes = ttk.PanedWindow(top, orient="horizontal")
        panes.pack(fill="both", expand=True)
        left = ttk.Frame(panes, padding=(8, 8, 4, 8))
        right = ttk.Frame(panes, padding=(4, 8, 8, 8))
        panes.add(left, weight=1)
        panes.add(right, weight=4)

        ttk.Label(left, text="Online", font=f.bold).pack(anchor="w")
        self.search_var = tk.StringVar()
        self.search_entry = ttk.Entry(left, textvariable=self.search_var, width=18)
        self.search_entry.pack(fill="x", pady=(4, 4))
        self.search_var.trace_add("write", lambda *_: self._refresh_users())
        self.search_entry.bind("<Return>", self._search_enter)
        self.users = ttk.Treeview(left, columns=("unread",), show="tree", selectmode="browse",
                                  height=12)
        self.users.column("#0", width=150, stretch=True)
        self.users.column("unread", width=36, anchor="e", stretch=False)
        self.users.tag_configure("me", font=f.bold)
        self.users.tag_configure("offline", foreground="#80868b")
        self.users.tag_configure("unread", font=f.bold)
        self.users.pack(fill="both", expand=True)
        self.users.bind("<<TreeviewSelect>>", self._user_selected)
        self.users.bind("<Return>", self._user_selected)

        self.header = ttk.Label(right, text="", font=f.bold)
        self.header.pack(anchor="w", fill="x")
        self.banner = tk.Frame(right, background=BANNER_BG, padx=8, pady=6)
        self.banner_label = tk.Label(self.banner, text="", background=BANNER_BG,
                                     foreground="#8c1d18", font=f.bold, anchor="w",
                                     justify="left")
        self.banner_label.pack(side="left", fill="x", expand=True)
        self.reconnect_button = ttk.Button(self.banner, text="Reconnect", command=self.reconnect)
        self.reconnect_button.pack(side="right")

        history = ttk.Frame(right)
        history.pack(fill="both", expand=True, pady=(4, 4))
        self.text = tk.Text(history, wrap="none", font=f.text, padx=8, pady=6, relief="flat",
                            background="#ffffff", borderwidth=1, highlightthickness=1,
                            highlightcolor="#9aa0a6", cursor="arrow", spacing1=1, spacing3=1,
                            undo=False, takefocus=0, height=16, width=56)
        scroll = ttk.Scrollbar(history, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)
        self._configure_tags()
        self.text.configure(state="disabled")
        self.text.bind("<Configure>", self._on_resize)
        self.text.bind("<<Copy>>", self._copy)
        self.text.bind("<Control-c>", self._copy)
        self.text.bind("<1>", lambda _e: self.text.focus_set())

        self.preview = tk.Label(right, text="", font=f.text, anchor="e", foreground="#3c4043")
        self.preview.pack(fill="x")
        bottom = ttk.Frame(right)
        bottom.pack(fill="x")
        self.entry_var = tk.StringVar()
        self.entry = ttk.Entry(bottom, textvariable=self.entry_var, font=f.text)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry_var.trace_add("write", lambda *_: self._update_preview())
        self.entry.bind("<Return>", lambda _e: self.send())
        self.emoji_button = tk.Button(bottom, text="😀", font=f.emoji, relief="flat",
                                      command=self.toggle_emoji, takefocus=1, borderwidth=0)
        self.emoji_button.pack(side="left", padx=(4, 0))
        self.send_button = ttk.Button(bottom, text="Send", command=self.send)
        self.send_button.pack(side="left", padx=(4, 0))

        top.bind("<Control-k>", self._jump_to_user)
        top.bind("<Control-K>", self._jump_to_user)
        top.bind("<Control-w>", lambda _e: self.close_conversation())
        top.bind("<Control-W>", lambda _e: self.close_conversation())
        self.entry.focus_set()

    def _configure_tags(self) -> None:
        t, f = self.text, self.fonts
        t.tag_configure("time", foreground="#80868b", font=f.small)
        t.tag_configure("nick", font=f.bold)
        for colour in m.PALETTE:
            t.tag_configure(f"c{colour}", foreground=colour)
        t.tag_configure("own", background="#e8f0fe")
        t.tag_configure("ownnick", font=f.bold, foreground="#174ea6")
        t.tag_configure("body", lmargin1=14, lmargin2=14, rmargin=6)
        t.tag_configure("rtl", justify="right")
        t.tag_configure("error", foreground="#b3261e", font=f.bold)
        t.tag_configure("system", foreground="#5f6368")
        t.tag_configure("notice", foreground="#80868b", font=f.small)
        t.tag_configure("emoji", font=f.emoji)
        t.tag_raise("sel")

    # -- rendering -------------------------------------------------------------------------

    def measure(self, text: str) -> int:
        """Pixels ``text`` takes in the history, emoji measured in the emoji font.

        Tk draws without shaping or kerning, so a string's width is the sum of its
        characters' widths (checked against ``font.measure`` in the tests); widths are
        cached per character, which keeps wrapping a hostile 4 KB word to milliseconds
        where asking Tk for every candidate line took seconds.
        """
        return sum(map(self._widths.__getitem__, text))

    def body_width(self) -> int:
        """Pixels available to a message body: the widget less padding, margins and a
        little slack so Tk never has to wrap or clip a line we cut."""
        width = self.text.winfo_width()
        if width <= 1:
            width = int(self.text.cget("width")) * self.fonts.text.measure("0")
        return max(40, width - 2 * int(self.text.cget("padx")) - 14 - 6 - 12)

    def _insert_line(self, line: str, tags: tuple[str, ...]) -> None:
        t = self.text
        if self.fonts.has_emoji_font and not line.isascii():
            for run, emoji in m.emoji_runs(line):
                t.insert("end", run, (*tags, "emoji") if emoji else tags)
        else:
            t.insert("end", line, tags)
        t.insert("end", "\n", tags)

    def _render_entry(self, entry: m.Entry, width: int) -> int:
        """Draw one history entry at the end of the Text; return the lines it took."""
        base = (f"e{entry.seq}",)
        own = ("own",) if entry.kind == m.OWN else ()
        t = self.text
        lines = 0
        if entry.kind in (m.INCOMING, m.OWN):
            nick_tags = ("ownnick",) if entry.kind == m.OWN else ("nick", f"c{m.colour_for(entry.sender)}")
            t.insert("end", entry.clock() + "  ", (*base, "time", *own))
            self._insert_line(m.display_name(entry.sender), (*base, *nick_tags, *own))
            lines += 1
            body_tags = (*base, "body", *own)
            text = entry.text
        else:
            body_tags = (*base, entry.kind)
            text = f"System: {entry.text}" if entry.kind in (m.ERROR, m.SYSTEM) else entry.text
            text = f"{entry.clock()}  {text}"
        for dl in m.body_lines(text, width, self.measure):
            self._insert_line(dl.text, (*body_tags, "rtl") if dl.rtl else body_tags)
            lines += 1
        return lines

    def _append(self, conv: m.Conversation | None) -> None:
        """A conversation got a new entry: draw it if it is on screen, else count it."""
        if conv is None:
            return
        self._users_dirty = True
        if self.model is None or conv.key != self.model.active or self._shown_key != conv.key:
            return
        t = self.text
        self._begin_edit()
        width = self._render_width or self.body_width()
        last = self._shown[-1][0] if self._shown else 0
        new = []
        for entry in reversed(conv.entries):  # the new ones are at the end
            if entry.seq <= last:
                break
            new.append(entry)
        for entry in reversed(new):
            self._shown.append((entry.seq, self._render_entry(entry, width)))
        # Entries the model forgot (history cap) leave the screen too.
        first = conv.entries[0].seq if conv.entries else 1 << 62
        drop = 0
        while self._shown and self._shown[0][0] < first:
            drop += self._shown.popleft()[1]
        if drop:
            t.delete("1.0", f"{drop + 1}.0")

    def _begin_edit(self) -> None:
        """Open the history for writing once per batch of events (not once per message:
        a flood then costs one scroll and one state change per batch)."""
        if not self._editing:
            self._editing = True
            self._at_bottom = self.text.yview()[1] >= 0.999
            self.text.configure(state="normal")

    def _end_edit(self) -> None:
        if self._editing:
            self._editing = False
            self.text.configure(state="disabled")
            if self._at_bottom:
                self.text.see("end")

    def _render_all(self) -> None:
        """Draw the active conversation from scratch (on switch and on resize)."""
        assert self.model is not None
        conv = self.model.conversations[self.model.active]
        t = self.text
        self._editing = False
        self._render_width = self.body_width()
        t.configure(state="normal")
        t.delete("1.0", "end")
        self._shown.clear()
        self._shown_key = conv.key
        for entry in conv.entries:
            self._shown.append((entry.seq, self._render_entry(entry, self._render_width)))
        t.configure(state="disabled")
        t.see("end")

    def _on_resize(self, _event: tk.Event) -> None:
        if self.model is None:
            return
        if abs(self.body_width() - self._render_width) < 2:
            return
        if self._resize_job is not None:
            self.top.after_cancel(self._resize_job)
        self._resize_job = self.top.after(80, self._resized)

    def _resized(self) -> None:
        self._resize_job = None
        if self.model is not None and not self._closed:
            self._render_all()

    def _copy(self, _event: tk.Event | None = None) -> str:
        """Copy puts the selected messages on the clipboard in logical order (what was
        typed), not the reordered display lines."""
        if self.model is None:
            return "break"
        t = self.text
        try:
            first, last = t.index("sel.first"), t.index("sel.last")
        except tk.TclError:
            return "break"
        conv = self.model.conversations.get(self._shown_key or "")
        if conv is None:
            return "break"
        by_seq = {e.seq: e for e in conv.entries}
        picked = []
        for seq, _n in self._shown:
            rng = t.tag_ranges(f"e{seq}")
            if rng and t.compare(rng[0], "<", last) and t.compare(rng[-1], ">", first):
                entry = by_seq.get(seq)
                if entry is not None:
                    picked.append(entry.copy_text())
        t.clipboard_clear()
        t.clipboard_append("\n".join(picked))
        return "break"

    # -- the users list --------------------------------------------------------------------

    def _refresh_users(self) -> None:
        self._users_dirty = False
        if self.model is None:
            return
        tree = self.users
        rows = self.model.rows(self.search_var.get())
        tree.delete(*tree.get_children())
        self._row_keys = {}
        active_iid = None
        hidden = len(rows) - MAX_ROWS
        if hidden > 0:  # thousands online: show the first ones, searching finds the rest
            keep = {self.model.active} | {k for k, c in self.model.conversations.items()
                                          if c.unread}
            rows = rows[:MAX_ROWS] + [r for r in rows[MAX_ROWS:] if r.key in keep]
            hidden = len(self.model.rows(self.search_var.get())) - len(rows)
        for i, row in enumerate(rows):
            iid = f"r{i}"
            self._row_keys[iid] = row.key
            tags = (("me",) if row.me else ()) + (() if row.online else ("offline",)) + (
                ("unread",) if row.unread else ())
            tree.insert("", "end", iid=iid, text=row.label, values=(row.unread or "",), tags=tags)
            if row.key == self.model.active:
                active_iid = iid
        if hidden > 0:
            tree.insert("", "end", iid="more", text=f"… {hidden} more: type to search",
                        tags=("offline",))
        if active_iid is not None:
            self._selecting = True
            tree.selection_set(active_iid)
            tree.see(active_iid)
            self._selecting = False
        self._update_header()

    _selecting = False

    def _user_selected(self, _event: tk.Event | None = None) -> None:
        if self._selecting or self.model is None:
            return
        sel = self.users.selection()
        if not sel:
            return
        key = self._row_keys.get(sel[0])
        if key is None or key == self.model.me:
            return
        if key != self.model.active:
            self._switch(key)

    def _search_enter(self, _event: tk.Event) -> str:
        """Enter in the search box opens the first matching user's conversation."""
        if self.model is not None:
            for row in self.model.rows(self.search_var.get()):
                if row.key != m.EVERYONE and not row.me:
                    self.search_var.set("")
                    self._switch(row.key)
                    self.entry.focus_set()
                    break
        return "break"

    def _jump_to_user(self, _event: tk.Event | None = None) -> str:
        self.search_entry.focus_set()
        self.search_entry.select_range(0, "end")
        return "break"

    def open_conversation(self, key: str) -> None:
        """Open or switch to the conversation with ``key`` (a nickname or model.EVERYONE)."""
        self._switch(key)

    def _switch(self, key: str) -> None:
        assert self.model is not None
        self.model.switch(key)
        self._render_all()
        self._refresh_users()
        self.top.title(self.model.title())

    def _update_header(self) -> None:
        if self.model is None:
            return
        conv = self.model.conversations[self.model.active]
        if conv.key == m.EVERYONE:
            text = "Everyone — messages to all users online"
        else:
            text = m.display_name(conv.key) + ("" if conv.online else "  (offline)")
        self.header.configure(text=text)

    def close_conversation(self) -> str:
        """Ctrl+W: close the conversation on screen (Everyone stays)."""
        if self.model is not None:
            self.model.close(self.model.active)
            self._switch(self.model.active)
        return "break"

    # -- sending ---------------------------------------------------------------------------

    def _update_preview(self) -> None:
        """A Tk Entry cannot reorder as you type: show Hebrew in display order below it."""
        text = self.entry_var.get()
        if has_rtl(text):
            self.preview.configure(text=visual(text),
                                   anchor="e" if base_direction(text) == "rtl" else "w")
        else:
            self.preview.configure(text="")

    def send(self) -> None:
        """Enter: send what was typed to the conversation on screen.

        ``/users`` and ``/ping`` go to the server as typed, and ``/raw LINE`` sends
        LINE exactly as typed (``Bob hi`` without a colon, ``: hi``), so scenarios C and D
        can be shown from the window; the server's answer appears in this conversation.
        """
        if self.model is None:
            return
        raw = self.entry_var.get()
        key = self.model.active
        client = self.client
        if client is None or not client.connected or self._reconnecting:
            self._append(self.model.local_notice(key, "Not sent: not connected (use Reconnect)."))
            self._end_edit()
            return
        ok = True
        lines = [ln for ln in raw.replace("\r", "\n").split("\n")] or [""]
        lines = [ln for ln in lines if ln.strip()] or [""]
        for text in lines:
            if text.startswith("/raw"):
                ok = client.send_raw(text[5:]) and ok
                self.model.sent_raw(key)
            elif text.startswith("/"):
                ok = client.send_raw(text.strip()) and ok
                self.model.sent_raw(key)
            elif not text.strip():
                # Let the server judge it: scenario D's "Name or message cannot be empty."
                ok = client.send_raw(f"{'*' if key == m.EVERYONE else key}:") and ok
                self.model.sent_raw(key)
            else:
                ok = (client.broadcast(text) if key == m.EVERYONE else client.send(key, text)) and ok
                self._append(self.model.sent(key, text))
        if not ok:
            self._append(self.model.local_notice(key, "Some text was not sent: too much queued."))
        self._end_edit()
        self.entry_var.set("")

    # -- emoji picker ----------------------------------------------------------------------

    def toggle_emoji(self) -> None:
        if self._emoji_picker is not None:
            self.close_emoji()
            return
        pick = self._emoji_picker = tk.Toplevel(self.top)
        pick.title("Emoji")
        pick.transient(self.top)
        pick.resizable(False, False)
        # The name of the emoji under the pointer or focus: what it is even where no
        # font can draw it (then the button shows a box or a monochrome glyph).
        name = ttk.Label(pick, text="", style="Muted.TLabel", anchor="w")
        name.grid(row=len(EMOJI) // EMOJI_COLUMNS + 1, column=0, columnspan=EMOJI_COLUMNS,
                  sticky="we", padx=4)
        self.emoji_name = name
        for i, emoji in enumerate(EMOJI):
            b = tk.Button(pick, text=emoji, font=self.fonts.emoji, width=2, relief="flat",
                          command=lambda e=emoji: self.insert_emoji(e))
            b.grid(row=i // EMOJI_COLUMNS, column=i % EMOJI_COLUMNS, padx=1, pady=1)
            b.bind("<Return>", lambda _ev, e=emoji: self.insert_emoji(e))
            label = m.codepoint_names(emoji).strip("[]").lower()
            for seq in ("<Enter>", "<FocusIn>"):
                b.bind(seq, lambda _ev, t=label: name.configure(text=t))
        pick.bind("<Escape>", lambda _e: self.close_emoji())
        pick.protocol("WM_DELETE_WINDOW", self.close_emoji)
        x = self.emoji_button.winfo_rootx() - 8 * 40
        y = self.emoji_button.winfo_rooty() - 4 * 44
        pick.geometry(f"+{max(0, x)}+{max(0, y)}")
        pick.grid_slaves(row=0, column=0)[0].focus_set()

    def close_emoji(self) -> None:
        pick, self._emoji_picker = self._emoji_picker, None
        if pick is not None:
            pick.destroy()
            if not self._closed:
                self.entry.focus_set()

    def insert_emoji(self, emoji: str) -> None:
        """Insert at the entry's cursor (Tk counts a non-BMP emoji as two index units;
        inserting at the "insert" mark keeps the cursor after it whatever the count)."""
        self.entry.insert("insert", emoji)
        self.close_emoji()

    # -- banner, reconnect, closing --------------------------------------------------------

    def _show_banner(self, text: str) -> None:
        self.banner_label.configure(text=text)
        self.reconnect_button.state(["!disabled"])
        if not self.banner.winfo_ismapped():
            self.banner.pack(fill="x", after=self.header, pady=(4, 0))
        self._update_header()

    def _hide_banner(self) -> None:
        self.banner.pack_forget()

    @property
    def banner_text(self) -> str:
        """The banner's text, "" while it is hidden (for tests and screen readers)."""
        if self.model is None or not self.banner.winfo_manager():
            return ""
        return str(self.banner_label.cget("text"))

    def reconnect(self) -> None:
        """Connect again to the same server and log in with the same nickname."""
        if self.model is None or self._closed or self._reconnecting:
            return
        prev = self.client
        host, port = (prev.host, prev.port) if prev else (self.host_var.get(), int(self.port_var.get()))
        self._drop_client()
        self._reconnecting = True
        self.reconnect_button.state(["disabled"])
        self.banner_label.configure(text=f"Reconnecting to {host}:{port}…")
        self._start_client(host, port)

    def close(self) -> None:
        """Closing the window says goodbye with FIN (the client core's close) and never
        waits on the network on the Tk thread."""
        if self._closed:
            return
        self._closed = True
        for job in (self._job, self._resize_job):
            if job is not None:
                with contextlib.suppress(tk.TclError):
                    self.top.after_cancel(job)
        self.close_emoji()
        self._drop_client()
        with contextlib.suppress(tk.TclError):
            self.top.destroy()
        drop_tk_variables(self)
        if self.on_closed is not None:
            self.on_closed(self)


def run(nicks: list[str] | None = None, *, host: str | None = None, port: int | None = None,
        password: str | None = None, history: int = m.DEFAULT_HISTORY) -> int:
    """Open one window per nickname (one empty Login window without any) and run Tk."""
    holder = [new_root()]
    _run_windows(holder[0], nicks, host=host, port=port, password=password, history=history)
    release_tk(holder)
    # Let the close threads say goodbye (FIN) before the process ends.
    for thread in threading.enumerate():
        if thread.name == "tcplab-gui-close":
            thread.join(core.CLOSE_TIMEOUT + 1.0)
    return 0


def _run_windows(root: tk.Tk, nicks: list[str] | None, **options: object) -> None:
    root.withdraw()
    windows: list[ClientWindow] = []

    def closed(win: ClientWindow) -> None:
        windows.remove(win)
        if not windows:
            root.after(50, root.quit)

    for i, nick in enumerate(nicks or [""]):
        top = tk.Toplevel(root)
        top.geometry(f"+{40 + 60 * i}+{40 + 50 * i}")
        windows.append(ClientWindow(top, nick=nick, auto_login=bool(nick), on_closed=closed,
                                    **options))  # type: ignore[arg-type]
    try:
        root.mainloop()
    except KeyboardInterrupt:
        for win in list(windows):
            win.close()


def main(argv: list[str] | None = None) -> int:
    from tcplab.cli.common import port_number, positive_int
    from tcplab.errors import TcplabError

    p = argparse.ArgumentParser(prog="python -m tcplab.gui.client",
                                description="The tcplab chat client window.")
    p.add_argument("--host", default=None, help="server address (default: the last one used)")
    p.add_argument("--port", type=port_number, default=None, help="server port")
    p.add_argument("--nick", action="append", default=None,
                   help="log in with this nickname; repeat it to open several windows")
    p.add_argument("--password", default=None, help="server password")
    p.add_argument("--history", type=positive_int, default=m.DEFAULT_HISTORY,
                   help="messages kept per conversation")
    args = p.parse_args(argv)
    try:
        return run(args.nick, host=args.host, port=args.port, password=args.password,
                   history=args.history)
    except TcplabError as exc:
        import sys

        print(f"tcplab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
