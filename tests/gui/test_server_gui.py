"""The server console under Xvfb: Config errors inline, live System Logs, STOP and restart
with real client windows attached."""

from __future__ import annotations

import socket
import tkinter as tk

import pytest

from tcplab.gui.server import ServerWindow
from tests.chat.helpers import RawClient
from tests.gui.helpers import (
    click_user,
    history,
    login,
    open_login,
    say,
    type_into,
    user_labels,
    wait_until,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def console(root):
    top = tk.Toplevel(root)
    top.geometry("900x600")
    win = ServerWindow(top)
    yield win
    if win.server is not None:
        win.close()
        wait_until(root, lambda: win.server is None, what="server stopped")


def test_config_errors_are_shown_next_to_the_field_and_the_window_stays(root, console, tmp_path):
    assert console.top.title() == "Server Config"
    assert console.host_var.get() == "127.0.0.1" and console.port_var.get() == "55555"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        type_into(console.port_entry, str(busy.getsockname()[1]))
        console.start_button.invoke()
        assert "in use" in console.errors["port"].cget("text")
        assert console.top.title() == "Server Config" and console.server is None
    type_into(console.port_entry, "70000")
    console.start_button.invoke()
    assert "65535" in console.errors["port"].cget("text")
    assert console.errors["host"].cget("text") == ""
    type_into(console.port_entry, str(free_port()))
    type_into(console.host_entry, "192.0.2.1")  # TEST-NET: not an address of this machine
    console.start_button.invoke()
    assert "cannot listen" in console.errors["host"].cget("text")
    assert console.errors["port"].cget("text") == ""
    type_into(console.host_entry, "127.0.0.1")
    assert not console.options.opened
    console.cert_var.set(str(tmp_path / "missing.pem"))
    console.start_button.invoke()
    assert "missing.pem" in console.errors["cert"].cget("text")
    assert console.options.opened  # the field at fault is visible
    (tmp_path / "junk.pem").write_text("not a certificate")
    console.cert_var.set(str(tmp_path / "junk.pem"))
    console.start_button.invoke()
    assert "cannot load TLS certificate" in console.errors["cert"].cget("text")
    console.cert_var.set("")
    console.key_var.set(str(tmp_path / "junk.pem"))
    console.start_button.invoke()
    assert "certificate" in console.errors["key"].cget("text")
    console.key_var.set("")
    console.max_clients_var.set("0")
    console.start_button.invoke()
    assert "at least 1" in console.errors["max_clients"].cget("text")
    console.max_clients_var.set("10")
    console.start_button.invoke()
    wait_until(root, lambda: console.model.running, what="server running")
    assert console.top.title() == "System Logs"


def test_system_logs_follow_clients_then_stop_banner_and_reconnect_after_restart(root, console):
    port = free_port()
    type_into(console.port_entry, str(port))
    console.start_button.invoke()
    wait_until(root, lambda: console.model.running)
    assert console.address_label.cget("text") == f"Listening on 127.0.0.1:{port}"

    alice = login(root, port, "Alice")
    bob = open_login(root, port, "Alice")
    bob.enter_button.invoke()
    wait_until(root, lambda: bob.nick_error.cget("text"), what="duplicate refused")
    type_into(bob.nick_entry, "Bob", enter=True)
    wait_until(root, lambda: bob.model is not None)
    carol = login(root, port, "Carol")
    wait_until(root, lambda: [r[0] for r in console.table_rows()] == ["Alice", "Bob", "Carol"],
               what="users table")
    row = console.table_rows()[0]
    assert row[1].startswith("127.0.0.1:") and row[3] == "0"
    log = "\n".join(console.log_lines())
    assert "connect conn=1 peer='127.0.0.1:" in log and "join conn=1 nick='Alice'" in log
    assert "login_refused conn=2 code=433" in log
    assert "Alice" in log and "hi" not in log  # metadata only

    wait_until(root, lambda: "Bob" in user_labels(alice))
    click_user(alice, "Bob")
    say(alice, "hi")
    say(alice, "there")
    wait_until(root, lambda: console.table_rows()[0][3] == "2", what="message counter")
    assert console.counter_labels["Messages routed"].cget("text") == "2"
    assert console.counter_labels["Users now / peak"].cget("text") == "3 / 3"

    # An abrupt disconnect (RST) is logged as such and leaves the table.
    raw = RawClient(("127.0.0.1", port))
    raw.send("Dave")
    wait_until(root, lambda: "Dave" in [r[0] for r in console.table_rows()])
    raw.reset()
    wait_until(root, lambda: "Dave" not in [r[0] for r in console.table_rows()])
    assert "reason='connection reset'" in "\n".join(console.log_lines())
    assert console.counter_labels["Users now / peak"].cget("text") == "3 / 4"

    console.stop_button.invoke()  # STOP SERVER: the SIGTERM path, clients are told
    wait_until(root, lambda: all(w.banner_text for w in (alice, bob, carol)), what="banners")
    for w in (alice, bob, carol):
        assert w.banner_text.startswith("Disconnected")
        assert "Server is shutting down." in history(w) or w.model.active != "*"
    wait_until(root, lambda: console.stop_button.cget("text") == "START SERVER")
    assert console.table_rows() == []
    assert "stopped" in console.log_lines()[-1]

    console.stop_button.invoke()  # START SERVER again, same port
    wait_until(root, lambda: console.model.running, what="restarted")
    for w in (alice, bob, carol):
        w.reconnect_button.invoke()
    wait_until(root, lambda: not any(w.banner_text for w in (alice, bob, carol)),
               what="reconnected")
    wait_until(root, lambda: len(console.table_rows()) == 3)
    wait_until(root, lambda: "Bob" in user_labels(alice) and "Bob (offline)" not in user_labels(alice))
    say(alice, "back again")
    wait_until(root, lambda: "back again" in history(bob) or bob.model.conversations.get("Alice")
               and any(e.text == "back again" for e in bob.model.conversations["Alice"].entries))
    for w in (alice, bob, carol):
        w.close()


def test_closing_the_console_stops_the_server_gracefully(root, gui_env):
    top = tk.Toplevel(root)
    win = ServerWindow(top, port=free_port())
    win.start_button.invoke()
    wait_until(root, lambda: win.model.running)
    alice = login(root, int(win.port_var.get()), "Alice")
    top.tk.call(top.protocol("WM_DELETE_WINDOW"))
    wait_until(root, lambda: alice.banner_text, what="client told")
    wait_until(root, lambda: not top.winfo_exists(), what="console closed")
    alice.close()


def test_tcplab_server_gui_fills_the_form_and_starts(gui_env):
    import subprocess
    import sys

    port = free_port()
    code = ("import sys; from tcplab.gui import server as s; from tcplab.cli import main\n"
            "orig = s.ServerWindow.__init__\n"
            "def init(self, *a, **k):\n"
            "    orig(self, *a, **k)\n"
            "    print(self.host_var.get(), self.port_var.get(), self.max_clients_var.get(),"
            " self.log_messages_var.get(), flush=True)\n"
            "    self.top.after(200, self.start_button.invoke)\n"
            "    self.top.after(1200, lambda: print(self.top.title(), self.model.running,"
            " flush=True))\n"
            "    self.top.after(1500, self.close)\n"
            "s.ServerWindow.__init__ = init\n"
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "server", "--gui", "--port", str(port),
                           "--max-clients", "7", "--log-messages"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["127.0.0.1", str(port), "7", "True", "System", "Logs", "True"]
