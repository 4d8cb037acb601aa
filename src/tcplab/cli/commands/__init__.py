"""One module per ``tcplab`` subcommand; see :mod:`tcplab.cli` for the contract."""
