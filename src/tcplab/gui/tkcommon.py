"""What both Tk windows share: opening Tk with a clear error, fonts, theme, small widgets.

Only view plumbing lives here; what the windows show is decided in :mod:`tcplab.gui.model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tcplab.errors import EnvironmentProblem

try:
    import tkinter as tk
    import tkinter.font as tkfont
    from tkinter import ttk
except ImportError:  # pragma: no cover - depends on the system's Python build
    tk = None  # type: ignore[assignment]

#: Emoji font families tried in order (Debian: fonts-noto-color-emoji). Without one, Tk falls
#: back to whatever font has the glyph (DejaVu has monochrome ones) or draws a box.
EMOJI_FAMILIES = ("Noto Color Emoji", "Twemoji", "JoyPixels", "Symbola")
TEXT_FAMILIES = ("DejaVu Sans", "Noto Sans", "Liberation Sans", "Helvetica")
MONO_FAMILIES = ("DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono", "Courier")
#: Point sizes: Tk turns points into pixels with ``tk scaling`` (the display's DPI), so the
#: windows grow on a HiDPI screen; TCPLAB_GUI_SCALE (e.g. 2) overrides the factor.
TEXT_SIZE = 11
SMALL_SIZE = 9


def new_root() -> tk.Tk:
    """A Tk root, or an :class:`EnvironmentProblem` that says what to install or set."""
    if tk is None:
        raise EnvironmentProblem("the GUI needs Tk for Python: sudo apt-get install python3-tk")
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise EnvironmentProblem(
            f"cannot open a window ({exc}); run it on a desktop, or under xvfb-run") from None
    scale = os.environ.get("TCPLAB_GUI_SCALE")
    if scale:
        try:
            root.tk.call("tk", "scaling", float(scale) * 96 / 72)
        except (ValueError, tk.TclError):
            pass
    apply_theme(root)
    return root


def release_tk(holder: list) -> None:
    """Destroy the root in ``holder`` (a one-item list, emptied) and free the Tcl
    interpreter now, on the Tk thread.

    Tk widgets form reference cycles (parent ↔ child), so the interpreter is freed by the
    cyclic garbage collector — and if that runs on another thread (a chat client's network
    thread, the server's loop), Tcl aborts the whole process ("async handler deleted by the
    wrong thread"). The caller must hold no other reference to the root.
    """
    import gc

    root = holder.pop()
    try:
        root.destroy()
    except tk.TclError:
        pass  # already destroyed
    del root
    gc.collect()


def drop_tk_variables(owner: object) -> None:
    """Free a closed window's Tk variables now, on the Tk thread (see :func:`release_tk`:
    freed later by the garbage collector on a network thread, each would call into Tcl
    from the wrong thread)."""
    for name, value in list(vars(owner).items()):
        if isinstance(value, tk.Variable):
            setattr(owner, name, None)


def apply_theme(root: tk.Misc) -> None:
    """sv-ttk's light theme when it is installed, else ttk's clam (present everywhere)."""
    style = ttk.Style(root)
    try:
        import sv_ttk  # type: ignore[import-not-found]

        sv_ttk.set_theme("light")
    except Exception:  # not installed, or a Tk it does not support: plain ttk still works
        if "clam" in style.theme_names():
            style.theme_use("clam")
    style.configure("Error.TLabel", foreground="#b3261e")
    style.configure("Muted.TLabel", foreground="#5f6368")
    style.configure("Big.TButton", padding=(16, 8))


@dataclass
class Fonts:
    text: tkfont.Font
    bold: tkfont.Font
    small: tkfont.Font
    mono: tkfont.Font
    emoji: tkfont.Font
    has_emoji_font: bool


def _pick(families: set[str], wanted: tuple[str, ...], fallback: str) -> str:
    return next((f for f in wanted if f in families), fallback)


def fonts(root: tk.Misc) -> Fonts:
    """The windows' named fonts, created once per Tk interpreter."""
    cached = getattr(root, "_tcplab_fonts", None)
    if cached is not None:
        return cached
    families = set(tkfont.families(root))
    default = tkfont.nametofont("TkDefaultFont", root).actual("family")
    text = _pick(families, TEXT_FAMILIES, default)
    emoji_family = next((f for f in EMOJI_FAMILIES if f in families), None)
    f = Fonts(
        text=tkfont.Font(root, family=text, size=TEXT_SIZE),
        bold=tkfont.Font(root, family=text, size=TEXT_SIZE, weight="bold"),
        small=tkfont.Font(root, family=text, size=SMALL_SIZE),
        mono=tkfont.Font(root, family=_pick(families, MONO_FAMILIES, "TkFixedFont"),
                         size=SMALL_SIZE + 1),
        emoji=tkfont.Font(root, family=emoji_family or text, size=TEXT_SIZE),
        has_emoji_font=emoji_family is not None,
    )
    for name in ("TkDefaultFont", "TkTextFont", "TkHeadingFont", "TkMenuFont"):
        try:
            tkfont.nametofont(name, root).configure(family=text, size=TEXT_SIZE)
        except tk.TclError:
            pass
    ttk.Style(root).configure("Treeview", rowheight=int(f.text.metrics("linespace") * 1.35))
    root._tcplab_fonts = f  # type: ignore[attr-defined]
    return f


class Collapsible(ttk.Frame):
    """A titled section that opens and closes (the report's "Options" / "Server" parts)."""

    def __init__(self, master: tk.Misc, title: str, *, opened: bool = False) -> None:
        super().__init__(master)
        self._title = title
        self.toggle_button = ttk.Button(self, command=self.toggle, style="Toolbutton")
        self.toggle_button.pack(anchor="w")
        self.body = ttk.Frame(self, padding=(16, 4, 0, 4))
        self.opened = False
        if opened:
            self.open()
        else:
            self._label()

    def _label(self) -> None:
        self.toggle_button.configure(text=("▾ " if self.opened else "▸ ") + self._title)

    def open(self) -> None:
        if not self.opened:
            self.body.pack(fill="x")
            self.opened = True
            self._label()

    def close(self) -> None:
        if self.opened:
            self.body.pack_forget()
            self.opened = False
            self._label()

    def toggle(self) -> None:
        self.close() if self.opened else self.open()


def set_text(widget: tk.Text, text: str) -> None:
    """Replace a read-only Text widget's content."""
    widget.configure(state="normal")
    widget.delete("1.0", "end")
    widget.insert("end", text)
    widget.configure(state="disabled")
