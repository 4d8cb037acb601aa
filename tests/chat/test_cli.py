"""``tcplab client`` driven as a person would, on a pseudo-terminal (pexpect), and scripted."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import pexpect
import pytest

from tests.chat.helpers import RawClient, free_port, running_server

ENV = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def spawn_client(*args: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "tcplab", "client", *args], encoding="utf-8",
                          timeout=15, env=ENV, dimensions=(40, 120))
    return child


def answer_prompts(child: pexpect.spawn, port: int, nick: str) -> None:
    child.expect_exact("Host IP (default 127.0.0.1):")
    child.sendline("")
    child.expect_exact("Port (default 55555):")
    child.sendline(str(port))
    child.expect_exact("Choose a Nickname:")
    child.sendline(nick)


def finish(child: pexpect.spawn) -> int:
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_scenario_d_transcript_on_a_terminal():
    with running_server() as server:
        britney = RawClient(server.address)
        britney.login("Britney Spears")
        paris = RawClient(server.address)
        paris.login("Paris Hilton")
        child = spawn_client()
        try:
            answer_prompts(child, server.port, "NoGui_User")
            child.expect_exact("Connected! Usage: 'TargetName: Your Message'")
            child.expect_exact("Type 'exit' to quit.")
            # The seed printed the raw wire line; we print it the friendly way.
            child.expect_exact("Online: Britney Spears, Paris Hilton, NoGui_User\r\n")
            child.sendline("")
            child.expect_exact("Invalid format! Use: TargetName: Message")
            child.sendline("Britney Spears:")
            child.expect_exact("System: Name or message cannot be empty.")
            child.sendline(":Hello!")
            child.expect_exact("System: Name or message cannot be empty.")
            assert finish(child) == 0
        finally:
            child.close(force=True)
        britney.expect_list(["Britney Spears", "Paris Hilton"])


def test_full_a_to_f_session_with_three_terminal_clients():
    with running_server() as server:
        port = server.port
        britney = spawn_client("--port", str(port), "--nick", "Britney Spears")
        nogui = spawn_client()
        paris = spawn_client("--port", str(port))
        children = [britney, nogui, paris]
        try:
            britney.expect_exact("Connected!")
            answer_prompts(nogui, port, "NoGui_User")
            nogui.expect_exact("Online: Britney Spears, NoGui_User\r\n")

            # E: a taken name (any case) is refused and the client asks again, same connection.
            paris.expect_exact("Choose a Nickname:")
            paris.sendline("britney spears")
            paris.expect_exact("System: Nickname 'britney spears' is already taken.")
            paris.expect_exact("Choose a Nickname:")
            paris.sendline("Paris Hilton")
            paris.expect_exact("Connected!")
            nogui.expect_exact("+ Paris Hilton joined\r\n")

            # A: a private message, completed with Tab, arrives stamped with the sender.
            nogui.send("Bri\t")
            nogui.sendline("hi Britney 😀")
            britney.expect_exact("NoGui_User: hi Britney 😀")
            britney.sendline("*: hello everyone")
            nogui.expect_exact("* Britney Spears: hello everyone")
            paris.expect_exact("* Britney Spears: hello everyone")

            # B: target not connected.
            nogui.sendline("Ghost: anyone?")
            nogui.expect_exact("System: User 'Ghost' is not connected.")
            # C: no target (caught by the client with the seed's words).
            nogui.sendline("just text")
            nogui.expect_exact("Invalid format! Use: TargetName: Message")
            # D: empty message.
            nogui.sendline("Paris Hilton:   ")
            nogui.expect_exact("System: Name or message cannot be empty.")
            # Escape sequences from a peer never reach the terminal.
            mallory = RawClient(server.address)
            mallory.login("Mallory")
            mallory.send("NoGui_User: \x1b]0;owned\x07look\x1b[2J here")
            # The server may already have replaced the controls (with U+FFFD); either way
            # no escape sequence reaches the terminal.
            nogui.expect(r"Mallory: ([^\r\n]*)\r\n")
            shown = nogui.match.group(1)
            assert "\x1b" not in shown and "\x07" not in shown
            assert shown.startswith(("look", "\ufffd")) and shown.endswith(" here")
            mallory.close()
            nogui.expect_exact("- Mallory left\r\n")

            # F: Paris's process dies abruptly; everyone's list is updated.
            paris.kill(signal.SIGKILL)
            nogui.expect_exact("- Paris Hilton left\r\n")
            britney.expect_exact("- Paris Hilton left\r\n")
            nogui.sendline("/users")
            nogui.expect_exact("Online: Britney Spears, NoGui_User\r\n")
            nogui.sendline("/help")
            nogui.expect_exact("/users")
            assert finish(nogui) == 0
            britney.expect_exact("- NoGui_User left\r\n")
            assert finish(britney) == 0
        finally:
            for child in children:
                child.close(force=True)


def test_connection_lost_is_reported_and_exit_status_is_1():
    with running_server() as server:
        child = spawn_client("--port", str(server.port), "--nick", "Alice")
        try:
            child.expect_exact("Connected!")
            child.expect_exact("Online: Alice\r\n")
            server.request_shutdown()
            child.expect_exact("System: Server is shutting down.")
            child.expect_exact("Connection lost: the server closed the connection")
            child.expect(pexpect.EOF)
            child.close()
            assert child.exitstatus == 1
        finally:
            child.close(force=True)


def test_unreachable_server_is_a_clear_error():
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "tcplab", "client", "--port", str(port),
                           "--nick", "Alice"], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"tcplab: error: cannot connect to 127.0.0.1:{port}: "
                                   "Connection refused")


def test_plain_line_mode_when_stdin_is_not_a_terminal():
    with running_server() as server:
        bob = RawClient(server.address)
        bob.login("Bob")
        proc = subprocess.Popen([sys.executable, "-m", "tcplab", "client"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout],
                                  daemon=True)
        reader.start()

        def next_line() -> str:
            return lines.get(timeout=15).rstrip("\n")

        try:
            proc.stdin.write(f"\n{server.port}\nAlice\nBob: scripted hello\nnonsense\n")
            proc.stdin.flush()
            assert next_line() == ("Host IP (default 127.0.0.1): Port (default 55555): "
                                   "Choose a Nickname: Connected! Usage: 'TargetName: Your Message'")
            assert next_line() == "Type 'exit' to quit."
            # Line mode keeps the order: the list that came with the welcome, then the
            # answer to what was typed.
            assert next_line() == "Online: Bob, Alice"
            assert next_line() == "Invalid format! Use: TargetName: Message"
            assert bob.expect("Alice:") == "Alice: scripted hello"
            bob.send("Alice: reply \x1b[31mred")
            assert next_line() in ("Bob: reply red", "Bob: reply \ufffd[31mred")  # no ESC
            proc.stdin.write("Bob:\n")
            proc.stdin.flush()
            assert next_line() == "System: Name or message cannot be empty."
            proc.stdin.write("exit\n")
            proc.stdin.flush()
            assert proc.wait(15) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(5)
        assert lines.empty()


def test_reconnect_after_server_restart():
    port = free_port()
    server_cmd = [sys.executable, "-m", "tcplab", "server", "--port", str(port), "-q"]
    first = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True)
    child = None
    second = None
    try:
        assert "listening" in first.stdout.readline()
        child = spawn_client("--port", str(port), "--nick", "Alice", "--reconnect")
        child.expect_exact("Online: Alice\r\n")
        first.send_signal(signal.SIGTERM)
        first.wait(10)
        child.expect_exact("Connection lost")
        child.expect_exact("Reconnecting to 127.0.0.1:")
        second = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True)
        line = second.stdout.readline()
        if "listening" not in line:
            pytest.skip("the port was taken by another process meanwhile")
        child.expect_exact("Reconnected.", timeout=20)
        bob = RawClient(("127.0.0.1", port))
        bob.login("Bob")
        bob.send("Alice: welcome back")
        child.expect_exact("Bob: welcome back")
        assert finish(child) == 0
    finally:
        if child is not None:
            child.close(force=True)
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
