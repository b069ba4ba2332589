"""The write queue: batches, flush and close, duplicates, a full queue, a locked database.

Outages here are in-process and real: another connection holds SQLite's write lock, or
the file is deleted. ``test_outages.py`` takes the database away from other processes.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gymrpc_server.scores import ScoreStore, StoreSettings, StoreStatus, StoreUnavailableError

from .conftest import OpenStore
from .scores_testing import FAST, episode, stored_episode_ids

#: Bound on waiting for the writer to notice an outage: far above a few busy timeouts.
SOON = 30.0


def wait_for_status(store: ScoreStore, condition: Callable[[StoreStatus], bool]) -> StoreStatus:
    """Poll the store's status until ``condition`` holds (fail after SOON seconds)."""
    deadline = time.monotonic() + SOON
    while not condition(status := store.status()):
        assert time.monotonic() < deadline, f"status never matched: {status}"
        time.sleep(0.01)
    return status


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Hold the SQLite file's write lock from another connection, as another process could."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def test_everything_recorded_is_written_in_batches(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database, StoreSettings(**{**FAST.__dict__, "batch_size": 100}))
    made = [episode(minute=i) for i in range(1234)]
    assert all(store.record(item) for item in made)
    assert store.flush(timeout=30)
    status = store.status()
    assert (status.healthy, status.queued, status.written, status.refused) == (True, 0, 1234, 0)
    assert status.last_write_at is not None
    assert sorted(stored_episode_ids(database)) == sorted(e.episode_id for e in made)
    assert store.close(timeout=10)
    assert not store.record(episode())
    assert store.status().closed
    assert store.status().refused == 1
    with pytest.raises(StoreUnavailableError, match="is closed"):
        store.reserve_k("alice", "Env-v0")


def test_close_writes_what_is_queued(database: str, open_test_store: OpenStore) -> None:
    # A long batch interval: only close can be what writes these.
    store = open_test_store(database, StoreSettings(**{**FAST.__dict__, "batch_interval": 600}))
    made = [episode(minute=i) for i in range(10)]
    assert all(store.record(item) for item in made)
    assert store.status().queued == 10
    assert store.close(timeout=30)
    assert sorted(stored_episode_ids(database)) == sorted(e.episode_id for e in made)


def test_the_same_episode_recorded_twice_is_stored_once(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database)
    once = episode(k=0)
    assert store.record(once)
    assert store.flush(timeout=30)
    assert store.record(once)  # a retried batch looks like this
    assert store.flush(timeout=30)
    assert stored_episode_ids(database) == [once.episode_id]
    assert store.status().dropped == 0


def test_a_duplicate_k_is_dropped_and_logged_and_the_rest_written(
    database: str, open_test_store: OpenStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_test_store(database, StoreSettings(**{**FAST.__dict__, "batch_interval": 600}))
    first, duplicate, other = episode(k=7), episode(k=7, minute=1), episode(k=8)
    for item in (first, duplicate, other):
        assert store.record(item)
    with caplog.at_level(logging.ERROR, logger="gymrpc_server.scores"):
        assert store.flush(timeout=30)  # all three in one batch
    assert sorted(stored_episode_ids(database)) == sorted([first.episode_id, other.episode_id])
    status = store.status()
    assert (status.dropped, status.written, status.queued, status.healthy) == (1, 2, 0, True)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused an episode, which is dropped" in errors[0]
    assert duplicate.episode_id in errors[0]
    assert "k=7" in errors[0]


def test_a_locked_database_queues_refuses_when_full_and_recovers(
    tmp_path: Path, open_test_store: OpenStore, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scores.sqlite3"
    settings = StoreSettings(**{**FAST.__dict__, "max_queued": 20, "busy_timeout": 0.05})
    store = open_test_store(str(path), settings)
    assert store.record(episode(minute=0))
    assert store.flush(timeout=30)
    made = [episode(minute=i) for i in range(1, 21)]
    with write_locked(path):
        assert all(store.record(item) for item in made)
        status = wait_for_status(store, lambda s: not s.healthy)
        assert status.queued == 20
        assert status.last_error is not None
        assert "database is locked" in status.last_error
        assert status.failing_since is not None
        assert not store.record(episode(minute=99))  # full: refused at once
        assert store.status().refused == 1
        assert not store.flush(timeout=0.2)
        assert not store.healthy
    assert store.flush(timeout=30)
    status = store.status()
    assert (status.healthy, status.queued, status.written, status.last_error) == (True, 0, 21, None)
    assert len(stored_episode_ids(str(path))) == 21
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot write" in m and "kept and retried" in m for m in messages)
    assert any("works again" in m for m in messages)


def test_closing_during_an_outage_says_what_is_lost(
    tmp_path: Path, open_test_store: OpenStore, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scores.sqlite3"
    store = open_test_store(str(path), StoreSettings(**{**FAST.__dict__, "busy_timeout": 0.05}))
    with write_locked(path):
        for i in range(5):
            assert store.record(episode(minute=i))
        assert not store.close(timeout=0.5)
    assert stored_episode_ids(str(path)) == []
    assert any(
        "5 episodes could not be written" in r.getMessage() and "lost" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


def test_a_deleted_file_is_an_outage_not_a_new_database(
    tmp_path: Path, open_test_store: OpenStore
) -> None:
    path = tmp_path / "scores.sqlite3"
    store = open_test_store(str(path))
    assert store.record(episode())
    assert store.flush(timeout=30)
    for leftover in tmp_path.glob("scores.sqlite3*"):
        leftover.unlink()
    assert store.record(episode(minute=1))
    status = wait_for_status(store, lambda s: not s.healthy)
    assert status.last_error is not None
    assert "unable to open database file" in status.last_error
    assert not path.exists()
    assert store.status().queued == 1
    assert not store.close(timeout=0.2)
    assert not path.exists()
