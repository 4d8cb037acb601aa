"""The end-to-end demo: both parts of the course report, run on live packets, written up as a report.

Part 1 rebuilds the report's frame 351, turns the bundled HTTP conversation into packets
in both styles (the report's lone segments and a real TCP stream) and, with root,
repeats the report's live experiment (inject → kernel RSTs) and its honest counterpart
(replay over the kernel's TCP), capturing each. Part 2 starts the chat server, logs in
five users and plays scenarios A–F while capturing the traffic (root). Then
:mod:`tcplab.report` turns the captures and what happened into ``report.html`` and
``report.md`` — every number in them read back from the packets.

This module orchestrates only: it calls the library (encap, wire, chat, report) the way
the commands do, prints what each step did, and never imports :mod:`tcplab.cli`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import shlex
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tcplab.errors import EnvironmentProblem, InputError, TcplabError

if TYPE_CHECKING:
    from tcplab.chat.client import ChatClient

#: The report's frame 351 as captured: BSD loopback header + the 58-byte IPv4/TCP packet.
FRAME_351 = bytes.fromhex(
    "02000000"  # Null/Loopback: AF_INET, little-endian
    "4500003a000100004006 7cbb 7f000001 7f000001"  # IPv4, checksum 0x7cbb
    "13d2 3039 00000000 00000000 5018 2000 b54e 0000"  # TCP 5074 → 12345, PSH+ACK, checksum 0xb54e
    "474554202f626c6f6720485454502f312e31"  # "GET /blog HTTP/1.1"
)

CHAT_USERS = ("Britney Spears", "Paris Hilton", "NoGui_User", "isabelleeee", "Alice")
#: Scenario A's message, followed across both connections in the report.
CHAT_MESSAGE = ("Alice", "isabelleeee", "how are youuu")
#: How many of the CSV's messages the live injection sends (~100 ms apart, as in the report).
INJECT_COUNT = 10


def sample_csv() -> Path:
    """The bundled HTTP e-commerce CSV: ``examples/`` in a checkout, else the installed copy."""
    local = Path("examples") / "http_ecommerce.csv"
    if local.is_file():
        return local
    return Path(str(resources.files("tcplab") / "data" / "http_ecommerce.csv"))


def live_wire_available() -> tuple[bool, str]:
    """Can this process inject and capture? (root/CAP_NET_RAW and Linux AF_PACKET)."""
    if not hasattr(socket, "AF_PACKET"):
        return False, "this platform has no AF_PACKET sockets (Linux only)"
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        return False, "needs root or CAP_NET_RAW (run: sudo make demo)"
    except OSError as exc:
        return False, f"cannot open a packet socket: {exc.strerror or exc}"
    return True, ""


@dataclass
class DemoResult:
    out_dir: Path
    report_html: Path | None = None
    report_md: Path | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, what it is)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Demo:
    """Runs the steps, printing as it goes; collects the captures and facts the report needs."""

    def __init__(self, out_dir: Path, *, live: bool | None, stream: TextIO | None = None,
                 command: str = "tcplab demo", gui: bool = False) -> None:
        from tcplab.report import RunFacts, environment, now

        self.out = out_dir
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {out_dir}: cannot create the folder: "
                             f"{exc.strerror or exc}") from None
        self.result = DemoResult(out_dir)
        ok, why = live_wire_available()
        if live is None:
            live = ok
        elif live and not ok:
            raise EnvironmentProblem(f"--live: {why}")
        self.live = live
        self.gui = gui
        self.csv = sample_csv()
        self.stream = stream or sys.stdout
        self.facts = RunFacts(command, now(), environment(), csv=self.csv, live=live,
                              live_reason=why or "turned off with --no-live")

    # -- output helpers -----------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def heading(self, text: str) -> None:
        self.say()
        self.say(f"━━ {text} " + "━" * max(0, 76 - len(text)))

    def command(self, *args: str) -> None:
        """Echo the command a user would type for the step that follows."""
        self.say("$ tcplab " + " ".join(shlex.quote(a) for a in args))

    def produced(self, path: Path, what: str, role: str | None = None) -> Path:
        self.result.files.append((str(path.relative_to(self.out)), what))
        if role:
            self.facts.captures[role] = path
        return path

    def fail(self, text: str) -> None:
        self.say(f"✗ {text}")
        self.result.failures.append(text)
        self.facts.failures.append(text)

    def _skip(self, what: str, why: str) -> None:
        self.say(f"(skipped {what}: {why})")
        self.result.skipped.append(f"{what}: {why}")
        self.facts.skipped.append(f"{what}: {why}")

    # -- part 1 -------------------------------------------------------------------------

    def part1_encapsulation(self) -> None:
        from tcplab.analyze.render import hexdump
        from tcplab.encap import EncapOptions, encapsulate_csv
        from tcplab.encap.transport import RawTCPTransport
        from tcplab.packet import link
        from tcplab.pcap import open_writer

        self.heading("Part 1 · the report's packet, rebuilt by hand")
        frame = RawTCPTransport().frame("GET /blog HTTP/1.1")
        self.say("RawTCPTransport().frame('GET /blog HTTP/1.1')  # 127.0.0.1:5074 → :12345, PSH+ACK")
        self.say(hexdump(frame))
        if frame == FRAME_351:
            self.say("→ identical to frame 351 of the report (IP checksum 0x7cbb, TCP checksum 0xb54e)")
        else:
            self.fail("RawTCPTransport no longer reproduces the report's frame 351")
        one = self.produced(self.out / "frame351.pcap", "the report's frame 351, rebuilt", "frame351")
        with open_writer(str(one), link.LINKTYPE_NULL) as writer:
            writer.write(frame, int(time.time() * 1e9), None, None)

        self.heading("Part 1 · CSV → packets, two styles")
        stream = self.produced(self.out / "http_stream.pcapng",
                               "the sample as a complete TCP conversation (pcapng, msg_id comments)",
                               "stream")
        seed = self.produced(self.out / "http_seed.pcap",
                             "the sample in the report's style: lone PSH+ACK segments, seq 0", "seed")
        self.command("encap", str(self.csv), "-o", str(stream), "--seed", "1")
        summary = encapsulate_csv(self.csv, stream, EncapOptions(style="stream", seed=1))
        self.say("\n".join(summary.lines()))
        self.command("encap", str(self.csv), "-o", str(seed), "--style", "seed", "--linktype", "null")
        summary = encapsulate_csv(self.csv, seed, EncapOptions(style="seed"),
                                  linktype=link.LINKTYPE_NULL)
        self.say("\n".join(summary.lines()))

    def part1_live(self) -> None:
        self.heading("Part 1 · live on loopback: the report's experiment and the honest version")
        if not self.live:
            self._skip("live injection and replay on lo", self.facts.live_reason)
            return
        from tcplab.encap import EncapOptions
        from tcplab.wire import capture as capture_mod
        from tcplab.wire import inject as inject_mod
        from tcplab.wire import replay as replay_mod

        rst = self.produced(self.out / "inject_rst.pcap",
                            "live capture: injected segments and the kernel's RSTs", "inject")
        self.command("inject", str(self.csv), "--style", "seed", "--client-port", "5074",
                     "--server-port", "12345", "-c", str(INJECT_COUNT), "--capture", str(rst))
        options = EncapOptions(style="seed", client_port=5074, server_port=12345,
                               start_time=time.time())

        def source() -> Iterator[bytes]:
            return inject_mod.packets_from_csv(str(self.csv), options)

        summary = inject_mod.inject(source, interval=0.1, count=INJECT_COUNT, capture_path=str(rst),
                                    capture_filter=inject_mod.watch_filter(source()))
        self.say("\n".join(summary.lines()))

        real = self.produced(self.out / "replay_real_tcp.pcap",
                             "live capture: the CSV replayed over kernel TCP", "replay")
        self.command("replay", str(self.csv), "--capture", str(real))
        options = EncapOptions(style="stream", start_time=time.time(), seed=0)
        background = capture_mod.BackgroundCapture(
            "lo", str(real), expression=inject_mod.watch_filter(
                inject_mod.packets_from_csv(str(self.csv), options))).start()
        try:
            replayed = replay_mod.replay_csv(str(self.csv), options)
        finally:
            background.stop(grace=0.3)
        self.say("\n".join(replayed.lines()))

    # -- part 2 -------------------------------------------------------------------------

    def part2_chat(self) -> None:
        from tcplab.chat.server import ChatServer
        from tcplab.report import ChatRun

        self.heading("Part 2 · the chat: five users, scenarios A–F")
        try:
            server = ChatServer("127.0.0.1", 55555)  # the report's port, when it is free
        except EnvironmentProblem:
            server = ChatServer("127.0.0.1", 0)
        port = server.port
        thread = threading.Thread(target=server.serve_forever, name="demo-chat-server", daemon=True)
        thread.start()
        server.ready.wait(5)
        self.say(f"chat server listening on 127.0.0.1:{port}")
        self.facts.chat = ChatRun(port, list(CHAT_USERS), message=CHAT_MESSAGE,
                                  aborted="Paris Hilton", gui_note=_gui_note(self.gui))
        capture_path = self.out / "chat.pcap"
        with self._capture(capture_path, f"tcp port {port}") as captured:
            try:
                self._scenarios(port)
            finally:
                server.request_shutdown()
                thread.join(10)
        if captured:
            self.produced(capture_path, "live capture of the chat session (scenarios A–F)", "chat")

    def _scenarios(self, port: int) -> None:
        from tcplab.chat.client import (
            ChatClient,
            LoggedIn,
            LoginRefused,
            OnlineUsers,
            PrivateMessage,
            SystemNotice,
        )

        screens: dict[str, _Screen] = {}
        paris = None
        try:
            for nick in CHAT_USERS:
                if nick == "Paris Hilton":
                    # A bare socket, so scenario F can kill it the way a crashed process dies.
                    paris = socket.create_connection(("127.0.0.1", port), timeout=10)
                    paris.sendall(b"Paris Hilton\n")
                    continue
                screen = _Screen(ChatClient("127.0.0.1", port))
                screen.client.start()
                screen.client.login(nick)
                screen.wait(LoggedIn)
                screens[nick] = screen
            last = screens[CHAT_USERS[-1]].wait(OnlineUsers)
            self.say(f"online: {', '.join(last.users)}")
            for screen in screens.values():
                screen.settle()
            sender, target, text = CHAT_MESSAGE
            alice, isa, britney = screens[sender], screens[target], screens["Britney Spears"]

            alice.typed(f"{target}: {text}")
            alice.client.send(target, text)
            got = isa.wait(PrivateMessage)
            self._scenario("A", "a valid message is delivered", target,
                           f"{sender} sends '{target}: {text}'", alice.lines() + isa.lines(),
                           got.sender == sender and got.text == text)

            for letter, title, who, line in (("B", "target user not connected", alice,
                                              "Ghost: are you there?"),
                                             ("C", "message with no target", alice,
                                              "hello with no target"),
                                             ("D", "empty message", britney, "Paris Hilton:")):
                who.typed(line)
                who.client.send_raw(line)
                err = who.wait(SystemNotice)
                ok = err.is_error and (letter != "D" or "cannot be empty" in err.text)
                self._scenario(letter, title, who.nick, f"{who.nick} sends '{line}'", who.lines(), ok)

            dup = _Screen(ChatClient("127.0.0.1", port))
            dup.client.start()
            dup.typed("alice")
            dup.client.login("alice")
            refused = dup.wait(LoginRefused, LoggedIn)
            dup.client.close()
            self._scenario("E", "nickname already taken", "a newcomer",
                           "a newcomer asks for 'alice'", dup.lines(),
                           isinstance(refused, LoginRefused))

            # F: Paris Hilton's process dies: the connection ends with RST, not FIN.
            assert paris is not None
            _abort(paris)
            paris = None
            deadline = time.monotonic() + 10
            users: tuple[str, ...] = ()
            while time.monotonic() < deadline:
                users = isa.wait(OnlineUsers, timeout=max(0.1, deadline - time.monotonic())).users
                if "Paris Hilton" not in users:
                    break
            self._scenario("F", "a user disconnects unexpectedly", target,
                           "Paris Hilton's connection is reset", isa.lines(),
                           "Paris Hilton" not in users)
        except TimeoutError as exc:
            self.fail(f"chat: {exc}")
        finally:
            for screen in screens.values():
                screen.client.close()
            if paris is not None:
                paris.close()

    def part2_gui(self) -> None:
        """Two of the scenario's users in the desktop client, against a server of their own.

        Its own server on a free port keeps the GUI's connections out of chat.pcap, whose
        packets the report counts.
        """
        from tcplab.chat.server import ChatServer
        from tcplab.gui import shots

        self.heading("Part 2 · the desktop GUI: two users, screenshots")
        chat = self.facts.chat
        if chat is None:
            return
        problem = shots.shots_problem()
        if problem:
            self._skip("GUI screenshots", problem)
            return
        server = ChatServer("127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, name="demo-gui-server", daemon=True)
        thread.start()
        server.ready.wait(5)
        try:
            with shots.display() as shown:
                self.say(f"client windows on display {shown}, chat server on 127.0.0.1:{server.port}")
                images = shots.run_session(self.out / "images",
                                           lambda d: _gui_session(d, server.port), say=self.say)
        except TcplabError as exc:
            chat.gui_note = f"taking them failed: {exc}"
            self.fail(f"GUI screenshots: {exc}")
            return
        finally:
            server.request_shutdown()
            thread.join(10)
        for name, path in images:
            self.produced(path, f"screenshot of the desktop client: {name}")
        chat.gui_images = images

    def _scenario(self, letter: str, title: str, user: str, action: str, transcript: list[str],
                  ok: bool) -> None:
        from tcplab.report import Scenario

        self.say(f"{'✓' if ok else '✗'} {letter}. {title}: {action}")
        for line in transcript:
            self.say(f"    {line}")
        assert self.facts.chat is not None
        self.facts.chat.scenarios.append(Scenario(letter, title, user, action, transcript, ok))
        if not ok:
            self.fail(f"chat scenario {letter} ({title}) did not behave as expected")

    @contextlib.contextmanager
    def _capture(self, path: Path, expression: str) -> Iterator[bool]:
        """Capture ``expression`` on lo into ``path`` around the body (when live)."""
        if not self.live:
            self._skip("capturing the chat traffic", self.facts.live_reason)
            yield False
            return
        from tcplab.wire.capture import BackgroundCapture

        background = BackgroundCapture("lo", str(path), expression=expression).start()
        try:
            yield True
        finally:
            background.stop(grace=0.3)  # let the last FIN/ACKs reach the socket

    # -- report -------------------------------------------------------------------------

    def write_report(self) -> None:
        from tcplab.report import build_demo_report, write_report

        self.heading("The report")
        html_path, md_path = write_report(build_demo_report(self.facts), self.out)
        self.result.report_html, self.result.report_md = html_path, md_path
        self.result.files.append((html_path.name, "the report: one self-contained page"))
        self.result.files.append((md_path.name, "the same report in Markdown (pictures in images/)"))


class _Screen:
    """One user's chat window as the CLI client would print it: typed lines and rendered events."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.nick = ""
        self._lines: list[str] = []

    def typed(self, line: str) -> None:
        self._lines.append(f"> {line}")

    def wait(self, *kinds: type, timeout: float = 10.0) -> object:
        """The next event of ``kinds``; every event passed on the way is shown, as the CLI does."""
        from tcplab.chat.cli_client import render
        from tcplab.chat.client import LoggedIn, LoginRefused

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {', '.join(k.__name__ for k in kinds)} event in {timeout} s")
            try:
                event = self.client.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(event, LoggedIn):
                self.nick = event.nick
            elif isinstance(event, LoginRefused):
                self._lines.append(f"System: {event.text}")
            else:
                shown = render(event)
                if shown is not None:
                    self._lines.append(shown)
            if isinstance(event, kinds):
                return event

    def settle(self, quiet: float = 0.2) -> None:
        """Show what has arrived so far and start a fresh transcript (the login chatter)."""
        with contextlib.suppress(TimeoutError):
            self.wait(type(None), timeout=quiet)
        self._lines = []

    def lines(self) -> list[str]:
        """The lines shown since the last call (prefixed with the user's name)."""
        out = [f"[{self.nick or 'newcomer'}] {line}" for line in self._lines]
        self._lines = []
        return out


#: What the GUI exchange types: Hebrew, emoji and Latin in one line, both directions.
GUI_MESSAGES = (("isabelleeee", "Alice", "שלום Alice! ראית את הלכידה מהמעבדה? 📦🤝"),
                ("Alice", "isabelleeee", "כן, תודה! the RSTs are all there 😅👍"))
#: Scenario B in the window: a message to someone who is not online.
GUI_ERROR = ("Alice", "Ghost", "are you there?")


def _gui_session(d: Any, port: int) -> list[tuple[str, Path]]:
    """Log two users in, exchange the messages and the error, and grab both windows."""
    windows = {}
    try:
        windows["Alice"] = d.login(port, "Alice", "820x560+20+20")
        windows["isabelleeee"] = d.login(port, "isabelleeee", "820x560+760+40")
        d.wait(lambda: all(len(w.model.users) == 2 for w in windows.values()),
               what="both users in each other's list")
        for sender, target, text in GUI_MESSAGES:
            windows[target].open_conversation(sender)  # the recipient is reading this conversation
            d.say_in(windows[sender], target, text)
            d.wait(lambda s=sender, t=target, x=text: _received(windows[t], s, x),
                   what=f"{target} received {sender}'s message")
        sender, target, text = GUI_ERROR
        d.say_in(windows[sender], target, text)
        d.wait(lambda: _received(windows[sender], target, "is not connected"),
               what="the server's error in Alice's window")
        images = [("alice-error", d.grab(windows["Alice"].top, "gui-alice-error.png"))]
        isa = windows["isabelleeee"]
        isa.open_conversation("Alice")
        d.settle(0.3)
        images.append(("isabelleeee-hebrew", d.grab(isa.top, "gui-isabelleeee-hebrew.png")))
        return images
    finally:
        for win in windows.values():
            win.close()
        d.settle(0.3)


def _received(win: Any, key: str, text: str) -> bool:
    """Has ``text`` arrived in ``win``'s conversation ``key``? (read from the window's model:
    the widget holds Hebrew in display order)."""
    conv = win.model.conversations.get(key) if win.model is not None else None
    return conv is not None and any(text in e.text for e in conv.entries)


def _gui_note(gui: bool) -> str:
    """Why the report has no GUI screenshots, and how to get them."""
    how = ("run 'sudo make demo' (it passes --gui) or 'tcplab demo --gui' on a desktop, or "
           "anywhere with xvfb, python3-tk and imagemagick installed")
    if importlib.util.find_spec("tcplab.gui") is None:
        return "the desktop GUI (tcplab.gui) is not part of this build."
    if not gui:
        return f"the demo ran without --gui; {how}."
    from tcplab.gui import shots

    problem = shots.shots_problem()
    return f"{problem}; then {how}." if problem else "the screenshots were not taken."


def run_demo(out_dir: str | os.PathLike[str], *, live: bool | None = None, chat: bool = True,
             stream: TextIO | None = None, command: str = "tcplab demo",
             gui: bool = False) -> DemoResult:
    """Run the whole demo into ``out_dir`` and write the report; ``live`` None → when allowed;
    ``gui`` adds screenshots of the desktop client when a display (or Xvfb) is usable."""
    started = time.monotonic()
    demo = Demo(Path(out_dir), live=live, stream=stream, command=command, gui=gui)
    steps: list[Callable[[], None]] = [demo.part1_encapsulation, demo.part1_live]
    if chat:
        steps.append(demo.part2_chat)
        if gui:
            steps.append(demo.part2_gui)
    else:
        demo._skip("Part 2, the chat", "turned off with --no-chat")
        if gui:
            demo._skip("GUI screenshots", "they are taken in Part 2, turned off with --no-chat")
    for step in steps + [demo.write_report]:
        try:
            step()
        except TcplabError as exc:
            demo.fail(f"{exc}")
    demo.heading("Done")
    for name, what in demo.result.files:
        demo.say(f"  {name:<24} {what}")
    if demo.result.skipped:
        skipped = "; ".join(demo.result.skipped)
        demo.say(f"  skipped: {skipped}"
                 + ("" if "sudo make demo" in skipped else " — run 'sudo make demo' for them"))
    if demo.result.failures:
        demo.say("  problems: " + "; ".join(demo.result.failures))
    where = demo.result.report_html or demo.out
    demo.say(f"Report: {where}  ({time.monotonic() - started:.1f} s)")
    return demo.result


def _abort(sock: socket.socket) -> None:
    """Reset a TCP connection (SO_LINGER 0 → RST), as when its process is killed."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
