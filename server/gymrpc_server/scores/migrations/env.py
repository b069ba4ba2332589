"""Alembic's entry point: migrates the connection handed over by :func:`upgrade`.

See the package's docstring. Offline mode (``--sql``) is not supported: the store always
migrates a live database, under a lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from gymrpc_server.scores.schema import metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; later revisions use op.batch_alter_table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # Inside the caller's transaction this opens none of its own (Alembic sees it).
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the scores migrations run online only (no --sql)")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("give env.py a connection (attributes) or a sqlalchemy.url option")
    engine = create_engine(url)
    try:
        with engine.begin() as own:
            _migrate(own)
    finally:
        engine.dispose()


_run()
