"""The SB3 adapter with Dict and Tuple action spaces, against DummyVecEnv, on a real server.

``DummyVecEnv`` hands ``actions[i]`` to environment ``i``, so SB3 code steps Dict and
Tuple action spaces with a list of per-environment dicts or tuples. ``RemoteVecEnv``
takes that list, and Gymnasium's batched form (a dict or tuple of batches) as well,
and must return what ``DummyVecEnv`` returns over the same environments.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector.utils import concatenate, create_empty_array
from gymrpc_space_envs import env_id
from gymrpc_testing import Running, Serve
from stable_baselines3.common.vec_env import DummyVecEnv

from gymrpc.errors import InvalidActionError
from gymrpc.sb3 import RemoteVecEnv

NUM_ENVS = 3
STEPS = 40

PerEnv = Callable[[list[Any]], Any]


@pytest.fixture
def space_server(serve: Serve) -> Running:
    """A server that serves the environments of gymrpc_space_envs."""
    return serve(env_modules=("gymrpc_test_envs", "gymrpc_space_envs"))


def equal(got: Any, want: Any) -> bool:
    """Same values and types; SB3's OrderedDict observations compare as dicts."""
    if isinstance(want, dict):
        return isinstance(got, dict) and data_equivalence(dict(got), dict(want), exact=True)
    return data_equivalence(got, want, exact=True)


@pytest.fixture(params=["DictAction", "TupleAction"])
def pair(request: pytest.FixtureRequest, space_server: Running) -> Iterator[tuple[Any, Any]]:
    """A RemoteVecEnv and a DummyVecEnv over the same environment, seeded alike."""
    remote = RemoteVecEnv(
        env_id(request.param), NUM_ENVS, target=space_server.target, vectorization_mode="sync"
    )
    local = DummyVecEnv([lambda: gym.make(env_id(request.param))] * NUM_ENVS)
    remote.seed(5)
    local.seed(5)
    assert equal(remote.reset(), local.reset())
    assert equal(remote.reset_infos, local.reset_infos)
    yield remote, local
    remote.close()
    local.close()


def as_list(actions: list[Any]) -> Any:
    return actions


def as_object_array(actions: list[Any]) -> Any:
    array = np.empty(len(actions), dtype=object)
    for index, action in enumerate(actions):
        array[index] = action
    return array


def batched(space: spaces.Space[Any]) -> PerEnv:
    """Gymnasium's batched form of per-environment actions (a dict or tuple of batches)."""

    def convert(actions: list[Any]) -> Any:
        return concatenate(space, actions, cast(Any, create_empty_array(space, len(actions))))

    return convert


@pytest.mark.parametrize("form", ["list", "object-array", "batched"])
def test_per_env_and_batched_actions_match_dummy_vec_env(
    pair: tuple[RemoteVecEnv, DummyVecEnv], form: str
) -> None:
    remote, local = pair
    # A copy: DummyVecEnv's action_space is its first environment's own, whose
    # generator the environment draws from.
    space = copy.deepcopy(local.action_space)
    convert = {"list": as_list, "object-array": as_object_array, "batched": batched(space)}[form]
    space.seed(0)
    ends = 0
    for step in range(STEPS):
        actions = [space.sample() for _ in range(NUM_ENVS)]
        observations, rewards, dones, infos = remote.step(cast(Any, convert(actions)))
        # DummyVecEnv takes only the per-environment list.
        want_observations, want_rewards, want_dones, want_infos = local.step(cast(Any, actions))
        assert equal(observations, want_observations), step
        assert equal(rewards, want_rewards), step
        assert equal(dones, want_dones), step
        assert equal(infos, want_infos), (step, infos, want_infos)
        assert equal(remote.reset_infos, local.reset_infos), step
        ends += int(dones.sum())
    assert ends > 0  # terminal observations and reset infos were compared too


@pytest.mark.parametrize(
    ("make_actions", "match", "field"),
    [
        (lambda good: good[:2], "2 actions for 3 sub-environments", "actions"),
        (lambda good: [good[0], "not an action", good[2]], "got str", "actions[1]"),
    ],
    ids=["too-few", "not-an-action"],
)
def test_wrong_per_env_actions_are_value_errors(
    pair: tuple[RemoteVecEnv, DummyVecEnv],
    make_actions: Callable[[list[Any]], list[Any]],
    match: str,
    field: str,
) -> None:
    remote, _ = pair
    good = [remote.action_space.sample() for _ in range(NUM_ENVS)]
    with pytest.raises(ValueError, match=match) as info:
        remote.step(cast(Any, make_actions(good)))
    assert isinstance(info.value, InvalidActionError)
    assert info.value.field == field
    remote.step(cast(Any, good))  # nothing was left pending


def test_a_per_env_action_outside_the_space_is_refused_by_the_server(
    space_server: Running,
) -> None:
    env = RemoteVecEnv(env_id("DictAction"), 2, target=space_server.target)
    env.reset()
    actions = [
        {"move": np.int64(0), "force": np.zeros(2, np.float32)},
        {"move": np.int64(9), "force": np.zeros(2, np.float32)},
    ]
    with pytest.raises(InvalidActionError, match="9 is outside Discrete") as info:
        env.step(cast(Any, actions))
    assert info.value.status is not None  # the server's answer
    assert info.value.field == "step.actions.move[1]"
    env.close()


def test_a_tuple_of_per_env_dicts_is_per_env_too(space_server: Running) -> None:
    # DummyVecEnv indexes any sequence; for a Dict space a tuple cannot be a batch.
    remote = RemoteVecEnv(env_id("DictAction"), 2, target=space_server.target, seed=1)
    local = DummyVecEnv([lambda: gym.make(env_id("DictAction"))] * 2)
    remote.seed(1)
    local.seed(1)
    remote.reset()
    local.reset()
    space = copy.deepcopy(local.action_space)
    space.seed(1)
    for _ in range(5):
        actions = tuple(space.sample() for _ in range(2))
        got = remote.step(cast(Any, actions))
        want = local.step(cast(Any, actions))
        assert all(equal(a, b) for a, b in zip(got, want, strict=True))
    remote.close()
    local.close()
