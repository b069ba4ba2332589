"""The reference test: a remote batch is data-equivalent to a local SyncVectorEnv.

For every environment and autoreset mode, ``RemoteVectorEnv`` over N sub-environments
and ``SyncVectorEnv([make] * N, autoreset_mode=M)`` run hundreds of steps of the same
seeded random actions, with staggered partial resets (random masks and seeds), and
must return ``data_equivalence(..., exact=True)``-equal observations, rewards,
terminations, truncations and infos at every call (see vectorenv.md, "The reference
test").
"""

from __future__ import annotations

from typing import Any

import pytest
from gymnasium.vector import AutoresetMode
from gymrpc_testing import Running
from vector_reference import MODES, Lockstep, remote_env, sync_reference

NUM_ENVS = 4
STEPS = 250

# Short episode limits make every run see terminations and truncations, so that each
# mode's end-of-episode handling is exercised many times.
CASES = [
    pytest.param("CartPole-v1", "sync", {"max_episode_steps": 25}, id="CartPole-sync"),
    pytest.param("Pendulum-v1", "sync", {"max_episode_steps": 15}, id="Pendulum-sync"),
    pytest.param(
        "gymrpc-test/DictObs-v0",
        "sync",
        {"horizon": 8, "end_probability": 0.1},
        id="DictObs-sync",
    ),
    pytest.param(
        "gymrpc/Turbofan-v0",
        "sync",
        {"step_size": 5, "max_episode_steps": 40},
        id="Turbofan-sync",
    ),
    # The turbofan's native vector env must give exactly what SyncVectorEnv over its
    # single env gives.
    pytest.param(
        "gymrpc/Turbofan-v0",
        "vector_entry_point",
        {"step_size": 5, "max_episode_steps": 40},
        id="Turbofan-native",
    ),
]
# Pendulum never terminates; the others do.
NEVER_TERMINATES = {"Pendulum-v1"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("env_id", "vectorization", "env_options"), CASES)
def test_remote_equals_sync_vector_env(
    running: Running,
    env_id: str,
    vectorization: str,
    env_options: dict[str, Any],
    mode: AutoresetMode,
) -> None:
    with Lockstep(
        remote_env(running.target, env_id, NUM_ENVS, mode, vectorization, **env_options),
        sync_reference(env_id, NUM_ENVS, mode, **env_options),
    ) as lockstep:
        events = lockstep.run(STEPS, seed=2024)
    # The run exercised what it is meant to compare.
    assert events["truncated"] > 0
    assert events["partial resets"] > 0
    if env_id not in NEVER_TERMINATES:
        assert events["terminated"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_remote_equals_sync_vector_env_without_partial_resets(
    running: Running, mode: AutoresetMode
) -> None:
    """Plain training loops reset once and let the mode handle episode ends."""
    env_id = "gymrpc-test/DictObs-v0"
    options: dict[str, Any] = {"horizon": 6, "end_probability": 0.2}
    with Lockstep(
        remote_env(running.target, env_id, NUM_ENVS, mode, **options),
        sync_reference(env_id, NUM_ENVS, mode, **options),
    ) as lockstep:
        events = lockstep.run(STEPS, seed=7, partial_resets=False)
    assert events["terminated"] > 0
    assert events["truncated"] > 0
    assert events["partial resets"] == 0
