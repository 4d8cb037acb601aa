"""The server console (``tcplab server --gui``, ``python -m tcplab.gui.server``).

"Server Config" collects the settings and starts :class:`tcplab.chat.server.ChatServer`
on a background thread; "System Logs" then shows its live log, the connected users and
counters. The server's loop calls an observer on its own thread; the observer only puts
onto a bounded queue, which the Tk thread drains with ``after()`` — the server never waits
for the window, and the window never touches a socket. STOP SERVER is the same graceful
shutdown as SIGTERM (:meth:`ChatServer.request_shutdown`: every client is told).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import queue
import threading
import time
import tkinter as tk
from tkinter import filedialog, ttk

from tcplab.chat.display import has_rtl, visual
from tcplab.chat.protocol import Limits
from tcplab.chat.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_PORT,
    ChatServer,
    make_server_ssl_context,
)
from tcplab.errors import EnvironmentProblem, InputError
from tcplab.gui.model import ConsoleModel
from tcplab.gui.tkcommon import Collapsible, drop_tk_variables, fonts, new_root, release_tk

#: Observer events queued for the window; past this the server drops (and counts) them
#: rather than wait: the console is a view, never a brake on the server.
MAX_QUEUED = 50_000
POLL_MS = 50
MAX_BATCH = 2000
LOG_LINES = 5000


class ServerWindow:
    """The Server Config page, then the System Logs page, in one toplevel window."""

    def __init__(self, top: tk.Tk | tk.Toplevel, *, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, max_clients: int = DEFAULT_MAX_CLIENTS,
                 password: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, log_messages: bool = False,
                 limits: Limits | None = None, server_options: dict | None = None) -> None:
        self.top = top
        #: Further ChatServer arguments the form does not show (``tcplab server``'s flags).
        self.server_options = dict(server_options or {})
        self.fonts = fonts(top)
        self.base_limits = limits or Limits(idle_timeout=300.0, login_timeout=60.0)
        self.server: ChatServer | None = None
        self.thread: threading.Thread | None = None
        self.events: queue.Queue[tuple[str, int, dict]] = queue.Queue(MAX_QUEUED)
        self.dropped = 0
        self.model = ConsoleModel(max_log=LOG_LINES)
        self.logs_page: ttk.Frame | None = None
        self._closing = False
        top.protocol("WM_DELETE_WINDOW", self.close)
        self._build_config(host, port, max_clients, password, tls_cert, tls_key, log_messages)
        self._job = top.after(POLL_MS, self._drain)
        self._tick_job = top.after(1000, self._tick)

    # -- Server Config ---------------------------------------------------------------------

    def _build_config(self, host: str, port: int, max_clients: int, password: str | None,
                      cert: str | None, key: str | None, log_messages: bool) -> None:
        self.top.title("Server Config")
        page = self.config_page = ttk.Frame(self.top, padding=24)
        page.pack(fill="both", expand=True)
        page.columnconfigure(1, weight=1)
        self.host_var = tk.StringVar(value=host)
        self.port_var = tk.StringVar(value=str(port))
        self.errors: dict[str, ttk.Label] = {}
        self.host_entry = self._field(page, 0, "Host", self.host_var, "host")
        self.port_entry = self._field(page, 2, "Port", self.port_var, "port", width=8)
        self.options = Collapsible(page, "Options")
        self.options.grid(row=4, column=0, columnspan=3, sticky="we", pady=(8, 0))
        body = self.options.body
        body.columnconfigure(1, weight=1)
        self.max_clients_var = tk.StringVar(value=str(max_clients))
        self.password_var = tk.StringVar(value=password or "")
        self.cert_var = tk.StringVar(value=cert or "")
        self.key_var = tk.StringVar(value=key or "")
        self.log_messages_var = tk.BooleanVar(value=log_messages)
        self._field(body, 0, "Max clients", self.max_clients_var, "max_clients", width=8)
        self._field(body, 2, "Password", self.password_var, "password", show="•")
        self._field(body, 4, "TLS certificate", self.cert_var, "cert", browse=True)
        self._field(body, 6, "TLS key", self.key_var, "key", browse=True)
        ttk.Checkbutton(body, text="Log message text (off: metadata only)",
                        variable=self.log_messages_var).grid(row=8, column=0, columnspan=3,
                                                             sticky="w", pady=(4, 0))
        if password or cert or log_messages:
            self.options.open()
        self.start_button = ttk.Button(page, text="START SERVER", command=self.start,
                                       style="Big.TButton")
        self.start_button.grid(row=5, column=0, columnspan=3, sticky="e", pady=(16, 0))
        for w in (self.host_entry, self.port_entry):
            w.bind("<Return>", lambda _e: self.start())
        self.host_entry.focus_set()

    def _field(self, parent: tk.Misc, row: int, label: str, var: tk.StringVar, name: str, *,
               width: int = 28, show: str = "", browse: bool = False) -> ttk.Entry:
        ttk.Label(parent, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
        entry = ttk.Entry(parent, textvariable=var, width=width, show=show)
        entry.grid(row=row, column=1, sticky="we" if width > 10 else "w", pady=2)
        if browse:
            ttk.Button(parent, text="Browse…",
                       command=lambda: self._browse(var, label)).grid(row=row, column=2, padx=4)
        err = ttk.Label(parent, text="", style="Error.TLabel", wraplength=380)
        err.grid(row=row + 1, column=1, columnspan=2, sticky="w")
        err.grid_remove()  # shown only with a message, so the form stays compact
        self.errors[name] = err
        return entry

    def _browse(self, var: tk.StringVar, title: str) -> None:
        path = filedialog.askopenfilename(parent=self.top, title=title,
                                          filetypes=[("PEM files", "*.pem *.crt *.key"),
                                                     ("All files", "*")])
        if path:
            var.set(path)

    def _error(self, name: str, text: str) -> None:
        self.errors[name].configure(text=text)
        self.errors[name].grid()
        if name in ("max_clients", "password", "cert", "key"):
            self.options.open()

    def start(self) -> None:
        """START SERVER: check the fields, bind (errors shown next to the field at fault),
        then run the server on its own thread and show the System Logs."""
        if self.server is not None:
            return
        for label in self.errors.values():
            label.configure(text="")
            label.grid_remove()
        host = self.host_var.get().strip()
        if not host:
            self._error("host", "Enter an address to listen on (127.0.0.1: this machine only).")
            return
        try:
            port = int(self.port_var.get().strip())
            if not 0 <= port < 65536:
                raise ValueError
        except ValueError:
            self._error("port", "The port is a number from 0 to 65535 (0: any free port).")
            return
        try:
            max_clients = int(self.max_clients_var.get().strip())
            if max_clients < 1:
                raise ValueError
        except ValueError:
            self._error("max_clients", "Max clients is a whole number, at least 1.")
            return
        cert, key = self.cert_var.get().strip(), self.key_var.get().strip()
        if key and not cert:
            self._error("key", "A TLS key needs a certificate too.")
            return
        for name, path in (("cert", cert), ("key", key)):
            if path and not os.access(path, os.R_OK):
                self._error(name, f"Cannot read {path!r}: "
                            + ("no such file." if not os.path.exists(path) else "permission denied."))
                return
        ctx = None
        if cert:
            try:
                ctx = make_server_ssl_context(cert, key or None)
            except InputError as exc:
                self._error("cert", str(exc))
                return
        base = self.base_limits
        limits = Limits(max_line=base.max_line, rate=base.rate, burst=base.burst,
                        idle_timeout=base.idle_timeout, login_timeout=base.login_timeout,
                        password=self.password_var.get() or None,
                        log_messages=self.log_messages_var.get())
        try:
            server = ChatServer(host, port, limits=limits, max_clients=max_clients,
                                ssl_context=ctx, observer=self._observe, **self.server_options)
        except EnvironmentProblem as exc:
            self._error(_bind_field(exc), str(exc).replace("--host ", "host "))
            return
        self.server = server
        self.dropped = 0
        self.thread = threading.Thread(target=server.serve_forever, name="tcplab-gui-server",
                                       daemon=True)
        self.thread.start()
        self._show_logs()

    def _observe(self, event: str, conn: int, fields: dict) -> None:
        """Runs on the server's thread: queue and return, never block."""
        try:
            self.events.put_nowait((event, conn, fields))
        except queue.Full:
            self.dropped += 1

    # -- System Logs -----------------------------------------------------------------------

    def _show_logs(self) -> None:
        self.top.title("System Logs")
        self.config_page.pack_forget()
        if self.logs_page is None:
            self._build_logs()
        assert self.logs_page is not None
        self.logs_page.pack(fill="both", expand=True)
        self.stop_button.configure(text="STOP SERVER", command=self.stop)
        self.stop_button.state(["!disabled"])
        self.settings_button.state(["disabled"])
        self.top.minsize(640, 420)

    def _build_logs(self) -> None:
        f = self.fonts
        page = self.logs_page = ttk.Frame(self.top, padding=12)
        bar = ttk.Frame(page)
        bar.pack(fill="x")
        self.address_label = ttk.Label(bar, text="", font=f.bold)
        self.address_label.pack(side="left")
        self.settings_button = ttk.Button(bar, text="Settings…", command=self.back_to_config)
        self.settings_button.pack(side="right")
        self.stop_button = ttk.Button(bar, text="STOP SERVER", command=self.stop,
                                      style="Big.TButton")
        self.stop_button.pack(side="right", padx=(0, 8))
        counters = ttk.Frame(page, padding=(0, 8))
        counters.pack(fill="x")
        self.counter_labels: dict[str, ttk.Label] = {}
        for name in ("Users now / peak", "Messages routed", "Errors", "Uptime"):
            box = ttk.Frame(counters, padding=(0, 0, 24, 0))
            box.pack(side="left")
            ttk.Label(box, text=name, style="Muted.TLabel").pack(anchor="w")
            value = ttk.Label(box, text="0", font=f.bold)
            value.pack(anchor="w")
            self.counter_labels[name] = value
        panes = ttk.PanedWindow(page, orient="vertical")
        panes.pack(fill="both", expand=True)
        table_box = ttk.Frame(panes)
        cols = ("nick", "address", "since", "messages")
        self.table = ttk.Treeview(table_box, columns=cols, show="headings", height=6)
        for col, title, anchor in (("nick", "Nickname", "w"), ("address", "Address:port", "w"),
                                   ("since", "Connected since", "w"),
                                   ("messages", "Messages sent", "e")):
            width = max(f.bold.measure(title) + 24, f.text.measure("0" * 10))
            self.table.heading(col, text=title, anchor=anchor)
            self.table.column(col, width=width * (2 if col == "nick" else 1), minwidth=width,
                              anchor=anchor, stretch=col in ("nick", "address"))
        self.table.pack(fill="both", expand=True)
        log_box = ttk.Frame(panes)
        self.log_text = tk.Text(log_box, font=f.mono, wrap="word", height=14, state="disabled",
                                background="#fbfbfb", relief="flat", padx=6, pady=4,
                                borderwidth=1, highlightthickness=0)
        scroll = ttk.Scrollbar(log_box, orient="vertical", command=self.log_text.yview)
        self.log_text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.log_text.pack(side="left", fill="both", expand=True)
        self.log_text.tag_configure("error", foreground="#b3261e")
        self.log_text.tag_configure("warn", foreground="#8a5a00")
        panes.add(table_box, weight=1)
        panes.add(log_box, weight=2)

    def stop(self) -> None:
        """STOP SERVER: the graceful shutdown SIGTERM does; the page stays to read the log."""
        if self.server is not None:
            self.server.request_shutdown()
            self.stop_button.state(["disabled"])
            self.stop_button.configure(text="Stopping…")

    def restart(self) -> None:
        """START SERVER again with the same settings (the port is reusable at once)."""
        self.start()
        if self.server is None:  # the bind failed: the config page says why
            self.back_to_config()

    def back_to_config(self) -> None:
        if self.server is not None or self.logs_page is None:
            return
        self.logs_page.pack_forget()
        self.top.title("Server Config")
        self.config_page.pack(fill="both", expand=True)

    def _stopped(self) -> None:
        if self.thread is not None:
            self.thread.join(1.0)
        self.server = None
        self.thread = None
        if self._closing:
            self._destroy()
            return
        self.stop_button.configure(text="START SERVER", command=self.restart)
        self.stop_button.state(["!disabled"])
        self.settings_button.state(["!disabled"])

    # -- draining --------------------------------------------------------------------------

    def _drain(self) -> None:
        handled = 0
        dirty = False
        lines: list[tuple[str, str]] = []
        deadline = time.monotonic() + 0.03
        stopped = False
        while handled < MAX_BATCH and time.monotonic() < deadline:
            try:
                event, conn, fields = self.events.get_nowait()
            except queue.Empty:
                break
            handled += 1
            line = self.model.apply(event, conn, fields)
            dirty = True
            if line is not None:
                kind = "error" if event in ("error", "slow_consumer", "accept_failed") else (
                    "warn" if event in ("refused", "flood") else "")
                lines.append((line, kind))
            if event == "listening":
                self.address_label.configure(text=f"Listening on {fields.get('address', '?')}"
                                             + ("  (TLS)" if fields.get("tls") else ""))
            if event == "stopped":
                stopped = True
        if lines:
            self._append_log(lines)
        if dirty:
            self._refresh()
        if stopped:
            self.address_label.configure(text="Stopped")
            self._stopped()
        if not self._closing or self.server is not None:
            self._job = self.top.after(1 if handled == MAX_BATCH else POLL_MS, self._drain)

    def _append_log(self, lines: list[tuple[str, str]]) -> None:
        t = self.log_text
        at_bottom = t.yview()[1] >= 0.999
        t.configure(state="normal")
        for line, kind in lines:
            t.insert("end", (visual(line) if has_rtl(line) else line) + "\n", kind)
        extra = int(t.index("end-1c").split(".")[0]) - 1 - LOG_LINES
        if extra > 0:
            t.delete("1.0", f"{extra + 1}.0")
        t.configure(state="disabled")
        if at_bottom:
            t.see("end")

    def _refresh(self) -> None:
        if self.logs_page is None:
            return
        model = self.model
        rows = model.table()
        tree = self.table
        tree.delete(*tree.get_children())
        for cid, nick, peer, since, messages in rows:
            tree.insert("", "end", iid=str(cid), values=(nick, peer, since, messages))
        errors = model.errors + self.dropped
        self.counter_labels["Users now / peak"].configure(text=f"{len(model.users)} / {model.peak}")
        self.counter_labels["Messages routed"].configure(text=str(model.routed))
        self.counter_labels["Errors"].configure(text=str(errors))
        self.counter_labels["Uptime"].configure(text=model.uptime())

    def _tick(self) -> None:
        if self.logs_page is not None:
            self.counter_labels["Uptime"].configure(text=self.model.uptime())
        if not self._closing:
            self._tick_job = self.top.after(1000, self._tick)

    def table_rows(self) -> list[tuple[str, ...]]:
        """What the users table shows (for tests)."""
        return [tuple(str(v) for v in self.table.item(i, "values"))
                for i in self.table.get_children()]

    def log_lines(self) -> list[str]:
        return self.log_text.get("1.0", "end-1c").splitlines() if self.logs_page else []

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Closing the window stops the server gracefully first (clients are told)."""
        if self._closing:
            return
        self._closing = True
        if self.server is not None:
            self.server.request_shutdown()  # _drain destroys the window on "stopped"
            self.top.after(5000, self._destroy)  # a bound, whatever happens
        else:
            self._destroy()

    def _destroy(self) -> None:
        for job in (self._job, self._tick_job):
            with contextlib.suppress(tk.TclError):
                self.top.after_cancel(job)
        with contextlib.suppress(tk.TclError):
            self.top.destroy()
        drop_tk_variables(self)


def _bind_field(exc: EnvironmentProblem) -> str:
    """Which field a bind failure is about: an address that is not ours → host, else port."""
    text = str(exc)
    if "resolve" in text or "assign requested address" in text or errno.errorcode.get(
            errno.EADDRNOTAVAIL, "") in text:
        return "host"
    return "port"


def run(**kwargs: object) -> int:
    """Open the console (``kwargs`` prefill the Server Config page) and run Tk."""
    holder = [new_root()]
    window = ServerWindow(holder[0], **kwargs)  # type: ignore[arg-type]
    try:
        holder[0].mainloop()
    except KeyboardInterrupt:
        window.close()  # a graceful stop: clients are told
        while window.server is not None:
            holder[0].update()
            time.sleep(0.02)
    del window
    release_tk(holder)
    return 0


def main(argv: list[str] | None = None) -> int:
    from tcplab.cli.common import port_number, positive_int
    from tcplab.errors import TcplabError

    p = argparse.ArgumentParser(prog="python -m tcplab.gui.server",
                                description="The tcplab chat server console.")
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT)
    p.add_argument("--max-clients", type=positive_int, default=DEFAULT_MAX_CLIENTS)
    p.add_argument("--password", default=None)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--log-messages", action="store_true")
    args = p.parse_args(argv)
    try:
        return run(host=args.host, port=args.port, max_clients=args.max_clients,
                   password=args.password, tls_cert=args.tls_cert, tls_key=args.tls_key,
                   log_messages=args.log_messages)
    except TcplabError as exc:
        import sys

        print(f"tcplab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
