"""The packet-list line the live commands print for each frame. No I/O here.

The analyzer owns dissection and rendering (:mod:`tcplab.analyze`); this module only
feeds it live frames, so ``capture`` prints exactly the columns ``tcplab analyze`` prints
for the same file. Checksums are not validated live: the kernel's own segments on ``lo``
carry checksums left for offload hardware, and Wireshark, too, leaves validation off by
default.
"""

from __future__ import annotations

from tcplab.analyze import Analyzer, render


class LiveLines:
    """Turns each captured frame into its packet-list line, keeping TCP analysis state."""

    header = render.LIST_HEADER

    def __init__(self, linktype: int) -> None:
        self._analyzer = Analyzer(linktype, checksums=False, payload=False)

    def line(self, data: bytes, timestamp_ns: int, wire_length: int) -> str:
        fields = self._analyzer.feed_frame(data, timestamp_ns, orig_len=wire_length)
        # Peer-controlled text (an HTTP request line) must not drive the terminal.
        return render.safe_text(render.packet_line(fields))
