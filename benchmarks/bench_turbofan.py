"""Benchmark of ``TurbofanVectorEnv``: flights per second and microseconds per block.

Steps the native vector env (NEXT_STEP autoreset) with realistic mixed actions: each
engine keeps flying with probability 0.89, repairs with 0.10 and sells with 0.01 per
block, so episodes end by failure, sale and truncation and autoresets are included.
A "flight" is one sub-step of one engine (shop days and padding rows count too), so
flights per second = num_envs * step_size * blocks per second. The time per block is
the whole ``env.step`` call, info building included. Each configuration is timed in
several rounds and the median round is reported.

Usage::

    python benchmarks/bench_turbofan.py            # full run
    python benchmarks/bench_turbofan.py --quick    # a few seconds, for a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np

from gymrpc_server.envs.turbofan import TurbofanVectorEnv

ACTION_PROBABILITIES = (0.89, 0.10, 0.01)  # keep flying, repair, sell


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, for a smoke test")
    parser.add_argument(
        "--num-envs",
        type=int,
        nargs="+",
        default=[1, 64, 1024, 4096],
        help="batch sizes to time (default: 1 64 1024 4096)",
    )
    parser.add_argument("--step-size", type=int, default=10, help="sub-steps per block")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per batch size")
    parser.add_argument("--seconds", type=float, default=None, help="target duration of one round")
    parser.add_argument("--seed", type=int, default=0, help="seed of the envs and actions")
    return parser.parse_args(argv)


def time_blocks(num_envs: int, step_size: int, rounds: int, seconds: float, seed: int) -> float:
    """Median seconds per block of ``num_envs`` engines over ``rounds`` timed rounds."""
    env = TurbofanVectorEnv(num_envs=num_envs, step_size=step_size)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = [
        rng.choice(3, size=num_envs, p=ACTION_PROBABILITIES).astype(np.int64) for _ in range(257)
    ]
    # Warm up (caches, page faults) and size the rounds to about `seconds` each.
    start = time.perf_counter()
    warmup = 0
    while warmup < 5 or time.perf_counter() - start < seconds / 4:
        env.step(actions[warmup % len(actions)])
        warmup += 1
    per_block = (time.perf_counter() - start) / warmup
    blocks = max(5, int(seconds / per_block))
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for index in range(blocks):
            env.step(actions[index % len(actions)])
        timings.append((time.perf_counter() - start) / blocks)
    env.close()
    return statistics.median(timings)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    seconds = args.seconds or (0.2 if args.quick else 1.0)
    print(
        f"TurbofanVectorEnv, step_size {args.step_size}, actions "
        f"{ACTION_PROBABILITIES} (keep, repair, sell), median of {rounds} rounds\n"
    )
    print("| envs | µs per block | flights per second |")
    print("|---:|---:|---:|")
    for num_envs in args.num_envs:
        per_block = time_blocks(num_envs, args.step_size, rounds, seconds, args.seed)
        flights = num_envs * args.step_size / per_block
        print(f"| {num_envs} | {per_block * 1e6:,.1f} | {flights / 1e6:,.2f} M |")


if __name__ == "__main__":
    main()
