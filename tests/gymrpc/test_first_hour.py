"""Errors a new user meets in the first hour: each says what is wrong, never misleads."""

from __future__ import annotations

from typing import cast

import pytest
from gymrpc_testing import Running

import gymrpc
from gymrpc.errors import (
    EnvNotFoundError,
    InvalidNumEnvsError,
    InvalidSeedError,
    NotSupportedError,
)


@pytest.mark.parametrize("num_envs", [-3, 0, 2**32], ids=["negative", "zero", "over-uint32"])
def test_a_bad_num_envs_is_refused_before_anything_is_sent(num_envs: int) -> None:
    # Port 1 is closed: the check must come before any connection attempt.
    with pytest.raises(InvalidNumEnvsError) as info:
        gymrpc.make_vec("CartPole-v1", num_envs=num_envs, target="127.0.0.1:1")
    assert info.value.field == "num_envs"
    assert str(info.value).startswith(f"num_envs: {num_envs}; expected at least 1")


def test_a_num_envs_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidNumEnvsError, match=r"num_envs: got str '4'; expected an int"):
        gymrpc.make_vec("CartPole-v1", num_envs="4", target="127.0.0.1:1")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 2**64], ids=["negative", "over-uint64"])
def test_a_bad_seed_is_refused_naming_the_field(seed: int) -> None:
    with pytest.raises(InvalidSeedError) as info:
        gymrpc.make_vec("CartPole-v1", num_envs=2, seed=seed, target="127.0.0.1:1")
    assert info.value.field == "seed"
    assert str(info.value).startswith(f"seed: {seed}; expected an int in [0, ")
    assert isinstance(info.value, ValueError)


def test_the_largest_seed_of_a_batch_must_fit_in_64_bits() -> None:
    # Sub-environment i gets seed + i: with 4 envs the largest valid seed is 2**64 - 4.
    with pytest.raises(InvalidSeedError, match=r"expected an int in \[0, 18446744073709551612\]"):
        gymrpc.make_vec("CartPole-v1", num_envs=4, seed=2**64 - 3, target="127.0.0.1:1")


def test_an_unknown_id_suggests_the_close_one(running: Running) -> None:
    with pytest.raises(EnvNotFoundError) as info:
        gymrpc.make_vec("gymrpc/turbofan-v0", num_envs=1, target=running.target)
    message = str(info.value)
    assert "did you mean 'gymrpc/Turbofan-v0'?" in message
    assert "gymrpc envs" in message
    assert "gymrpc.list_environments()" in message
    with pytest.raises(EnvNotFoundError) as info:
        gymrpc.make_vec("Nothing-Like-It-v9", num_envs=1, target=running.target)
    assert "did you mean" not in str(info.value)


def test_render_without_a_render_mode_says_what_the_environment_can_render(
    running: Running,
) -> None:
    # The turbofan renders rgb_array frames of its sensor traces.
    with gymrpc.make_vec("gymrpc/Turbofan-v0", 1, target=running.target) as envs:
        envs.reset(seed=0)
        with pytest.raises(NotSupportedError) as info:
            envs.render()
    assert "render_mode set to one of ['rgb_array', 'rgb_array_list']" in str(info.value)
    # An environment without render modes says that it renders nothing.
    with gymrpc.make_vec("gymrpc-test/Faulty-v0", 1, target=running.target) as envs:
        envs.reset(seed=0)
        with pytest.raises(NotSupportedError, match="renders nothing on a server"):
            envs.render()


def test_list_environments_returns_the_catalogue_with_documentation(running: Running) -> None:
    specs = {spec.env_id: spec for spec in gymrpc.list_environments(target=running.target)}
    assert list(specs) == sorted(specs)
    turbofan = specs["gymrpc/Turbofan-v0"]
    assert turbofan.observation_space.shape == (10, 9)
    assert turbofan.max_episode_steps == 100  # 1000 sub-steps in blocks of 10
    step_size = next(option for option in turbofan.options if option.name == "step_size")
    assert (step_size.type, step_size.default) == ("int", 10)
    limit = next(option for option in turbofan.options if option.name == "max_episode_steps")
    assert "sub-steps" in limit.unit
    (columns,) = turbofan.observation_labels
    assert [label.name for label in columns.labels][:2] == ["HPC_Tout", "HP_Nmech"]
    assert [label.unit for label in columns.labels][:2] == ["K", "rpm"]
    assert len(columns.labels) == turbofan.observation_space.shape[-1]
    keys = {key.key: key for key in turbofan.info_keys}
    assert keys["degradation"].privileged
    assert not keys["reason"].privileged
    assert "failure" in keys["reason"].description
    assert "turbofan" in turbofan.documentation.lower()
    # Environments without gymrpc documentation carry their docstring.
    assert "pole" in specs["CartPole-v1"].documentation.lower()
    assert specs["CartPole-v1"].max_episode_steps == 500


@pytest.mark.parametrize(
    ("vectorization", "expected"), [("sync", (42, 43)), ("vector_entry_point", 42)]
)
def test_np_random_seed_is_reported_as_gymnasium_does(
    running: Running, vectorization: str, expected: object
) -> None:
    import gymnasium

    with gymrpc.make_vec(
        "CartPole-v1", 2, target=running.target, vectorization_mode=vectorization
    ) as remote:
        local = gymnasium.make_vec("CartPole-v1", 2, vectorization_mode=vectorization)
        # Before any reset, as locally: the seeds drawn when first asked, then kept.
        unseeded = remote.np_random_seed
        assert type(unseeded) is type(local.np_random_seed)
        assert remote.np_random_seed == unseeded
        remote.reset(seed=42)
        local.reset(seed=42)
        assert remote.np_random_seed == local.np_random_seed == expected
        # The generators as they were right after seeding (the server's have drawn the
        # initial states since): fresh ones from the same seeds.
        from gymnasium.utils import seeding

        remote_random = remote.np_random
        if vectorization == "sync":
            assert isinstance(remote_random, tuple)
            seeds = cast(tuple[int, ...], expected)
            fresh = [seeding.np_random(seed)[0].random() for seed in seeds]
            assert [g.random() for g in remote_random] == fresh
        else:
            assert remote_random.random() == seeding.np_random(42)[0].random()
        local.close()


def test_unseeded_sub_environments_report_their_128_bit_seeds(running: Running) -> None:
    with gymrpc.make_vec("CartPole-v1", 2, target=running.target, vectorization_mode="sync") as env:
        env.reset(seed=[5, None])
        first, second = env.np_random_seed
        assert first == 5
        assert isinstance(second, int)
        assert second >= 0
