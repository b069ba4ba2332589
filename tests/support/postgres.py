"""A real PostgreSQL server for tests, started from Debian's ``postgresql`` package.

The server runs from a fresh private temporary directory, listens on a free 127.0.0.1
port (TCP connections need the password) and on a Unix socket inside that directory,
nowhere else, and :meth:`PostgresServer.close` removes it all. PostgreSQL refuses to
run as root, so when the tests run as root (as CI does) the server runs as the system
user ``gymrpc-pg`` (see :func:`unprivileged_account`), created on first use::

    with PostgresServer.start_new() as server:
        url = server.create_schema()  # postgresql+psycopg://gymrpc:...@127.0.0.1:port/postgres?...
        ...
        server.stop()   # an outage
        server.start()  # the same data, the same port

Without the binaries (``apt-get install postgresql``), :func:`require_bin_dir` skips
the test on a developer's machine and fails it under CI (``CI`` set), where their
absence means ``.ci/run`` did not install them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
import pytest

__all__ = [
    "UNPRIVILEGED_USER",
    "Account",
    "PostgresServer",
    "find_bin_dir",
    "require_bin_dir",
    "unprivileged_account",
]

#: The system user that runs what must not run as root.
UNPRIVILEGED_USER = "gymrpc-pg"
#: The superuser that initdb creates; the tests connect as it.
SUPERUSER = "gymrpc"
#: Far above what initdb or a start takes on a small shared machine: only hangs reach it.
COMMAND_TIMEOUT = 120.0
_BIN_GLOB = "/usr/lib/postgresql/*/bin"


@dataclass(frozen=True)
class Account:
    """A user that child processes run as.

    Attributes:
        name: The user name.
        uid: Its user id.
        gid: Its primary group id.
    """

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        """Arguments of :class:`subprocess.Popen` that run the child as this account."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def give(self, path: Path) -> None:
        """Make ``path`` (a file or a directory tree) this account's."""
        if self.uid == os.geteuid():
            return
        for root, dirs, files in os.walk(path):
            os.chown(root, self.uid, self.gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid)


def unprivileged_account() -> Account:
    """The account that children which must not be root run as.

    Returns:
        The current user when it is not root; otherwise ``gymrpc-pg``, a system user
        without a home or a login shell, created now if it does not exist.
    """
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    useradd = shutil.which("useradd")
    if useradd is None:
        pytest.fail(f"running as root without useradd to create the user {UNPRIVILEGED_USER}")
    # Exit status 9: another test run created it in the meantime, which is just as good.
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", UNPRIVILEGED_USER],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode not in (0, 9):
        pytest.fail(f"useradd {UNPRIVILEGED_USER} failed: {result.stderr.strip()}")
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, if any."""
    found = [Path(path) for path in glob.glob(_BIN_GLOB)]
    usable = [path for path in found if (path / "initdb").exists() and (path / "pg_ctl").exists()]
    # Directories are named by major version ("15", "16"): compare them as numbers.
    usable.sort(key=lambda path: int(re.sub(r"\D", "", path.parent.name) or 0))
    return usable[-1] if usable else None


def require_bin_dir() -> Path:
    """The PostgreSQL binaries, or skip the test (fail it under CI) when missing."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL binaries not found under {_BIN_GLOB}: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    return bin_dir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory.

    Args:
        bin_dir: Where initdb, pg_ctl and postgres are.
        account: Who runs the server (never root).
        durable: Keep PostgreSQL's fsync on. Off by default: the tests stop the server
            cleanly or kill clients, never the machine, and fsync only slows them down.

    Attributes:
        port: The 127.0.0.1 port it listens on (kept across :meth:`stop`/:meth:`start`).
        password: The superuser's password.
    """

    def __init__(self, bin_dir: Path, account: Account, *, durable: bool = False) -> None:
        self._bin = bin_dir
        self._account = account
        self.base = Path(tempfile.mkdtemp(prefix="gymrpc-pg-"))
        self._data = self.base / "data"
        self._log = self.base / "postgres.log"
        self.password = secrets.token_hex(16)
        self.port = 0
        self._schemas = 0
        self._running = False
        try:
            self._initdb(durable=durable)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    @classmethod
    def start_new(cls, *, durable: bool = False) -> Self:
        """Create a cluster with the installed binaries and start it (see the class)."""
        server = cls(require_bin_dir(), unprivileged_account(), durable=durable)
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            cwd=self.base,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"},
            **self._account.popen_kwargs(),
        )
        if result.returncode != 0:
            log = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log}"
            )

    def _initdb(self, *, durable: bool) -> None:
        password_file = self.base / "password"
        password_file.write_text(self.password)
        self.base.chmod(0o700)
        self._account.give(self.base)
        self._run(
            str(self._bin / "initdb"),
            "--pgdata", str(self._data),
            "--username", SUPERUSER,
            "--pwfile", str(password_file),
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        password_file.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": "100",
            "fsync": "on" if durable else "off",
            "full_page_writes": "on" if durable else "off",
            "log_min_messages": "warning",
        }
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        """Start the server (again, on the same port after :meth:`stop`) and wait for it."""
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            port = self.port or _free_port()
            try:
                self._run(
                    str(self._bin / "pg_ctl"), "start", "--wait", "--timeout", "60",
                    "--pgdata", str(self._data), "--log", str(self._log), "-o", f"-p {port}",
                )  # fmt: skip
            except RuntimeError:
                # Another process may have taken the free port in between: try another.
                if attempt == attempts - 1:
                    raise
                continue
            self.port = port
            self._running = True
            return

    def stop(self) -> None:
        """Stop the server (a fast shutdown: sessions are disconnected, data is kept)."""
        if self._running:
            self._run(
                str(self._bin / "pg_ctl"), "stop", "--wait", "--timeout", "60",
                "--pgdata", str(self._data), "--mode", "fast",
            )  # fmt: skip
            self._running = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A SQLAlchemy URL of ``database`` (with another ``password`` to get it wrong)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def create_schema(self) -> str:
        """Create an empty schema and return a URL whose connections work inside it.

        A schema, not a database: ``CREATE DATABASE`` takes a second or more on a busy
        machine, ``CREATE SCHEMA`` a millisecond, and code that names no schema (as
        gymrpc's does not) behaves the same in both. The URL sets ``search_path``.
        """
        self._schemas += 1
        name = f"test_{os.getpid()}_{self._schemas}"
        conninfo = (
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} password={self.password} "
            "dbname=postgres"
        )
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        return self.url() + f"?options=-csearch_path%3D{name}"

    def close(self) -> None:
        """Stop the server if running and delete its directory."""
        try:
            if self._running:
                self._run(
                    str(self._bin / "pg_ctl"), "stop", "--wait", "--pgdata", str(self._data),
                    "--mode", "immediate",
                )  # fmt: skip
                self._running = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
