"""Vectorized dynamics of the turbofan model: a batch of engines, one block at a time.

State lives in arrays over engines; a block of ``step_size`` sub-steps is computed for
all engines at once, and within the block over all sub-steps at once where the maths
allows: wear is a cumulative sum, the first failing flight an ``argmax``, the block
reward a cumulative sum read at the last real sub-step. The clipped AR(1) of the
ambient temperature, which no action influences, comes precomputed with the other
exogenous inputs from :mod:`.draws`.

Choices the specification leaves open:

* A flight's revenue, its failure checks (threshold and hazard) and its observation
  row use D after the flight's own wear.
* The ambient deviation moves on every sub-step: flights, shop days and the sale.
* The repair happens at the block's first sub-step, which is the first of the
  ``shop_days`` shop days; the sale is one sub-step without wear.
* A block that reaches ``max_episode_steps`` and also fails or sells is both
  terminated and truncated (as Gymnasium's ``TimeLimit`` does), with the reason of
  the termination.

Every random number comes from :mod:`.rng` at a counter given by the engine's episode
key and the sub-step, so an engine's trajectory depends only on its seed and actions.
All reductions whose rounding could depend on the array shape (``sum``, ``matmul``)
are avoided: sums are sequential ``cumsum``s, products explicit.

The model knows nothing of Gymnasium; :mod:`.vector_env` and :mod:`.env` wrap it.

Example:
    >>> import numpy as np
    >>> from gymrpc_server.envs.turbofan.model import TurbofanModel
    >>> from gymrpc_server.envs.turbofan.params import TurbofanParams
    >>> from gymrpc_server.envs.turbofan.rng import EnvStreams
    >>> model = TurbofanModel(2, step_size=10, max_episode_steps=1000, params=TurbofanParams())
    >>> everyone = np.arange(2)
    >>> rows = model.reset(everyone, EnvStreams(2).next_episode_keys(everyone, [7, 8]))
    >>> block = model.step(np.array([0, 2]))
    >>> block.obs.shape, block.terminated.tolist(), model.n_valid.tolist()
    ((2, 10, 9), [False, True], [10, 1])
"""

from __future__ import annotations

import dataclasses
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.draws import BlockDraws, Draws, transform_draws
from gymrpc_server.envs.turbofan.params import (
    NUM_SENSORS,
    OBS_SIZE,
    SENSOR_B,
    SENSOR_SIGMA,
    SENSOR_Y0,
    TurbofanParams,
)
from gymrpc_server.envs.turbofan.rng import NoiseSampler
from gymrpc_server.envs.turbofan.sensors import sensor_readings

__all__ = [
    "KEEP_FLYING",
    "REASON_FAILURE",
    "REASON_NAMES",
    "REASON_RUNNING",
    "REASON_SOLD",
    "REASON_TRUNCATED",
    "REPAIR",
    "SELL",
    "BlockResult",
    "TurbofanModel",
]

#: Action: keep flying.
KEEP_FLYING: Final = 0
#: Action: send the engine to the shop (repair).
REPAIR: Final = 1
#: Action: sell the engine, which ends the episode.
SELL: Final = 2

#: ``info["reason"]``: the episode goes on.
REASON_RUNNING: Final = 0
#: ``info["reason"]``: the engine failed (terminated, block reward ``failure_reward``).
REASON_FAILURE: Final = 1
#: ``info["reason"]``: the engine was sold (terminated).
REASON_SOLD: Final = 2
#: ``info["reason"]``: ``max_episode_steps`` sub-steps were reached (truncated).
REASON_TRUNCATED: Final = 3
#: Reason code to name.
REASON_NAMES: Final = {
    REASON_RUNNING: "running",
    REASON_FAILURE: "failure",
    REASON_SOLD: "sold",
    REASON_TRUNCATED: "truncated",
}

_T = TypeVar("_T", bound=np.generic)
Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Slots of row 0 of an episode, drawn at reset for the new engine.
_INIT_DTAMB: Final = 0
_INIT_WEAR: Final = 1
_INIT_THRESHOLD: Final = 2
_INIT_OFFSET: Final = slice(3, 3 + NUM_SENSORS)
_INIT_DAMAGE: Final = 0
# Rows 0 and 1 of an episode belong to the reset (state, then the initial snapshot);
# the sub-step that brings t to tau uses row tau + 1.
_FIRST_ROW: Final = 2


@dataclasses.dataclass(frozen=True, slots=True)
class BlockResult:
    """What one block returns for every engine (fresh arrays, owned by the caller).

    Attributes:
        obs: Observation blocks, float32 of shape (n, step_size, 9); rows after the
            last real sub-step repeat it.
        reward: Block rewards, float64 of shape (n,).
        terminated: Failed or sold, bool of shape (n,).
        truncated: ``max_episode_steps`` reached, bool of shape (n,).
    """

    obs: npt.NDArray[np.float32]
    reward: Float64Array
    terminated: BoolArray
    truncated: BoolArray


@dataclasses.dataclass(slots=True)
class _Plan:
    """What each engine does in a block, once the action of sub-step 0 is applied.

    A block where nobody is in the shop and nobody acts is ``calm``: every engine flies
    every sub-step, and all the shop and sale work is skipped (``None`` fields).
    """

    damage: Float64Array  # D at the start of the block (after a repair)
    rate: Float64Array  # wear per flight before noise, a (1 + beta C)
    first_flight: Int64Array  # sub-steps before it are shop days (all for a sale)
    calm: bool = True
    flying: BoolArray | None = None  # (n, step_size): the sub-step is a flight
    repair_cost: Float64Array | None = None
    sell: BoolArray | None = None


class TurbofanModel:
    """A batch of simulated engines (see ``turbofan.md`` for the equations).

    Public state arrays (shape (n,), read them, do not write them): ``t`` (sub-steps of
    the episode), ``repairs`` (k), ``damage`` (D), ``overhaul`` (C), ``wear_rate``
    (a), ``failure_threshold`` (D_fail), ``dtamb``, ``shop_left``, and for the last
    block (or reset) ``n_valid``, ``reason``, ``in_shop``. A block replaces them and a
    reset writes into them: copy what you keep.

    Args:
        num_envs: Number of engines n.
        step_size: Sub-steps per block.
        max_episode_steps: Sub-steps after which an episode is truncated.
        params: Model parameters.
    """

    def __init__(
        self, num_envs: int, step_size: int, max_episode_steps: int, params: TurbofanParams
    ) -> None:
        n, size = num_envs, step_size
        self.num_envs = n
        self.step_size = size
        self.max_episode_steps = max_episode_steps
        self.params = params
        self._draws = BlockDraws(n, size, params)
        self._reset_noise = NoiseSampler()
        self._rows = np.arange(n)
        self._substeps = np.arange(size)
        self._shop_days = int(params.shop_days)
        self._sensor_y0 = SENSOR_Y0 - 10.0 * SENSOR_B
        self._offset_scale = params.sensor_offset_scale * SENSOR_SIGMA
        # Constants as 0-d arrays, which numpy takes faster than Python scalars.
        self._hazard_base = np.array(params.hazard_base)
        self._hazard_slope = np.array(params.hazard_base * params.hazard_damage_slope)
        self._revenue_per_flight = np.array(params.revenue_per_flight)
        self._max_steps = np.array(max_episode_steps)
        self._size = np.array(step_size)
        self._first_row = np.array(_FIRST_ROW)

        self.damage: Float64Array = np.zeros(n)
        self.wear_rate: Float64Array = np.zeros(n)
        self.overhaul: Float64Array = np.zeros(n)
        self.repairs: Int64Array = np.zeros(n, dtype=np.int64)
        self.failure_threshold: Float64Array = np.zeros(n)
        self.dtamb: Float64Array = np.zeros(n)
        self.t: Int64Array = np.zeros(n, dtype=np.int64)
        self.shop_left: Int64Array = np.zeros(n, dtype=np.int64)
        self.episode_key = np.zeros(n, dtype=np.uint64)
        self.n_valid: Int64Array = np.ones(n, dtype=np.int64)
        self.reason = np.zeros(n, dtype=np.int8)
        self.in_shop: BoolArray = _frozen(np.zeros(n, dtype=np.bool_))
        # Wear per flight before noise, a (1 + beta C): it changes only at a repair.
        self._rate: Float64Array = np.zeros(n)
        self._anyone_in_shop = False
        self._nobody_in_shop = self.in_shop

        # Scratch arrays of the block, reused so that big batches do not page-fault.
        self._wear = np.empty((n, size + 1))
        self._revenue = np.empty((n, size))
        self._scratch = np.empty((n, size))
        self._sensors = np.empty((NUM_SENSORS, n, size))

    def reset(
        self, env_indices: npt.NDArray[np.intp], keys: npt.NDArray[np.uint64]
    ) -> npt.NDArray[np.float32]:
        """Put new engines at ``env_indices`` with episode ``keys``.

        Returns:
            Their initial observation rows, float32 of shape (m, 9).
        """
        p = self.params
        m = env_indices.shape[0]
        normals, uniforms = self._reset_noise.sample(keys, np.zeros(m, dtype=np.int64), 2)
        # Row 0 of an episode is the new engine, row 1 its initial snapshot.
        state = normals[:, :, 0]
        dtamb = np.clip(p.dtamb_mean + p.dtamb_std * state[_INIT_DTAMB], p.dtamb_min, p.dtamb_max)
        wear_rate = np.maximum(p.wear_mean + p.wear_std * state[_INIT_WEAR], p.wear_min)
        threshold = np.clip(
            p.failure_threshold_mean + p.failure_threshold_std * state[_INIT_THRESHOLD],
            p.failure_threshold_min,
            p.failure_threshold_max,
        )
        base = self._sensor_y0[:, None] + self._offset_scale[:, None] * state[_INIT_OFFSET]
        damage = p.initial_damage_max * uniforms[_INIT_DAMAGE, :, 0]
        sensor_noise = np.empty((NUM_SENSORS, m, 1))
        draws = transform_draws(
            normals[:, :, 1:],
            uniforms[:, :, 1:],
            p,
            sensor_base=base[:, :, None],
            dtamb=dtamb[:, None],
            previous_dtamb=None,
            sensor_noise=sensor_noise,
            scratch=np.empty_like(sensor_noise),
        )
        rows = np.zeros((m, 1, OBS_SIZE), dtype=np.float32)
        sensor_readings(damage[:, None], draws.dtamb, draws.sensor_noise, rows)

        self._draws.set_sensor_base(env_indices, base)
        self.damage[env_indices] = damage
        self.wear_rate[env_indices] = wear_rate
        self._rate[env_indices] = wear_rate
        self.overhaul[env_indices] = 0.0
        self.repairs[env_indices] = 0
        self.failure_threshold[env_indices] = threshold
        self.dtamb[env_indices] = dtamb
        self.t[env_indices] = 0
        self.episode_key[env_indices] = keys
        self.n_valid[env_indices] = 1
        self.reason[env_indices] = REASON_RUNNING
        if self.in_shop is not self._nobody_in_shop:
            self.in_shop[env_indices] = False
        if self._anyone_in_shop:
            self.shop_left[env_indices] = 0
            self._anyone_in_shop = bool(self.shop_left.any())
        return rows[:, 0]

    def step(self, actions: Int64Array) -> BlockResult:
        """Run one block of every engine.

        Args:
            actions: One valid action per engine (0 keep flying, 1 repair, 2 sell),
                applied at the first sub-step; ignored for engines in the shop.

        Returns:
            The block of every engine. Engines whose episode had already ended are
            stepped too (their result is meaningless); the caller resets them.
        """
        draws = self._draws.block(self.episode_key, self.t + self._first_row, self.dtamb)
        plan = self._plan(actions, draws)
        damage_seq = self._wear_out(plan, draws)
        failed, n_valid = self._find_failures(plan, damage_seq, draws)
        ends = _Ends(n_valid, self._rows, self.step_size)
        reward = self._block_reward(plan, damage_seq, draws, failed, ends)
        obs = self._observe(damage_seq, draws, ends)
        terminated, truncated = self._advance(plan, damage_seq, draws, failed, ends)
        return BlockResult(obs, reward, terminated, truncated)

    def _plan(self, actions: Int64Array, draws: Draws) -> _Plan:
        """Decide what each engine does at sub-step 0, and apply the repairs."""
        if self._anyone_in_shop:
            actions = np.where(self.shop_left > 0, KEEP_FLYING, actions)
        if not self._anyone_in_shop and not actions.any():
            return _Plan(self.damage, self._rate, self.shop_left)
        plan = _Plan(self.damage, self._rate, self.shop_left, calm=False)
        repair, sell = actions == REPAIR, actions == SELL
        if repair.any():
            self._repair(plan, repair, draws)
        if sell.any():
            plan.sell = sell
            plan.first_flight = np.where(sell, self.step_size, plan.first_flight)
        plan.flying = self._substeps >= plan.first_flight[:, None]
        return plan

    def _repair(self, plan: _Plan, repair: BoolArray, draws: Draws) -> None:
        """Apply the repairs at sub-step 0: the engine state and the plan change."""
        p = self.params
        damage, repairs = self.damage, self.repairs
        cost = p.repair_cost_base + p.repair_cost_per_repair * repairs
        cost += draws.cost_noise[:, 0]
        fraction = (
            p.repair_fraction_min
            + (p.repair_fraction_max - p.repair_fraction_min) * draws.repair_fraction[:, 0]
        )
        restored = (1.0 - fraction) * damage + p.repair_residual_damage
        self.overhaul = np.where(repair, self.overhaul + damage * damage, self.overhaul)
        self.repairs = repairs + repair
        self._rate = self.wear_rate * (1.0 + p.overhaul_beta * self.overhaul)
        plan.repair_cost = np.where(repair, cost, 0.0)
        plan.damage = np.where(repair, restored, damage)
        plan.rate = self._rate
        plan.first_flight = np.where(repair, self._shop_days, plan.first_flight)

    def _wear_out(self, plan: _Plan, draws: Draws) -> Float64Array:
        """D after each sub-step, shape (n, step_size): a sequential cumulative sum."""
        wear = self._wear
        wear[:, 0] = plan.damage
        np.multiply(draws.wear_factor, plan.rate[:, None], out=wear[:, 1:])
        if plan.flying is not None:
            np.multiply(wear[:, 1:], plan.flying, out=wear[:, 1:])
        np.add.accumulate(wear, axis=1, out=wear)
        return wear[:, 1:]

    def _find_failures(
        self, plan: _Plan, damage_seq: Float64Array, draws: Draws
    ) -> tuple[BoolArray | None, Int64Array]:
        """Engines failing in the block (None if none) and the real rows of each block."""
        # The first flight past the threshold or hit by the hazard fails.
        hazard = np.multiply(damage_seq, self._hazard_slope, out=self._scratch)
        np.add(hazard, self._hazard_base, out=hazard)
        fails = draws.hazard < hazard
        fails |= damage_seq >= self.failure_threshold[:, None]
        if plan.flying is not None:
            fails &= plan.flying
        remaining = self._max_steps - self.t
        n_valid = np.minimum(remaining, self._size)
        failed: BoolArray | None = None
        if fails.any():
            first_failure = fails.argmax(axis=1)
            # A failure after the time limit never happens.
            failed = fails.any(axis=1) & (first_failure < remaining)
            n_valid = np.where(failed, first_failure + 1, n_valid)
        if plan.sell is not None:
            n_valid = np.where(plan.sell, 1, n_valid)
        return failed, n_valid

    def _block_reward(
        self,
        plan: _Plan,
        damage_seq: Float64Array,
        draws: Draws,
        failed: BoolArray | None,
        ends: _Ends,
    ) -> Float64Array:
        """Flight revenues plus the repair cost or sale price, or the failure reward."""
        p = self.params
        revenue = np.multiply(damage_seq, self._revenue_per_flight, out=self._revenue)
        np.subtract(draws.revenue, revenue, out=revenue)
        if plan.flying is not None:
            np.multiply(revenue, plan.flying, out=revenue)
        if plan.repair_cost is not None:
            revenue[:, 0] -= plan.repair_cost
        if plan.sell is not None:
            value = np.clip(1.0 - self.damage, 0.0, 1.0) * p.sale_value
            value *= p.sale_discount ** self.repairs.astype(np.float64)
            revenue[:, 0] += np.where(plan.sell, p.sale_base + value, 0.0)
        np.add.accumulate(revenue, axis=1, out=revenue)
        reward = ends.at_last(revenue)
        if failed is not None:
            reward = np.where(failed, p.failure_reward, reward)
        if not plan.calm:
            # A block of shop days of a worn engine sums to -0.0: make it 0.0.
            reward += 0.0
        return reward

    def _observe(
        self, damage_seq: Float64Array, draws: Draws, ends: _Ends
    ) -> npt.NDArray[np.float32]:
        """The observation blocks, rows after the last real one repeating it."""
        obs = np.zeros((self.num_envs, self.step_size, OBS_SIZE), dtype=np.float32)
        sensor_readings(damage_seq, draws.dtamb, draws.sensor_noise, obs, y=self._sensors)
        if not ends.full:
            last = ends.last
            ended = np.flatnonzero(last < self.step_size - 1)
            obs[ended] = obs[ended[:, None], np.minimum(self._substeps, last[ended, None])]
        return obs

    def _advance(
        self,
        plan: _Plan,
        damage_seq: Float64Array,
        draws: Draws,
        failed: BoolArray | None,
        ends: _Ends,
    ) -> tuple[BoolArray, BoolArray]:
        """Move the state to the last real sub-step; return terminated and truncated."""
        last, n_valid = ends.last, ends.n_valid
        self.t = self.t + n_valid
        truncated = self.t >= self._max_steps
        self.damage = ends.at_last(damage_seq)
        self.dtamb = ends.at_last(draws.dtamb)
        self.n_valid = n_valid
        reason = np.where(truncated, _INT8_TRUNCATED, _INT8_RUNNING)
        sell = plan.sell
        if not plan.calm:
            in_shop = last < plan.first_flight
            if sell is not None:
                in_shop &= ~sell
                reason = np.where(sell, _INT8_SOLD, reason)
            self.in_shop = in_shop
            self.shop_left = np.maximum(plan.first_flight - n_valid, 0)
            self._anyone_in_shop = bool(self.shop_left.any())
        elif self.in_shop is not self._nobody_in_shop:
            self.in_shop = self._nobody_in_shop
        if failed is not None:
            reason = np.where(failed, _INT8_FAILURE, reason)
        self.reason = reason
        if failed is None:
            terminated = np.zeros(self.num_envs, dtype=np.bool_) if sell is None else sell
        else:
            terminated = failed if sell is None else failed | sell
        return terminated, truncated


class _Ends:
    """Where each engine's block ends: ``n_valid`` real rows, the last at ``last``."""

    __slots__ = ("full", "last", "n_valid", "rows")

    def __init__(self, n_valid: Int64Array, rows: npt.NDArray[np.intp], step_size: int) -> None:
        self.n_valid = n_valid
        self.last = n_valid - 1
        self.rows = rows
        #: Every block has all its rows: the last column is a cheap slice.
        self.full = bool(self.last.min() == step_size - 1)

    def at_last(self, per_row: Float64Array) -> Float64Array:
        """The value at each engine's last real row of an (n, step_size) array (new array)."""
        if self.full:
            return per_row[:, -1].copy()
        return per_row[self.rows, self.last]


_INT8_RUNNING: Final = np.int8(REASON_RUNNING)
_INT8_FAILURE: Final = np.int8(REASON_FAILURE)
_INT8_SOLD: Final = np.int8(REASON_SOLD)
_INT8_TRUNCATED: Final = np.int8(REASON_TRUNCATED)


def _frozen(array: npt.NDArray[_T]) -> npt.NDArray[_T]:
    array.flags.writeable = False
    return array
