"""The multi-user TCP chat: a sans-IO protocol core, a selectors server, a client core, the CLI.

* :mod:`tcplab.chat.protocol` — the protocol as a state machine (no I/O);
* :mod:`tcplab.chat.nickname` — which nicknames are allowed and when two are the same
  (:mod:`tcplab.chat.confusables` holds the look-alike tables);
* :mod:`tcplab.chat.server` — the event-loop server (``tcplab server``);
* :mod:`tcplab.chat.client` — the client core with a thread-safe event API, for every front end;
* :mod:`tcplab.chat.cli_client` — the terminal front end (``tcplab client``);
* :mod:`tcplab.chat.sanitize` — making peer text safe to print.

The wire protocol is documented in ``docs/protocol.md``.
"""
