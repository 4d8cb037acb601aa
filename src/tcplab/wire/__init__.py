"""The live wire: the only place tcplab touches raw sockets.

``bpf`` compiles capture filters (pure), ``capture`` reads frames from an ``AF_PACKET``
socket into a pcap file, ``rawsock`` sends hand-built IP packets with ``IP_HDRINCL``,
``inject`` and ``replay`` run the course experiment (forged segments answered by RST, and
the same conversation over the kernel's real TCP). Protocol logic lives elsewhere
(:mod:`tcplab.packet`, :mod:`tcplab.encap`); these modules only move bytes.
"""
