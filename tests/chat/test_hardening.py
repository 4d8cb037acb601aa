"""What an attacker or a careless client tries against the server, over real sockets: drop
cascades, look-alike nicknames, control characters in text, huge online lists, the seed's
exact wire text, password guessing and connection floods. Every test ends with the
roster/session/socket consistency check."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time

import pytest

from tcplab.chat.protocol import Limits
from tests.chat.helpers import RawClient, assert_consistent, running_server, wait_until


def drain(client: RawClient, seconds: float = 0.5, keep: bool = False) -> bool:
    """Read whatever is pending (kept in ``client.lines`` with ``keep``); True while the
    connection is still open."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not client._read_more(deadline):
                return False
    except (ConnectionResetError, OSError):
        return False
    if not keep:
        client.lines.clear()
    return True


def read_pending(client: RawClient) -> None:
    """Read and forget everything the kernel holds for ``client`` right now."""
    client.sock.setblocking(False)
    try:
        while client.sock.recv(65536):
            pass
    except BlockingIOError:
        pass
    finally:
        client.sock.settimeout(10)
    client.buf = b""
    client.lines.clear()


# -- 1. a cascade of slow-consumer drops ---------------------------------------------------

def test_cascade_of_drops_is_iterative_and_leaves_no_ghosts():
    """Hundreds of stalled /deltas clients with identical, nearly full queues: dropping one
    sends its "left" notice to the others, which overflows the next one, and so on. The
    server used to recurse through those drops until RecursionError, leaving ghosts."""
    n_stalled = 300
    with running_server(max_output=4096, sndbuf=4096) as server:
        watcher = RawClient(server.address)
        watcher.login("Watcher")
        stalled = []
        for i in range(n_stalled):
            c = RawClient(server.address, rcvbuf=2048)
            c.send("/deltas")
            c.login(f"Stalled{i:03d}")
            stalled.append(c)
        # Empty every queue, so from here on all stalled queues hold the same bytes.
        time.sleep(0.2)
        for c in stalled:
            read_pending(c)
        # Identical broadcasts fill every stalled queue in step past what the kernel takes...
        # (the broadcaster leaves at once, so it is not told about 300 undelivered copies).
        loud = RawClient(server.address)
        loud.login("Loud")
        stalled_ids = server.call_soon_threadsafe(
            lambda: [s.conn for s in server.core.users.values() if s.nick.startswith("Stalled")]
        ).result()

        def lowest_queue() -> int:
            return server.call_soon_threadsafe(lambda: min(
                (server._conns[c].out_len for c in stalled_ids if c in server._conns),
                default=4096)).result()

        for _ in range(40):  # until the kernel buffers are full and the queues ~3/4 full
            loud.send("*: " + "b" * 1000)
            drain(watcher, 0.02)
            if lowest_queue() >= 2500:
                break
        loud.close()
        # ...then churn: every join and leave is one identical notice in every stalled queue.
        churn = 0
        while server.client_count() > 1 + n_stalled // 2 and churn < 3000:
            c = RawClient(server.address)
            c.login(f"Churn{churn}")
            c.close()
            churn += 1
            if churn % 50 == 0:
                drain(watcher, 0.01)  # the watcher reads what it is told (lists, 404s)
        assert wait_until(lambda: server.client_count() <= 1 + n_stalled // 2, 20), \
            "the stalled clients were never dropped"
        # An innocent joiner is served normally, and so is the watcher.
        joiner = RawClient(server.address)
        joiner.login("Joiner")
        watcher.send("Joiner: still here?")
        assert joiner.expect("Watcher:") == "Watcher: still here?"
        alive = [c for c in stalled if drain(c, 0.3)]
        dropped = [f"Stalled{i:03d}" for i, c in enumerate(stalled) if c not in alive]
        assert len(dropped) >= n_stalled // 2
        # No ghost: a dropped name is free again and messages to it are answered with 401.
        watcher.send(f"{dropped[-1]}: are you there?")
        assert watcher.expect("System: 401").endswith("is not connected.")
        again = RawClient(server.address)
        again.login(dropped[0])
        for c in alive:  # the survivors leave too, so the expected roster is exact
            c.close()
        assert wait_until(lambda: server.client_count() == 3)
        assert_consistent(server, ["Watcher", "Joiner", dropped[0]])


def test_a_drop_cascade_through_hundreds_of_full_queues_never_recurses():
    """The deterministic form of the cascade: every stalled queue is topped up to a few
    bytes under the limit (inside the loop, where nothing can flush in between), then one
    of them is dropped. Each "left" notice overflows the next; a recursive drop path needs
    a stack frame chain as long as the cascade and fails long before 400."""
    n = 400
    with running_server(max_output=4096) as server:
        stalled = []
        for i in range(n):
            stalled.append(RawClient(server.address, rcvbuf=2048))
            stalled[-1].send("/deltas")
            stalled[-1].login(f"S{i:03d}")
        keeper = RawClient(server.address)
        keeper.login("Keeper")  # not a /deltas client: told nothing, must stay

        def top_up_and_drop_one() -> int:
            victims = [c for c in server._conns.values()
                       if server.core.sessions[c.cid].nick.startswith("S")]
            for conn in victims:
                pad = server.max_output - 8 - conn.out_len
                if pad > 0:
                    conn.out.append(b"\n" * pad)
                    conn.out_len += pad
            original = server._write
            server._write = lambda conn: None  # the kernel buffers count as full
            try:
                server._drop(victims[0], "test: first of the cascade")
            finally:
                server._write = original
            return len(server._conns)

        left = server.call_soon_threadsafe(top_up_and_drop_one).result(30)
        assert left == 1, f"{left - 1} stalled clients survived the cascade"
        keeper.send("/users")
        keeper.expect_list(["Keeper"])
        assert_consistent(server, ["Keeper"])


def test_drop_during_shutdown_and_after_an_internal_error_leaves_no_ghost():
    with running_server() as server:
        real_receive = server.core.receive

        def receive(conn, data, now):
            out = real_receive(conn, data, now)
            if b"BOOM" in data:
                raise RuntimeError("simulated bug after the core changed state")
            return out

        server.core.receive = receive  # type: ignore[method-assign]
        victim = RawClient(server.address)
        victim.send("Victim\nBOOM: x")
        assert victim.wait_closed() in ("fin", "rst")
        other = RawClient(server.address)
        other.login("Victim")  # the name was freed with its socket
        assert_consistent(server, ["Victim"])


# -- 2. nicknames that impersonate ---------------------------------------------------------

HOSTILE = [
    "System\u200d", "Sys\u200btem", "\u2060System", "System\ufeff", "Sys\u00adtem", "Sys\u034ftem",
    "Alice\u200b", "Alice\u200c", "Alice\u2063", "\u3164", "\u2800", "\u115f\u1160", "\uffa0",
    "Alice\ufe0f", "Alice\U000e0041", "Al\u202eecilA", "Alice\u2066",
    "System\ua789 Server is shutting down", "Alice\u201a Bob", "\uff0a Alice", "\u2217 Alice",
    "Alice\ufe55 hi", "Alice\uff1a hi", "Alice\u02d0 hi", "Alice\u0589 hi", "Alice\u05c3 hi",
    "Alice\u2236 hi", "Alice\uff0c Bob", "Alice\u060c Bob", "\ufe61Alice", "\u2731 Alice",
    "ALICE", "Ａｌｉｃｅ", "Alіce", "Аlice", "AIice", "ΑLICE", "𝐀𝐥𝐢𝐜𝐞", "alice ", " alice",
    "Ѕystem", "SYST\u0395M", "ＳＹＳＴＥＭ", "Ｏnline_users", "everyone\u200b", "ROOT",
    "*Alice", "/Alice", "\u0301Alice", "...", "\U0001f600", "\u00a0Alice", "Alice\u3000Bob",
    "Alice\x07", "Alice\x1b[31m", "Alice\u2028", "Alice\ue000", "Alice\U0010fffd",
]


def test_hostile_nicknames_are_refused_and_honest_ones_still_work():
    assert len(HOSTILE) >= 40
    with running_server() as server:
        alice = RawClient(server.address)
        alice.login("Alice")
        c = RawClient(server.address)
        for name in HOSTILE:
            c.send(name)
            reply = c.expect("System:")
            # 432 invalid, 433 the look-alike of a name online; "/..." is a command (421).
            assert reply.startswith(("System: 432 ", "System: 433 ", "System: 421 ")), (name, reply)
        honest = []
        for name in ["Britney Spears", "דני כהן", "Dana 😀", "🎉 party 2026", "Zoë", "Ünal",
                     "Иван", "Σοφία", "李小龍", "O'Brien-Smith"]:
            honest.append(RawClient(server.address))
            honest[-1].login(name)
        alice.send("Dana 😀: hi")
        assert_consistent(server, ["Alice", "Britney Spears", "דני כהן", "Dana 😀",
                                   "🎉 party 2026", "Zoë", "Ünal", "Иван", "Σοφία", "李小龍",
                                   "O'Brien-Smith"])


def test_look_alike_of_an_online_user_is_taken_not_a_second_user():
    with running_server() as server:
        alice = RawClient(server.address)
        alice.login("Alice")
        mallory = RawClient(server.address)
        for name in ["ALICE", "Ａｌｉｃｅ", "AIice", "𝐀𝐥𝐢𝐜𝐞"]:
            mallory.send(name)
            assert mallory.expect("System:").startswith("System: 433 "), name
        mallory.login("Mallory")
        # A message addressed to a look-alike reaches the one user who looks like that.
        mallory.send("ALICE: hello")
        assert alice.expect("Mallory:") == "Mallory: hello"
        assert_consistent(server, ["Alice", "Mallory"])


# -- 3. control characters in relayed text -------------------------------------------------

def test_control_characters_and_bidi_overrides_never_reach_recipients():
    with running_server() as server:
        alice, bob, carol = (RawClient(server.address) for _ in range(3))
        for c, n in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
            c.login(n)
        r = "\ufffd"
        cases = [
            (b"innocent\rSystem: 550 Server is shutting down.",
             f"innocent{r}System: 550 Server is shutting down."),
            (b"nul\x00 bel\x07 del\x7f", f"nul{r} bel{r} del{r}"),
            # escape sequences go whole, as the tcplab client removes them: no "[2J" residue
            (b"esc\x1b[2J osc\x1b]0;owned\x07 csi\xc2\x9b31m.", "esc osc csi."),
            ("nel\u0085 ls\u2028 ps\u2029".encode(), f"nel{r} ls{r} ps{r}"),
            ("rlo\u202egnp.exe lri\u2066x\u2069".encode(), f"rlo{r}gnp.exe lri{r}x{r}"),
            ("tab\tstays שלום 😀 lrm\u200estays".encode(), "tab\tstays שלום 😀 lrm\u200estays"),
        ]
        for raw, shown in cases:
            alice.send(b"Bob: " + raw + b"\n")
            assert bob.expect("Alice:") == "Alice: " + shown
            alice.send(b"*: " + raw + b"\n")
            assert carol.expect("* Alice:") == "* Alice: " + shown
        # Nothing else slipped through: every line Bob got is one of ours.
        allowed = {"* Alice: " + shown for _, shown in cases}
        assert not [ln for ln in bob.quiet_for(0.2)
                    if not ln.startswith("ONLINE_USERS:") and ln not in allowed]
        assert_consistent(server, ["Alice", "Bob", "Carol"])


# -- 4. online lists bigger than the output limit ------------------------------------------

def test_users_twice_in_one_write_with_a_list_larger_than_max_output():
    with running_server(max_output=4096) as server:
        names = [f"{i:03d}" + "😀" * 29 for i in range(200)]  # 32 characters, 119 bytes
        clients = []
        for name in names:
            c = RawClient(server.address)
            c.send("/deltas")  # one list each, then small notices
            c.login(name)
            clients.append(c)
        reader = RawClient(server.address)
        reader.login("Reader")
        want = "ONLINE_USERS:" + ",".join(names + ["Reader"])
        assert len(want.encode()) > 3 * 4096
        reader.expect(lambda ln: ln == want)
        reader.send(b"/users\n/users\n/users\n")
        for _ in range(2):  # the first, then one more (the third is coalesced into it)
            reader.expect(lambda ln: ln == want)
        names[0:0] = []
        clients[0].send("Reader: still connected?")
        assert reader.expect(names[0] + ":").endswith("still connected?")
        assert_consistent(server, names + ["Reader"])


def test_a_stalled_client_is_still_dropped_behind_a_big_list():
    with running_server(max_output=4096, sndbuf=4096) as server:
        names = [f"{i:03d}" + "x" * 29 for i in range(300)]
        crowd = []
        for name in names:
            crowd.append(RawClient(server.address))
            crowd[-1].send("/deltas")
            crowd[-1].login(name)
        stalled = RawClient(server.address, rcvbuf=2048)
        stalled.login("Stalled")
        sender = RawClient(server.address)
        sender.login("Sender")
        time.sleep(0.3)  # the stalled client's list goes out (into its queue) first
        for i in range(2000):
            sender.send(f"Stalled: {i} " + "y" * 200)
            if i % 20 == 0:
                drain(sender, 0.01, keep=True)  # the sender reads, so only Stalled lags
                if server.client_count() == len(names) + 1:
                    break
        assert wait_until(lambda: server.client_count() == len(names) + 1)
        assert sender.expect("System: 404").endswith("not delivered: Stalled was disconnected.")
        assert_consistent(server, names + ["Sender"])


# -- 5. the seed's wire text ---------------------------------------------------------------

def seed_client(address: tuple, nick: str, typed: list[str]) -> list[str]:
    """A client as SEED.md describes the report's: it asks for a nickname, a background
    thread prints every ``recv`` as it comes (one recv per message), and the main thread
    checks the format (a colon) before sending — printing the report's ``Invalid format!``
    line itself, as the transcript shows, without sending anything."""
    shown: list[str] = []
    sock = socket.create_connection(address[:2], timeout=10)

    def start_receiving() -> None:
        while True:
            try:
                data = sock.recv(1024)
            except OSError:
                return
            if not data:
                return
            shown.append(data.decode("utf-8", "replace"))

    shown.append("Connected! Usage: 'TargetName: Your Message'\nType 'exit' to quit.\n")
    sock.sendall(nick.encode() + b"\n")
    receiver = threading.Thread(target=start_receiving, daemon=True)
    receiver.start()
    time.sleep(0.3)
    for line in typed:
        if ":" not in line:
            shown.append("Invalid format! Use: TargetName: Message\n")
            continue
        sock.sendall(line.encode() + b"\n")
        time.sleep(0.3)
    sock.close()
    receiver.join(5)
    return [ln for chunk in shown for ln in chunk.splitlines() if ln]


def test_a_minimal_seed_client_shows_the_transcript_of_scenario_d_verbatim():
    with running_server() as server:
        others = [RawClient(server.address, codes=False) for _ in range(2)]
        for c, name in zip(others, ["Britney Spears", "Paris Hilton"], strict=True):
            c.login(name)
        shown = seed_client(server.address, "NoGui_User", ["", "Britney Spears:", ":Hello!"])
        assert wait_until(lambda: server.client_count() == 2)
        transcript = [
            "Connected! Usage: 'TargetName: Your Message'",
            "Type 'exit' to quit.",
            "ONLINE_USERS:Britney Spears,Paris Hilton,NoGui_User",
            "Invalid format! Use: TargetName: Message",
            "System: Name or message cannot be empty.",
            "System: Name or message cannot be empty.",
        ]
        it = iter(shown)
        assert all(any(line == want for line in it) for want in transcript), shown
        assert not [ln for ln in shown if ln.startswith("System:") and ln[8:11].isdigit()]
        assert_consistent(server, ["Britney Spears", "Paris Hilton"])


def test_uncoded_by_default_coded_on_request():
    with running_server() as server:
        plain = RawClient(server.address, codes=False)
        plain.login("Plain")
        plain.send("hello")
        assert plain.expect("System:") == "System: Invalid format! Use: TargetName: Message"
        plain.send("Ghost: hi")
        assert plain.expect("System:") == "System: User 'Ghost' is not connected."
        plain.send("/codes on")
        assert plain.expect("System:") == "System: 204 Numeric codes on."
        plain.send("Ghost: hi")
        assert plain.expect("System:") == "System: 401 User 'Ghost' is not connected."
        plain.send("/codes off")
        assert plain.expect("System:") == "System: Numeric codes off."
        plain.send(":x")
        assert plain.expect("System:") == "System: Name or message cannot be empty."
        assert_consistent(server, ["Plain"])


# -- 6. password guessing and connection floods --------------------------------------------

def test_wrong_passwords_are_throttled_per_address_without_stalling_others(caplog):
    caplog.set_level(logging.INFO, logger="tcplab.chat.server")
    with running_server(limits=Limits(rate=0, password="s3cret")) as server:
        a, b = RawClient(server.address), RawClient(server.address)
        for c, n in ((a, "Alice"), (b, "Bob")):
            c.send("/pass s3cret")
            c.expect("System: 003")
            c.login(n)
        timings = []
        for _ in range(5):
            guess = RawClient(server.address)
            t0 = time.monotonic()
            guess.send("/pass guess")
            assert guess.expect("System: 464", timeout=15) == "System: 464 Wrong password."
            timings.append(time.monotonic() - t0)
            # While guesses wait their turn, everyone else is served at full speed.
            t1 = time.monotonic()
            a.send("Bob: ping")
            b.expect("Alice: ping")
            assert time.monotonic() - t1 < 0.5
        assert max(timings[:3]) < 0.5, timings  # typos are answered at once
        assert timings[3] >= 0.9 and timings[4] >= 1.9, timings  # then 1 s, 2 s, ...
        # The right password from the throttled address waits its turn too, and what the
        # client sent behind it (its nickname) is processed in order afterwards.
        late = RawClient(server.address)
        t0 = time.monotonic()
        late.send(b"/pass s3cret\nCarol\n")
        late.expect("System: 003", timeout=15)
        late.expect("System: 001 Welcome, Carol!")
        assert time.monotonic() - t0 >= 3.0
        assert_consistent(server, ["Alice", "Bob", "Carol"])
    assert "password_failed" in caplog.text and "password_delayed" in caplog.text
    assert "guess" not in caplog.text and "s3cret" not in caplog.text


def test_per_address_connection_limit(caplog):
    caplog.set_level(logging.INFO, logger="tcplab.chat.server")
    with running_server(max_per_address=3) as server:
        keep = [RawClient(server.address) for _ in range(3)]
        keep[0].login("Alice")
        for _ in range(5):
            extra = RawClient(server.address, codes=False)
            assert extra.expect("System:") == (
                "System: Too many connections from your address (3); try later.")
            assert extra.wait_closed() in ("fin", "rst")
        assert server.connections_from("127.0.0.1") == 3
        keep[1].close()
        assert wait_until(lambda: server.connections_from("127.0.0.1") == 2)
        late = RawClient(server.address)
        late.login("Late")
        keep[2].close()  # room for the consistency probe
        assert wait_until(lambda: server.connections_from("127.0.0.1") == 2)
        assert_consistent(server, ["Alice", "Late"])
    refusals = [r for r in caplog.messages if r.startswith("refused ")]
    assert refusals and "too many connections from this address" in refusals[0]
    assert len(refusals) == 1  # the other four are counted, not logged one by one


@pytest.mark.parametrize("host, key", [
    ("127.0.0.1", "127.0.0.1"), ("::ffff:10.1.2.3", "10.1.2.3"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("fe80::1%lo", "fe80::/64"),
])
def test_address_key_counts_ipv6_per_64(host, key):
    from tcplab.chat.server import address_key

    assert address_key(host) == key


def test_ten_thousand_users_with_32_character_emoji_names_never_drop_a_reader():
    """The issue's own numbers over real sockets, at the default --max-clients and
    --max-output: 10,000 users whose 32-character names include 4-byte emoji (a 1 MB list,
    3.9 × the 256 KiB output limit). A reader that reads at a normal pace, asks /users twice
    in one write and gets messages meanwhile is never dropped and sees every list whole.

    The other 9,998 users are cheap on purpose: each first sends a few long unknown
    commands whose answers it never reads, so its queue never drains and the server never
    sends it a list (a list per filler would be 12 GB of traffic, which is what the
    coalescing is for). They still are real logged-in connections in the roster."""
    import resource
    import signal

    from tests.chat.test_server import start_cli_server

    n = 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        if hard != resource.RLIM_INFINITY and hard < n + 200:
            pytest.skip(f"file descriptor limit {hard} is too low for {n} clients")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 200, hard))
    proc, port = start_cli_server("--rate", "0", "--max-per-address", "0", "--sndbuf", "4096",
                                  "--login-timeout", "0", "--idle-timeout", "0", "-q")
    fillers: list[socket.socket] = []
    try:
        names = [f"{i:04d}" + ("😀" * 28 if i % 3 else "🎉" * 14 + "Emoji Name abc") for i in range(n - 2)]
        assert all(len(nm) == 32 for nm in names)
        unread = b"".join(b"/" + b"q" * 4000 + b"\n" for _ in range(6))
        for name in names:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.connect(("127.0.0.1", port))
            s.sendall(unread + name.encode() + b"\n")
            fillers.append(s)
        reader = RawClient(("127.0.0.1", port), timeout=60)
        want = set(names) | {"Reader"}

        def read_list(deadline: float) -> set[str]:
            """Read at a normal pace (64 KiB every 10 ms) until a whole list is in."""
            sock = reader.sock
            while time.monotonic() < deadline:
                for i, line in enumerate(reader.lines):
                    if line.startswith("ONLINE_USERS:"):
                        del reader.lines[i]  # other lines stay for expect()
                        return set(line[13:].split(","))
                sock.settimeout(1.0)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                assert chunk, "the reader was disconnected"
                *done, reader.buf = (reader.buf + chunk).split(b"\n")
                reader.lines += [ln.decode() for ln in done]
                time.sleep(0.01)
            raise AssertionError("no complete list")

        reader.send("Reader")
        reader.expect("System: 001 ")
        # The list of the newcomer is big: it comes after the welcome, when due.
        deadline = time.monotonic() + 120
        while read_list(deadline) != want:
            pass  # earlier lists of a roster still filling up
        assert len(("ONLINE_USERS:" + ",".join(want)).encode()) > 3.9 * 256 * 1024
        talker = RawClient(("127.0.0.1", port))
        talker.login("Talker")
        want.add("Talker")
        reader.send(b"/users\n/users\n")
        talker.send(b"".join(b"Reader: %d %s\n" % (i, b"m" * 500) for i in range(200)))
        got = [read_list(time.monotonic() + 60) for _ in range(2)]
        assert all(g == want for g in got[-1:]), "the last list is not current"
        for i in range(200):
            assert reader.expect("Talker:") == f"Talker: {i} " + "m" * 500
        reader.send("/ping")
        assert reader.expect("System: 002 ") == "System: 002 Pong."
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for s in fillers:
            s.close()
