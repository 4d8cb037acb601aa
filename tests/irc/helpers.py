"""Helpers for the real-IRC-client tests: a chat server with an IRC listener, a native user
on tcplab's own client core, and waiting for text to show up in a client's logs."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tcplab.chat.client import ChatClient, Event, LoggedIn, LoginRefused, OnlineUsers
from tcplab.chat.protocol import Limits
from tcplab.chat.server import ChatServer

TIMEOUT = 20.0


@contextlib.contextmanager
def irc_server(**kwargs) -> Iterator[ChatServer]:
    """A ChatServer with native and IRC listeners on free ports, default limits (flood
    control on, as users get it), served from a thread."""
    kwargs.setdefault("limits", Limits())
    server = ChatServer("127.0.0.1", 0, irc_port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    try:
        yield server
    finally:
        server.request_shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "server did not stop"


class NativeUser:
    """A user on ``tcplab.chat.client.ChatClient`` (the core of ``tcplab client``) that keeps
    every event, so a test can wait for one without losing the others."""

    def __init__(self, server: ChatServer, nick: str) -> None:
        self.client = ChatClient(*server.address[:2])
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.client.start()
        self.client.login(nick)
        self.wait(lambda e: isinstance(e, LoggedIn | LoginRefused))
        assert any(isinstance(e, LoggedIn) for e in self.events), self.events

    def _pump(self) -> None:
        while True:
            try:
                event = self.client.events.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self.events.append(event)

    def wait(self, pred: Callable[[Event], bool], timeout: float = TIMEOUT) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            self._pump()
            for event in self.events[seen:]:
                if pred(event):
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event in {timeout} s; got {self.events!r}")
            time.sleep(0.02)

    def wait_online(self, nick: str, present: bool = True) -> None:
        self.wait(lambda e: isinstance(e, OnlineUsers) and (nick in e.users) == present)

    def close(self) -> None:
        self.client.close()


def wait_for_text(paths: Callable[[], list[Path]], needle: str, timeout: float = TIMEOUT) -> str:
    """Wait until a line containing ``needle`` appears in one of the files; return it."""
    deadline = time.monotonic() + timeout
    while True:
        for path in paths():
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    if needle in line:
                        return line
        if time.monotonic() > deadline:
            dump = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                             for p in paths() if p.exists())
            raise AssertionError(f"{needle!r} not seen in {timeout} s\n{dump}")
        time.sleep(0.05)
