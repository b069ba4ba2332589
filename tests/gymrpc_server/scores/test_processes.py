"""Several server processes on one database: one secret, and never the same k twice.

Each worker is a separate Python process with its own store, as separate gymrpc servers
sharing a database would be. Both open a new database at the same moment (racing on
its tables and its secret), then reserve k for the same user as fast as they can.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from .conftest import OpenStore
from .scores_testing import FAST, Worker, settings_dict

RESERVATIONS = 40


def test_racing_servers_share_the_secret_and_never_share_a_k(
    database: str,
    tmp_path: Path,
    spawn: Callable[..., Worker],
    open_test_store: OpenStore,
) -> None:
    workers = [spawn(tmp_path, name=f"worker{i}") for i in range(2)]

    # Both open the new database at once: the first creates tables and secret.
    for worker in workers:
        worker.send("open", database=database, settings=settings_dict(FAST))
    for worker in workers:
        assert worker.receive() == {"opened": True}, worker.stderr()
    seeds = [worker.request("seed", env_id="A-v0", k=5)["seed"] for worker in workers]
    assert seeds[0] == seeds[1]

    rng = random.Random(11)
    counts = [[rng.randint(1, 4) for _ in range(RESERVATIONS)] for _ in workers]
    for worker, mine in zip(workers, counts, strict=True):
        worker.send("reserve", user="alice", env_id="A-v0", counts=mine)
    handed_out: list[int] = []
    for worker, mine in zip(workers, counts, strict=True):
        answer = worker.receive()
        assert "error" not in answer, answer
        ranges = answer["ranges"]
        assert [stop - start for start, stop in ranges] == mine
        handed_out.extend(k for start, stop in ranges for k in range(start, stop))
    for worker in workers:
        assert worker.request("close", timeout=10) == {"closed": True}
        assert worker.wait() == 0

    assert len(handed_out) == len(set(handed_out)), "some k was handed out twice"
    total = sum(map(sum, counts))
    assert sorted(handed_out) == list(range(total))  # nothing failed, so no gap either

    # A server opened later agrees on both.
    store = open_test_store(database)
    assert store.evaluation_seed("A-v0", 5) == seeds[0]
    assert store.reserve_k("alice", "A-v0") == range(total, total + 1)
