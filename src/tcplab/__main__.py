"""Allow ``python -m tcplab`` as an alias of the ``tcplab`` command."""

from tcplab.cli import main

raise SystemExit(main())
