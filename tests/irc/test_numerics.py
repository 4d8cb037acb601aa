"""A scripted client on jaraco's ``irc`` package (an independent IRC implementation) drives
the numerics table of docs/irc.md against a real server, beside native users."""

from __future__ import annotations

import time

import irc.client
import irc.events
import pytest

from tcplab.chat.client import BroadcastMessage, PrivateMessage
from tcplab.chat.protocol import Limits
from tests.irc.helpers import TIMEOUT, NativeUser, irc_server

pytestmark = pytest.mark.timeout(120)


class Scripted:
    """One jaraco ``irc`` connection whose every event is kept for the test to wait on."""

    def __init__(self, address: tuple, nick: str, password: str | None = None) -> None:
        self.reactor = irc.client.Reactor()
        self.events: list[irc.client.Event] = []
        self.reactor.add_global_handler("all_events", lambda _c, e: self.events.append(e), -10)
        self.conn = self.reactor.server().connect(address[0], address[1], nick,
                                                  password=password, username=nick.lower(),
                                                  ircname=f"{nick} scripted")

    def wait(self, kind: str, pred=lambda e: True, timeout: float = TIMEOUT) -> irc.client.Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.type == kind and pred(event):
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} event; got "
                                     f"{[(e.type, e.arguments) for e in self.events[-30:]]}")
            self.reactor.process_once(0.05)

    def drain(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.reactor.process_once(0.05)
        self.events.clear()

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect("bye")


def name(code: str) -> str:
    return irc.events.numeric.get(code, code)


#: command → the numeric it must answer with (docs/irc.md, "Numerics").
NUMERICS = [
    ("PRIVMSG Ghost :anyone?", "401"),
    ("PRIVMSG", "411"),
    ("PRIVMSG Britney_Spears", "412"),
    ("PRIVMSG Britney_Spears :", "412"),
    ("PRIVMSG Britney_Spears :\u200b", "412"),
    ("PRIVMSG Britney_Spears :   ", "412"),
    ("PRIVMSG #lobby :\u00a0\u200d\u3164", "412"),
    ("WHOIS Britney_Spears", "311"),
    ("WHOIS Britney_Spears", "318"),
    ("WHOIS Ghost", "401"),
    ("ISON Britney_Spears Ghost", "303"),
    ("USERHOST Britney_Spears", "302"),
    ("MODE scripted", "221"),
    ("MODE scripted +i", "umode"),
    ("MODE scripted +Z", "501"),
    ("MODE Britney_Spears", "502"),
    ("MODE #lobby", "324"),
    ("MODE #lobby b", "368"),
    ("MODE #lobby +o scripted", "482"),
    ("WHO #lobby", "352"),
    ("WHO #lobby", "315"),
    ("TOPIC #lobby", "332"),
    ("TOPIC #lobby :mine now", "482"),
    ("NAMES #lobby", "353"),
    ("NAMES #lobby", "366"),
    ("JOIN #other", "403"),
    ("PRIVMSG #other :hi", "403"),
    ("PRIVMSG a,b,c,d,e :hi", "407"),
    ("NICK Britney_Spears", "433"),
    ("NICK bad!nick", "432"),
    ("NICK", "431"),
    ("NICK System", "432"),
    ("USER x 0 * :x", "462"),
    ("JOIN", "461"),
    ("LUSERS", "251"),
    ("MOTD", "376"),
    ("PING", "409"),
    ("PING :token", "pong"),
    ("FROBNICATE", "421"),
]


def test_registration_burst_and_the_numerics_table():
    with irc_server() as server:
        britney = NativeUser(server, "Britney Spears")
        client = Scripted(server.irc_address, "scripted")
        try:
            welcome = client.wait("welcome")
            assert "scripted!~scripted@irc.tcplab" in welcome.arguments[0]
            for code in ("002", "003", "004", "005", "251", "255", "375", "372", "376"):
                client.wait(name(code))
            client.wait("join", lambda e: e.target == "#lobby")
            names = client.wait("namreply")
            assert set(names.arguments[2].split()) == {"Britney_Spears", "scripted"}
            client.wait("endofnames")
            features = client.wait("featurelist").arguments
            for token in ("CASEMAPPING=ascii", "CHANTYPES=#", "NICKLEN=32", "NETWORK=tcplab",
                          "PREFIX=(ov)@+", "CHANMODES=b,k,l,nt"):
                assert token in features
            assert any(t.startswith("TARGMAX=") for t in features)
            client.drain()
            for command, code in NUMERICS:
                client.conn.send_raw(command)
                client.wait(name(code))
                client.drain(0.05)  # the server answers within the round trip
        finally:
            client.close()
            britney.close()


def test_messages_presence_and_quit_between_jaraco_and_native():
    with irc_server() as server:
        britney = NativeUser(server, "Britney Spears")
        client = Scripted(server.irc_address, "scripted")
        try:
            client.wait("endofnames")
            britney.wait_online("scripted")
            client.conn.privmsg("Britney_Spears", "hi there")
            got = britney.wait(lambda e: isinstance(e, PrivateMessage))
            assert (got.sender, got.text) == ("scripted", "hi there")
            britney.client.send("scripted", "hello back")
            msg = client.wait("privmsg")
            assert msg.source == "Britney_Spears!native@native.tcplab"
            assert msg.arguments == ["hello back"]
            client.conn.privmsg("#lobby", "to everyone")
            got = britney.wait(lambda e: isinstance(e, BroadcastMessage))
            assert (got.sender, got.text) == ("scripted", "to everyone")
            britney.client.broadcast("lobby reply")
            msg = client.wait("pubmsg")
            assert (msg.target, msg.arguments) == ("#lobby", ["lobby reply"])
            client.conn.action("Britney_Spears", "waves")
            got = britney.wait(lambda e: isinstance(e, PrivateMessage) and e.text.startswith("/me"))
            assert got.text == "/me waves"
            late = NativeUser(server, "Late Comer")
            joined = client.wait("join", lambda e: e.source.nick == "Late_Comer")
            assert joined.target == "#lobby"
            late.close()
            quit_ = client.wait("quit", lambda e: e.source.nick == "Late_Comer")
            assert quit_.arguments
            client.conn.quit("done here")
            client.wait("error")
            britney.wait_online("scripted", present=False)
        finally:
            client.close()
            britney.close()


def test_taken_nick_at_registration_and_password_as_pass():
    with irc_server(limits=Limits(password="s3cret")) as server:
        client = Scripted(server.irc_address, "first", password="s3cret")
        try:
            client.wait("welcome")
            second = Scripted(server.irc_address, "FIRST", password="s3cret")
            second.wait("nicknameinuse")
            second.conn.nick("second")
            second.wait("welcome")
            second.close()
            wrong = Scripted(server.irc_address, "third", password="nope")
            wrong.wait("passwdmismatch")
            wrong.wait("error")
            none = Scripted(server.irc_address, "fourth")
            none.wait("passwdmismatch")
            assert not [e for e in wrong.events + none.events if e.type == "welcome"]
        finally:
            client.close()


def test_server_pings_a_silent_irc_client_which_answers_and_stays():
    with irc_server(limits=Limits(idle_timeout=2.0)) as server:
        client = Scripted(server.irc_address, "quiet")
        try:
            client.wait("welcome")
            client.wait("ping", timeout=5)  # jaraco answers PING with PONG on its own
            client.drain(2.5)
            assert client.conn.is_connected()
        finally:
            client.close()
