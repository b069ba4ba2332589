"""Reference runs: a remote vector env and Gymnasium's ``SyncVectorEnv`` in lockstep.

The contract of ``gymrpc.RemoteVectorEnv`` is "behaves exactly like SyncVectorEnv over
the same environment". :class:`Lockstep` drives both with the same seeded actions,
seeds and reset masks and asserts after every call that they returned
``data_equivalence(..., exact=True)``-equal data. The conformance, equivalence and
wrapper tests share it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import gymnasium as gym
import gymrpc_test_envs  # noqa: F401  (registers gymrpc-test/* for the local side)
import numpy as np
import numpy.typing as npt
import pytest
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymrpc_testing import Running

import gymrpc
import gymrpc_server  # noqa: F401  (registers gymrpc/Turbofan-v0 for the local side)
from gymrpc_server.auth import Identity, Role
from gymrpc_server.session import Session

__all__ = [
    "MODES",
    "CopyOptions",
    "Lockstep",
    "Seed",
    "StepResult",
    "assert_equivalent",
    "make_single",
    "remote_env",
    "server_session",
    "sync_reference",
]

#: The three autoreset modes as pytest parameters with readable ids.
MODES = [pytest.param(mode, id=mode.name) for mode in AutoresetMode]

Info = dict[str, Any]
#: What ``reset(seed=...)`` takes: ``VectorEnv`` annotates ``int | None``, while
#: SyncVectorEnv (and gymrpc) also take one ``int | None`` per sub-environment.
Seed = int | Sequence[int | None] | None
StepResult = tuple[Any, npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], Info]


def make_single(env_id: str, **env_options: Any) -> gym.Env[Any, Any]:
    """Build one environment the way a server applies ``env_options``.

    Options the environment's constructor takes go to the constructor, even when
    ``gymnasium.make`` has a parameter of the same name (the turbofan's
    ``max_episode_steps`` counts sub-steps, ``make``'s would add a ``TimeLimit`` of
    blocks); the others (``max_episode_steps`` of CartPole) go to ``gymnasium.make``.
    """
    spec = gym.spec(env_id)
    entry_point = spec.entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    assert creator is not None
    parameters = inspect.signature(creator).parameters
    constructor = {name: value for name, value in env_options.items() if name in parameters}
    make_side = {name: value for name, value in env_options.items() if name not in parameters}
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **constructor})
    return gym.make(spec, **make_side)


def sync_reference(
    env_id: str, num_envs: int, mode: AutoresetMode, **env_options: Any
) -> SyncVectorEnv:
    """``SyncVectorEnv`` over ``num_envs`` copies of the environment: the reference."""
    return SyncVectorEnv(
        [lambda: make_single(env_id, **env_options)] * num_envs, autoreset_mode=mode
    )


def remote_env(
    target: str,
    env_id: str,
    num_envs: int,
    mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    vectorization_mode: str | None = "sync",
    **env_options: Any,
) -> gymrpc.RemoteVectorEnv:
    """A remote batch; ``"sync"`` makes the server run exactly the reference's code."""
    return gymrpc.RemoteVectorEnv(
        env_id,
        num_envs,
        target=target,
        autoreset_mode=mode,
        vectorization_mode=vectorization_mode,
        env_options=env_options,
        timeout=30.0,
    )


def server_session(running: Running, env: gymrpc.RemoteVectorEnv) -> Session:
    """The server's side of an anonymous caller's session, to observe it directly."""
    return running.server.registry.get(Identity("anonymous", Role.USER), env.session_id)


class CopyOptions(VectorWrapper[Any, Any, Any]):
    """SyncVectorEnv without its known flaw: it pops ``reset_mask`` from the caller's dict.

    Wrappers such as ``RecordEpisodeStatistics`` read the mask after the inner reset;
    the contract asks gymrpc to leave the dict alone, so the reference must too.
    """

    def reset(self, *, seed: Seed = None, options: Info | None = None) -> tuple[Any, Info]:
        return self.env.reset(
            seed=cast(Any, seed), options=None if options is None else dict(options)
        )


def assert_equivalent(got: Any, want: Any, what: str) -> None:
    """Assert ``data_equivalence(got, want, exact=True)``, naming what differs."""
    assert data_equivalence(got, want, exact=True), (
        f"{what} differs from the reference:\n remote: {got!r}\n local:  {want!r}"
    )


def _random_mask(rng: np.random.Generator, num_envs: int) -> npt.NDArray[np.bool_]:
    mask = rng.random(num_envs) < 0.5
    mask[rng.integers(num_envs)] = True
    return mask


def _random_seeds(rng: np.random.Generator, num_envs: int) -> Seed:
    kind = rng.integers(3)
    if kind == 0:
        return None
    if kind == 1:
        return int(rng.integers(1_000_000))
    return [None if rng.random() < 0.3 else int(rng.integers(1_000_000)) for _ in range(num_envs)]


@dataclass
class Lockstep:
    """Drive a remote env and a reference env with identical calls; compare every result.

    Both may be wrapped. Actions come from each side's own ``action_space``, seeded
    identically (with 0 at first, see :meth:`seed_actions`), and must themselves be
    equal (which also checks the batched spaces).

    Attributes:
        remote: The environment under test.
        local: The reference.
        scrub: Applied to both infos before comparing (to drop wall-clock values).
        events: Counts of what happened: terminations, truncations, partial resets.
    """

    remote: VectorEnv[Any, Any, Any]
    local: VectorEnv[Any, Any, Any]
    scrub: Callable[[Any], Any] = lambda info: info
    events: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.seed_actions(0)

    def seed_actions(self, seed: int) -> None:
        """Seed both action spaces."""
        self.remote.action_space.seed(seed)
        self.local.action_space.seed(seed)

    @property
    def mode(self) -> AutoresetMode:
        mode = self.local.metadata["autoreset_mode"]
        assert isinstance(mode, AutoresetMode)
        return mode

    def reset(self, *, seed: Seed = None, options: Info | None = None) -> tuple[Any, Info]:
        """Reset both (each gets its own copy of ``options``) and compare."""
        seeds = cast(Any, seed)
        got = self.remote.reset(seed=seeds, options=None if options is None else dict(options))
        want = self.local.reset(seed=seeds, options=None if options is None else dict(options))
        assert_equivalent(got[0], want[0], "reset observations")
        assert_equivalent(self.scrub(got[1]), self.scrub(want[1]), "reset info")
        return got

    def step(self, actions: Any = None) -> StepResult:
        """Step both with the given actions or the next sampled ones, and compare."""
        if actions is None:
            actions = self.remote.action_space.sample()
            assert_equivalent(actions, self.local.action_space.sample(), "sampled actions")
        got = self.remote.step(actions)
        want = self.local.step(actions)
        for name, remote_value, local_value in zip(
            ("observations", "rewards", "terminations", "truncations"), got, want, strict=False
        ):
            assert_equivalent(remote_value, local_value, name)
        assert_equivalent(self.scrub(got[4]), self.scrub(want[4]), "step info")
        self.events["terminated"] += int(np.sum(want[2]))
        self.events["truncated"] += int(np.sum(want[3]))
        return got

    def run(self, steps: int, seed: int, partial_resets: bool = True) -> Counter[str]:
        """Reset with ``seed``, then step ``steps`` times with seeded random actions.

        With ``partial_resets``, about one step in eight is followed by a reset of a
        random subset of sub-environments with random seeds (staggered episodes). In
        DISABLED mode every ended sub-environment is reset with a mask before the next
        step, as the mode requires.

        Returns:
            The :attr:`events`, for the caller to check the run exercised what it meant.
        """
        rng = np.random.default_rng(seed)
        self.seed_actions(seed)
        self.reset(seed=seed)
        num_envs = self.local.num_envs
        for _ in range(steps):
            _, _, terminations, truncations, _ = self.step()
            mask = np.zeros(num_envs, dtype=np.bool_)
            if self.mode is AutoresetMode.DISABLED:
                mask |= terminations | truncations
            if partial_resets and rng.random() < 1 / 8:
                mask |= _random_mask(rng, num_envs)
                self.events["partial resets"] += 1
            if mask.any():
                self.reset(seed=_random_seeds(rng, num_envs), options={"reset_mask": mask})
        return self.events

    def close(self) -> None:
        self.remote.close()
        self.local.close()

    def __enter__(self) -> Lockstep:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
