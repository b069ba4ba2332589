"""The database goes away while episodes are recorded, then comes back: none is lost.

SQLite: the database files are made read-only under a worker process (which obeys file
modes even when the tests run as root). PostgreSQL: the server is stopped
(a fast shutdown) and started again. While it lasts, the status reports the outage,
records stay queued, and k reservations fail with StoreUnavailableError; afterwards
every record is stored exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from postgres import PostgresServer

from gymrpc_server.scores import StoreUnavailableError

from .conftest import OpenStore
from .scores_testing import Worker, episode, stored_episode_ids
from .test_writer import wait_for_status

SOON = 30.0


def set_mode(directory: Path, mode: int) -> None:
    """chmod the database and its -wal and -shm files, as an operator would."""
    for path in directory.glob("scores.sqlite3*"):
        path.chmod(mode)


def wait_for_worker_status(
    worker: Worker, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + SOON
    while not condition(status := worker.request("status")):
        assert time.monotonic() < deadline, f"status never matched: {status}"
        time.sleep(0.02)
    return status


def test_sqlite_made_read_only_then_writable_again(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    path = tmp_path / "scores.sqlite3"
    worker = spawn(tmp_path)
    worker.open(str(path))
    assert worker.request("record", prefix="before", start=0, count=50) == {"accepted": 50}
    assert worker.request("flush", timeout=30) == {"flushed": True}

    set_mode(tmp_path, 0o444)
    try:
        assert worker.request("record", prefix="during", start=0, count=50) == {"accepted": 50}
        status = wait_for_worker_status(worker, lambda s: not s["healthy"])
        assert status["queued"] == 50
        assert "readonly database" in status["last_error"]
        worker.send("reserve", user="alice", env_id="A-v0", counts=[1])
        refused = worker.receive()
        assert refused["error"].startswith("StoreUnavailableError: the scores database ")
        assert worker.request("flush", timeout=0.2) == {"flushed": False}
    finally:
        set_mode(tmp_path, 0o644)

    assert worker.request("flush", timeout=30) == {"flushed": True}
    status = worker.request("status")
    assert (status["healthy"], status["queued"], status["written"]) == (True, 0, 100)
    assert worker.request("close", timeout=10) == {"closed": True}
    stored = stored_episode_ids(str(path))
    expected = [f"{prefix}-{i:08d}" for prefix in ("before", "during") for i in range(50)]
    assert sorted(stored) == expected  # each exactly once
    assert "cannot write" in worker.stderr()  # the outage was logged


def test_postgresql_stopped_then_restarted(
    postgres: PostgresServer, postgres_url: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(postgres_url)
    before = [episode(minute=i) for i in range(50)]
    assert all(store.record(item) for item in before)
    assert store.flush(timeout=30)

    postgres.stop()
    try:
        during = [episode(minute=100 + i) for i in range(50)]
        assert all(store.record(item) for item in during)
        status = wait_for_status(store, lambda s: not s.healthy)
        assert status.queued == 50
        assert status.last_error is not None
        assert "127.0.0.1" in status.last_error
        assert postgres.password not in status.last_error
        with pytest.raises(StoreUnavailableError, match="is unavailable: "):
            store.reserve_k("alice", "A-v0")
        with pytest.raises(StoreUnavailableError):
            store.leaderboard("Env-v0")
        assert not store.flush(timeout=0.2)
    finally:
        postgres.start()

    assert store.flush(timeout=30)
    status = store.status()
    assert (status.healthy, status.queued, status.written) == (True, 0, 100)
    assert sorted(stored_episode_ids(postgres_url)) == sorted(e.episode_id for e in before + during)
    assert store.reserve_k("alice", "A-v0") == range(0, 1)
