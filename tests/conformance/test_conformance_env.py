"""``gymrpc/Conformance-v0``: the environment the kit drives, and its documentation.

The kit predicts every result from the documentation alone (``gymrpc.conformance.model``);
these tests hold the environment to that documentation, and its native vector
implementation to ``SyncVectorEnv`` over the single environment.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import gymrpc_server  # noqa: F401 (registers the environments)
from gymrpc.conformance.model import ConformanceModel, value_of
from gymrpc.modes import autoreset_to_proto
from gymrpc_server.envs.conformance import (
    ENV_ID,
    ConformanceEnv,
    ConformanceVectorEnv,
    advance,
)

MODES = [pytest.param(mode, id=mode.name.lower()) for mode in AutoresetMode]


def _script(num_envs: int) -> list[tuple[str, Any]]:
    """Steps and masked resets crossing several episode ends (episode_length 3)."""
    rng = np.random.default_rng(3)
    script: list[tuple[str, Any]] = []
    for index in range(14):
        if index in (4, 9):
            mask = np.zeros(num_envs, dtype=np.bool_)
            mask[index % num_envs] = True
            script.append(("reset", mask))
        else:
            script.append(("step", rng.integers(0, 3, size=num_envs)))
    return script


def _play(
    envs: gymnasium.vector.VectorEnv[Any, Any, Any], mode: AutoresetMode, num_envs: int
) -> list[Any]:
    """Run the script; under DISABLED, first reset whatever ended."""
    results: list[Any] = [envs.reset(seed=11)]
    ended = np.zeros(num_envs, dtype=np.bool_)
    for kind, argument in _script(num_envs):
        if kind == "reset" or (mode is AutoresetMode.DISABLED and ended.any()):
            mask = argument if kind == "reset" else ended.copy()
            mask = mask | ended if mode is AutoresetMode.DISABLED else mask
            results.append(envs.reset(options={"reset_mask": mask}))
            ended[mask] = False
            if kind == "reset":
                continue
        results.append(envs.step(argument))
        ended |= results[-1][2] | results[-1][3]
    return results


@pytest.mark.parametrize("mode", MODES)
def test_native_vector_env_matches_sync_vector_env(mode: AutoresetMode) -> None:
    def make() -> gymnasium.Env[Any, Any]:
        return gymnasium.make(ENV_ID, episode_length=3, expose_hidden_state=True)

    native = ConformanceVectorEnv(
        3, episode_length=3, expose_hidden_state=True, autoreset_mode=mode
    )
    sync = SyncVectorEnv([make] * 3, autoreset_mode=mode)
    for got, want in zip(_play(native, mode, 3), _play(sync, mode, 3), strict=True):
        assert data_equivalence(got, want, exact=True), (got, want)


@pytest.mark.parametrize("mode", MODES)
def test_the_kit_model_predicts_the_environment(mode: AutoresetMode) -> None:
    envs = ConformanceVectorEnv(3, episode_length=3, autoreset_mode=mode)
    model = ConformanceModel(3, episode_length=3, autoreset_mode=autoreset_to_proto(mode))
    observations, _ = envs.reset(seed=11)
    assert observations.tolist() == model.reset(11).observations
    ended = np.zeros(3, dtype=np.bool_)
    for kind, argument in _script(3):
        if kind == "reset":
            mask = argument | ended if mode is AutoresetMode.DISABLED else argument
            observations, _ = envs.reset(options={"reset_mask": mask})
            assert observations.tolist() == model.reset(None, mask.tolist()).observations
            ended[mask] = False
            continue
        if mode is AutoresetMode.DISABLED and ended.any():
            envs.reset(options={"reset_mask": ended.copy()})
            model.reset(None, ended.tolist())
            ended[:] = False
        observations, rewards, terminations, truncations, _ = envs.step(argument)
        expected = model.step(argument.tolist())
        assert observations.tolist() == expected.observations
        assert rewards.tolist() == expected.rewards
        assert terminations.tolist() == expected.terminations
        assert truncations.tolist() == expected.truncations
        ended |= terminations


def test_documented_generator_and_rewards() -> None:
    env = ConformanceEnv(episode_length=2)
    observation, info = env.reset(seed=41)
    assert observation.tolist() == [0, advance(41) >> 44] == [0, value_of(41)]
    assert info == {"episode_step": 0}
    observation, reward, terminated, truncated, info = env.step(np.int64(1))
    assert observation.tolist() == [1, advance(advance(41)) >> 44]
    assert (reward, terminated, truncated, info) == (0.5, False, False, {"episode_step": 1})
    *_, terminated, truncated, _ = env.step(np.int64(2))
    assert terminated
    assert not truncated
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(np.int64(0))


def test_hidden_state_predicts_the_next_value() -> None:
    env = ConformanceEnv(expose_hidden_state=True)
    _, info = env.reset(seed=5)
    observation, *_ = env.step(np.int64(0))
    assert info["next_value"] == observation[1]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"episode_length": 0}, ValueError, "episode_length: 0 is out of range"),
        ({"episode_length": 101}, ValueError, "episode_length: 101 is out of range"),
        ({"episode_length": "5"}, TypeError, "episode_length: '5' is not an int"),
        ({"expose_hidden_state": 1}, TypeError, "expose_hidden_state: 1 is not a bool"),
    ],
    ids=["length-0", "length-101", "length-str", "hidden-int"],
)
def test_options_are_checked_and_named(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ConformanceEnv(**options)
    with pytest.raises(error, match=message):
        ConformanceVectorEnv(2, **options)


def test_refused_resets_change_nothing() -> None:
    envs = ConformanceVectorEnv(2)
    before, _ = envs.reset(seed=3)
    for options in ({"difficulty": 1}, {"reset_mask": np.array([False, False])}):
        with pytest.raises(ValueError, match="reset"):
            envs.reset(options=options)
    assert envs.reset(options={"reset_mask": np.array([False, True])})[0][0].tolist() == (
        before[0].tolist()
    )


def test_registration_builds_nothing_and_passes_gymnasiums_checker() -> None:
    spec = gymnasium.spec(ENV_ID)
    # Entry points are strings: nothing is imported or built until a session asks.
    assert spec.entry_point == "gymrpc_server.envs.conformance:ConformanceEnv"
    assert spec.vector_entry_point == "gymrpc_server.envs.conformance:ConformanceVectorEnv"
    assert spec.max_episode_steps is None
    check_env(ConformanceEnv(), skip_render_check=True)
