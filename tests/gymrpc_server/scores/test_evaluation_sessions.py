"""Evaluation sessions against a real server and a real database: fair, secret, durable."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymrpc_testing import TOKENS, TOKENS_TOML, Running, start_server, stop_server

import gymrpc
from gymrpc.cli import main as gymrpc_main
from gymrpc.errors import (
    EvaluationUnavailableError,
    InvalidOptionError,
    InvalidSeedError,
    PermissionDeniedError,
)
from gymrpc.v1 import env_service_pb2 as pb

TURBOFAN = "gymrpc/Turbofan-v0"
SELL_AT = 150  # sub-steps: the policy sells an engine that reaches this age


def policy(info: dict[str, Any], num_envs: int) -> np.ndarray[Any, Any]:
    """Deterministic: keep flying, sell at SELL_AT sub-steps (a function of the info)."""
    steps = info.get("step", np.zeros(num_envs, np.int64))
    return np.where(steps >= SELL_AT, 2, 0).astype(np.int64)


@pytest.fixture
def scores_server(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Servers with tokens and a SQLite scores database in tmp_path (shared)."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS_TOML)
    started: list[Running] = []

    def start(**overrides: Any) -> Running:
        overrides.setdefault("database", str(tmp_path / "scores.sqlite3"))
        overrides.setdefault("tokens_file", tokens)
        overrides.setdefault("score_window", 5)
        started.append(start_server(**overrides))
        return started[-1]

    yield start
    for running in started:
        stop_server(running)


def play(
    running: Running,
    user: str,
    num_envs: int,
    mode: AutoresetMode,
    episodes: int,
    *,
    vectorization: str | None = None,
) -> None:
    """Play at least ``episodes`` evaluation episodes with the policy, then close."""
    env = gymrpc.RemoteVectorEnv(
        TURBOFAN,
        num_envs,
        target=running.target,
        token=TOKENS[user],
        autoreset_mode=mode,
        vectorization_mode=vectorization,
        evaluation=True,
    )
    try:
        assert env.evaluation
        _, info = env.reset()
        finished = 0
        while finished < episodes:
            if mode is AutoresetMode.DISABLED:
                _, _, terminated, truncated, info = env.step(policy(info, num_envs))
                done = terminated | truncated
                finished += int(done.sum())
                if done.any() and finished < episodes:
                    # Reset exactly the ended ones: the info keys of the others stay.
                    _, reset_info = env.reset(options={"reset_mask": done})
                    for key in ("step",):
                        info[key] = np.where(done, reset_info[key], info[key])
            else:
                _, _, terminated, truncated, info = env.step(policy(info, num_envs))
                finished += int((terminated | truncated).sum())
    finally:
        env.close()


def returns_by_k(running: Running, user: str) -> dict[int, tuple[float, str]]:
    found = gymrpc.episodes(
        user, TURBOFAN, evaluation=True, target=running.target, token=TOKENS["carol"], limit=None
    )
    return {e.k: (e.episode_return, e.ending) for e in found if e.k is not None}


def test_the_kth_episode_is_the_same_engine_for_everyone(
    scores_server: Callable[..., Running],
) -> None:
    running = scores_server()
    play(running, "alice", 1, AutoresetMode.NEXT_STEP, 6)
    play(running, "bob", 4, AutoresetMode.SAME_STEP, 14)
    # SyncVectorEnv over single engines seeds each episode through a wrapper instead.
    play(running, "carol", 3, AutoresetMode.DISABLED, 8, vectorization="sync")
    alice, bob = returns_by_k(running, "alice"), returns_by_k(running, "bob")
    carol = returns_by_k(running, "carol")
    finished = {
        k
        for k in set(alice) & set(bob) & set(carol)
        if "abandoned" not in (alice[k][1], bob[k][1], carol[k][1])
    }
    assert len(finished) >= 6, (alice, bob, carol)
    for k in sorted(finished):
        assert alice[k][0] == bob[k][0] == carol[k][0], (k, alice[k], bob[k], carol[k])
    # Different engines give different returns (the seeds are not all the same).
    assert len({alice[k][0] for k in finished}) > 1


def test_one_engine_at_a_time_scores_exactly_the_episodes_played(
    scores_server: Callable[..., Running],
) -> None:
    running = scores_server()
    play(running, "alice", 1, AutoresetMode.DISABLED, 3)
    recorded = returns_by_k(running, "alice")
    assert sorted(recorded) == [0, 1, 2]
    assert {ending for _, ending in recorded.values()} <= {"terminated", "truncated"}


def test_an_episode_running_at_close_is_recorded_as_abandoned(
    scores_server: Callable[..., Running],
) -> None:
    running = scores_server()
    env = gymrpc.RemoteVectorEnv(
        TURBOFAN, 2, target=running.target, token=TOKENS["bob"], evaluation=True
    )
    env.reset()
    total = np.zeros(2)
    for _ in range(3):
        _, rewards, *_ = env.step(np.zeros(2, np.int64))
        total += rewards
    env.close()
    found = gymrpc.episodes(target=running.target, token=TOKENS["bob"], limit=None)
    assert [e.ending for e in found] == ["abandoned", "abandoned"]
    assert sorted(e.episode_return for e in found) == pytest.approx(sorted(total))
    assert sorted(e.length for e in found) == [3, 3]
    # Abandoned episodes count in the score.
    (score,) = gymrpc.scores(target=running.target, token=TOKENS["bob"])
    assert score.episodes == 2
    assert score.score == pytest.approx(total.mean())


def test_what_evaluation_sessions_refuse(scores_server: Callable[..., Running]) -> None:
    running = scores_server()

    def evaluation(user: str = "alice", env_id: str = TURBOFAN, **kwargs: Any) -> Any:
        return gymrpc.RemoteVectorEnv(
            env_id, 1, target=running.target, token=TOKENS[user], evaluation=True, **kwargs
        )

    with pytest.raises(EvaluationUnavailableError, match="--evaluation-env") as error:
        evaluation(env_id="CartPole-v1")
    assert error.value.code is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(InvalidSeedError) as seeded:
        evaluation(seed=3)
    assert seeded.value.field == "seed"
    with pytest.raises(InvalidOptionError) as option:
        evaluation(env_options={"step_size": 5})
    assert option.value.field == "env_options.step_size"
    # The configured options themselves are fine.
    evaluation(env_options={"step_size": 10}).close()
    # Hidden state: for admins neither.
    with pytest.raises(PermissionDeniedError) as denied:
        evaluation("carol", env_options={"expose_hidden_state": True})
    assert denied.value.field == "env_options.expose_hidden_state"
    env = evaluation()
    try:
        with pytest.raises(InvalidSeedError):
            env.reset(seed=1)
        with pytest.raises(InvalidOptionError):
            env.reset(options={"anything": 1})
        env.reset()
        with pytest.raises(PermissionDeniedError):
            env.get_attr("step_size")
    finally:
        env.close()


@pytest.mark.parametrize(
    "vectorization", [pb.VECTORIZATION_MODE_SYNC, pb.VECTORIZATION_MODE_UNSPECIFIED]
)
def test_evaluation_sessions_describe_neither_seeds_nor_generators(
    scores_server: Callable[..., Running], vectorization: pb.VectorizationMode.ValueType
) -> None:
    running = scores_server()
    stub = running.stub(TOKENS["alice"])
    request = pb.CreateSessionRequest(
        env_id=TURBOFAN, num_envs=2, evaluation=True, vectorization_mode=vectorization
    )
    session = stub.CreateSession(request, timeout=30).session
    described = stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session
    stub.Reset(pb.ResetRequest(session_id=session.session_id), timeout=30)
    after_reset = stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session
    for message in (session, described, after_reset):
        assert not message.HasField("np_random_seed")
        assert not message.single_action_space.HasField("generator")
        assert not message.single_observation_space.HasField("generator")
    # The same session outside the challenge does describe them (under SyncVectorEnv,
    # whose batch_space gives the action space a generator).
    request.evaluation = False
    plain = stub.CreateSession(request, timeout=30).session
    assert stub.GetSession(pb.GetSessionRequest(session_id=plain.session_id)).session.HasField(
        "np_random_seed"
    )
    if vectorization == pb.VECTORIZATION_MODE_SYNC:
        assert plain.single_action_space.HasField("generator")
    with gymrpc.RemoteVectorEnv(
        TURBOFAN, 1, target=running.target, token=TOKENS["bob"], evaluation=True
    ) as env:
        assert env.np_random_seed is None
        env.reset()
        assert env.np_random_seed is None


def test_a_server_without_scores_refuses_evaluation(serve: Callable[..., Running]) -> None:
    running = serve(database="none")
    with pytest.raises(EvaluationUnavailableError, match="--database none"):
        gymrpc.RemoteVectorEnv(TURBOFAN, 1, target=running.target, evaluation=True)
    stub = running.stub()
    info = stub.GetServerInfo(pb.GetServerInfoRequest())
    assert not info.HasField("scoring")
    assert "evaluation" not in info.capabilities


def test_server_info_reports_the_challenge(scores_server: Callable[..., Running]) -> None:
    running = scores_server(leaderboard="admin")
    info = running.stub(TOKENS["alice"]).GetServerInfo(pb.GetServerInfoRequest())
    assert {"evaluation", "scores"} <= set(info.capabilities)
    assert info.scoring.score_window == 5
    assert info.scoring.leaderboard_visibility == pb.LEADERBOARD_VISIBILITY_ADMIN
    (evaluated,) = info.scoring.evaluation_environments
    assert evaluated.env_id == TURBOFAN
    assert evaluated.env_options["step_size"].int_value == 10


def test_a_restart_continues_k_and_the_leaderboard(
    scores_server: Callable[..., Running], capsys: pytest.CaptureFixture[str]
) -> None:
    first = scores_server()
    play(first, "alice", 2, AutoresetMode.NEXT_STEP, 4)
    before = returns_by_k(first, "alice")
    stop_server(first)
    second = scores_server()  # the same database file
    play(second, "alice", 2, AutoresetMode.NEXT_STEP, 2)
    after = returns_by_k(second, "alice")
    assert set(before) < set(after)
    assert min(set(after) - set(before)) > max(before)
    # The CLI's score equals the mean the client computes over the same episodes.
    assert (
        gymrpc_main(["scores", "--json", "--target", second.target, "--token", TOKENS["alice"]])
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    found = gymrpc.episodes(
        target=second.target, token=TOKENS["alice"], evaluation=True, limit=None
    )
    last = sorted(found, key=lambda e: (e.end_time, e.k))[-5:]
    assert row["score"] == pytest.approx(np.mean([e.episode_return for e in last]))
    assert row["episodes"] == 5
    assert (
        gymrpc_main(["leaderboard", "--json", "--target", second.target, "--token", TOKENS["bob"]])
        == 0
    )
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["rank"], entry["user"], entry["episodes"]) == (1, "alice", 5)
    assert entry["provisional"] is False
    assert entry["score"] == pytest.approx(row["score"])


def test_plot_leaderboard_draws_the_servers_scores(
    scores_server: Callable[..., Running], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    running = scores_server()
    play(running, "alice", 1, AutoresetMode.NEXT_STEP, 3)
    play(running, "bob", 1, AutoresetMode.NEXT_STEP, 2)
    out = tmp_path / "board.png"
    status = gymrpc_main(
        [
            "plot",
            "leaderboard",
            "--target",
            running.target,
            "--token",
            TOKENS["alice"],
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert str(out) in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size[0] > 200
        assert len(image.convert("L").getcolors(maxcolors=100_000) or ()) > 10  # not blank
