"""Which database, how to connect to it, and how to write to it safely from several processes.

``--database`` takes one of:

* nothing: SQLite at ``platformdirs.user_data_dir("gymrpc")/scores.sqlite3``;
* a path, or ``sqlite:///path``: SQLite at that path (its directory must exist);
* ``postgresql+psycopg://user:password@host:port/database`` (or ``postgresql://``): a
  PostgreSQL database that several gymrpc servers share;
* ``none``: no recording (:func:`resolve_database` returns ``None``).

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and every
write transaction starts with ``BEGIN IMMEDIATE``: it takes the file's write lock at once,
waiting up to the busy timeout for another process's, so that two processes writing the
same file queue up instead of failing. Every transaction opens the file afresh (no
pool): a file made read-only, moved or deleted under a running server is noticed at
the next write, instead of hidden behind an open descriptor, and a missing file is
never silently re-created after the first open. Opening costs tens of microseconds,
nothing next to a batch; one idle connection stays open meanwhile (see
:func:`hold_wal_open`).
"""

from __future__ import annotations

import re
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, Table, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from gymrpc_server.scores import migrations
from gymrpc_server.scores.errors import StoreOpenError

__all__ = [
    "DEFAULT_FILENAME",
    "Database",
    "connect",
    "default_path",
    "describe_error",
    "dialect_insert",
    "hold_wal_open",
    "open_database",
    "resolve_database",
    "write_transaction",
]

DEFAULT_FILENAME = "scores.sqlite3"
#: An execution option: this transaction will write (SQLite: ``BEGIN IMMEDIATE``).
_WRITE = "gymrpc_write"
_POSTGRES_DRIVERS = {"postgresql", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_MMAP_BYTES = 256 * 1024 * 1024
#: The PostgreSQL advisory lock that serialises migrations ("gymrpc" and 1).
_MIGRATION_LOCK = 0x67796D7270630001


@dataclass(frozen=True)
class Database:
    """A database to open.

    Attributes:
        backend: ``"sqlite"`` or ``"postgresql"``.
        url: The SQLAlchemy URL (for SQLite, of ``path``).
        path: The SQLite file; ``None`` for PostgreSQL.
        default: True for the default SQLite file (its directory is created).
    """

    backend: str
    url: URL
    path: Path | None = None
    default: bool = False

    @property
    def name(self) -> str:
        """How messages and logs name the database: the path, or the URL without password."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)


def default_path() -> Path:
    """The default SQLite file: ``scores.sqlite3`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("gymrpc")) / DEFAULT_FILENAME


def resolve_database(database: str | None) -> Database | None:
    """Interpret a ``--database`` value (see the module).

    Args:
        database: A path, a URL, ``"none"``, or ``None``/``""`` for the default file.

    Returns:
        What to open, or ``None`` for ``"none"`` (recording off).

    Raises:
        StoreOpenError: If the URL is malformed or names an unsupported database.
    """
    if database is None or not database.strip():
        path = default_path()
        return Database("sqlite", _sqlite_url(path), path, default=True)
    if database.strip().lower() == "none":
        return None
    if "://" not in database:
        path = Path(database).expanduser().absolute()
        return Database("sqlite", _sqlite_url(path), path)
    try:
        url = make_url(database)
    except (ArgumentError, ValueError) as error:
        raise StoreOpenError(
            f"cannot open the scores database {_scrub(database)}: not a valid URL ({error})"
        ) from None
    driver = url.drivername
    if driver in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:":
            raise StoreOpenError(
                f"cannot open the scores database {database}: expected a file, "
                "sqlite:///path/to/scores.sqlite3 (an in-memory database would lose everything)"
            )
        path = Path(url.database).expanduser().absolute()
        return Database("sqlite", _sqlite_url(path), path)
    if driver in _POSTGRES_DRIVERS:
        # psycopg (3) is the driver gymrpc ships with (the ``postgres`` extra).
        return Database("postgresql", url.set(drivername="postgresql+psycopg"))
    raise StoreOpenError(
        f"cannot open the scores database {url.render_as_string(hide_password=True)}: "
        f"unsupported kind {driver!r}; expected a path, sqlite:///path, "
        "postgresql+psycopg://user:password@host/database, or none"
    )


def _sqlite_url(path: Path) -> URL:
    return URL.create("sqlite+pysqlite", database=str(path))


def _scrub(text: str) -> str:
    """Hide the password of anything shaped like ``scheme://user:password@host``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def describe_error(error: BaseException, database: Database) -> str:
    """A one-line description of ``error``, without the database's password.

    Drivers' messages span lines (psycopg adds hints); they are joined with "; ".
    """
    cause: BaseException = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig
    message = str(cause) or type(cause).__name__
    if database.url.password:
        message = message.replace(str(database.url.password), "***")
    lines = [" ".join(line.split()) for line in _scrub(message).splitlines()]
    return "; ".join(line for line in lines if line)


def connect(database: Database, *, busy_timeout: float, connect_timeout: float) -> Engine:
    """Create the engine of ``database`` (no connection is made yet).

    Args:
        database: What to connect to.
        busy_timeout: SQLite: seconds a transaction waits for another process's lock.
        connect_timeout: PostgreSQL: seconds a connection attempt may take.
    """
    if database.backend == "sqlite":
        assert database.path is not None
        return _sqlite_engine(database.path, busy_timeout=busy_timeout)
    return create_engine(
        database.url,
        # A server restarted under us leaves dead pooled connections: test before use.
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "gymrpc",
            # Notice a peer that vanished without closing (a cut network) within about
            # 30 s instead of the kernel's two hours; the writer then reconnects and retries.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )


def _sqlite_engine(path: Path, *, busy_timeout: float) -> Engine:
    # mode=rw: after the first open, a deleted file is an error, not a new empty database.
    uri = f"file:{urllib.parse.quote(str(path))}?mode=rw"

    def open_file() -> sqlite3.Connection:
        return sqlite3.connect(
            uri,
            uri=True,
            timeout=busy_timeout,
            # SQLAlchemy issues BEGIN itself (see below) and the driver never does.
            isolation_level=None,
            check_same_thread=False,
        )

    engine = create_engine("sqlite+pysqlite://", creator=open_file, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # A committed batch survives a power cut, not only a crash: one fsync per batch.
        cursor.execute("PRAGMA synchronous = FULL")
        # Each transaction's connection starts with an empty page cache; reading through
        # a memory map uses the operating system's cache instead, warm from the last
        # transaction (address space only: 40% more episodes written per second here).
        cursor.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def create_sqlite_file(path: Path) -> None:
    """Create the SQLite file if missing, in WAL mode.

    Raises:
        sqlite3.Error: If the file cannot be opened, is not a database, or WAL mode
            cannot be set (the caller names the database in its message).
    """
    uri = f"file:{urllib.parse.quote(str(path))}?mode=rwc"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    try:
        # Reading the schema fails on a file that is not a database ("file is not a
        # database") before anything is written to it.
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        # WAL is a property of the file: set once, every later connection uses it.
        (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode (journal mode is {mode})")
    finally:
        connection.close()


def hold_wal_open(path: Path) -> sqlite3.Connection:
    """Open a connection that the store keeps, idle, for as long as it is open.

    When the last connection to a WAL database closes, SQLite checkpoints the WAL into
    the database and deletes it: with a connection per transaction, that would be one
    more fsync and file deletion per batch. This idle connection is never the one
    that writes, so it hides nothing from the per-transaction connections (a file made
    read-only is still read-only to them). Close it last.

    Raises:
        sqlite3.Error: If the file cannot be opened.
    """
    uri = f"file:{urllib.parse.quote(str(path))}?mode=rw"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    # The WAL is opened at the first read, not at connect.
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write, committed on exit (rolled back on an exception).

    On SQLite it starts with ``BEGIN IMMEDIATE`` (see the module); on PostgreSQL it is
    an ordinary transaction.
    """
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


def dialect_insert(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own ``INSERT``, which has ``ON CONFLICT`` clauses.

    Args:
        table: The table to insert into.
        dialect: ``"sqlite"`` or ``"postgresql"`` (``engine.dialect.name``).
    """
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def open_database(
    database: Database, *, busy_timeout: float = 10.0, connect_timeout: float = 10.0
) -> Engine:
    """Connect to ``database`` and bring its schema up to date.

    SQLite: the file is created if missing (the default file's directory too). Several
    servers opening one new database at once are safe: the migration runs under the
    database's write lock (SQLite) or an advisory lock (PostgreSQL), and whoever comes
    second finds the schema done.

    Args:
        database: From :func:`resolve_database`.
        busy_timeout: See :func:`connect`.
        connect_timeout: See :func:`connect`.

    Returns:
        The engine, connected once and migrated.

    Raises:
        StoreOpenError: With a one-line message naming the database and the cause.
    """

    def fail(cause: str) -> StoreOpenError:
        return StoreOpenError(f"cannot open the scores database {database.name}: {cause}")

    if database.path is not None:
        _prepare_sqlite_file(database, fail)
    try:
        engine = connect(database, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
    except ModuleNotFoundError as error:
        # The driver is an optional extra, imported only for a PostgreSQL URL.
        raise fail(f"{error}; install it with: pip install 'gymrpc[postgres]'") from error
    try:
        with write_transaction(engine) as connection:
            if database.backend == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            migrations.upgrade(connection)
    except CommandError as error:
        engine.dispose()
        raise fail(
            f"its schema is not one this gymrpc knows ({describe_error(error, database)}; "
            f"newest known revision {migrations.head_revision()}): is a newer gymrpc using it?"
        ) from error
    except (SQLAlchemyError, OSError) as error:
        engine.dispose()
        raise fail(describe_error(error, database)) from error
    return engine


#: How long opening a new SQLite file retries while another server sets it up.
_CREATE_RETRY_SECONDS = 30.0


def _prepare_sqlite_file(database: Database, fail: Callable[[str], StoreOpenError]) -> None:
    path = database.path
    assert path is not None
    if database.default:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise fail(f"cannot create its directory: {error}") from error
    if not path.parent.is_dir():
        raise fail(f"the directory {path.parent} does not exist")
    if path.is_dir():
        raise fail("it is a directory; expected a file")
    # Two servers creating the same new file race to switch it to WAL mode, which
    # needs the file to themselves: SQLite answers "database is locked" at once instead
    # of waiting. The loser tries again (after which the switch is a no-op).
    deadline = time.monotonic() + _CREATE_RETRY_SECONDS
    while True:
        try:
            create_sqlite_file(path)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise fail(describe_error(error, database)) from error
            time.sleep(0.05)
        except (sqlite3.Error, OSError) as error:
            raise fail(describe_error(error, database)) from error
