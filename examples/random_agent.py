"""Random actions on the remote turbofan simulator, with Gymnasium's episode statistics.

The smallest complete gymrpc program: ``gymrpc.make_vec`` opens a session of N engines
on the server, and from then on it is an ordinary ``gymnasium.vector.VectorEnv``, so
Gymnasium's own ``RecordEpisodeStatistics`` wrapper reports each finished episode.

Start a server (``make serve``), then, from the repository root::

    .venv/bin/python examples/random_agent.py --num-envs 4 --num-steps 200
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import gymrpc


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        type=str,
        default=os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051"),
        help="server host:port (default: $GYMRPC_TARGET or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token", type=str, default=None, help="bearer token (default: $GYMRPC_TOKEN)"
    )
    parser.add_argument("--env-id", type=str, default="gymrpc/Turbofan-v0")
    parser.add_argument("--num-envs", type=int, default=4, help="engines stepped together")
    parser.add_argument("--num-steps", type=int, default=200, help="steps of the whole batch")
    parser.add_argument("--seed", type=int, default=0, help="seeds the envs and the actions")
    return parser.parse_args()


def main() -> None:
    """Play random actions and print every finished episode."""
    args = parse_args()
    envs = RecordEpisodeStatistics(
        gymrpc.make_vec(
            args.env_id, args.num_envs, target=args.target, token=args.token, seed=args.seed
        )
    )
    print(f"session of {args.num_envs} x {args.env_id} on {args.target}")
    envs.reset(seed=args.seed)
    # Every finished episode's return. The wrapper's own return_queue only keeps the
    # last 100, which would misreport any run longer than that.
    returns: list[float] = []
    for step in range(args.num_steps):
        # make_vec(seed=...) also seeded the action space: the run is reproducible.
        _, _, _, _, info = envs.step(envs.action_space.sample())
        # The wrapper adds info["episode"] (returns "r", lengths "l") on the steps where
        # episodes end, with the mask info["_episode"] saying which envs they were.
        if "episode" in info:
            for index in np.flatnonzero(info["_episode"]):
                returns.append(float(info["episode"]["r"][index]))
                print(
                    f"step {step:4d}  env {index}: episode return "
                    f"{info['episode']['r'][index]:9.1f}, length {info['episode']['l'][index]}"
                )
    envs.close()
    if returns:
        print(f"{len(returns)} episodes, mean return {np.mean(returns):.1f}")
    else:
        print("no episode finished; raise --num-steps")


if __name__ == "__main__":
    main()
