"""``RemoteVectorEnv`` against the Gymnasium VectorEnv contract, point by point.

Each section follows a section of ``vectorenv.md``. Where Gymnasium defines the exact
behaviour (error types and messages, info layout, autoreset semantics), the test
compares with ``SyncVectorEnv`` over the same environment, run locally; the rest
checks the contract's own words. Every test talks to a real server on 127.0.0.1.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pytest
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from gymrpc_testing import TOKENS, Running, Serve
from vector_reference import (
    MODES,
    Lockstep,
    assert_equivalent,
    make_single,
    remote_env,
    sync_reference,
)

import gymrpc
from gymrpc.errors import (
    AuthenticationError,
    EpisodeEndedError,
    InvalidActionError,
    NotFoundError,
    PermissionDeniedError,
    SessionNotFoundError,
    UnknownAttributeError,
)

CARTPOLE = "CartPole-v1"
PENDULUM = "Pendulum-v1"
DICT_OBS = "gymrpc-test/DictObs-v0"
TURBOFAN = "gymrpc/Turbofan-v0"
NUM_ENVS = 3

OpenEnv = Callable[..., gymrpc.RemoteVectorEnv]


@pytest.fixture
def open_env(running: Running) -> Iterator[OpenEnv]:
    """Open remote envs (on ``running`` unless ``server=`` says otherwise); close them after.

    Arguments: ``env_id``, ``num_envs``, ``mode``, ``server``, ``vectorization`` (SyncVectorEnv
    on the server by default, to compare with the local reference) and env options.
    """
    opened: list[gymrpc.RemoteVectorEnv] = []

    def open_(
        env_id: str = CARTPOLE,
        num_envs: int = NUM_ENVS,
        mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        server: Running | None = None,
        vectorization: str | None = "sync",
        **env_options: Any,
    ) -> gymrpc.RemoteVectorEnv:
        target = (server or running).target
        opened.append(remote_env(target, env_id, num_envs, mode, vectorization, **env_options))
        return opened[-1]

    yield open_
    for env in opened:
        env.close()


@pytest.fixture
def attributes_server(serve: Serve) -> Running:
    """A server that lets its anonymous callers use call, get_attr and set_attr."""
    return serve(attribute_access="all")


def pair_with_reference(
    open_env: OpenEnv, env_id: str, mode: AutoresetMode, num_envs: int = 2, **options: Any
) -> Lockstep:
    """A remote env and its local SyncVectorEnv reference (closed by ``open_env``)."""
    return Lockstep(
        open_env(env_id, num_envs, mode, **options),
        sync_reference(env_id, num_envs, mode, **options),
    )


def leaves(value: Any) -> Iterator[npt.NDArray[Any]]:
    """Every array in a (possibly nested) observation or info."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, np.ndarray):
        yield value
        if value.dtype == object:
            for item in value:
                yield from leaves(item)


def raised(call: Callable[[], object]) -> BaseException:
    """The exception a call raises (it must raise)."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - callers check the type
        call()
    return info.value


def assert_raises_like(remote: Callable[[], object], local: Callable[[], object]) -> None:
    """Both calls raise the same exception type with the same message."""
    got, want = raised(remote), raised(local)
    assert isinstance(got, type(want)), (got, want)
    assert str(got) == str(want)


# --- class and attributes -----------------------------------------------------------------


def test_is_a_gymnasium_vector_env(open_env: OpenEnv) -> None:
    env = open_env()
    assert isinstance(env, VectorEnv)
    assert type(env.num_envs) is int
    assert env.num_envs == NUM_ENVS
    assert env.unwrapped is env
    assert env.spec is None
    assert env.render_mode is None
    assert env.closed is False
    assert "num_envs=3" in repr(env)


ENVIRONMENTS = [
    pytest.param(CARTPOLE, "sync", {}, id="CartPole-Box-Discrete"),
    pytest.param(PENDULUM, "sync", {}, id="Pendulum-Box-Box"),
    pytest.param(DICT_OBS, "sync", {"horizon": 7}, id="DictObs-Dict-Discrete"),
    pytest.param(TURBOFAN, "sync", {"step_size": 4}, id="Turbofan-sync"),
    pytest.param(TURBOFAN, "vector_entry_point", {"step_size": 4}, id="Turbofan-native"),
]


@pytest.mark.parametrize(("env_id", "vectorization", "options"), ENVIRONMENTS)
def test_spaces_are_the_single_spaces_batched(
    open_env: OpenEnv, env_id: str, vectorization: str, options: dict[str, Any]
) -> None:
    env = open_env(env_id, vectorization=vectorization, **options)
    single = make_single(env_id, **options)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == batch_space(single.observation_space, NUM_ENVS)
    assert env.action_space == batch_space(single.action_space, NUM_ENVS)
    if isinstance(single.action_space, spaces.Discrete):
        assert isinstance(env.action_space, spaces.MultiDiscrete)
    single.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("env_id", "vectorization", "options"), ENVIRONMENTS)
def test_metadata_is_per_instance_with_the_autoreset_mode_enum(
    open_env: OpenEnv, env_id: str, vectorization: str, options: dict[str, Any], mode: AutoresetMode
) -> None:
    env = open_env(env_id, mode=mode, vectorization=vectorization, **options)
    other = open_env(env_id, mode=mode, vectorization=vectorization, **options)
    assert isinstance(env.metadata["autoreset_mode"], AutoresetMode)
    assert env.metadata["autoreset_mode"] is mode
    # Keys starting with "gymrpc." are promises and documentation for the server, which
    # travel in their own fields (env_service.proto, EnvironmentInfo.metadata).
    local = sync_reference(env_id, NUM_ENVS, mode, **options).metadata
    assert env.metadata == {k: v for k, v in local.items() if not k.startswith("gymrpc.")}
    env.metadata["note"] = "mine"
    assert "note" not in other.metadata
    assert "note" not in VectorEnv.metadata


def test_autoreset_mode_accepts_gymnasium_names(running: Running) -> None:
    env = gymrpc.RemoteVectorEnv(CARTPOLE, 1, target=running.target, autoreset_mode="SameStep")
    try:
        assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    finally:
        env.close()


def test_spec_is_set_by_gymnasium_make_vec(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered ``vector_entry_point`` makes a remote env a ``gymnasium.make_vec`` id."""
    spec = EnvSpec(
        "gymrpc-remote/CartPole-v1",
        vector_entry_point=cast(Any, gymrpc.make_vec),
        kwargs={"env_id": CARTPOLE, "target": running.target},
    )
    monkeypatch.setitem(gym.registry, spec.id, spec)
    env = gym.make_vec(spec.id, num_envs=2, vectorization_mode="vector_entry_point")
    try:
        assert isinstance(env, gymrpc.RemoteVectorEnv)
        assert env.spec is not None
        assert env.spec.id == spec.id
        assert repr(env) == f"RemoteVectorEnv({spec.id}, num_envs=2)"
        observations, _ = env.reset(seed=0)
        assert observations.shape == (2, 4)
    finally:
        env.close()


def test_make_vec_passes_environment_options(running: Running) -> None:
    with gymrpc.make_vec(DICT_OBS, 2, target=running.target, seed=3, horizon=4) as env:
        assert env.env_options["horizon"] == 4
        assert isinstance(env.single_observation_space, spaces.Dict)
        assert env.single_observation_space["count"] == spaces.Discrete(5)


# --- reset: seeding -----------------------------------------------------------------------


def test_int_seed_gives_sub_env_i_the_seed_plus_i(open_env: OpenEnv) -> None:
    observations, _ = open_env().reset(seed=10)
    for index in range(NUM_ENVS):
        single = make_single(CARTPOLE)
        assert_equivalent(observations[index], single.reset(seed=10 + index)[0], f"env {index}")
        single.close()


def test_seed_list_of_the_wrong_length_is_a_value_error(open_env: OpenEnv) -> None:
    env, local = open_env(), sync_reference(CARTPOLE, NUM_ENVS, AutoresetMode.NEXT_STEP)
    lists: list[list[int | None]] = [[1, 2], [1, 2, 3, 4]]
    for seeds in lists:
        assert_raises_like(lambda: env.reset(seed=seeds), lambda: local.reset(seed=seeds))
        assert isinstance(raised(lambda: env.reset(seed=seeds)), ValueError)


def test_none_in_a_seed_list_keeps_that_sub_envs_stream(open_env: OpenEnv) -> None:
    pair = pair_with_reference(open_env, CARTPOLE, AutoresetMode.NEXT_STEP, NUM_ENVS)
    first, _ = pair.reset(seed=[1, 2, 3])
    again, _ = pair.reset(seed=[None, 2, None])
    assert np.array_equal(again[1], first[1])  # reseeded with the same seed
    assert not np.array_equal(again[0], first[0])  # its stream went on
    pair.reset(seed=[None, None, None])
    pair.step()


def test_same_seed_same_data(open_env: OpenEnv) -> None:
    twins = Lockstep(
        open_env(DICT_OBS, end_probability=0.2), open_env(DICT_OBS, end_probability=0.2)
    )
    events = twins.run(60, seed=4)
    assert events["terminated"] > 0
    other, _ = open_env(DICT_OBS).reset(seed=5)
    mine, _ = twins.remote.reset(seed=4)
    assert not data_equivalence(mine, other)


def test_constructor_seed_seeds_the_first_reset_and_the_action_space(
    open_env: OpenEnv, running: Running
) -> None:
    seeded = gymrpc.RemoteVectorEnv(
        CARTPOLE, NUM_ENVS, target=running.target, seed=7, vectorization_mode="sync"
    )
    try:
        reference = open_env()
        assert_equivalent(seeded.reset()[0], reference.reset(seed=7)[0], "first reset")
        assert_equivalent(seeded.reset()[0], reference.reset()[0], "second reset")
        space = batch_space(seeded.single_action_space, NUM_ENVS)
        space.seed(7)
        assert_equivalent(seeded.action_space.sample(), space.sample(), "sampled actions")
    finally:
        seeded.close()


def test_every_call_returns_new_arrays(open_env: OpenEnv) -> None:
    """No result shares memory with an earlier one, and changing one changes nothing."""
    pair = pair_with_reference(
        open_env, DICT_OBS, AutoresetMode.SAME_STEP, horizon=3, end_probability=0.3
    )
    pair.seed_actions(1)
    earlier = list(leaves(pair.reset(seed=1)))
    for _ in range(20):
        result = pair.step()
        arrays = list(leaves(result))
        for array in arrays:
            assert array.flags.writeable
            assert not any(np.shares_memory(array, old) for old in earlier)
        for array in arrays:  # scribble over everything the caller received
            if array.dtype != object:
                array[...] = 0
        earlier += arrays


# --- reset: masks and options -------------------------------------------------------------


@pytest.mark.parametrize(
    "mask",
    [
        pytest.param([True, False, True], id="list-TypeError"),
        pytest.param(np.array([True, False]), id="wrong-shape-ValueError"),
        pytest.param(np.array([[True, False, True]]), id="2d-ValueError"),
        pytest.param(np.array([1, 0, 1]), id="int-dtype-TypeError"),
        pytest.param(np.zeros(3, dtype=np.bool_), id="all-false-ValueError"),
        pytest.param(
            None,
            id="None-TypeError",
        ),
    ],
)
def test_invalid_reset_mask_raises_like_gymnasium(open_env: OpenEnv, mask: Any) -> None:
    env, local = open_env(), sync_reference(CARTPOLE, NUM_ENVS, AutoresetMode.NEXT_STEP)
    env.reset(seed=0)
    local.reset(seed=0)
    assert_raises_like(
        lambda: env.reset(options={"reset_mask": mask}),
        lambda: local.reset(options={"reset_mask": mask}),
    )
    env.step(env.action_space.sample())  # nothing was left pending


def test_reset_mask_resets_only_the_masked_envs(open_env: OpenEnv) -> None:
    pair = pair_with_reference(open_env, DICT_OBS, AutoresetMode.NEXT_STEP, NUM_ENVS)
    pair.reset(seed=0)
    before, *_ = pair.step(np.array([0, 1, 2]))
    mask = np.array([False, True, True, False, False, True])[::2]  # a strided view works
    observations, info = pair.reset(seed=9, options={"reset_mask": mask})
    assert observations["count"].tolist() == [1, 0, 1]
    for key in ("position", "count", "flags"):
        assert np.array_equal(observations[key][~mask], before[key][~mask])
    assert info["_start"].tolist() == mask.tolist()
    assert info["_label"].tolist() == mask.tolist()
    assert info["label"].tolist() == [None, "reset", None]


@pytest.mark.parametrize("with_mask", [True, False], ids=["masked", "full"])
def test_options_reach_every_env_and_the_dict_is_not_mutated(
    open_env: OpenEnv, with_mask: bool
) -> None:
    pair = pair_with_reference(open_env, CARTPOLE, AutoresetMode.NEXT_STEP, NUM_ENVS)
    pair.reset(seed=0)
    mask = np.array([True, False, True])
    options: dict[str, Any] = {"low": -0.001, "high": 0.001}
    if with_mask:
        options["reset_mask"] = mask
    pristine = copy.deepcopy(options)
    observations, _ = pair.remote.reset(seed=1, options=options)
    assert data_equivalence(options, pristine, exact=True)
    if with_mask:
        assert options["reset_mask"] is mask
    reset = mask if with_mask else np.ones(NUM_ENVS, dtype=np.bool_)
    assert np.all(np.abs(observations[reset]) <= 0.001)
    assert_equivalent(
        observations, pair.local.reset(seed=1, options=dict(options))[0], "observations"
    )


# --- step ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "actions"),
    [
        pytest.param(CARTPOLE, [0, 1, 1], id="CartPole-list"),
        pytest.param(CARTPOLE, (1, 0, 1), id="CartPole-tuple"),
        pytest.param(CARTPOLE, np.array([1, 1, 0], dtype=np.int8), id="CartPole-int8"),
        pytest.param(
            PENDULUM, np.array([[0.5], [-1.0], [2.0]], dtype=np.float32), id="Pendulum-float32"
        ),
        pytest.param(
            PENDULUM,
            [[0.5], [-1.0], [2.0]],
            id="Pendulum-nested-list",
        ),
        pytest.param(
            PENDULUM,
            np.array([[0.5], [-1.0], [2.0]]),
            id="Pendulum-float64",
        ),
    ],
)
def test_step_accepts_lists_and_other_dtypes(open_env: OpenEnv, env_id: str, actions: Any) -> None:
    pair = pair_with_reference(open_env, env_id, AutoresetMode.NEXT_STEP, NUM_ENVS)
    pair.reset(seed=0)
    pair.step(actions)


@pytest.mark.parametrize("env_id", [CARTPOLE, PENDULUM, DICT_OBS, TURBOFAN])
def test_step_accepts_sampled_actions(open_env: OpenEnv, env_id: str) -> None:
    pair = pair_with_reference(open_env, env_id, AutoresetMode.NEXT_STEP, NUM_ENVS)
    pair.reset(seed=0)
    for _ in range(3):
        pair.step()


@pytest.mark.parametrize(
    "actions",
    [
        pytest.param([0, 1], id="too-few"),
        pytest.param(np.array([0, 1, 0, 1]), id="too-many"),
        pytest.param([], id="empty"),
    ],
)
def test_wrong_batch_length_is_a_value_error(open_env: OpenEnv, actions: Any) -> None:
    env = open_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="3") as error:
        env.step(actions)
    assert isinstance(error.value, InvalidActionError)
    env.step([0, 0, 0])  # nothing was left pending


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(1, id="int"),
        pytest.param(np.int64(1), id="numpy-scalar"),
        pytest.param(np.array(1), id="0d-array"),
    ],
)
def test_scalar_action_is_a_type_error(open_env: OpenEnv, action: Any) -> None:
    env = open_env()
    env.reset(seed=0)
    with pytest.raises(TypeError):
        env.step(action)
    env.step([0, 0, 0])


@pytest.mark.parametrize("env_id", [CARTPOLE, PENDULUM, DICT_OBS, TURBOFAN])
def test_step_results_have_the_exact_dtypes_and_shapes(open_env: OpenEnv, env_id: str) -> None:
    env = open_env(env_id)
    observations, _ = env.reset(seed=0)
    assert env.observation_space.contains(observations)
    observations, rewards, terminations, truncations, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(observations)
    expected = env.observation_space.sample()
    for got, want in zip(leaves(observations), leaves(expected), strict=True):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
    # float64 like SyncVectorEnv and AsyncVectorEnv.
    assert rewards.dtype == np.dtype(np.float64)
    assert terminations.dtype == truncations.dtype == np.dtype(np.bool_)
    assert rewards.shape == terminations.shape == truncations.shape == (NUM_ENVS,)


@pytest.mark.parametrize(
    ("env_id", "actions", "message"),
    [
        pytest.param(
            CARTPOLE,
            np.array([0, 1, 7]),
            r"actions\[2\]: 7 is outside Discrete\(2\)",
            id="Discrete",
        ),
        # The protocol refuses Box actions out of bounds, although Pendulum (and so
        # SyncVectorEnv over it) would clip them.
        pytest.param(
            PENDULUM,
            np.array([[0.0], [5.0], [0.0]], dtype=np.float32),
            r"actions\[1\]: 5.0 at element \(0,\) is outside Box",
            id="Box-out-of-bounds",
        ),
        pytest.param(
            PENDULUM,
            np.array([[0.0], [0.0], [np.nan]], dtype=np.float32),
            r"actions\[2\]: nan at element \(0,\) is outside",
            id="Box-NaN",
        ),
    ],
)
def test_action_outside_the_space_is_refused_with_the_servers_message(
    open_env: OpenEnv, env_id: str, actions: npt.NDArray[Any], message: str
) -> None:
    env = open_env(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message) as error:
        env.step(actions)
    assert isinstance(error.value, InvalidActionError)
    assert error.value.status is not None  # the server's answer, not a client-side check
    env.step(env.action_space.sample())  # nothing was left pending


# --- autoreset modes ----------------------------------------------------------------------

# Two sub-environments that end (truncate) deterministically after two steps; a partial
# reset staggers them so that sub-environment 1 ends one step before sub-environment 0.
STAGGER: dict[str, Any] = {"horizon": 2, "end_probability": 0.0}


def staggered(pair: Lockstep) -> list[dict[str, Any]]:
    """Reset and stagger; return the infos of the steps taken."""
    pair.reset(seed=0)
    *_, info = pair.step(np.array([0, 0]))
    pair.reset(options={"reset_mask": np.array([True, False])})
    return [info]


def test_next_step_keeps_the_terminal_observation_then_resets(open_env: OpenEnv) -> None:
    mode = AutoresetMode.NEXT_STEP
    pair = pair_with_reference(open_env, DICT_OBS, mode, **STAGGER)
    staggered(pair)
    observations, _, terminations, truncations, info = pair.step(np.array([1, 2]))
    assert truncations.tolist() == [False, True]
    assert not terminations.any()
    assert observations["count"].tolist() == [1, 2]  # the terminal observation
    assert not [key for key in info if "final" in key]

    observations, rewards, terminations, truncations, info = pair.step(np.array([3, 3]))
    assert observations["count"].tolist() == [2, 0]  # env 1 was reset instead of stepped
    assert rewards[1] == 0.0
    assert not terminations[1]
    assert not truncations[1]
    assert info["_label"].tolist() == [False, True]  # env 1's info is its reset info
    assert info["_count"].tolist() == [True, False]


def test_next_step_ignores_the_action_of_an_env_being_reset(open_env: OpenEnv) -> None:
    mode = AutoresetMode.NEXT_STEP
    twins = Lockstep(open_env(DICT_OBS, 2, mode, **STAGGER), open_env(DICT_OBS, 2, mode, **STAGGER))
    staggered(twins)
    twins.step(np.array([1, 2]))  # env 1 ends
    got = twins.remote.step(np.array([3, 0]))
    want = twins.local.step(np.array([3, 3]))
    assert_equivalent(got, want, "the step that reset env 1")


def test_reset_mask_cancels_a_pending_next_step_autoreset(open_env: OpenEnv) -> None:
    pair = pair_with_reference(open_env, DICT_OBS, AutoresetMode.NEXT_STEP, **STAGGER)
    staggered(pair)
    pair.step(np.array([1, 2]))  # env 1 ends
    pair.reset(options={"reset_mask": np.array([False, True])})
    observations, rewards, _, _, info = pair.step(np.array([3, 3]))
    assert observations["count"].tolist() == [2, 1]  # env 1 stepped, not reset again
    assert rewards[1] != 0.0
    assert "label" not in info


def test_same_step_resets_inside_the_terminal_step(open_env: OpenEnv) -> None:
    pair = pair_with_reference(open_env, DICT_OBS, AutoresetMode.SAME_STEP, **STAGGER)
    (quiet_info,) = staggered(pair)
    assert not [key for key in quiet_info if "final" in key]  # nothing ended

    observations, rewards, terminations, truncations, info = pair.step(np.array([1, 2]))
    dones = terminations | truncations
    assert dones.tolist() == [False, True]
    assert observations["count"].tolist() == [1, 0]  # env 1 is in its new episode
    assert rewards[1] != 0.0  # the terminal transition's reward

    final_obs = info["final_obs"]
    assert (final_obs.dtype, final_obs.shape) == (np.dtype(object), (2,))
    assert final_obs[0] is None
    assert final_obs[1]["count"] == 2
    assert info["_final_obs"].tolist() == dones.tolist()
    final_info = info["final_info"]
    assert isinstance(final_info, dict)
    assert info["_final_info"].tolist() == dones.tolist()
    assert final_info["count"][1] == 2
    assert final_info["_count"].tolist() == [False, True]
    # The reset infos of the ended envs sit at the top level, masked.
    assert info["_label"].tolist() == [False, True]
    assert info["_count"].tolist() == [True, False]


def test_disabled_refuses_to_step_an_ended_env_until_it_is_reset(open_env: OpenEnv) -> None:
    pair = pair_with_reference(open_env, DICT_OBS, AutoresetMode.DISABLED, **STAGGER)
    staggered(pair)
    observations, _, _, truncations, info = pair.step(np.array([1, 2]))
    assert truncations.tolist() == [False, True]
    assert observations["count"].tolist() == [1, 2]
    assert "label" not in info  # nothing reset by itself
    for _ in range(2):  # refused, and refusing changed nothing
        error = raised(lambda: pair.remote.step(np.array([0, 0])))
        assert isinstance(error, EpisodeEndedError)
        assert isinstance(error, RuntimeError)
        assert "[1]" in str(error)
        assert "reset_mask" in str(error)
    pair.reset(options={"reset_mask": np.array([False, True])})
    observations, *_ = pair.step(np.array([3, 3]))
    assert observations["count"].tolist() == [2, 1]


# --- the info dict ------------------------------------------------------------------------

DICT_OBS_INFO_DTYPES = {
    "count": np.int64,  # Python int
    "distance": np.float32,  # numpy values keep their dtype
    "odd": np.bool_,  # Python bool
    "action": np.int64,
    "noise": np.float32,
    "cause": object,  # str: an object array with None gaps
    "start": np.float32,
    "label": object,
    "final_obs": object,
}


def assert_vector_info(info: dict[str, Any], num_envs: int) -> None:
    """Gymnasium's vector-info layout, recursively, with the dtypes of ``_add_info``."""
    for key, value in info.items():
        if key.startswith("_"):
            assert key[1:] in info, f"mask {key} without its key"
            continue
        mask = info[f"_{key}"]
        assert (mask.dtype, mask.shape) == (np.bool_, (num_envs,)), key
        if isinstance(value, dict):
            assert_vector_info(value, num_envs)
            continue
        assert isinstance(value, np.ndarray), f"{key} is a {type(value).__name__}"
        assert value.shape[0] == num_envs, key
        assert value.dtype == DICT_OBS_INFO_DTYPES[key], key
        if value.dtype == object and key != "final_obs":
            assert all(item is None for item in value[~mask]), key


@pytest.mark.parametrize("mode", MODES)
def test_info_follows_the_vector_info_layout(open_env: OpenEnv, mode: AutoresetMode) -> None:
    env = open_env(DICT_OBS, mode=mode, horizon=4, end_probability=0.3)
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    assert_vector_info(info, NUM_ENVS)
    seen: set[str] = set()
    for _ in range(30):
        _, _, terminations, truncations, info = env.step(env.action_space.sample())
        assert_vector_info(info, NUM_ENVS)
        seen |= set(info) | set(info.get("final_info", {}))
        ended = terminations | truncations
        if mode is AutoresetMode.DISABLED and ended.any():
            env.reset(options={"reset_mask": ended})
    assert {"cause", "detail"} <= seen
    if mode is AutoresetMode.SAME_STEP:
        assert {"final_obs", "final_info"} <= seen


class InfoKindsEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    """Step infos of every kind ``VectorEnv._add_info`` batches, varying across envs.

    Action 1 adds keys that action 0 lacks, and ``mixed`` is an int after action 0 and
    a float after action 1: the first env to carry a key decides its dtype.
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 1, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self._count = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        self._count = 0
        info = {"py_float": 0.5, "image": np.zeros((2, 2), np.uint8), "bytes": b"\x00"}
        return np.zeros(1, np.float32), info

    def step(
        self, action: np.int64
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._count += 1
        count = self._count
        info: dict[str, Any] = {
            "py_int": count,
            "py_float": count / 3,
            "py_bool": bool(action),
            "big_int": 2**62 + count,
            "np_float16": np.float16(count / 7),
            "np_uint8": np.uint8(count),
            "np_uint64": np.uint64(2**63 + count),
            "np_bool": np.bool_(action),
            "array": np.arange(3, dtype=np.int16) * count,
            "text": "x" * count,
            "list": [count, "a"],
            "tuple": (count, 1.5),
            "none": None,
            "nested": {"deep": {"value": count}},
            "mixed": count if action == 0 else count + 0.5,
        }
        if action == 1:
            info["sometimes"] = count
            info["nested"]["sometimes"] = np.float64(count)
        return np.full(1, 0.5, np.float32), float(count), count % 5 == 0, count % 7 == 0, info


INFO_KINDS = "gymrpc-conformance/InfoKinds-v0"


@pytest.fixture
def info_kinds(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register InfoKindsEnv for this test (the in-process server shares the registry)."""
    monkeypatch.setitem(
        gym.registry, INFO_KINDS, EnvSpec(INFO_KINDS, entry_point=cast(Any, InfoKindsEnv))
    )
    return INFO_KINDS


@pytest.mark.parametrize("mode", MODES)
def test_every_kind_of_info_value_round_trips_like_add_info(
    open_env: OpenEnv, info_kinds: str, mode: AutoresetMode
) -> None:
    with pair_with_reference(open_env, info_kinds, mode, NUM_ENVS) as pair:
        assert pair.run(40, seed=1)["terminated"] > 0
        pair.reset(seed=2)
        info = pair.step(np.array([0, 1, 0]))[4]  # nothing ends on the first step
    expected = {
        "py_int": np.int64,
        "py_float": np.float64,
        "py_bool": np.bool_,
        "big_int": np.int64,
        "np_float16": np.float16,
        "np_uint8": np.uint8,
        "np_uint64": np.uint64,
        "array": np.int16,
        "text": object,
        "list": object,
        "tuple": object,
        "none": object,
        "sometimes": np.int64,
    }
    for key, dtype in expected.items():
        assert info[key].dtype == dtype, key
    assert info["array"].shape == (NUM_ENVS, 3)
    assert info["_sometimes"].tolist() == [False, True, False]
    assert info["nested"]["_sometimes"].tolist() == [False, True, False]
    # The first env's int decides: env 1's 1.5 is stored as 1, as _add_info does.
    assert info["mixed"].tolist() == [1, 1, 1]
    assert info["mixed"].dtype == np.int64


# --- errors -------------------------------------------------------------------------------


def test_unknown_session_id_is_a_key_error(running: Running) -> None:
    with pytest.raises(KeyError) as error:
        gymrpc.RemoteVectorEnv(CARTPOLE, target=running.target, session_id="bogus")
    assert isinstance(error.value, SessionNotFoundError)
    assert "'bogus'" in str(error.value)


@pytest.mark.parametrize("how", ["idle-timeout", "closed-by-another-client"])
def test_session_closed_by_the_server_is_session_not_found(
    open_env: OpenEnv, running: Running, how: str
) -> None:
    env = open_env()
    env.reset(seed=0)
    if how == "idle-timeout":
        later = time.monotonic() + 2 * running.server.config.session_idle_timeout
        assert running.server.registry.reap_idle(now=later) == 1
    else:
        gymrpc.RemoteVectorEnv(CARTPOLE, target=running.target, session_id=env.session_id).close()
    with pytest.raises(SessionNotFoundError, match=re.escape(env.session_id)):
        env.step(env.action_space.sample())
    env.close()  # still closes cleanly


@pytest.mark.parametrize(
    "token", [pytest.param(None, id="no-token"), pytest.param("not-a-token", id="bad-token")]
)
def test_authentication_failure(serve: Serve, tokens_file: Path, token: str | None) -> None:
    server = serve(tokens_file=tokens_file)
    with pytest.raises(AuthenticationError, match="missing or invalid bearer token"):
        gymrpc.RemoteVectorEnv(CARTPOLE, target=server.target, token=token)


def test_privileged_option_is_permission_denied(serve: Serve, tokens_file: Path) -> None:
    server = serve(tokens_file=tokens_file)
    with pytest.raises(PermissionError, match="only admins may set expose_hidden_state") as error:
        gymrpc.make_vec(
            TURBOFAN, 1, target=server.target, token=TOKENS["alice"], expose_hidden_state=True
        )
    assert isinstance(error.value, PermissionDeniedError)
    gymrpc.make_vec(
        TURBOFAN, 1, target=server.target, token=TOKENS["carol"], expose_hidden_state=True
    ).close()


def test_attributes_are_permission_denied_to_users_by_default(
    serve: Serve, tokens_file: Path
) -> None:
    server = serve(tokens_file=tokens_file)
    with gymrpc.RemoteVectorEnv(
        DICT_OBS, 2, target=server.target, token=TOKENS["alice"], vectorization_mode="sync"
    ) as env:
        with pytest.raises(PermissionDeniedError, match="reserved to admins"):
            env.get_attr("horizon")
        # Another user cannot even see the session.
        with pytest.raises(NotFoundError):
            gymrpc.RemoteVectorEnv(
                DICT_OBS, target=server.target, token=TOKENS["bob"], session_id=env.session_id
            )


# --- close --------------------------------------------------------------------------------


def test_close_is_idempotent_and_closes_the_session(
    open_env: OpenEnv, running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = open_env()
    env.reset(seed=0)
    calls: list[dict[str, Any]] = []
    close_extras = env.close_extras

    def spy(**kwargs: Any) -> None:
        calls.append(kwargs)
        close_extras(**kwargs)

    monkeypatch.setattr(env, "close_extras", spy)
    env.close()
    env.close()
    assert env.closed
    assert len(calls) == 1
    assert len(running.server.registry) == 0
    with pytest.raises(SessionNotFoundError):
        gymrpc.RemoteVectorEnv(CARTPOLE, target=running.target, session_id=env.session_id)


AFTER_CLOSE: dict[str, Callable[[gymrpc.RemoteVectorEnv], object]] = {
    "reset": lambda env: env.reset(),
    "step": lambda env: env.step([0, 0, 0]),
    "reset_async": lambda env: env.reset_async(),
    "step_async": lambda env: env.step_async([0, 0, 0]),
    "step_wait": lambda env: env.step_wait(),
    "call": lambda env: env.call("render"),
    "get_attr": lambda env: env.get_attr("spec"),
    "set_attr": lambda env: env.set_attr("x", 1),
    "render": lambda env: env.render(),
}


@pytest.mark.parametrize("operation", list(AFTER_CLOSE))
def test_operations_after_close_raise_closed_environment_error(
    open_env: OpenEnv, operation: str
) -> None:
    env = open_env()
    env.reset(seed=0)
    env.close()
    with pytest.raises(ClosedEnvironmentError):
        AFTER_CLOSE[operation](env)


def test_context_manager_closes(running: Running) -> None:
    with gymrpc.make_vec(CARTPOLE, 2, target=running.target) as env:
        env.reset(seed=0)
        assert len(running.server.registry) == 1
    assert env.closed
    assert len(running.server.registry) == 0


def test_close_with_a_step_in_flight(running: Running) -> None:
    env = gymrpc.make_vec("gymrpc-test/Slow-v0", 1, target=running.target, delay=0.2)
    env.reset()
    env.step_async(np.array([0]))
    env.close()
    assert env.closed
    assert len(running.server.registry) == 0


# --- step_async / step_wait and reset_async / reset_wait ----------------------------------


def test_async_halves_equal_the_whole_calls(open_env: OpenEnv) -> None:
    env = open_env(DICT_OBS)
    local = sync_reference(DICT_OBS, NUM_ENVS, AutoresetMode.NEXT_STEP)
    env.reset_async(seed=3, options={"reset_mask": np.array([True, True, True])})
    assert_equivalent(env.reset_wait(), local.reset(seed=3), "reset")
    for actions in ([0, 1, 2], [3, 2, 1], [1, 1, 1]):
        env.step_async(np.array(actions))
        assert_equivalent(env.step_wait(), local.step(np.array(actions)), "step")


@dataclass(frozen=True)
class Misuse:
    """A call made in the wrong state, and what AsyncVectorEnv raises for it."""

    pending: str | None
    call: Callable[[gymrpc.RemoteVectorEnv], object]
    error: type[AlreadyPendingCallError | NoAsyncCallError]
    message: str
    name: str


def _pending(operation: str, state: str) -> str:
    return f"Calling `{operation}` while waiting for a pending call to `{state}` to complete"


def _no_call(operation: str) -> str:
    return f"Calling `{operation}_wait` without any prior call to `{operation}_async`."


OUT_OF_ORDER = {
    "step_wait-without-call": Misuse(
        None, lambda env: env.step_wait(), NoAsyncCallError, _no_call("step"), "step"
    ),
    "reset_wait-without-call": Misuse(
        None, lambda env: env.reset_wait(), NoAsyncCallError, _no_call("reset"), "reset"
    ),
    "step_async-twice": Misuse(
        "step",
        lambda env: env.step_async([0, 0, 0]),
        AlreadyPendingCallError,
        _pending("step_async", "step"),
        "step",
    ),
    "reset_async-during-step": Misuse(
        "step",
        lambda env: env.reset_async(),
        AlreadyPendingCallError,
        _pending("reset_async", "step"),
        "step",
    ),
    "step_async-during-reset": Misuse(
        "reset",
        lambda env: env.step_async([0, 0, 0]),
        AlreadyPendingCallError,
        _pending("step_async", "reset"),
        "reset",
    ),
    "reset_wait-during-step": Misuse(
        "step", lambda env: env.reset_wait(), NoAsyncCallError, _no_call("reset"), "reset"
    ),
    "step_wait-during-reset": Misuse(
        "reset", lambda env: env.step_wait(), NoAsyncCallError, _no_call("step"), "step"
    ),
    # AsyncVectorEnv names `call_async` here; the remote env's calls are not split.
    "call-during-step": Misuse(
        "step",
        lambda env: env.call("render"),
        AlreadyPendingCallError,
        "while waiting for a pending call to `step`",
        "step",
    ),
    "get_attr-during-step": Misuse(
        "step",
        lambda env: env.get_attr("spec"),
        AlreadyPendingCallError,
        "while waiting for a pending call to `step`",
        "step",
    ),
}


@pytest.mark.parametrize("case", list(OUT_OF_ORDER))
def test_out_of_order_async_calls(open_env: OpenEnv, case: str) -> None:
    """AsyncVectorEnv's errors; the call already pending is unaffected and completes."""
    misuse = OUT_OF_ORDER[case]
    env = open_env()
    local = sync_reference(CARTPOLE, NUM_ENVS, AutoresetMode.NEXT_STEP)
    assert_equivalent(env.reset(seed=0), local.reset(seed=0), "reset")
    if misuse.pending == "step":
        env.step_async(np.array([1, 0, 1]))
    elif misuse.pending == "reset":
        env.reset_async(seed=1)
    with pytest.raises(misuse.error, match=re.escape(misuse.message)) as error:
        misuse.call(env)
    assert isinstance(error.value, AlreadyPendingCallError | NoAsyncCallError)
    assert error.value.name == misuse.name
    if misuse.pending == "step":
        assert_equivalent(env.step_wait(), local.step(np.array([1, 0, 1])), "pending step")
    elif misuse.pending == "reset":
        assert_equivalent(env.reset_wait(), local.reset(seed=1), "pending reset")
    assert_equivalent(env.step([0, 0, 0]), local.step(np.array([0, 0, 0])), "next step")


# --- call, get_attr, set_attr, render -----------------------------------------------------


def test_get_attr_set_attr_and_call_act_on_the_sub_envs(
    open_env: OpenEnv, attributes_server: Running
) -> None:
    env = open_env(DICT_OBS, server=attributes_server, horizon=5)
    local = sync_reference(DICT_OBS, NUM_ENVS, AutoresetMode.NEXT_STEP, horizon=5)
    assert_equivalent(env.get_attr("horizon"), local.get_attr("horizon"), "get_attr")
    env.set_attr("horizon", [7, 8, 9])
    local.set_attr("horizon", [7, 8, 9])
    assert env.get_attr("horizon") == (7, 8, 9)
    env.set_attr("horizon", 4)
    local.set_attr("horizon", 4)
    assert env.get_attr("horizon") == (4, 4, 4)
    assert_equivalent(
        env.call("get_wrapper_attr", "horizon"),
        local.call("get_wrapper_attr", "horizon"),
        "call",
    )
    env.set_attr("horizon", [1], env_indices=[2])
    assert env.get_attr("horizon", env_indices=[0, 2]) == (4, 1)


def test_attribute_errors(open_env: OpenEnv, attributes_server: Running) -> None:
    env = open_env(DICT_OBS, server=attributes_server)
    local = sync_reference(DICT_OBS, NUM_ENVS, AutoresetMode.NEXT_STEP)
    with pytest.raises(AttributeError, match="no_such_attribute") as error:
        env.get_attr("no_such_attribute")
    assert isinstance(error.value, UnknownAttributeError)
    assert_raises_like(
        lambda: env.set_attr("horizon", [1, 2]), lambda: local.set_attr("horizon", [1, 2])
    )


def test_render_returns_the_sub_envs_frames(open_env: OpenEnv) -> None:
    pair = pair_with_reference(
        open_env, DICT_OBS, AutoresetMode.NEXT_STEP, NUM_ENVS, render_mode="rgb_array"
    )
    assert pair.remote.render_mode == pair.local.render_mode == "rgb_array"
    pair.reset(seed=0)
    pair.step(np.array([0, 1, 2]))
    frames: Any = pair.remote.render()
    assert_equivalent(frames, pair.local.render(), "frames")
    assert isinstance(frames, tuple)
    assert frames[0].dtype == np.uint8


# --- attaching to a session ---------------------------------------------------------------


def test_second_client_attaches_to_a_session_and_continues_it(
    open_env: OpenEnv, running: Running
) -> None:
    mode = AutoresetMode.SAME_STEP
    first = open_env(DICT_OBS, mode=mode, horizon=6)
    local = sync_reference(DICT_OBS, NUM_ENVS, mode, horizon=6)
    Lockstep(first, local).run(10, seed=8, partial_resets=False)

    second = gymrpc.RemoteVectorEnv("ignored", target=running.target, session_id=first.session_id)
    try:
        assert second.session_id == first.session_id
        assert (second.env_id, second.num_envs) == (DICT_OBS, NUM_ENVS)
        assert second.observation_space == first.observation_space
        assert second.action_space == first.action_space
        assert second.metadata == first.metadata
        assert second.env_options == first.env_options
        assert second.env_options["horizon"] == 6
        continued = Lockstep(second, local)
        for _ in range(10):
            continued.step()
    finally:
        second.close()
    assert len(running.server.registry) == 0  # closing any client closes the session
