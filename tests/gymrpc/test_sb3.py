"""The Stable-Baselines3 adapter against real servers, with SB3's DummyVecEnv as reference."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymrpc_testing import Running, Serve
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs

import gymrpc
from gymrpc.errors import NotFoundError
from gymrpc.sb3 import RemoteVecEnv

# CartPole rarely reaches its 500-step limit under random actions; a short limit makes
# the reference test see truncations as well as terminations.
REFERENCE_CASES = [
    pytest.param("CartPole-v1", {"max_episode_steps": 15}, id="CartPole"),
    pytest.param("gymrpc-test/DictObs-v0", {"horizon": 5}, id="DictObs"),
]


@pytest.fixture
def attributes_server(serve: Serve) -> Running:
    """A server that lets its (anonymous) callers use get_attr, set_attr and call."""
    return serve(attribute_access="all")


@pytest.fixture
def cartpole(running: Running) -> Iterator[RemoteVecEnv]:
    env = RemoteVecEnv("CartPole-v1", 3, target=running.target, vectorization_mode="sync")
    yield env
    env.close()


def as_array(observations: VecEnvObs) -> np.ndarray:
    assert isinstance(observations, np.ndarray)
    return observations


def as_dict(observations: VecEnvObs) -> dict[str, np.ndarray]:
    assert isinstance(observations, dict)
    return observations


def equal(got: Any, want: Any) -> bool:
    """Same values and types; SB3's OrderedDict observations compare as dicts."""
    if isinstance(want, dict):
        return isinstance(got, dict) and data_equivalence(dict(got), dict(want), exact=True)
    return data_equivalence(got, want, exact=True)


def test_import_without_sb3_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "stable_baselines3"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "gymrpc.sb3")
    with pytest.raises(ImportError, match=r"pip install gymrpc\[sb3\]"):
        importlib.import_module("gymrpc.sb3")


def test_ppo_learns_on_a_remote_env(running: Running) -> None:
    env = VecMonitor(RemoteVecEnv("CartPole-v1", 2, target=running.target, seed=0))
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert model.num_timesteps == 64
    # Episodes ended and VecMonitor saw them: dones and infos reached SB3.
    assert model.ep_info_buffer is not None
    assert len(model.ep_info_buffer) > 0
    assert all(info["l"] > 0 for info in model.ep_info_buffer)
    env.close()


@pytest.mark.parametrize(("env_id", "env_options"), REFERENCE_CASES)
def test_matches_dummy_vec_env(running: Running, env_id: str, env_options: dict[str, Any]) -> None:
    num_envs = 3
    remote = RemoteVecEnv(
        env_id, num_envs, target=running.target, vectorization_mode="sync", **env_options
    )
    local = DummyVecEnv([lambda: gym.make(env_id, **env_options)] * num_envs)
    remote.seed(7)
    local.seed(7)
    assert equal(remote.reset(), local.reset())
    assert equal(remote.reset_infos, local.reset_infos)
    rng = np.random.default_rng(0)
    terminated = truncated = 0
    for step in range(300):
        actions = rng.integers(0, remote.action_space.n, size=num_envs)  # type: ignore[attr-defined]
        observations, rewards, dones, infos = remote.step(actions)
        want_observations, want_rewards, want_dones, want_infos = local.step(actions)
        assert equal(observations, want_observations), step
        assert equal(rewards, want_rewards), step  # float32, as DummyVecEnv
        assert equal(dones, want_dones), step
        assert equal(infos, want_infos), (step, infos, want_infos)
        assert equal(remote.reset_infos, local.reset_infos), step
        for info in want_infos:
            truncated += info["TimeLimit.truncated"]
            terminated += "terminal_observation" in info and not info["TimeLimit.truncated"]
    # Both kinds of episode end were compared.
    assert terminated > 0
    assert truncated > 0
    remote.close()
    local.close()


def test_dict_observations_are_dicts_of_batches(running: Running) -> None:
    env = RemoteVecEnv("gymrpc-test/DictObs-v0", 2, target=running.target, horizon=1)
    observations = as_dict(env.reset())
    assert observations["position"].shape == (2, 2)
    assert observations["flags"].shape == (2, 3)
    _, _, dones, infos = env.step(np.zeros(2, dtype=np.int64))
    assert dones.tolist() == [True, True]
    assert set(infos[0]["terminal_observation"]) == {"position", "count", "flags"}
    assert infos[0]["terminal_observation"]["count"] == 1
    env.close()


def test_seed_applies_at_the_next_reset_only(cartpole: RemoteVecEnv) -> None:
    expected = np.stack([gym.make("CartPole-v1").reset(seed=3 + i)[0] for i in range(3)])
    cartpole.seed(3)
    seeded = as_array(cartpole.reset())
    np.testing.assert_array_equal(seeded, expected)
    assert cartpole._seeds == [None, None, None]
    assert not np.array_equal(as_array(cartpole.reset()), seeded)
    cartpole.seed(3)
    np.testing.assert_array_equal(cartpole.reset(), expected)


def test_options_apply_at_the_next_reset_only(cartpole: RemoteVecEnv) -> None:
    cartpole.set_options({"low": 0.1, "high": 0.2})
    observations = as_array(cartpole.reset())
    assert ((observations >= 0.1) & (observations <= 0.2)).all()
    observations = as_array(cartpole.reset())
    assert (np.abs(observations) <= 0.05).all()


def test_per_env_options_reset_each_env_with_its_own(cartpole: RemoteVecEnv) -> None:
    cartpole.reset()
    low, high = {"low": 0.1, "high": 0.2}, {"low": -0.2, "high": -0.1}
    cartpole.set_options([low, high, low])
    cartpole.seed(11)
    observations = cartpole.reset()
    expected = [
        gym.make("CartPole-v1").reset(seed=11 + i, options=o)[0]
        for i, o in enumerate([low, high, low])
    ]
    np.testing.assert_array_equal(observations, np.stack(expected))


def test_per_env_options_on_a_fresh_session_are_refused(cartpole: RemoteVecEnv) -> None:
    cartpole.set_options([{"low": 0.1, "high": 0.2}, {}, {}])
    with pytest.raises(ValueError, match="set_options"):
        cartpole.reset()


def test_reset_finishes_a_pending_step(cartpole: RemoteVecEnv) -> None:
    cartpole.reset()
    cartpole.step_async(np.ones(3, dtype=np.int64))
    cartpole.seed(3)
    observations = cartpole.reset()
    expected = np.stack([gym.make("CartPole-v1").reset(seed=3 + i)[0] for i in range(3)])
    np.testing.assert_array_equal(observations, expected)
    _, _, dones, _ = cartpole.step(np.zeros(3, dtype=np.int64))
    assert dones.dtype == np.bool_


def test_get_attr_and_set_attr_with_indices(attributes_server: Running) -> None:
    env = RemoteVecEnv("CartPole-v1", 3, target=attributes_server.target, vectorization_mode="sync")
    assert env.get_attr("gravity") == [9.8, 9.8, 9.8]
    env.set_attr("gravity", 5.0, indices=1)
    assert env.get_attr("gravity") == [9.8, 5.0, 9.8]
    assert env.get_attr("gravity", indices=[2, 1]) == [9.8, 5.0]
    env.set_attr("gravity", 1.0, indices=[0, -1])
    assert env.get_attr("gravity") == [1.0, 5.0, 1.0]
    # A list is one value, not one value per sub-environment.
    env.set_attr("tags", ["a", "b"])
    assert env.get_attr("tags", indices=0) == [["a", "b"]]
    assert env.has_attr("gravity")
    assert not env.has_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="no_such_attribute"):
        env.get_attr("no_such_attribute")
    with pytest.raises(IndexError, match="indices: 3"):
        env.get_attr("gravity", indices=3)
    env.close()


def test_env_method_with_indices(attributes_server: Running) -> None:
    env = RemoteVecEnv("CartPole-v1", 3, target=attributes_server.target, vectorization_mode="sync")
    env.set_attr("gravity", 4.0, indices=2)
    assert env.env_method("get_wrapper_attr", "gravity") == [9.8, 9.8, 4.0]
    assert env.env_method("get_wrapper_attr", "gravity", indices=[2, 0]) == [4.0, 9.8]
    results = env.env_method("reset", seed=4, options={"low": 0.1, "high": 0.2}, indices=[1])
    expected, _ = gym.make("CartPole-v1").reset(seed=4, options={"low": 0.1, "high": 0.2})
    assert len(results) == 1
    np.testing.assert_array_equal(results[0][0], expected)
    with pytest.raises(AttributeError):
        env.env_method("no_such_method")
    env.close()


def test_render_mode_needs_no_attribute_access(running: Running) -> None:
    # The default server reserves attributes to admins; SB3's constructor reads render_mode.
    env = RemoteVecEnv("CartPole-v1", 2, target=running.target)
    assert env.render_mode is None
    assert env.get_attr("render_mode", indices=[1]) == [None]
    with pytest.raises(PermissionError):
        env.get_attr("gravity")
    assert env.env_is_wrapped(Monitor) == [False, False]
    assert env.env_is_wrapped(Monitor, indices=1) == [False]
    env.close()


def test_images_come_from_the_server(running: Running) -> None:
    env = RemoteVecEnv("gymrpc-test/DictObs-v0", 2, target=running.target, render_mode="rgb_array")
    env.reset()
    observations, _, _, _ = env.step(np.zeros(2, dtype=np.int64))
    images = env.get_images()
    assert [image.shape for image in images if image is not None] == [(4, 6, 3), (4, 6, 3)]
    # The test environment paints its step count into the red channel.
    for image, count in zip(images, as_dict(observations)["count"], strict=True):
        assert image is not None
        assert (image[..., 0] == count).all()
    tiled = env.render()
    assert tiled is not None
    assert tiled.shape == (8, 6, 3)
    env.close()


def test_images_without_rgb_array_warn(cartpole: RemoteVecEnv) -> None:
    with pytest.warns(UserWarning, match="render mode is None"):
        assert cartpole.get_images() == [None, None, None]


def test_wraps_a_same_step_remote_vector_env(running: Running) -> None:
    vector_env = gymrpc.make_vec(
        "CartPole-v1", 2, target=running.target, autoreset_mode="SAME_STEP"
    )
    env = RemoteVecEnv(vector_env)
    assert env.remote is vector_env
    assert env.num_envs == 2
    assert env.observation_space == vector_env.single_observation_space
    assert env.action_space == vector_env.single_action_space
    assert as_array(env.reset()).shape == (2, 4)
    env.close()
    assert vector_env.closed


@pytest.mark.parametrize("mode", ["NEXT_STEP", "DISABLED"])
def test_other_autoreset_modes_are_refused(running: Running, mode: str) -> None:
    vector_env = gymrpc.make_vec("CartPole-v1", 2, target=running.target, autoreset_mode=mode)
    with pytest.raises(ValueError, match="SAME_STEP"):
        RemoteVecEnv(vector_env)
    with pytest.raises(ValueError, match="autoreset_mode"):
        RemoteVecEnv("CartPole-v1", 2, target=running.target, autoreset_mode=mode)
    vector_env.close()


def test_constructor_arguments_are_checked(running: Running) -> None:
    vector_env = gymrpc.make_vec(
        "CartPole-v1", 2, target=running.target, autoreset_mode="SAME_STEP"
    )
    with pytest.raises(TypeError, match="num_envs"):
        RemoteVecEnv(vector_env, 2)
    with pytest.raises(TypeError, match="expected an environment id"):
        RemoteVecEnv(42)  # type: ignore[arg-type]
    vector_env.close()


def test_close_closes_the_remote_session(running: Running) -> None:
    env = RemoteVecEnv("CartPole-v1", 2, target=running.target)
    session_id = env.remote.session_id
    env.reset()
    env.close()
    env.close()  # idempotent
    assert env.remote.closed
    with pytest.raises(NotFoundError):
        gymrpc.RemoteVectorEnv("CartPole-v1", target=running.target, session_id=session_id)
