"""Fixtures of the scores tests: real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from postgres import PostgresServer

from gymrpc_server.scores import ScoreStore, StoreSettings, open_store

from .scores_testing import FAST, Worker, kill_all

OpenStore = Callable[..., ScoreStore]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (skipped without the binaries)."""
    with PostgresServer.start_new() as server:
        yield server


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, running again after the test even if the test stopped it."""
    yield postgres_server
    if not postgres_server.running:
        postgres_server.start()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A new empty PostgreSQL database (a schema of its own, see create_schema)."""
    return postgres.create_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database of each kind: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "scores.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_test_store() -> Iterator[OpenStore]:
    """Open stores (FAST settings unless given); close them after the test."""
    stores: list[ScoreStore] = []

    def opener(database: str, settings: StoreSettings = FAST) -> ScoreStore:
        store = open_store(database, settings)
        assert store is not None
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close(timeout=5)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """Start worker processes (see store_worker.py); kill those left at the end."""
    workers: list[Worker] = []

    def start(workdir: Path, name: str = "worker") -> Worker:
        workers.append(Worker(workdir, name))
        return workers[-1]

    yield start
    kill_all(workers)
