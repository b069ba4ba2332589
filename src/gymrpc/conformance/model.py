"""What ``gymrpc/Conformance-v0`` must return, computed from its documentation alone.

The kit never imports a server's environment: it predicts every observation, reward
and flag from the specification in docs/conformance.md, so a server in any language
that implements that specification can be checked exactly, and a server that changes
anything (a refused request that stepped after all, a seed off by one) is caught.

Example:
    >>> model = ConformanceModel(num_envs=2, episode_length=2)
    >>> model.reset(seed=0).observations
    [[0, 82007], [0, 443766]]
    >>> model.step([2, 0]).rewards
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from gymrpc.v1 import env_service_pb2 as pb

__all__ = [
    "ENV_ID",
    "ConformanceModel",
    "ExpectedReset",
    "ExpectedStep",
    "value_of",
]

#: The id under which a server serves the conformance environment.
ENV_ID: Final = "gymrpc/Conformance-v0"
MULTIPLIER: Final = 6364136223846793005
INCREMENT: Final = 1442695040888963407
VALUE_SHIFT: Final = 44
MAX_EPISODE_LENGTH: Final = 100
DEFAULT_EPISODE_LENGTH: Final = 5
VALUE_HIGH: Final = (1 << (64 - VALUE_SHIFT)) - 1
_MASK64: Final = (1 << 64) - 1


def _advance(state: int) -> int:
    return (MULTIPLIER * state + INCREMENT) & _MASK64


def value_of(seed: int) -> int:
    """The value a reset with ``seed`` shows: ``advance(seed) >> 44``.

    >>> value_of(0)
    82007
    """
    return _advance(seed) >> VALUE_SHIFT


@dataclass(frozen=True)
class ExpectedReset:
    """A reset's expected result.

    Attributes:
        observations: ``[t, value]`` per sub-environment.
        reported: Which sub-environments report a reset info (the reset ones).
        episode_steps: The ``episode_step`` info of each sub-environment (0 where
            reported).
    """

    observations: list[list[int]]
    reported: list[bool]
    episode_steps: list[int]


@dataclass(frozen=True)
class ExpectedStep:
    """A step's expected result.

    Attributes:
        observations: ``[t, value]`` per sub-environment.
        rewards: Rewards.
        terminations: Terminated flags.
        truncations: Truncated flags (always false: episodes are never truncated).
        episode_steps: The ``episode_step`` info of every sub-environment.
        final_observations: SAME_STEP: the terminal observation where an episode
            ended, ``None`` elsewhere.
        final_episode_steps: SAME_STEP: the terminal ``episode_step`` where an episode
            ended, ``None`` elsewhere.
    """

    observations: list[list[int]]
    rewards: list[float]
    terminations: list[bool]
    truncations: list[bool]
    episode_steps: list[int]
    final_observations: list[list[int] | None] = field(default_factory=list)
    final_episode_steps: list[int | None] = field(default_factory=list)


class ConformanceModel:
    """The documented behaviour of a session of ``gymrpc/Conformance-v0``.

    Args:
        num_envs: Sub-environments.
        episode_length: The ``episode_length`` option.
        autoreset_mode: The session's ``AutoresetMode`` (protobuf value).
    """

    def __init__(
        self,
        num_envs: int,
        *,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        autoreset_mode: pb.AutoresetMode.ValueType = pb.AUTORESET_MODE_NEXT_STEP,
    ) -> None:
        self.num_envs = num_envs
        self.episode_length = episode_length
        self.autoreset_mode = autoreset_mode
        self._states: list[int | None] = [None] * num_envs
        self._steps = [0] * num_envs
        # Ended at the last step and not reset since.
        self._ended = [False] * num_envs

    def _observation(self, index: int) -> list[int]:
        state = self._states[index]
        assert state is not None, "the kit always seeds the first reset"
        return [self._steps[index], state >> VALUE_SHIFT]

    def _reset_one(self, index: int, seed: int | None) -> None:
        if seed is not None:
            self._states[index] = seed & _MASK64
        state = self._states[index]
        assert state is not None, "the kit always seeds the first reset"
        self._states[index] = _advance(state)
        self._steps[index] = 0
        self._ended[index] = False

    def reset(
        self,
        seed: int | Sequence[int | None] | None = None,
        mask: Sequence[bool] | None = None,
    ) -> ExpectedReset:
        """Reset all sub-environments, or those of ``mask``.

        Args:
            seed: ``s`` (sub-environment i gets ``s + i``), one seed or ``None`` per
                sub-environment, or ``None`` to continue every stream.
            mask: Which sub-environments to reset; all by default.

        Returns:
            The expected result.
        """
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        selected = list(mask) if mask is not None else [True] * self.num_envs
        for index in range(self.num_envs):
            if selected[index]:
                self._reset_one(index, seeds[index])
        return ExpectedReset(
            [self._observation(i) for i in range(self.num_envs)],
            selected,
            [self._steps[i] if selected[i] else 0 for i in range(self.num_envs)],
        )

    @property
    def ended(self) -> list[bool]:
        """Which sub-environments ended at the last step and were not reset since."""
        return list(self._ended)

    def step(self, actions: Sequence[int]) -> ExpectedStep:
        """Step every sub-environment with the session's autoreset semantics.

        Args:
            actions: One action in 0..2 per sub-environment.

        Returns:
            The expected result.
        """
        same_step = self.autoreset_mode == pb.AUTORESET_MODE_SAME_STEP
        next_step = self.autoreset_mode in (
            pb.AUTORESET_MODE_NEXT_STEP,
            pb.AUTORESET_MODE_UNSPECIFIED,
        )
        observations, rewards, terminations = [], [], []
        finals: list[list[int] | None] = []
        final_steps: list[int | None] = []
        for index, action in enumerate(actions):
            finals.append(None)
            final_steps.append(None)
            if next_step and self._ended[index]:
                self._reset_one(index, None)
                observations.append(self._observation(index))
                rewards.append(0.0)
                terminations.append(False)
                continue
            state = self._states[index]
            assert state is not None, "the kit always seeds the first reset"
            self._states[index] = _advance(state)
            self._steps[index] += 1
            ended = self._steps[index] >= self.episode_length
            rewards.append(action / 2)
            terminations.append(ended)
            self._ended[index] = ended and not same_step
            if ended and same_step:
                finals[index] = self._observation(index)
                final_steps[index] = self._steps[index]
                self._reset_one(index, None)
            observations.append(self._observation(index))
        return ExpectedStep(
            observations,
            rewards,
            terminations,
            [False] * self.num_envs,
            list(self._steps),
            finals if same_step else [],
            final_steps if same_step else [],
        )
