"""A SIGKILL of the recording process loses only records not yet committed.

The worker records ``N`` numbered episodes at a steady pace, reports how many the store
had confirmed, and SIGKILLs itself. What the database holds must be exactly the first
``m`` episodes (batches are committed whole and in order), with ``m`` at least the
confirmed count; ``N - m`` is what the kill lost (``measure_store.py`` reports it over
many runs). The database must then open as usual.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .conftest import OpenStore
from .scores_testing import Worker, stored_episode_ids

RECORDS = 600


def test_sigkill_loses_only_the_uncommitted_tail(
    database: str,
    tmp_path: Path,
    spawn: Callable[..., Worker],
    open_test_store: OpenStore,
    record_property: Callable[[str, object], None],
) -> None:
    worker = spawn(tmp_path)
    worker.open(database)
    worker.send("record_then_die", prefix="kill", count=RECORDS, chunk=10, pause=0.005)
    confirmed = worker.receive()["written"]
    assert worker.wait() == -signal.SIGKILL

    stored = sorted(int(episode_id.split("-")[1]) for episode_id in stored_episode_ids(database))
    assert stored == list(range(len(stored))), "not a prefix: a batch was split or reordered"
    assert confirmed <= len(stored) <= RECORDS
    record_property("lost", RECORDS - len(stored))

    if "://" not in database:  # SQLite
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()
    store = open_test_store(database)
    assert len(store.episodes("worker", page_size=1000).episodes) == min(len(stored), 1000)
