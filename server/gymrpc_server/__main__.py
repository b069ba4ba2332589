"""``python -m gymrpc_server``: the same as the ``gymrpc-server`` command."""

import sys

from gymrpc_server.cli import main

sys.exit(main())
