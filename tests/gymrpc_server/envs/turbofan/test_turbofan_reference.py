"""Reference equivalence: TurbofanVectorEnv == SyncVectorEnv over TurbofanEnvs, in every mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from gymrpc_server.envs.turbofan import TurbofanEnv, TurbofanVectorEnv

NUM_ENVS = 5
NUM_STEPS = 150


def assert_same(ours: Any, reference: Any, what: str) -> None:
    assert data_equivalence(ours, reference, exact=True), f"{what}:\n{ours}\n!=\n{reference}"


def make_pair(
    mode: AutoresetMode, step_size: int, hidden: bool
) -> tuple[TurbofanVectorEnv, SyncVectorEnv]:
    options: dict[str, Any] = {
        "step_size": step_size,
        "max_episode_steps": 4 * step_size + 7,
        "expose_hidden_state": hidden,
    }
    ours = TurbofanVectorEnv(num_envs=NUM_ENVS, autoreset_mode=mode, **options)
    reference = SyncVectorEnv([lambda: TurbofanEnv(**options)] * NUM_ENVS, autoreset_mode=mode)
    return ours, reference


@pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
@pytest.mark.parametrize("step_size", [3, 10])
@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_matches_sync_vector_env(mode: AutoresetMode, step_size: int, hidden: bool) -> None:
    ours, reference = make_pair(mode, step_size, hidden)
    rng = np.random.default_rng(step_size)
    assert_same(ours.reset(seed=123), reference.reset(seed=123), "first reset")
    episode_ends = 0
    for step in range(NUM_STEPS):
        actions = rng.choice(3, size=NUM_ENVS, p=[0.8, 0.12, 0.08])
        ours_out = ours.step(actions)
        reference_out = reference.step(actions)
        assert_same(ours_out, reference_out, f"step {step}")
        done = ours_out[2] | ours_out[3]
        episode_ends += int(done.sum())
        if mode is AutoresetMode.DISABLED:
            # Reset the ended envs, and now and then a few others, sometimes re-seeded.
            mask = done | (rng.random(NUM_ENVS) < 0.05)
            if mask.any():
                seeds = [
                    int(s) if rng.random() < 0.3 else None for s in rng.integers(10**6, size=5)
                ]
                options = {"reset_mask": mask}
                assert_same(
                    ours.reset(seed=seeds, options=options),
                    reference.reset(seed=seeds, options=dict(options)),
                    f"reset after step {step}",
                )
                assert options == {"reset_mask": mask}, "reset() must not modify its options"
    assert episode_ends >= 40, "the run should cover many episode ends"


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_partial_resets_match_sync_vector_env(mode: AutoresetMode) -> None:
    ours, reference = make_pair(mode, 10, hidden=True)
    assert_same(ours.reset(seed=5), reference.reset(seed=5), "first reset")
    rng = np.random.default_rng(1)
    for step in range(40):
        actions = rng.choice(3, size=NUM_ENVS, p=[0.9, 0.05, 0.05])
        ours_out = ours.step(actions)
        assert_same(ours_out, reference.step(actions), f"step {step}")
        mask = rng.random(NUM_ENVS) < (0.4 if step % 4 == 3 else 0.0)
        if mode is AutoresetMode.DISABLED:
            mask |= ours_out[2] | ours_out[3]
        if mask.any():
            assert_same(
                ours.reset(options={"reset_mask": mask}),
                reference.reset(options={"reset_mask": mask.copy()}),
                f"partial reset after step {step}",
            )
