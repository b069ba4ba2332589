"""Sessions of thread-bound environments make every environment call on one thread.

An environment that renders (MuJoCo's OpenGL context, pygame's display) or that says
``"gymrpc.thread_bound": True`` in its metadata is built, reset, stepped, rendered,
called and closed on one thread of its session's own, whatever thread the request
arrives on (stream handler or unary pool thread); see server/gymrpc_server/affinity.py.
"""

from __future__ import annotations

import threading
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymrpc_testing import Running, Serve

import gymrpc

RECORDER = "gymrpc-test-affinity/Recorder-v0"
BOUND = "gymrpc-test-affinity/Bound-v0"
#: The recorder with its render mode chosen by its entry point, not by an option.
REGISTERED_RENDERING = "gymrpc-test-affinity/RegisteredRendering-v0"
#: Thread names by call, across every environment built by the tests (closed ones too).
CALLS: list[tuple[int, str, str]] = []


class RecorderEnv(gym.Env[np.ndarray, np.int64]):
    """Records the thread of its construction and of every call."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self.threads = [threading.current_thread().name]
        self.probe = 0

    def _record(self) -> None:
        self.threads.append(threading.current_thread().name)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._record()
        return np.zeros(2), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._record()
        return np.zeros(2), 0.0, False, False, {}

    def render(self) -> np.ndarray:
        self._record()
        return np.zeros((2, 2, 3), dtype=np.uint8)

    def poke(self) -> int:
        self._record()
        return len(self.threads)

    def close(self) -> None:
        CALLS.append((id(self), "close", threading.current_thread().name))
        CALLS.extend((id(self), "call", name) for name in self.threads)


class BoundEnv(RecorderEnv):
    """Bound to its thread without rendering; ``fail=True`` makes its constructor raise."""

    metadata = {"render_modes": [], "gymrpc.thread_bound": True}  # noqa: RUF012

    def __init__(self, fail: bool = False) -> None:
        if fail:
            raise ValueError("fail: asked to fail")
        super().__init__()


_ENTRY_POINTS: dict[str, Any] = {RECORDER: RecorderEnv, BOUND: BoundEnv}
for _env_id, _entry_point in _ENTRY_POINTS.items():
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=_entry_point, disable_env_checker=True)


def rendering_recorder(**kwargs: Any) -> RecorderEnv:
    """A recorder whose render mode no option sets, as a shipped env callable has it."""
    return RecorderEnv(render_mode="rgb_array", **kwargs)


if REGISTERED_RENDERING not in gym.registry:
    gym.register(REGISTERED_RENDERING, entry_point=rendering_recorder, disable_env_checker=True)


@pytest.fixture
def server(serve: Serve) -> Running:
    return serve(attribute_access="all")


def threads_of_a_life(target: str, env_id: str, **options: Any) -> dict[str, set[str]]:
    """Play every kind of call on a 2-env sync session; the threads, by kind, after close."""
    CALLS.clear()
    with gymrpc.make_vec(env_id, 2, target=target, vectorization_mode="sync", **options) as envs:
        envs.reset(seed=0)
        envs.step(np.array([0, 1]))  # on the stream's thread
        envs.reset(seed=1)
        if options.get("render_mode") or env_id == REGISTERED_RENDERING:
            envs.render()  # unary, on a pool thread
        envs.call("poke")
        envs.set_attr("probe", 3)
        assert envs.get_attr("probe") == (3, 3)
    threads: dict[str, set[str]] = {"close": set(), "call": set()}
    for _, kind, name in CALLS:
        threads[kind].add(name)
    return threads


def test_a_rendering_session_makes_every_call_on_one_thread_of_its_own(server: Running) -> None:
    threads = threads_of_a_life(server.target, RECORDER, render_mode="rgb_array")
    # Construction, reset, step, render, call and close: one thread for both sub-envs.
    assert len(threads["call"]) == 1, threads
    assert threads["close"] == threads["call"]
    (name,) = threads["call"]
    assert name.startswith("gymrpc-env-")


def test_a_render_mode_chosen_by_the_entry_point_gets_one_from_the_first_reset(
    server: Running,
) -> None:
    # As the peers' suites ship callables that build MuJoCo environments with a render
    # mode: the server sees no option, and the built environment renders.
    threads = threads_of_a_life(server.target, REGISTERED_RENDERING)
    rendered_on = {name for name in threads["call"] if name.startswith("gymrpc-env-")}
    assert len(rendered_on) == 1, threads
    # Construction ran on the creating thread; every call after it on the session's own.
    assert len(threads["call"] - rendered_on) == 1, threads
    assert threads["close"] == rendered_on


def test_an_environment_that_says_it_is_thread_bound_gets_one_too(server: Running) -> None:
    threads = threads_of_a_life(server.target, BOUND)
    assert len(threads["call"]) == 1, threads
    assert threads["close"] == threads["call"]


def test_other_sessions_are_called_from_the_requests_threads(server: Running) -> None:
    # No thread hand-off on the hot path: the stream's steps run on its handler thread.
    threads = threads_of_a_life(server.target, RECORDER)
    assert not any(name.startswith("gymrpc-env-") for name in threads["call"]), threads
    assert len(threads["call"]) > 1, threads


def test_a_failing_build_on_its_thread_is_reported_and_the_thread_ends(server: Running) -> None:
    with pytest.raises(gymrpc.errors.InvalidOptionError, match="asked to fail") as error:
        gymrpc.make_vec(BOUND, 1, target=server.target, vectorization_mode="sync", fail=True)
    assert error.value.field == "env_options.fail"
    assert not [t for t in threading.enumerate() if t.name.startswith("gymrpc-env-")]
    # The server goes on: the next session of the same environment works.
    with gymrpc.make_vec(BOUND, 1, target=server.target, vectorization_mode="sync") as envs:
        envs.reset(seed=0)
