"""Where ``tcplab encap`` writes: a regular file through a temporary name, anything else in place.

Renaming the finished file over the requested name is what keeps a failed run from leaving
half a capture behind; renamed over a FIFO or a device it would replace that with a regular
file — ``-o /dev/null`` run as root would break /dev/null for the whole machine.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tcplab.cli import main
from tcplab.pcap import open_capture

CSV = "src_app,dst_app,message\nbrowser,server,GET / HTTP/1.1\nserver,browser,hello\n"


@pytest.fixture()
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def _packets(path: Path) -> int:
    with open_capture(str(path)) as reader:
        return sum(1 for _ in reader)


def test_a_fifo_stays_a_fifo_and_its_reader_gets_the_capture(tmp_path: Path, csv_file: Path) -> None:
    fifo = tmp_path / "out.pcap"
    os.mkfifo(fifo)
    received = tmp_path / "received.pcap"

    def read() -> None:
        with open(fifo, "rb") as src, open(received, "wb") as dst:
            dst.write(src.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert main(["encap", str(csv_file), "-o", str(fifo), "-q"]) == 0
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _packets(received) == 2 + 6  # two messages, the handshake, the last ACK, the FIN teardown
    assert not (tmp_path / "out.pcap.part").exists()


def test_a_symlink_keeps_pointing_at_its_target_which_gets_the_capture(
        tmp_path: Path, csv_file: Path) -> None:
    target = tmp_path / "real.pcap"
    target.write_bytes(b"old")
    link = tmp_path / "link.pcap"
    link.symlink_to(target)
    assert main(["encap", str(csv_file), "-o", str(link), "-q"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _packets(target) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "link.pcap", "real.pcap"]


def test_a_character_device_stays_a_device(tmp_path: Path, csv_file: Path) -> None:
    """A private copy of /dev/null (major 1, minor 3), never the machine's own."""
    if os.geteuid() != 0:
        pytest.skip("making a device node (mknod) needs root")
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert main(["encap", str(csv_file), "-o", str(device), "-q"]) == 0
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "null"]


def test_a_regular_file_is_replaced_whole(tmp_path: Path, csv_file: Path) -> None:
    out = tmp_path / "out.pcap"
    out.write_bytes(b"not a capture")
    assert main(["encap", str(csv_file), "-o", str(out), "-q"]) == 0
    assert _packets(out) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.pcap"]
