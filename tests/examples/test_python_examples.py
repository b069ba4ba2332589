"""The Python examples run end to end, with tiny budgets, against a real server."""

from __future__ import annotations

import csv
import importlib
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from gymrpc_testing import Running, start_server, stop_server

import gymrpc
from gymrpc.turbofan import EngineClock

# Torch's first import, and torch.optim's import of torch._dynamo, take seconds each on
# a busy machine; a test (with the module's shared PPO run in its setup) may take minutes.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
# Seconds one example may run.
EXAMPLE_TIMEOUT = 240.0
# The tiny PPO run: 2 envs x 16 steps per iteration; 40 steps round up to 2 iterations.
PPO_FLAGS = (
    *("--num-envs", "2", "--num-steps", "16", "--total-timesteps", "40"),
    *("--update-epochs", "1", "--num-minibatches", "2", "--challenge-episodes", "2"),
)
EVALUATION_ROW = re.compile(
    r"^(?:PPO \(greedy\)|SB3 PPO \(greedy\)|time policy|hidden-damage heuristic)  .*$", re.M
)
# The challenge that the PPO examples play at the end: its header, table row and standing.
CHALLENGE = re.compile(
    r"^challenge: 2 evaluation episodes on the server's secret engines.*\n.*\n"
    r"((?:SB3 )?PPO \(greedy\)  .*)\n"
    r"anonymous's (?:provisional )?score on gymrpc/Turbofan-v0: (-?[\d,]+\.\d), the mean of the "
    r"last (\d+) evaluation episodes",
    re.M,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One open server for the examples of this module (the PPO runs share it).

    It keeps scores, so the PPO examples' challenge episodes are played and recorded.
    """
    database = tmp_path_factory.mktemp("scores") / "scores.sqlite3"
    running = start_server(database=str(database))
    yield running
    stop_server(running)


def run_example(script: str, target: str, *flags: str) -> str:
    """Run ``examples/<script>`` against the server; return its output if it exits with 0."""
    result = subprocess.run(
        [sys.executable, f"examples/{script}", "--target", target, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def evaluation_table(output: str) -> list[str]:
    """The rows of the final greedy evaluation table (not the challenge's, which follows)."""
    return EVALUATION_ROW.findall(output.split("\nchallenge:", maxsplit=1)[0])


def cells(row: str) -> list[str]:
    """The cells of a row of baselines.py's text table (separated by 2 spaces or more)."""
    return re.split(r" {2,}", row.strip())


# --- random_agent.py -----------------------------------------------------------------


def test_random_agent_counts_every_finished_episode(server: Running) -> None:
    # 8 engines x 60 random steps end about 140 episodes: more than the 100 that
    # RecordEpisodeStatistics keeps in its return_queue.
    output = run_example("random_agent.py", server.target, "--num-envs", "8", "--num-steps", "60")
    episodes = re.findall(r"env (\d): episode return +(-?\d+\.\d), length (\d+)", output)
    assert {env for env, _, _ in episodes} == {str(index) for index in range(8)}
    assert all(int(length) >= 1 for _, _, length in episodes)
    summary = re.search(r"(\d+) episodes, mean return (-?\d+\.\d)", output)
    assert summary is not None, output
    assert len(episodes) > 100
    assert int(summary.group(1)) == len(episodes)
    # Every return is printed to 0.1, so their mean is within 0.05 of the true one.
    mean = np.mean([float(value) for _, value, _ in episodes])
    assert abs(float(summary.group(2)) - mean) <= 0.1


def test_examples_refuse_an_unreachable_server() -> None:
    # Port 1 on loopback is closed: the example must fail loudly, not hang or pass.
    result = subprocess.run(
        [sys.executable, "examples/random_agent.py", "--target", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "127.0.0.1:1" in result.stderr


# --- ppo_turbofan.py -----------------------------------------------------------------


@dataclass(frozen=True)
class PPORun:
    """A tiny PPO run with --track and --save, and what it wrote."""

    output: str
    runs_dir: Path
    policy: Path


@pytest.fixture(scope="module")
def ppo(server: Running, tmp_path_factory: pytest.TempPathFactory) -> PPORun:
    directory = tmp_path_factory.mktemp("ppo")
    policy = directory / "policy.pt"
    output = run_example(
        "ppo_turbofan.py",
        server.target,
        *PPO_FLAGS,
        *("--track", "--runs-dir", str(directory / "runs"), "--save", str(policy)),
    )
    return PPORun(output, directory / "runs", policy)


def iterations(output: str) -> list[tuple[str, str, str]]:
    """(iteration, global_step, "mean over N episodes" or n/a) of every iteration line."""
    return re.findall(
        r"iteration (\d+)/2  global_step (\d+)  mean_episodic_return +(.+?)  value_loss", output
    )


def test_ppo_rounds_the_budget_up_to_whole_iterations_and_says_so(ppo: PPORun) -> None:
    assert (
        "--total-timesteps 40 rounded up to whole iterations of 32 steps "
        "(--num-envs 2 x --num-steps 16): 64 steps"
    ) in ppo.output
    assert [(i, step) for i, step, _ in iterations(ppo.output)] == [("1", "32"), ("2", "64")]


def test_ppo_writes_one_learning_curve_row_per_iteration(ppo: PPORun) -> None:
    (curve,) = ppo.runs_dir.glob("*/learning_curve.csv")
    assert f"learning curve: {curve}" in ppo.output
    with curve.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["global_step", "wall_time_s", "episodes", "mean_return"]
    assert [row[0] for row in rows[1:]] == ["32", "64"]
    for row, (_, _, printed) in zip(rows[1:], iterations(ppo.output), strict=True):
        # The iteration line and the row count the same episodes, with the same mean.
        episodes = int(row[2])
        if episodes == 0:
            assert row[3] == "nan"
            assert printed.startswith("n/a")
        else:
            match = re.fullmatch(r"(-?\d+\.\d) over (\d+) episodes", printed.strip())
            assert match is not None, printed
            assert int(match.group(2)) == episodes
            assert abs(float(row[3]) - float(match.group(1))) <= 0.05
        assert float(row[1]) > 0


def test_ppo_track_writes_tensorboard_scalars(ppo: PPORun) -> None:
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    (run_dir,) = ppo.runs_dir.iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"charts/episodic_return", "losses/value_loss", "losses/policy_loss"} <= set(tags)
    episodes = sum(
        int(count)
        for *_, printed in iterations(ppo.output)
        for count in re.findall(r"over (\d+) episodes", printed)
    )
    returns = events.Scalars("charts/episodic_return")
    assert len(returns) == episodes > 0
    assert {event.step for event in returns} <= set(range(2, 65, 2))
    assert [event.step for event in events.Scalars("losses/value_loss")] == [32, 64]


def test_ppo_compares_its_greedy_policy_with_the_baselines(ppo: PPORun) -> None:
    assert "greedy evaluation on the 1000 engines of baselines.py" in ppo.output
    rows = [cells(row) for row in evaluation_table(ppo.output)]
    assert [row[0] for row in rows] == ["PPO (greedy)", "time policy", "hidden-damage heuristic"]
    # The baselines' rows are those of the documented full run (computed, not copied).
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for row in rows[1:]:
        assert f"| {' | '.join(row)} |" in readme.splitlines()


def test_ppo_saved_policy_round_trips(ppo: PPORun, server: Running) -> None:
    reloaded = run_example(
        "ppo_turbofan.py",
        server.target,
        *("--load", str(ppo.policy), "--eval-only", "--challenge-episodes", "0"),
    )
    assert (
        f"policy from {ppo.policy}: step_size 10, features repairs,blocks_since_repair, "
        "hidden_size 64, row_mean True"
    ) in reloaded
    assert "iteration" not in reloaded
    assert "challenge" not in reloaded
    assert evaluation_table(reloaded) == evaluation_table(ppo.output)


def test_ppo_saved_policy_needs_nothing_but_torch(ppo: PPORun) -> None:
    import gymnasium
    import torch

    import gymrpc_server  # noqa: F401 (registers the env)

    with warnings.catch_warnings():
        # TorchScript is deprecated in recent torch releases, but it still loads.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(ppo.policy))  # type: ignore[no-untyped-call]
    assert module.step_size == 10
    assert list(module.feature_names) == ["repairs", "blocks_since_repair"]
    envs = gymnasium.make_vec(
        "gymrpc/Turbofan-v0", num_envs=5, vectorization_mode="vector_entry_point"
    )
    clock = EngineClock(5)
    observations, info = envs.reset(seed=0)
    clock.observe(info)
    observations, _, _, _, info = envs.step(np.zeros(5, dtype=np.int64))
    clock.observe(info)
    envs.close()
    features = torch.tensor(
        np.stack([clock.repairs, clock.blocks_since_repair], axis=1), dtype=torch.float32
    )
    with torch.no_grad():
        logits = module(torch.from_numpy(observations), features)
        values = module.value(torch.from_numpy(observations), features)
    assert logits.shape == (5, 3)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert values.shape == (5,)


def test_ppo_trains_a_policy_with_features_that_takes_them_as_a_second_input(
    server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, to spare a third torch start-up: the script's own pieces, as main() uses them.
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    ppo_turbofan = importlib.import_module("ppo_turbofan")
    baselines = importlib.import_module("baselines")
    monkeypatch.setattr(sys, "argv", ["ppo_turbofan.py", "--features", "repairs,wear"])
    with pytest.raises(SystemExit):
        ppo_turbofan.parse_args()  # "wear" is not a feature
    names = ["blocks_since_repair", "repairs"]
    args = ppo_turbofan.Args(
        target=server.target,
        features=" blocks_since_repair, repairs",
        num_envs=2,
        num_steps=16,
        update_epochs=1,
        num_minibatches=2,
    )
    assert ppo_turbofan.feature_names(args) == names
    envs, obs_norm = ppo_turbofan.make_envs(args)
    agent = ppo_turbofan.Agent(10, [0.1, 0.1], 3, row_mean=args.row_mean)
    log = ppo_turbofan.RunLog(args, tmp_path)
    try:
        ppo_turbofan.train(args, agent, envs, log, 1)
    finally:
        envs.close()
        log.close()
    ppo_turbofan.export_policy(agent, obs_norm, 10, names).save(str(tmp_path / "policy.pt"))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(tmp_path / "policy.pt"))  # type: ignore[no-untyped-call]
    assert list(module.feature_names) == names
    observations = torch.zeros((4, 10, 9))
    assert module(observations, torch.zeros((4, 2))).shape == (4, 3)
    with pytest.raises(torch.jit.Error, match="needs features: blocks_since_repair, repairs"):
        module(observations)
    # The greedy evaluation feeds the counters of the engine clock.
    engines = baselines.make_engines(20, target=server.target)
    try:
        result = baselines.evaluate(ppo_turbofan.GreedyPolicy(module), engines, name="features")
    finally:
        engines.close()
    assert len(result.returns) == 20


# --- sb3_ppo.py ----------------------------------------------------------------------


def test_sb3_ppo_trains_and_compares_with_the_baselines(server: Running) -> None:
    output = run_example(
        "sb3_ppo.py",
        server.target,
        *("--num-envs", "2", "--n-steps", "16", "--batch-size", "32", "--n-epochs", "1"),
        *("--total-timesteps", "64", "--eval-engines", "100", "--challenge-episodes", "2"),
    )
    # VecMonitor's episodes reach SB3's logger, and PPO ran one update.
    assert re.search(r"ep_rew_mean +\| -?\d", output), output
    assert re.search(r"total_timesteps +\| 64 ", output), output
    assert re.search(r"n_updates +\| 1 ", output), output
    assert re.search(r"mean episodic return of the last \d+ episodes: -?\d+\.\d", output), output
    assert "greedy evaluation on the 100 engines of baselines.py" in output
    assert [cells(row)[0] for row in evaluation_table(output)] == [
        "SB3 PPO (greedy)",
        "time policy",
        "hidden-damage heuristic",
    ]
    match = CHALLENGE.search(output)
    assert match is not None, output
    assert cells(match.group(1))[0] == "SB3 PPO (greedy)"


def test_ppo_plays_the_challenge_and_reads_its_standing(ppo: PPORun, server: Running) -> None:
    match = CHALLENGE.search(ppo.output)
    assert match is not None, ppo.output
    assert cells(match.group(1))[0] == "PPO (greedy)"
    # The episodes reached the server's scores as evaluation episodes of its user.
    found = gymrpc.episodes(target=server.target, evaluation=True)
    assert len(found) >= 2
    assert int(match.group(3)) >= 2
