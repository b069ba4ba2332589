"""The sensor model: observation rows from damage, ambient deviation and sensor noise.

``y = Y0 + S1 D + S2 D^2 + B (dtamb - 10) + L z + offset + sigma nu``; the part that
does not depend on D comes precomputed from :mod:`.draws`. Readings saturate at each
sensor's measurement range (the bounds of the observation space).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.params import (
    NUM_SENSORS,
    SENSOR_HIGH,
    SENSOR_LOW,
    SENSOR_S1,
    SENSOR_S2,
)

__all__ = ["sensor_readings"]

Float64Array = npt.NDArray[np.float64]

# Sensor vectors shaped to broadcast against (sensor, engine, row) arrays.
_S1: Final = SENSOR_S1[:, None, None]
_S2: Final = SENSOR_S2[:, None, None]
_LOW: Final = SENSOR_LOW[:, None, None]
_HIGH: Final = SENSOR_HIGH[:, None, None]


def sensor_readings(
    damage: Float64Array,
    dtamb: Float64Array,
    sensor_noise: Float64Array,
    obs: npt.NDArray[np.float32],
    *,
    y: Float64Array | None = None,
) -> None:
    """Write the observation rows of sub-steps with the given D and dtamb into ``obs``.

    Sensor-major arrays, so that every operation is one long loop with a scalar per
    sensor. ``obs`` must be zero in the phase column (index 7).

    Args:
        damage: D of each row, shape (m, R).
        dtamb: Ambient deviation of each row, shape (m, R).
        sensor_noise: ``Y0 + B (dtamb - 10) + offset + L z + sigma nu``, shape (7, m, R).
        obs: Output, float32 of shape (m, R, 9).
        y: Optional scratch of shape (7, m, R).
    """
    y = np.empty_like(sensor_noise) if y is None else y
    np.multiply(_S2, damage, out=y)
    np.add(y, _S1, out=y)
    np.multiply(y, damage, out=y)
    np.add(y, sensor_noise, out=y)
    np.minimum(y, _HIGH, out=y)
    np.maximum(y, _LOW, out=y)
    obs[..., :NUM_SENSORS] = y.transpose(1, 2, 0)
    obs[..., NUM_SENSORS + 1] = dtamb
