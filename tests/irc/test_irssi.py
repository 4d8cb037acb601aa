"""irssi, typed at under tmux as a person would, joins the chat over IRC: the screen after
connecting, and a conversation with a native user on tcplab's client core."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcplab.chat.client import BroadcastMessage, PrivateMessage
from tests.irc.helpers import NativeUser, irc_server, wait_for_text
from tests.support import require_program

pytestmark = pytest.mark.timeout(120)


class Irssi:
    """irssi in a detached tmux session on a private tmux server (``-L``), with its own
    home directory and autolog, so what it shows can be read from the screen and the logs."""

    def __init__(self, home: Path, port: int, nick: str) -> None:
        irssi = require_program("irssi")
        self.tmux = require_program("tmux")
        self.socket = f"tcplab-irssi-{id(self):x}"
        self.home = home / "irssi"
        self.logs = home / "logs"
        self.home.mkdir()
        (self.home / "config").write_text(
            "settings = {\n"
            f'  core = {{ real_name = "Irssi User"; user_name = "{nick}"; nick = "{nick}"; }};\n'
            f'  "fe-common/core" = {{ autolog = "yes"; autolog_path = "{self.logs}/$tag/$0.log"; }};\n'
            "};\n")
        self._tmux("new-session", "-d", "-x", "150", "-y", "45",
                   f"{irssi} --home={self.home} -c 127.0.0.1 -p {port} -n {nick}")

    def _tmux(self, *args: str) -> str:
        proc = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=20)
        if proc.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {proc.stderr}")
        return proc.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "0")

    def wait_screen(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on irssi's screen:\n{text}")
            time.sleep(0.1)

    def type(self, line: str) -> None:
        self._tmux("send-keys", "-t", "0", "-l", line)
        self._tmux("send-keys", "-t", "0", "Enter")

    def files(self) -> list[Path]:
        return sorted(self.logs.rglob("*.log")) if self.logs.exists() else []

    def lobby(self) -> list[Path]:
        return [p for p in self.files() if p.name.lower() == "#lobby.log"]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.type("/quit")
            time.sleep(0.3)
        with contextlib.suppress(Exception):
            self._tmux("kill-server")


@contextlib.contextmanager
def irssi(tmp_path: Path, port: int, nick: str) -> Iterator[Irssi]:
    client = Irssi(tmp_path, port, nick)
    try:
        yield client
    finally:
        client.stop()


ERROR_WORDS = ("error", "unable", "refused", "disconnected", "timed out", "not registered",
               "unknown command", "lost")


def test_irssi_connects_without_error_or_hang(tmp_path):
    with irc_server() as server, irssi(tmp_path, server.irc_address[1], "trial") as client:
        started = time.monotonic()
        screen = client.wait_screen("End of /MOTD command.", timeout=15)
        elapsed = time.monotonic() - started
        (tmp_path / "irssi-screen.txt").write_text(screen)
        assert "Welcome to the tcplab chat, trial!~trial@irc.tcplab" in screen
        assert "Waiting for CAP LS response" not in screen or "Capabilities supported" in screen
        lowered = screen.lower()
        assert not [w for w in ERROR_WORDS if w in lowered], screen
        assert elapsed < 10, f"irssi took {elapsed:.1f} s to register"
        # The channel window is there with the user in it, and the status bar shows the nick.
        client.type("/window 2")
        screen = client.wait_screen("has joined #lobby")  # the channel window, not the MOTD
        assert "[trial" in screen and "Total of 1 nicks" in screen
        assert not [w for w in ERROR_WORDS if w in screen.lower()], screen


def test_irssi_and_a_native_user_share_the_chat(tmp_path):
    with irc_server() as server:
        britney = NativeUser(server, "Britney Spears")
        carol = NativeUser(server, "Carol")
        with irssi(tmp_path, server.irc_address[1], "irssiuser") as client:
            client.wait_screen("End of /MOTD command.")
            britney.wait_online("irssiuser")

            britney.client.send("irssiuser", "hello from the terminal")
            line = wait_for_text(client.files, "hello from the terminal")
            assert "Britney_Spears" in line
            client.type("/msg Britney_Spears hi from irssi")
            got = britney.wait(lambda e: isinstance(e, PrivateMessage))
            assert (got.sender, got.text) == ("irssiuser", "hi from irssi")

            carol.client.broadcast("hello lobby")
            line = wait_for_text(client.lobby, "hello lobby")
            assert "Carol" in line
            client.type("/window 2")
            client.wait_screen("has joined #lobby")
            client.type("hi everyone")
            got = britney.wait(lambda e: isinstance(e, BroadcastMessage) and e.sender == "irssiuser")
            assert got.text == "hi everyone"

            client.type("/nick Carol")
            client.type("/window 1")
            client.wait_screen("Nick Carol is already in use")  # irssi's text for 433
            assert "[irssiuser" in client.screen()

            carol.close()
            line = wait_for_text(client.lobby, "has quit")
            assert "Carol" in line
        britney.close()
