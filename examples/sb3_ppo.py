"""Stable-Baselines3 PPO on a remote environment, through ``gymrpc.sb3.RemoteVecEnv``.

Stable-Baselines3 has its own ``VecEnv`` API rather than Gymnasium's; ``RemoteVecEnv``
provides it over a gymrpc session, so SB3's algorithms and wrappers work unchanged:
``VecMonitor`` records the episodes (``rollout/ep_rew_mean`` in the log) and
``VecNormalize`` scales the turbofan's sensors, which span K, rpm and Pa.

Needs the optional dependencies: ``pip install gymrpc[sb3]``. Start a server
(``make serve``), then::

    python examples/sb3_ppo.py --num-envs 8 --total-timesteps 50000
"""

from __future__ import annotations

import argparse
import os

from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from gymrpc.sb3 import RemoteVecEnv


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
        "--target",
        type=str,
        default=os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051"),
        help="server host:port (default: $GYMRPC_TARGET or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token", type=str, default=None, help="bearer token (default: $GYMRPC_TOKEN)"
    )
    return parser.parse_args()


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
    model.learn(total_timesteps=args.total_timesteps)
    episodes: list[dict[str, float]] = list(model.ep_info_buffer or [])
    if episodes:
        mean = sum(episode["r"] for episode in episodes) / len(episodes)
        print(f"mean episodic return of the last {len(episodes)} episodes: {mean:.1f}")
    else:
        print("no episode finished; raise --total-timesteps")
    venv.close()


if __name__ == "__main__":
    main()
