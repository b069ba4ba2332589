"""Stable-Baselines3 PPO on a remote environment, through ``gymrpc.sb3.RemoteVecEnv``.

Stable-Baselines3 has its own ``VecEnv`` API rather than Gymnasium's; ``RemoteVecEnv``
provides it over a gymrpc session, so SB3's algorithms and wrappers work unchanged:
``VecMonitor`` records the episodes (``rollout/ep_rew_mean`` in the log) and
``VecNormalize`` scales the turbofan's sensors, which span K, rpm and Pa.

At the end, the greedy policy (``deterministic=True``) plays the same 1,000 engines as
``baselines.py`` on the server, and is printed in one table with the time policy and
the hidden-damage heuristic (computed in-process by ``baselines.py``'s code).

Needs the examples' dependencies (``make venv``, or ``.venv/bin/pip install -e
'.[examples]'``). Start a server (``make serve``), then, from the repository root::

    .venv/bin/python examples/sb3_ppo.py --num-envs 8 --total-timesteps 50000
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import challenge
import numpy as np
from baselines import (
    ENGINE_SEED,
    HIDDEN_DAMAGE,
    NUM_ENGINES,
    TIME_POLICY,
    ActionArray,
    ObsArray,
    evaluate,
    format_table,
    make_engines,
    run_baselines,
)
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
from tqdm import tqdm

from gymrpc.sb3 import RemoteVecEnv
from gymrpc.turbofan import EngineClock


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", type=str, default="gymrpc/Turbofan-v0")
    parser.add_argument("--num-envs", type=int, default=8, help="sub-environments")
    parser.add_argument("--total-timesteps", type=int, default=50_000, help="over all envs")
    parser.add_argument("--n-steps", type=int, default=256, help="steps per env per rollout")
    parser.add_argument("--batch-size", type=int, default=256, help="PPO minibatch size")
    parser.add_argument("--n-epochs", type=int, default=10, help="epochs per rollout")
    parser.add_argument("--seed", type=int, default=0, help="seeds the envs and PPO")
    parser.add_argument(
        "--eval-engines",
        type=int,
        default=NUM_ENGINES,
        help="engines of the final greedy evaluation (as baselines.py); 0 skips it",
    )
    parser.add_argument(
        "--challenge-episodes",
        type=int,
        default=100,
        help="evaluation episodes played for the leaderboard at the end (challenge.py); 0 skips",
    )
    parser.add_argument(
        "--target",
        type=str,
        default=os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051"),
        help="server host:port (default: $GYMRPC_TARGET or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token", type=str, default=None, help="bearer token (default: $GYMRPC_TOKEN)"
    )
    return parser.parse_args()


class ProgressBar(BaseCallback):
    """A tqdm bar over the training steps (SB3's own needs the ``rich`` package)."""

    def __init__(self, total_timesteps: int) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.bar: tqdm[Any] | None = None

    def _on_training_start(self) -> None:
        # PPO collects whole rollouts, so it stops at the first multiple of one at or
        # above total_timesteps.
        assert isinstance(self.model, PPO)
        rollout = self.model.n_steps * self.training_env.num_envs
        self.bar = tqdm(total=-(-self.total_timesteps // rollout) * rollout, unit="step")

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        assert self.bar is not None
        self.bar.close()


class GreedyPolicy:
    """A ``baselines.Policy``: the trained model's most likely actions on raw observations."""

    def __init__(self, model: PPO, venv: VecNormalize) -> None:
        self.model = model
        self.venv = venv

    def __call__(
        self, observations: ObsArray, info: dict[str, Any], clock: EngineClock
    ) -> ActionArray:
        """Normalise as in training (statistics frozen), then take the argmax action."""
        normalized = self.venv.normalize_obs(observations)
        actions, _ = self.model.predict(normalized, deterministic=True)
        return np.asarray(actions, dtype=np.int64)


def main() -> None:
    """Train PPO; SB3 prints its statistics after every rollout."""
    args = parse_args()
    env = RemoteVecEnv(args.env_id, args.num_envs, target=args.target, token=args.token)
    print(f"session {env.remote.session_id[:8]}: {env!r} on {args.target}")
    # VecMonitor sits under VecNormalize so that it records the raw rewards.
    venv = VecNormalize(VecMonitor(env), gamma=0.99)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        seed=args.seed,  # calls venv.seed(): applied at the first reset
        device="cpu",
        verbose=1,
    )
    model.learn(total_timesteps=args.total_timesteps, callback=ProgressBar(args.total_timesteps))
    episodes: list[dict[str, float]] = list(model.ep_info_buffer or [])
    if episodes:
        mean = sum(episode["r"] for episode in episodes) / len(episodes)
        print(f"mean episodic return of the last {len(episodes)} episodes: {mean:.1f}")
    else:
        print("no episode finished; raise --total-timesteps")
    venv.close()

    if args.eval_engines > 0:
        print(
            f"greedy evaluation on the {args.eval_engines} engines of baselines.py "
            f"(seeds {ENGINE_SEED}..{ENGINE_SEED + args.eval_engines - 1}):"
        )
        engines = make_engines(args.eval_engines, target=args.target, token=args.token)
        try:
            result = evaluate(
                GreedyPolicy(model, venv), engines, name="SB3 PPO (greedy)", seed=ENGINE_SEED
            )
        finally:
            engines.close()
        baselines, _ = run_baselines((TIME_POLICY, HIDDEN_DAMAGE), num_engines=args.eval_engines)
        print(format_table([result, *baselines]))
    if args.challenge_episodes > 0:
        challenge.run(GreedyPolicy(model, venv), args, name="SB3 PPO (greedy)")


if __name__ == "__main__":
    main()
