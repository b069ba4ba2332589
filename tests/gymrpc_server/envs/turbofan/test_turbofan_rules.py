"""The rules of the game: sale, failure, shop visits, truncation and padding rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from gymnasium.vector import AutoresetMode

from gymrpc_server.envs.turbofan import (
    KEEP_FLYING,
    REASON_FAILURE,
    REASON_RUNNING,
    REASON_SOLD,
    REASON_TRUNCATED,
    REPAIR,
    SELL,
    TurbofanVectorEnv,
)

NO_HAZARD = {"hazard_base": 0.0}


@dataclasses.dataclass
class Block:
    obs: npt.NDArray[np.float32]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def rows(self) -> npt.NDArray[np.float32]:
        return self.obs[: self.info["n_valid"]]


Policy = Callable[[dict[str, Any]], int]


def play(
    step_size: int, seed: int, policy: Policy, **options: Any
) -> tuple[dict[str, Any], list[Block]]:
    """One episode of one engine: the reset info and every block."""
    env = TurbofanVectorEnv(
        step_size=step_size,
        expose_hidden_state=True,
        autoreset_mode=AutoresetMode.DISABLED,
        **options,
    )
    _, vector_info = env.reset(seed=seed)
    first = info = single(vector_info)
    blocks = []
    while True:
        obs, rewards, terminated, truncated, vector_info = env.step([policy(info)])
        info = single(vector_info)
        blocks.append(
            Block(obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info)
        )
        if terminated[0] or truncated[0]:
            return first, blocks


def single(vector_info: dict[str, Any]) -> dict[str, Any]:
    return {key: value[0] for key, value in vector_info.items() if not key.startswith("_")}


def keep_flying(info: dict[str, Any]) -> int:
    return KEEP_FLYING


def all_rows(blocks: list[Block]) -> npt.NDArray[np.float32]:
    return np.concatenate([block.rows for block in blocks])


def assert_padded(block: Block) -> None:
    """Rows after the last real one repeat it."""
    n_valid = block.info["n_valid"]
    assert 1 <= n_valid <= block.obs.shape[0]
    assert np.array_equal(
        block.obs[n_valid:], np.broadcast_to(block.obs[n_valid - 1], block.obs[n_valid:].shape)
    )


def test_reset_returns_the_initial_snapshot_repeated() -> None:
    env = TurbofanVectorEnv(num_envs=3, step_size=7)
    obs, info = env.reset(seed=3)
    assert obs.shape == (3, 7, 9)
    assert obs.dtype == np.float32
    assert np.array_equal(obs, np.repeat(obs[:, :1], 7, axis=1))
    assert obs in env.observation_space
    assert info["n_valid"].tolist() == [1, 1, 1]
    assert info["step"].tolist() == [0, 0, 0]
    assert info["reason"].tolist() == [REASON_RUNNING] * 3
    assert info["repairs"].tolist() == [0, 0, 0]
    assert not info["in_shop"].any()


def test_new_engine_observation_matches_the_specification() -> None:
    env = TurbofanVectorEnv(num_envs=2000)
    obs, _ = env.reset(seed=0)
    mean = obs[:, 0].astype(np.float64).mean(axis=0)
    new_engine = [796.73, 19381, 335.83, 1120.5, 0.372162, 1.36707e6, 3957.99, 0, 9.7]
    # DTAMB 9.7 instead of the table's 10 K shifts each sensor by B * -0.3.
    shift = np.array([2.368, 28.90, 1.278, 4.147, 0.00090, -1905, 7.420, 0, 0]) * -0.3
    np.testing.assert_allclose(mean, np.array(new_engine) + shift, rtol=2e-3, atol=0.02)
    assert np.all(obs[:, :, 7] == 0)


@pytest.mark.parametrize("repairs_before", [0, 1])
def test_sale_takes_one_substep_and_pays_the_engine_value(repairs_before: int) -> None:
    def policy(info: dict[str, Any]) -> int:
        if info["step"] == 0 and repairs_before:
            return REPAIR
        return SELL if info["step"] >= 20 else KEEP_FLYING

    _, blocks = play(10, 8, policy, params=NO_HAZARD)
    before, sale = blocks[-2], blocks[-1]
    damage, repairs = before.info["degradation"], before.info["repairs"]
    assert repairs == repairs_before
    expected = 50 + 100 * np.clip(1 - damage, 0, 1) * 0.96**repairs
    assert sale.reward == pytest.approx(expected, rel=1e-12)
    assert sale.terminated
    assert not sale.truncated
    assert sale.info["reason"] == REASON_SOLD
    assert sale.info["n_valid"] == 1
    assert sale.info["step"] == before.info["step"] + 1
    assert sale.info["degradation"] == damage  # selling does not wear the engine
    assert_padded(sale)


def test_failure_is_minus_1000_and_cuts_the_block_at_the_failing_flight() -> None:
    # One sub-step per block gives the flight-by-flight trajectory of the same engine.
    _, flights = play(1, 21, keep_flying, params=NO_HAZARD)
    failing_flight = flights[-1].info["step"]
    assert flights[-1].info["reason"] == REASON_FAILURE
    assert flights[-1].info["degradation"] >= flights[-1].info["max_degradation"]
    assert flights[-2].info["degradation"] < flights[-2].info["max_degradation"]

    _, blocks = play(10, 21, keep_flying, params=NO_HAZARD)
    failure = blocks[-1]
    assert failure.reward == -1000.0
    assert failure.terminated
    assert not failure.truncated
    assert failure.info["reason"] == REASON_FAILURE
    assert failure.info["step"] == failing_flight
    assert failure.info["n_valid"] == failing_flight - blocks[-2].info["step"]
    assert_padded(failure)
    assert np.array_equal(all_rows(blocks), all_rows(flights))


def test_random_failures_before_the_threshold() -> None:
    # With slow wear and a large hazard, engines fail well below their threshold.
    env = TurbofanVectorEnv(
        num_envs=200, expose_hidden_state=True, params={"wear_mean": 1e-3, "hazard_base": 0.02}
    )
    env.reset(seed=1)
    _, rewards, terminated, _, info = env.step(np.zeros(200, dtype=np.int64))
    assert 0.1 < terminated.mean() < 0.4
    assert np.all(rewards[terminated] == -1000.0)
    assert np.all(info["reason"][terminated] == REASON_FAILURE)
    assert np.all(info["degradation"] < info["max_degradation"])


@pytest.mark.parametrize("step_size", [1, 2, 3, 7, 10, 25, 100])
def test_block_size_does_not_change_the_trajectory(step_size: int) -> None:
    _, flights = play(1, 5, keep_flying)
    _, blocks = play(step_size, 5, keep_flying)
    assert np.array_equal(all_rows(blocks), all_rows(flights))
    assert sum(block.reward > -1000 for block in blocks) >= len(flights) // step_size - 1
    last_block = {key: value for key, value in blocks[-1].info.items() if key != "n_valid"}
    last_flight = {key: value for key, value in flights[-1].info.items() if key != "n_valid"}
    assert last_block == last_flight


def repair_first_then_try_to_sell(info: dict[str, Any]) -> int:
    """Repair at once; try to sell while the engine is in the shop (ignored), then fly."""
    if info["step"] == 0:
        return REPAIR
    return SELL if info["step"] < 10 else KEEP_FLYING


@pytest.mark.parametrize("step_size", [1, 3, 10, 25])
def test_shop_visit_lasts_ten_substeps(step_size: int) -> None:
    reset_info, blocks = play(
        step_size, 4, repair_first_then_try_to_sell, params=NO_HAZARD, max_episode_steps=60
    )
    assert not any(block.terminated for block in blocks), "actions in the shop are ignored"
    assert blocks[-1].truncated

    # Flight by flight: 10 shop days with the restored engine, then wear again.
    _, days = play(1, 4, repair_first_then_try_to_sell, params=NO_HAZARD, max_episode_steps=60)
    in_shop = [day.info["in_shop"] for day in days]
    assert in_shop == [True] * 10 + [False] * 50
    restored = days[0].info["degradation"]
    before = reset_info["degradation"]
    assert 0.08 * before + 0.01 <= restored <= 0.2 * before + 0.01 + 1e-15
    assert all(day.info["degradation"] == restored for day in days[:10])
    assert days[10].info["degradation"] > restored
    assert -700 < days[0].reward < -400
    assert all(day.reward == 0.0 for day in days[1:10])
    assert all(day.reward > 0 for day in days[10:])
    assert all(day.info["repairs"] == 1 for day in days)

    # Any block size: the same sub-steps, rewards summed per block.
    assert np.array_equal(all_rows(blocks), all_rows(days))
    for block in blocks:
        start = block.info["step"] - block.info["n_valid"]
        assert block.info["in_shop"] == in_shop[block.info["step"] - 1]
        assert block.reward == pytest.approx(
            sum(day.reward for day in days[start : block.info["step"]]), abs=1e-9
        )


def test_shop_days_show_the_restored_engine() -> None:
    _, days = play(1, 4, repair_first_then_try_to_sell, params=NO_HAZARD, max_episode_steps=30)
    _, blocks = play(10, 4, lambda info: REPAIR if info["step"] == 0 else KEEP_FLYING)
    repair_block = blocks[0]
    assert repair_block.info["in_shop"]
    assert repair_block.info["n_valid"] == 10
    assert np.array_equal(repair_block.obs, np.stack([day.obs[0] for day in days[:10]]))
    assert not blocks[1].info["in_shop"]


def test_truncation_at_max_episode_steps() -> None:
    _, blocks = play(10, 2, keep_flying, params=NO_HAZARD, max_episode_steps=25)
    assert [block.info["n_valid"] for block in blocks] == [10, 10, 5]
    last = blocks[-1]
    assert last.truncated
    assert not last.terminated
    assert last.info["reason"] == REASON_TRUNCATED
    assert last.info["step"] == 25
    assert [block.info["reason"] for block in blocks[:-1]] == [REASON_RUNNING] * 2
    assert_padded(last)


def test_failure_after_the_time_limit_does_not_happen() -> None:
    _, flights = play(1, 21, keep_flying, params=NO_HAZARD)
    failing_flight = flights[-1].info["step"]
    limit = failing_flight - 1
    _, blocks = play(10, 21, keep_flying, params=NO_HAZARD, max_episode_steps=limit)
    last = blocks[-1]
    assert last.truncated
    assert not last.terminated
    assert last.info["reason"] == REASON_TRUNCATED
    assert last.reward != -1000.0
    assert last.info["step"] == limit


def test_sale_on_the_last_substep_is_terminated_and_truncated() -> None:
    _, blocks = play(
        10,
        2,
        lambda info: SELL if info["step"] == 10 else KEEP_FLYING,
        params=NO_HAZARD,
        max_episode_steps=11,
    )
    last = blocks[-1]
    assert last.terminated
    assert last.truncated
    assert last.info["reason"] == REASON_SOLD


def test_worn_engine_earns_negative_revenue_and_sells_for_the_base_price() -> None:
    # Never fails (threshold out of reach, no hazard): D passes 1 and revenue turns negative.
    params = {"hazard_base": 0.0, "failure_threshold_mean": 5.0, "failure_threshold_max": 5.0}
    _, blocks = play(
        10, 3, lambda info: SELL if info["degradation"] > 1.2 else KEEP_FLYING, params=params
    )
    assert blocks[-2].reward < 0
    assert blocks[-1].reward == 50.0
