r"""Evaluation seeds: derived from a server secret that users never see.

The seed of evaluation episode ``k`` of ``env_id`` is::

    message = b"gymrpc/evaluation-seed/v1\x00" + env_id.encode() + k.to_bytes(8, "big")
    digest = hmac.new(secret, message, hashlib.sha256).digest()  # HMAC-SHA256
    seed = int.from_bytes(digest[:8], "big")  # 0 <= seed < 2**64, a protobuf uint64

Deterministic (the same secret, env_id and k always give the same seed, on every server
sharing the database, before and after a restart), independent across k and env_id, and
unpredictable without the secret, so that a user cannot prepare for an evaluation
episode's seed. ``k`` has a fixed width at the end, so no two (env_id, k) pairs produce
the same message.

The secret is 32 random bytes created by the first server that opens the database and
stored in it (``server_secret``); every other server reads the same row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from gymrpc_server.scores.database import dialect_insert, write_transaction
from gymrpc_server.scores.episodes import MAX_K
from gymrpc_server.scores.schema import server_secret

__all__ = ["SECRET_BYTES", "SeedDeriver", "derive_seed", "load_or_create_secret"]

SECRET_BYTES = 32
_DOMAIN = b"gymrpc/evaluation-seed/v1\x00"


def derive_seed(secret: bytes, env_id: str, k: int) -> int:
    """The seed of evaluation episode ``k`` of ``env_id`` (see the module).

    Args:
        secret: The server secret.
        env_id: The environment.
        k: The user's evaluation-episode index, ``0 <= k < 2**63``.

    Returns:
        A seed in ``[0, 2**64)``.

    Raises:
        ValueError: If ``k`` is out of range.

    Example:
        >>> derive_seed(bytes(32), "CartPole-v1", 0) == derive_seed(bytes(32), "CartPole-v1", 0)
        True
    """
    return SeedDeriver(secret, env_id)(k)


class SeedDeriver:
    """:func:`derive_seed` for one environment, for many k: the HMAC's prefix is kept.

    HMAC-SHA256 of the message's common prefix (domain and env_id) is computed once;
    each k copies that state and adds its 8 bytes, which gives the same digest as
    hashing the whole message at about half the cost (evaluation sessions derive one
    seed per episode, on the stepping path).

    Example:
        >>> derive = SeedDeriver(bytes(32), "CartPole-v1")
        >>> derive(7) == derive_seed(bytes(32), "CartPole-v1", 7)
        True
    """

    def __init__(self, secret: bytes, env_id: str) -> None:
        self._prefix = hmac.new(secret, _DOMAIN + env_id.encode(), hashlib.sha256)

    def __call__(self, k: int) -> int:
        """The seed of episode ``k``.

        Raises:
            ValueError: If ``k`` is out of range.
        """
        if not 0 <= k <= MAX_K:
            raise ValueError(f"k is {k}; expected 0 <= k < 2**63")
        state = self._prefix.copy()
        state.update(k.to_bytes(8, "big"))
        return int.from_bytes(state.digest()[:8], "big")


def load_or_create_secret(engine: Engine) -> bytes:
    """Read the server secret, creating it first if the database has none.

    Servers racing on a new database all end up with the first one's secret: the insert
    does nothing when the row exists (or appears meanwhile), and what is read back is
    whatever row won.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: If the database cannot be reached.
    """
    candidate = secrets.token_bytes(SECRET_BYTES)
    insert = (
        dialect_insert(server_secret, engine.dialect.name)
        .values(id=1, secret=candidate, created_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=[server_secret.c.id])
    )
    with write_transaction(engine) as connection:
        connection.execute(insert)
        stored = connection.execute(select(server_secret.c.secret)).scalar_one()
    return bytes(stored)
