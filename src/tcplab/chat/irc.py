"""IRC as a dialect of the chat: real IRC clients (irssi, WeeChat, HexChat, bots) join the
same chat as ``tcplab client`` users.

Two layers, both sans-IO:

* the **message codec** — :func:`parse` and :func:`format_message` for the IRC message
  grammar of RFC 1459/2812 as clients use it today (modern.ircdocs.horse), IRCv3 message
  tags included, held to the ``irc-parser-tests`` corpus by the test suite;
* the **dialect** — :class:`IrcDialect`, the codec between IRC lines and the chat core's
  events (see :mod:`tcplab.chat.dialect`): registration (``CAP``/``PASS``/``NICK``/
  ``USER``), the commands clients send on their own (``MODE``, ``WHO``, ``PING`` …),
  ``PRIVMSG``/``NOTICE`` routed by the core, and everything the core has for an IRC
  user rendered as IRC lines with numerics.

The mapping onto the chat (full table in ``docs/irc.md``): every user is in one channel,
``#lobby``; ``PRIVMSG #lobby`` is the native broadcast ``*: text``; ``PRIVMSG Nick`` is
``Nick: text``; joins and leaves of anyone appear as ``JOIN``/``QUIT`` in ``#lobby``;
native nicknames are shown in their IRC form (:mod:`tcplab.chat.nickmap`). The server
stamps every source ``nick!user@host`` itself; nothing a client sends is relayed as a
prefix. Tags are tolerated on input and never emitted (no capability is ever granted).

This module must never touch a socket, a clock or a logger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tcplab.chat.dialect import Dialect
from tcplab.chat.nickmap import irc_form, irc_safe
from tcplab.chat.protocol import MAX_NICK_CHARS, PASS_HELD_LINES, Code, LineFramer, shows_nothing

if TYPE_CHECKING:
    from tcplab.chat.protocol import ChatCore, Output, Session

# --- limits -------------------------------------------------------------------------------

#: RFC 1459 §2.3: a message is at most 512 bytes including the CR LF.
MAX_MESSAGE = 512
#: IRCv3 message-tags: the tag section of an incoming line may add up to 8191 bytes
#: (including the ``@`` and the space) on top of the 512 above.
MAX_TAGS = 8191
#: Framing limit for incoming lines: the tag allowance plus the message itself.
MAX_INCOMING = MAX_TAGS + MAX_MESSAGE
#: Targets accepted in one PRIVMSG/NOTICE (advertised as TARGMAX).
MAX_TARGETS = 4
#: ISON and USERHOST answer at most this many names (USERHOST: RFC 2812 says five).
MAX_ISON = 32
MAX_USERHOST = 5
#: Replies about the whole roster are bounded, so they can never by themselves push a client
#: past the server's per-client output limit (256 KiB by default; 10,000 names of 32
#: characters are about 330 KB): NAMES lists at most this many bytes of names, WHO #lobby
#: at most this many users, each followed by a NOTICE saying how many were left out.
MAX_NAMES_BYTES = 64 * 1024
MAX_WHO = 500

# --- names --------------------------------------------------------------------------------

SERVER_NAME = "tcplab"
NETWORK = "tcplab"
#: The one channel: everybody, native or IRC, is in it.
LOBBY = "#lobby"
LOBBY_TOPIC = ("The tcplab chat: everyone online is here. /msg Nick text is private; "
               "text here reaches everyone.")
#: Hosts shown in ``nick!user@host``: a fixed cloak per dialect, never the peer's address.
IRC_HOST = "irc.tcplab"
NATIVE_HOST = "native.tcplab"
NATIVE_USER = "native"
VERSION = "tcplab-0.1"
#: Shown in ``/me`` form to native users and rendered back as CTCP ACTION for IRC users.
ME_PREFIX = b"/me "
MOTD = (
    "Welcome to the tcplab chat.",
    "Everyone online is in #lobby: users of tcplab client and of IRC alike.",
    "Nicknames with spaces appear here with _ (Britney Spears is Britney_Spears).",
    "Only #lobby exists; /msg Nick text sends a private message.",
)


class Numeric:
    """The IRC numerics this server sends (names from RFC 2812 and modern.ircdocs.horse)."""

    RPL_WELCOME = "001"
    RPL_YOURHOST = "002"
    RPL_CREATED = "003"
    RPL_MYINFO = "004"
    RPL_ISUPPORT = "005"
    RPL_UMODEIS = "221"
    RPL_LUSERCLIENT = "251"
    RPL_LUSEROP = "252"
    RPL_LUSERCHANNELS = "254"
    RPL_LUSERME = "255"
    RPL_LOCALUSERS = "265"
    RPL_GLOBALUSERS = "266"
    RPL_USERHOST = "302"
    RPL_ISON = "303"
    RPL_UNAWAY = "305"
    RPL_NOWAWAY = "306"
    RPL_WHOISUSER = "311"
    RPL_WHOISSERVER = "312"
    RPL_ENDOFWHO = "315"
    RPL_ENDOFWHOIS = "318"
    RPL_WHOISCHANNELS = "319"
    RPL_LIST = "322"
    RPL_LISTEND = "323"
    RPL_CHANNELMODEIS = "324"
    RPL_NOTOPIC = "331"
    RPL_TOPIC = "332"
    RPL_WHOREPLY = "352"
    RPL_NAMREPLY = "353"
    RPL_ENDOFNAMES = "366"
    RPL_ENDOFBANLIST = "368"
    RPL_ENDOFWHOWAS = "369"
    RPL_MOTD = "372"
    RPL_MOTDSTART = "375"
    RPL_ENDOFMOTD = "376"
    ERR_NOSUCHNICK = "401"
    ERR_NOSUCHCHANNEL = "403"
    ERR_CANNOTSENDTOCHAN = "404"
    ERR_TOOMANYTARGETS = "407"
    ERR_WASNOSUCHNICK = "406"
    ERR_NOORIGIN = "409"
    ERR_INVALIDCAPCMD = "410"
    ERR_NORECIPIENT = "411"
    ERR_NOTEXTTOSEND = "412"
    ERR_INPUTTOOLONG = "417"
    ERR_UNKNOWNCOMMAND = "421"
    ERR_NONICKNAMEGIVEN = "431"
    ERR_ERRONEUSNICKNAME = "432"
    ERR_NICKNAMEINUSE = "433"
    ERR_NOTONCHANNEL = "442"
    ERR_NOTREGISTERED = "451"
    ERR_NEEDMOREPARAMS = "461"
    ERR_ALREADYREGISTERED = "462"
    ERR_PASSWDMISMATCH = "464"
    ERR_CHANOPRIVSNEEDED = "482"
    ERR_UMODEUNKNOWNFLAG = "501"
    ERR_USERSDONTMATCH = "502"


# --- the message codec --------------------------------------------------------------------


class IrcParseError(ValueError):
    """A line that is not an IRC message (no command)."""


@dataclass(slots=True)
class Message:
    """One IRC message: ``@tags :source VERB params…``; absent parts are None/empty."""

    verb: str
    params: list[str] = field(default_factory=list)
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


_TAG_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPE = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


def _unescape_tag(value: str) -> str:
    # IRCv3 message-tags "Escaping values": an unknown escape drops the backslash, a lone
    # trailing backslash is dropped.
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < n:
                nxt = value[i]
                out.append(_TAG_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _escape_tag(value: str) -> str:
    return "".join(_TAG_ESCAPE.get(ch, ch) for ch in value)


def parse(line: str) -> Message:
    """Split one line (without CR LF) into its parts.

    Parameters are separated by one *or more* spaces (RFC 1459; RFC 2812's single space is
    not what servers and clients do), only ASCII space separates (a tab is part of a
    parameter), a parameter starting with ``:`` takes the rest of the line, and a later
    duplicate tag wins.
    """
    pos = 0
    n = len(line)
    tags: dict[str, str] = {}
    if line.startswith("@"):
        end = line.find(" ")
        if end < 0:
            raise IrcParseError("a line with tags but no command")
        for item in line[1:end].split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            if key:
                tags[key] = _unescape_tag(value)
        pos = end
    while pos < n and line[pos] == " ":
        pos += 1
    source = None
    if pos < n and line[pos] == ":":
        end = line.find(" ", pos)
        if end < 0:
            raise IrcParseError("a line with a source but no command")
        source = line[pos + 1:end]
        pos = end
        while pos < n and line[pos] == " ":
            pos += 1
    end = line.find(" ", pos)
    if end < 0:
        end = n
    verb = line[pos:end]
    if not verb:
        raise IrcParseError("a line without a command")
    params: list[str] = []
    pos = end
    while True:
        while pos < n and line[pos] == " ":
            pos += 1
        if pos >= n:
            break
        if line[pos] == ":":
            params.append(line[pos + 1:])
            break
        end = line.find(" ", pos)
        if end < 0:
            end = n
        params.append(line[pos:end])
        pos = end
    return Message(verb, params, source, tags)


def format_message(msg: Message) -> str:
    """The line for ``msg`` (without CR LF); the last parameter gets a ``:`` only when it
    needs one (empty, contains a space, or starts with ``:``)."""
    parts: list[str] = []
    if msg.tags:
        parts.append("@" + ";".join(k + ("=" + _escape_tag(v) if v else "")
                                    for k, v in msg.tags.items()))
    if msg.source:
        parts.append(":" + msg.source)
    parts.append(msg.verb)
    params = msg.params
    for i, p in enumerate(params):
        if i == len(params) - 1 and (not p or " " in p or p[0] == ":"):
            parts.append(":" + p)
        elif not p or " " in p or p[0] == ":":
            raise ValueError(f"middle parameter {p!r} cannot be sent")
        else:
            parts.append(p)
    return " ".join(parts)


def _cut_utf8(data: bytes, limit: int) -> int:
    """The largest cut ≤ ``limit`` that does not split a UTF-8 sequence."""
    if limit >= len(data):
        return len(data)
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut


def server_line(verb: str, *params: str, source: str = SERVER_NAME) -> bytes:
    """One server-to-client line with CR LF, never longer than 512 bytes: an over-long last
    parameter is shortened at a character boundary.

    A middle parameter that cannot be one (empty, with a space, starting with ``:``) is
    sent as ``*``, IRC's word for "no name": replies echo what a client sent (the target
    of ``WHOIS :a b``, the nickname of ``NICK :``), and an echo must not fail the reply.
    """
    if len(params) > 1:
        params = tuple(p if p and " " not in p and p[0] != ":" else "*"
                       for p in params[:-1]) + params[-1:]
    data = format_message(Message(verb, list(params), source)).encode()
    if len(data) > MAX_MESSAGE - 2:
        data = data[:_cut_utf8(data, MAX_MESSAGE - 2)]
    return data + b"\r\n"


def text_lines(head: bytes, text: bytes) -> bytes:
    """``head`` + ``text`` as one or more lines within 512 bytes each: a long native
    message (the native limit is 4096 bytes) becomes several PRIVMSGs instead of losing
    its end. ``head`` ends with ``" :"``."""
    room = MAX_MESSAGE - 2 - len(head)
    if len(text) <= room:
        return head + text + b"\r\n"
    pieces: list[bytes] = []
    while text:
        cut = _cut_utf8(text, room)
        if cut < len(text):
            space = text.rfind(b" ", cut * 3 // 4, cut)  # break at a word when one is near
            if space > 0:
                cut = space + 1
        pieces.append(head + text[:cut] + b"\r\n")
        text = text[cut:]
    return b"".join(pieces)


# IRC formatting (bold, colour, italics, reverse, underline, strike, monospace, reset):
# meaningful to IRC clients only; removed before text enters the chat core so native users
# never see colour digits or control bytes. Colour: ^C, optionally fg[,bg] of 1-2 digits.
_FORMATTING = re.compile(rb"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
# Any other C0 control (TAB aside) and DEL: never relayed in either direction.
_CONTROL_BYTES = bytes(i for i in range(32) if i != 9) + b"\x7f"


def plain_text(text: bytes) -> bytes:
    """IRC message text without formatting codes or control bytes."""
    if len(text.translate(None, _CONTROL_BYTES)) == len(text):
        return text  # the common case: every formatting code is a control byte
    return _FORMATTING.sub(b"", text).translate(None, _CONTROL_BYTES)


# --- the dialect --------------------------------------------------------------------------


class IrcState:
    """Per-connection IRC state: registration progress and what ``USER`` said."""

    __slots__ = ("framer", "nick", "user", "realname", "password", "cap_open", "quit_message",
                 "pinged", "modes", "away")

    def __init__(self, framer: object) -> None:
        self.framer = framer
        self.nick: str | None = None  # wanted nickname before registration
        self.user: str | None = None
        self.realname = ""
        self.password: str | None = None
        self.cap_open = False  # CAP LS/REQ seen, CAP END not yet: registration waits
        self.quit_message: str | None = None
        self.pinged = False
        self.modes = ""
        self.away = False


_USER_CHARS = re.compile(r"[^A-Za-z0-9._-]")
#: Commands allowed before registration (everything else gets 451).
_PRE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})
_QUIT_REASONS = {
    "closed by client": "Connection closed",
    "connection reset": "Connection reset by peer",
    "quit": "Quit",
}


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _upper(verb: str) -> str:
    return verb.upper() if not verb.isupper() else verb


class IrcDialect(Dialect):
    """IRC over the chat core. One instance serves every IRC connection of a server."""

    name = "irc"

    def __init__(self, created: str = "") -> None:
        #: RPL_CREATED text (the shell passes the start time: no clock in here).
        self.created = created or "at start-up"
        self._handlers = {
            "CAP": self._cap, "PASS": self._pass, "NICK": self._nick, "USER": self._user,
            "PING": self._ping, "PONG": self._pong, "QUIT": self._quit,
            "PRIVMSG": self._privmsg, "NOTICE": self._privmsg, "JOIN": self._join,
            "PART": self._part, "NAMES": self._names, "TOPIC": self._topic,
            "MODE": self._mode, "WHO": self._who, "WHOIS": self._whois, "WHOWAS": self._whowas,
            "ISON": self._ison, "USERHOST": self._userhost, "LUSERS": self._lusers,
            "MOTD": self._motd, "AWAY": self._away, "LIST": self._list,
        }

    # -- identities ----------------------------------------------------------------------

    @staticmethod
    def nick_of(sess: Session) -> str:
        """``sess``'s nickname as IRC shows it (``*`` before registration, as numerics want)."""
        return irc_form(sess.nick) if sess.nick else "*"

    def target(self, sess: Session) -> bytes:
        """``sess``'s IRC nickname as the target of a message to it (cached, UTF-8)."""
        cache = sess.cache
        if cache is None:
            cache = sess.cache = {}
        nick = cache.get("irc-target")
        if nick is None:
            nick = cache["irc-target"] = irc_form(sess.nick or "*").encode()
        return nick

    def source(self, sess: Session) -> bytes:
        """``nick!user@host`` for any user, IRC or native, stamped by the server."""
        cache = sess.cache
        if cache is None:
            cache = sess.cache = {}
        src = cache.get(self.name)
        if src is None:
            st = sess.state
            if isinstance(st, IrcState):
                src = f"{irc_form(sess.nick or '*')}!~{st.user or 'user'}@{IRC_HOST}".encode()
            else:
                src = f"{irc_form(sess.nick or '*')}!{NATIVE_USER}@{NATIVE_HOST}".encode()
            cache[self.name] = src
        return src

    def _user_host(self, sess: Session) -> tuple[str, str]:
        st = sess.state
        if isinstance(st, IrcState):
            return "~" + (st.user or "user"), IRC_HOST
        return NATIVE_USER, NATIVE_HOST

    def _realname(self, sess: Session) -> str:
        st = sess.state
        if isinstance(st, IrcState):
            return st.realname or st.user or ""
        return f"{sess.nick} (tcplab client)"

    def _num(self, sess: Session, numeric: str, *params: str) -> bytes:
        return server_line(numeric, self.nick_of(sess), *params)

    # -- wire → core ---------------------------------------------------------------------

    def connected(self, core: ChatCore, sess: Session, now: float) -> list[Output]:
        sess.deltas = True  # presence as JOIN/QUIT events, never ONLINE_USERS lists
        sess.state = IrcState(LineFramer(MAX_INCOMING))
        return []

    def receive(self, core: ChatCore, sess: Session, data: bytes, now: float) -> list[Output]:
        st: IrcState = sess.state
        if b"\r" in data:
            # CR, LF or CR LF each end a line (modern.ircdocs.horse); a bare CR must not hide
            # a second line inside the first.
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = st.framer.feed(data)  # type: ignore[attr-defined]
        if not lines:
            return []
        st.pinged = False
        held = sess.held
        if held is not None:  # the password waits its turn (throttled): so does the rest
            held.extend(lines[:PASS_HELD_LINES - len(held)])
            return []
        return self._lines(core, sess, lines, now)

    def resume(self, core: ChatCore, sess: Session, lines: list, now: float) -> list[Output]:
        """The throttled password was accepted: finish registering, then process what the
        client sent behind it."""
        out: list[Output] = []
        self._try_register(core, sess, now, out)
        if lines and not sess.closing:
            out.extend(self._lines(core, sess, lines, now))
        return out

    def _lines(self, core: ChatCore, sess: Session, lines: list, now: float) -> list[Output]:
        out: list[Output] = []
        conn = sess.conn
        flood = core.limits.rate > 0.0
        private = core.private
        for i, raw in enumerate(lines):
            if flood and not core.admit(sess, now, out):
                continue
            # The hot path first: "PRIVMSG target :text" from a registered user, no tags,
            # within the limit, needs no full parse.
            if raw is not None and raw[:8] == b"PRIVMSG " and len(raw) <= MAX_MESSAGE - 2 \
                    and sess.key is not None:
                target, sep, text = raw[8:].partition(b" :")
                if sep and target and text and b" " not in target and b"," not in target \
                        and text[:1] != b"\x01" and (text.isascii() or _utf8(text)):
                    if len(text.translate(None, _CONTROL_BYTES)) != len(text):
                        text = plain_text(text)
                    # (text that shows nothing takes the full path, which answers 412)
                    if not shows_nothing(text):
                        if target[:1] == b"#":
                            self._to_channel(core, sess, target, text, False, out)
                        else:
                            private(sess, target, text, out)
                        continue
            if raw is None:
                out.append((conn, self._num(sess, Numeric.ERR_INPUTTOOLONG,
                                            "Input line was too long")))
                continue
            if not raw:
                continue
            body = raw
            if raw[:1] == b"@":
                space = raw.find(b" ")
                body = raw[space + 1:] if space > 0 else b""
                if space > MAX_TAGS:
                    out.append((conn, self._num(sess, Numeric.ERR_INPUTTOOLONG,
                                                "Message tags too long")))
                    continue
            if len(body) > MAX_MESSAGE - 2:
                out.append((conn, self._num(sess, Numeric.ERR_INPUTTOOLONG,
                                            "Input line was too long")))
                continue
            try:
                line = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.append((conn, self.system(sess, Code.INVALID_UTF8,
                                              f"Invalid UTF-8 at byte {exc.start}; discarded.")))
                continue
            try:
                msg = parse(line)
            except IrcParseError:
                continue  # nothing but spaces or tags: nothing to answer
            verb = _upper(msg.verb)
            handler = self._handlers.get(verb)
            if sess.key is None and verb not in _PRE_REGISTRATION:
                out.append((conn, server_line(Numeric.ERR_NOTREGISTERED, self.nick_of(sess),
                                              "You have not registered")))
                continue
            if handler is None:
                out.append((conn, self._num(sess, Numeric.ERR_UNKNOWNCOMMAND, msg.verb,
                                            "Unknown command")))
                continue
            handler(core, sess, msg, verb, now, out)
            if sess.closing:
                break
            if sess.held is not None:  # PASS is being judged later: hold what follows
                sess.held.extend(lines[i + 1:i + 1 + PASS_HELD_LINES])
                break
        return out

    # -- registration --------------------------------------------------------------------

    def _need(self, sess: Session, verb: str, msg: Message, count: int, out: list) -> bool:
        if len(msg.params) >= count and all(msg.params[:count]):
            return True
        out.append((sess.conn, self._num(sess, Numeric.ERR_NEEDMOREPARAMS, verb,
                                         "Not enough parameters")))
        return False

    def _cap(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        st: IrcState = sess.state
        sub = msg.params[0].upper()
        me = self.nick_of(sess)
        if sub == "LS":
            if sess.key is None:
                st.cap_open = True
            out.append((sess.conn, server_line("CAP", me, "LS", "")))
        elif sub == "LIST":
            out.append((sess.conn, server_line("CAP", me, "LIST", "")))
        elif sub == "REQ":
            if sess.key is None:
                st.cap_open = True
            wanted = msg.params[1] if len(msg.params) > 1 else ""
            out.append((sess.conn, server_line("CAP", me, "NAK", wanted)))
        elif sub == "END":
            if st.cap_open:
                st.cap_open = False
                self._try_register(core, sess, now, out)
        else:
            out.append((sess.conn, self._num(sess, Numeric.ERR_INVALIDCAPCMD, msg.params[0],
                                             "Invalid CAP command")))

    def _pass(self, core, sess, msg, verb, now, out) -> None:
        if sess.key is not None:
            out.append((sess.conn, self._num(sess, Numeric.ERR_ALREADYREGISTERED,
                                             "You may not reregister")))
            return
        if self._need(sess, verb, msg, 1, out):
            sess.state.password = msg.params[0]

    def _nick(self, core, sess, msg, verb, now, out) -> None:
        if not msg.params or not msg.params[0]:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NONICKNAMEGIVEN,
                                             "No nickname given")))
            return
        nick = msg.params[0]
        problem = irc_nick_problem(nick)
        if problem is not None:
            out.append((sess.conn, self._num(sess, Numeric.ERR_ERRONEUSNICKNAME, nick, problem)))
            return
        if sess.key is None:
            sess.state.nick = nick
            self._try_register(core, sess, now, out)
        elif nick != sess.nick:
            core.rename(sess, nick, now, out)

    def _user(self, core, sess, msg, verb, now, out) -> None:
        if sess.key is not None:
            out.append((sess.conn, self._num(sess, Numeric.ERR_ALREADYREGISTERED,
                                             "You may not reregister")))
            return
        if len(msg.params) < 4 or not msg.params[0]:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NEEDMOREPARAMS, verb,
                                             "Not enough parameters")))
            return
        st: IrcState = sess.state
        st.user = _USER_CHARS.sub("", msg.params[0])[:16] or "user"
        st.realname = plain_text(msg.params[3].encode()).decode("utf-8", "replace")[:64]
        self._try_register(core, sess, now, out)

    def _try_register(self, core: ChatCore, sess: Session, now: float, out: list) -> None:
        st: IrcState = sess.state
        if st.nick is None or st.user is None or st.cap_open or sess.key is not None:
            return
        if not sess.authenticated:
            core.authenticate(sess, st.password, now, out)
            if not sess.authenticated:
                return
        core.login(sess, st.nick, now, out)
        if sess.key is None:
            st.nick = None  # refused (432/433): the client picks another nickname

    def _ping(self, core, sess, msg, verb, now, out) -> None:
        if not msg.params:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NOORIGIN, "No origin specified")))
            return
        out.append((sess.conn, server_line("PONG", SERVER_NAME, msg.params[0])))

    def _pong(self, core, sess, msg, verb, now, out) -> None:
        sess.state.pinged = False

    def _quit(self, core, sess, msg, verb, now, out) -> None:
        reason = msg.params[0] if msg.params else ""
        reason = plain_text(reason.encode()).decode("utf-8", "replace")[:200]
        sess.state.quit_message = f"Quit: {reason}" if reason else "Quit"
        out.append((sess.conn, server_line("ERROR", f"Closing link: {sess.state.quit_message}",
                                           source="")))
        core.quit(sess, "quit", out)

    # -- messages ------------------------------------------------------------------------

    def _privmsg(self, core, sess, msg, verb, now, out) -> None:
        notice = verb == "NOTICE"
        params = msg.params
        if not params or not params[0]:
            if not notice:
                out.append((sess.conn, self._num(sess, Numeric.ERR_NORECIPIENT,
                                                 f"No recipient given ({verb})")))
            return
        text = params[1].encode() if len(params) > 1 else b""
        if text[:1] == b"\x01":
            body = text.strip(b"\x01")
            if body[:7].upper() == b"ACTION " or body.upper() == b"ACTION":
                text = ME_PREFIX + body[7:]
            else:
                return  # other CTCP (VERSION, PING, DCC …) is not relayed: see docs/irc.md
        text = plain_text(text).strip(b" ")
        if shows_nothing(text):  # empty, or e.g. one zero-width space
            if not notice:
                out.append((sess.conn, self._num(sess, Numeric.ERR_NOTEXTTOSEND,
                                                 "No text to send")))
            return
        targets = [t for t in params[0].split(",") if t]
        if len(targets) > MAX_TARGETS:
            out.append((sess.conn, self._num(sess, Numeric.ERR_TOOMANYTARGETS, params[0],
                                             f"Too many recipients (at most {MAX_TARGETS})")))
            return
        for target in targets:
            raw = target.encode()
            if target[0] in "#&":
                self._to_channel(core, sess, raw, text, notice, out)
            else:
                core.private(sess, raw, text, out, notice=notice)

    def _to_channel(self, core, sess, target: bytes, text: bytes, notice: bool, out: list) -> None:
        if target.lower() == LOBBY.encode():
            core.broadcast(sess, text, out)
        elif not notice:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NOSUCHCHANNEL,
                                             target.decode("utf-8", "replace"),
                                             f"No such channel: everyone is in {LOBBY}")))

    # -- channel commands ----------------------------------------------------------------

    def _join(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        for name in msg.params[0].split(","):
            if not name or name == "0" or name.lower() == LOBBY:
                continue  # already in #lobby (JOIN 0 would leave it: not possible here)
            out.append((sess.conn, self._num(
                sess, Numeric.ERR_NOSUCHCHANNEL, name,
                f"Only {LOBBY} exists here: everyone is in it")))

    def _part(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        out.append((sess.conn, server_line(
            "NOTICE", self.nick_of(sess),
            f"You cannot leave {LOBBY}: it is the whole chat. /quit leaves the chat.")))

    def _names(self, core, sess, msg, verb, now, out) -> None:
        chan = msg.params[0] if msg.params else LOBBY
        if chan.lower() == LOBBY:
            out.append((sess.conn, self.names_reply(core, sess)))
        else:
            out.append((sess.conn, self._num(sess, Numeric.RPL_ENDOFNAMES, chan,
                                             "End of /NAMES list")))

    def names_reply(self, core: ChatCore, sess: Session) -> bytes:
        """353 lines (as many as 512 bytes each need) and the closing 366."""
        me = self.nick_of(sess)
        head = f":{SERVER_NAME} {Numeric.RPL_NAMREPLY} {me} = {LOBBY} :".encode()
        room = MAX_MESSAGE - 2 - len(head)
        lines: list[bytes] = []
        chunk: list[bytes] = []
        used = 0
        total = 0
        shown = 0
        for s in core.online():
            name = self.target(s)
            total += len(name) + 1
            if total > MAX_NAMES_BYTES and s is not sess:
                continue
            if chunk and used + 1 + len(name) > room:
                lines.append(head + b" ".join(chunk) + b"\r\n")
                chunk, used = [], 0
            chunk.append(name)
            shown += 1
            used += len(name) + (1 if used else 0)
        if chunk:
            lines.append(head + b" ".join(chunk) + b"\r\n")
        lines.append(self._num(sess, Numeric.RPL_ENDOFNAMES, LOBBY, "End of /NAMES list"))
        left_out = len(core.users) - shown
        if left_out > 0:
            lines.append(server_line("NOTICE", me, f"{left_out} more users are in {LOBBY} than "
                                     "NAMES can show; /whois or /ison Nick asks for one."))
        return b"".join(lines)

    def _topic(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        chan = msg.params[0]
        if chan.lower() != LOBBY:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NOSUCHCHANNEL, chan,
                                             "No such channel")))
        elif len(msg.params) > 1:
            out.append((sess.conn, self._num(sess, Numeric.ERR_CHANOPRIVSNEEDED, LOBBY,
                                             "The topic of #lobby is fixed")))
        else:
            out.append((sess.conn, self._num(sess, Numeric.RPL_TOPIC, LOBBY, LOBBY_TOPIC)))

    def _mode(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        target = msg.params[0]
        conn = sess.conn
        if target[:1] in "#&":
            if target.lower() != LOBBY:
                out.append((conn, self._num(sess, Numeric.ERR_NOSUCHCHANNEL, target,
                                            "No such channel")))
            elif len(msg.params) == 1:
                out.append((conn, self._num(sess, Numeric.RPL_CHANNELMODEIS, LOBBY, "+nt")))
            elif msg.params[1].lstrip("+") in ("b", "e", "I") and len(msg.params) == 2:
                kind = msg.params[1].lstrip("+")
                end = {"b": (Numeric.RPL_ENDOFBANLIST, "End of channel ban list"),
                       "e": ("349", "End of channel exception list"),
                       "I": ("347", "End of channel invite list")}[kind]
                out.append((conn, self._num(sess, end[0], LOBBY, end[1])))
            else:
                out.append((conn, self._num(sess, Numeric.ERR_CHANOPRIVSNEEDED, LOBBY,
                                            "Nobody is a channel operator in #lobby")))
            return
        found = core.find(target)
        if found is not sess:
            out.append((conn, self._num(sess, Numeric.ERR_USERSDONTMATCH,
                                        "Cannot change mode for other users")))
            return
        st: IrcState = sess.state
        if len(msg.params) == 1:
            out.append((conn, self._num(sess, Numeric.RPL_UMODEIS, "+" + st.modes)))
            return
        adding = True
        before = st.modes
        unknown = False
        for ch in msg.params[1]:
            if ch in "+-":
                adding = ch == "+"
            elif ch in "iw":
                if adding and ch not in st.modes:
                    st.modes += ch
                elif not adding:
                    st.modes = st.modes.replace(ch, "")
            else:
                unknown = True
        if unknown:
            out.append((conn, self._num(sess, Numeric.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")))
        added = "".join(c for c in st.modes if c not in before)
        removed = "".join(c for c in before if c not in st.modes)
        if added or removed:
            change = (f"+{added}" if added else "") + (f"-{removed}" if removed else "")
            me = self.nick_of(sess)
            out.append((conn, server_line("MODE", me, change, source=me)))

    def _who(self, core, sess, msg, verb, now, out) -> None:
        mask = msg.params[0] if msg.params else "*"
        if mask.lower() in (LOBBY, "*", "0"):
            users = list(core.online())
        elif mask[:1] in "#&":
            users = []
        else:
            found = core.find(mask)
            users = [found] if found is not None else []
        lines = []
        left_out = max(0, len(users) - MAX_WHO)
        for s in users[:MAX_WHO]:
            user, host = self._user_host(s)
            away = "G" if isinstance(s.state, IrcState) and s.state.away else "H"
            lines.append(self._num(sess, Numeric.RPL_WHOREPLY, LOBBY, user, host, SERVER_NAME,
                                   irc_form(s.nick), away, f"0 {self._realname(s)}"))
        lines.append(self._num(sess, Numeric.RPL_ENDOFWHO, mask, "End of WHO list"))
        if left_out:
            lines.append(server_line("NOTICE", self.nick_of(sess),
                                     f"WHO shows at most {MAX_WHO} users; {left_out} more are "
                                     f"in {LOBBY}."))
        out.append((sess.conn, b"".join(lines)))

    def _whois(self, core, sess, msg, verb, now, out) -> None:
        if not msg.params or not msg.params[0]:
            out.append((sess.conn, self._num(sess, Numeric.ERR_NONICKNAMEGIVEN,
                                             "No nickname given")))
            return
        name = msg.params[-1].split(",")[0]  # WHOIS [server] nick
        found = core.find(name)
        lines = []
        if found is None:
            lines.append(self._num(sess, Numeric.ERR_NOSUCHNICK, name, "No such nick"))
        else:
            nick = irc_form(found.nick)
            user, host = self._user_host(found)
            kind = "IRC" if isinstance(found.state, IrcState) else "tcplab client"
            lines.append(self._num(sess, Numeric.RPL_WHOISUSER, nick, user, host, "*",
                                   self._realname(found)))
            lines.append(self._num(sess, Numeric.RPL_WHOISCHANNELS, nick, LOBBY))
            lines.append(self._num(sess, Numeric.RPL_WHOISSERVER, nick, SERVER_NAME,
                                   f"connected with {kind}"))
            name = nick
        lines.append(self._num(sess, Numeric.RPL_ENDOFWHOIS, name, "End of /WHOIS list"))
        out.append((sess.conn, b"".join(lines)))

    def _whowas(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        name = msg.params[0]
        out.append((sess.conn, self._num(sess, Numeric.ERR_WASNOSUCHNICK, name,
                                         "There was no such nickname")
                    + self._num(sess, Numeric.RPL_ENDOFWHOWAS, name, "End of WHOWAS")))

    def _ison(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        names = " ".join(msg.params).split()[:MAX_ISON]
        online = [irc_form(s.nick) for s in (core.find(n) for n in names) if s is not None]
        out.append((sess.conn, self._num(sess, Numeric.RPL_ISON, " ".join(online))))

    def _userhost(self, core, sess, msg, verb, now, out) -> None:
        if not self._need(sess, verb, msg, 1, out):
            return
        replies = []
        for name in " ".join(msg.params).split()[:MAX_USERHOST]:
            found = core.find(name)
            if found is not None:
                user, host = self._user_host(found)
                away = "-" if isinstance(found.state, IrcState) and found.state.away else "+"
                replies.append(f"{irc_form(found.nick)}={away}{user}@{host}")
        out.append((sess.conn, self._num(sess, Numeric.RPL_USERHOST, " ".join(replies))))

    def _away(self, core, sess, msg, verb, now, out) -> None:
        st: IrcState = sess.state
        st.away = bool(msg.params and msg.params[0])
        if st.away:
            out.append((sess.conn, self._num(sess, Numeric.RPL_NOWAWAY,
                                             "You have been marked as being away")))
        else:
            out.append((sess.conn, self._num(sess, Numeric.RPL_UNAWAY,
                                             "You are no longer marked as being away")))

    def _list(self, core, sess, msg, verb, now, out) -> None:
        count = str(len(core.users))
        out.append((sess.conn, self._num(sess, Numeric.RPL_LIST, LOBBY, count, LOBBY_TOPIC)
                    + self._num(sess, Numeric.RPL_LISTEND, "End of /LIST")))

    def _lusers(self, core, sess, msg, verb, now, out) -> None:
        out.append((sess.conn, self.lusers(core, sess)))

    def _motd(self, core, sess, msg, verb, now, out) -> None:
        out.append((sess.conn, self.motd(sess)))

    def lusers(self, core: ChatCore, sess: Session) -> bytes:
        n = str(len(core.users))
        return b"".join([
            self._num(sess, Numeric.RPL_LUSERCLIENT,
                      f"There are {n} users and 0 invisible on 1 servers"),
            self._num(sess, Numeric.RPL_LUSEROP, "0", "operator(s) online"),
            self._num(sess, Numeric.RPL_LUSERCHANNELS, "1", "channels formed"),
            self._num(sess, Numeric.RPL_LUSERME, f"I have {n} clients and 0 servers"),
            self._num(sess, Numeric.RPL_LOCALUSERS, n, n, f"Current local users {n}"),
            self._num(sess, Numeric.RPL_GLOBALUSERS, n, n, f"Current global users {n}"),
        ])

    def motd(self, sess: Session) -> bytes:
        return b"".join(
            [self._num(sess, Numeric.RPL_MOTDSTART, f"- {SERVER_NAME} Message of the day -")]
            + [self._num(sess, Numeric.RPL_MOTD, f"- {line}") for line in MOTD]
            + [self._num(sess, Numeric.RPL_ENDOFMOTD, "End of /MOTD command.")])

    def isupport(self) -> list[str]:
        """The RPL_ISUPPORT tokens (also listed in docs/irc.md)."""
        return [
            "CASEMAPPING=ascii", "CHANTYPES=#", f"NICKLEN={MAX_NICK_CHARS}",
            f"NETWORK={NETWORK}", "PREFIX=(ov)@+", "CHANMODES=b,k,l,nt", "CHANLIMIT=#:1",
            "CHANNELLEN=32", f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},WHOIS:1,"
            f"USERHOST:{MAX_USERHOST},ISON:{MAX_ISON}", "AWAYLEN=200",
        ]

    # -- core → wire ---------------------------------------------------------------------

    def welcome(self, core: ChatCore, sess: Session, now: float) -> list[bytes]:
        src = self.source(sess)
        return [
            self._num(sess, Numeric.RPL_WELCOME,
                      f"Welcome to the {NETWORK} chat, {src.decode()}"),
            self._num(sess, Numeric.RPL_YOURHOST,
                      f"Your host is {SERVER_NAME}, running version {VERSION}"),
            self._num(sess, Numeric.RPL_CREATED, f"This server was created {self.created}"),
            self._num(sess, Numeric.RPL_MYINFO, SERVER_NAME, VERSION, "iw", "bklnt"),
            self._num(sess, Numeric.RPL_ISUPPORT, *self.isupport(),
                      "are supported by this server"),
            self.lusers(core, sess),
            self.motd(sess),
            b":" + src + b" JOIN " + LOBBY.encode() + b"\r\n",
            self._num(sess, Numeric.RPL_TOPIC, LOBBY, LOBBY_TOPIC),
            self.names_reply(core, sess),
        ]

    def private(self, sender: Session, dest: Session, text: bytes, notice: bool = False) -> bytes:
        # The hot path of every message to an IRC user: both renderings come from the
        # per-user caches, and a short clean text needs no splitting or stripping.
        cache = sender.cache
        src = cache.get(self.name) if cache is not None else None
        if src is None:
            src = self.source(sender)
        cache = dest.cache
        tgt = cache.get("irc-target") if cache is not None else None
        if tgt is None:
            tgt = self.target(dest)
        head = b":" + src + (b" NOTICE " if notice else b" PRIVMSG ") + tgt + b" :"
        if len(head) + len(text) <= MAX_MESSAGE - 2 and text[:4] != ME_PREFIX \
                and len(text.translate(None, _CONTROL_BYTES)) == len(text):
            return head + text + b"\r\n"
        return self._text(head, text)

    def broadcast(self, sender: Session, text: bytes) -> bytes:
        return self._text(b":" + self.source(sender) + b" PRIVMSG " + LOBBY.encode() + b" :",
                          text)

    @staticmethod
    def _text(head: bytes, text: bytes) -> bytes:
        text = text.translate(None, _CONTROL_BYTES)  # no CTCP or formatting smuggled in
        if text[:4] == ME_PREFIX:
            return text_lines(head, b"\x01ACTION " + text[4:] + b"\x01")
        return text_lines(head, text)

    def system(self, dest: Session | None, code: int, text: str, subject: str | None = None) -> bytes:
        me = self.nick_of(dest) if dest is not None else "*"
        numeric = _CODE_NUMERICS.get(code)
        if numeric is not None:
            if subject is not None:
                return server_line(numeric, me, irc_form(subject), text)
            return server_line(numeric, me, text)
        if code in _REFUSALS:  # the connection is refused before it has a session
            return server_line("ERROR", f"Closing link: {text}", source="")
        return server_line("NOTICE", me, text)

    def closing(self, dest: Session, code: int, text: str) -> bytes:
        head = self.system(dest, code, text) if code == Code.PASSWORD else b""
        return head + server_line("ERROR", f"Closing link: {text}", source="")

    def joined(self, who: Session) -> bytes:
        return b":" + self.source(who) + b" JOIN " + LOBBY.encode() + b"\r\n"

    def left(self, who: Session, reason: str) -> bytes:
        st = who.state
        if isinstance(st, IrcState) and st.quit_message:
            text = st.quit_message
        else:
            text = _QUIT_REASONS.get(reason, reason)
        return server_line("QUIT", text, source=self.source(who).decode())

    def leave_reason(self, who: Session, reason: str) -> str:
        st = who.state
        if isinstance(st, IrcState) and st.quit_message:
            return st.quit_message  # what the user typed after QUIT, already cleaned
        return reason

    def renamed(self, who: Session, old_nick: str) -> bytes:
        user, host = self._user_host(who)
        old = f"{irc_form(old_nick)}!{user}@{host}"
        return server_line("NICK", irc_form(who.nick), source=old)  # type: ignore[arg-type]

    def keepalive(self, sess: Session) -> bytes | None:
        st = sess.state
        if not isinstance(st, IrcState) or st.pinged:
            return None
        st.pinged = True
        return server_line("PING", SERVER_NAME, source="")

    def senders(self, pending: bytes) -> list[bytes]:
        names = []
        for line in pending.split(b"\r\n"):
            # ":nick!user@host PRIVMSG target :text": only user messages carry a "!" source.
            if line[:1] != b":":
                continue
            space = line.find(b" ")
            bang = line.find(b"!", 0, space)
            verb = line[space + 1:line.find(b" ", space + 1)]
            if bang > 1 and verb in (b"PRIVMSG", b"NOTICE"):
                names.append(line[1:bang])
        return names


def irc_nick_problem(nick: str) -> str | None:
    """Why an IRC client cannot ask for ``nick`` (the IRC-only part of the rules; the core
    applies the nickname rules every dialect shares), or None."""
    if len(nick) > MAX_NICK_CHARS:
        return f"Erroneous nickname: at most {MAX_NICK_CHARS} characters"
    if not irc_safe(nick):
        return "Erroneous nickname: ! @ * ? , : and a leading # & $ @ + % ~ are not allowed"
    return None


#: Refusals of a connection as such: rendered as ERROR (the server closes at once).
_REFUSALS = frozenset({Code.SERVER_FULL, Code.TOO_MANY_FROM_ADDRESS})
#: Core codes that have an IRC numeric; every other notice is rendered as a NOTICE.
_CODE_NUMERICS = {
    Code.NO_SUCH_NICK: Numeric.ERR_NOSUCHNICK,
    Code.NO_RECIPIENT: Numeric.ERR_NORECIPIENT,
    Code.NO_TEXT: Numeric.ERR_NOTEXTTOSEND,
    Code.LINE_TOO_LONG: Numeric.ERR_INPUTTOOLONG,
    Code.UNKNOWN_COMMAND: Numeric.ERR_UNKNOWNCOMMAND,
    Code.BAD_NICK: Numeric.ERR_ERRONEUSNICKNAME,
    Code.NICK_IN_USE: Numeric.ERR_NICKNAMEINUSE,
    Code.PASSWORD: Numeric.ERR_PASSWDMISMATCH,
}
