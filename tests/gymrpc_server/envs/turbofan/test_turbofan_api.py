"""The Gymnasium API of the turbofan envs: spaces, info, errors, registration."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import data_shares_objects
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import gymrpc_server  # noqa: F401 (registers the env)
from gymrpc_server.envs.turbofan import (
    ENV_ID,
    TurbofanEnv,
    TurbofanParams,
    TurbofanVectorEnv,
    register,
)

PUBLIC_KEYS = {
    "step": np.int64,
    "n_valid": np.int64,
    "reason": np.int8,
    "repairs": np.int64,
    "in_shop": np.bool_,
}
HIDDEN_KEYS = {"degradation": np.float64, "max_degradation": np.float64}


def expected_keys(hidden: bool) -> set[str]:
    keys = set(PUBLIC_KEYS) | (set(HIDDEN_KEYS) if hidden else set())
    return keys | {f"_{key}" for key in keys}


class TestSpacesAndAttributes:
    def test_vector_env_attributes(self) -> None:
        env = TurbofanVectorEnv(num_envs=4, step_size=6)
        assert env.single_observation_space.shape == (6, 9)
        assert env.single_observation_space.dtype == np.float32
        assert env.observation_space.shape == (4, 6, 9)
        assert env.single_action_space == spaces.Discrete(3)
        assert env.action_space == spaces.MultiDiscrete([3, 3, 3, 4 - 1])
        assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
        assert env.metadata is not TurbofanVectorEnv.metadata
        assert env.render_mode is None
        assert env.unwrapped is env
        assert "num_envs=4" in repr(env)

    @pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
    def test_autoreset_mode_accepts_strings(self, mode: str) -> None:
        env = TurbofanVectorEnv(autoreset_mode=mode)
        assert env.metadata["autoreset_mode"] is AutoresetMode(mode)

    @pytest.mark.parametrize("cls", [TurbofanEnv, TurbofanVectorEnv])
    def test_options_are_typed_keyword_arguments(self, cls: type) -> None:
        parameters = inspect.signature(cls).parameters
        expected = {
            "step_size": 10,
            "max_episode_steps": 1000,
            "expose_hidden_state": False,
            "params": None,
            "render_mode": None,
        }
        for name, default in expected.items():
            assert parameters[name].default == default
            assert parameters[name].annotation is not inspect.Parameter.empty
        if cls is TurbofanVectorEnv:
            assert parameters["num_envs"].default == 1
            assert parameters["autoreset_mode"].default is AutoresetMode.NEXT_STEP

    def test_step_returns_documented_types(self) -> None:
        env = TurbofanVectorEnv(num_envs=3)
        env.reset(seed=0)
        env.action_space.seed(0)
        obs, rewards, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert rewards.dtype == np.float64
        assert rewards.shape == (3,)
        assert terminated.dtype == np.bool_
        assert terminated.shape == (3,)
        assert truncated.dtype == np.bool_
        assert truncated.shape == (3,)


class TestInfo:
    @pytest.mark.parametrize("hidden", [False, True])
    def test_keys_and_dtypes(self, hidden: bool) -> None:
        env = TurbofanVectorEnv(num_envs=2, expose_hidden_state=hidden)
        _, reset_info = env.reset(seed=0)
        *_, step_info = env.step([0, 1])
        for info in (reset_info, step_info):
            assert set(info) == expected_keys(hidden)
            for key, dtype in {**PUBLIC_KEYS, **HIDDEN_KEYS}.items():
                if key in info:
                    assert info[key].dtype == dtype
                    assert info[key].shape == (2,)
                    assert info[f"_{key}"].dtype == np.bool_
                    assert info[f"_{key}"].all()

    @pytest.mark.parametrize("hidden", [False, True])
    def test_single_env_info(self, hidden: bool) -> None:
        env = TurbofanEnv(expose_hidden_state=hidden)
        _, info = env.reset(seed=0)
        assert set(info) == {key for key in expected_keys(hidden) if not key.startswith("_")}
        assert type(info["reason"]) is np.int8
        assert type(info["step"]) is int
        assert type(info["in_shop"]) is bool
        if hidden:
            assert type(info["degradation"]) is float

    def test_partial_reset_info_covers_the_masked_envs_only(self) -> None:
        env = TurbofanVectorEnv(num_envs=3)
        env.reset(seed=0)
        env.step([0, 0, 0])
        _, info = env.reset(options={"reset_mask": np.array([False, True, False])})
        assert info["_step"].tolist() == [False, True, False]
        assert info["step"].tolist() == [0, 0, 0]
        assert info["n_valid"].tolist() == [0, 1, 0]


class TestNoAliasing:
    def test_returned_arrays_are_new_on_every_call(self) -> None:
        env = TurbofanVectorEnv(num_envs=3, expose_hidden_state=True, autoreset_mode="SameStep")
        calls: list[tuple[Any, ...]] = [env.reset(seed=0)]
        for _ in range(30):
            obs, rewards, terminated, truncated, info = env.step([2, 0, 1])
            calls.append((obs, info))
            calls.append((rewards, terminated, truncated))
        calls.append(env.reset(seed=0))
        calls.append(env.reset(options={"reset_mask": np.array([True, False, True])}))
        for index, first in enumerate(calls):
            for second in calls[index + 1 :]:
                assert not data_shares_objects(first, second)

    def test_mutating_returned_data_changes_nothing(self) -> None:
        env = TurbofanVectorEnv(num_envs=2, expose_hidden_state=True)
        twin = TurbofanVectorEnv(num_envs=2, expose_hidden_state=True)
        for target in (env, twin):
            target.reset(seed=9)
        for _ in range(5):
            obs, rewards, _, _, info = env.step([0, 0])
            twin.step([0, 0])
            obs[:] = 0
            rewards[:] = 0
            for value in info.values():
                value[...] = 0
        assert np.array_equal(
            env.reset(options={"reset_mask": np.array([True, False])})[0][1],
            twin.reset(options={"reset_mask": np.array([True, False])})[0][1],
        )
        np.testing.assert_equal(env.step([0, 0]), twin.step([0, 0]))


class TestActionErrors:
    @pytest.mark.parametrize(
        ("actions", "message"),
        [
            (np.array([0, 3]), r"got \[3\] at env indices \[1\]"),
            (np.array([-1, 0]), r"got \[-1\] at env indices \[0\]"),
            (np.array([0, 1, 2]), r"got shape \(3,\)"),
            (np.array([[0, 1]]), r"got shape \(1, 2\)"),
            (np.array([0.0, 1.0]), r"got dtype float64"),
            (np.array([True, False]), r"got dtype bool"),
            ([0], r"got shape \(1,\)"),
            ([0, [1]], r"2 actions"),
        ],
        ids=["too-large", "negative", "too-long", "2-d", "float", "bool", "short-list", "ragged"],
    )
    def test_invalid_batch_is_a_value_error(self, actions: Any, message: str) -> None:
        env = TurbofanVectorEnv(num_envs=2)
        env.reset(seed=0)
        with pytest.raises(ValueError, match=message):
            env.step(actions)

    @pytest.mark.parametrize("actions", [1, np.int64(1), np.array(1), None, "01"])
    def test_scalar_is_a_type_error(self, actions: Any) -> None:
        env = TurbofanVectorEnv(num_envs=2)
        env.reset(seed=0)
        with pytest.raises(TypeError, match="actions must be a batch of 2 actions"):
            env.step(actions)

    @pytest.mark.parametrize("actions", [[0, 2], (1, 0), np.array([2, 1], dtype=np.uint8)])
    def test_lists_tuples_and_other_int_dtypes_are_accepted(self, actions: Any) -> None:
        env = TurbofanVectorEnv(num_envs=2)
        env.reset(seed=0)
        env.step(actions)

    @pytest.mark.parametrize("action", [3, -1, 1.0, "1", np.array([1]), True, None])
    def test_single_env_rejects_invalid_actions(self, action: Any) -> None:
        env = TurbofanEnv()
        env.reset(seed=0)
        with pytest.raises(ValueError, match=r"action must be an integer action in \{0, 1, 2\}"):
            env.step(action)

    @pytest.mark.parametrize("action", [1, np.int64(2), np.array(0), np.uint8(1)])
    def test_single_env_accepts_integer_scalars(self, action: Any) -> None:
        env = TurbofanEnv()
        env.reset(seed=0)
        env.step(action)


class TestOptionErrors:
    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            ({"step_size": 0}, ValueError, r"'step_size' must be an int in \[1, 100\], got 0"),
            ({"step_size": 101}, ValueError, r"'step_size' must be an int in \[1, 100\], got 101"),
            ({"step_size": 2.5}, TypeError, r"'step_size' must be an int .*got float: 2.5"),
            ({"step_size": True}, TypeError, r"'step_size' must be an int .*got bool"),
            (
                {"max_episode_steps": 0},
                ValueError,
                r"'max_episode_steps' must be an int in \[1, 1000000000000\], got 0",
            ),
            ({"max_episode_steps": "9"}, TypeError, r"'max_episode_steps' must be an int"),
            ({"expose_hidden_state": "yes"}, TypeError, r"'expose_hidden_state' must be a bool"),
            (
                {"render_mode": "human"},
                ValueError,
                r"'render_mode' must be None or one of 'rgb_array', got 'human'",
            ),
            (
                {"render_mode": 1},
                TypeError,
                r"'render_mode' must be None or one of 'rgb_array', got int: 1",
            ),
            (
                {"params": {"wear_speed": 1.0}},
                ValueError,
                r"unknown parameter 'wear_speed'; valid names are: initial_damage_max, wear_mean,",
            ),
            (
                {"params": {"wear_mean": "fast"}},
                TypeError,
                r"'params'\['wear_mean'\] must be a real number, got str: 'fast'",
            ),
            (
                {"params": {"wear_std": -1.0}},
                ValueError,
                r"'wear_std'\] must be a number >= 0, got -1.0",
            ),
            ({"params": {"shop_days": 2.5}}, ValueError, r"'shop_days'\] must be a whole number"),
            (
                {"params": {"dtamb_min": 11.0}},
                ValueError,
                r"'dtamb_max'\] must be a number > dtamb_min",
            ),
            ({"params": {"wear_mean": float("nan")}}, ValueError, r"must be a finite number"),
            ({"params": [("wear_mean", 1.0)]}, TypeError, r"'params' must be a mapping"),
        ],
        ids=lambda value: repr(value) if isinstance(value, dict) else "",
    )
    @pytest.mark.parametrize("cls", [TurbofanEnv, TurbofanVectorEnv], ids=lambda cls: cls.__name__)
    def test_invalid_options(
        self, cls: type, options: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            cls(**options)

    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            ({"num_envs": 0}, ValueError, r"'num_envs' must be an int >= 1, got 0"),
            (
                {"autoreset_mode": "Sometimes"},
                ValueError,
                r"'autoreset_mode' must be an AutoresetMode or one of",
            ),
            ({"autoreset_mode": 1}, TypeError, r"'autoreset_mode' must be an AutoresetMode"),
        ],
        ids=lambda value: repr(value) if isinstance(value, dict) else "",
    )
    def test_invalid_vector_options(
        self, options: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            TurbofanVectorEnv(**options)

    def test_params_override_the_model(self) -> None:
        assert TurbofanVectorEnv(params={"overhaul_beta": 0.5}).params.overhaul_beta == 0.5
        assert set(TurbofanParams.names()) >= {"wear_mean", "repair_cost_base", "sale_discount"}
        slow = TurbofanVectorEnv(num_envs=200, params={"wear_mean": 0.004, "wear_std": 0.0})
        fast = TurbofanVectorEnv(num_envs=200)
        slow.reset(seed=0)
        fast.reset(seed=0)
        for _ in range(5):
            slow_out = slow.step(np.zeros(200, dtype=np.int64))
            fast_out = fast.step(np.zeros(200, dtype=np.int64))
        assert slow_out[1].mean() > fast_out[1].mean() + 50


class TestResetErrors:
    @pytest.mark.parametrize(
        ("mask", "error"),
        [
            ([True, False, True], TypeError),
            (np.array([True, False]), ValueError),
            (np.array([1, 0, 1]), TypeError),
            (np.array([False, False, False]), ValueError),
        ],
    )
    def test_reset_mask_errors_are_those_of_sync_vector_env(
        self, mask: Any, error: type[Exception]
    ) -> None:
        ours = TurbofanVectorEnv(num_envs=3)
        reference = SyncVectorEnv([TurbofanEnv] * 3)
        for env in (ours, reference):
            env.reset(seed=0)
            with pytest.raises(error, match=r"options\['reset_mask'\]"):
                env.reset(options={"reset_mask": mask})

    def test_bad_seeds(self) -> None:
        env = TurbofanVectorEnv(num_envs=2)
        with pytest.raises(ValueError, match="length must match num_envs=2"):
            env.reset(seed=[1, 2, 3])
        with pytest.raises(ValueError, match="non-negative"):
            env.reset(seed=-1)
        with pytest.raises(TypeError, match=r"seed\[1\] must be None or a non-negative int"):
            env.reset(seed=[1, 2.0])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="non-negative"):
            TurbofanEnv().reset(seed=-5)

    def test_unknown_reset_options_are_refused(self) -> None:
        with pytest.raises(
            ValueError, match=r"unknown reset option\(s\) bounds; accepted: 'reset_mask'"
        ):
            TurbofanVectorEnv().reset(options={"bounds": 1})
        with pytest.raises(
            ValueError, match=r"unknown reset option\(s\) reset_mask; accepted: none"
        ):
            TurbofanEnv().reset(options={"reset_mask": np.array([True])})
        TurbofanEnv().reset(options={})


class TestLifecycleErrors:
    def test_step_before_reset(self) -> None:
        with pytest.raises(
            RuntimeError, match=r"call reset\(\) before step\(\): env indices \[0, 1\]"
        ):
            TurbofanVectorEnv(num_envs=2).step([0, 0])
        with pytest.raises(RuntimeError, match=r"call reset\(\) first"):
            TurbofanEnv().step(0)

    def test_disabled_mode_refuses_to_step_an_ended_env(self) -> None:
        env = TurbofanVectorEnv(num_envs=3, autoreset_mode=AutoresetMode.DISABLED)
        env.reset(seed=0)
        env.step([0, 2, 2])
        with pytest.raises(RuntimeError, match=r"env indices \[1, 2\] have ended"):
            env.step([0, 0, 0])
        env.reset(options={"reset_mask": np.array([False, True, True])})
        env.step([0, 0, 0])

    def test_single_env_refuses_to_step_after_the_end(self) -> None:
        env = TurbofanEnv()
        env.reset(seed=0)
        env.step(2)
        with pytest.raises(RuntimeError, match="the episode has ended"):
            env.step(0)

    def test_close(self) -> None:
        env = TurbofanVectorEnv(num_envs=2)
        env.reset(seed=0)
        env.close()
        env.close()
        assert env.closed
        with pytest.raises(RuntimeError, match="closed"):
            env.step([0, 0])
        with pytest.raises(RuntimeError, match="closed"):
            env.reset()


class TestRegistration:
    def test_register_is_idempotent(self) -> None:
        register()
        register()
        spec = gymnasium.spec(ENV_ID)
        assert spec.max_episode_steps is None
        assert spec.vector_entry_point is not None

    def test_make(self) -> None:
        env = gymnasium.make(ENV_ID, step_size=5, expose_hidden_state=True)
        obs, info = env.reset(seed=0)
        assert obs.shape == (5, 9)
        assert "degradation" in info
        for action in (0, 1, 0, 2):
            *_, info = env.step(action)
        assert info["reason"] == 2
        assert isinstance(env.unwrapped, TurbofanEnv)
        env.close()

    def test_make_vec(self) -> None:
        envs = gymnasium.make_vec(ENV_ID, num_envs=64, max_episode_steps=30, step_size=10)
        assert isinstance(envs, TurbofanVectorEnv)
        assert envs.spec is not None
        assert envs.spec.id == ENV_ID
        assert envs.max_episode_steps == 30
        envs.reset(seed=0)
        truncated = np.zeros(64, dtype=np.bool_)
        for _ in range(3):
            *_, step_truncated, _ = envs.step(np.zeros(64, dtype=np.int64))
            truncated = step_truncated
        assert truncated.mean() > 0.9
        envs.close()

    def test_make_vec_sync_uses_the_single_env(self) -> None:
        envs = gymnasium.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync")
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 10, 9)
        envs.close()

    def test_check_env_passes_without_warnings(self) -> None:
        check_env(gymnasium.make(ENV_ID).unwrapped)
        check_env(TurbofanEnv(step_size=1, expose_hidden_state=True), skip_render_check=True)


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_record_episode_statistics_counts_whole_episodes(mode: AutoresetMode) -> None:
    env = RecordEpisodeStatistics(
        TurbofanVectorEnv(num_envs=4, autoreset_mode=mode, max_episode_steps=40)
    )
    env.reset(seed=0)
    lengths: list[int] = []
    for _ in range(12):
        *_, terminated, truncated, info = env.step(np.zeros(4, dtype=np.int64))
        done = terminated | truncated
        if "episode" in info:
            lengths.extend(info["episode"]["l"][info["_episode"]].tolist())
        if mode is AutoresetMode.DISABLED and done.any():
            env.reset(options={"reset_mask": done})
    # Idle engines are truncated after 4 blocks of 10 flights (40 sub-steps).
    assert lengths
    assert set(lengths) == {4}
