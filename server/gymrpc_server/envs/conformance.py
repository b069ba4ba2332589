"""``gymrpc/Conformance-v0``: a tiny deterministic environment for protocol conformance.

The conformance kit (``python -m gymrpc.conformance``, docs/conformance.md) drives this
environment to check a server against the schema. Everything it does is specified
here, simply enough to be implemented in any language, so that a server written in Go
or Rust can serve the same environment and pass the same checks:

* **Generator.** Each sub-environment keeps a 64-bit unsigned state ``x``; advancing it
  is one step of Knuth's MMIX linear congruential generator,
  ``x = (6364136223846793005 * x + 1442695040888963407) mod 2**64``, and the
  *value* shown is ``x >> 44`` (0 .. 2**20 - 1).
* **Reset.** ``reset(seed=s)`` sets ``x = s``; an unseeded reset keeps ``x`` (the first
  one ever starts from OS entropy). Every reset then advances ``x`` once and starts an
  episode at step 0. The observation is ``[0, value]``. Vector seeding is Gymnasium's:
  sub-environment i gets ``s + i``.
* **Step.** ``step(a)`` with ``a`` in ``Discrete(3)``: the episode step ``t`` grows by 1,
  ``x`` advances once, the observation is ``[t, value]`` and the reward is ``a / 2``
  (0.0, 0.5 or 1.0). The episode terminates when ``t`` reaches ``episode_length``;
  it is never truncated.
* **Spaces.** Observation ``Box(low=[0, 0], high=[100, 2**20 - 1], shape=(2,),
  int64)``; action ``Discrete(3)`` (int64), so 3 and -1 are invalid actions.
* **Info.** ``episode_step`` (int, ``t``) after every reset and step; with
  ``expose_hidden_state=True`` also ``next_value`` (int, the value the next advance of
  ``x`` will show: the future, hence privileged).
* **Options.** ``episode_length`` (int, 1..100, default 5; out of range is a
  ``ValueError`` naming the option) and ``expose_hidden_state`` (bool, default False;
  privileged on a gymrpc server). Reset options: none (only the vector reset's
  ``reset_mask``); any other is a ``ValueError``.

:class:`ConformanceVectorEnv` is the native vector implementation (all three autoreset
modes, exactly the data of ``SyncVectorEnv`` over :class:`ConformanceEnv`). Importing
this module imports nothing beyond Gymnasium and numpy and builds nothing: the
environment costs nothing until a session uses it.

Example:
    >>> env = ConformanceEnv(episode_length=2)
    >>> env.reset(seed=0)[0].tolist()
    [0, 82007]
    >>> observation, reward, terminated, truncated, info = env.step(2)
    >>> observation.tolist(), reward, terminated, info
    ([1, 106638], 1.0, False, {'episode_step': 1})
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

__all__ = [
    "ENV_ID",
    "INCREMENT",
    "MAX_EPISODE_LENGTH",
    "MULTIPLIER",
    "VALUE_SHIFT",
    "ConformanceEnv",
    "ConformanceVectorEnv",
    "advance",
    "register",
]

#: The Gymnasium id.
ENV_ID: Final = "gymrpc/Conformance-v0"
#: Multiplier and increment of the generator (Knuth's MMIX constants).
MULTIPLIER: Final = 6364136223846793005
INCREMENT: Final = 1442695040888963407
#: The value shown is the state's top 20 bits.
VALUE_SHIFT: Final = 44
#: Largest ``episode_length``.
MAX_EPISODE_LENGTH: Final = 100
_MASK64: Final = (1 << 64) - 1
_VALUE_HIGH: Final = (1 << (64 - VALUE_SHIFT)) - 1

_DOCUMENTATION: Final = (__doc__ or "").split("\n\n:class:")[0]
_METADATA: Final[dict[str, Any]] = {
    "render_modes": [],
    "gymrpc.description": _DOCUMENTATION,
    "gymrpc.observation_labels": [
        {
            "path": "",
            "axis": -1,
            "labels": [
                {"name": "episode_step", "description": "Steps taken in this episode."},
                {"name": "value", "description": "The generator's value, x >> 44."},
            ],
        }
    ],
    "gymrpc.info_keys": [
        {"key": "episode_step", "description": "Steps taken in this episode (int)."},
        {
            "key": "next_value",
            "description": "The value the next step will show (int); only with "
            "expose_hidden_state.",
            "privileged": True,
        },
    ],
}

Observation = npt.NDArray[np.int64]


def advance(state: int) -> int:
    """One step of the generator.

    Args:
        state: The 64-bit state ``x``.

    Returns:
        ``(6364136223846793005 * x + 1442695040888963407) mod 2**64``.

    >>> advance(0) >> VALUE_SHIFT
    82007
    """
    return (MULTIPLIER * state + INCREMENT) & _MASK64


def _observation_space() -> spaces.Box:
    return spaces.Box(
        low=np.array([0, 0], dtype=np.int64),
        high=np.array([MAX_EPISODE_LENGTH, _VALUE_HIGH], dtype=np.int64),
        shape=(2,),
        dtype=np.int64,
    )


def _check_options(episode_length: object, expose_hidden_state: object) -> int:
    """Validate the constructor options; errors name the option (a server reports it)."""
    if type(episode_length) is not int:
        raise TypeError(
            f"episode_length: {episode_length!r} is not an int; expected 1..{MAX_EPISODE_LENGTH}"
        )
    if not 1 <= episode_length <= MAX_EPISODE_LENGTH:
        raise ValueError(
            f"episode_length: {episode_length} is out of range; expected 1..{MAX_EPISODE_LENGTH}"
        )
    if type(expose_hidden_state) is not bool:
        raise TypeError(f"expose_hidden_state: {expose_hidden_state!r} is not a bool")
    return episode_length


def _check_reset_options(options: Mapping[str, Any] | None, allowed: frozenset[str]) -> None:
    unknown = sorted(set(options or {}) - allowed)
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; this environment takes none")


class ConformanceEnv(gymnasium.Env[Observation, np.int64]):
    """A tiny deterministic environment for checking gymrpc servers (one sub-environment).

    The module docstring is the full specification.

    Args:
        episode_length: Steps after which an episode terminates, 1 to 100.
        expose_hidden_state: Report the privileged info key ``next_value``.

    Raises:
        ValueError: ``episode_length`` out of range.
        TypeError: An option of the wrong type.
    """

    metadata: dict[str, Any] = _METADATA

    def __init__(self, episode_length: int = 5, expose_hidden_state: bool = False) -> None:
        self.episode_length = _check_options(episode_length, expose_hidden_state)
        self.expose_hidden_state = expose_hidden_state
        # Gymnasium types a Box's values loosely; this one holds int64 arrays.
        self.observation_space = cast("spaces.Space[Observation]", _observation_space())
        self.action_space = spaces.Discrete(3)
        self._state: int | None = None
        self._step = 0
        self._ended = True

    def _result(self) -> tuple[Observation, dict[str, Any]]:
        assert self._state is not None  # reset() set it
        info: dict[str, Any] = {"episode_step": self._step}
        if self.expose_hidden_state:
            info["next_value"] = advance(self._state) >> VALUE_SHIFT
        observation = np.array([self._step, self._state >> VALUE_SHIFT], dtype=np.int64)
        return observation, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode: ``x = seed`` if given, then advance ``x`` once."""
        _check_reset_options(options, frozenset())
        super().reset(seed=seed)
        if seed is not None:
            self._state = seed & _MASK64
        elif self._state is None:
            self._state = secrets.randbits(64)
        self._state = advance(self._state)
        self._step = 0
        self._ended = False
        return self._result()

    def step(self, action: np.int64) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Advance ``x`` once; reward ``action / 2``; terminate at ``episode_length``."""
        if self._ended or self._state is None:
            raise gymnasium.error.ResetNeeded("the episode ended; call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        self._state = advance(self._state)
        self._step += 1
        self._ended = self._step >= self.episode_length
        observation, info = self._result()
        return observation, int(action) / 2, self._ended, False, info


class ConformanceVectorEnv(VectorEnv[Observation, npt.NDArray[np.int64], npt.NDArray[Any]]):
    """The native vector implementation of ``gymrpc/Conformance-v0``.

    The same data as ``SyncVectorEnv`` over :class:`ConformanceEnv` in every autoreset
    mode, info key order included; the states of all sub-environments advance in one
    numpy operation.

    Args:
        num_envs: Number of sub-environments.
        episode_length: Steps after which an episode terminates, 1 to 100.
        expose_hidden_state: Report the privileged info key ``next_value``.
        autoreset_mode: An ``AutoresetMode`` or its value.

    Raises:
        ValueError: ``episode_length`` out of range, or ``num_envs`` below 1.
        TypeError: An option of the wrong type.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention; copied per instance)
        **_METADATA,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        episode_length: int = 5,
        expose_hidden_state: bool = False,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        if type(num_envs) is not int or num_envs < 1:
            raise ValueError(f"num_envs: {num_envs!r}; expected an int >= 1")
        self.episode_length = _check_options(episode_length, expose_hidden_state)
        self.expose_hidden_state = expose_hidden_state
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.num_envs = num_envs
        self.metadata = {
            **_METADATA,
            "autoreset_mode": self.autoreset_mode,
            # reset() checks its options and mask before it changes any state.
            "gymrpc.reset_options_checked_first": True,
        }
        self.single_observation_space = _observation_space()
        self.single_action_space = spaces.Discrete(3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._states = np.zeros(num_envs, dtype=np.uint64)
        self._seeded = np.zeros(num_envs, dtype=np.bool_)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        # Ended and not reset since: reset on the next step (NEXT_STEP), refused (DISABLED).
        self._ended = np.zeros(num_envs, dtype=np.bool_)
        self._started = False

    def _advance(self, which: npt.NDArray[np.bool_]) -> None:
        # uint64 arrays wrap modulo 2**64, which is the generator's arithmetic.
        with np.errstate(over="ignore"):
            self._states[which] = self._states[which] * np.uint64(MULTIPLIER) + np.uint64(INCREMENT)

    def _observations(self) -> Observation:
        values = (self._states >> np.uint64(VALUE_SHIFT)).astype(np.int64)
        return np.stack([self._steps, values], axis=1)

    def _env_info(self, index: int) -> dict[str, Any]:
        info: dict[str, Any] = {"episode_step": int(self._steps[index])}
        if self.expose_hidden_state:
            info["next_value"] = advance(int(self._states[index])) >> VALUE_SHIFT
        return info

    def _reset_envs(self, which: npt.NDArray[np.bool_], seeds: Sequence[int | None]) -> None:
        for index in np.flatnonzero(which).tolist():
            seed = seeds[index]
            if seed is not None:
                self._states[index] = np.uint64(seed & _MASK64)
                self._seeded[index] = True
            elif not self._seeded[index]:
                self._states[index] = np.uint64(secrets.randbits(64))
                self._seeded[index] = True
        self._advance(which)
        self._steps[which] = 0
        self._ended[which] = False

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Observation, dict[str, Any]]:
        """Reset all sub-environments, or those of ``options["reset_mask"]``.

        Everything is checked before any state changes.
        """
        _check_reset_options(options, frozenset({"reset_mask"}))
        seeds = self._seeds(seed)
        which = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            which = self._mask(options["reset_mask"])
        if not self._started and not which.all():
            raise ValueError("the first reset must reset every sub-environment")
        self._reset_envs(which, seeds)
        if isinstance(seed, int):
            # As Gymnasium's VectorEnv.reset does: np_random_seed reports the batch's seed,
            # so that twin sessions reset with one seed report the same one.
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._started = True
        info: dict[str, Any] = {}
        for index in np.flatnonzero(which):
            info = self._add_info(info, self._env_info(int(index)), int(index))
        return self._observations(), info

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int):
            if seed < 0:
                raise ValueError(f"seed: {seed}; expected a non-negative int")
            return [seed + index for index in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed: {len(seeds)} seeds; expected {self.num_envs}")
        return seeds

    def _mask(self, mask: object) -> npt.NDArray[np.bool_]:
        if (
            not isinstance(mask, np.ndarray)
            or mask.dtype != np.bool_
            or mask.shape != (self.num_envs,)
        ):
            raise ValueError(f"reset_mask: expected a bool array of shape ({self.num_envs},)")
        if not mask.any():
            raise ValueError("reset_mask: selects no sub-environment")
        return mask.copy()

    def step(
        self, actions: npt.NDArray[np.int64]
    ) -> tuple[
        Observation,
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        dict[str, Any],
    ]:
        """Step every sub-environment once, with the autoreset mode's semantics."""
        actions = np.asarray(actions)
        if not self._started:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        if actions.shape != (self.num_envs,) or not self.action_space.contains(actions):
            raise ValueError(f"actions {actions!r} are outside {self.action_space}")
        mode = self.autoreset_mode
        if mode is AutoresetMode.DISABLED and self._ended.any():
            raise RuntimeError(
                f"sub-environments {np.flatnonzero(self._ended).tolist()} ended; reset "
                "them with a reset_mask first (DISABLED autoreset)"
            )
        # NEXT_STEP: sub-environments that ended last step are reset instead of stepped.
        resetting = self._ended.copy() if mode is AutoresetMode.NEXT_STEP else None
        stepping = ~resetting if resetting is not None else np.ones(self.num_envs, np.bool_)
        self._advance(stepping)
        self._steps[stepping] += 1
        rewards = np.where(stepping, actions / 2, 0.0).astype(np.float64)
        terminations = stepping & (self._steps >= self.episode_length)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        final_observations = self._observations()
        step_infos = [self._env_info(index) for index in range(self.num_envs)]
        if resetting is not None and resetting.any():
            self._reset_envs(resetting, [None] * self.num_envs)
        if mode is AutoresetMode.SAME_STEP and terminations.any():
            self._reset_envs(terminations, [None] * self.num_envs)
        # The info is assembled sub-environment by sub-environment, in SyncVectorEnv's
        # order, so that both vectorizations return identical dicts.
        info: dict[str, Any] = {}
        for index in range(self.num_envs):
            env_info = step_infos[index]
            if resetting is not None and resetting[index]:
                env_info = self._env_info(index)
            elif mode is AutoresetMode.SAME_STEP and terminations[index]:
                info = self._add_info(
                    info,
                    {"final_obs": final_observations[index], "final_info": env_info},
                    index,
                )
                env_info = self._env_info(index)
            info = self._add_info(info, env_info, index)
        # SAME_STEP has already reset whatever ended; the other modes remember it.
        if mode is not AutoresetMode.SAME_STEP:
            self._ended = terminations.copy()
        return self._observations(), rewards, terminations, truncations, info


def register() -> None:
    """Register ``gymrpc/Conformance-v0`` (single and vector entry points); idempotent."""
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="gymrpc_server.envs.conformance:ConformanceEnv",
        vector_entry_point="gymrpc_server.envs.conformance:ConformanceVectorEnv",
        max_episode_steps=None,
        nondeterministic=False,
    )


# Registering is cheap (entry points are strings, nothing is built) and lets
# ``gymrpc_server.envs.register_envs`` add this environment with one import.
register()
