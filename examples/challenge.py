"""Play a policy in the challenge: evaluation episodes that the leaderboard ranks.

An evaluation session (``gymrpc.make_vec(..., evaluation=True)``) plays the server's
secret engines; every episode it starts counts in the user's score, and one still
running when the session closes counts as abandoned with the return it has so far
(docs/challenge.md). To score exactly ``episodes`` complete episodes, this plays one
engine at a time in the DISABLED autoreset mode: the next engine starts only when the
script asks for it with ``reset()``, so nothing is left running at the end.

The PPO examples call :func:`play_challenge` after training (``--challenge-episodes``);
on its own it plays a baseline::

    .venv/bin/python examples/challenge.py --policy "time policy" --episodes 100
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from baselines import (
    BASELINES,
    ENV_ID,
    REASON_FAILURE,
    TIME_POLICY,
    EvaluationResult,
    Policy,
    format_table,
)
from gymnasium.vector import AutoresetMode

import gymrpc
from gymrpc.errors import EvaluationUnavailableError
from gymrpc.turbofan import EngineClock

DEFAULT_TARGET = os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051")


def play_challenge(
    policy: Policy,
    *,
    name: str,
    episodes: int = 100,
    target: str | None = None,
    token: str | None = None,
) -> EvaluationResult:
    """Play ``episodes`` complete evaluation episodes with ``policy``, one engine at a time.

    Args:
        policy: Chooses the actions (``baselines.Policy``).
        name: The policy's name in the result table.
        episodes: How many episodes to play; each counts in the user's score.
        target: The server; ``GYMRPC_TARGET`` by default.
        token: The user's token; ``GYMRPC_TOKEN`` by default.

    Raises:
        gymrpc.errors.EvaluationUnavailableError: The server does not evaluate the turbofan
            (no scores database, or not among its ``--evaluation-env``).
    """
    if episodes < 1:
        raise ValueError(f"episodes: {episodes}; expected at least 1")
    returns = np.zeros(episodes)
    failed = np.zeros(episodes, dtype=np.bool_)
    repairs = np.zeros(episodes, dtype=np.int64)
    flights = np.zeros(episodes, dtype=np.int64)
    with gymrpc.make_vec(
        ENV_ID,
        1,
        target=target,
        token=token,
        evaluation=True,
        autoreset_mode=AutoresetMode.DISABLED,
    ) as envs:
        for episode in range(episodes):
            clock = EngineClock(1)
            observations, info = envs.reset()  # starts the next secret engine
            clock.observe(info)
            done = False
            while not done:
                actions = policy(observations, info, clock)
                observations, rewards, terminated, truncated, info = envs.step(actions)
                returns[episode] += float(rewards[0])
                done = bool(terminated[0] or truncated[0])
                clock.observe(info)
            failed[episode] = info["reason"][0] == REASON_FAILURE
            repairs[episode] = info["repairs"][0]
            flights[episode] = info["step"][0]
    return EvaluationResult(name, returns, failed, repairs, flights)


def standing(*, target: str | None = None, token: str | None = None) -> str:
    """The caller's score on the turbofan, as one line (after a challenge run)."""
    found = gymrpc.scores(env_id=ENV_ID, target=target, token=token)
    if not found:
        return "no evaluation episode recorded yet"
    score = found[0]
    kind = "provisional " if score.provisional else ""
    return (
        f"{score.user}'s {kind}score on {ENV_ID}: {score.score:,.1f}, the mean of the last "
        f"{score.episodes} evaluation episodes ({score.total_episodes} played in all)"
    )


def run(policy: Policy, args: Any, *, name: str) -> EvaluationResult | None:
    """Play the challenge and print the result and the standing; None if unavailable.

    ``args`` carries ``target``, ``token`` and ``challenge_episodes`` (the examples'
    command-line arguments).
    """
    try:
        result = play_challenge(
            policy,
            name=name,
            episodes=args.challenge_episodes,
            target=args.target,
            token=args.token,
        )
    except EvaluationUnavailableError as error:
        print(f"challenge: skipped, the server evaluates no turbofan ({error})")
        return None
    print(
        f"\nchallenge: {args.challenge_episodes} evaluation episodes on the server's secret "
        "engines, recorded for the leaderboard"
    )
    print(format_table([result]))
    print(standing(target=args.target, token=args.token))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Play a baseline in the challenge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server host:port")
    parser.add_argument("--token", default=os.environ.get("GYMRPC_TOKEN"), help="your token")
    parser.add_argument(
        "--policy",
        default=TIME_POLICY,
        choices=[name for name, baseline in BASELINES.items() if not baseline.needs_hidden_state],
        help="the baseline to play (the hidden-damage one cannot: evaluation hides the damage)",
    )
    parser.add_argument(
        "--episodes",
        "--challenge-episodes",
        dest="challenge_episodes",
        type=int,
        default=100,
        help="complete evaluation episodes to play (default: 100, a full score window)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    args = parser.parse_args(argv)
    if args.challenge_episodes < 1:
        parser.error(f"--episodes {args.challenge_episodes}: expected at least 1")
    run(BASELINES[args.policy].make(args.seed), args, name=args.policy)


if __name__ == "__main__":
    main()
