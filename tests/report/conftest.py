"""Captures the report tests share, built by tcplab encap (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.encap import EncapOptions, encapsulate_csv
from tcplab.packet import link

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "examples" / "http_ecommerce.csv"


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report-captures")
    made = {
        "stream": out / "http_stream.pcapng",
        "seed": out / "http_seed.pcap",
        "per_message": out / "per_message.pcap",
    }
    encapsulate_csv(CSV, made["stream"], EncapOptions(style="stream", seed=1))
    encapsulate_csv(CSV, made["seed"], EncapOptions(style="seed"), linktype=link.LINKTYPE_NULL)
    encapsulate_csv(CSV, made["per_message"],
                    EncapOptions(style="stream", seed=2, connection_per_message=True))
    # One short chat-sized segment over Ethernet: the innermost box of the layer picture is
    # narrow, so its words must move beside it rather than run off the picture.
    from tcplab.packet import stack
    from tcplab.pcap import open_writer

    made["tiny"] = out / "tiny.pcap"
    packet = stack.tcp_packet(bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]), 40000, 55555,
                              b"Bob: hi\n", seq=1000)
    with open_writer(str(made["tiny"]), link.LINKTYPE_ETHERNET) as writer:
        writer.write(link.frame(link.LINKTYPE_ETHERNET, packet), 1_000_000_000, None, None)
    return made
