"""Environments used by the test-suite, registered when this module is imported.

The server imports it with ``env_modules=("gymrpc_test_envs",)``, exactly as a team
would serve its own simulator with ``gymrpc-server --env-module my_envs``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DictObs = dict[str, Any]


class DictObsEnv(gym.Env[DictObs, np.int64]):
    """A small random walk with Dict observations and varied info values.

    Args:
        horizon: Longest episode, in steps (a truncation).
        end_probability: Chance per step that the episode terminates.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self, horizon: int = 20, end_probability: float = 0.1, render_mode: str | None = None
    ) -> None:
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-10.0, 10.0, shape=(2,), dtype=np.float32),
                "count": spaces.Discrete(horizon + 1),
                "flags": spaces.MultiBinary(3),
            }
        )
        self.action_space = spaces.Discrete(4)
        self.horizon = horizon
        self.end_probability = end_probability
        self.render_mode = render_mode
        self._position = np.zeros(2, dtype=np.float32)
        self._count = 0

    def _obs(self) -> DictObs:
        flags = (self._position > 0).astype(np.int8)
        return {
            "position": self._position.copy(),
            "count": np.int64(self._count),
            "flags": np.concatenate([flags, np.array([self._count % 2], np.int8)]),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[DictObs, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = self.np_random.uniform(-1, 1, size=2).astype(np.float32)
        self._count = 0
        return self._obs(), {"start": self._position.copy(), "label": "reset"}

    def step(self, action: np.int64) -> tuple[DictObs, float, bool, bool, dict[str, Any]]:
        moves = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)
        noise = self.np_random.normal(0, 0.1, size=2).astype(np.float32)
        self._position = np.clip(self._position + 0.5 * moves[int(action)] + noise, -10, 10)
        self._count += 1
        terminated = bool(self.np_random.random() < self.end_probability)
        truncated = self._count >= self.horizon
        reward = float(-np.abs(self._position).sum())
        info: dict[str, Any] = {
            "count": self._count,
            "distance": np.float32(np.linalg.norm(self._position)),
            "odd": bool(self._count % 2),
            "detail": {"action": int(action), "noise": noise},
        }
        if terminated:
            info["cause"] = "random end"
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
        frame = np.zeros((4, 6, 3), dtype=np.uint8)
        frame[..., 0] = self._count
        return frame


class SlowEnv(gym.Env[np.ndarray[Any, Any], np.int64]):
    """Sleeps in every step, to keep a request in flight during a graceful stop.

    Args:
        delay: Seconds each step takes.
    """

    def __init__(self, delay: float = 0.5) -> None:
        self.observation_space = spaces.Box(0, 1, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.delay = delay

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(
        self, action: np.int64
    ) -> tuple[np.ndarray[Any, Any], float, bool, bool, dict[str, Any]]:
        time.sleep(self.delay)
        return np.ones(1, np.float32), 1.0, False, False, {}


class FaultyEnv(gym.Env[np.ndarray[Any, Any], np.int64]):
    """Misbehaves on demand: action 1 raises, action 2 returns an unsendable info."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 1, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if options and options.get("explode"):
            raise ValueError("reset option 'explode' is not supported")
        return np.zeros(1, np.float32), {}

    def step(
        self, action: np.int64
    ) -> tuple[np.ndarray[Any, Any], float, bool, bool, dict[str, Any]]:
        if action == 1:
            raise RuntimeError("the simulator crashed")
        info: dict[str, Any] = {"unsendable": {1, 2}} if action == 2 else {}
        return np.zeros(1, np.float32), 0.0, False, False, info


class OpaqueSpace(spaces.Space[str]):
    """A custom space outside Gymnasium's set: no protocol can describe it."""

    def __init__(self) -> None:
        super().__init__(shape=None, dtype=None)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return "opaque"

    def contains(self, x: Any) -> bool:
        return bool(x == "opaque")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpaqueSpace)

    def __hash__(self) -> int:
        return hash(OpaqueSpace)


class CustomSpaceEnv(gym.Env[str, np.int64]):
    """Observes values of a custom Space subclass, which the protocol cannot describe."""

    def __init__(self) -> None:
        self.observation_space = OpaqueSpace()
        self.action_space = spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        return "opaque", {}

    def step(self, action: np.int64) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return "opaque", 0.0, False, False, {}


class BigInfoEnv(gym.Env[np.ndarray[Any, Any], np.int64]):
    """Steps return ``info_bytes`` bytes of info: results larger than observations say."""

    def __init__(self, info_bytes: int = 0) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.info_bytes = info_bytes
        self.steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(1, np.float32), {}

    def step(
        self, action: np.int64
    ) -> tuple[np.ndarray[Any, Any], float, bool, bool, dict[str, Any]]:
        self.steps += 1
        info = {"blob": np.zeros(self.info_bytes, np.uint8), "steps": self.steps}
        return np.zeros(1, np.float32), 0.0, False, False, info


def register() -> None:
    """Register the test environments (idempotent)."""
    entries: tuple[tuple[str, Any, int | None], ...] = (
        ("gymrpc-test/DictObs-v0", DictObsEnv, None),
        ("gymrpc-test/Slow-v0", SlowEnv, None),
        ("gymrpc-test/Faulty-v0", FaultyEnv, None),
        ("gymrpc-test/CustomSpace-v0", CustomSpaceEnv, None),
        ("gymrpc-test/BigInfo-v0", BigInfoEnv, None),
    )
    for env_id, entry_point, steps in entries:
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=steps)


register()
