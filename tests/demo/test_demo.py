"""The main job: ``tcplab demo`` runs end to end and writes the report from the packets it made.

As root (CI) the report's numbers are checked against tshark reading the same pcaps,
and the page is rendered in headless Chromium. Without root the live sections must be
replaced by the synthesized captures, with a visible note saying how to get them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.chromium import check_page
from tests.support import require_program, require_root, tshark

REPO = Path(__file__).resolve().parents[2]
SECTIONS = [f"s{i}" for i in range(1, 9)]


def run_demo(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", "demo", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=240, cwd=REPO)


def _frames(pcap: Path, expr: str, field: str = "frame.number") -> list[int]:
    # Two passes, so conversation-wide values (completeness) are final on every packet.
    out = tshark("-2", "-r", str(pcap), "-Y", expr, "-T", "fields", "-e", field)
    return [int(x) for x in out.split()]


def _count(pcap: Path) -> int:
    return len(tshark("-r", str(pcap), "-T", "fields", "-e", "frame.number").split())


def _plain(md_path: Path) -> str:
    """report.md with Markdown's backslash escapes undone, to compare with tshark's text."""
    return re.sub(r"\\([\\`*_{}\[\]<>#|!])", r"\1", md_path.read_text(encoding="utf-8"))


def _section(md: str, sid: str) -> str:
    start = md.index(f'<a id="{sid}"></a>')
    nxt = re.compile(r'<a id="s\d"></a>').search(md, start + 5)
    return md[start: nxt.start() if nxt else len(md)]


def test_demo_without_live_steps(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run_demo(out, "--no-live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "identical to frame 351 of the report" in proc.stdout
    assert f"Report: {out / 'report.html'}" in proc.stdout
    for letter in "ABCDEF":
        assert f"✓ {letter}. " in proc.stdout, f"chat scenario {letter}"
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'<a id="{sid}"></a>' in md and f"<section id='{sid}'>" in page
    # The live sections say what was skipped and how to get them.
    assert "Live injection skipped" in _section(md, "s3") and "sudo make demo" in _section(md, "s3")
    assert "Live replay skipped" in _section(md, "s4")
    assert "Chat capture skipped" in _section(md, "s7")
    assert "class='notice note'>Skipped:" in page
    assert "No GUI screenshots" in _section(md, "s6")
    for name in re.findall(r"\]\((images/[^)]+)\)", md):
        assert (out / name).is_file(), name


def test_demo_never_imports_the_cli(tmp_path: Path) -> None:
    code = ("import sys; from tcplab.demo import run_demo; import io; "
            f"run_demo({str(tmp_path / 'd')!r}, live=False, chat=False, stream=io.StringIO()); "
            "print(sorted(m for m in sys.modules if m.startswith('tcplab.cli')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root()
    out = tmp_path_factory.mktemp("live") / "demo"
    proc = run_demo(out, "--live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "skipped" not in proc.stdout
    return out


def test_live_demo_report_matches_tshark(live_demo: Path) -> None:
    out = live_demo
    md = _plain(out / "report.md")
    pcaps = ["frame351.pcap", "http_seed.pcap", "http_stream.pcapng", "inject_rst.pcap",
             "replay_real_tcp.pcap", "chat.pcap"]
    for name in pcaps:  # every capture reads cleanly in tshark, and the report counts the same
        assert _count(out / name) > 0
        assert f"{name} ({_count(out / name)} packet" in md, name
    for sid in SECTIONS:
        assert f'<a id="{sid}"></a>' in md
    assert "skipped" not in md.lower()

    # §2: frame 351, both checksums as tshark computes them.
    s2 = _section(md, "s2")
    fields = tshark("-r", str(out / "frame351.pcap"), "-T", "fields", "-e", "ip.checksum",
                    "-e", "tcp.checksum", "-e", "ip.checksum.status", "-e", "tcp.checksum.status")
    ip_sum, tcp_sum, ip_ok, tcp_ok = fields.split()
    assert (ip_ok, tcp_ok) == ("2", "2") or (ip_ok, tcp_ok) == ("1", "1")
    assert f"= {ip_sum}, the value in the packet: correct" in s2
    assert f"= {tcp_sum}, the value in the packet: correct" in s2

    # §3: the injection's RSTs and retransmission tags, frame for frame.
    s3 = _section(md, "s3")
    inject = out / "inject_rst.pcap"
    resets = _frames(inject, "tcp.flags.reset == 1")
    retrans = _frames(inject, "tcp.analysis.retransmission")
    data = _frames(inject, "tcp.len > 0")
    assert resets and retrans
    assert f"{len(data)} data segments" in s3 and f"{len(resets)} RSTs" in s3
    shown = ", ".join(map(str, retrans[:8]))
    assert f"Wireshark tags frames {shown}" in s3
    assert f"(frames {', '.join(map(str, resets[:8]))}" in s3
    assert "RFC 9293 §3.10.7.1" in s3
    values = set(_frames(inject, "tcp", "tcp.completeness"))
    for v in values:
        assert f"Conversation completeness {v} decoded" in s3

    # §4: the replay is a complete conversation (31) with no RST of its own. Compared with
    # tshark rather than with fixed numbers: lo is shared, and what else crossed those
    # ports while the capture ran is in the pcap and must be in the report too.
    s4 = _section(md, "s4")
    replay = out / "replay_real_tcp.pcap"
    values = sorted(set(_frames(replay, "tcp", "tcp.completeness")))
    assert 31 in values
    resets = _frames(replay, "tcp.flags.reset == 1")
    streams = len(set(_frames(replay, "tcp", "tcp.stream")))
    assert (f"replay_real_tcp.pcap: {_count(replay)} packets in {streams} conversation"
            f"{'s' if streams != 1 else ''}, {len(resets)} RST") in s4
    for v in values:
        assert f"{v} — " in s4, v
    assert "31 — Complete, WITH_DATA (31): seen SYN, SYN-ACK, ACK, DATA, FIN" in s4

    # §5: one row per capture with tshark's packet and RST counts.
    s5 = _section(md, "s5")
    for name in ("inject_rst.pcap", "replay_real_tcp.pcap", "http_stream.pcapng"):
        row = next(line for line in s5.splitlines() if f"| {name} |" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2]) == _count(out / name)
        assert int(cells[3]) == len(_frames(out / name, "tcp.flags.reset == 1"))
        assert int(cells[4]) == len(_frames(out / name, "tcp.analysis.retransmission"))

    # §7: handshake, the forwarded segment and FIN/RST, with tshark's frame numbers.
    s7 = _section(md, "s7")
    chat = out / "chat.pcap"
    sent, forwarded = _frames(chat, 'tcp.payload contains "how are youuu"')
    stream = _frames(chat, f"frame.number == {sent}", "tcp.stream")[0]
    handshake = _frames(chat, f"tcp.stream == {stream}")[:3]
    syn = _frames(chat, f"tcp.stream == {stream} && tcp.flags.syn == 1 && tcp.flags.ack == 0")
    assert syn == handshake[:1]
    assert f"Frames {', '.join(map(str, handshake))}:" in s7
    assert f"Frame {sent}: Alice's client sends" in s7
    assert f"Frame {forwarded}: the server sends" in s7
    rst = _frames(chat, "tcp.flags.reset == 1")
    assert rst and f"in frame {rst[0]}" in s7
    fins = _frames(chat, "tcp.flags.fin == 1")
    assert any(f"(frame {f})" in s7 for f in fins)
    assert "Timestamps" in s7  # the options of Linux's data segments, explained
    assert "images/chat-relay.svg" in s7 and (out / "images" / "chat-relay.svg").is_file()
    # §8 links back to the sections.
    assert "(#s7-relay)" in _section(md, "s8")


def test_live_demo_page_renders_in_chromium(live_demo: Path, tmp_path: Path) -> None:
    measured = check_page(live_demo / "report.html", tmp_path)
    assert measured["svgs"] >= 5


def test_demo_without_raw_socket_privilege(tmp_path: Path) -> None:
    """Root without CAP_NET_RAW, as an ordinary user is: the report says what to run."""
    import os

    if os.geteuid() != 0:
        cmd = [sys.executable, "-m", "tcplab", "demo", "--out", str(tmp_path / "d"), "--no-chat"]
    else:
        setpriv = require_program("setpriv")
        cmd = [setpriv, "--bounding-set", "-net_raw", sys.executable, "-m", "tcplab", "demo",
               "--out", str(tmp_path / "d"), "--no-chat"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    md = _plain(tmp_path / "d" / "report.md")
    assert "Skipped: live injection and replay on lo: needs root or CAP_NET_RAW" in md
    assert "sudo make demo" in _section(md, "s3") and "The chat part was not run." in md
