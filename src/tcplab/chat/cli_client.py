"""The terminal front end of the chat client: the report's prompts and usage lines.

On a terminal it uses prompt_toolkit so messages arriving while the user types are
printed *above* the input line instead of through it (the report's transcript shows
``> >`` artefacts from plain ``print`` racing ``input``), and Tab completes online
nicknames. When stdin is not a terminal it falls back to plain line mode so it can be
scripted (``printf 'Alice\\nBob: hi\\n' | tcplab client --port 55555``); there the
client's own answers (``Invalid format!``, ``/users``) wait until the server has answered
every line before, so the output keeps the order of the input.

All networking is in :class:`tcplab.chat.client.ChatClient`; this module only asks,
renders and forwards. Peer text is always passed through :func:`sanitize` first, and
every printed line through :meth:`_Console.say`, which cannot fail on a terminal that
cannot show a character (it degrades to ``\\uXXXX`` escapes instead).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from tcplab.chat import display
from tcplab.chat.client import (
    BroadcastMessage,
    ChatClient,
    Connected,
    Disconnected,
    Event,
    LoggedIn,
    LoginRefused,
    OnlineUsers,
    Pong,
    PrivateMessage,
    SystemNotice,
    UserJoined,
    UserLeft,
    split_chat_input,
)
from tcplab.chat.protocol import COMMANDS, Code, nick_problem
from tcplab.chat.sanitize import sanitize
from tcplab.errors import EnvironmentProblem, InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
USAGE = "Connected! Usage: 'TargetName: Your Message'"
QUIT_HINT = "Type 'exit' to quit."
INVALID_FORMAT = "Invalid format! Use: TargetName: Message"
#: What only this client understands; the server's commands come from protocol.COMMANDS so
#: the server's "Unknown command" reply and this help can never disagree.
_LOCAL_HELP = (
    ("TargetName: message", "private message (Tab completes names)"),
    ("*: message", "message to everyone"),
)
_LOCAL_COMMANDS = (
    ("/help", "this help"),
    ("exit", "leave the chat (like /quit)"),
)
HELP = "\n".join(f"  {name:<22}{text}"
                 for name, text in (*_LOCAL_HELP, *COMMANDS, *_LOCAL_COMMANDS))
#: Reconnect back-off (seconds) for --reconnect: doubles up to this ceiling.
RECONNECT_MAX_DELAY = 30.0
#: The online list is printed in full at login only up to this many names; longer lists
#: are announced by their size (``/users`` always prints them). Later changes are shown as
#: ``+ name joined`` / ``- name left``, one line each, whatever the size.
SHORT_LIST = 10
#: Chat lines typed while --reconnect is reconnecting that are kept and sent afterwards.
MAX_OUTBOX = 20
#: How long a login may wait for the server's answer before giving up.
LOGIN_TIMEOUT = 15.0
#: Line mode waits at most this long for the server to answer one line before going on.
LINE_MODE_BARRIER_TIMEOUT = 10.0
#: Wrong passwords accepted at the interactive password prompt before giving up.
PASSWORD_TRIES = 3
PASSWORD_HINT = "(you can also give --password or set TCPLAB_CHAT_PASSWORD)"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
BIDI_MODES = ("auto", "on", "off")


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
    bidi: str = "auto"


def bidi_enabled(mode: str, tty: bool, environ: dict[str, str] | None = None) -> bool:
    """``--bidi``: ``on``/``off`` as said; ``auto`` reorders only on a terminal known not to
    do it (:func:`tcplab.chat.display.terminal_needs_bidi`) — never into a pipe, where a
    script wants the text in logical order."""
    if mode not in BIDI_MODES:
        raise InputError(f"--bidi must be one of {', '.join(BIDI_MODES)}, not {mode!r}")
    if mode == "auto":
        return tty and display.terminal_needs_bidi(environ)
    return mode == "on"


def render(event: Event) -> str | None:
    """The line shown for an event (sanitized), or None for events shown another way."""
    if isinstance(event, PrivateMessage):
        return f"{sanitize(event.sender)}: {sanitize(event.text)}"
    if isinstance(event, BroadcastMessage):
        return f"* {sanitize(event.sender)}: {sanitize(event.text)}"
    if isinstance(event, OnlineUsers):
        return online_text(event.users)
    if isinstance(event, SystemNotice):
        return f"System: {sanitize(event.text)}"
    if isinstance(event, UserJoined):
        return f"+ {sanitize(event.nick)} joined"
    if isinstance(event, UserLeft):
        return f"- {sanitize(event.nick)} left"
    if isinstance(event, Pong):
        return f"Pong: {event.rtt * 1000:.1f} ms round trip"
    if isinstance(event, Disconnected):
        return None if event.by_user else f"Connection lost: {sanitize(event.reason)}"
    return None


def online_text(users: Iterable[str], *, full: bool = True) -> str:
    users = tuple(users)
    if not full and len(users) > SHORT_LIST:
        return f"Online: {len(users)} users (type /users to list them)"
    return "Online: " + ", ".join(sanitize(u) for u in users)


def typed_problem(text: str) -> str | None:
    """Why a line the user typed cannot be sent, or None. A terminal that is not in UTF-8
    hands over bytes that decode to lone surrogates; they cannot be encoded for the wire,
    and guessing what was meant would send something else than what was typed."""
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return ("The line has bytes that are not UTF-8 (is the terminal's encoding UTF-8?); "
                "not sent.")
    return None


class _Console:
    """Reads answers and chat lines; prints above the prompt when on a terminal."""

    def __init__(self, stdin: TextIO, stdout: TextIO, bidi: bool = False) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.tty = stdin.isatty() and stdout.isatty()
        self.bidi = bidi
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

    def ask_password(self, prompt: str) -> str:
        """Hidden input (like getpass, through prompt_toolkit so the terminal is restored)."""
        from prompt_toolkit import prompt as pt_prompt

        return pt_prompt(prompt, is_password=True)

    def shape(self, text: str) -> list[str]:
        """The screen lines for ``text``: with --bidi, wrapped to the terminal width first
        and then each line reordered (display.layout), otherwise the text as it is."""
        if not self.bidi or not display.has_rtl(text):
            return [text]
        return display.layout(text, _terminal_width())[1]

    def say(self, text: str) -> None:
        """Print one logical line. Never raises for a character the terminal's encoding
        lacks (a C locale, PYTHONIOENCODING=ascii): it is written as an escape instead."""
        lines = self.shape(text)
        with self._print_lock:
            for line in lines:
                try:
                    print(line, file=self.stdout, flush=True)
                except UnicodeEncodeError:
                    encoding = getattr(self.stdout, "encoding", None) or "ascii"
                    safe = line.encode(encoding, "backslashreplace").decode(encoding)
                    print(safe, file=self.stdout, flush=True)


def _terminal_width() -> int:
    """The terminal's width now (it may have been resized); an exported COLUMNS, which
    shutil.get_terminal_size prefers, goes stale on a resize and is only the fallback."""
    stream = sys.__stdout__
    try:
        if stream is not None:
            return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        pass
    return shutil.get_terminal_size((80, 24)).columns


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
        if typed_problem(host):
            raise InputError("the host name has bytes that are not UTF-8")
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
    # deltas: the server sends "joined"/"left" notices instead of a full list on every
    # change, which is what this client shows (and far less traffic on a busy server).
    client = ChatClient(host, port, ssl_context=_ssl_context(opts), password=opts.password,
                        connect_timeout=opts.connect_timeout, deltas=True)
    client.start()
    try:
        event = client.wait_for(Connected, Disconnected, timeout=opts.connect_timeout + 5)
    except TimeoutError:
        client.close()
        raise EnvironmentProblem(f"cannot connect to {host}:{port}: no answer") from None
    if isinstance(event, Disconnected):
        raise EnvironmentProblem(event.reason)
    return client


def _answer(client: ChatClient) -> Event:
    """The server's answer to a login. A ``464`` can come as a plain notice: the answer to a
    ``/pass`` sent just before the nickname may arrive before the core knows a nickname is
    pending, and the server closes the connection right after it."""
    deadline = time.monotonic() + LOGIN_TIMEOUT
    while True:
        try:
            event = client.wait_for(LoggedIn, LoginRefused, Disconnected, SystemNotice,
                                    timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise EnvironmentProblem(f"the server did not answer the login within "
                                     f"{LOGIN_TIMEOUT:g} s") from None
        if isinstance(event, SystemNotice):
            if event.code == Code.PASSWORD:
                return LoginRefused(event.code, event.text)
            continue
        return event


def _login(console: _Console, opts: Options, host: str, port: int) -> tuple[ChatClient, str]:
    """Connect and offer nicknames until one is accepted (scenario E: no reconnect needed).

    A refused password is the password's fault, never the nickname's: the password is asked
    for (hidden) on a terminal, and the same nickname offered again.
    """
    client = _connect(opts, host, port)
    nick = opts.nick
    password_sent = opts.password is not None
    wrong_passwords = 0
    try:
        while True:
            if nick is None:
                nick = console.ask("Choose a Nickname: ")
            problem = typed_problem(nick) or nick_problem(nick)
            if problem is not None:
                console.say(f"System: {sanitize(problem)} Choose another nickname.")
                nick = None
                continue
            client.login(nick)
            event = _answer(client)
            if isinstance(event, LoggedIn):
                return client, event.nick
            if isinstance(event, LoginRefused) and event.code == Code.PASSWORD:
                if password_sent:
                    # The server closes the connection after a wrong password.
                    wrong_passwords += 1
                    console.say(f"System: {sanitize(event.text)}")
                    client.close()
                    if not console.tty:
                        raise InputError("the server refused the password given with "
                                         "--password or TCPLAB_CHAT_PASSWORD")
                    if wrong_passwords >= PASSWORD_TRIES:
                        raise InputError(f"the server refused the password "
                                         f"{PASSWORD_TRIES} times")
                else:
                    console.say(f"The server needs a password {PASSWORD_HINT}.")
                    if not console.tty:
                        raise InputError("the server needs a password: give --password or "
                                         "set TCPLAB_CHAT_PASSWORD")
                password = console.ask_password("Password: ")
                if typed_problem(password) or _LINE_BREAK.search(password):
                    raise InputError("the password cannot be sent (not UTF-8, or a line break)")
                opts.password = password  # kept for --reconnect
                if password_sent:
                    client = _connect(opts, host, port)  # sends /pass first
                else:
                    client.send_raw(f"/pass {password}")
                password_sent = True
                continue  # the same nickname again: it was not at fault
            if isinstance(event, Disconnected):
                raise EnvironmentProblem(event.reason)
            console.say(f"System: {sanitize(event.text)}")
            nick = None
    except BaseException:
        client.close()
        raise


def _configure_streams(stdin: TextIO, stdout: TextIO) -> None:
    """Bytes that are not UTF-8 on stdin become lone surrogates (refused with a message by
    :func:`typed_problem`) instead of a UnicodeDecodeError; characters stdout's encoding
    lacks become escapes instead of a UnicodeEncodeError."""
    reconfigure = getattr(stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    reconfigure = getattr(stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def run_client(opts: Options, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The whole CLI session; returns the exit status."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    _configure_streams(stdin, stdout)
    console = _Console(stdin, stdout, bidi=bidi_enabled(opts.bidi, stdout.isatty()))
    try:
        host, port = _ask_endpoint(console, opts)
        client, nick = _login(console, opts, host, port)
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
        #: True while --reconnect is between connections: typed lines go to the outbox.
        self.reconnecting = False
        self.outbox: deque[str] = deque()
        # What each ping in flight is for, in order: None for /ping (print the time), an
        # Event for a line-mode barrier (set once everything before it has been printed).
        self._pings: deque[threading.Event | None] = deque()
        self._pings_lock = threading.Lock()
        self._first_list = True  # the list after (re)login is shown, later ones as deltas

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
            try:
                self._show(event)
            except Exception as exc:  # the printer must outlive any one bad event
                with contextlib.suppress(Exception):
                    self.console.say(f"(could not show a message: {exc!r})")
            if isinstance(event, Disconnected):
                if event.by_user or self.done.is_set():
                    return
                if self.opts.reconnect and self._reconnect():
                    continue
                if self.done.is_set():  # the user left while we were reconnecting
                    return
                self.lost = True
                self.done.set()
                if self._exit_prompt is not None:
                    self._exit_prompt()
                return

    def _show(self, event: Event) -> None:
        if isinstance(event, Pong):
            with self._pings_lock:
                waiter = self._pings.popleft() if self._pings else None
            if waiter is not None:
                waiter.set()
                return
        if isinstance(event, OnlineUsers):
            if not self._first_list:
                return  # lists only answer /users, shown from client.online
            self._first_list = False
            self.console.say(online_text(event.users, full=False))
            return
        text = render(event)
        if text is not None:
            self.console.say(text)

    def _reconnect(self) -> bool:
        self.reconnecting = True
        try:
            return self._reconnect_loop()
        finally:
            self.reconnecting = False
            if self.outbox:
                self.console.say(f"Not sent: {len(self.outbox)} waiting message(s) "
                                 "(not reconnected).")
                self.outbox.clear()

    def _reconnect_loop(self) -> bool:
        delay = 1.0
        while not self.done.is_set():
            self.console.say(f"Reconnecting to {self.client.host}:{self.client.port} "
                             f"in {delay:g} s... (messages you type now are sent afterwards)")
            if self.done.wait(delay):
                return False
            try:
                client = _connect(self.opts, self.client.host, self.client.port)
            except EnvironmentProblem:
                delay = min(RECONNECT_MAX_DELAY, delay * 2)
                continue
            client.login(self.nick)
            try:
                event = _answer(client)
            except EnvironmentProblem:  # no answer in time: try again later
                client.close()
                delay = min(RECONNECT_MAX_DELAY, delay * 2)
                continue
            if isinstance(event, LoggedIn):
                self._first_list = True
                with self._pings_lock:
                    self._pings.clear()  # those pings died with the old connection
                self.client = client
                self.reconnecting = False
                sent = 0
                while self.outbox:
                    if client.send_raw(self.outbox.popleft()):
                        sent += 1
                note = f"; sent {sent} waiting message(s)" if sent else ""
                self.console.say(f"Reconnected{note}.")
                return True
            client.close()
            if isinstance(event, LoginRefused):
                self.console.say(f"System: {sanitize(event.text)}")
                return False
            delay = min(RECONNECT_MAX_DELAY, delay * 2)
        return False

    # -- input ---------------------------------------------------------------------------

    def handle_input(self, text: str) -> bool:
        """Act on what the user entered; return False when the user wants to leave.

        A bracketed paste can bring several lines at once: if the first one is a message
        ``Target: text``, every further line goes to the same target as its own message
        (the wire carries one line per message), and the screen says so."""
        lines = _LINE_BREAK.split(text)
        if len(lines) == 1:
            return self._handle_line(text)
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            return self._handle_line("")
        first = lines[0]
        parts = split_chat_input(first)
        if first.strip().startswith("/") or first.strip().lower() == "exit" or parts is None:
            return all(self._handle_line(line) for line in lines)
        target = parts[0]
        self._local(f"(pasted {len(lines)} lines: sent to {sanitize(target)} as "
                    f"{len(lines)} messages)")
        if not self._handle_line(first):
            return False
        for line in lines[1:]:
            self._handle_line(f"{target}: {line}")
        return True

    def _handle_line(self, line: str) -> bool:
        problem = typed_problem(line)
        if problem is not None:
            self._local(problem)
            return True
        text = line.strip()
        if text.lower() in ("exit", "/quit"):
            return False
        if text.startswith("/"):
            name = text.split(maxsplit=1)[0].lower()
            if name == "/help":
                self._local(HELP)
                return True
            if name == "/users":
                users = self.client.online
                stale = " (as of the lost connection; reconnecting)" if self.reconnecting else ""
                self._local(online_text(users) + stale)
                return True
            if self.reconnecting:
                self._local("Not sent — reconnecting (commands are not kept).")
                return True
            if name == "/ping":
                with self._pings_lock:
                    self._pings.append(None)
                    sent = self.client.ping()
                    if not sent:
                        self._pings.pop()
            else:
                sent = self.client.send_raw(text)
            if not sent:
                self._local("System: not sent (not connected).")
            return True
        if split_chat_input(line) is None:
            self._local(INVALID_FORMAT)
            return True
        if not self.reconnecting and self.client.send_raw(line):
            return True
        if not self.opts.reconnect:
            self._local("System: not sent (not connected).")
        elif len(self.outbox) >= MAX_OUTBOX:
            self._local(f"Not sent — reconnecting, and {MAX_OUTBOX} messages are "
                        "already waiting.")
        else:
            self.outbox.append(line)
            self._local(f"Not sent yet — reconnecting; it will be sent once "
                        f"reconnected ({len(self.outbox)} waiting).")
        return True

    def barrier(self) -> None:
        """Wait until the server has answered everything sent so far and those answers have
        been printed: the server answers in order, so its reply to a ping comes after them."""
        waiter = threading.Event()
        with self._pings_lock:
            self._pings.append(waiter)
            if not self.client.ping():
                self._pings.pop()
                return
        deadline = time.monotonic() + LINE_MODE_BARRIER_TIMEOUT
        while not waiter.wait(0.1):
            if self.done.is_set() or self.reconnecting or time.monotonic() > deadline:
                return

    def _local(self, text: str) -> None:
        """Print a line of the client's own. In line mode the server's answers to what was
        sent before must come first, so wait for them (a terminal shows both as they come)."""
        if not self.console.tty:
            self.barrier()
        self.console.say(text)

    def _plain_loop(self) -> None:
        stdin = self.console.stdin
        try:
            while not self.done.is_set():
                line = stdin.readline()
                if not line:
                    return
                if not self.handle_input(line.rstrip("\r\n")):
                    return
        finally:
            self.barrier()  # the answers to the last lines, before the connection closes

    def _tty_loop(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.patch_stdout import patch_stdout

        keys = KeyBindings()
        session: PromptSession = PromptSession(completer=NickCompleter(lambda: self.client.online),
                                               complete_while_typing=False,
                                               input_processors=[JoinedEmojiProcessor()],
                                               key_bindings=keys)

        def leave(exception: type[BaseException] = EOFError) -> None:
            # Erase the unfinished "> " line instead of leaving it above the shell prompt.
            app = session.app
            app.erase_when_done = True
            if app.future is not None and not app.future.done():
                app.exit(exception=exception())

        @keys.add("c-c")
        def _interrupt(event) -> None:  # type: ignore[no-untyped-def]
            leave(KeyboardInterrupt)

        @keys.add("c-d", filter=Condition(lambda: not session.default_buffer.text))
        def _end(event) -> None:  # type: ignore[no-untyped-def]
            leave(EOFError)

        def exit_prompt() -> None:
            app = session.app
            loop = getattr(app, "loop", None)
            if app.is_running and loop is not None:
                loop.call_soon_threadsafe(leave)

        def pre_run() -> None:
            # The connection may have ended between two prompts, after exit_prompt() found
            # no prompt running.
            if self.done.is_set():
                leave()

        self._exit_prompt = exit_prompt
        with patch_stdout(raw=True):
            # The console prints through sys.stdout, which patch_stdout redirects above the prompt.
            self.console.stdout = sys.stdout
            while not self.done.is_set():
                line = session.prompt("> ", pre_run=pre_run)
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


def _processor_base():
    from prompt_toolkit.layout.processors import Processor

    return Processor


class JoinedEmojiProcessor(_processor_base()):  # type: ignore[misc]
    """Draw the input line so prompt_toolkit and the terminal agree on where the cursor is.

    prompt_toolkit measures every code point with wcwidth, terminals draw clusters:
    ``👨‍👩‍👧`` (three emoji joined by ZWJ) counts 6 cells but tmux and most terminals draw
    it in 2; a flag (two regional indicators) counts 4, tmux draws it in 2 and a lone
    indicator in 1. The cursor then drifts, a retyped line leaves debris and wrapping
    breaks. prompt_toolkit has no hook to lay out a cluster as one cell, so the *input line
    only* is drawn in a form every terminal measures like wcwidth does: a ZWJ that would
    glue a wide character onto the one before is not drawn (the members show side by side),
    and regional indicators show as their letters (``🇮🇱`` as ``IL``, underlined). The text
    being edited and sent is unchanged, and printed messages show the real glyphs.
    """

    def apply_transformation(self, ti):  # type: ignore[no-untyped-def]
        from prompt_toolkit.formatted_text.utils import fragment_list_to_text
        from prompt_toolkit.layout.processors import Transformation
        from prompt_toolkit.layout.utils import explode_text_fragments
        from wcwidth import wcwidth

        fragments = ti.fragments
        text = fragment_list_to_text(fragments)
        if text.isascii() or not (display.ZWJ in text or _REGIONAL.search(text)):
            return Transformation(fragments)
        chars = explode_text_fragments(fragments)
        dropped = [i for i in range(len(chars) - 1)
                   if chars[i][1] == display.ZWJ and wcwidth(chars[i + 1][1]) == 2]
        gone = set(dropped)
        kept = []
        for i, (style, ch, *rest) in enumerate(chars):
            if i in gone:
                continue
            if _REGIONAL.match(ch):
                kept.append((style + " underline", chr(ord("A") + ord(ch) - 0x1F1E6), *rest))
            else:
                kept.append((style, ch, *rest))
        if not dropped:
            return Transformation(kept)

        def source_to_display(i: int) -> int:
            return i - bisect.bisect_left(dropped, i)

        def display_to_source(j: int) -> int:
            i = j
            while source_to_display(i) < j:
                i += 1
            return i

        return Transformation(kept, source_to_display, display_to_source)


_REGIONAL = re.compile("[\U0001f1e6-\U0001f1ff]")
