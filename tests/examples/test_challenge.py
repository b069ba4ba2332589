"""examples/challenge.py plays complete evaluation episodes that the leaderboard counts."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gymrpc_testing import TOKENS, TOKENS_TOML, Running, start_server, stop_server

import gymrpc
from gymrpc.cli import main as gymrpc_main

ROOT = Path(__file__).resolve().parents[2]
TURBOFAN = "gymrpc/Turbofan-v0"


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server with tokens and a scores database of its own."""
    directory = tmp_path_factory.mktemp("challenge")
    tokens = directory / "tokens.toml"
    tokens.write_text(TOKENS_TOML)
    running = start_server(tokens_file=tokens, database=str(directory / "scores.sqlite3"))
    yield running
    stop_server(running)


def play(target: str, user: str, *flags: str) -> str:
    command = [sys.executable, "examples/challenge.py", "--target", target]
    result = subprocess.run(
        [*command, "--token", TOKENS[user], *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_episode_played_is_complete_and_on_the_leaderboard(scored: Running) -> None:
    output = play(scored.target, "alice", "--episodes", "3")
    assert "3 evaluation episodes" in output
    found = gymrpc.episodes(target=scored.target, token=TOKENS["alice"], evaluation=True)
    # Nothing abandoned: the script leaves no engine running when it closes the session.
    assert sorted(episode.k or 0 for episode in found) == [0, 1, 2]
    assert all(episode.k is not None for episode in found)
    assert {episode.ending for episode in found} <= {"terminated", "truncated"}
    assert scored.server.store is not None
    assert scored.server.store.flush(timeout=30)
    (score,) = gymrpc.scores(env_id=TURBOFAN, target=scored.target, token=TOKENS["alice"])
    assert score.episodes == 3
    assert score.provisional
    mean = sum(episode.episode_return for episode in found) / 3
    assert score.score == pytest.approx(mean)
    # The table's mean and the standing line are what the server recorded.
    row = re.search(r"^time policy +([\d,]+) ±", output, flags=re.M)
    assert row is not None, output
    assert float(row.group(1).replace(",", "")) == pytest.approx(mean, abs=0.5)
    assert f"alice's provisional score on {TURBOFAN}: {mean:,.1f}" in output
    # The same policy gives another user the same engines, so the same returns per k.
    play(scored.target, "bob", "--episodes", "2")
    theirs = gymrpc.episodes(target=scored.target, token=TOKENS["bob"], evaluation=True)
    mine = {episode.k: episode.episode_return for episode in found}
    assert {episode.k: episode.episode_return for episode in theirs} == {0: mine[0], 1: mine[1]}


def test_a_server_without_scores_is_said_and_skipped() -> None:
    running = start_server()  # database none: no evaluation sessions
    try:
        result = subprocess.run(
            [sys.executable, "examples/challenge.py", "--target", running.target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop_server(running)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("challenge: skipped, the server evaluates no turbofan")


def test_the_hidden_damage_heuristic_cannot_play(scored: Running) -> None:
    result = subprocess.run(
        [sys.executable, "examples/challenge.py", "--policy", "hidden-damage heuristic"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'hidden-damage heuristic'" in result.stderr


def test_the_leaderboard_command_shows_failure_rates_in_percent(
    scored: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    # Never repairing fails every engine: a failure rate of 1, shown as 100.0 %.
    play(scored.target, "carol", "--policy", "never repair, never sell", "--episodes", "2")
    assert scored.server.store is not None
    assert scored.server.store.flush(timeout=30)
    connection = ["--target", scored.target, "--token", TOKENS["carol"]]
    assert gymrpc_main(["leaderboard", *connection]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["RANK", "USER", "SCORE", "EPISODES", "PROVISIONAL", "FAILURE_RATE"]
    rows = {line.split()[1]: line.split() for line in lines[2:]}
    assert rows["carol"][-1] == "100.0%"
    episodes = gymrpc.episodes(target=scored.target, token=TOKENS["alice"], evaluation=True)
    failed = sum(episode.failure for episode in episodes) / len(episodes)
    assert rows["alice"][-1] == f"{failed:.1%}"
