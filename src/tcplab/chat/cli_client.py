"""The terminal front end of the chat client: the report's prompts and usage lines.

On a terminal it uses prompt_toolkit so messages arriving while the user types are
printed *above* the input line instead of through it (the report's transcript shows
``> >`` artefacts from plain ``print`` racing ``input``), and Tab completes online
nicknames. When stdin is not a terminal it falls back to plain line mode so it can be
scripted (``printf 'Alice\\nBob: hi\\n' | tcplab client --port 55555``).

All networking is in :class:`tcplab.chat.client.ChatClient`; this module only asks,
renders and forwards. Peer text is always passed through :func:`sanitize` first.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from tcplab.chat.client import (
    BroadcastMessage,
    ChatClient,
    Connected,
    Disconnected,
    Event,
    LoggedIn,
    LoginRefused,
    OnlineUsers,
    PrivateMessage,
    SystemNotice,
    UserJoined,
    UserLeft,
    split_chat_input,
)
from tcplab.chat.sanitize import sanitize
from tcplab.errors import EnvironmentProblem, InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
USAGE = "Connected! Usage: 'TargetName: Your Message'"
QUIT_HINT = "Type 'exit' to quit."
INVALID_FORMAT = "Invalid format! Use: TargetName: Message"
HELP = """\
  TargetName: message   private message (Tab completes names)
  *: message            message to everyone
  /users                show who is online
  /help                 this help
  exit                  leave the chat"""
#: Reconnect back-off (seconds) for --reconnect: doubles up to this ceiling.
RECONNECT_MAX_DELAY = 30.0


@dataclass
class Options:
    host: str | None = None
    port: int | None = None
    nick: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    insecure: bool = False
    reconnect: bool = False
    connect_timeout: float = 10.0


def render(event: Event) -> str | None:
    """The line shown for an event (sanitized), or None for events shown another way."""
    if isinstance(event, PrivateMessage):
        return f"{sanitize(event.sender)}: {sanitize(event.text)}"
    if isinstance(event, BroadcastMessage):
        return f"* {sanitize(event.sender)}: {sanitize(event.text)}"
    if isinstance(event, OnlineUsers):
        return "Online: " + ", ".join(sanitize(u) for u in event.users)
    if isinstance(event, SystemNotice):
        return f"System: {sanitize(event.text)}"
    if isinstance(event, UserJoined):
        return f"System: {sanitize(event.nick)} joined."
    if isinstance(event, UserLeft):
        return f"System: {sanitize(event.nick)} left."
    if isinstance(event, Disconnected):
        return None if event.by_user else f"Connection lost: {sanitize(event.reason)}"
    return None


class _Console:
    """Reads answers and chat lines; prints above the prompt when on a terminal."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.tty = stdin.isatty() and stdout.isatty()
        self._print_lock = threading.Lock()

    def ask(self, prompt: str) -> str:
        # Plain reads even on a terminal: nothing arrives from the network before login,
        # so there is nothing to print over the answer yet.
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def say(self, text: str) -> None:
        with self._print_lock:
            print(text, file=self.stdout, flush=True)


def _ssl_context(opts: Options):  # -> ssl.SSLContext | None
    if not opts.tls:
        return None
    import ssl

    ctx = ssl.create_default_context(cafile=opts.tls_ca)
    if opts.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _ask_endpoint(console: _Console, opts: Options) -> tuple[str, int]:
    """The report's questions, unless any of --host/--port/--nick says the user knows where to go."""
    if opts.host is not None or opts.port is not None or opts.nick is not None:
        return opts.host or DEFAULT_HOST, opts.port or DEFAULT_PORT
    host = opts.host
    if host is None:
        host = console.ask(f"Host IP (default {DEFAULT_HOST}): ").strip() or DEFAULT_HOST
    port = opts.port
    while port is None:
        answer = console.ask(f"Port (default {DEFAULT_PORT}): ").strip()
        if not answer:
            port = DEFAULT_PORT
        elif answer.isdigit() and 0 < int(answer) < 65536:
            port = int(answer)
        elif not console.tty:
            raise InputError(f"port {answer!r} is not a number between 1 and 65535")
        else:
            console.say("A port is a number between 1 and 65535.")
    return host, port


def _connect(opts: Options, host: str, port: int) -> ChatClient:
    client = ChatClient(host, port, ssl_context=_ssl_context(opts), password=opts.password,
                        connect_timeout=opts.connect_timeout)
    client.start()
    event = client.wait_for(Connected, Disconnected, timeout=opts.connect_timeout + 5)
    if isinstance(event, Disconnected):
        raise EnvironmentProblem(event.reason)
    return client


def _login(console: _Console, client: ChatClient, nick: str | None, *, ask: bool) -> str:
    """Offer nicknames until one is accepted (scenario E: no reconnect needed)."""
    while True:
        if nick is None:
            if not ask:
                raise InputError("no nickname given")
            nick = console.ask("Choose a Nickname: ")
        client.login(nick)
        event = client.wait_for(LoggedIn, LoginRefused, Disconnected, timeout=15)
        if isinstance(event, LoggedIn):
            return event.nick
        if isinstance(event, Disconnected):
            raise EnvironmentProblem(event.reason)
        console.say(f"System: {sanitize(event.text)}")
        if not ask or event.code == 464:
            raise InputError(f"nickname {nick!r} refused: {event.text}")
        nick = None


def run_client(opts: Options, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The whole CLI session; returns the exit status."""
    console = _Console(stdin or sys.stdin, stdout or sys.stdout)
    try:
        host, port = _ask_endpoint(console, opts)
        client = _connect(opts, host, port)
        try:
            nick = _login(console, client, opts.nick, ask=True)
        except BaseException:
            client.close()
            raise
    except EOFError:
        return 0
    console.say(USAGE)
    console.say(QUIT_HINT)
    session = _Session(console, client, opts, nick)
    return session.run()


class _Session:
    """The chat loop: one thread prints events, the main thread reads what the user types."""

    def __init__(self, console: _Console, client: ChatClient, opts: Options, nick: str) -> None:
        self.console = console
        self.client = client
        self.opts = opts
        self.nick = nick
        self.done = threading.Event()
        self.lost = False
        self._exit_prompt: Callable[[], None] | None = None

    def run(self) -> int:
        printer = threading.Thread(target=self._print_events, name="tcplab-chat-printer",
                                   daemon=True)
        printer.start()
        try:
            if self.console.tty:
                self._tty_loop()
            else:
                self._plain_loop()
        except (EOFError, KeyboardInterrupt):
            pass
        finally:
            self.done.set()
            self.client.close()
            printer.join(timeout=3)
        return 1 if self.lost else 0

    # -- output --------------------------------------------------------------------------

    def _print_events(self) -> None:
        while True:
            client = self.client
            try:
                event = client.events.get(timeout=0.1)
            except queue.Empty:
                if self.done.is_set():
                    return
                continue
            text = render(event)
            if text is not None:
                self.console.say(text)
            if isinstance(event, Disconnected):
                if event.by_user or self.done.is_set():
                    return
                if self.opts.reconnect and self._reconnect():
                    continue
                self.lost = True
                self.done.set()
                if self._exit_prompt is not None:
                    self._exit_prompt()
                return

    def _reconnect(self) -> bool:
        delay = 1.0
        while not self.done.is_set():
            self.console.say(f"Reconnecting to {self.client.host}:{self.client.port} "
                             f"in {delay:g} s...")
            if self.done.wait(delay):
                return False
            try:
                client = _connect(self.opts, self.client.host, self.client.port)
            except EnvironmentProblem:
                delay = min(RECONNECT_MAX_DELAY, delay * 2)
                continue
            client.login(self.nick)
            event = client.wait_for(LoggedIn, LoginRefused, Disconnected, timeout=15)
            if isinstance(event, LoggedIn):
                self.client = client
                self.console.say("Reconnected.")
                return True
            client.close()
            if isinstance(event, LoginRefused):
                self.console.say(f"System: {sanitize(event.text)}")
                return False
            delay = min(RECONNECT_MAX_DELAY, delay * 2)
        return False

    # -- input ---------------------------------------------------------------------------

    def handle_input(self, line: str) -> bool:
        """Act on one typed line; return False when the user wants to leave."""
        text = line.strip()
        if text.lower() == "exit":
            return False
        if text == "/help":
            self.console.say(HELP)
            return True
        if text == "/users":
            users = self.client.online
            self.console.say("Online: " + ", ".join(sanitize(u) for u in users))
            return True
        if text.startswith("/"):
            self.client.send_raw(text)
            return True
        if split_chat_input(line) is None:
            self.console.say(INVALID_FORMAT)
            return True
        if not self.client.send_raw(line):
            self.console.say("System: not sent (not connected).")
        return True

    def _plain_loop(self) -> None:
        stdin = self.console.stdin
        while not self.done.is_set():
            line = stdin.readline()
            if not line:
                return
            if not self.handle_input(line.rstrip("\r\n")):
                return

    def _tty_loop(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession = PromptSession(completer=NickCompleter(lambda: self.client.online),
                                               complete_while_typing=False)

        def exit_prompt() -> None:
            app = session.app
            loop = getattr(app, "loop", None)
            if app.is_running and loop is not None:
                loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()))

        self._exit_prompt = exit_prompt
        with patch_stdout(raw=True):
            # The console prints through sys.stdout, which patch_stdout redirects above the prompt.
            self.console.stdout = sys.stdout
            while not self.done.is_set():
                line = session.prompt("> ")
                if not self.handle_input(line):
                    return


def _completer_base():
    from prompt_toolkit.completion import Completer

    return Completer


class NickCompleter(_completer_base()):  # type: ignore[misc]
    """Tab after the start of a nickname completes it to ``Nickname: ``."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self.names = names

    def get_completions(self, document, complete_event):  # type: ignore[no-untyped-def]
        from prompt_toolkit.completion import Completion

        before = document.text_before_cursor
        if ":" in before:
            return
        prefix = before.lstrip().casefold()
        for name in ["*", *self.names()]:
            if name.casefold().startswith(prefix):
                yield Completion(f"{name}: ", start_position=-len(before), display=sanitize(name))
