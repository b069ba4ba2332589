"""The scores store: one object for recording episodes, evaluation k and seeds, and queries.

:func:`open_store` opens (and migrates) the database and starts the writer thread;
:class:`ScoreStore` is what the evaluation sessions, the servicer and the web page use::

    store = open_store(config.database)  # None when config.database == "none"
    if store is not None:
        ks = store.reserve_k("alice", "gymrpc/Turbofan-v0", count=8)
        seeds = [store.evaluation_seed("gymrpc/Turbofan-v0", k) for k in ks]
        ...
        if not store.record(episode):
            ...  # queue full: refuse new evaluation work (UNAVAILABLE)
        board = store.leaderboard("gymrpc/Turbofan-v0", page_size=20)
        ...
        store.close(timeout=5)  # at a graceful stop: writes what is queued

``none`` gives ``None`` rather than a store that records nothing: without a database
there is no secret and no k, so evaluation sessions must be refused rather than run
with seeds nobody could check, and mypy makes every caller decide what to do.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from gymrpc_server.scores import queries
from gymrpc_server.scores.database import (
    Database,
    describe_error,
    dialect_insert,
    hold_wal_open,
    open_database,
    resolve_database,
    write_transaction,
)
from gymrpc_server.scores.episodes import MAX_K, Episode
from gymrpc_server.scores.errors import StoreOpenError, StoreUnavailableError
from gymrpc_server.scores.schema import counters
from gymrpc_server.scores.seeds import SeedDeriver, load_or_create_secret
from gymrpc_server.scores.writer import EpisodeWriter, StoreStatus

__all__ = ["ScoreStore", "StoreSettings", "open_store"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """How the store records and scores; the defaults suit one busy server.

    Attributes:
        score_window: Evaluation episodes per score (the last N).
        max_queued: Episodes the write queue holds before ``record`` returns False.
            About 1 KiB each; 10,000 ride out a 100 s outage at 100 episodes/s.
        batch_size: Episodes committed at most per transaction.
        batch_interval: Seconds an episode waits at most before it is committed; what
            a SIGKILL of the server can lose is about this long's worth of episodes.
        retry_max_interval: Longest wait, in seconds, between two write attempts while
            the database is unreachable.
        busy_timeout: SQLite: seconds a transaction waits for another process's lock.
        connect_timeout: PostgreSQL: seconds a connection attempt may take.
    """

    score_window: int = 100
    max_queued: int = 10_000
    batch_size: int = 1000
    batch_interval: float = 0.02
    retry_max_interval: float = 5.0
    busy_timeout: float = 10.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        """Reject settings out of range, naming the setting."""
        for name in ("score_window", "max_queued", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; expected at least 1")
        for name in ("batch_interval", "retry_max_interval", "busy_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} is {getattr(self, name)}; expected seconds > 0")


def open_store(
    database: str | None = None, settings: StoreSettings | None = None
) -> ScoreStore | None:
    """Open the scores database, migrate it, and start recording.

    Args:
        database: ``None`` (or ``""``) for the default SQLite file in the user's data
            directory, a path or ``sqlite:///path``, a ``postgresql+psycopg://`` URL,
            or ``"none"`` (see :mod:`gymrpc_server.scores.database`).
        settings: Tuning; the defaults otherwise.

    Returns:
        The store, or ``None`` for ``"none"``: recording is off, and evaluation
        sessions and leaderboards are unavailable.

    Raises:
        StoreOpenError: If the database cannot be opened; the one-line message names it
            (without its password) and says why.
    """
    target = resolve_database(database)
    if target is None:
        logger.info("scores database: none (episodes are not recorded)")
        return None
    settings = settings or StoreSettings()
    engine = open_database(
        target, busy_timeout=settings.busy_timeout, connect_timeout=settings.connect_timeout
    )
    anchor = None
    try:
        if target.path is not None:
            anchor = hold_wal_open(target.path)
        secret = load_or_create_secret(engine)
    except (SQLAlchemyError, sqlite3.Error) as error:
        if anchor is not None:
            anchor.close()
        engine.dispose()
        raise StoreOpenError(
            f"cannot open the scores database {target.name}: {describe_error(error, target)}"
        ) from error
    logger.info("scores database: %s", target.name)
    return ScoreStore(engine, target, secret, settings, anchor=anchor)


class ScoreStore:
    """Records episodes, hands out evaluation k and seeds, and answers score queries.

    Thread-safe. Build it with :func:`open_store`; close it (or use ``with``) to write
    what is queued.

    Args:
        engine: The migrated database.
        database: What it is.
        secret: The server secret.
        settings: Tuning.
        anchor: SQLite: the idle connection that keeps the WAL open (closed last).
    """

    def __init__(
        self,
        engine: Engine,
        database: Database,
        secret: bytes,
        settings: StoreSettings,
        *,
        anchor: sqlite3.Connection | None = None,
    ) -> None:
        self._engine = engine
        self._anchor = anchor
        self._database = database
        self.__secret = secret  # only evaluation_seed reads it
        # One HMAC prefix per environment, kept (the dict is only added to; setdefault
        # keeps concurrent first uses consistent).
        self.__derivers: dict[str, SeedDeriver] = {}
        self.settings = settings
        self._closed = False
        self._writer = EpisodeWriter(
            engine,
            database,
            max_queued=settings.max_queued,
            batch_size=settings.batch_size,
            batch_interval=settings.batch_interval,
            retry_max_interval=settings.retry_max_interval,
        )

    def __repr__(self) -> str:
        return f"<ScoreStore {self._database.name}>"

    @property
    def database(self) -> str:
        """The database's name for logs and messages (path, or URL without password)."""
        return self._database.name

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._database.backend

    # Recording.

    def record(self, episode: Episode) -> bool:
        """Queue a finished episode for writing; returns at once.

        Returns:
            True when queued. False when the queue is full (the database is unreachable
            or too slow) or the store is closed: the episode is not recorded, and the
            caller should refuse new evaluation work with UNAVAILABLE.
        """
        return self._writer.record(episode)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every episode queued so far; wait at most ``timeout`` seconds.

        Returns:
            True when all are written; False on timeout (they stay queued).
        """
        return self._writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop recording, write what is queued (up to ``timeout`` s) and disconnect.

        Returns:
            True when every queued episode was written; False when some are lost (an
            error is logged with their number). Later calls return the first answer.
        """
        if self._closed:
            return self._writer.status().queued == 0
        self._closed = True
        written = self._writer.close(timeout)
        self._engine.dispose()
        if self._anchor is not None:
            # The last connection: SQLite checkpoints the WAL into the file now.
            self._anchor.close()
        return written

    def status(self) -> StoreStatus:
        """How recording is going: healthy, queued, written, the last error."""
        return self._writer.status()

    @property
    def healthy(self) -> bool:
        """True when the last write succeeded (or none was needed yet)."""
        return self._writer.status().healthy

    # Evaluation.

    def reserve_k(self, user: str, env_id: str, count: int = 1) -> range:
        """Allocate ``count`` consecutive fresh evaluation-episode indices.

        One transaction increments the (user, env_id) counter: servers sharing the
        database never hand out the same k twice. A k whose episode is never recorded
        stays unused (gaps are allowed).

        Args:
            user: Who will run the episodes.
            env_id: Their environment.
            count: How many indices, at least 1.

        Returns:
            ``range(first, first + count)``; the first reservation starts at 0.

        Raises:
            ValueError: If ``count`` is below 1 or a name is empty.
            StoreUnavailableError: If the database cannot be reached or the store is
                closed.
        """
        if count < 1:
            raise ValueError(f"count is {count}; expected at least 1")
        for name, value in (("user", user), ("env_id", env_id)):
            if not value:
                raise ValueError(f"{name} is {value!r}; expected a non-empty string")
        insert = dialect_insert(counters, self._engine.dialect.name).values(
            user_name=user, env_id=env_id, next_k=count
        )
        statement = insert.on_conflict_do_update(
            index_elements=[counters.c.user_name, counters.c.env_id],
            set_={"next_k": counters.c.next_k + count},
        ).returning(counters.c.next_k)

        def reserve(connection: Connection) -> int:
            return int(connection.execute(statement).scalar_one())

        end = self._run(reserve, write=True)
        if end > MAX_K + 1:
            raise StoreUnavailableError(f"k of {user!r} on {env_id!r} is exhausted (2**63)")
        return range(end - count, end)

    def evaluation_seed(self, env_id: str, k: int) -> int:
        """The seed of evaluation episode ``k`` of ``env_id``, from the server secret.

        See :func:`gymrpc_server.scores.seeds.derive_seed` for the derivation. The same
        on every server sharing the database, and after restarts.
        """
        derive = self.__derivers.get(env_id)
        if derive is None:
            derive = self.__derivers.setdefault(env_id, SeedDeriver(self.__secret, env_id))
        return derive(k)

    # Queries.

    def score(self, user: str, env_id: str, *, window: int | None = None) -> queries.Score | None:
        """``user``'s score on ``env_id``; ``None`` before their first evaluation episode.

        Raises:
            StoreUnavailableError: If the database cannot be reached.
        """
        found = self._run(
            lambda c: queries.scores(c, self._window(window), user=user, env_id=env_id)
        )
        return found[0] if found else None

    def user_scores(self, user: str, *, window: int | None = None) -> tuple[queries.Score, ...]:
        """``user``'s score on every environment they were evaluated on, by env_id."""
        return self._run(lambda c: queries.scores(c, self._window(window), user=user))

    def leaderboard(
        self,
        env_id: str,
        *,
        page_size: int = 50,
        page_token: str | None = None,
        include_provisional: bool = True,
        window: int | None = None,
    ) -> queries.LeaderboardPage:
        """A page of ``env_id``'s leaderboard (see :func:`queries.leaderboard`)."""
        return self._run(
            lambda c: queries.leaderboard(
                c,
                env_id,
                self._window(window),
                page_size=page_size,
                page_token=page_token,
                include_provisional=include_provisional,
            )
        )

    def episodes(
        self,
        user: str,
        *,
        env_id: str | None = None,
        evaluation: bool | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> queries.EpisodePage:
        """A page of ``user``'s episodes, newest first (see :func:`queries.episode_page`)."""
        return self._run(
            lambda c: queries.episode_page(
                c,
                user,
                env_id=env_id,
                evaluation=evaluation,
                page_size=page_size,
                page_token=page_token,
            )
        )

    def score_history(
        self, user: str, env_id: str, *, limit: int | None = None, window: int | None = None
    ) -> tuple[queries.ScorePoint, ...]:
        """The score after each evaluation episode (see :func:`queries.score_history`)."""
        return self._run(
            lambda c: queries.score_history(c, user, env_id, self._window(window), limit=limit)
        )

    def score_histories(
        self,
        users: Sequence[str],
        env_id: str,
        *,
        limit: int | None = None,
        window: int | None = None,
    ) -> dict[str, tuple[queries.ScorePoint, ...]]:
        """Several users' score histories in one query (see :func:`queries.score_histories`)."""
        return self._run(
            lambda c: queries.score_histories(c, users, env_id, self._window(window), limit=limit)
        )

    # Plumbing.

    def _window(self, window: int | None) -> int:
        return self.settings.score_window if window is None else window

    def _run(self, work: Callable[[Connection], _T], *, write: bool = False) -> _T:
        """Run ``work`` in one transaction; database failures become StoreUnavailableError."""
        if self._closed:
            raise StoreUnavailableError(f"the scores store {self._database.name} is closed")
        try:
            with self._transaction(write=write) as connection:
                return work(connection)
        except SQLAlchemyError as error:
            message = describe_error(error, self._database)
            logger.warning("scores database %s failed: %s", self._database.name, message)
            raise StoreUnavailableError(
                f"the scores database {self._database.name} is unavailable: {message}"
            ) from error

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        if write:
            with write_transaction(self._engine) as connection:
                yield connection
        else:
            with self._engine.connect() as connection, connection.begin():
                yield connection

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
