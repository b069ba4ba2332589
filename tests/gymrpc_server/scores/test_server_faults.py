"""A server whose scores database fails: it says so, keeps serving, and loses nothing.

Also the start-up errors of a database that cannot be opened, and two servers sharing
one database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymrpc_testing import Running, start_server, stop_server
from postgres import PostgresServer

import gymrpc
from gymrpc.errors import ScoresUnavailableError
from gymrpc_server.server import SCORES_SERVICE_NAME

TURBOFAN = "gymrpc/Turbofan-v0"


def scores_health(running: Running) -> int:
    stub = cast(Any, health_pb2_grpc.HealthStub)(running.channel())
    response = stub.Check(health_pb2.HealthCheckRequest(service=SCORES_SERVICE_NAME), timeout=5)
    return int(response.status)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll a condition (bounded): a state the server reaches by itself, not a timing."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def play_episodes(running: Running, count: int, *, evaluation: bool = False) -> None:
    """Finish ``count`` turbofan episodes (sell at once: one step each)."""
    with gymrpc.RemoteVectorEnv(TURBOFAN, 1, target=running.target, evaluation=evaluation) as env:
        env.reset()
        for _ in range(count):
            env.step(np.array([2]))  # sell: terminated
            env.step(np.array([0]))  # NEXT_STEP: the reset step of the next episode


def test_a_lost_postgresql_is_reported_and_nothing_recorded_is_lost(
    postgres: PostgresServer, postgres_url: str
) -> None:
    running = start_server(database=postgres_url, record_queue=6)
    try:
        wait_for(lambda: scores_health(running) == health_pb2.HealthCheckResponse.SERVING, "up")
        play_episodes(running, 2)
        # Those three (two sold, one abandoned at close) are written before the outage.
        assert len(gymrpc.episodes(target=running.target, limit=None)) == 3
        postgres.stop()
        # Ordinary sessions go on; their episodes wait in the queue.
        play_episodes(running, 3)
        wait_for(
            lambda: scores_health(running) == health_pb2.HealthCheckResponse.NOT_SERVING,
            "health reports the outage",
        )
        # Evaluation is refused rather than played unrecorded.
        with pytest.raises(ScoresUnavailableError, match="cannot"):
            play_episodes(running, 1, evaluation=True)
        postgres.start()
        wait_for(
            lambda: scores_health(running) == health_pb2.HealthCheckResponse.SERVING,
            "health reports the recovery",
        )
        found = gymrpc.episodes(target=running.target, limit=None)
        # 5 sold engines, plus the episode each session had running when it closed.
        assert sorted(e.reason for e in found if e.ending == "terminated") == ["sold"] * 5
        assert len([e for e in found if e.ending == "abandoned"]) == 2
    finally:
        if not postgres.running:
            postgres.start()
        stop_server(running)


def test_two_servers_on_one_database_never_share_a_k(tmp_path: Path) -> None:
    database = str(tmp_path / "scores.sqlite3")
    first, second = start_server(database=database), start_server(database=database)
    try:
        for _ in range(3):
            for running in (first, second):
                play_episodes(running, 1, evaluation=True)
        # Each server writes its own records; the other's land within a batch interval.

        def ks() -> list[int | None]:
            found = gymrpc.episodes(target=first.target, evaluation=True, limit=None)
            return [e.k for e in found]

        wait_for(lambda: len(ks()) == 12, "6 sessions x (1 sold + 1 abandoned) recorded")
        assert len(set(ks())) == 12
    finally:
        stop_server(first)
        stop_server(second)


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("/nonexistent-directory/scores.sqlite3", "does not exist"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the scores database"),
    ],
    ids=["missing-directory", "refused-connection"],
)
def test_a_database_that_cannot_be_opened_stops_the_start_in_one_line(
    database: str, expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gymrpc_server", "--address", "127.0.0.1:0", "--database", database],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]
    assert "Traceback" not in result.stderr
    assert "password" not in errors[0]


def test_health_of_scores_is_absent_without_a_database(serve: Callable[..., Running]) -> None:
    running = serve(database="none")
    with pytest.raises(grpc.RpcError) as error:
        scores_health(running)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_the_web_page_serves_the_servers_leaderboard(tmp_path: Path) -> None:
    import json
    import urllib.request

    running = start_server(database=str(tmp_path / "s.sqlite3"), http_address="127.0.0.1:0")
    web = running.server.web
    assert web is not None
    try:
        play_episodes(running, 2, evaluation=True)
        # Episodes reach the database through the writer thread; the page reads the database.
        assert running.server.store is not None
        assert running.server.store.flush(timeout=30)
        with urllib.request.urlopen(f"{web.url}api/leaderboard", timeout=10) as response:
            document = json.load(response)
        (board,) = document["boards"]
        assert board["env_id"] == TURBOFAN
        (row,) = board["rows"]
        assert (row["rank"], row["user"], row["episodes"]) == (1, "anonymous", 3)
    finally:
        stop_server(running)
    assert not web.running


def test_the_web_page_needs_a_database() -> None:
    with pytest.raises(ValueError, match="keeps no scores"):
        start_server(database="none", http_address="127.0.0.1:0")
