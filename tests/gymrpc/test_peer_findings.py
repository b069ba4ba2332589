"""Differences from SyncVectorEnv and DummyVecEnv found by running the peers' suites.

Gymnasium's ``tests/vector`` and Stable-Baselines3's ``tests/test_vec_envs.py`` were run
with their vector envs replaced by gymrpc (tests/peers/, results in docs/peers.md). Each
gymrpc difference found there has a focused test here, against a real server: the
differences that broke SyncVectorEnv's semantics (A1 to A5 in docs/peers.md) were fixed,
and their tests now assert the local behaviour; the deliberate, documented differences
have tests that pin them down.

The environments are registered by this module; the servers of the ``serve`` fixture
run in this process, so they see them, as a server started with ``--env-module`` would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymrpc_testing import Running, Serve
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import gymrpc
from gymrpc.errors import EnvironmentFailureError, InvalidActionError
from gymrpc.sb3 import RemoteVecEnv

PREFIX = "gymrpc-peer-findings"
GRAPH_FEATURES = f"{PREFIX}/GraphFeatures-v0"
SEEDED_AT_CONSTRUCTION = f"{PREFIX}/SeededAtConstruction-v0"
THREAD_RECORDER = f"{PREFIX}/ThreadRecorder-v0"
KWARGS_RENDER = f"{PREFIX}/KwargsRender-v0"
MONITORED_CARTPOLE = f"{PREFIX}/MonitoredCartPole-v0"
UINT8_ACTIONS = f"{PREFIX}/Uint8Actions-v0"
FAILING_RESET = f"{PREFIX}/FailingReset-v0"

Obs = Any


class GraphFeaturesEnv(gym.Env[Obs, np.int64]):
    """Graph observations whose nodes carry MultiBinary features (Gymnasium >= 1.4)."""

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self) -> None:
        self.observation_space = spaces.Graph(node_space=spaces.MultiBinary(4), edge_space=None)
        self.action_space = spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.int64) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        return self.observation_space.sample(), 0.0, False, False, {}


class SeededAtConstructionEnv(gym.Env[np.ndarray, np.ndarray]):
    """Seeds its action space and itself when built, as Gymnasium's ``make_env`` helper does."""

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.action_space = spaces.Box(0.0, 1.0, (3,), np.float64)
        self.action_space.seed(7)
        super().reset(seed=5)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(2), 0.0, False, False, {}


class ThreadRecorderEnv(gym.Env[np.ndarray, np.int64]):
    """Records the thread of every call: an OpenGL context (MuJoCo) is bound to one."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self.threads = [threading.get_ident()]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.threads.append(threading.get_ident())
        return np.zeros(2), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.threads.append(threading.get_ident())
        return np.zeros(2), 0.0, False, False, {}

    def render(self) -> np.ndarray:
        self.threads.append(threading.get_ident())
        return np.zeros((2, 2, 3), np.uint8)


class _RenderingBase(gym.Env[np.ndarray, np.int64]):
    """Takes ``render_mode`` as MuJoCo's ``MujocoEnv`` does, under its subclasses' kwargs."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(2), 0.0, False, False, {}

    def render(self) -> np.ndarray:
        return np.zeros((2, 2, 3), np.uint8)


class KwargsRenderEnv(_RenderingBase):
    """Like ``AntEnv`` (v4 and v5): its own options, and ``**kwargs`` for the base's."""

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale


class Uint8ActionsEnv(gym.Env[np.ndarray, np.ndarray]):
    """An image-shaped uint8 action space, as SB3's ``test_framestack_vecenv`` uses."""

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (4, 4, 3), np.uint8)
        self.action_space = spaces.Box(0, 255, (4, 4, 3), np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros((4, 4, 3), np.uint8), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros((4, 4, 3), np.uint8), 0.0, False, False, {}


class FailingResetEnv(_RenderingBase):
    """Raises ``ValueError`` from reset when seeded with 1 (Gymnasium's subenv-error test)."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed == 1:
            raise ValueError("Error in reset")
        return super().reset(seed=seed, options=options)


def _monitored_cartpole() -> gym.Env[Any, Any]:
    return Monitor(CartPoleEnv())


def _register() -> None:
    entry_points: dict[str, Any] = {
        GRAPH_FEATURES: GraphFeaturesEnv,
        SEEDED_AT_CONSTRUCTION: SeededAtConstructionEnv,
        THREAD_RECORDER: ThreadRecorderEnv,
        KWARGS_RENDER: KwargsRenderEnv,
        MONITORED_CARTPOLE: _monitored_cartpole,
        UINT8_ACTIONS: Uint8ActionsEnv,
        FAILING_RESET: FailingResetEnv,
    }
    for env_id, entry_point in entry_points.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, disable_env_checker=True)


_register()


@pytest.fixture
def attributes_server(serve: Serve) -> Running:
    """A server that lets its (anonymous) callers use get_attr, set_attr and call."""
    return serve(attribute_access="all")


@pytest.fixture
def local_sync() -> Iterator[list[SyncVectorEnv]]:
    """Reference SyncVectorEnvs, closed after the test."""
    made: list[SyncVectorEnv] = []
    yield made
    for env in made:
        env.close()


def _sync(made: list[SyncVectorEnv], env_id: str, num_envs: int, **kwargs: Any) -> SyncVectorEnv:
    made.append(SyncVectorEnv([lambda: gym.make(env_id, **kwargs)] * num_envs))
    return made[-1]


# --- (a) gymrpc differences, fixed: the local behaviour ---------------------------------


def test_graph_with_multibinary_node_features(running: Running) -> None:
    with gymrpc.make_vec(
        GRAPH_FEATURES, 2, target=running.target, vectorization_mode="sync"
    ) as envs:
        observations, _ = envs.reset(seed=0)
        assert observations in envs.observation_space


def test_action_space_keeps_the_environments_seeding(
    running: Running, local_sync: list[SyncVectorEnv]
) -> None:
    reference = _sync(local_sync, SEEDED_AT_CONSTRUCTION, 2)
    with gymrpc.make_vec(
        SEEDED_AT_CONSTRUCTION, 2, target=running.target, vectorization_mode="sync"
    ) as envs:
        for _ in range(10):
            np.testing.assert_array_equal(
                envs.action_space.sample(), reference.action_space.sample()
            )


def test_np_random_seed_before_the_first_reset(
    running: Running, local_sync: list[SyncVectorEnv]
) -> None:
    reference = _sync(local_sync, SEEDED_AT_CONSTRUCTION, 2)
    assert reference.np_random_seed == (5, 5)
    with gymrpc.make_vec(
        SEEDED_AT_CONSTRUCTION, 2, target=running.target, vectorization_mode="sync"
    ) as envs:
        assert envs.np_random_seed == reference.np_random_seed


def test_one_thread_runs_a_sessions_environment(
    attributes_server: Running, local_sync: list[SyncVectorEnv]
) -> None:
    reference = _sync(local_sync, THREAD_RECORDER, 1, render_mode="rgb_array")
    reference.reset(seed=0)
    reference.step(np.array([0]))
    reference.render()
    assert len(set(reference.get_attr("threads")[0][1:])) == 1
    with gymrpc.make_vec(
        THREAD_RECORDER,
        1,
        target=attributes_server.target,
        vectorization_mode="sync",
        render_mode="rgb_array",
    ) as envs:
        envs.reset(seed=0)
        envs.step(np.array([0]))
        envs.render()
        envs.step(np.array([1]))
        # The constructor's thread aside (SyncVectorEnv runs it in the caller's thread too).
        assert len(set(envs.get_attr("threads")[0][1:])) == 1


def test_render_mode_through_kwargs(running: Running) -> None:
    reference = gym.make_vec(
        KWARGS_RENDER, num_envs=2, vectorization_mode="sync", render_mode="rgb_array"
    )
    reference.reset(seed=0)
    expected = reference.render()
    reference.close()
    assert isinstance(expected, tuple)
    with gymrpc.make_vec(
        KWARGS_RENDER, 2, target=running.target, vectorization_mode="sync", render_mode="rgb_array"
    ) as envs:
        envs.reset(seed=0)
        frames = envs.render()
    assert len(frames) == len(expected)
    for frame, want in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame, want)


# --- deliberate, documented differences: ordinary tests ----------------------------------


def test_actions_outside_a_discrete_space_are_refused(running: Running) -> None:
    """Gymnasium's test_final_obs_info steps Discrete(4) with 4; SyncVectorEnv passes it on."""
    with gymrpc.make_vec(
        "CartPole-v1",
        1,
        target=running.target,
        vectorization_mode="sync",
        autoreset_mode=AutoresetMode.SAME_STEP,
    ) as envs:
        envs.reset(seed=0)
        with pytest.raises(InvalidActionError, match=r"outside Discrete\(2\)"):
            envs.step(np.array([2]))
        # Refused before the environment saw it: the session goes on.
        envs.step(np.array([1]))


def test_float_actions_for_a_uint8_box_are_refused(running: Running) -> None:
    """SB3's test_framestack_vecenv steps a uint8 Box with float64 zeros.

    ``Box.contains`` is false for them (float64 cannot be cast to uint8), so they are
    outside the action space; ``DummyVecEnv`` hands them to the environment as they are.
    """
    zeros = np.zeros((2, 4, 4, 3))
    local = DummyVecEnv([lambda: gym.make(UINT8_ACTIONS)] * 2)
    local.reset()
    local.step(zeros)
    local.close()
    assert zeros[0] not in spaces.Box(0, 255, (4, 4, 3), np.uint8)
    remote = RemoteVecEnv(UINT8_ACTIONS, 2, target=running.target, vectorization_mode="sync")
    try:
        remote.reset()
        with pytest.raises(InvalidActionError, match="dtype float64 cannot be used as uint8"):
            remote.step(zeros)
        remote.step(zeros.astype(np.uint8))
    finally:
        remote.close()


def test_env_is_wrapped_does_not_see_the_servers_wrappers(running: Running) -> None:
    """SB3's test_vec_env_is_wrapped: gymrpc.sb3 answers False (its documented behaviour).

    ``RemoteVecEnv.env_is_wrapped`` (src/gymrpc/sb3.py:311-320) cannot see wrappers on
    the server; ``DummyVecEnv`` sees the ``Monitor`` of its local sub-environments.
    """
    local = DummyVecEnv([lambda: gym.make(MONITORED_CARTPOLE)] * 2)
    assert local.env_is_wrapped(Monitor) == [True, True]
    local.close()
    remote = RemoteVecEnv(MONITORED_CARTPOLE, 2, target=running.target, vectorization_mode="sync")
    try:
        assert remote.env_is_wrapped(Monitor) == [False, False]
    finally:
        remote.close()


def test_an_environments_exception_arrives_as_environment_failure(running: Running) -> None:
    """Gymnasium's test_async_vector_subenv_error expects the env's own ``ValueError``.

    Locally the environment's exception propagates as it is; over gymrpc it is an
    ``EnvironmentFailureError`` (a ``RuntimeError``) naming the original type and message,
    and the session needs a full reset.
    """
    with gymrpc.make_vec(
        FAILING_RESET, 2, target=running.target, vectorization_mode="sync"
    ) as envs:
        envs.reset(seed=[0, 0])
        with pytest.raises(EnvironmentFailureError, match="ValueError: Error in reset") as error:
            envs.reset(seed=[1, 0])
        assert not isinstance(error.value, ValueError)
        envs.reset(seed=[0, 0])
