"""Soak test of ``tcplab server``: churn + stalled clients + floods for N minutes.

It runs the real server in a subprocess on loopback and, all at once:

* **readers** stay connected, read everything and send each other numbered messages (under
  the flood limit): none may be dropped, lose a message or see one misattributed;
* **churners** connect and leave over and over — FIN, RST, ``/quit``, mid-login aborts —
  trying hostile nicknames, invalid UTF-8, overlong lines and control characters on the way;
* **stalled** clients log in (half of them with ``/deltas``) and never read, in waves, so
  they are dropped as slow consumers while join/leave notices pile up in step;
* **flooders** send bursts far above the flood limit to readers, stalled clients and everyone.

Every ``--check-every`` seconds the load pauses, the stalled wave is closed, and a probe
compares the server's roster (``/users``) with the clients that should be online: a name
too many is a ghost, a reader missing is a wrongful drop. The server's RSS is sampled at
each check. At the end the server is stopped with SIGTERM and must exit 0 with no
traceback or ``internal error`` in its log.

    python benchmarks/soak_chat.py --minutes 10 --json soak.json

Exit status 0 when zero crashes, zero ghosts, no reader lost anything and RSS stayed flat
(growth from the first to the last check ≤ max(16 MiB, 25 %)); 1 otherwise. Loopback only;
bounded by ``--minutes`` and ``--max-connections``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
HOSTILE_NICKS = ["System\u200d", "Alice\u200b", "\u3164", "System\ua789 down", "\uff0a Bob",
                 "ＳＹＳＴＥＭ", "Аdmin", "a:b", "a,b", "", " x", "*x"]


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n


class Line:
    """A blocking client socket with line framing (soak clients only)."""

    def __init__(self, port: int, rcvbuf: int = 0, timeout: float = 10.0) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def lines(self, timeout: float) -> list[bytes] | None:
        """Lines that arrive within ``timeout`` ([] on silence); None at EOF/reset."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return []
        except OSError:
            return None
        if not chunk:
            return None
        *complete, self.buf = (self.buf + chunk).split(b"\n")
        return complete

    def expect(self, prefix: bytes, timeout: float = 10.0) -> bytes | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines(max(0.01, deadline - time.monotonic()))
            if got is None:
                return None
            for line in got:
                if line.startswith(prefix):
                    return line
        return None

    def login(self, nick: str) -> bool:
        self.send(b"/codes on\n" + nick.encode() + b"\n")
        return self.expect(b"System: 001 ", 10) is not None

    def reset(self) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.rng = random.Random(args.seed)
        self.stop = threading.Event()
        self.running = threading.Event()  # cleared while a check runs
        self.running.set()
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.readers: list[str] = [f"reader{i}" for i in range(args.readers)]
        self.all_in = threading.Barrier(args.readers)
        self.flooders: list[str] = [f"flooder{i}" for i in range(args.flooders)]
        self.reader_faults: list[str] = []
        self.stalled: list[tuple[str, Line]] = []
        self.stalled_lock = threading.Lock()
        self.dropped_names: list[str] = []
        self.checks: list[dict] = []
        self.connections = 0

    # -- the server ----------------------------------------------------------------------

    def start_server(self, log_path: Path) -> None:
        cmd = [sys.executable, "-m", "tcplab", "server", "--port", "0",
               "--max-output", str(self.args.max_output), "--sndbuf", "16384",
               "--max-per-address", "0", "--login-timeout", "10", "--idle-timeout", "120"]
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in finish()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env, cwd=ROOT)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit(f"soak_chat: server did not start: {line!r}")
        self.port = int(m.group(1))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:  # type: ignore[union-attr]
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # -- workers -------------------------------------------------------------------------

    def reader(self, index: int) -> None:
        name = self.readers[index]
        c = Line(self.args.port_override or self.port)
        if not c.login(name):
            self.reader_faults.append(f"{name}: could not log in")
            self.all_in.abort()
            return
        try:
            self.all_in.wait(30)  # nobody writes to a reader that is not logged in yet
        except threading.BrokenBarrierError:
            return
        last_seq: dict[str, int] = {}
        sent_seq: dict[str, int] = {}
        turn = 0
        next_send = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_send and len(self.readers) > 1:
                peer = self.readers[(index + 1 + turn % (len(self.readers) - 1)) % len(self.readers)]
                turn += 1
                seq = sent_seq[peer] = sent_seq.get(peer, 0) + 1
                try:
                    c.send(f"{peer}: seq={seq} from={name}\n".encode())
                except OSError:
                    self.reader_faults.append(f"{name}: send failed (dropped?)")
                    return
                self.stats.add("reader_sent")
                next_send = now + 0.2
            got = c.lines(0.05)
            if got is None:
                if not self.stop.is_set():
                    self.reader_faults.append(f"{name}: disconnected by the server")
                return
            for line in got:
                m = re.match(rb"([^:]+): seq=(\d+) from=(\S+)$", line)
                if not m:
                    continue
                sender, n, claimed = m.group(1).decode(), int(m.group(2)), m.group(3).decode()
                if sender != claimed:
                    self.reader_faults.append(f"{name}: message from {claimed} shown as {sender}")
                if n != last_seq.get(sender, 0) + 1:
                    self.reader_faults.append(
                        f"{name}: from {sender} got seq {n} after {last_seq.get(sender, 0)}")
                last_seq[sender] = n
                self.stats.add("reader_received")
        c.close()

    def flooder(self, index: int) -> None:
        name = self.flooders[index]
        c = Line(self.port)
        if not c.login(name):
            self.stats.add("flooder_login_failed")
            return
        c.sock.settimeout(0.01)
        rng = random.Random(self.args.seed + 1000 + index)
        while not self.stop.is_set():
            self.running.wait()
            with self.stalled_lock:
                targets = [n for n, _ in self.stalled] or ["nobody"]
            burst = []
            for _ in range(100):
                kind = rng.random()
                if kind < 0.5:
                    burst.append(f"{rng.choice(targets)}: {'f' * rng.randint(100, 3000)}")
                elif kind < 0.6:
                    burst.append(f"*: flood {'g' * rng.randint(10, 500)}")
                else:
                    burst.append(f"{rng.choice(self.readers)}: flood {'h' * rng.randint(10, 200)}")
            try:
                c.send(("\n".join(burst) + "\n").encode())
            except OSError:
                self.stats.add("flooder_dropped")
                return
            self.stats.add("flood_lines", len(burst))
            end = time.monotonic() + 0.5
            while time.monotonic() < end:  # a flooder reads its 429s, it is not a stalled one
                if c.lines(0.05) is None:
                    self.stats.add("flooder_dropped")
                    return
        c.close()

    def churner(self, index: int) -> None:
        rng = random.Random(self.args.seed + 2000 + index)
        n = 0
        while not self.stop.is_set() and self.connections < self.args.max_connections:
            self.running.wait()
            n += 1
            self.connections += 1
            nick = f"churn{index}-{n}"
            try:
                c = Line(self.port, timeout=5)
            except OSError:
                self.stats.add("churn_connect_failed")
                time.sleep(0.05)
                continue
            try:
                style = rng.random()
                if style < 0.1:  # abort mid-login
                    c.send(b"half a nick")
                    c.reset() if rng.random() < 0.5 else c.close()
                    self.stats.add("churn_aborted")
                    continue
                c.send(b"/codes on\n")
                if rng.random() < 0.3:
                    c.send(rng.choice(HOSTILE_NICKS).encode() + b"\n")
                    if c.expect(b"System: 4", 5) is None:
                        self.stats.add("churn_no_refusal")
                if not c.login(nick):
                    self.stats.add("churn_login_failed")
                    c.close()
                    continue
                self.stats.add("churn_logins")
                lines = []
                for _ in range(rng.randint(1, 6)):
                    lines.append(f"{rng.choice(self.readers)}: hello from {nick}".encode())
                lines.append(b"*: churn says hi")
                lines.append(b"/users")
                garbage = rng.random()
                if garbage < 0.2:
                    lines.append(b"reader0: caf\xe9")  # invalid UTF-8
                elif garbage < 0.3:
                    lines.append(b"x" * 5000)  # overlong
                elif garbage < 0.5:
                    lines.append(b"reader0: ctl\r\x1b[2J\x07\xe2\x80\xae end")
                c.send(b"\n".join(lines) + b"\n")
                c.lines(rng.random() * 0.1)
                how = rng.random()
                if how < 0.3:
                    c.reset()
                elif how < 0.6:
                    c.send(b"/quit\n")
                    c.expect(b"never", 0.2)
                    c.close()
                else:
                    c.close()
            except OSError:
                self.stats.add("churn_oserror")
                c.close()

    def stalled_wave(self) -> None:
        rng = random.Random(self.args.seed + 3000)
        wave = 0
        while not self.stop.is_set():
            self.running.wait()
            wave += 1
            with self.stalled_lock:
                if not self.running.is_set():  # a check is under way: no new wave now
                    continue
                for i in range(self.args.stalled):
                    name = f"stall{wave}-{i}"
                    try:
                        c = Line(self.port, rcvbuf=4096, timeout=5)
                        if rng.random() < 0.5:
                            c.send(b"/deltas\n")
                        if c.login(name):
                            self.stalled.append((name, c))
                        else:
                            c.close()
                    except OSError:
                        pass
            self.stats.add("stalled_logins", self.args.stalled)
            self.stop.wait(self.args.wave_seconds)

    def close_stalled(self) -> None:
        with self.stalled_lock:
            for name, c in self.stalled:
                alive = True
                c.sock.setblocking(False)
                try:
                    while True:
                        chunk = c.sock.recv(1 << 20)
                        if not chunk:
                            alive = False
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    alive = False
                if not alive:
                    self.dropped_names.append(name)
                    self.stats.add("stalled_dropped")
                c.reset() if alive and self.rng.random() < 0.5 else c.close()
            self.stalled.clear()

    # -- checks --------------------------------------------------------------------------

    def check(self, final: bool = False) -> dict:
        self.running.clear()
        time.sleep(1.0)  # in-flight churn finishes its step
        self.close_stalled()
        expected = set(self.readers) | set(self.flooders)
        result: dict = {"t": round(time.monotonic() - self.started, 1)}
        roster: set[str] = set()
        deadline = time.monotonic() + 15
        probe_name = f"probe{len(self.checks)}"
        while time.monotonic() < deadline:  # leaves are processed within a loop turn or two
            time.sleep(0.5)
            probe = Line(self.port)
            if not probe.login(probe_name):
                probe.close()
                continue
            probe.send(b"/users\n")
            line = probe.expect(b"ONLINE_USERS:", 10) or b""
            probe.close()
            roster = {n for n in line[13:].decode().split(",") if n} - {probe_name}
            if not (roster - expected):
                break
        result["ghosts"] = sorted(roster - expected)[:20]
        result["ghost_count"] = len(roster - expected)
        missing = sorted(expected - roster)
        result["missing"] = missing
        # A dropped name is free again at once.
        freed = 0
        for name in self.dropped_names[-3:]:
            c = Line(self.port)
            freed += c.login(name)
            c.close()
        result["dropped_names_reusable"] = f"{freed}/{min(3, len(self.dropped_names))}"
        result["reusable_ok"] = freed == min(3, len(self.dropped_names))
        result["rss_kib"] = self.rss_kib()
        result["server_alive"] = self.proc.poll() is None  # type: ignore[union-attr]
        self.checks.append(result)
        if not self.args.quiet:
            print(f"soak_chat: check at {result['t']:7.1f} s: roster {len(roster)}, "
                  f"ghosts {result['ghost_count']}, missing {missing}, "
                  f"rss {result['rss_kib'] / 1024:.1f} MiB, {dict(self.stats.counts)}",
                  flush=True)
        if not final:
            self.running.set()
        return result

    def run(self) -> int:
        args = self.args
        tmp = Path(tempfile.mkdtemp(prefix="soak_chat_"))
        log_path = Path(args.log) if args.log else tmp / "server.log"
        self.start_server(log_path)
        self.started = time.monotonic()
        threads = [threading.Thread(target=self.reader, args=(i,), daemon=True)
                   for i in range(args.readers)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        more = ([threading.Thread(target=self.flooder, args=(i,), daemon=True)
                 for i in range(args.flooders)]
                + [threading.Thread(target=self.churner, args=(i,), daemon=True)
                   for i in range(args.churners)]
                + [threading.Thread(target=self.stalled_wave, daemon=True)])
        for t in more:
            t.start()
        end = self.started + args.minutes * 60
        interval = min(args.check_every, max(5.0, args.minutes * 60 / 2))
        next_check = self.started + interval
        while time.monotonic() < end and self.proc.poll() is None:  # type: ignore[union-attr]
            time.sleep(min(0.5, max(0.0, min(next_check, end) - time.monotonic())))
            if time.monotonic() >= next_check and time.monotonic() < end - 2:
                self.check()
                next_check = time.monotonic() + interval
        self.check(final=True)
        self.stop.set()
        self.running.set()
        for t in threads + more:
            t.join(10)
        return self.finish(log_path)

    def finish(self, log_path: Path) -> int:
        proc = self.proc
        assert proc is not None
        crashed = proc.poll() is not None
        if not crashed:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self.log.close()
        log = log_path.read_text(errors="replace")
        tracebacks = log.count("Traceback")
        internal = log.count("internal error")
        slow = log.count("slow_consumer")
        rss = [c["rss_kib"] for c in self.checks]
        growth = (rss[-1] - rss[0]) if len(rss) > 1 else 0
        flat = growth <= max(16 * 1024, 0.25 * rss[0]) if rss else False
        ghosts = sum(c["ghost_count"] for c in self.checks)
        missing = sorted({m for c in self.checks for m in c["missing"]})
        reusable = all(c["reusable_ok"] for c in self.checks)
        summary = {
            "minutes": self.args.minutes, "machine": f"{os.uname().nodename} {os.uname().machine}",
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "server_exit": code, "crashed": crashed, "tracebacks": tracebacks,
            "internal_errors": internal, "slow_consumers_dropped": slow,
            "ghosts": ghosts, "readers_missing": missing, "reader_faults": self.reader_faults[:20],
            "dropped_names_reusable": reusable, "rss_kib": rss, "rss_growth_kib": growth,
            "rss_flat": flat, "checks": len(self.checks), "counts": dict(self.stats.counts),
        }
        ok = (not crashed and code == 0 and tracebacks == 0 and internal == 0 and ghosts == 0
              and not missing and not self.reader_faults and reusable and flat)
        summary["pass"] = ok
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        print(f"soak_chat: {'PASS' if ok else 'FAIL'} — {summary['counts'].get('churn_logins', 0)} "
              f"churn logins, {slow} slow consumers dropped, {ghosts} ghosts, "
              f"{tracebacks + internal} crashes/internal errors, RSS {rss[0] / 1024 if rss else 0:.1f}"
              f" → {rss[-1] / 1024 if rss else 0:.1f} MiB")
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    p.add_argument("--readers", type=int, default=8)
    p.add_argument("--churners", type=int, default=4, help="threads connecting and leaving")
    p.add_argument("--stalled", type=int, default=60, help="stalled clients per wave")
    p.add_argument("--wave-seconds", type=float, default=10.0, help="seconds between waves")
    p.add_argument("--flooders", type=int, default=3)
    p.add_argument("--max-output", type=int, default=65536, help="server --max-output")
    p.add_argument("--check-every", type=float, default=60.0, help="seconds between checks")
    p.add_argument("--max-connections", type=int, default=10_000_000,
                   help="stop churning after this many connections")
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--json", help="write the summary here")
    p.add_argument("--log", help="keep the server's log here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.port_override = 0
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
