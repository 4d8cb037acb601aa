"""Helpers shared by the benchmark scripts: measuring a whole child process, machine context.

Benchmarks time *whole commands* (interpreter start, imports, file I/O included), because
that is what a user waits for. This module runs one child and reports its wall time, CPU
time and peak RSS as the kernel accounted them (``wait4``), so several peers measured in
one run are measured the same way. Benchmark code only: never imported by ``src/tcplab``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

TIME_BIN = "/usr/bin/time"


@dataclass(slots=True)
class Measured:
    """One finished child process: how long, how much CPU, how much memory, what it said."""

    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


class CommandFailed(Exception):
    """A measured command exited non-zero or ran past its time limit."""


def run_measured(
    cmd: Sequence[str], *, timeout: float, cwd: str | None = None, env: dict[str, str] | None = None
) -> Measured:
    """Run ``cmd`` to completion and account for exactly that child.

    ``wait4`` gives this child's own CPU time, which ``RUSAGE_CHILDREN`` cannot once
    several children have run. Its peak RSS, though, is not the command's own: Linux
    carries the high-water mark across ``exec``, so a child forked from a large benchmark
    process reports the parent's size. So when ``/usr/bin/time`` is installed the command
    runs under it (a small process forking the real one) and its ``%M`` is used; else
    the ``wait4`` figure, an upper bound. Output goes to temporary files, not pipes, so a
    chatty child can never block on a full pipe while we wait.
    """
    use_time = shutil.which(TIME_BIN) is not None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".time") as rss_file:
        full = [TIME_BIN, "-f", "%M", "-o", rss_file.name, *cmd] if use_time else list(cmd)
        start = time.perf_counter()
        # Its own process group, so a timeout ends the command and not only /usr/bin/time.
        proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=env, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise CommandFailed(f"{' '.join(cmd)}: still running after {timeout:.0f} s")
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss
        if use_time:
            found = re.search(r"(\d+)\s*$", rss_file.read())
            if found:
                maxrss = int(found.group(1))
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, wall, usage.ru_utime, usage.ru_stime, maxrss,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def peak_rss_kb(cmd: Sequence[str], *, timeout: float) -> tuple[int, Measured]:
    """Peak RSS of ``cmd`` in KB (``/usr/bin/time``'s figure when installed), with the run."""
    m = run_measured(cmd, timeout=timeout)
    return m.maxrss_kb, m


def machine_line() -> str:
    """Date, CPU count and load: the context every recorded figure needs beside it."""
    load = os.getloadavg()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now}; {os.cpu_count()} CPUs; load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f}")


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"
