"""The exogenous inputs of the model's sub-steps, derived from the counter-based normals.

Everything random in a sub-step (wear factor, flight revenue, repair cost noise, the
hazard and repair uniforms, the sensor noise ``offset + L z + sigma nu``) depends only
on the engine's episode key and the row (sub-step), and so does the ambient deviation,
an AR(1) that no action influences. So all of it is computed ahead of the dynamics,
for a block at a time, or for several blocks at a time for a lone engine, where
numpy's per-call overhead and not arithmetic is the cost: the cache changes no
number, only how many calls produce it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.params import (
    NUM_SENSORS,
    SENSOR_B,
    SENSOR_L,
    SENSOR_SIGMA,
    TurbofanParams,
)
from gymrpc_server.envs.turbofan.rng import NUM_NORMALS, NoiseSampler

__all__ = ["BlockDraws", "Draws", "transform_draws"]

Float64Array = npt.NDArray[np.float64]

# Slots of the 14 normals of a row.
_DTAMB: Final = 0
_WEAR: Final = 1
_REVENUE: Final = 2
_JITTER: Final = 3  # z_0..z_2 in slots 3..5
_MEASUREMENT: Final = slice(6, 6 + NUM_SENSORS)
_COST: Final = 13
# Slots of the 2 uniforms of a row.
_HAZARD: Final = 0
_REPAIR_FRACTION: Final = 1
# Rows drawn at once for a single engine (rounded down to whole blocks).
_LONE_ENGINE_ROWS: Final = 64
_L: Final = SENSOR_L[:, :, None, None]
_B: Final = SENSOR_B[:, None, None]
_ZERO: Final = np.zeros(())


@dataclasses.dataclass(frozen=True, slots=True)
class Draws:
    """Exogenous inputs of R consecutive rows of m engines (read-only views).

    Attributes:
        dtamb: Ambient deviation after each row, shape (m, R).
        wear_factor: ``max(0, 1 + wear_noise eps)``, shape (m, R).
        revenue: ``revenue_per_flight + revenue noise``, shape (m, R).
        cost_noise: Repair cost noise, shape (m, R).
        hazard: Uniforms compared with the failure hazard, shape (m, R).
        repair_fraction: Uniforms that give the repaired fraction rho, shape (m, R).
        sensor_noise: ``Y0 + B (dtamb - 10) + offset + L z + sigma nu``, the part of
            the sensor readings that does not depend on D, shape (7, m, R).
    """

    dtamb: Float64Array
    wear_factor: Float64Array
    revenue: Float64Array
    cost_noise: Float64Array
    hazard: Float64Array
    repair_fraction: Float64Array
    sensor_noise: Float64Array

    def rows(self, start: int, stop: int) -> Draws:
        """The draws of rows ``start:stop``."""
        return Draws(
            self.dtamb[:, start:stop],
            self.wear_factor[:, start:stop],
            self.revenue[:, start:stop],
            self.cost_noise[:, start:stop],
            self.hazard[:, start:stop],
            self.repair_fraction[:, start:stop],
            self.sensor_noise[:, :, start:stop],
        )


def transform_draws(
    normals: Float64Array,
    uniforms: Float64Array,
    params: TurbofanParams,
    *,
    sensor_base: Float64Array,
    dtamb: Float64Array,
    previous_dtamb: Float64Array | None,
    sensor_noise: Float64Array,
    scratch: Float64Array,
) -> Draws:
    """Turn standard normals and uniforms into the model's exogenous inputs.

    Args:
        normals: Standard normals, shape (14, m, R); overwritten.
        uniforms: Uniforms in (0, 1), shape (2, m, R).
        params: Model parameters.
        sensor_base: ``Y0 - 10 B + offset``, broadcastable to (7, m, R).
        dtamb: Ambient deviation of each row, shape (m, R): filled with the AR(1)
            from ``previous_dtamb``, or, when that is None, given.
        previous_dtamb: Ambient deviation before the first row, shape (m,), or None.
        sensor_noise: Output, shape (7, m, R).
        scratch: Scratch, shape (7, m, R).

    Returns:
        Views into ``normals``, ``uniforms``, ``dtamb`` and ``sensor_noise``.
    """
    scale, shift = _affine(params)
    np.multiply(normals, scale, out=normals)
    np.add(normals, shift, out=normals)
    np.maximum(normals[_WEAR], _ZERO, out=normals[_WEAR])
    if previous_dtamb is not None:
        _ambient(previous_dtamb, normals[_DTAMB], params, out=dtamb)
    np.add(sensor_base, normals[_MEASUREMENT], out=sensor_noise)
    np.multiply(_B, dtamb, out=scratch)
    np.add(sensor_noise, scratch, out=sensor_noise)
    for j in range(_L.shape[0]):
        np.multiply(_L[j], normals[_JITTER + j], out=scratch)
        np.add(sensor_noise, scratch, out=sensor_noise)
    return Draws(
        dtamb=dtamb,
        wear_factor=normals[_WEAR],
        revenue=normals[_REVENUE],
        cost_noise=normals[_COST],
        hazard=uniforms[_HAZARD],
        repair_fraction=uniforms[_REPAIR_FRACTION],
        sensor_noise=sensor_noise,
    )


def _ambient(
    previous: Float64Array, innovations: Float64Array, params: TurbofanParams, *, out: Float64Array
) -> None:
    """The clipped AR(1) of the ambient deviation over the rows, into ``out`` (m, R).

    ``innovations`` already include the mean's share ``dtamb_mean (1 - rho)``.
    """
    rho, low, high = params.dtamb_rho, params.dtamb_min, params.dtamb_max
    if out.shape[0] == 1:
        # The same IEEE operations as the array loop below, without ~1 us of numpy
        # call overhead per operation: a lone engine is latency-bound.
        value = float(previous[0])
        values = []
        for innovation in innovations[0].tolist():
            value = min(max(value * rho + innovation, low), high)
            values.append(value)
        out[0] = values
        return
    for index in range(out.shape[1]):
        current = out[:, index]
        np.multiply(previous, rho, out=current)
        np.add(current, innovations[:, index], out=current)
        np.maximum(current, low, out=current)
        np.minimum(current, high, out=current)
        previous = current


@functools.cache
def _affine(params: TurbofanParams) -> tuple[Float64Array, Float64Array]:
    """Scale and shift of each normal slot (shape (14, 1, 1) each)."""
    scale = np.ones(NUM_NORMALS)
    scale[_DTAMB] = params.dtamb_std * math.sqrt(1.0 - params.dtamb_rho**2)
    scale[_WEAR] = params.wear_noise
    scale[_REVENUE] = params.revenue_std
    scale[_MEASUREMENT] = SENSOR_SIGMA
    scale[_COST] = params.repair_cost_std
    shift = np.zeros(NUM_NORMALS)
    shift[_DTAMB] = params.dtamb_mean * (1.0 - params.dtamb_rho)
    shift[_WEAR] = 1.0
    shift[_REVENUE] = params.revenue_per_flight
    return scale[:, None, None], shift[:, None, None]


class BlockDraws:
    """The draws of each block of a batch of engines.

    With one engine, rows for several blocks are drawn at once and sliced block by
    block while the episode key stays the same; with more, each block is drawn alone
    (large arrays amortize numpy's call overhead already).

    Args:
        num_envs: Number of engines n.
        step_size: Rows per block.
        params: Model parameters.
    """

    def __init__(self, num_envs: int, step_size: int, params: TurbofanParams) -> None:
        self._step_size = step_size
        self._params = params
        self._lone = num_envs == 1
        rows = step_size * max(1, _LONE_ENGINE_ROWS // step_size) if self._lone else step_size
        self._rows = rows
        self._sampler = NoiseSampler()
        # Per engine, repeated over the rows: additions then run over long arrays.
        self._sensor_base = np.zeros((NUM_SENSORS, num_envs, rows))
        self._sensor_noise = np.empty((NUM_SENSORS, num_envs, rows))
        self._scratch = np.empty((NUM_SENSORS, num_envs, rows))
        self._dtamb = np.empty((num_envs, rows))
        self._cached: Draws | None = None
        self._cached_key = 0
        self._cached_first_row = 0

    def set_sensor_base(self, env_indices: npt.NDArray[np.intp], base: Float64Array) -> None:
        """Set ``Y0 - 10 B + offset`` (shape (7, m)) of the engines at ``env_indices``."""
        self._sensor_base[:, env_indices, :] = base[:, :, None]
        self._cached = None

    def block(
        self,
        keys: npt.NDArray[np.uint64],
        first_rows: npt.NDArray[np.int64],
        dtamb: Float64Array,
    ) -> Draws:
        """The draws of rows ``first_rows[i] ... + step_size`` of episode ``keys[i]``.

        Args:
            keys: Episode key of each engine, shape (n,).
            first_rows: First row of the block of each engine, shape (n,).
            dtamb: Ambient deviation of each engine before the block, shape (n,):
                the ambient deviation of the row before (cached rows already
                continue from it).
        """
        if self._lone:
            key, first_row = int(keys[0]), int(first_rows[0])
            cached = self._cached
            offset = first_row - self._cached_first_row
            if (
                cached is None
                or key != self._cached_key
                or offset < 0
                or offset + self._step_size > self._rows
            ):
                cached = self._draw(keys, first_rows, dtamb)
                self._cached, self._cached_key, self._cached_first_row = cached, key, first_row
                offset = 0
            return cached.rows(offset, offset + self._step_size)
        return self._draw(keys, first_rows, dtamb)

    def _draw(
        self, keys: npt.NDArray[np.uint64], first_rows: npt.NDArray[np.int64], dtamb: Float64Array
    ) -> Draws:
        normals, uniforms = self._sampler.sample(keys, first_rows, self._rows)
        return transform_draws(
            normals,
            uniforms,
            self._params,
            sensor_base=self._sensor_base,
            dtamb=self._dtamb,
            previous_dtamb=dtamb,
            sensor_noise=self._sensor_noise,
            scratch=self._scratch,
        )
