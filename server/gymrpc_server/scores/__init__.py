"""The challenge's storage: recorded episodes, evaluation k and seeds, scores and leaderboards.

SQLAlchemy 2 over SQLite (the default: a WAL-mode file in the user's data directory) or
PostgreSQL (shared by several servers), with Alembic migrations applied at open::

    from gymrpc_server.scores import Ending, Episode, open_store

    store = open_store("scores.sqlite3")  # or None, a postgresql+psycopg:// URL, "none"
    k = store.reserve_k("alice", "CartPole-v1")[0]
    seed = store.evaluation_seed("CartPole-v1", k)
    store.record(Episode(user="alice", env_id="CartPole-v1", ..., evaluation=True, k=k))
    store.score("alice", "CartPole-v1")  # Score(mean_return=..., provisional=True, ...)
    store.close()

Modules, each with one job: :mod:`.episodes` (the record), :mod:`.schema` (tables),
:mod:`.database` (URLs, engines, locking, opening), ``migrations/`` (Alembic),
:mod:`.seeds` (the secret and seed derivation), :mod:`.writer` (the queue and its
thread), :mod:`.queries` (scores, leaderboard, history), :mod:`.store` (the facade).
Nothing here knows gRPC.
"""

from __future__ import annotations

from gymrpc_server.scores.episodes import Ending, Episode
from gymrpc_server.scores.errors import StoreError, StoreOpenError, StoreUnavailableError
from gymrpc_server.scores.queries import (
    EpisodePage,
    LeaderboardEntry,
    LeaderboardPage,
    Score,
    ScorePoint,
)
from gymrpc_server.scores.seeds import derive_seed
from gymrpc_server.scores.store import ScoreStore, StoreSettings, open_store
from gymrpc_server.scores.writer import StoreStatus

__all__ = [
    "Ending",
    "Episode",
    "EpisodePage",
    "LeaderboardEntry",
    "LeaderboardPage",
    "Score",
    "ScorePoint",
    "ScoreStore",
    "StoreError",
    "StoreOpenError",
    "StoreSettings",
    "StoreStatus",
    "StoreUnavailableError",
    "derive_seed",
    "open_store",
]
