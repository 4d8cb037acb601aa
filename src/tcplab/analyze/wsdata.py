"""Wireshark's own data files, read when Wireshark is installed: the names tshark shows by default.

tshark resolves Ethernet vendor prefixes (``manuf``) and IANA Private Enterprise Numbers
(``enterprises.tsv``) from files shipped with Wireshark. Showing the same names means reading
the same files; without them tcplab falls back to what it knows itself (the bare address, a
short built-in table of enterprise numbers). Each file is read once per process.
"""

from __future__ import annotations

import functools
import os

#: Where Wireshark installs its data files (Debian/Ubuntu, a /usr/local build, macOS).
#: Plain strings: :mod:`pathlib` would cost every ``tcplab analyze`` a few milliseconds of
#: start-up for three joins.
DATA_DIRS = ("/usr/share/wireshark", "/usr/local/share/wireshark",
             "/Applications/Wireshark.app/Contents/Resources/share/wireshark")


def _read(name: str) -> str | None:
    for folder in DATA_DIRS:
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            continue
    return None


@functools.cache
def vendors() -> dict[bytes, str]:
    """Wireshark's 24-bit vendor prefixes (OUI → short name); empty without its manuf file.

    About 50,000 lines (2 MB); the longer /28 and /36 prefixes are left out, so a MAC in
    such a block shows its 24-bit owner's name.
    """
    table: dict[bytes, str] = {}
    for line in (_read("manuf") or "").splitlines():
        if not line or line[0] == "#":
            continue
        cols = line.split("\t")
        if len(cols) < 2 or len(cols[0]) != 8:  # "00:0B:82", not "00:1B:C5:00:00:00/36"
            continue
        try:
            table[bytes.fromhex(cols[0].replace(":", "").replace("-", ""))] = cols[1].strip()
        except ValueError:
            continue
    return table


@functools.cache
def enterprises() -> dict[int, str]:
    """IANA Private Enterprise Numbers → names, from Wireshark's enterprises.tsv (empty without it)."""
    table: dict[int, str] = {}
    for line in (_read("enterprises.tsv") or "").splitlines():
        number, _, name = line.partition("\t")
        if number.isdigit() and name:
            table[int(number)] = name.strip()
    return table


def ether_name(mac: str) -> str:
    """An Ethernet address as tshark's Source/Destination columns show it by default:
    ``Broadcast``, ``HuaweiTe_f0:45:d7`` (vendor prefix resolved), or the address itself."""
    if mac == "ff:ff:ff:ff:ff:ff":
        return "Broadcast"
    try:
        prefix = bytes.fromhex(mac[:8].replace(":", ""))
    except ValueError:
        return mac
    name = vendors().get(prefix)
    return f"{name}_{mac[9:]}" if name else mac
