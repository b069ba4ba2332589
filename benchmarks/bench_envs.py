"""Environments that exist only to measure gymrpc itself.

``gymrpc-bench/Null-v0`` is a native vector environment that does no work: it hands
back preallocated CartPole-shaped arrays. Served remotely, it measures what the
protocol, the server and the client cost on top of the bare gRPC round trip, with the
environment's own cost taken out. The benchmark server imports this module with
``--env-module bench_envs``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class NullVectorEnv(VectorEnv[Any, Any, Any]):
    """Returns the same (num_envs, 4) float32 observations and zero rewards forever.

    Args:
        num_envs: Batch size.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, num_envs: int = 1) -> None:
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._observations = np.zeros((num_envs, 4), np.float32)
        self._rewards = np.zeros(num_envs)
        self._flags = np.zeros(num_envs, np.bool_)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Return the constant observations."""
        return self._observations, {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Return the constant observations, zero rewards and no episode ends."""
        return self._observations, self._rewards, self._flags, self._flags, {}


if "gymrpc-bench/Null-v0" not in gym.registry:
    gym.register(
        "gymrpc-bench/Null-v0",
        entry_point=None,
        vector_entry_point="bench_envs:NullVectorEnv",
    )
