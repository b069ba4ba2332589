"""Gymnasium's vector wrappers give the same results on a remote env as on SyncVectorEnv.

Wrappers refuse anything that is not a ``gymnasium.vector.VectorEnv`` and rely on its
exact autoreset semantics, info layout and dtypes; each one runs here in lockstep on
both sides (see vectorenv.md, "Ecosystem that must work on top").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers import vector as wrappers
from gymrpc_testing import Running
from vector_reference import MODES, CopyOptions, Lockstep, remote_env, sync_reference

NUM_ENVS = 3
STEPS = 150
CARTPOLE = ("CartPole-v1", {"max_episode_steps": 25})
PENDULUM = ("Pendulum-v1", {"max_episode_steps": 30})
DICT_OBS = ("gymrpc-test/DictObs-v0", {"horizon": 6, "end_probability": 0.1})
# float32 bounds like Pendulum's action space, or Box warns about lost precision.
UNIT = (np.full(1, -1.0, np.float32), np.full(1, 1.0, np.float32))

Wrap = Callable[[VectorEnv[Any, Any, Any]], VectorEnv[Any, Any, Any]]


def without_episode_time(info: Any) -> Any:
    """Drop RecordEpisodeStatistics' wall-clock episode durations before comparing.

    ``info`` is a vector info dict, or a list of them after ``DictInfoToList``.
    """
    if isinstance(info, list):
        return [without_episode_time(item) for item in info]
    if "episode" not in info:
        return info
    return {**info, "episode": {k: v for k, v in info["episode"].items() if k != "t"}}


def lockstep(
    running: Running,
    wrap: Wrap,
    env: tuple[str, dict[str, Any]],
    mode: AutoresetMode = AutoresetMode.NEXT_STEP,
) -> Lockstep:
    """The same wrapper over a remote env and over the reference.

    The reference is ``SyncVectorEnv`` behind :class:`CopyOptions`, because
    SyncVectorEnv removes ``reset_mask`` from the caller's options, which makes
    RecordEpisodeStatistics forget every running episode on a partial reset.
    """
    env_id, options = env
    return Lockstep(
        wrap(remote_env(running.target, env_id, NUM_ENVS, mode, **options)),
        wrap(CopyOptions(sync_reference(env_id, NUM_ENVS, mode, **options))),
        scrub=without_episode_time,
    )


@pytest.mark.parametrize("mode", MODES)
def test_record_episode_statistics_with_staggered_partial_resets(
    running: Running, mode: AutoresetMode
) -> None:
    with lockstep(running, wrappers.RecordEpisodeStatistics, DICT_OBS, mode) as pair:
        events = pair.run(STEPS, seed=5)
        remote, local = pair.remote, pair.local
        assert isinstance(remote, wrappers.RecordEpisodeStatistics)
        assert isinstance(local, wrappers.RecordEpisodeStatistics)
        assert events["partial resets"] > 0
        assert remote.episode_count == local.episode_count > 0
        assert list(remote.return_queue) == list(local.return_queue)
        assert list(remote.length_queue) == list(local.length_queue)


def test_normalize_observation(running: Running) -> None:
    # NormalizeObservation supports neither partial resets nor SAME_STEP.
    with lockstep(running, wrappers.NormalizeObservation, CARTPOLE) as pair:
        pair.run(STEPS, seed=6, partial_resets=False)
        remote, local = pair.remote, pair.local
        assert isinstance(remote, wrappers.NormalizeObservation)
        assert isinstance(local, wrappers.NormalizeObservation)
        assert np.array_equal(remote.obs_rms.mean, local.obs_rms.mean)
        assert np.array_equal(remote.obs_rms.var, local.obs_rms.var)


@pytest.mark.parametrize("mode", MODES)
def test_normalize_reward(running: Running, mode: AutoresetMode) -> None:
    with lockstep(running, wrappers.NormalizeReward, CARTPOLE, mode) as pair:
        assert pair.run(STEPS, seed=7)["terminated"] > 0


@pytest.mark.parametrize(
    ("wrap", "env"),
    [
        # ClipAction's space is unbounded, so most sampled torques get clipped.
        pytest.param(wrappers.ClipAction, PENDULUM, id="ClipAction"),
        pytest.param(lambda env: wrappers.RescaleAction(env, *UNIT), PENDULUM, id="RescaleAction"),
        pytest.param(
            lambda env: wrappers.TransformReward(env, lambda r: 2 * r - 1),
            CARTPOLE,
            id="TransformReward",
        ),
    ],
)
def test_stateless_action_and_reward_wrappers(
    running: Running, wrap: Wrap, env: tuple[str, dict[str, Any]]
) -> None:
    with lockstep(running, wrap, env) as pair:
        pair.run(STEPS, seed=8)


@pytest.mark.parametrize("mode", MODES)
def test_dict_info_to_list(running: Running, mode: AutoresetMode) -> None:
    with lockstep(running, wrappers.DictInfoToList, DICT_OBS, mode) as pair:
        pair.run(STEPS, seed=11)
        infos: Any = pair.remote.reset(seed=0)[1]  # VectorEnv annotates a dict
        assert isinstance(infos, list)
        assert len(infos) == NUM_ENVS


def test_record_episode_statistics_under_dict_info_to_list(running: Running) -> None:
    """Stacked wrappers: CleanRL-style SAME_STEP loops read per-env episode statistics."""
    with lockstep(
        running,
        lambda env: wrappers.DictInfoToList(wrappers.RecordEpisodeStatistics(env)),
        DICT_OBS,
        AutoresetMode.SAME_STEP,
    ) as pair:
        assert pair.run(STEPS, seed=12)["terminated"] > 0
        infos: Any = pair.step()[4]
        assert isinstance(infos, list)
        assert len(infos) == NUM_ENVS
