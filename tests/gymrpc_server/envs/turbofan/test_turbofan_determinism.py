"""Seeding and determinism: an engine's data depend only on its seed and its actions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from gymrpc_server.envs.turbofan import KEEP_FLYING, TurbofanEnv, TurbofanVectorEnv

PUBLIC_AND_HIDDEN = ("step", "n_valid", "reason", "repairs", "in_shop", "degradation")


@pytest.mark.parametrize("step_size", [1, 3, 10, 25])
@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_engine_is_independent_of_its_batch(step_size: int, mode: AutoresetMode) -> None:
    """Seed 7 alone, and at position 37 of 64 busy engines: bit-identical episodes."""
    options = {"step_size": step_size, "expose_hidden_state": True, "autoreset_mode": mode}
    alone = TurbofanVectorEnv(num_envs=1, **options)  # type: ignore[arg-type]
    crowd = TurbofanVectorEnv(num_envs=64, **options)  # type: ignore[arg-type]
    seeds: list[int | None] = [
        int(seed) for seed in np.random.default_rng(0).integers(10**9, size=64)
    ]
    seeds[37] = 7
    obs_alone, _ = alone.reset(seed=7)
    obs_crowd, _ = crowd.reset(seed=seeds)
    assert np.array_equal(obs_alone[0], obs_crowd[37])
    rng = np.random.default_rng(step_size)
    episodes = 0
    for _ in range(400):
        action = int(rng.choice(3, p=[0.92, 0.05, 0.03]))
        crowd_actions = rng.choice(3, size=64, p=[0.6, 0.25, 0.15])
        crowd_actions[37] = action
        obs_a, reward_a, term_a, trunc_a, info_a = alone.step(np.array([action]))
        obs_c, reward_c, term_c, trunc_c, info_c = crowd.step(crowd_actions)
        assert np.array_equal(obs_a[0], obs_c[37])
        assert reward_a[0] == reward_c[37]
        assert (term_a[0], trunc_a[0]) == (term_c[37], trunc_c[37])
        for key in PUBLIC_AND_HIDDEN:
            assert info_a[key][0] == info_c[key][37], key
        if term_a[0] or trunc_a[0]:
            episodes += 1
            if mode is AutoresetMode.DISABLED:
                alone.reset(options={"reset_mask": np.array([True])})
                mask = term_c | trunc_c
                crowd.reset(options={"reset_mask": mask})
        elif mode is AutoresetMode.DISABLED and (term_c | trunc_c).any():
            crowd.reset(options={"reset_mask": term_c | trunc_c})
    assert episodes >= 2, "several whole episodes, including unseeded ones, are compared"


def test_int_seed_gives_env_i_seed_plus_i() -> None:
    batch = TurbofanVectorEnv(num_envs=8)
    obs, _ = batch.reset(seed=100)
    for index in (0, 5, 7):
        single = TurbofanEnv()
        single_obs, _ = single.reset(seed=100 + index)
        assert np.array_equal(obs[index], single_obs)


def test_seed_array_is_a_seed_list() -> None:
    from_list, _ = TurbofanVectorEnv(num_envs=3).reset(seed=[4, 9, 1])
    from_array, _ = TurbofanVectorEnv(num_envs=3).reset(seed=np.array([4, 9, 1]))
    assert np.array_equal(from_list, from_array)


def test_seed_list_with_none_keeps_those_streams() -> None:
    env = TurbofanVectorEnv(num_envs=3)
    first, _ = env.reset(seed=[1, 2, 3])
    second, _ = env.reset(seed=[1, None, 30])
    assert np.array_equal(first[0], second[0])  # same seed, same engine
    assert not np.array_equal(first[1], second[1])  # stream continued: a new engine
    twin = TurbofanEnv()
    twin.reset(seed=2)
    twin_obs, _ = twin.reset()
    assert np.array_equal(second[1], twin_obs)
    single = TurbofanEnv()
    assert np.array_equal(second[2], single.reset(seed=30)[0])


def test_unseeded_resets_continue_the_stream_deterministically() -> None:
    def episodes(env: TurbofanEnv) -> list[np.ndarray]:
        blocks = [env.reset(seed=11)[0]]
        for _ in range(3):
            blocks.append(env.reset()[0])
        return blocks

    first, second = episodes(TurbofanEnv()), episodes(TurbofanEnv())
    for one, two in zip(first, second, strict=True):
        assert np.array_equal(one, two)
    assert len({block.tobytes() for block in first}) == 4


def test_first_reset_without_seed_uses_os_entropy() -> None:
    blocks = {TurbofanEnv().reset()[0].tobytes() for _ in range(4)}
    vector = TurbofanVectorEnv(num_envs=4).reset()[0]
    assert len(blocks) == 4
    assert len({row.tobytes() for row in vector}) == 4


def test_large_and_small_seeds_are_distinct() -> None:
    obs = [TurbofanEnv().reset(seed=seed)[0].tobytes() for seed in (5, 5 + 2**64, 2**200)]
    assert len(set(obs)) == 3


# Run in this process and in a fresh interpreter: the digests must agree.
ROLLOUT = """
import hashlib
import numpy as np
from gymrpc_server.envs.turbofan import TurbofanVectorEnv

env = TurbofanVectorEnv(num_envs=16, step_size=7, expose_hidden_state=True)
digest = hashlib.sha256()
obs, _ = env.reset(seed=2024)
digest.update(obs.tobytes())
rng = np.random.default_rng(0)
for _ in range(200):
    actions = rng.choice(3, size=16, p=[0.9, 0.07, 0.03])
    obs, rewards, terminated, truncated, info = env.step(actions)
    for array in (obs, rewards, terminated, truncated, info["degradation"], info["reason"]):
        digest.update(array.tobytes())
DIGEST = digest.hexdigest()
"""


def rollout_digest() -> str:
    namespace: dict[str, object] = {}
    exec(ROLLOUT, namespace)
    return str(namespace["DIGEST"])


def test_same_seeds_same_data_in_another_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ROLLOUT + "\nprint(DIGEST)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == rollout_digest() == rollout_digest()


def test_actions_of_other_envs_do_not_matter_for_idle_engine() -> None:
    env_a = TurbofanVectorEnv(num_envs=2)
    env_b = TurbofanVectorEnv(num_envs=2)
    env_a.reset(seed=0)
    env_b.reset(seed=0)
    for step in range(30):
        out_a = env_a.step(np.array([KEEP_FLYING, step % 3]))
        out_b = env_b.step(np.array([KEEP_FLYING, (step + 1) % 3]))
        assert np.array_equal(out_a[0][0], out_b[0][0])
        assert out_a[1][0] == out_b[1][0]
