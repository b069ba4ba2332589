"""Writes episodes off the hot path: a bounded queue and one thread committing batches.

:meth:`EpisodeWriter.record` only appends to a queue and returns at once; when the
queue is full (the database has been unreachable for a while, or cannot keep up) it
returns False instead of waiting, so that the caller can refuse new evaluation work.
The thread commits a batch as soon as ``batch_size`` records wait or the oldest has
waited ``batch_interval``, whichever comes first.

A record leaves the queue only once its batch is committed. When a write fails the
batch stays at the head of the queue and is retried with exponential backoff (capped
at ``retry_max_interval``), for as long as it takes: nothing is lost while the process
lives. Each record carries an ``episode_id`` and the insert ignores ids already stored,
so a batch that was committed although the commit's answer was lost (the connection
died after COMMIT) is not stored twice: every record arrives exactly once.

A record that the database refuses for what it is (a duplicate evaluation k: the
unique constraint) cannot succeed on any retry. Such a batch is retried record by
record, and each refused record is dropped and logged as an error; the others are kept.

What a SIGKILL of the process loses is what the queue holds: the records of at most
the last ``batch_interval`` plus one commit (more only if the database is slower than
the producers, up to ``max_queued``).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gymrpc_server.scores.database import (
    Database,
    describe_error,
    dialect_insert,
    write_transaction,
)
from gymrpc_server.scores.episodes import Episode
from gymrpc_server.scores.schema import episode_row, episodes

__all__ = ["EpisodeWriter", "StoreStatus"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreStatus:
    """How recording is going.

    Attributes:
        healthy: True when the last write succeeded (or none was tried yet).
        queued: Records waiting to be written.
        written: Records committed since the store opened.
        dropped: Records the database refused for good (logged one by one).
        refused: Calls to ``record`` turned away because the queue was full or the
            store closed.
        last_error: One line on why the last write failed, while not healthy.
        failing_since: When the current outage began (UTC), while not healthy.
        last_write_at: When the last batch was committed (UTC).
        closed: True once ``close`` was called.
    """

    healthy: bool
    queued: int
    written: int
    dropped: int
    refused: int
    last_error: str | None
    failing_since: datetime | None
    last_write_at: datetime | None
    closed: bool


class EpisodeWriter:
    """Queues episodes and writes them from a thread (see the module).

    Args:
        engine: The database, migrated.
        database: Names it in logs and errors.
        max_queued: Records the queue holds at most.
        batch_size: Records committed at most per transaction.
        batch_interval: Seconds a record waits at most before its batch is committed.
        retry_max_interval: Longest wait, in seconds, between two attempts while the
            database is unreachable.
    """

    def __init__(
        self,
        engine: Engine,
        database: Database,
        *,
        max_queued: int,
        batch_size: int,
        batch_interval: float,
        retry_max_interval: float,
    ) -> None:
        self._engine = engine
        self._database = database
        self._max_queued = max_queued
        self._batch_size = batch_size
        self._batch_interval = batch_interval
        self._retry_max_interval = retry_max_interval
        self._insert = dialect_insert(episodes, engine.dialect.name).on_conflict_do_nothing(
            index_elements=[episodes.c.episode_id]
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # (enqueued at, episode), oldest first; the head batch stays until committed.
        self._queue: collections.deque[tuple[float, Episode]] = collections.deque()
        self._enqueued = 0  # records ever accepted
        self._done = 0  # records ever taken off the queue (written or dropped)
        self._written = 0
        self._dropped = 0
        self._refused = 0
        self._urgent = False  # a flush waits: do not wait for the batch interval
        self._closed = False
        self._deadline: float | None = None  # set by close: give up after it
        self._retry_at = 0.0
        self._backoff = 0.0
        self._last_error: str | None = None
        self._failing_since: datetime | None = None
        self._last_write_at: datetime | None = None
        self._full_logged = False
        self._thread = threading.Thread(target=self._run, name="gymrpc-scores-writer", daemon=True)
        self._thread.start()

    def record(self, episode: Episode) -> bool:
        """Queue ``episode`` to be written; never blocks.

        Returns:
            True when queued; False when the queue is full or the writer closed (the
            episode is not recorded; the caller should refuse new evaluation work).
        """
        with self._lock:
            if self._closed or len(self._queue) >= self._max_queued:
                self._refused += 1
                if not self._full_logged:
                    self._full_logged = True
                    logger.warning(
                        "not recording episodes to %s: %s (%d waiting); refusing until "
                        "there is room",
                        self._database.name,
                        "the store is closed" if self._closed else "the queue is full",
                        len(self._queue),
                    )
                return False
            self._full_logged = False
            self._queue.append((time.monotonic(), episode))
            self._enqueued += 1
            # Wake the thread only when it has a reason to act: the first record starts
            # the batch interval, a full batch is written at once.
            if len(self._queue) == 1 or len(self._queue) == self._batch_size:
                self._changed.notify_all()
            return True

    def flush(self, timeout: float) -> bool:
        """Write everything queued before this call, waiting up to ``timeout`` seconds.

        Returns:
            True when all of it is written (or dropped as refused, which is logged);
            False on timeout, for example while the database is unreachable.
        """
        with self._lock:
            target = self._enqueued
            if self._done >= target:
                return True
            self._urgent = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float) -> bool:
        """Refuse new records, write the queued ones (up to ``timeout`` s) and stop.

        Returns:
            True when nothing was left unwritten. Otherwise the records still queued are
            lost, and an error says how many.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._deadline = time.monotonic() + timeout
                self._changed.notify_all()
            deadline = self._deadline
        assert deadline is not None
        # A write in progress at the deadline is given a moment to finish.
        self._thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)
        with self._lock:
            left = len(self._queue)
        if self._thread.is_alive():
            logger.error(
                "the writer of %s is still busy after %.1f s; %d episodes may be lost",
                self._database.name,
                timeout,
                left,
            )
            return False
        if left:
            logger.error(
                "%d episodes could not be written to %s before closing and are lost: %s",
                left,
                self._database.name,
                self._last_error,
            )
        return left == 0

    def status(self) -> StoreStatus:
        """A snapshot of the writer's state."""
        with self._lock:
            return StoreStatus(
                healthy=self._last_error is None,
                queued=len(self._queue),
                written=self._written,
                dropped=self._dropped,
                refused=self._refused,
                last_error=self._last_error,
                failing_since=self._failing_since,
                last_write_at=self._last_write_at,
                closed=self._closed,
            )

    # The thread.

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                handled = self._write(batch)
            except Exception as error:  # a bug, not the database: keep the records, retry
                logger.exception("writing episodes to %s failed unexpectedly", self._database.name)
                self._failed(error, len(batch))
                handled = 0
            with self._lock:
                for _ in range(handled):
                    self._queue.popleft()
                self._done += handled
                if not self._queue:
                    self._urgent = False
                self._changed.notify_all()

    def _next_batch(self) -> list[Episode] | None:
        """Wait until a batch is due and return it; ``None`` when it is time to stop."""
        with self._lock:
            while True:
                now = time.monotonic()
                if self._deadline is not None and (not self._queue or now >= self._deadline):
                    return None
                wake_at: float | None = None
                if self._queue:
                    due = (
                        self._urgent
                        or self._closed
                        or len(self._queue) >= self._batch_size
                        or now >= self._queue[0][0] + self._batch_interval
                    )
                    if due and now >= self._retry_at:
                        return [
                            episode
                            for _, episode in itertools.islice(self._queue, self._batch_size)
                        ]
                    wake_at = self._retry_at if due else self._queue[0][0] + self._batch_interval
                if self._deadline is not None:
                    wake_at = self._deadline if wake_at is None else min(wake_at, self._deadline)
                self._changed.wait(None if wake_at is None else max(wake_at - now, 0.0))

    def _write(self, batch: list[Episode]) -> int:
        """Write ``batch``; return how many from its front are done (written or dropped)."""
        rows = [episode_row(episode) for episode in batch]
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(self._insert, rows)
        except IntegrityError:
            # Some record breaks a constraint: find it by writing one record at a time.
            return self._write_one_by_one(batch)
        except Exception as error:
            self._failed(error, len(batch))
            return 0
        self._succeeded(len(batch))
        return len(batch)

    def _write_one_by_one(self, batch: list[Episode]) -> int:
        for index, episode in enumerate(batch):
            try:
                with write_transaction(self._engine) as connection:
                    connection.execute(self._insert, [episode_row(episode)])
            except IntegrityError as error:
                logger.error(
                    "%s refused an episode, which is dropped: user=%r env_id=%r k=%r "
                    "episode_id=%s session_id=%s: %s",
                    self._database.name,
                    episode.user,
                    episode.env_id,
                    episode.k,
                    episode.episode_id,
                    episode.session_id,
                    describe_error(error, self._database),
                )
                with self._lock:
                    self._dropped += 1
            except Exception as error:
                self._failed(error, len(batch) - index)
                return index
            else:
                self._succeeded(1)
        return len(batch)

    def _succeeded(self, count: int) -> None:
        with self._lock:
            if self._last_error is not None:
                assert self._failing_since is not None
                logger.warning(
                    "writing episodes to %s works again after %.1f s; %d waiting",
                    self._database.name,
                    (datetime.now(UTC) - self._failing_since).total_seconds(),
                    len(self._queue) - count,
                )
            self._written += count
            self._last_error = None
            self._failing_since = None
            self._backoff = 0.0
            self._retry_at = 0.0
            self._last_write_at = datetime.now(UTC)

    def _failed(self, error: BaseException, count: int) -> None:
        message = describe_error(error, self._database)
        with self._lock:
            first = self._last_error is None
            self._last_error = message
            if first:
                self._failing_since = datetime.now(UTC)
            self._backoff = min(
                max(self._backoff * 2, self._batch_interval, 0.05), self._retry_max_interval
            )
            self._retry_at = time.monotonic() + self._backoff
            waiting = len(self._queue)
            backoff = self._backoff
        if first:
            logger.error(
                "cannot write %d episodes to %s (%d waiting, kept and retried): %s",
                count,
                self._database.name,
                waiting,
                message,
            )
        else:
            logger.warning(
                "still cannot write to %s (%d episodes waiting; next try in %.1f s): %s",
                self._database.name,
                waiting,
                backoff,
                message,
            )
