"""A separate process that uses a ScoreStore as told, for the multi-process tests.

Run as ``python store_worker.py``: it prints ``{"ready": true}`` once imported, then reads
one JSON command per line on stdin and answers each with one JSON line on stdout.
Errors are answered as ``{"error": "<type>: <message>"}``; logs go to stderr.

Commands (``op`` and its fields):
    ``open`` ``database``, ``settings``: open the store.
    ``seed`` ``env_id``, ``k``: answer ``{"seed": int}``.
    ``reserve`` ``user``, ``env_id``, ``counts``: one reserve_k per count, as fast as
        possible; answer ``{"ranges": [[start, stop], ...]}``.
    ``record`` ``prefix``, ``start``, ``count``: record evaluation-less episodes whose
        ids are ``prefix-<index>``; answer ``{"accepted": int}``.
    ``record_then_die`` ``prefix``, ``count``, ``chunk``, ``pause``: record ``count``
        episodes, ``chunk`` at a time with ``pause`` seconds between chunks, print
        ``{"written": int}`` (what the store had confirmed) and SIGKILL itself.
    ``status``: answer the StoreStatus fields.
    ``flush`` ``timeout``: answer ``{"flushed": bool}``.
    ``close`` ``timeout``: answer ``{"closed": bool}`` and exit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gymrpc_server.scores import (
    Ending,
    Episode,
    ScoreStore,
    StoreError,
    StoreSettings,
    open_store,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def episode(prefix: str, index: int) -> Episode:
    """Episode ``index`` of a numbered series: its id says which one it is."""
    return Episode(
        user="worker",
        env_id="Worker-v0",
        env_options={"index": index},
        evaluation=False,
        k=None,
        episode_return=float(index),
        length=index,
        ending=Ending.TRUNCATED,
        reason=None,
        failure=False,
        started_at=START,
        ended_at=datetime.now(UTC),
        session_id=prefix,
        episode_id=f"{prefix}-{index:08d}",
    )


def answer(payload: dict[str, Any]) -> None:
    """Write one JSON line on stdout."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def reserve(store: ScoreStore, command: dict[str, Any]) -> dict[str, Any]:
    """One reserve_k per count, back to back."""
    ranges = []
    for count in command["counts"]:
        reserved = store.reserve_k(command["user"], command["env_id"], count)
        ranges.append([reserved.start, reserved.stop])
    return {"ranges": ranges}


def record(store: ScoreStore, command: dict[str, Any]) -> dict[str, Any]:
    """Record a numbered series of episodes."""
    start, count = command["start"], command["count"]
    made = (episode(command["prefix"], i) for i in range(start, start + count))
    return {"accepted": sum(store.record(item) for item in made)}


def record_then_die(store: ScoreStore, command: dict[str, Any]) -> dict[str, Any]:
    """Record at a steady pace, say what is confirmed, and SIGKILL this process."""
    for index in range(command["count"]):
        if not store.record(episode(command["prefix"], index)):
            raise RuntimeError(f"episode {index} was refused")
        if (index + 1) % command["chunk"] == 0:
            time.sleep(command["pause"])
    answer({"written": store.status().written})
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def status(store: ScoreStore, _command: dict[str, Any]) -> dict[str, Any]:
    """The StoreStatus fields (times as strings)."""
    fields = dataclasses.asdict(store.status())
    return {k: str(v) if isinstance(v, datetime) else v for k, v in fields.items()}


COMMANDS: dict[str, Callable[[ScoreStore, dict[str, Any]], dict[str, Any]]] = {
    "seed": lambda store, c: {"seed": store.evaluation_seed(c["env_id"], c["k"])},
    "reserve": reserve,
    "record": record,
    "record_then_die": record_then_die,
    "status": status,
    "flush": lambda store, c: {"flushed": store.flush(c["timeout"])},
    "close": lambda store, c: {"closed": store.close(c["timeout"])},
}


def main() -> None:
    """Serve commands until ``close`` or the end of stdin."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    answer({"ready": True})
    store: ScoreStore | None = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "open":
                settings = StoreSettings(**command.get("settings", {}))
                store = open_store(command["database"], settings)
                answer({"opened": store is not None})
                continue
            assert store is not None, f"{command['op']} before open"
            answer(COMMANDS[command["op"]](store, command))
        except (StoreError, ValueError, RuntimeError) as error:
            answer({"error": f"{type(error).__name__}: {error}"})
        if command["op"] == "close":
            return


if __name__ == "__main__":
    main()
