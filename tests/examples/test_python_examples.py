"""The Python examples run end to end, with tiny budgets, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gymrpc_testing import Running

ROOT = Path(__file__).resolve().parents[2]
# Seconds one example may run; torch's first import alone takes several on a busy machine.
EXAMPLE_TIMEOUT = 240.0


def run_example(script: str, running: Running, *flags: str) -> str:
    """Run ``examples/<script>`` against the server; return its output if it exits with 0."""
    result = subprocess.run(
        [sys.executable, f"examples/{script}", "--target", running.target, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_random_agent_prints_episode_statistics(running: Running) -> None:
    output = run_example("random_agent.py", running, "--num-envs", "2", "--num-steps", "30")
    episodes = re.findall(r"env (\d): episode return +(-?\d+\.\d), length (\d+)", output)
    assert episodes, output
    assert {env for env, _, _ in episodes} == {"0", "1"}
    assert all(int(length) >= 1 for _, _, length in episodes)
    summary = re.search(r"(\d+) episodes, mean return (-?\d+\.\d)", output)
    assert summary is not None, output
    assert int(summary.group(1)) == len(episodes)


@pytest.mark.timeout(300)
def test_ppo_turbofan_trains_and_logs_returns(running: Running) -> None:
    output = run_example(
        "ppo_turbofan.py",
        running,
        *("--num-envs", "2", "--num-steps", "16", "--total-timesteps", "64"),
        *("--update-epochs", "1", "--num-minibatches", "2"),
    )
    iterations = re.findall(
        r"iteration (\d)/2  global_step (\d+)  mean_episodic_return +(-?\d+\.\d) over", output
    )
    assert [(i, step) for i, step, _ in iterations] == [("1", "32"), ("2", "64")], output


@pytest.mark.timeout(300)
def test_sb3_ppo_trains_and_logs_episodes(running: Running) -> None:
    output = run_example(
        "sb3_ppo.py",
        running,
        *("--num-envs", "2", "--n-steps", "16", "--batch-size", "32", "--n-epochs", "1"),
        *("--total-timesteps", "64"),
    )
    # VecMonitor's episodes reach SB3's logger, and PPO ran one update.
    assert re.search(r"ep_rew_mean +\| -?\d", output), output
    assert re.search(r"total_timesteps +\| 64 ", output), output
    assert re.search(r"n_updates +\| 1 ", output), output
    assert re.search(r"mean episodic return of the last \d+ episodes: -?\d+\.\d", output), output


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
