"""Live capture on lo: against dumpcap, stop conditions, SIGTERM, and clear privilege errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from tcplab.wire import capture
from tests.support import require_program, require_root, tshark
from tests.wire.helpers import (
    TIMEOUT,
    frames,
    free_ports,
    run_tcplab,
    start_capture,
    tcp_exchange,
    udp_burst,
    wait_for_line,
)


def test_same_frames_as_dumpcap_capturing_at_the_same_time(tmp_path) -> None:
    require_root()
    dumpcap = require_program("dumpcap")
    (port,) = free_ports(1)
    ours_path, theirs_path = str(tmp_path / "ours.pcap"), str(tmp_path / "theirs.pcapng")
    theirs = subprocess.Popen([dumpcap, "-i", "lo", "-f", f"port {port}", "-w", theirs_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(theirs, "Capturing on")
        ours = start_capture("-q", "-o", ours_path, "port", str(port))
        try:
            time.sleep(0.2)  # dumpcap announces itself just before its socket is live
            udp_burst(port, 40)
            tcp_exchange(port, [b"GET / HTTP/1.1\r\n\r\n", b"x" * 3000, b"bye"])
            udp_burst(port, 10, b"after")
            time.sleep(0.5)
        finally:
            ours.send_signal(signal.SIGINT)
            ours_out, ours_err = ours.communicate(timeout=TIMEOUT)
    finally:
        theirs.send_signal(signal.SIGINT)
        theirs.communicate(timeout=TIMEOUT)
    assert ours.returncode == 0, ours_err
    assert "0 packets dropped by kernel" in ours_err
    mine, reference = frames(ours_path), frames(theirs_path)
    assert len(reference) >= 50 + 10, "dumpcap saw too little traffic for a meaningful comparison"
    # dumpcap announces itself a moment before its socket is live; on a loaded machine it
    # may miss the first datagrams. Compare from its first frame on: same bytes, same order.
    assert reference[0] in mine
    skipped = mine.index(reference[0])
    assert skipped <= 40, "dumpcap started far too late for a comparison"
    assert mine[skipped:] == reference


def test_loopback_frames_are_kept_once_and_count_stops(tmp_path) -> None:
    require_root()
    (port,) = free_ports(1)
    path = str(tmp_path / "count.pcap")
    ready = threading.Event()
    result: dict[str, capture.CaptureSummary] = {}

    def run() -> None:
        result["summary"] = capture.run_capture(
            "lo", path, expression=f"udp port {port}", count=25, on_ready=lambda _s: ready.set()
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    udp_burst(port, 20)
    time.sleep(0.2)
    summary_so_far_frames = None
    udp_burst(port, 20)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    summary = result["summary"]
    assert summary.packets == 25 and summary.stop_reason == "--count 25"
    got = frames(path)
    assert len(got) == 25
    # Each datagram once: the first 20 distinct payload counters, then 5 of the second burst.
    counters = [frame[-4:] for frame in got]
    assert len(set(counters[:20])) == 20, summary_so_far_frames


def test_duration_stops_an_idle_capture(tmp_path) -> None:
    require_root()
    (port,) = free_ports(1)
    started = time.monotonic()
    summary = capture.run_capture("lo", str(tmp_path / "idle.pcap"), expression=f"udp port {port}",
                                  duration=0.5)
    elapsed = time.monotonic() - started
    assert summary.packets == 0 and summary.stop_reason == "--duration"
    assert 0.4 < elapsed < 5
    assert frames(str(tmp_path / "idle.pcap")) == []


def test_sigterm_mid_burst_leaves_a_valid_file(tmp_path) -> None:
    require_root()
    require_program("tshark")
    (port,) = free_ports(1)
    path = str(tmp_path / "term.pcapng")
    proc = start_capture("-o", path, "udp", "port", str(port))
    stop_sending = threading.Event()

    def flood() -> None:
        while not stop_sending.is_set():
            udp_burst(port, 200, b"\x00" * 200)

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        stop_sending.set()
        sender.join(TIMEOUT)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err
    assert "packets dropped by kernel" in err
    assert out.count("UDP") > 10, "live packet lines are printed"
    text = tshark("-r", path, "-T", "fields", "-e", "frame.number")
    assert len(text.split()) > 10


def _unprivileged(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child that drops to nobody (uid/gid 65534) after importing tcplab.

    Arguments are parsed and modules imported first, as root, because the interpreter's
    own files may not be readable by nobody; dropping every uid to non-zero also clears
    all capabilities. Errors are reported as ``tcplab.cli.main`` reports them.
    """
    code = (
        "import os, sys\n"
        "import tcplab.cli, tcplab.wire.capture, tcplab.wire.inject, tcplab.wire.rawsock\n"
        "import tcplab.encap, tcplab.pcap, tcplab.wire.lines, tcplab.analyze\n"
        "from tcplab.errors import TcplabError\n"
        f"args = tcplab.cli.build_parser().parse_args({argv!r})\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    sys.exit(args.handler(args))\n"
        "except TcplabError as exc:\n"
        "    print(f'tcplab: error: {exc}', file=sys.stderr)\n"
        "    sys.exit(exc.exit_code)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd="/")


def test_capture_without_privilege_names_the_capability() -> None:
    require_root()  # only root can drop to another user
    proc = _unprivileged(["capture", "-c", "1", "--duration", "1"])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert err.startswith("tcplab: error: ")
    assert "CAP_NET_RAW" in err and "sudo" in err and "setcap cap_net_raw+ep" in err
    assert "Traceback" not in err


def test_inject_without_privilege_names_the_capability() -> None:
    require_root()
    # pytest's tmp_path is private to root; nobody must be able to read this CSV.
    with tempfile.TemporaryDirectory(prefix="tcplab-wire-") as folder:
        os.chmod(folder, 0o755)
        csv_path = os.path.join(folder, "one.csv")
        with open(csv_path, "w", encoding="utf-8") as fh:
            fh.write("msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                     "1,HTTP,client_browser,web_server,GET /blog HTTP/1.1,0.0\n")
        os.chmod(csv_path, 0o644)
        proc = _unprivileged(["inject", csv_path, "--no-watch"])
    assert proc.returncode == 2, proc.stderr
    assert "CAP_NET_RAW" in proc.stderr and "setcap cap_net_raw+ep" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_af_packet_points_to_wireshark_and_analyze() -> None:
    code = (
        "import socket, sys\n"
        "del socket.AF_PACKET\n"
        "import tcplab.cli\n"
        "sys.exit(tcplab.cli.main(['capture', '-c', '1']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "AF_PACKET" in proc.stderr
    assert "Wireshark" in proc.stderr and "tcpdump" in proc.stderr
    assert "tcplab analyze" in proc.stderr


def test_unknown_interface_and_bad_filter_are_input_errors() -> None:
    require_root()
    proc = run_tcplab("capture", "-i", "nosuchif0", "-c", "1")
    assert proc.returncode == 1
    assert "no network interface named 'nosuchif0'" in proc.stderr and "lo" in proc.stderr
    proc = run_tcplab("capture", "-c", "1", "tcp", "port", "99999")
    assert proc.returncode == 1
    assert "'99999' is not a port number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_show_filter_prints_the_program_without_privilege() -> None:
    proc = run_tcplab("capture", "-d", "--port", "5074")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "(000) ldh      [12]"
    assert "ret      #262144" in proc.stdout


@pytest.mark.parametrize("count", [1, 3])
def test_summary_reports_kernel_counters(tmp_path, count: int) -> None:
    require_root()
    (port,) = free_ports(1)
    proc = start_capture("-q", "-c", str(count), "-o", str(tmp_path / "c.pcap"),
                         "--port", str(port), "--proto", "udp")
    udp_burst(port, count)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert f"{count} packets captured on lo" in err
    assert "packets received by filter" in err and "0 packets dropped by kernel" in err
    assert out == ""


@pytest.mark.parametrize("ring", [True, False])
def test_ring_and_recvmsg_paths_read_the_same_frames(ring: bool) -> None:
    require_root()
    (port,) = free_ports(1)
    with capture.PacketSocket("lo", f"udp dst port {port}", ring=ring) as psock:
        assert psock.mode == ("ring" if ring else "recvmsg")
        udp_burst(port, 300, b"r" * 4000)  # 1.2 MB: crosses ring block boundaries
        got: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < 300 and time.monotonic() < deadline:
            batch = [data for _ts, data, length in psock.read(64) if length == len(data)]
            got.extend(batch)
            if not batch:
                psock.wait(0.1)
        assert psock.statistics() == (300, 0)
    assert len(got) == 300
    assert [frame[-4:] for frame in got] == [i.to_bytes(4, "big") for i in range(300)]


def test_background_capture_hands_errors_to_the_caller() -> None:
    require_root()
    from tcplab.errors import InputError

    with pytest.raises(InputError, match="no network interface named 'nosuchif1'"):
        capture.BackgroundCapture("nosuchif1").start()


def test_background_capture_writes_what_happened_around_the_work(tmp_path) -> None:
    require_root()
    (port,) = free_ports(1)
    path = str(tmp_path / "around.pcap")
    background = capture.BackgroundCapture("lo", path, expression=f"udp dst port {port}").start()
    udp_burst(port, 7)
    summary = background.stop(grace=0.2)
    assert summary.packets == 7 and len(frames(path)) == 7


def test_list_interfaces_names_lo() -> None:
    proc = run_tcplab("capture", "-D")
    assert proc.returncode == 0
    assert any(line.endswith(". lo") for line in proc.stdout.splitlines())
