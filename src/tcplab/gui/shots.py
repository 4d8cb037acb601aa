"""Screenshots of the real windows: a private Xvfb, a Tk driving loop, ImageMagick's ``import``.

Shared by ``scripts/screenshots.py`` (the pictures in docs/images/) and ``tcplab demo
--gui`` (the pictures in the report), so both drive the windows the same way and say the
same thing when something they need is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tcplab.errors import EnvironmentProblem


def import_problem() -> str:
    """Why ImageMagick's ``import`` cannot grab windows here ("" when it can).

    Another program may sit on PATH under that name, so it is asked for its version.
    """
    exe = shutil.which("import")
    if exe is None:
        return "ImageMagick's 'import' is missing (sudo apt-get install imagemagick)"
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ImageMagick's 'import' does not run ({exc})"
    if "ImageMagick" not in proc.stdout:
        return f"{exe} is not ImageMagick's 'import' (sudo apt-get install imagemagick)"
    return ""


def shots_problem() -> str:
    """Why no screenshots can be taken here ("" when they can): Tk, a display, ``import``."""
    if importlib.util.find_spec("tkinter") is None:
        return "Tk for Python is missing (sudo apt-get install python3-tk)"
    if not os.environ.get("DISPLAY") and shutil.which("Xvfb") is None:
        return "no display (DISPLAY is not set) and Xvfb is not installed (sudo apt-get install xvfb)"
    return import_problem()


def start_xvfb(screen: str = "1600x1200x24", *, dpi: int | None = 96,
               noreset: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb on a free display (``-displayfd`` picks and reports it), not listening on TCP.

    ``dpi`` fixes the resolution the pictures are drawn at (None: Xvfb's own); ``noreset``
    keeps the server's state when its last client closes (a test session's windows come
    and go)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise EnvironmentProblem("Xvfb is not installed (sudo apt-get install xvfb)")
    r, w = os.pipe()
    argv = [exe, "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp"]
    if dpi is not None:
        argv += ["-dpi", str(dpi)]
    if noreset:
        argv.append("-noreset")
    proc = subprocess.Popen(argv, pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    data = b""
    deadline = time.monotonic() + 20
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([r], [], [], 0.5)[0]:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
    os.close(r)
    if not data.strip().isdigit():
        stop_xvfb(proc)
        raise EnvironmentProblem("Xvfb did not start (it reported no display number)")
    return proc, f":{data.strip().decode()}"


def stop_xvfb(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def display(use: str | None = None) -> Iterator[str]:
    """DISPLAY for the body: ``use``, else the one already set, else a private Xvfb (stopped after)."""
    old = os.environ.get("DISPLAY")
    xvfb = None
    if use:
        shown = use
    elif old:
        shown = old
    else:
        xvfb, shown = start_xvfb()
    os.environ["DISPLAY"] = shown
    try:
        yield shown
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        if xvfb is not None:
            stop_xvfb(xvfb)


class Driver:
    """Runs Tk's loop for a scripted session and grabs windows as PNG files."""

    def __init__(self, root: Any, out: Path, *, say: Callable[[str], None] = print) -> None:
        self.root = root
        self.out = out
        self.say = say
        out.mkdir(parents=True, exist_ok=True)

    def wait(self, cond: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"screenshots: timed out waiting for {what or cond}")
            self.root.update()
            time.sleep(0.01)

    def settle(self, seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.root.update()
            time.sleep(0.01)

    def grab(self, top: Any, name: str) -> Path:
        """``top``'s window, frame included, as ``out/name``."""
        top.lift()
        self.settle(0.5)
        path = self.out / name
        proc = subprocess.run(["import", "-window", top.wm_frame(), str(path)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not path.is_file():
            raise EnvironmentProblem(f"import could not grab {name}: {proc.stderr.strip()}")
        self.say(f"wrote {path}")
        return path

    def login(self, port: int, nick: str, geometry: str) -> Any:
        """A client window for ``nick`` on 127.0.0.1:``port``, logged in and showing its users."""
        import tkinter as tk

        from tcplab.gui.client import ClientWindow

        top = tk.Toplevel(self.root)
        top.geometry(geometry)
        win = ClientWindow(top, host="127.0.0.1", port=port, nick=nick, remember=False)
        win.enter_button.invoke()
        self.wait(lambda: win.model is not None and win.model.users, what=f"{nick} logged in")
        return win

    def say_in(self, win: Any, target: str, text: str) -> None:
        """Type ``text`` into ``win``'s conversation with ``target`` and press Return."""
        win.open_conversation(target)
        win.entry.focus_force()
        win.entry.delete(0, "end")
        win.entry.insert(0, text)
        win.entry.event_generate("<Return>")
        self.settle(0.15)
        if win.entry.get():
            raise EnvironmentProblem(f"screenshots: the message to {target} was not sent")


def run_session(out: Path, session: Callable[[Driver], object], *,
                say: Callable[[str], None] = print) -> object:
    """Open Tk on the current display, run ``session`` with a :class:`Driver`, free Tk after.

    Tk must be freed on this thread (see :func:`tcplab.gui.tkcommon.release_tk`), so the
    session's windows are closed by ``session`` and the root is released here.
    """
    from tcplab.gui.tkcommon import new_root, release_tk

    holder = [new_root()]
    holder[0].withdraw()
    config = out / ".config-tmp"  # remembered settings must not leak from or into the user's
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(config.resolve())
    driver = Driver(holder[0], out, say=say)
    try:
        return session(driver)
    finally:
        del driver
        release_tk(holder)
        shutil.rmtree(config, ignore_errors=True)
        if old is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old
