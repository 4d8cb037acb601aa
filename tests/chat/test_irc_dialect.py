"""The IRC dialect over the chat core, sans-IO: registration, the command set, the
mapping onto native users, and the core's rules (flood, limits, nicknames) applied to IRC."""

from __future__ import annotations

import pytest

from tcplab.chat.irc import IrcDialect, parse
from tcplab.chat.protocol import NATIVE, ChatCore, Close, Limits


class Net:
    """A core with native and IRC connections; collects what each connection receives."""

    def __init__(self, **limits) -> None:
        limits.setdefault("rate", 0)
        self.core = ChatCore(Limits(**limits))
        self.irc = IrcDialect("today")
        self.inbox: dict[int, list[bytes]] = {}
        self.closed: dict[int, str] = {}
        self.next = 1
        self.now = 0.0

    def connect(self, dialect=None) -> int:
        conn = self.next
        self.next += 1
        self.inbox[conn] = []
        self._apply(self.core.connect(conn, self.now, dialect=dialect or NATIVE))
        return conn

    def _apply(self, outputs) -> None:
        for conn, item in outputs:
            if isinstance(item, Close):
                self.closed[conn] = item.reason
            else:
                self.inbox[conn].append(item)

    def send(self, conn: int, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._apply(self.core.receive(conn, data, self.now))

    def disconnect(self, conn: int, reason: str = "closed by client") -> None:
        self._apply(self.core.disconnect(conn, reason))

    def lines(self, conn: int) -> list[str]:
        """Everything ``conn`` received since the last call, split into lines."""
        data = b"".join(self.inbox[conn])
        self.inbox[conn] = []
        return [ln.decode() for ln in data.replace(b"\r\n", b"\n").split(b"\n") if ln]

    def irc_user(self, nick: str, *, cap: bool = True) -> int:
        conn = self.connect(self.irc)
        if cap:
            self.send(conn, "CAP LS 302\r\n")
        self.send(conn, f"NICK {nick}\r\nUSER {nick.lower()} 0 * :{nick} Real\r\n")
        if cap:
            self.send(conn, "CAP END\r\n")
        return conn

    def native_user(self, nick: str) -> int:
        conn = self.connect()
        self.send(conn, nick + "\n")
        return conn


def numerics(lines: list[str]) -> list[str]:
    return [parse(ln).verb for ln in lines]


def test_registration_burst_in_order_with_cap_negotiation():
    net = Net()
    conn = net.connect(net.irc)
    net.send(conn, "CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n")
    assert numerics(net.lines(conn)) == ["CAP"]  # waits for CAP END
    net.send(conn, "CAP REQ :multi-prefix sasl\r\n")
    assert net.lines(conn) == [":tcplab CAP * NAK :multi-prefix sasl"]
    net.send(conn, "CAP END\r\n")
    got = numerics(net.lines(conn))
    assert got[:5] == ["001", "002", "003", "004", "005"]
    for expected in ["251", "255", "375", "372", "376", "JOIN", "332", "353", "366"]:
        assert expected in got
    assert got.index("376") < got.index("JOIN") < got.index("353") < got.index("366")


def test_isupport_tokens():
    net = Net()
    conn = net.irc_user("alice")
    line = next(ln for ln in net.lines(conn) if parse(ln).verb == "005")
    tokens = parse(line).params[1:-1]
    keys = {t.split("=")[0] for t in tokens}
    assert {"CASEMAPPING", "CHANTYPES", "NICKLEN", "NETWORK", "PREFIX", "CHANMODES",
            "TARGMAX"} <= keys
    assert "CHANTYPES=#" in tokens and "NETWORK=tcplab" in tokens and "NICKLEN=32" in tokens


def test_without_cap_registration_completes_on_nick_and_user():
    net = Net()
    conn = net.irc_user("bob", cap=False)
    assert numerics(net.lines(conn))[0] == "001"


@pytest.mark.parametrize("command", ["PRIVMSG x :hi", "JOIN #lobby", "WHOIS x", "MODE x",
                                     "LIST", "NAMES", "FROB"])
def test_anything_else_before_registration_gets_451(command):
    net = Net()
    conn = net.connect(net.irc)
    net.send(conn, command + "\r\n")
    assert numerics(net.lines(conn)) == ["451"]


def test_ping_before_and_after_registration():
    net = Net()
    conn = net.connect(net.irc)
    net.send(conn, "PING :abc\r\n")
    assert net.lines(conn) == [":tcplab PONG tcplab abc"]
    net.send(conn, "PING\r\n")
    assert numerics(net.lines(conn)) == ["409"]


def test_nick_taken_by_native_user_gets_433_and_client_may_retry():
    net = Net()
    native = net.native_user("Britney Spears")
    conn = net.connect(net.irc)
    net.send(conn, "NICK Britney_Spears\r\nUSER b 0 * :B\r\n")
    (line,) = net.lines(conn)
    msg = parse(line)
    assert msg.verb == "433" and msg.params[:2] == ["*", "Britney_Spears"]
    assert "Britney Spears" in msg.params[2]
    net.send(conn, "NICK britney\r\n")
    assert numerics(net.lines(conn))[0] == "001"
    assert net.core.find("britney") is not None and net.core.find("Britney_Spears").conn == native


def test_native_nick_taken_by_irc_user_in_its_mapped_form():
    net = Net()
    net.irc_user("Paris_Hilton")
    conn = net.native_user("paris hilton")
    assert net.lines(conn) == [
        "System: Nickname 'paris hilton' is already taken (by 'Paris_Hilton'). "
        "Choose another nickname."]


@pytest.mark.parametrize(("nick", "numeric"), [
    ("a!b", "432"), ("#chan", "432"), ("x" * 33, "432"), ("System", "432"), ("admin", "432"),
])
def test_bad_nicknames(nick, numeric):
    net = Net()
    conn = net.connect(net.irc)
    net.send(conn, f"NICK {nick}\r\nUSER u 0 * :u\r\n")
    assert numerics(net.lines(conn)) == [numeric]
    net.send(conn, "NICK\r\n")
    assert numerics(net.lines(conn)) == ["431"]


ECHOED = ["WHOIS :a b", "WHOIS :", "WHOIS x :", "WHOIS :x", "NICK :a b", "NICK :", "NICK ::x",
          "NAMES :#x y", "NAMES :", "JOIN :a b", "TOPIC :a b", "WHO :", "WHOWAS :a b",
          "CAP :a b", "MODE :#x y :z", "PRIVMSG :a b :hi", "NOTICE : :hi", "USERHOST :a b",
          "ISON :", "KICK :a b c"]


@pytest.mark.parametrize("command", ECHOED)
@pytest.mark.parametrize("registered", [True, False], ids=["registered", "unregistered"])
def test_a_reply_echoing_an_unsendable_parameter_keeps_the_session(command, registered):
    """Replies name what the client sent; a name with a space, an empty one or one that
    starts with ':' cannot be a middle parameter. The reply used to raise on it, and the
    server dropped the client with 'internal error' and a traceback in its log."""
    net = Net()
    conn = net.irc_user("Wendy") if registered else net.connect(net.irc)
    net.lines(conn)
    net.send(conn, command + "\r\n")
    replies = net.lines(conn)
    assert conn not in net.closed
    assert all(len(line.encode()) <= 510 and parse(line) for line in replies)
    net.send(conn, "PING :still-here\r\n")
    assert net.lines(conn) == [":tcplab PONG tcplab still-here"]


def test_private_messages_both_ways_with_the_space_mapping():
    net = Net()
    native = net.native_user("Britney Spears")
    irc = net.irc_user("alice")
    net.lines(native)
    net.lines(irc)
    net.send(irc, "PRIVMSG Britney_Spears :hello there\r\n")
    assert net.lines(native) == ["alice: hello there"]
    net.send(native, "alice: hi back\n")
    assert net.lines(irc) == [":Britney_Spears!native@native.tcplab PRIVMSG alice :hi back"]
    net.send(irc, "PRIVMSG britney_spears :case does not matter\r\n")
    assert net.lines(native) == ["alice: case does not matter"]


def test_broadcast_between_dialects_and_no_echo():
    net = Net()
    native = net.native_user("Carol")
    a = net.irc_user("alice")
    b = net.irc_user("bob")
    for c in (native, a, b):
        net.lines(c)
    net.send(a, "PRIVMSG #lobby :hi all\r\n")
    assert net.lines(native) == ["* alice: hi all"]
    assert net.lines(b) == [":alice!~alice@irc.tcplab PRIVMSG #lobby :hi all"]
    assert net.lines(a) == []
    net.send(native, "*: from the terminal\n")
    assert net.lines(a) == [":Carol!native@native.tcplab PRIVMSG #lobby :from the terminal"]
    assert net.lines(b) == [":Carol!native@native.tcplab PRIVMSG #lobby :from the terminal"]


def test_errors_map_to_numerics():
    net = Net()
    conn = net.irc_user("alice")
    net.lines(conn)
    net.send(conn, "PRIVMSG Ghost :are you there\r\n")
    assert parse(net.lines(conn)[0]).params[:2] == ["alice", "Ghost"]
    cases = {"PRIVMSG": "411", "PRIVMSG alice": "412", "PRIVMSG alice :": "412",
             "PRIVMSG Ghost :x": "401", "FROB": "421", "JOIN": "461", "USER a b c d": "462",
             "JOIN #other": "403", "PRIVMSG #other :x": "403", "MODE #lobby b": "368",
             "MODE #lobby": "324", "MODE alice": "221", "MODE Ghost": "502",
             "MODE #lobby +o alice": "482", "TOPIC #lobby": "332",
             "WHOIS Ghost": "401", "PRIVMSG a,b,c,d,e :x": "407", "PASS x": "462"}
    for command, numeric in cases.items():
        net.send(conn, command + "\r\n")
        got = numerics(net.lines(conn))
        assert got[:1] == [numeric], (command, got)
    # NOTICE never gets automatic replies
    net.send(conn, "NOTICE Ghost :x\r\nNOTICE\r\nNOTICE alice :\r\n")
    assert net.lines(conn) == []


def test_whois_who_ison_userhost_names():
    net = Net()
    net.native_user("Britney Spears")
    conn = net.irc_user("alice")
    net.lines(conn)
    net.send(conn, "WHOIS Britney_Spears\r\n")
    got = net.lines(conn)
    assert numerics(got) == ["311", "319", "312", "318"]
    assert parse(got[0]).params[1:4] == ["Britney_Spears", "native", "native.tcplab"]
    net.send(conn, "WHO #lobby\r\n")
    got = net.lines(conn)
    assert numerics(got) == ["352", "352", "315"]
    assert [parse(ln).params[5] for ln in got[:2]] == ["Britney_Spears", "alice"]
    net.send(conn, "ISON Britney_Spears ghost ALICE\r\n")
    assert net.lines(conn) == [":tcplab 303 alice :Britney_Spears alice"]
    net.send(conn, "USERHOST alice Britney_Spears\r\n")
    assert net.lines(conn) == [
        ":tcplab 302 alice :alice=+~alice@irc.tcplab Britney_Spears=+native@native.tcplab"]
    net.send(conn, "NAMES #lobby\r\n")
    got = net.lines(conn)
    assert got[0] == ":tcplab 353 alice = #lobby :Britney_Spears alice"
    assert numerics(got) == ["353", "366"]


def test_names_is_split_into_lines_of_at_most_512_bytes():
    net = Net()
    for i in range(300):
        net.native_user(f"user number {i:03d}")
    conn = net.irc_user("alice")
    lines = [ln for ln in net.lines(conn) if parse(ln).verb == "353"]
    assert len(lines) > 1 and all(len(ln) + 2 <= 512 for ln in lines)
    names = [n for ln in lines for n in parse(ln).params[-1].split()]
    assert len(names) == 301 and "user_number_299" in names


def test_joins_and_leaves_of_anyone_appear_as_join_and_quit():
    net = Net()
    conn = net.irc_user("alice")
    net.lines(conn)
    native = net.native_user("Britney Spears")
    assert net.lines(conn) == [":Britney_Spears!native@native.tcplab JOIN #lobby"]
    other = net.irc_user("bob")
    assert net.lines(conn) == [":bob!~bob@irc.tcplab JOIN #lobby"]
    net.lines(other)
    net.disconnect(native, "connection reset")
    assert net.lines(conn) == [
        ":Britney_Spears!native@native.tcplab QUIT :Connection reset by peer"]
    net.send(other, "QUIT :see you\r\n")
    assert net.lines(other)[-1] == "ERROR :Closing link: Quit: see you"
    assert net.closed[other] == "quit"
    net.disconnect(other, "quit")
    assert net.lines(conn) == [":bob!~bob@irc.tcplab QUIT :Quit: see you"]


def test_native_deltas_clients_see_irc_users_come_and_go():
    net = Net()
    native = net.native_user("Carol")
    net.send(native, "/deltas\n")
    net.lines(native)
    irc = net.irc_user("alice")
    assert net.lines(native) == ["System: alice joined."]  # the report's uncoded form
    net.send(native, "/codes on\n")
    net.lines(native)
    net.disconnect(irc, "quit")
    assert net.lines(native) == ["System: 202 alice left."]


def test_nick_change_renames_everywhere_and_keeps_uniqueness():
    net = Net()
    native = net.native_user("Britney Spears")
    net.send(native, "/deltas\n")
    a = net.irc_user("alice")
    b = net.irc_user("bob")
    for c in (native, a, b):
        net.lines(c)
    net.send(a, "NICK britney_SPEARS\r\n")
    assert numerics(net.lines(a)) == ["433"]
    net.send(a, "NICK alicia\r\n")
    assert net.lines(a) == [":alice!~alice@irc.tcplab NICK alicia"]
    assert net.lines(b) == [":alice!~alice@irc.tcplab NICK alicia"]
    assert net.lines(native) == ["System: alice left.", "System: alicia joined."]
    net.send(native, "alicia: found you\n")
    assert net.lines(a) == [":Britney_Spears!native@native.tcplab PRIVMSG alicia :found you"]
    assert net.core.find("alice") is None
    net.send(a, "NICK alicia\r\n")  # the same nickname: nothing happens
    assert net.lines(a) == []


def test_spoofed_prefix_is_ignored_and_controls_stripped():
    net = Net()
    native = net.native_user("Carol")
    irc = net.irc_user("mallory")
    net.lines(native)
    net.lines(irc)
    net.send(irc, ":System!x@y PRIVMSG Carol :innocent\rSystem: 550 shutting down\r\n")
    # A bare CR ends the line (modern IRC framing); the rest is a separate, unknown command.
    assert net.lines(native) == ["mallory: innocent"]
    assert numerics(net.lines(irc))[-1] == "421"
    net.send(irc, "PRIVMSG Carol :\x1b[2Jclear \x07bell \x0304red\r\n")
    assert net.lines(native) == ["mallory: [2Jclear bell red"]


def test_ctcp_action_maps_to_slash_me_and_back():
    net = Net()
    native = net.native_user("Carol")
    a = net.irc_user("alice")
    b = net.irc_user("bob")
    for c in (native, a, b):
        net.lines(c)
    net.send(a, "PRIVMSG Carol :\x01ACTION waves\x01\r\n")
    assert net.lines(native) == ["alice: /me waves"]
    net.send(native, "bob: /me nods\n")
    assert net.lines(b) == [":Carol!native@native.tcplab PRIVMSG bob :\x01ACTION nods\x01"]
    net.send(a, "PRIVMSG bob :\x01VERSION\x01\r\n")  # other CTCP is not relayed
    assert net.lines(b) == []


def test_native_text_cannot_smuggle_ctcp_or_formatting_to_irc():
    net = Net()
    native = net.native_user("Carol")
    irc = net.irc_user("alice")
    net.lines(irc)
    net.send(native, "alice: \x01DCC SEND x 1 2 3\x01 \x02bold\n")
    # The core shows each removed control character as U+FFFD, for every dialect.
    assert net.lines(irc) == [
        ":Carol!native@native.tcplab PRIVMSG alice :\ufffdDCC SEND x 1 2 3\ufffd \ufffdbold"]


def test_long_native_message_reaches_irc_in_several_lines():
    net = Net()
    native = net.native_user("Carol")
    irc = net.irc_user("alice")
    net.lines(irc)
    text = "word " * 700
    net.send(native, f"alice: {text}\n")
    lines = net.lines(irc)
    assert len(lines) >= 7 and all(len(ln.encode()) + 2 <= 512 for ln in lines)
    assert "".join(parse(ln).params[1] for ln in lines) == text.strip()


def test_overlong_irc_lines_get_417_and_tags_are_tolerated():
    net = Net()
    native = net.native_user("Carol")
    irc = net.irc_user("alice")
    net.lines(irc)
    net.send(irc, "PRIVMSG Carol :" + "x" * 600 + "\r\n")
    assert numerics(net.lines(irc)) == ["417"]
    net.send(irc, "@+draft/reply=abc;time=2020 PRIVMSG Carol :tagged\r\n")
    assert net.lines(native)[-1] == "alice: tagged"
    assert net.lines(irc) == []  # nothing, and no tags ever come back


def test_flood_limit_applies_to_irc_users():
    net = Net(rate=1.0, burst=3.0)
    native = net.native_user("Carol")
    irc = net.irc_user("alice", cap=False)  # registration used two lines of the burst
    net.now += 10.0
    net.lines(irc)
    net.lines(native)
    net.send(irc, "".join(f"PRIVMSG Carol :m{i}\r\n" for i in range(10)))
    assert len(net.lines(native)) == 3
    notices = net.lines(irc)
    assert len(notices) == 1 and "Flood limit" in notices[0] and parse(notices[0]).verb == "NOTICE"
    net.now += 5.0
    net.send(irc, "PRIVMSG Carol :later\r\n")
    assert "7 message(s) were dropped" in net.lines(irc)[0]
    assert net.lines(native) == ["alice: later"]


def test_password_maps_to_pass():
    net = Net(password="s3cret")
    ok = net.connect(net.irc)
    net.send(ok, "PASS s3cret\r\nNICK alice\r\nUSER a 0 * :A\r\n")
    assert numerics(net.lines(ok))[:2] == ["NOTICE", "001"]  # "Password accepted.", welcome
    bad = net.connect(net.irc)
    net.send(bad, "PASS nope\r\nNICK bob\r\nUSER b 0 * :B\r\n")
    assert numerics(net.lines(bad)) == ["464", "ERROR"]
    assert net.closed[bad] == "wrong password"
    missing = net.connect(net.irc)
    net.send(missing, "NICK carol\r\nUSER c 0 * :C\r\n")
    assert numerics(net.lines(missing)) == ["464", "ERROR"]
    assert net.core.find("bob") is None and net.core.find("carol") is None


def test_idle_irc_client_is_pinged_then_closed():
    net = Net(idle_timeout=100)
    conn = net.irc_user("alice")
    net.lines(conn)
    net.now = 60.0
    net._apply(net.core.idle(net.now))
    assert net.lines(conn) == ["PING tcplab"]
    net.now = 70.0
    net._apply(net.core.idle(net.now))
    assert net.lines(conn) == []  # one probe, not one a second
    net.send(conn, "PONG tcplab\r\n")
    net.now = 130.0
    net._apply(net.core.idle(net.now))
    assert net.lines(conn) == ["PING tcplab"]
    net.now = 271.0
    net._apply(net.core.idle(net.now))
    assert net.lines(conn)[0].startswith("ERROR :Closing link: Idle")
    assert conn in net.closed


def test_shutdown_tells_irc_users_with_error():
    net = Net()
    conn = net.irc_user("alice")
    net.lines(conn)
    net._apply(net.core.close_all())
    assert net.lines(conn) == ["ERROR :Closing link: Server is shutting down."]


def test_undelivered_messages_to_a_dropped_irc_user_are_reported_to_native_senders():
    net = Net()
    native = net.native_user("Britney Spears")
    irc = net.irc_user("alice")
    net.lines(native)
    pending = (b":Britney_Spears!native@native.tcplab PRIVMSG alice :one\r\n"
               b":Britney_Spears!native@native.tcplab PRIVMSG #lobby :two\r\n"
               b":tcplab NOTICE alice :not a message\r\n")
    net._apply(net.core.undelivered(irc, pending))
    assert net.lines(native) == [
        "System: 2 message(s) to 'alice' not delivered: alice was disconnected."]


def test_invalid_utf8_from_irc_is_refused():
    net = Net()
    native = net.native_user("Carol")
    irc = net.irc_user("alice")
    net.lines(irc)
    net.lines(native)
    net.send(irc, b"PRIVMSG Carol :caf\xe9\r\n")
    assert parse(net.lines(irc)[0]).verb == "NOTICE"
    assert net.lines(native) == []


_TOKENS = ["NICK", "USER", "PASS", "CAP", "LS", "REQ", "END", "PRIVMSG", "NOTICE", "JOIN",
           "PART", "MODE", "WHO", "WHOIS", "ISON", "USERHOST", "TOPIC", "NAMES", "PING", "PONG",
           "QUIT", "AWAY", "LIST", "LUSERS", "MOTD", "WHOWAS", "#lobby", "#x", "Carol", "alice",
           "Britney_Spears", "*", "+i", "-w", "b", "+o", ":", ":text", "\x01ACTION", "\x01",
           "@a=b", ":src", ",", "0", "", " ", "é", "\x00", "\r", "\x03", "x" * 40]


@pytest.mark.parametrize("seed", range(3))
def test_hostile_irc_input_never_breaks_the_core(seed):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    line = st.lists(st.sampled_from(_TOKENS), max_size=8).map(" ".join)
    chunk = st.lists(line, min_size=1, max_size=6).map(lambda ls: "\r\n".join(ls).encode())
    raw = st.binary(max_size=300)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.one_of(chunk, raw), min_size=1, max_size=6))
    def run(chunks):
        net = Net(rate=0 if seed else 5.0, password="pw" if seed == 2 else None)
        native = net.native_user("Carol") if seed != 2 else None
        conn = net.connect(net.irc)
        if seed == 2:
            net.send(conn, "PASS pw\r\n")
        net.send(conn, "NICK alice\r\nUSER a 0 * :A\r\n")
        for data in chunks:
            if conn in net.closed:
                break
            net.send(conn, data + b"\r\n")
        # Every line the server sent is a well-formed IRC line within the limit.
        for item in net.inbox[conn]:
            for ln in item.split(b"\r\n")[:-1]:
                assert len(ln) + 2 <= 512
                parse(ln.decode())
        if native is not None:
            for item in net.inbox[native]:
                assert b"\r" not in item and item.count(b"\n") >= 1
        # The roster and the sessions agree.
        assert all(net.core.sessions.get(s.conn) is s for s in net.core.users.values())

    run()


def test_roster_replies_are_bounded_for_huge_rosters():
    from tcplab.chat.irc import MAX_NAMES_BYTES, MAX_WHO

    net = Net()
    for i in range(3000):
        net.native_user(f"a rather long nickname {i:06d}")  # 29 characters each
    conn = net.irc_user("alice")
    welcome = b"".join(net.inbox[conn])
    net.lines(conn)
    assert len(welcome) < MAX_NAMES_BYTES + 8192
    names = [ln for ln in welcome.decode().split("\r\n") if " 353 " in ln]
    shown = sum(len(parse(ln).params[-1].split()) for ln in names)
    assert 1000 < shown < 3001 and "alice" in names[-1]
    assert "more users are in #lobby" in welcome.decode()
    net.send(conn, "WHO #lobby\r\n")
    got = net.lines(conn)
    assert numerics(got).count("352") == MAX_WHO and numerics(got)[-2:] == ["315", "NOTICE"]


def test_irc_pass_goes_through_the_per_address_password_throttle():
    from tcplab.chat.protocol import PASS_FREE_FAILURES

    net = Net(password="s3cret")
    for i in range(PASS_FREE_FAILURES):  # wrong guesses from one address, answered at once
        conn = net.connect(net.irc)
        net.send(conn, f"PASS guess{i}\r\nNICK g{i}\r\nUSER g 0 * :g\r\n")
        assert numerics(net.lines(conn)) == ["464", "ERROR"]
        net.disconnect(conn, "wrong password")
    # Now even the right password waits its turn, and so does what follows it.
    conn = net.connect(net.irc)
    net.send(conn, "PASS s3cret\r\nNICK alice\r\nUSER a 0 * :A\r\n")
    net.send(conn, "PRIVMSG #lobby :early\r\n")
    assert net.lines(conn) == []
    net._apply(net.core.timers(net.now + 0.5))
    assert net.lines(conn) == []
    net._apply(net.core.timers(net.now + 120))
    got = numerics(net.lines(conn))
    assert "001" in got and "366" in got
    assert net.core.find("alice") is not None
