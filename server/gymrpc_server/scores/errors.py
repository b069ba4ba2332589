"""The exceptions of the scores store.

Each message is one line that names the database (its password redacted) and the cause,
so that the CLI can print it as it is and exit, and the servicer can pass it on.
"""

from __future__ import annotations

__all__ = ["StoreError", "StoreOpenError", "StoreUnavailableError"]


class StoreError(Exception):
    """Base class of the scores store's errors."""


class StoreOpenError(StoreError):
    """The database cannot be opened: a bad path or URL, no connection, a foreign schema.

    Raised only by :func:`gymrpc_server.scores.open_store`; the server cannot start.
    """


class StoreUnavailableError(StoreError):
    """The database cannot be reached now (or the store is closed); try again later.

    Raised by :meth:`~gymrpc_server.scores.ScoreStore.reserve_k` and the queries. The
    servicer answers UNAVAILABLE: the outage is expected to pass.
    """
