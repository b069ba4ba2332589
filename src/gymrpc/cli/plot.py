"""``gymrpc plot``: pictures of an engine's life, of learning curves, of the leaderboard.

Three sub-commands, each writing a PNG (``--out``) and printing its path:

* ``gymrpc plot engine``: one turbofan episode, played by a policy (``time``,
  ``never``, ``random``, or a model saved by ``examples/ppo_turbofan.py --save``) on a
  server or in-process, or read from a recording (``--episode``);
* ``gymrpc plot returns PATH...``: learning curves from the examples' run directories
  (``learning_curve.csv`` or TensorBoard logs), several runs on one figure;
* ``gymrpc plot leaderboard``: each user's score over time.

matplotlib (the ``plot`` extra) is imported only when a picture is drawn, so
``gymrpc envs`` works without it.

Example::

    gymrpc plot engine --policy time --seed 0 --in-process --out engine.png
    gymrpc plot returns runs/* --reference "time policy=4709" --out returns.png
    gymrpc plot leaderboard --env gymrpc/Turbofan-v0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import gymnasium
import numpy as np
import numpy.typing as npt

from gymrpc.catalogue import list_environments
from gymrpc.cli.options import add_connection_options
from gymrpc.errors import PermissionDeniedError
from gymrpc.plot import (
    MissingExtraError,
    engine_figure,
    leaderboard_figure,
    read_learning_curve,
    require,
    returns_figure,
    save_figure,
)
from gymrpc.recording import RecordedEpisode, load_episode
from gymrpc.scoring import leaderboard
from gymrpc.turbofan import KEEP_FLYING, EngineClock, time_policy
from gymrpc.vector_env import make_vec
from gymrpc.wrappers import RecordEpisodes

__all__ = ["register"]

TURBOFAN: Final = "gymrpc/Turbofan-v0"
#: The built-in policies of ``--policy`` (``examples/baselines.py`` defines the same).
POLICIES: Final = ("time", "never", "random")
#: Flights per block the built-in policies are defined over.
STEP_SIZE: Final = 10

ActionArray = npt.NDArray[np.int64]
Policy = Callable[[npt.NDArray[np.float32], EngineClock], ActionArray]


def register(subparsers: Any) -> None:
    """Add the ``plot`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "plot",
        help="draw pictures: an engine's life, learning curves, the leaderboard",
        description=(
            "Draw a picture as PNG and print its path. Needs matplotlib: pip install -e '.[plot]'."
        ),
    )
    pictures = parser.add_subparsers(dest="picture", metavar="PICTURE", required=True)

    engine = pictures.add_parser(
        "engine",
        help="one turbofan episode: sensors, shop visits, rewards, hidden damage",
        description=(
            "Play one turbofan episode with a policy, on a server or in-process, or read "
            "a recorded one, and draw its 7 sensors over sub-steps with their units, the "
            "shop visits, the sale or failure, the reward of each block and, when the "
            "caller may see it (an admin on a server, or in-process), the hidden damage "
            "against its failure threshold."
        ),
    )
    engine.add_argument(
        "--policy",
        default="time",
        help=(
            "time (repair every 3 blocks, sell in block 36), never (fly until failure), "
            "random, or the PATH of a model saved by examples/ppo_turbofan.py --save "
            "(default: time)"
        ),
    )
    engine.add_argument("--seed", type=int, default=0, help="seed of the engine (default: 0)")
    engine.add_argument(
        "--in-process", action="store_true", help="run the simulator here, without a server"
    )
    engine.add_argument(
        "--episode",
        metavar="FILE",
        help="draw a recorded episode instead: a recording directory or one episode's .npz",
    )
    engine.add_argument(
        "--index", type=int, default=0, help="which episode of the --episode recording (from 0)"
    )
    engine.add_argument(
        "--record", metavar="DIR", help="also keep the episode played as a recording in DIR"
    )
    engine.add_argument("--out", default="engine.png", help="PNG to write (default: engine.png)")
    add_connection_options(engine)
    engine.set_defaults(handler=run_engine)

    returns = pictures.add_parser(
        "returns",
        help="learning curves of training runs",
        description=(
            "Draw the episodic return of training runs against environment steps, from "
            "the examples' run directories: learning_curve.csv, or TensorBoard logs "
            "(charts/episodic_return) when there is no CSV."
        ),
    )
    returns.add_argument(
        "paths", nargs="+", metavar="PATH", help="run directories or learning_curve.csv files"
    )
    returns.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="LABEL=RETURN",
        help='a horizontal reference line, e.g. "time policy=4709" (repeatable)',
    )
    returns.add_argument(
        "--smooth",
        type=int,
        default=None,
        metavar="N",
        help="moving average over N points (default: none for CSV means, 1/20 of the "
        "points for TensorBoard episodes)",
    )
    returns.add_argument("--title", default="Learning curves", help="the figure's title")
    returns.add_argument("--out", default="returns.png", help="PNG to write (default: returns.png)")
    returns.set_defaults(handler=run_returns)

    board = pictures.add_parser(
        "leaderboard",
        help="each user's score over time",
        description="Draw each user's score over time, from the server's leaderboard.",
    )
    board.add_argument("--env", default=TURBOFAN, metavar="ID", help=f"environment ({TURBOFAN})")
    board.add_argument(
        "--out", default="leaderboard.png", help="PNG to write (default: leaderboard.png)"
    )
    add_connection_options(board)
    board.set_defaults(handler=run_leaderboard)


def _fail(message: object) -> int:
    print(f"gymrpc: {message}", file=sys.stderr)
    return 1


# --- gymrpc plot engine -----------------------------------------------------------------


def _time_policy(observations: npt.NDArray[np.float32], clock: EngineClock) -> ActionArray:
    return time_policy(clock)


def _never_policy(observations: npt.NDArray[np.float32], clock: EngineClock) -> ActionArray:
    return np.full(len(observations), KEEP_FLYING, dtype=np.int64)


def _random_policy(seed: int) -> Policy:
    rng = np.random.default_rng(seed)

    def act(observations: npt.NDArray[np.float32], clock: EngineClock) -> ActionArray:
        return rng.integers(0, 3, size=len(observations), dtype=np.int64)

    return act


def _saved_policy(path: Path) -> tuple[Policy, int]:
    """A TorchScript policy of ``examples/ppo_turbofan.py --save``, played greedily."""
    torch = require("torch", "sb3", "a saved policy")
    with warnings.catch_warnings():
        # torch.jit is deprecated in recent torch releases; loading still works.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
    features = [str(name) for name in module.feature_names]
    known = {"block", "blocks_since_repair", "repairs"}
    if not set(features) <= known:
        raise ValueError(
            f"policy: {str(path)!r} needs features {features}; this command knows {sorted(known)}"
        )

    def act(observations: npt.NDArray[np.float32], clock: EngineClock) -> ActionArray:
        inputs = [torch.as_tensor(observations, dtype=torch.float32)]
        if features:
            columns = np.stack([getattr(clock, name) for name in features], axis=1)
            inputs.append(torch.as_tensor(columns, dtype=torch.float32))
        with torch.no_grad():
            logits = module(*inputs)
        actions: ActionArray = logits.argmax(dim=1).numpy().astype(np.int64)
        return actions

    return act, int(module.step_size)


def _policy(name: str, seed: int) -> tuple[Policy, int, str]:
    """The policy named by ``--policy``, its step size, and its name for the title."""
    if name == "time":
        return _time_policy, STEP_SIZE, "time"
    if name == "never":
        return _never_policy, STEP_SIZE, "never repair"
    if name == "random":
        return _random_policy(seed), STEP_SIZE, "random"
    path = Path(name)
    if not path.is_file():
        raise ValueError(
            f"--policy: {name!r} is neither {', '.join(POLICIES)} nor an existing model file"
        )
    act, step_size = _saved_policy(path)
    return act, step_size, path.stem


def _open_engine(args: argparse.Namespace, step_size: int) -> tuple[Any, Any]:
    """The one-engine env to play on, and the observation labels to record."""
    if args.in_process:
        try:
            # Importing the server package registers the simulator with Gymnasium.
            import gymrpc_server  # noqa: F401, PLC0415
        except ImportError as error:
            raise MissingExtraError(
                "--in-process needs the gymrpc_server package, installed with gymrpc from "
                "a checkout (pip install -e .)"
            ) from error
        envs = gymnasium.make_vec(
            TURBOFAN,
            1,
            vectorization_mode="vector_entry_point",
            step_size=step_size,
            expose_hidden_state=True,
        )
        return envs, None  # the env's metadata carries the labels
    connection = {
        "target": args.target,
        "token": args.token,
        "root_certificates": args.tls_ca,
        "timeout": args.timeout,
    }
    try:
        envs = make_vec(TURBOFAN, 1, step_size=step_size, expose_hidden_state=True, **connection)
    except PermissionDeniedError:
        print(
            "gymrpc: the hidden damage is not drawn: the server shows it to admins only",
            file=sys.stderr,
        )
        envs = make_vec(TURBOFAN, 1, step_size=step_size, **connection)
    specs = list_environments(
        args.target, token=args.token, root_certificates=args.tls_ca, timeout=args.timeout
    )
    labels = [
        [dataclasses.asdict(axis) for axis in spec.observation_labels]
        for spec in specs
        if spec.env_id == TURBOFAN
    ]
    return envs, labels[0] if labels else None


def play_engine(args: argparse.Namespace, directory: Path) -> RecordedEpisode:
    """Play one episode of ``args.policy`` from ``args.seed``, recorded in ``directory``."""
    act, step_size, name = _policy(args.policy, args.seed)
    envs, labels = _open_engine(args, step_size)
    recorder = RecordEpisodes(envs, directory, observation_labels=labels, metadata={"policy": name})
    try:
        observations, info = recorder.reset(seed=args.seed)
        clock = EngineClock(1)
        clock.observe(info)
        while recorder.episodes_recorded == 0:
            observations, _, _, _, info = recorder.step(act(observations, clock))
            clock.observe(info)
    finally:
        recorder.close()
    return load_episode(directory)


def run_engine(args: argparse.Namespace) -> int:
    """Draw one engine's life; print the PNG's path."""
    try:
        if args.episode is not None:
            episode = load_episode(args.episode, args.index)
        elif args.record is not None:
            episode = play_engine(args, Path(args.record))
        else:
            with tempfile.TemporaryDirectory(prefix="gymrpc-engine-") as scratch:
                episode = play_engine(args, Path(scratch) / "episode")
        path = save_figure(engine_figure(episode), args.out)
    except (MissingExtraError, OSError, ValueError, IndexError) as error:
        return _fail(error)
    print(path)
    return 0


# --- gymrpc plot returns ---------------------------------------------------------------


def _references(items: list[str]) -> dict[str, float]:
    references = {}
    for item in items:
        label, _, value = item.rpartition("=")
        try:
            references[label.strip()] = float(value.replace(",", ""))
        except ValueError:
            raise ValueError(
                f"--reference: {item!r}; expected LABEL=RETURN, e.g. 'time policy=4709'"
            ) from None
        if not label.strip():
            raise ValueError(f"--reference: {item!r} has no label; expected LABEL=RETURN")
    return references


def run_returns(args: argparse.Namespace) -> int:
    """Draw learning curves; print the PNG's path."""
    try:
        curves = [read_learning_curve(path) for path in args.paths]
        figure = returns_figure(
            curves, references=_references(args.reference), smooth=args.smooth, title=args.title
        )
        path = save_figure(figure, args.out)
    except (MissingExtraError, OSError, ValueError) as error:
        return _fail(error)
    print(path)
    return 0


# --- gymrpc plot leaderboard ------------------------------------------------------------


def run_leaderboard(args: argparse.Namespace) -> int:
    """Draw the leaderboard's scores over time; print the PNG's path."""
    board = leaderboard(
        args.env,
        target=args.target,
        token=args.token,
        root_certificates=args.tls_ca,
        include_history=True,
        timeout=args.timeout,
    )
    try:
        path = save_figure(leaderboard_figure(board), args.out)
    except (MissingExtraError, OSError) as error:
        return _fail(error)
    print(path)
    return 0
