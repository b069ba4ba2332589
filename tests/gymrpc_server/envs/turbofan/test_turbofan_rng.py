"""The counter-based random streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gymrpc_server.envs.turbofan.rng import (
    EnvStreams,
    NoiseSampler,
    episode_keys,
    mix64,
    seed_keys,
)


def keys_of(*seeds: int) -> np.ndarray:
    return episode_keys(seed_keys(list(seeds)), np.zeros(len(seeds), dtype=np.uint64))


@pytest.mark.parametrize(
    ("function", "dtype"),
    [(np.log, np.float64), (np.cos, np.float32), (np.sin, np.float32)],
    ids=["log64", "cos32", "sin32"],
)
def test_transcendentals_give_each_element_the_same_bits_anywhere(
    function: np.ufunc, dtype: type
) -> None:
    """The batch independence rests on this: SIMD bodies and tails agree elementwise."""
    values: np.ndarray = np.random.default_rng(0).uniform(1e-9, 2 * np.pi, size=4099).astype(dtype)
    whole = function(values)
    for offset in range(0, 40, 3):
        for length in (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100):
            part = values[offset : offset + length].copy()
            assert np.array_equal(function(part), whole[offset : offset + length])
            assert np.array_equal(
                function(values[offset : offset + 2 * length : 2]),
                whole[offset : offset + 2 * length : 2],
            )


@given(
    seed=st.integers(0, 2**64 - 1),
    first_row=st.integers(0, 10**6),
    num_rows=st.integers(1, 30),
    split=st.integers(0, 29),
)
def test_rows_do_not_depend_on_how_they_are_drawn(
    seed: int, first_row: int, num_rows: int, split: int
) -> None:
    """Drawing rows a..b at once or in two parts, next to other keys or alone: same numbers."""
    split = min(split, num_rows - 1)
    keys = keys_of(seed, seed + 1, 7)
    normals, uniforms = (
        array.copy() for array in NoiseSampler().sample(keys, np.full(3, first_row), num_rows)
    )
    alone = NoiseSampler()
    head_normals, head_uniforms = (
        a.copy() for a in alone.sample(keys[:1], np.array([first_row]), split + 1)
    )
    tail_normals, tail_uniforms = alone.sample(
        keys[:1], np.array([first_row + split + 1]), num_rows - split - 1
    )
    assert np.array_equal(np.concatenate([head_normals, tail_normals], axis=2), normals[:, :1])
    assert np.array_equal(np.concatenate([head_uniforms, tail_uniforms], axis=2), uniforms[:, :1])


def test_normals_and_uniforms_have_the_right_distribution() -> None:
    normals, uniforms = NoiseSampler().sample(keys_of(*range(2000)), np.arange(2000), 50)
    flat = normals.reshape(14, -1)
    np.testing.assert_allclose(flat.mean(axis=1), 0, atol=0.01)
    np.testing.assert_allclose(flat.std(axis=1), 1, atol=0.01)
    # 100k samples: the standard error of a correlation is 0.003.
    assert np.abs(np.corrcoef(flat) - np.eye(14)).max() < 0.02
    # Tails: P(|z| > 3) = 0.0027.
    assert 0.0023 < np.mean(np.abs(flat) > 3) < 0.0031
    assert np.all((uniforms > 0) & (uniforms < 1))
    np.testing.assert_allclose(uniforms.reshape(2, -1).mean(axis=1), 0.5, atol=0.005)


def test_neighbouring_seeds_and_episodes_are_unrelated() -> None:
    keys = seed_keys(list(range(100_000)))
    assert len(np.unique(keys)) == 100_000
    normals, _ = NoiseSampler().sample(keys_of(*range(500)), np.zeros(500, dtype=np.int64), 1)
    first = normals[0, :, 0]
    assert abs(np.corrcoef(first[:-1], first[1:])[0, 1]) < 0.15
    episodes = episode_keys(np.full(1000, keys[0]), np.arange(1000, dtype=np.uint64))
    assert len(np.unique(episodes)) == 1000


def test_mix64_is_a_bijection_on_a_sample() -> None:
    words = np.arange(1 << 16, dtype=np.uint64) << np.uint64(20)
    assert len(np.unique(mix64(words.copy()))) == 1 << 16


def test_env_streams_seed_continue_and_entropy() -> None:
    streams = EnvStreams(3)
    everyone = np.arange(3)
    seeded = streams.next_episode_keys(everyone, [1, 2, 3])
    assert np.array_equal(seeded, keys_of(1, 2, 3))
    continued = streams.next_episode_keys(everyone, None)
    assert np.array_equal(
        continued, episode_keys(seed_keys([1, 2, 3]), np.ones(3, dtype=np.uint64))
    )
    fresh = EnvStreams(2).next_episode_keys(np.arange(2), None)
    assert fresh[0] != fresh[1]
    again = streams.next_episode_keys(np.array([1]), [2])
    assert again[0] == seeded[1]
