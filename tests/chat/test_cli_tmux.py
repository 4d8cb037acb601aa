"""``tcplab client`` in a real terminal emulator (tmux), typed at with send-keys and read
back with capture-pane: what a person sees, cell by cell — the prompt left behind, the
cursor after joined emoji, Hebrew order, a bracketed paste."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid

import pytest

from tcplab.chat.display import display_width
from tests.chat.helpers import RawClient, running_server
from tests.support import require_program

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧: one cluster, 2 cells in tmux
FAMILY_SHOWN = FAMILY.replace("\u200d", "")  # the input line draws its members side by side
FLAG = "\U0001f1ee\U0001f1f1"  # 🇮🇱: 4 cells to wcwidth, 2 in tmux (a lone indicator: 1)


class Tmux:
    """One detached tmux server (its own socket) running one command in one pane."""

    def __init__(self, command: list[str], width: int = 80, height: int = 24,
                 extra_env: dict[str, str] | None = None) -> None:
        self.tmux = require_program("tmux")
        self.name = f"tcplab-test-{uuid.uuid4().hex[:8]}"
        shell = " ".join(shlex.quote(a) for a in command)
        # The status line would take a row; "[exit N]" shows how the client ended.
        script = f"{shell}; echo \"[exit $?]\"; sleep 600"
        # COLUMNS/LINES (set by pytest-xdist) would describe another terminal than this pane.
        env = {k: v for k, v in os.environ.items()
               if k not in ("TMUX", "STY", "COLUMNS", "LINES")}
        env["LANG"] = "C.UTF-8"
        env.update(extra_env or {})
        self._run("-f", "/dev/null", "new-session", "-d", "-x", str(width), "-y", str(height),
                  "sh", "-c", script, env=env)
        self._run("set-option", "-g", "status", "off")

    def _run(self, *args: str, env: dict | None = None) -> str:
        return subprocess.run([self.tmux, "-L", self.name, *args], check=True,
                              capture_output=True, text=True, env=env, timeout=15).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._run("send-keys", *(["-l"] if literal else []), *keys)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def paste(self, text: str) -> None:
        """Paste as a terminal does: bracketed (-p) when the application asked for it."""
        self._run("set-buffer", text)
        self._run("paste-buffer", "-p", "-d")

    def screen(self) -> list[str]:
        return self._run("capture-pane", "-p").rstrip("\n").split("\n")

    def cursor(self) -> tuple[int, int]:
        x, y = self._run("display-message", "-p", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait_for(self, text: str, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if any(text in ln for ln in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def wait_for_prompt(self, timeout: float = 15.0) -> None:
        """Until the "> " prompt is drawn with the cursor after it: typed earlier, keys would
        reach the terminal before prompt_toolkit switched it to raw and bracketed-paste mode."""
        deadline = time.monotonic() + timeout
        while True:
            x, y = self.cursor()
            lines = self.screen()
            if x == 2 and y < len(lines) and lines[y].rstrip() == ">":
                time.sleep(0.1)
                return
            if time.monotonic() > deadline:
                raise AssertionError("no prompt; screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def settle(self, seconds: float = 0.4) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.name, "kill-server"], capture_output=True,
                       timeout=15)


def client_in_tmux(port: int, *args: str, width: int = 80,
                   env: dict[str, str] | None = None) -> Tmux:
    return Tmux([sys.executable, "-m", "tcplab", "client", "--port", str(port),
                 "--nick", "Alice", *args], width=width, extra_env=env)


def no_stray_prompt(lines: list[str]) -> bool:
    return not any(ln.strip() in (">", "> >") for ln in lines)


def test_no_stray_prompt_after_the_server_shuts_down():
    with running_server() as server:
        term = client_in_tmux(server.port)
        try:
            term.wait_for("Online: Alice")
            server.request_shutdown()
            lines = term.wait_for("[exit 1]")
            assert any("Connection lost" in ln for ln in lines)
            assert no_stray_prompt(lines), "\n".join(lines)
        finally:
            term.close()


@pytest.mark.parametrize("keys", [("/quit", "Enter"), ("/QUIT", "Enter"), ("exit", "Enter"),
                                  ("C-d",), ("C-c",), ("half typed", "C-c")])
def test_no_stray_prompt_after_leaving(keys):
    with running_server() as server:
        term = client_in_tmux(server.port)
        try:
            term.wait_for("Online: Alice")
            term.wait_for_prompt()
            for key in keys:
                if key.startswith(("C-", "Enter")):
                    term.keys(key)
                else:
                    term.type(key)
            lines = term.wait_for("[exit 0]")
            assert no_stray_prompt(lines), "\n".join(lines)
            assert not any("Connection lost" in ln for ln in lines)
        finally:
            term.close()


def test_cursor_stays_right_after_zwj_emoji_and_flags_and_the_text_is_sent_intact():
    """prompt_toolkit counts 👨‍👩‍👧 as 6 cells and 🇮🇱 as 4, tmux draws both in 2: unfixed, a
    retyped line leaves debris (``Bob: 👨‍👩‍👧x> Bob: …``), the prompt is overwritten and
    wrapping is off."""
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        term = client_in_tmux(server.port, width=40)
        try:
            term.wait_for("Online: Bob, Alice")
            term.wait_for_prompt()
            for typed, shown in [(FAMILY, FAMILY_SHOWN), (FAMILY * 4, FAMILY_SHOWN * 4),
                                 (FAMILY * 8, FAMILY_SHOWN * 8), (FLAG * 3, "IL" * 3),
                                 (FAMILY * 12, FAMILY_SHOWN * 12), (FLAG * 20, "IL" * 20),
                                 (f"{FLAG}{FAMILY}\U0001f1ee", f"IL{FAMILY_SHOWN}I")]:
                term.type(f"Bob: {typed}x")
                term.settle()
                rows = [ln.rstrip() for ln in term.screen()]
                start = next(i for i, ln in enumerate(rows) if ln.startswith("> Bob"))
                x, y = term.cursor()
                # Every row fits, the rows read back as what was typed, and the cursor sits
                # right after the "x" on the last of them.
                assert "".join(rows[start:y + 1]) == f"> Bob: {shown}x", rows
                assert all(display_width(r) <= 40 for r in rows)
                assert x == display_width(rows[y]), (typed, x, rows[y])
                term.keys("C-u")
                term.settle(0.2)
            # Editing in the middle: two steps left lands before the space, not inside a family.
            term.type(f"Bob: {FAMILY}{FAMILY} x")
            term.keys("Left", "Left")
            term.type("!")
            term.settle()
            prompt = next(ln for ln in term.screen() if ln.startswith("> Bob"))
            assert prompt.rstrip() == f"> Bob: {FAMILY_SHOWN}{FAMILY_SHOWN}! x"
            assert term.cursor()[0] == len("> Bob: ") + 2 * display_width(FAMILY_SHOWN) + 1
            term.keys("End")
            term.type(FLAG)
            term.keys("Enter")
            assert bob.expect("Alice:") == f"Alice: {FAMILY}{FAMILY}! x{FLAG}"
        finally:
            term.close()


@pytest.mark.parametrize("args, shown", [((), "Bob: םלוע םולש"),  # auto: tmux does no bidi
                                         (("--bidi", "off"), "Bob: שלום עולם")])
def test_hebrew_in_tmux_reads_right_with_bidi_auto(args, shown):
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        term = client_in_tmux(server.port, *args)
        try:
            term.wait_for("Online: Bob, Alice")
            term.wait_for_prompt()
            bob.send("Alice: שלום עולם")
            lines = term.wait_for("Bob: ")
            assert shown in [ln.rstrip() for ln in lines]
        finally:
            term.close()


def test_bracketed_paste_from_tmux_sends_each_line():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        term = client_in_tmux(server.port)
        try:
            term.wait_for("Online: Bob, Alice")
            term.wait_for_prompt()
            term.paste("Bob: line one\nline two\nline three")
            term.settle()
            term.keys("Enter")
            term.wait_for("(pasted 3 lines: sent to Bob as 3 messages)")
            assert [bob.expect("Alice:") for _ in range(3)] == [
                "Alice: line one", "Alice: line two", "Alice: line three"]
        finally:
            term.close()


def test_a_long_hebrew_message_is_wrapped_before_it_is_reordered():
    """Reordered first and wrapped by the terminal, the end of the sentence would come first.
    The width is the pane's, not a stale exported COLUMNS."""
    words = ["אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע", "עשר"]
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        term = client_in_tmux(server.port, width=30, env={"COLUMNS": "80"})
        try:
            term.wait_for("Online: Bob, Alice")
            bob.send("Alice: " + " ".join(words))
            lines = [ln.rstrip() for ln in term.wait_for(" ".join(words[5:])[::-1])]
            first = next(i for i, ln in enumerate(lines) if ln.startswith("Bob: "))
            rows = lines[first:first + 2]
            assert all(display_width(r) <= 30 for r in rows)
            # Each row holds consecutive words drawn right to left, the first words first.
            assert rows[0] == "Bob: " + " ".join(words[:5])[::-1]
            assert rows[1] == " ".join(words[5:])[::-1]
        finally:
            term.close()
