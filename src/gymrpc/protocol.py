"""The version of the gymrpc wire protocol this package speaks."""

from __future__ import annotations

from typing import Final

__all__ = ["PROTOCOL_VERSION", "SHUTDOWN_PREFIX", "is_compatible"]

#: (major, minor) of ``proto/gymrpc/v1``. Minor versions only add; a different major
#: version cannot be spoken.
PROTOCOL_VERSION: Final = (1, 1)

#: How the status message begins when a stopping server ends an open session stream
#: (errors.proto, "The error model"): gRPC cannot attach details to that status.
SHUTDOWN_PREFIX: Final = "SHUTTING_DOWN:"


def is_compatible(major: int) -> bool:
    """Tell whether a peer speaking protocol ``major.*`` can talk to this package.

    Args:
        major: The peer's major protocol version.

    Returns:
        True when the major versions are equal.

    >>> is_compatible(1), is_compatible(2)
    (True, False)
    """
    return major == PROTOCOL_VERSION[0]
