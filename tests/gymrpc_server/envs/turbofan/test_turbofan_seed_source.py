"""``episode_seed_source``: a server can choose the seed of every episode, autoresets too."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from gymnasium.vector import AutoresetMode

from gymrpc_server.envs.turbofan import TurbofanVectorEnv


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda m: m.name)
def test_every_episode_start_asks_the_source_in_index_order(mode: AutoresetMode) -> None:
    env = TurbofanVectorEnv(3, autoreset_mode=mode)
    calls: list[list[int]] = []
    counter = iter(range(1000, 2000))

    def source(indices: npt.NDArray[np.intp]) -> list[int]:
        calls.append(indices.tolist())
        return [next(counter) for _ in indices]

    env.episode_seed_source = source
    env.reset()
    assert calls == [[0, 1, 2]]
    sell_first = np.array([2, 0, 0])
    _, _, terminated, _, _ = env.step(sell_first)
    assert terminated.tolist() == [True, False, False]
    if mode is AutoresetMode.DISABLED:
        env.reset(options={"reset_mask": terminated})
    elif mode is AutoresetMode.NEXT_STEP:
        env.step(np.zeros(3, np.int64))  # the reset step of engine 0
    assert calls == [[0, 1, 2], [0]]
    env.step(np.array([0, 2, 2]))
    if mode is AutoresetMode.NEXT_STEP:
        env.step(np.zeros(3, np.int64))
    if mode is not AutoresetMode.DISABLED:
        assert calls == [[0, 1, 2], [0], [1, 2]]
    env.close()


def test_a_sourced_seed_gives_the_engine_that_seed_gives() -> None:
    sourced = TurbofanVectorEnv(2)
    sourced.episode_seed_source = lambda indices: [71 + int(i) for i in indices]
    seeded = TurbofanVectorEnv(2)
    first, _ = sourced.reset()
    second, _ = seeded.reset(seed=71)
    np.testing.assert_array_equal(first, second)
    for _ in range(5):
        actions = np.array([0, 1])
        np.testing.assert_array_equal(sourced.step(actions)[0], seeded.step(actions)[0])


def test_np_random_seed_reports_an_int_seed() -> None:
    env = TurbofanVectorEnv(2)
    env.reset(seed=42)
    assert env.np_random_seed == 42
