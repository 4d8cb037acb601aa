"""IRC load generator for ``bench_irc.py``: the chat benchmark's generator speaking IRC.

Same process model, pacing, latency stamps and accounting as ``chat_loadgen.py`` (it
subclasses its ``LoadGen``); only the wire format differs: ``NICK``/``USER`` to register
(a login is accepted on ``001``), optionally ``JOIN #lobby`` so every daemon holds the same
state as tcplab (where everyone is in ``#lobby``), ``PRIVMSG peer :text`` to send, and
``:sender!user@host PRIVMSG peer :text`` to receive, ``PING`` answered with ``PONG``.
Only 127.0.0.1 is ever contacted. Never imported by ``src/tcplab``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_loadgen import FILLER, Conn, LoadGen, now_us, raise_fd_limit  # noqa: E402

#: Numerics that refuse a registration (nickname taken/erroneous, banned, password) and
#: the server's ERROR before it closes.
REFUSED_RE = re.compile(rb"^(?::\S+ )?(?:43[1-7]|46[45]|ERROR)\b", re.M)
WELCOME_RE = re.compile(rb"^:\S+ 001 ", re.M)
PING_RE = re.compile(rb"^PING (.*?)\r?$", re.M)


class IrcLoadGen(LoadGen):
    line_end = b"\r\n"

    def send_nick(self, conn: Conn) -> None:
        conn.state = "login-sent"
        conn.login_started = now_us()
        name = conn.name
        self.write(conn, b"NICK " + name + b"\r\nUSER " + name + b" 0 * :bench\r\n")

    def on_login_reply(self, conn: Conn, first_line: bytes) -> None:
        # IRC daemons send notices (host lookups) before 001: decided in on_lines.
        return

    def on_lines(self, conn: Conn, chunk: bytes) -> None:
        if b"PING " in chunk:
            for token in PING_RE.findall(chunk):
                self.write(conn, b"PONG " + token + b"\r\n")
        if conn.state == "login-sent":
            if WELCOME_RE.search(chunk):
                conn.state = "in"
                conn.login_us = now_us() - conn.login_started
                self.logged_in += 1
                if self.args.join:
                    self.write(conn, b"JOIN #lobby\r\n")
            elif REFUSED_RE.search(chunk):
                line = REFUSED_RE.search(chunk)
                self.sample(chunk[line.start():chunk.find(b"\n", line.start())])
                self.fault(conn, "registration refused")
                return
        before = self.other_lines
        super().on_lines(conn, chunk)
        if self.measuring and self.other_lines > before and len(self.system_samples) < 5:
            for line in chunk.split(b"\n"):
                if line and b" PRIVMSG " not in line:
                    self.sample(line)
                    break

    def pair(self, sender: Conn, receiver: Conn) -> None:
        sender.line = b"PRIVMSG " + receiver.name + b" :" + FILLER
        receiver.prefix = b":" + sender.name + b"!"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IRC load generator (driven by bench_irc.py).")
    parser.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
    parser.add_argument("--mode", choices=("pairs",), default="pairs")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--window", type=int, default=8)
    # ngIRCd listens with a backlog of 10 (a compile-time constant): more connects in flight
    # overflow its accept queue and wait for SYN retransmissions (1 s, 3 s, 7 s …). Every
    # server gets this same pace, which still connects 1,000 clients in well under a second.
    parser.add_argument("--connect-concurrency", type=int, default=8)
    parser.add_argument("--phase-timeout", type=float, default=60.0)
    parser.add_argument("--no-join", dest="join", action="store_false",
                        help="do not JOIN #lobby after registering")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be 1–65535")
    raise_fd_limit(2 * args.pairs + 64)
    gen = IrcLoadGen(args)
    try:
        gen.run_pairs()
    except KeyboardInterrupt:
        return 130
    finally:
        gen.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
