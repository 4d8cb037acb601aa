"""WeeChat (weechat-headless, driven through its FIFO, read through its logger) joins the
chat over IRC and talks with a native user on tcplab's client core."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcplab.chat.client import BroadcastMessage, PrivateMessage
from tests.irc.helpers import NativeUser, irc_server, wait_for_text
from tests.support import IN_CI, require_program

pytestmark = pytest.mark.timeout(120)


class WeeChat:
    """A weechat-headless process with its own home directory; commands go in through the
    fifo plugin, what it shows comes out through the logger plugin (one file per buffer)."""

    def __init__(self, home: Path, port: int, nick: str) -> None:
        exe = require_program("weechat-headless")
        if not list(Path("/usr/lib").glob("*/weechat/plugins/fifo.so")):
            reason = "WeeChat's fifo plugin is missing (apt-get install weechat-plugins)"
            if IN_CI:
                pytest.fail(f"CI must provide this: {reason}")
            pytest.skip(reason)
        self.home = home
        self.fifo = home / "fifo"
        self.logs = home / "logs"
        (home / "fifo.conf").write_text(f'[file]\nenabled = on\npath = "{self.fifo}"\n')
        (home / "logger.conf").write_text(
            "[look]\nbacklog = 0\n[file]\nauto_log = on\nflush_delay = 0\n"
            f'path = "{self.logs}"\nmask = "$plugin.$name.weechatlog"\n')
        commands = ";".join([
            # WeeChat's own anti-flood queue would delay each command by 2 s.
            "/set irc.server_default.anti_flood_prio_high 0",
            "/set irc.server_default.anti_flood_prio_low 0",
            f"/server add tcplab 127.0.0.1/{port} -notls -nicks={nick} -username={nick}",
            "/connect tcplab",
        ])
        self.proc = subprocess.Popen(
            [exe, "-d", str(home), "-P", "irc,fifo,logger", "-s", "-r", commands],
            stdin=subprocess.DEVNULL, stdout=(home / "stdout").open("wb"),
            stderr=subprocess.STDOUT)

    def files(self) -> list[Path]:
        return sorted(self.logs.glob("*.weechatlog")) if self.logs.exists() else []

    def buffer(self, name: str) -> list[Path]:
        return [p for p in self.files() if p.name.lower() == f"irc.{name.lower()}.weechatlog"]

    def command(self, text: str) -> None:
        deadline = time.monotonic() + 20
        while not self.fifo.exists():
            assert self.proc.poll() is None, "weechat exited"
            assert time.monotonic() < deadline, "weechat's fifo never appeared"
            time.sleep(0.05)
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, f"irc.server.tcplab */{text}\n".encode())
        finally:
            os.close(fd)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.command("quit")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def weechat(tmp_path: Path, port: int, nick: str) -> Iterator[WeeChat]:
    client = WeeChat(tmp_path, port, nick)
    try:
        yield client
    finally:
        client.stop()


def test_weechat_and_a_native_user_share_the_chat(tmp_path):
    with irc_server() as server:
        britney = NativeUser(server, "Britney Spears")
        carol = NativeUser(server, "Carol")
        with weechat(tmp_path, server.irc_address[1], "wee") as wee:
            # WeeChat registered, joined #lobby and sees the native users in their IRC form.
            wait_for_text(lambda: wee.buffer("tcplab.#lobby"), "has joined #lobby")
            britney.wait_online("wee")
            wee.command("names #lobby")
            wait_for_text(lambda: wee.buffer("tcplab.#lobby"), "Britney_Spears")

            # Private messages both ways.
            britney.client.send("wee", "hello from the terminal")
            wait_for_text(wee.files, "hello from the terminal")
            wee.command("msg Britney_Spears hi from weechat")
            got = britney.wait(lambda e: isinstance(e, PrivateMessage))
            assert (got.sender, got.text) == ("wee", "hi from weechat")

            # A native broadcast appears in #lobby; WeeChat's lobby text reaches natives.
            carol.client.broadcast("hello lobby")
            line = wait_for_text(lambda: wee.buffer("tcplab.#lobby"), "hello lobby")
            assert "Carol" in line
            wee.command("msg #lobby hi everyone")
            got = britney.wait(lambda e: isinstance(e, BroadcastMessage) and e.sender == "wee")
            assert got.text == "hi everyone"

            # A taken nickname: 433, and WeeChat keeps its own.
            wee.command("nick Carol")
            wait_for_text(wee.files, "already taken")
            wee.command("nick wee2")
            wait_for_text(wee.files, "You are now known as wee2")
            britney.wait_online("wee2")

            # A native user leaves: QUIT in #lobby.
            carol.close()
            line = wait_for_text(lambda: wee.buffer("tcplab.#lobby"), "has quit")
            assert "Carol" in line
            assert wee.proc.poll() is None
        britney.close()


def test_weechat_and_the_tcplab_client_cli_on_a_terminal(tmp_path):
    import sys

    import pexpect

    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    with irc_server() as server:
        child = pexpect.spawn(sys.executable, ["-m", "tcplab", "client", "--host", "127.0.0.1",
                                               "--port", str(server.address[1]),
                                               "--nick", "Britney Spears"],
                              encoding="utf-8", timeout=20, env=env, dimensions=(40, 120))
        try:
            child.expect_exact("Connected!")
            with weechat(tmp_path, server.irc_address[1], "wee") as wee:
                wait_for_text(lambda: wee.buffer("tcplab.#lobby"), "has joined #lobby")
                child.expect("wee")  # the join shows in the terminal client
                child.sendline("wee: typed in a terminal")
                line = wait_for_text(wee.files, "typed in a terminal")
                assert "Britney_Spears" in line
                wee.command("msg Britney_Spears answered from weechat")
                child.expect_exact("wee: answered from weechat")
                wee.command("msg #lobby to the whole lobby")
                child.expect_exact("wee: to the whole lobby")
            child.sendline("exit")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
