"""The end-to-end demo: both parts of the course report, run and explained in one go.

Part 1 builds the bundled HTTP conversation both ways (the report's lone segments and a
real TCP stream), checks the report's frame 351 byte for byte, and analyzes both
captures; with root it repeats the report's live experiment (inject → kernel RSTs) and
its honest counterpart (replay over real TCP), capturing each. Part 2 starts the chat
server, logs in five users, plays scenarios A–F from the report while capturing the
traffic (root), and analyzes that capture.

Every step prints through the same commands a user would type (``tcplab encap``,
``tcplab analyze`` …), so the demo doubles as a guided tour; ``REPORT.md`` in the output
folder lists what was produced and what was found. This module orchestrates only: the
work is done by the library.
"""

from __future__ import annotations

import contextlib
import os
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

from tcplab.errors import EnvironmentProblem, TcplabError

#: The report's frame 351 as captured: BSD loopback header + the 58-byte IPv4/TCP packet.
FRAME_351 = bytes.fromhex(
    "02000000"  # Null/Loopback: AF_INET, little-endian
    "4500003a000100004006 7cbb 7f000001 7f000001"  # IPv4, checksum 0x7cbb
    "13d2 3039 00000000 00000000 5018 2000 b54e 0000"  # TCP 5074 → 12345, PSH+ACK, checksum 0xb54e
    "474554202f626c6f6720485454502f312e31"  # "GET /blog HTTP/1.1"
)

CHAT_USERS = ("Britney Spears", "Paris Hilton", "NoGui_User", "isabelleeee", "Alice")


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
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, what it is)
    findings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Demo:
    """Runs the steps, printing as it goes; collects what the report needs."""

    def __init__(self, out_dir: Path, *, live: bool | None, stream: object = None) -> None:
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.result = DemoResult(out_dir)
        ok, why = live_wire_available()
        if live is None:
            live = ok
        elif live and not ok:
            raise EnvironmentProblem(f"--live: {why}")
        self.live = live
        self.live_reason = why
        self.csv = sample_csv()
        self.stream = stream or sys.stdout

    # -- output helpers -----------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def heading(self, text: str) -> None:
        self.say()
        self.say(f"━━ {text} " + "━" * max(0, 76 - len(text)))

    def run(self, *args: str, limit: int | None = None) -> int:
        """Run a tcplab command in-process, echoing it like a shell transcript."""
        from tcplab.cli import main

        shown = " ".join(shlex.quote(a) for a in args)
        self.say(f"$ tcplab {shown}")
        try:
            if limit is None:
                status = main(list(args))
            else:
                with _head(limit, self.stream):
                    status = main(list(args))
        except SystemExit as exc:  # argparse rejected the arguments
            status = exc.code if isinstance(exc.code, int) else 2
        if status != 0:
            self.result.failures.append(f"tcplab {shown} exited with status {status}")
        return status

    def produced(self, path: Path, what: str) -> Path:
        self.result.files.append((str(path.relative_to(self.out)), what))
        return path

    # -- part 1 -------------------------------------------------------------------------

    def part1_encapsulation(self) -> None:
        from tcplab.analyze.render import hexdump
        from tcplab.encap.transport import RawTCPTransport

        self.heading("Part 1 · the report's packet, rebuilt by hand")
        frame = RawTCPTransport().frame("GET /blog HTTP/1.1")
        self.say("RawTCPTransport().frame('GET /blog HTTP/1.1')  # 127.0.0.1:5074 → :12345, PSH+ACK")
        self.say(hexdump(frame))
        same = frame == FRAME_351
        self.say(f"→ {'identical to' if same else 'DIFFERENT FROM'} frame 351 of the report "
                 "(IP checksum 0x7cbb, TCP checksum 0xb54e)")
        if same:
            self.result.findings.append("Frame 351 of the report is reproduced byte for byte "
                                        "(IP checksum 0x7cbb, TCP checksum 0xb54e).")
        else:
            self.result.failures.append("frame 351 was not reproduced")

        self.heading("Part 1 · CSV → packets, two styles")
        stream = self.produced(self.out / "http_stream.pcapng",
                               "the sample as a complete TCP conversation (pcapng, msg_id comments)")
        seed = self.produced(self.out / "http_seed.pcap",
                             "the sample in the report's style: lone PSH+ACK segments, seq 0")
        self.run("encap", str(self.csv), "-o", str(stream), "--seed", "1")
        self.say()
        self.run("encap", str(self.csv), "-o", str(seed), "--style", "seed", "--linktype", "null")

    def part1_analysis(self) -> None:
        stream = self.out / "http_stream.pcapng"
        seed = self.out / "http_seed.pcap"
        self.heading("Part 1 · reading the stream capture the way Wireshark does")
        self.run("analyze", str(stream), limit=14)
        self.say("…")
        self.say()
        self.run("analyze", str(stream), "--packet", "4")
        self.say()
        self.run("analyze", str(stream), "--conversations")
        self.say()
        self.run("analyze", str(stream), "--http", limit=30)
        svg = self.produced(self.out / "http_flow.svg", "flow graph (ladder diagram) of the stream capture")
        self.say()
        self.run("analyze", str(stream), "--flow-svg", str(svg), limit=12)

        self.heading("Part 1 · the report's capture, and why it looks like that")
        self.run("analyze", str(seed), limit=6)
        self.say("…")
        self.say()
        self.run("analyze", str(seed), "--explain")
        self.result.findings.append(
            "Seed style: every message is a lone PSH+ACK with seq 0, so Wireshark marks each "
            "repeat [TCP Retransmission]; stream style: tshark reads one Complete conversation "
            "(completeness 31)."
        )

    def part1_live(self) -> None:
        self.heading("Part 1 · live on loopback: the report's experiment")
        if not self.live:
            self._skip("inject/replay with capture", self.live_reason)
            return
        rst = self.produced(self.out / "inject_rst.pcap", "live capture: injected segments and the kernel's RSTs")
        self.run("inject", str(self.csv), "--style", "seed", "--client-port", "5074",
                 "--server-port", "12345", "-c", "10", "--interval", "0.1", "--capture", str(rst))
        self.say()
        self.run("analyze", str(rst), "--explain")
        data, resets, _ = _tally(rst)
        self.result.findings.append(
            f"Live injection on lo: {data} hand-built PSH+ACK segments, {resets} RSTs from the "
            "kernel — nothing listens and no handshake was made, as in the report's capture.")
        self.heading("Part 1 · live on loopback: the same conversation over real TCP")
        real = self.produced(self.out / "replay_real_tcp.pcap", "live capture: the CSV replayed over kernel TCP")
        self.run("replay", str(self.csv), "--capture", str(real))
        self.say()
        self.run("analyze", str(real), "--conversations")
        data, resets, completeness = _tally(real)
        self.result.findings.append(
            f"Replay over the kernel's TCP: {data} data segments, {resets} RSTs, conversation "
            f"completeness {sorted(completeness)} (31 = handshake, data and FIN: Complete).")

    # -- part 2 -------------------------------------------------------------------------

    def part2_chat(self) -> None:
        from tcplab.chat.server import ChatServer

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
        capture_path = self.out / "chat.pcap"
        with self._capture(capture_path, f"tcp port {port}") as captured:
            try:
                self._scenarios(port)
            finally:
                server.request_shutdown()
                thread.join(10)
        if captured:
            self.produced(capture_path, "live capture of the chat session (scenarios A–F)")
            self.heading("Part 2 · the chat traffic, analyzed")
            chat = ("--chat-port", str(port))
            self.run("analyze", str(capture_path), "-Y", "tcp.len > 0", *chat, limit=16)
            self.say()
            self.run("analyze", str(capture_path), "--conversations", *chat)

    def _scenarios(self, port: int) -> None:
        from tcplab.chat.client import (
            ChatClient,
            LoggedIn,
            LoginRefused,
            OnlineUsers,
            PrivateMessage,
            SystemNotice,
        )

        clients: dict[str, ChatClient] = {}
        paris = None
        try:
            for nick in CHAT_USERS:
                if nick == "Paris Hilton":
                    # A bare socket, so scenario F can kill it the way a crashed process dies.
                    paris = socket.create_connection(("127.0.0.1", port), timeout=10)
                    paris.sendall(b"Paris Hilton\n")
                    continue
                c = ChatClient("127.0.0.1", port)
                c.start()
                c.login(nick)
                c.wait_for(LoggedIn, timeout=10)
                clients[nick] = c
            last = clients[CHAT_USERS[-1]].wait_for(OnlineUsers, timeout=10)
            self.say(f"online: {', '.join(last.users)}")
            alice, isa, britney = clients["Alice"], clients["isabelleeee"], clients["Britney Spears"]

            alice.send("isabelleeee", "how are youuu")
            got = isa.wait_for(PrivateMessage, timeout=10)
            self._scenario("A", "a valid message is delivered",
                           "Alice → 'isabelleeee: how are youuu'",
                           f"isabelleeee receives {got.sender}: {got.text}",
                           got.sender == "Alice" and got.text == "how are youuu")

            alice.send_raw("Ghost: are you there?")
            err = alice.wait_for(SystemNotice, timeout=10)
            self._scenario("B", "target user not connected", "Alice → 'Ghost: are you there?'",
                           f"Alice gets: {err.text}", err.is_error)

            alice.send_raw("hello with no target")
            err = alice.wait_for(SystemNotice, timeout=10)
            self._scenario("C", "message with no target", "Alice → 'hello with no target'",
                           f"Alice gets: {err.text}", err.is_error)

            britney.send_raw("Paris Hilton:")
            err = britney.wait_for(SystemNotice, timeout=10)
            self._scenario("D", "empty message", "Britney Spears → 'Paris Hilton:'",
                           f"Britney Spears gets: {err.text}",
                           "Name or message cannot be empty." in err.text)

            dup = ChatClient("127.0.0.1", port)
            dup.start()
            dup.login("alice")
            refused = dup.wait_for(LoginRefused, LoggedIn, timeout=10)
            dup.close()
            self._scenario("E", "nickname already taken", "a newcomer asks for 'alice'",
                           f"refused: {getattr(refused, 'text', refused)}",
                           isinstance(refused, LoginRefused))

            # F: Paris Hilton's process dies: the connection ends with RST, not FIN.
            assert paris is not None
            _abort(paris)
            paris = None
            deadline = time.monotonic() + 10
            users: tuple[str, ...] = ()
            while time.monotonic() < deadline:
                ev = isa.wait_for(OnlineUsers, timeout=max(0.1, deadline - time.monotonic()))
                users = ev.users
                if "Paris Hilton" not in users:
                    break
            self._scenario("F", "a user disconnects unexpectedly", "Paris Hilton's connection is reset",
                           f"everyone's list becomes: {', '.join(users)}", "Paris Hilton" not in users)
        finally:
            for c in clients.values():
                c.close()
            if paris is not None:
                paris.close()

    def _scenario(self, letter: str, title: str, action: str, outcome: str, ok: bool) -> None:
        mark = "✓" if ok else "✗"
        self.say(f"{mark} {letter}. {title}: {action} → {outcome}")
        if ok:
            self.result.findings.append(f"Chat scenario {letter} ({title}): {outcome.rstrip('.')}.")
        else:
            self.result.failures.append(f"chat scenario {letter} ({title}) did not behave as expected")

    @contextlib.contextmanager
    def _capture(self, path: Path, expression: str) -> Iterator[bool]:
        """Capture ``expression`` on lo into ``path`` around the body (when live)."""
        if not self.live:
            self._skip("capturing the chat traffic", self.live_reason)
            yield False
            return
        from tcplab.wire.capture import run_capture

        stop = threading.Event()
        ready = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                run_capture("lo", str(path), expression=expression, stop=stop,
                            on_ready=lambda _sock: ready.set())
            except BaseException as exc:  # reported below, in the main thread
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=work, name="demo-capture", daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield not errors
        finally:
            time.sleep(0.3)  # let the last FIN/ACKs reach the socket
            stop.set()
            thread.join(10)
            if errors:
                self.result.failures.append(f"capture failed: {errors[0]}")

    def _skip(self, what: str, why: str) -> None:
        self.say(f"(skipped {what}: {why})")
        self.result.skipped.append(f"{what}: {why}")

    # -- report -------------------------------------------------------------------------

    def write_report(self) -> Path:
        r = self.result
        lines = ["# tcplab demo report", "",
                 f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from `{self.csv.name}`.", "",
                 "## Files", ""]
        lines += [f"- `{name}` — {what}" for name, what in r.files]
        lines += ["", "## Findings", ""] + [f"- {f}" for f in r.findings]
        if r.skipped:
            lines += ["", "## Skipped", ""] + [f"- {s}" for s in r.skipped]
        if r.failures:
            lines += ["", "## Problems", ""] + [f"- {f}" for f in r.failures]
        lines += ["", "Open the `.pcap`/`.pcapng` files in Wireshark, or explore them with "
                  "`tcplab analyze FILE --help`.", ""]
        path = self.out / "REPORT.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def run_demo(out_dir: str | os.PathLike[str], *, live: bool | None = None,
             chat: bool = True) -> DemoResult:
    """Run the whole demo into ``out_dir``; ``live`` None → only when privileges allow."""
    demo = Demo(Path(out_dir), live=live)
    steps: list[Callable[[], None]] = [demo.part1_encapsulation, demo.part1_analysis, demo.part1_live]
    if chat:
        steps.append(demo.part2_chat)
    for step in steps:
        try:
            step()
        except TcplabError as exc:
            demo.say(f"tcplab: error: {exc}")
            demo.result.failures.append(str(exc))
    report = demo.write_report()
    demo.heading("Done")
    for name, what in demo.result.files:
        demo.say(f"  {name:<24} {what}")
    demo.say(f"  {'REPORT.md':<24} what was found, in one page")
    if demo.result.skipped:
        demo.say(f"  skipped: {'; '.join(demo.result.skipped)}")
    if demo.result.failures:
        demo.say("  problems: " + "; ".join(demo.result.failures))
    demo.say(f"Everything is in {report.parent}/")
    return demo.result


def _tally(path: Path) -> tuple[int, int, set[int]]:
    """(data segments, RST segments, completeness values) of a capture, for the report."""
    from tcplab.analyze import analyze

    data = resets = 0
    completeness: set[int] = set()
    for d in analyze(path):
        if d.get("tcp.len"):
            data += 1
        if d.get("tcp.flags.reset"):
            resets += 1
        if d.get("tcp.completeness") is not None:
            completeness.add(int(d["tcp.completeness"]))  # type: ignore[arg-type]
    return data, resets, completeness


def _abort(sock: socket.socket) -> None:
    """Reset a TCP connection (SO_LINGER 0 → RST), as when its process is killed."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def _head(limit: int, stream: object) -> Iterator[None]:
    """Show only the first ``limit`` lines a command prints (like ``| head``)."""
    target = stream

    class Head:
        def __init__(self) -> None:
            self.lines = 0

        def write(self, text: str) -> int:
            for part in text.splitlines(keepends=True):
                if self.lines < limit:
                    target.write(part)  # type: ignore[attr-defined]
                if part.endswith("\n"):
                    self.lines += 1
            return len(text)

        def flush(self) -> None:
            target.flush()  # type: ignore[attr-defined]

        def isatty(self) -> bool:
            return False

    old = sys.stdout
    sys.stdout = Head()  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = old
