"""Measures the scores store: episodes written per second, and what a SIGKILL loses.

Not a test (pytest does not collect it, and nothing here asserts a time). Run it from
the repository root; it takes about a minute and prints a table::

    .venv/bin/python tests/gymrpc_server/scores/measure_store.py [--episodes 50000] [--kills 8]

Throughput: one thread records ``--episodes`` episodes as fast as it can into a store
with a queue large enough to hold them all; the time runs from the first ``record``
to the end of ``flush``. Both the caller's cost per ``record`` and the writer's
episodes per second are printed, for SQLite (WAL, synchronous=FULL, in a temporary
directory) and PostgreSQL (a local server started for the run, fsync on).

SIGKILL: a worker process records numbered episodes and SIGKILLs itself (see
``store_worker.py``), at a steady ~2,000 episodes/s and in one burst; the loss is what
it recorded minus what the database holds. The worst case over ``--kills`` runs each is
printed next to the bound that the settings give.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "support")]

from postgres import PostgresServer  # noqa: E402

from gymrpc_server.scores import StoreSettings, open_store  # noqa: E402
from scores.scores_testing import (  # noqa: E402
    FAST,
    Worker,
    episode,
    settings_dict,
    stored_episode_ids,
)


@contextmanager
def databases(with_postgres: bool) -> Iterator[dict[str, Iterator[str]]]:
    """Fresh databases of each kind, one per ``next()``."""
    with tempfile.TemporaryDirectory(prefix="gymrpc-measure-") as directory:
        paths = (str(Path(directory) / f"scores-{i}.sqlite3") for i in range(10_000))
        if not with_postgres:
            yield {"sqlite": paths}
            return
        with PostgresServer.start_new(durable=True) as server:
            urls = (server.create_schema() for _ in range(10_000))
            yield {"sqlite": paths, "postgresql": urls}


def throughput(database: str, count: int) -> tuple[float, float]:
    """Return (microseconds per record call, episodes written per second)."""
    settings = StoreSettings(max_queued=count + 1)
    store = open_store(database, settings)
    assert store is not None
    made = [episode(minute=i % 10_000) for i in range(count)]
    started = time.perf_counter()
    for item in made:
        store.record(item)
    recorded = time.perf_counter()
    assert store.flush(timeout=600)
    written = time.perf_counter()
    assert store.close()
    assert store.status().written == count
    return (recorded - started) / count * 1e6, count / (written - started)


def kill_loss(database: str, workdir: Path, *, count: int, chunk: int, pause: float) -> int:
    """Record ``count`` episodes in a worker that then SIGKILLs itself; return the loss."""
    worker = Worker(workdir)
    try:
        worker.request("open", database=database, settings=settings_dict(StoreSettings()))
        worker.send("record_then_die", prefix="kill", count=count, chunk=chunk, pause=pause)
        worker.receive()
        assert worker.wait() == -signal.SIGKILL
    finally:
        worker.kill()
    return count - len(stored_episode_ids(database))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50_000, help="episodes per throughput run")
    parser.add_argument(
        "--kills", type=int, default=8, help="SIGKILL runs per pattern and database"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    defaults = StoreSettings()
    print(
        f"settings: batch_size={defaults.batch_size} batch_interval={defaults.batch_interval}s "
        f"max_queued={defaults.max_queued} (tests use batch_interval={FAST.batch_interval}s)"
    )
    with databases(not args.no_postgres) as fresh, tempfile.TemporaryDirectory() as workdir:
        for kind, supply in fresh.items():
            per_call, per_second = throughput(next(supply), args.episodes)
            print(
                f"{kind:10} throughput: record() {per_call:5.1f} us/call; "
                f"written {per_second:8,.0f} episodes/s ({args.episodes:,} episodes)"
            )
            for pattern, count, chunk, pause in (
                ("steady ~2,000/s", 2_000, 10, 0.005),
                ("burst", 2_000, 2_000, 0.0),
            ):
                losses = [
                    kill_loss(next(supply), Path(workdir), count=count, chunk=chunk, pause=pause)
                    for _ in range(args.kills)
                ]
                print(
                    f"{kind:10} SIGKILL, {pattern:15}: lost {min(losses)}..{max(losses)} "
                    f"of {count} (mean {sum(losses) / len(losses):.0f}) over {len(losses)} kills"
                )


if __name__ == "__main__":
    main()
