#!/usr/bin/env python3
"""Take the GUI screenshots in docs/images/ (``make screenshots``).

Runs the real windows against a real server on a free loopback port, under an Xvfb of its
own (unless ``--display`` names one), drives them like a user would, and grabs each window
with ImageMagick's ``import``. Needs: xvfb, imagemagick, python3-tk, fonts-noto-color-emoji,
fonts-dejavu.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    from tcplab.errors import TcplabError
    from tcplab.gui import shots

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    p.add_argument("--display", default=None, help="use this X display instead of a new Xvfb")
    args = p.parse_args()
    problem = shots.import_problem()
    if problem:
        sys.exit(f"screenshots: {problem}")
    if not args.display:
        os.environ.pop("DISPLAY", None)  # always a private Xvfb, so the pictures are reproducible
    try:
        with shots.display(args.display):
            shots.run_session(Path(args.out), _scenario)
    except TcplabError as exc:
        sys.exit(f"screenshots: {exc}")
    return 0


def _scenario(d) -> None:
    import socket
    import tkinter as tk

    from tcplab.gui.client import ClientWindow
    from tcplab.gui.server import ServerWindow

    root, wait, settle, grab = d.root, d.wait, d.settle, d.grab

    # Server Config, with the Options open.
    server_top = tk.Toplevel(root)
    server_top.geometry("+20+20")
    console = ServerWindow(server_top)
    console.options.open()
    grab(server_top, "gui-server-config.png")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    console.port_var.set(str(port))
    console.start_button.invoke()
    wait(lambda: console.model.running)

    names = ["Alice", "Bob", "דנה", "Carol", "Dave"]
    windows: dict[str, ClientWindow] = {}
    for i, nick in enumerate(names):
        top = tk.Toplevel(root)
        top.geometry(f"820x560+{660 + 20 * i}+{20 + 20 * i}")
        win = ClientWindow(top, host="127.0.0.1", port=port, nick=nick, remember=False)
        win.enter_button.invoke()
        wait(lambda w=win: w.model is not None)
        windows[nick] = win
    wait(lambda: all(len(w.model.users) == 5 for w in windows.values()))

    def say(sender: str, target: str, text: str) -> None:
        d.say_in(windows[sender], target, text)

    alice = windows["Alice"]
    say("Bob", "Alice", "hi Alice! are you coming to the lab today?")
    say("Alice", "Bob", "yes, at 10 🙂")
    say("דנה", "Alice", "שלום אליס! ראית את הסיכום של התרגיל? the TCP handshake part 🤝")
    say("Alice", "דנה", "כן, תודה! I'll send you my capture 📦")
    say("דנה", "Alice", "מעולה 👍 ושלחי גם את קובץ ה-pcap מהמעבדה, עם ה-RST אחרי כל חבילה 😅🎉")
    say("Carol", "*", "lunch at 12 anyone? 🍕")
    say("Dave", "Alice", "can you review my patch?")
    say("Dave", "Alice", "it is small, I promise")
    say("Alice", "Nobody", "hello?")  # scenario B in the screenshot's other conversation
    windows["Bob"].close()  # Bob leaves: Alice sees it
    settle(1.5)  # one stats tick for the console's message counters

    # Alice reads Dana's conversation; Dave's and Everyone's stay unread.
    alice.open_conversation("דנה")
    settle(0.5)
    grab(alice.top, "gui-chat-hebrew.png")
    del windows["Bob"]
    # Re-open Bob's slot in the console picture: 5 users online.
    top = tk.Toplevel(root)
    top.geometry("820x560+700+80")
    eve = ClientWindow(top, host="127.0.0.1", port=port, nick="Eve", remember=False)
    eve.enter_button.invoke()
    wait(lambda: eve.model is not None)
    settle(1.5)
    server_top.geometry("900x620+20+20")
    grab(server_top, "gui-server-logs.png")

    # Login with an inline error: a taken nickname.
    top = tk.Toplevel(root)
    top.geometry("+40+700")
    login = ClientWindow(top, host="127.0.0.1", port=port, nick="Alice", remember=False)
    login.server_section.open()
    login.enter_button.invoke()
    wait(lambda: login.nick_error.cget("text"))
    grab(top, "gui-login-error.png")

    console.stop_button.invoke()
    wait(lambda: all(w.banner_text for w in windows.values()))
    grab(windows["Carol"].top, "gui-chat-disconnected.png")
    for w in [*windows.values(), eve, login]:
        w.close()
    console.close()
    settle(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
