"""Rendering remotely: what gym.make accepts, selected sub-environments, size limits."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymrpc_testing import Serve

import gymrpc
import gymrpc_server  # noqa: F401 (registers the turbofan for the local reference)
from gymrpc.errors import InvalidOptionError, ResponseTooLargeError

TURBOFAN = "gymrpc/Turbofan-v0"


def local(mode: str, vectorization: str) -> gymnasium.vector.VectorEnv:
    return gymnasium.make_vec(
        TURBOFAN, num_envs=2, vectorization_mode=vectorization, render_mode=mode
    )


@pytest.mark.parametrize(
    ("mode", "vectorization"),
    [("rgb_array", "vector_entry_point"), ("rgb_array", "sync"), ("rgb_array_list", "sync")],
)
def test_frames_equal_the_local_environments(serve: Serve, mode: str, vectorization: str) -> None:
    running = serve()
    reference = local(mode, vectorization)
    with gymrpc.make_vec(
        TURBOFAN, 2, target=running.target, render_mode=mode, vectorization_mode=vectorization
    ) as remote:
        for env in (remote, reference):
            env.reset(seed=3)
            env.step(np.array([0, 1]))
        assert data_equivalence(remote.render(), reference.render())
        # Only some sub-environments: the frames of those.
        for env in (remote, reference):
            env.step(np.array([0, 0]))
        frames = remote.render(env_indices=[1])
        assert len(frames) == 1
        rendered = reference.render()
        assert rendered is not None
        expected = rendered[1]
        assert data_equivalence(frames[0], expected if mode == "rgb_array" else expected[-1:])
    reference.close()


def test_list_modes_run_under_sync_and_are_refused_natively(serve: Serve) -> None:
    running = serve()
    with gymrpc.make_vec(TURBOFAN, 1, target=running.target, render_mode="rgb_array_list") as env:
        assert env.session.vectorization_mode == 2  # SYNC: gymnasium.make adds RenderCollection
    with pytest.raises(InvalidOptionError, match="with vectorization_mode sync only") as info:
        gymrpc.make_vec(
            TURBOFAN,
            1,
            target=running.target,
            render_mode="rgb_array_list",
            vectorization_mode="vector_entry_point",
        )
    assert info.value.field == "env_options.render_mode"


def test_frames_above_the_message_limit_are_refused_with_a_hint(serve: Serve) -> None:
    running = serve(max_message_bytes=2 * 1024 * 1024)  # about 3 turbofan frames
    with gymrpc.make_vec(TURBOFAN, 8, target=running.target, render_mode="rgb_array") as env:
        env.reset(seed=0)
        with pytest.raises(ResponseTooLargeError) as info:
            env.render()
        assert info.value.field == "env_indices"
        assert "select them with env_indices" in str(info.value)
        # Nothing broke: a smaller selection renders, and the session still steps.
        assert len(env.render(env_indices=[0, 5])) == 2
        env.step(env.action_space.sample())
