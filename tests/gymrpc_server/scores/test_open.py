"""Opening the store: where the database is, its schema, and one clear error when it fails."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from postgres import PostgresServer
from sqlalchemy import create_engine, text

from gymrpc_server.scores import StoreOpenError, open_store
from gymrpc_server.scores.schema import metadata

from .conftest import OpenStore
from .scores_testing import FAST


@pytest.mark.parametrize("value", ["none", "None", " NONE "])
def test_none_turns_recording_off(value: str) -> None:
    assert open_store(value) is None


def test_default_is_sqlite_in_the_user_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_test_store: OpenStore
) -> None:
    # platformdirs follows the XDG variables on Linux.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store(None, FAST)
    assert store is not None
    store.close()
    expected = tmp_path / "data" / "gymrpc" / "scores.sqlite3"
    assert store.database == str(expected)
    assert store.backend == "sqlite"
    with sqlite3.connect(expected) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert {"episodes", "evaluation_counters", "server_secret", "alembic_version"} <= tables


def test_a_path_and_a_sqlite_url_open_the_same_file(
    tmp_path: Path, open_test_store: OpenStore
) -> None:
    path = tmp_path / "scores.sqlite3"
    first = open_test_store(str(path))
    second = open_test_store(f"sqlite:///{path}")
    assert first.database == second.database == str(path)
    assert first.evaluation_seed("A-v0", 0) == second.evaluation_seed("A-v0", 0)


def test_migrations_build_the_schema_the_code_uses(database: str) -> None:
    store = open_store(database, FAST)
    assert store is not None
    store.close()
    url = database if "://" in database else f"sqlite:///{database}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []


def _one_line_error(database: str) -> str:
    with pytest.raises(StoreOpenError) as info:
        open_store(database, FAST)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot open the scores database ")
    return message


def test_unopenable_sqlite_paths_raise_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "scores.sqlite3"
    assert _one_line_error(str(missing)) == (
        f"cannot open the scores database {missing}: the directory {missing.parent} does not exist"
    )
    assert not missing.parent.exists()

    assert _one_line_error(str(tmp_path)).endswith(
        f"{tmp_path}: it is a directory; expected a file"
    )

    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are not the scores you are looking for\n" * 100)
    message = _one_line_error(str(not_a_database))
    assert message == f"cannot open the scores database {not_a_database}: file is not a database"
    assert not_a_database.read_text().startswith("these are not")  # left untouched


@pytest.mark.parametrize(
    ("database", "cause"),
    [
        pytest.param("sqlite://", "expected a file", id="sqlite-no-path"),
        pytest.param("sqlite:///:memory:", "in-memory database would lose", id="memory"),
        pytest.param("mysql://bob:hunter2@db/scores", "unsupported kind 'mysql'", id="mysql"),
        pytest.param("postgresql+psycopg://bob:hunter2@db:port/x", "not a valid URL", id="bad"),
    ],
)
def test_unsupported_urls_raise_one_line_without_password(database: str, cause: str) -> None:
    message = _one_line_error(database)
    assert cause in message
    assert "hunter2" not in message


def test_unreachable_postgresql_raises_one_line_without_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = _one_line_error(f"postgresql+psycopg://bob:hunter2@127.0.0.1:{port}/scores")
    assert message.startswith(
        f"cannot open the scores database postgresql+psycopg://bob:***@127.0.0.1:{port}/scores: "
    )
    assert "Connection refused" in message
    assert "hunter2" not in message


def test_wrong_password_and_missing_database_are_named(postgres: PostgresServer) -> None:
    message = _one_line_error(postgres.url(password="not-the-password"))
    assert "password authentication failed" in message
    assert "not-the-password" not in message
    assert postgres.password not in message

    message = _one_line_error(postgres.url("no_such_database"))
    assert 'database "no_such_database" does not exist' in message
    assert postgres.password not in message
    assert "gymrpc:***@" in message


def test_a_schema_from_a_newer_gymrpc_is_refused(database: str) -> None:
    store = open_store(database, FAST)
    assert store is not None
    store.close()
    url = database if "://" in database else f"sqlite:///{database}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '999'"))
    engine.dispose()
    message = _one_line_error(database)
    assert "999" in message
    assert "is a newer gymrpc using it?" in message
