"""``episode_step_limit``: the number of ``step()`` calls after which an episode is truncated."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import gymrpc_server  # noqa: F401 (registers the env)
from gymrpc_server.envs.turbofan import ENV_ID, KEEP_FLYING, REPAIR, TurbofanEnv, TurbofanVectorEnv

# Engines that never fail: no random failures and an unreachable failure threshold.
IMMORTAL = {
    "hazard_base": 0.0,
    "failure_threshold_mean": 1e6,
    "failure_threshold_min": 1e6,
    "failure_threshold_max": 1e6,
}
LIMITS = [(10, 1000), (10, 30), (7, 50), (3, 3), (1, 5), (100, 1), (4, 10), (25, 101)]


def steps_until_truncation(env: TurbofanEnv, actions: tuple[int, ...]) -> int:
    env.reset(seed=0)
    for count in range(1, 10_000):
        *_, terminated, truncated, _ = env.step(actions[count % len(actions)])
        assert not terminated
        if truncated:
            return count
    raise AssertionError("never truncated")


@pytest.mark.parametrize(("step_size", "max_episode_steps"), LIMITS)
@pytest.mark.parametrize(
    "actions", [(KEEP_FLYING,), (REPAIR, KEEP_FLYING)], ids=["fly", "repair-every-other"]
)
def test_single_env_truncates_after_episode_step_limit_steps(
    step_size: int, max_episode_steps: int, actions: tuple[int, ...]
) -> None:
    env = TurbofanEnv(step_size=step_size, max_episode_steps=max_episode_steps, params=IMMORTAL)
    # Shop days count towards the limit like flights, so repairs change nothing.
    assert env.episode_step_limit == -(-max_episode_steps // step_size)
    assert steps_until_truncation(env, actions) == env.episode_step_limit


@pytest.mark.parametrize(("step_size", "max_episode_steps"), LIMITS)
def test_vector_env_truncates_every_engine_after_episode_step_limit_steps(
    step_size: int, max_episode_steps: int
) -> None:
    env = TurbofanVectorEnv(
        num_envs=3, step_size=step_size, max_episode_steps=max_episode_steps, params=IMMORTAL
    )
    env.reset(seed=0)
    for count in range(1, env.episode_step_limit + 1):
        _, _, terminated, truncated, info = env.step(np.array([KEEP_FLYING, REPAIR, KEEP_FLYING]))
        assert not terminated.any()
        assert truncated.all() == (count == env.episode_step_limit)
    assert info["step"].tolist() == [max_episode_steps] * 3


def test_defaults_and_registered_envs() -> None:
    assert TurbofanEnv().episode_step_limit == 100
    assert TurbofanVectorEnv(step_size=3).episode_step_limit == 334
    envs = gymnasium.make_vec(ENV_ID, num_envs=2, max_episode_steps=95, step_size=10)
    assert isinstance(envs, TurbofanVectorEnv)
    assert envs.episode_step_limit == 10
    single = gymnasium.make(ENV_ID, step_size=6).unwrapped
    assert isinstance(single, TurbofanEnv)
    assert single.episode_step_limit == 167


@pytest.mark.parametrize("cls", [TurbofanEnv, TurbofanVectorEnv], ids=lambda cls: cls.__name__)
def test_episode_step_limit_is_read_only(cls: type) -> None:
    env = cls()
    with pytest.raises(AttributeError):
        env.episode_step_limit = 5
