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
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def start_xvfb() -> tuple[subprocess.Popen, str]:
    exe = shutil.which("Xvfb")
    if exe is None:
        sys.exit("screenshots: Xvfb is not installed (sudo apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1600x1200x24",
                             "-nolisten", "tcp", "-dpi", "96"], pass_fds=(w,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        proc.kill()
        sys.exit("screenshots: Xvfb did not start")
    return proc, f":{data.strip().decode()}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    p.add_argument("--display", default=None, help="use this X display instead of a new Xvfb")
    args = p.parse_args()
    if shutil.which("import") is None:
        sys.exit("screenshots: ImageMagick's 'import' is missing (sudo apt-get install imagemagick)")
    xvfb = None
    if args.display:
        os.environ["DISPLAY"] = args.display
    else:
        xvfb, os.environ["DISPLAY"] = start_xvfb()
    os.environ["XDG_CONFIG_HOME"] = str(Path(args.out).resolve() / ".config-tmp")
    try:
        return shoot(Path(args.out))
    finally:
        shutil.rmtree(Path(args.out) / ".config-tmp", ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


def shoot(out: Path) -> int:
    from tcplab.gui.tkcommon import new_root, release_tk

    out.mkdir(parents=True, exist_ok=True)
    holder = [new_root()]
    _scenario(holder[0], out)
    release_tk(holder)
    return 0


def _scenario(root, out: Path) -> None:
    import socket
    import tkinter as tk

    from tcplab.gui.client import ClientWindow
    from tcplab.gui.server import ServerWindow

    root.withdraw()

    def wait(cond, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: timed out waiting for {cond}")
            root.update()
            time.sleep(0.01)

    def settle(seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            root.update()
            time.sleep(0.01)

    def grab(top: tk.Misc, name: str) -> None:
        top.lift()
        settle(0.5)
        path = out / name
        subprocess.run(["import", "-window", top.wm_frame(), str(path)], check=True)
        print(f"wrote {path}")

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
        win = windows[sender]
        win.open_conversation(target)
        win.entry.focus_force()
        win.entry.delete(0, "end")
        win.entry.insert(0, text)
        win.entry.event_generate("<Return>")
        settle(0.15)
        if win.entry.get():
            raise SystemExit(f"screenshots: {sender}'s message was not sent")

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
