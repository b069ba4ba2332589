"""Heuristic baselines of the turbofan, evaluated on the same 1,000 engines.

Five hand-written maintenance policies play one episode on each of 1,000 engines
seeded ``ENGINE_SEED + i`` (blocks of 10 flights): an engine's trajectory depends only
on its seed and the actions it receives, so every policy meets exactly the same
engines, and any agent evaluated with :func:`evaluate` on them is directly comparable.

* ``random``: uniform actions (seeded);
* ``never repair, never sell``: keep flying until the engine fails;
* ``repair every 60 flights``: first repair in block 7 (after 6 blocks), then every 6th
  block; never sell;
* ``time policy``: repair once 3 blocks have passed since the last repair (or since
  new), sell in block 36 counted from 0;
* ``hidden-damage heuristic``: repair when the latent damage ``info["degradation"]``
  exceeds 0.5, sell once it exceeds 0.5 after 6 repairs. It reads the hidden state,
  which only an admin may see on a server (env option ``expose_hidden_state``).

By default the engines run in-process (``import gymrpc_server`` registers the env with
Gymnasium); ``--target`` runs them on a gymrpc server instead, with the same results.
The other examples import :func:`evaluate`, :func:`run_baselines` and
:func:`format_table` to put their trained agents in the same table.

Run from the repository root::

    .venv/bin/python examples/baselines.py             # in-process, 1,000 engines
    .venv/bin/python examples/baselines.py --target    # on the server of `make serve`
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, VectorEnv

import gymrpc
from gymrpc import turbofan
from gymrpc.errors import PermissionDeniedError
from gymrpc.turbofan import KEEP_FLYING, REPAIR, SELL, EngineClock

ENV_ID: Final = "gymrpc/Turbofan-v0"
#: Flights per block: the baselines are defined over blocks of 10, as in the original.
STEP_SIZE: Final = 10
#: Seed of engine 0 of the evaluation (engine i gets ENGINE_SEED + i). Far from the small
#: seeds that training runs use, so that agents are evaluated on engines they never met.
ENGINE_SEED: Final = 1_000_000
NUM_ENGINES: Final = 1000
DEFAULT_TARGET: Final = os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051")

#: info["reason"] of an episode that ended with a failure (2 sold, 3 truncated).
REASON_FAILURE: Final = 1

RANDOM: Final = "random"
NEVER: Final = "never repair, never sell"
EVERY_60: Final = "repair every 60 flights"
TIME_POLICY: Final = "time policy"
HIDDEN_DAMAGE: Final = "hidden-damage heuristic"

ObsArray = npt.NDArray[np.float32]
ActionArray = npt.NDArray[np.int64]


class Policy(Protocol):
    """Chooses the actions of a batch of engines for their next block."""

    def __call__(
        self, observations: ObsArray, info: dict[str, Any], clock: EngineClock
    ) -> ActionArray:
        """One action per engine, from the last observations, info and the clock."""
        ...


# --- The baselines -------------------------------------------------------------------


class RandomPolicy:
    """Uniform random actions from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(
        self, observations: ObsArray, info: dict[str, Any], clock: EngineClock
    ) -> ActionArray:
        """Draw one action in {0, 1, 2} per engine."""
        return self.rng.integers(0, 3, size=len(observations), dtype=np.int64)


def never_repair(observations: ObsArray, info: dict[str, Any], clock: EngineClock) -> ActionArray:
    """Keep flying until the engine fails (or the episode is truncated)."""
    return np.full(len(observations), KEEP_FLYING, dtype=np.int64)


def repair_every_60_flights(
    observations: ObsArray, info: dict[str, Any], clock: EngineClock
) -> ActionArray:
    """Repair in blocks 6, 12, 18, ... (counted from 0); never sell."""
    repairing = (clock.block >= 6) & (clock.block % 6 == 0)
    return np.where(repairing, REPAIR, KEEP_FLYING).astype(np.int64)


def time_policy(observations: ObsArray, info: dict[str, Any], clock: EngineClock) -> ActionArray:
    """Repair after 3 blocks without one (repairs in blocks 3, 7, ..., 35); sell in block 36."""
    return turbofan.time_policy(clock)


def hidden_damage_heuristic(
    observations: ObsArray, info: dict[str, Any], clock: EngineClock
) -> ActionArray:
    """Repair when the latent damage exceeds 0.5; sell instead once 6 repairs are done."""
    worn = np.asarray(info["degradation"]) > 0.5
    sell = worn & (np.asarray(info["repairs"]) >= 6)
    return np.where(sell, SELL, np.where(worn, REPAIR, KEEP_FLYING)).astype(np.int64)


@dataclass(frozen=True)
class Baseline:
    """A baseline: how to build its policy from a seed, and whether it reads hidden state."""

    make: Callable[[int], Policy]
    needs_hidden_state: bool = False


BASELINES: Final[dict[str, Baseline]] = {
    RANDOM: Baseline(RandomPolicy),
    NEVER: Baseline(lambda seed: never_repair),
    EVERY_60: Baseline(lambda seed: repair_every_60_flights),
    TIME_POLICY: Baseline(lambda seed: time_policy),
    HIDDEN_DAMAGE: Baseline(lambda seed: hidden_damage_heuristic, needs_hidden_state=True),
}


# --- Evaluation ----------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationResult:
    """The first episode of each engine under one policy (arrays over engines)."""

    name: str
    returns: npt.NDArray[np.float64]
    failed: npt.NDArray[np.bool_]
    repairs: npt.NDArray[np.int64]
    #: Sub-steps of the episode: flights, shop days and the sale.
    flights: npt.NDArray[np.int64]

    @property
    def mean_return(self) -> float:
        """Mean episodic return."""
        return float(np.mean(self.returns))

    @property
    def ci95(self) -> float:
        """Half-width of the 95 % confidence interval of the mean: 1.96 sd / sqrt(n)."""
        n = len(self.returns)
        return 1.96 * float(np.std(self.returns, ddof=1)) / math.sqrt(n) if n > 1 else math.nan

    @property
    def failure_rate(self) -> float:
        """Fraction of the episodes that ended with a failure."""
        return float(np.mean(self.failed))

    @property
    def mean_repairs(self) -> float:
        """Mean number of repairs per episode."""
        return float(np.mean(self.repairs))

    @property
    def mean_flights(self) -> float:
        """Mean episode length in sub-steps."""
        return float(np.mean(self.flights))


def make_engines(
    num_engines: int,
    *,
    target: str | None = None,
    token: str | None = None,
    expose_hidden_state: bool = False,
    step_size: int = STEP_SIZE,
) -> VectorEnv[Any, Any, Any]:
    """A batch of turbofan engines: in-process if ``target`` is None, else on that server.

    Raises:
        gymrpc.errors.PermissionDeniedError: The server refused ``expose_hidden_state``
            (only admins may see the hidden state).
    """
    options: dict[str, Any] = {"step_size": step_size}
    if expose_hidden_state:
        options["expose_hidden_state"] = True
    if target is None:
        import gymrpc_server  # noqa: F401 (registers gymrpc/Turbofan-v0 with Gymnasium)

        return gymnasium.make_vec(
            ENV_ID, num_envs=num_engines, vectorization_mode="vector_entry_point", **options
        )
    return gymrpc.make_vec(ENV_ID, num_engines, target=target, token=token, **options)


def evaluate(
    policy: Policy, envs: VectorEnv[Any, Any, Any], *, name: str, seed: int = ENGINE_SEED
) -> EvaluationResult:
    """Play the first episode of every engine of ``envs`` (seeded ``seed + i``) with ``policy``.

    The batch keeps stepping until every engine's first episode is over; engines that
    finished early are autoreset (NEXT_STEP) and what they do afterwards is ignored.

    Raises:
        ValueError: ``envs`` does not use the NEXT_STEP autoreset mode.
    """
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode is not AutoresetMode.NEXT_STEP:
        raise ValueError(f"evaluate() needs envs in the NEXT_STEP autoreset mode, got {mode}")
    n = envs.num_envs
    returns = np.zeros(n)
    failed = np.zeros(n, dtype=np.bool_)
    repairs = np.zeros(n, dtype=np.int64)
    flights = np.zeros(n, dtype=np.int64)
    running = np.ones(n, dtype=np.bool_)
    clock = EngineClock(n)
    observations, info = envs.reset(seed=seed)
    clock.observe(info)
    while running.any():
        actions = policy(observations, info, clock)
        observations, rewards, terminated, truncated, info = envs.step(actions)
        returns[running] += rewards[running]
        ended = running & (terminated | truncated)
        failed[ended] = info["reason"][ended] == REASON_FAILURE
        repairs[ended] = info["repairs"][ended]
        flights[ended] = info["step"][ended]
        running &= ~ended
        clock.observe(info)
    return EvaluationResult(name, returns, failed, repairs, flights)


def run_baselines(
    names: Sequence[str] = tuple(BASELINES),
    *,
    num_engines: int = NUM_ENGINES,
    seed: int = ENGINE_SEED,
    target: str | None = None,
    token: str | None = None,
) -> tuple[list[EvaluationResult], list[str]]:
    """Evaluate the named baselines (in-process unless ``target`` is given).

    Returns:
        The results, and notes about baselines that could not run (the server refused
        the hidden state to a non-admin).
    """
    results, notes = [], []
    for name in names:
        baseline = BASELINES[name]
        try:
            envs = make_engines(
                num_engines,
                target=target,
                token=token,
                expose_hidden_state=baseline.needs_hidden_state,
            )
        except PermissionDeniedError as error:
            notes.append(
                f"{name}: skipped, the server refused expose_hidden_state ({error}); "
                "run it in-process (no --target) or with an admin --token"
            )
            continue
        try:
            results.append(evaluate(baseline.make(seed), envs, name=name, seed=seed))
        finally:
            envs.close()
    return results, notes


def format_table(results: Sequence[EvaluationResult], *, markdown: bool = False) -> str:
    """The results as an aligned text table, or a Markdown table."""
    header = ("policy", "mean return (95 % CI)", "failures", "mean repairs", "mean flights")
    rows = [
        (
            result.name,
            f"{result.mean_return:,.0f} ± {result.ci95:,.0f}",
            f"{100 * result.failure_rate:.1f} %",
            f"{result.mean_repairs:.2f}",
            f"{result.mean_flights:.1f}",
        )
        for result in results
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    )


# --- Command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        nargs="?",
        const=DEFAULT_TARGET,
        default=None,
        metavar="HOST:PORT",
        help="run on this gymrpc server instead of in-process; --target alone means "
        f"$GYMRPC_TARGET or 127.0.0.1:50051 (here: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--token", type=str, default=None, help="bearer token (default: $GYMRPC_TOKEN)"
    )
    parser.add_argument(
        "--engines", type=int, default=NUM_ENGINES, help="engines, one episode each"
    )
    parser.add_argument("--seed", type=int, default=ENGINE_SEED, help="engine i is seeded seed + i")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if args.engines < 2:
        parser.error(
            f"--engines must be at least 2 (for a confidence interval), got {args.engines}"
        )
    return args


def main() -> None:
    """Evaluate every baseline and print the table."""
    args = parse_args()
    where = "in-process" if args.target is None else f"on {args.target}"
    print(f"{args.engines} engines seeded {args.seed}..{args.seed + args.engines - 1}, {where}")
    results, notes = run_baselines(
        num_engines=args.engines, seed=args.seed, target=args.target, token=args.token
    )
    print(format_table(results, markdown=args.markdown))
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
