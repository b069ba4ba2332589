"""Alembic migrations of the scores database, applied by the store when it opens.

There is no ``alembic.ini``: :func:`upgrade` builds the configuration in code and runs
``alembic upgrade head`` on a connection the caller holds inside a transaction, so that
the caller can lock the database first (two servers opening one new database at once
would otherwise both create the tables). ``env.py`` takes that connection, or, for
``alembic revision --autogenerate`` against a scratch database, the ``sqlalchemy.url``
option::

    from alembic import command
    from gymrpc_server.scores.migrations import alembic_config

    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "sqlite:////tmp/scratch.sqlite3")
    command.upgrade(config, "head")
    command.revision(config, message="add x", rev_id="002", autogenerate=True)

Revisions live in ``versions/`` as ``vNNN_<what>.py``; each is plain Alembic and does
not import :mod:`gymrpc_server.scores.schema` (a revision describes the schema of its
own time, not today's).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["SCRIPT_LOCATION", "alembic_config", "current_revision", "head_revision", "upgrade"]

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of the scores database.

    Args:
        connection: The connection ``env.py`` migrates (in its current transaction).
    """
    config = Config()
    # ConfigParser interpolates "%": a path containing one must double it.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this gymrpc knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions has no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database to the newest revision, inside ``connection``'s transaction.

    Raises:
        alembic.util.CommandError: If the database is at a revision this gymrpc does not
            know (a newer gymrpc migrated it).
        sqlalchemy.exc.SQLAlchemyError: If a statement fails.
    """
    command.upgrade(alembic_config(connection), "head")
