"""tcplab — make TCP/IP visible: build, inject, capture and explain packets; run a TCP chat.

The package is layered so a newcomer can find each concept by name:
``packet`` (bytes ⇄ header fields, no I/O), ``pcap`` (capture file formats),
``encap`` (application messages → packets, no I/O), ``wire`` (the only raw-socket
I/O), ``analyze`` (Wireshark-style dissection and TCP analysis), ``chat`` (the
chat protocol core and its socket shells) and ``cli`` (argument parsing only).
"""

__version__ = "0.1.0"
