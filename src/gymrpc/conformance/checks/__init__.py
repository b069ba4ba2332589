"""The kit's checks; importing this package registers them in documentation order."""

from typing import Final

from gymrpc.conformance.checks import (  # noqa: F401 (imported to register their checks)
    autoreset,
    catalogue,
    data,
    errors,
    handshake,
    health,
    seeds,
    sessions,
    stream,
)
from gymrpc.conformance.framework import CHECKS

#: The areas in the order docs/conformance.md lists them; within an area, checks keep
#: the order of their module.
AREAS: Final = (
    "handshake",
    "catalogue",
    "session",
    "data",
    "seeds",
    "errors",
    "stream",
    "autoreset",
    "health",
)

CHECKS.sort(key=lambda item: AREAS.index(item.id.split(".")[0]))
