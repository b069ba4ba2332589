"""Observation and action spaces of one turbofan environment."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from gymrpc_server.envs.turbofan.params import SENSOR_HIGH, SENSOR_LOW, TurbofanParams

__all__ = ["PHASE_CODE_MAX", "action_space", "block_observation_space"]

#: Largest flight-phase code the observation space admits (only 0, cruise, is emitted).
PHASE_CODE_MAX = 3.0


def block_observation_space(step_size: int, params: TurbofanParams) -> spaces.Box:
    """``Box((step_size, 9), float32)``: the 7 sensor ranges, the phase code and DTAMB."""
    low = np.concatenate([SENSOR_LOW, [0.0, params.dtamb_min]])
    high = np.concatenate([SENSOR_HIGH, [PHASE_CODE_MAX, params.dtamb_max]])
    return spaces.Box(
        low=np.tile(low.astype(np.float32), (step_size, 1)),
        high=np.tile(high.astype(np.float32), (step_size, 1)),
        dtype=np.float32,
    )


def action_space() -> spaces.Discrete:
    """``Discrete(3)``: 0 keep flying, 1 repair, 2 sell."""
    return spaces.Discrete(3)
