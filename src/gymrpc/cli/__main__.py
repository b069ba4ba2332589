"""``python -m gymrpc.cli``: the same as the ``gymrpc`` command."""

import sys

from gymrpc.cli import main

sys.exit(main())
