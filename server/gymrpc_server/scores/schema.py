"""The tables of the scores database, and the mapping between :class:`Episode` and a row.

These definitions are what the code reads and writes; the Alembic revisions in
``migrations/versions`` create them, and a test checks that both agree on SQLite and
PostgreSQL. Core tables rather than ORM classes: the writer inserts plain rows in
batches and the queries return frozen dataclasses, so there is nothing to map.

Tables:
    ``episodes``: one row per finished episode (see :class:`Episode`).
    ``evaluation_counters``: the next free k of each (user, env_id).
    ``server_secret``: one row, the secret that evaluation seeds derive from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from gymrpc_server.scores.episodes import EPISODE_ID_LENGTH, Ending, Episode

__all__ = [
    "counters",
    "episode_from_row",
    "episode_row",
    "episodes",
    "metadata",
    "server_secret",
]

#: Constraint names follow one pattern, so that later migrations can name what they alter.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time: aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores ``timestamptz``. SQLite has no time type: SQLAlchemy stores a
    fixed-width ISO string, which sorts in time order as long as every value is in the
    same zone, so values are converted to UTC and stored without an offset.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; naive for SQLite."""
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"{value!r} is naive; expected a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ENDINGS = ", ".join(f"'{ending.value}'" for ending in Ending)

episodes = Table(
    "episodes",
    metadata,
    # SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit one.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("episode_id", String(EPISODE_ID_LENGTH), nullable=False, unique=True),
    Column("user_name", Text, nullable=False),
    Column("env_id", Text, nullable=False),
    Column("env_options", JSON().with_variant(JSONB, "postgresql"), nullable=False),
    Column("evaluation", Boolean, nullable=False),
    Column("k", BigInteger, nullable=True),
    Column("episode_return", Double, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("ending", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("failure", Boolean, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=False),
    Column("session_id", Text, nullable=False),
    CheckConstraint(f"ending IN ({_ENDINGS})", name="ending"),
    CheckConstraint(
        "(evaluation AND k IS NOT NULL AND k >= 0) OR (NOT evaluation AND k IS NULL)",
        name="evaluation_k",
    ),
    # An evaluation seed is used once per user: a second episode with the same k is
    # refused. Non-evaluation rows have k NULL, and NULLs never collide.
    UniqueConstraint("user_name", "env_id", "k"),
    # Scores and the leaderboard: one user's (or every user's) evaluation episodes on an
    # env, newest first.
    Index(None, "env_id", "evaluation", "user_name", "ended_at", "k"),
    # A user's episode history, newest first.
    Index(None, "user_name", "ended_at", "id"),
)

counters = Table(
    "evaluation_counters",
    metadata,
    Column("user_name", Text, primary_key=True),
    Column("env_id", Text, primary_key=True),
    Column("next_k", BigInteger, nullable=False),
)

server_secret = Table(
    "server_secret",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)


def episode_row(episode: Episode) -> dict[str, Any]:
    """The ``episodes`` row of ``episode`` (without the database's own ``id``)."""
    return {
        "episode_id": episode.episode_id,
        "user_name": episode.user,
        "env_id": episode.env_id,
        "env_options": dict(episode.env_options),
        "evaluation": episode.evaluation,
        "k": episode.k,
        "episode_return": float(episode.episode_return),
        "length": episode.length,
        "ending": episode.ending.value,
        "reason": episode.reason,
        "failure": episode.failure,
        "started_at": episode.started_at,
        "ended_at": episode.ended_at,
        "session_id": episode.session_id,
    }


def episode_from_row(row: RowMapping) -> Episode:
    """The :class:`Episode` of an ``episodes`` row."""
    return Episode(
        user=row["user_name"],
        env_id=row["env_id"],
        env_options=row["env_options"],
        evaluation=bool(row["evaluation"]),
        k=row["k"],
        episode_return=row["episode_return"],
        length=row["length"],
        ending=Ending(row["ending"]),
        reason=row["reason"],
        failure=bool(row["failure"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        session_id=row["session_id"],
        episode_id=row["episode_id"],
    )
