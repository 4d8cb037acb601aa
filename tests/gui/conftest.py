"""Fixtures for the GUI tests: our own Xvfb on a free display, a Tk root, a wait loop.

The display is started here (``Xvfb -displayfd`` picks a free display number and tells
it), never a system one; without Xvfb or tkinter the GUI tests skip with the reason,
and in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support import IN_CI

try:
    import tkinter  # noqa: F401

    HAVE_TK = True
except ImportError:  # python3-tk missing: the window tests cannot even be imported
    HAVE_TK = False
    if not IN_CI:  # in CI they are collected and fail, so the gap is never silent
        collect_ignore = ["test_client_gui.py", "test_server_gui.py", "helpers.py"]


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    """An Xvfb display of our own for the whole session (one per xdist worker)."""
    try:
        import tkinter  # noqa: F401
    except ImportError:
        _missing("tkinter is not installed (apt-get install python3-tk)")
    from tcplab.errors import EnvironmentProblem
    from tcplab.gui import shots

    if shutil.which("Xvfb") is None:
        _missing("Xvfb is not installed (apt-get install xvfb)")
    try:
        proc, display = shots.start_xvfb("1280x1024x24", dpi=None, noreset=True)
    except EnvironmentProblem as exc:
        pytest.fail(str(exc))
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        shots.stop_xvfb(proc)


@pytest.fixture
def gui_env(xdisplay: str, tmp_path, monkeypatch) -> str:
    """A display plus a private config dir (remembered host/port must not leak)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return xdisplay


@pytest.fixture
def root(gui_env: str) -> Iterator:
    from tcplab.gui.tkcommon import new_root

    r = new_root()
    r.withdraw()
    try:
        yield r
    finally:
        try:
            r.update()
            r.destroy()
        except Exception:
            pass
        del r
        # Tk widgets form reference cycles, so the interpreter is freed by the cyclic GC —
        # which must run here, on the Tk thread: freed on a client or server thread, Tcl
        # aborts the process ("Tcl_AsyncDelete: async handler deleted by the wrong thread").
        gc.collect()
