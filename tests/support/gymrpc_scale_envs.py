"""An environment for measuring how a batch scales over servers, registered on import.

``gymrpc-scale/Sleep-v0`` waits in every step without using the CPU, a stand-in for a
heavy external simulator (a physics engine in another process, a licence-bound binary,
a robot): a server stepping 64 of them through ``SyncVectorEnv`` spends 64 waits per
batch step, which only more servers can overlap. Servers load it with
``--env-module gymrpc_scale_envs`` (``benchmarks/bench_sharding.py`` does).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SLEEP = "gymrpc-scale/Sleep-v0"


class SleepEnv(gym.Env[np.ndarray[Any, Any], np.int64]):
    """Sleeps ``delay`` seconds in every step (the GIL is released meanwhile).

    Args:
        delay: Seconds each step waits.
    """

    def __init__(self, delay: float = 0.005) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.delay = delay

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, size=4).astype(np.float32), {}

    def step(
        self, action: np.int64
    ) -> tuple[np.ndarray[Any, Any], float, bool, bool, dict[str, Any]]:
        time.sleep(self.delay)
        return self.np_random.uniform(-1, 1, size=4).astype(np.float32), 1.0, False, False, {}


if SLEEP not in gym.registry:
    gym.register(SLEEP, entry_point="gymrpc_scale_envs:SleepEnv")
