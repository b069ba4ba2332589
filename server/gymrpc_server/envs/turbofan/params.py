"""Model constants of the turbofan simulator and validated overrides of its scalar parameters.

The scalar parameters (wear, failure, money, shop, ambient) can be overridden per
environment through the ``params`` option; the sensor model (the ``Y0``, ``S1``, ``S2``,
``B``, ``L`` and ``SIGMA_MEAS`` vectors of the specification) is fixed.

Example:
    >>> from gymrpc_server.envs.turbofan.params import TurbofanParams
    >>> params = TurbofanParams.from_overrides({"overhaul_beta": 0.5})
    >>> params.overhaul_beta, params.wear_mean
    (0.5, 0.0081)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "NUM_SENSORS",
    "OBS_NAMES",
    "OBS_SIZE",
    "SENSOR_B",
    "SENSOR_HIGH",
    "SENSOR_L",
    "SENSOR_LOW",
    "SENSOR_S1",
    "SENSOR_S2",
    "SENSOR_SIGMA",
    "SENSOR_Y0",
    "TurbofanParams",
]


def _vector(*values: float) -> npt.NDArray[np.float64]:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


#: Names of the 9 columns of one observation row, in order.
OBS_NAMES: Final = (
    "HPC_Tout",
    "HP_Nmech",
    "HPC_Tin",
    "LPT_Tin",
    "Fuel_flow",
    "HPC_Pout_st",
    "LP_Nmech",
    "phase_type",
    "DTAMB",
)
NUM_SENSORS: Final = 7
OBS_SIZE: Final = len(OBS_NAMES)

# Sensor model y = Y0 + S1 D + S2 D^2 + B (dtamb - 10) + L z + offset + sigma nu (SI units).
SENSOR_Y0: Final = _vector(796.727, 19381.0, 335.834, 1120.50, 0.372162, 1367070.0, 3957.99)
SENSOR_S1: Final = _vector(-13.881, -266.45, -0.0259, -0.3455, -0.00017164, -55364.0, -0.0159)
SENSOR_S2: Final = _vector(1.2852, -167.69, 0.21238, 3.4152, 0.0006163, 5111.1, 0.07208)
SENSOR_B: Final = _vector(2.368, 28.90, 1.278, 4.147, 0.00090, -1905.0, 7.420)
#: Operating-point jitter loadings, shape (3, 7): row j multiplies z_j.
SENSOR_L: Final = np.array(
    [
        [2.1915, 51.634, -0.0555, -0.8074, -0.00012684, 10220.0, -0.0620],
        [0.48679, 43.164, 0.04449, 0.32206, 6.4361e-05, -0.218, 0.18546],
        [0.44679, -0.0164, 0.22851, 0.7182, 0.00015473, 5.3e-05, 1.3361],
    ],
    dtype=np.float64,
)
SENSOR_L.flags.writeable = False
SENSOR_SIGMA: Final = _vector(0.2, 5.0, 0.02, 0.1, 2e-5, 500.0, 0.1)

# Measurement ranges of the 7 sensors. Real sensors saturate, and so do ours: readings
# are clipped to these ranges, which keeps every observation inside the declared Box
# whatever the parameter overrides or policy. All bounds are exact in float32 and far
# outside anything a default engine reaches (a worn-out engine stays within a few %
# of its new-engine reading).
SENSOR_LOW: Final = _vector(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
SENSOR_HIGH: Final = _vector(2000.0, 50000.0, 1000.0, 3000.0, 10.0, 1.0e7, 20000.0)


@dataclasses.dataclass(frozen=True, slots=True)
class TurbofanParams:
    """Scalar parameters of the turbofan model (defaults are the calibrated values).

    Attributes:
        initial_damage_max: New engines start with damage D ~ U(0, this).
        wear_mean: Mean of the per-engine base wear per flight ``a``.
        wear_std: Standard deviation of ``a``.
        wear_min: Lower bound of ``a``.
        wear_noise: Relative flight-to-flight wear noise: D grows by
            ``a (1 + beta C) max(0, 1 + wear_noise eps)``.
        overhaul_beta: ``beta``: how much past overhauls (C, the sum of D^2 at each
            repair) speed up all later wear.
        failure_threshold_mean: Mean of the hidden failure threshold D_fail.
        failure_threshold_std: Standard deviation of D_fail.
        failure_threshold_min: Lower clip of D_fail.
        failure_threshold_max: Upper clip of D_fail.
        hazard_base: Random failure probability per flight of a new engine.
        hazard_damage_slope: The hazard is ``hazard_base (1 + slope D)``.
        revenue_per_flight: Revenue of a flight of a new engine (``47.5 (1 - D)``).
        revenue_std: Standard deviation of the revenue noise of a flight.
        repair_cost_base: Cost of the first repair.
        repair_cost_per_repair: Extra cost per earlier repair.
        repair_cost_std: Standard deviation of the repair cost.
        repair_fraction_min: Lower bound of the repaired fraction rho of D.
        repair_fraction_max: Upper bound of rho.
        repair_residual_damage: Permanent damage added by every repair.
        shop_days: Sub-steps a shop visit lasts (an integer).
        sale_base: Sale price of a worthless engine.
        sale_value: Extra sale price of a new engine.
        sale_discount: Sale value factor per repair (``0.96 ** k``).
        failure_reward: Reward of a block in which the engine fails.
        dtamb_mean: Mean ambient temperature deviation (K).
        dtamb_std: Stationary standard deviation of the ambient deviation (K).
        dtamb_rho: AR(1) coefficient of the ambient deviation from flight to flight.
        dtamb_min: Lower clip of the ambient deviation (K).
        dtamb_max: Upper clip of the ambient deviation (K).
        sensor_offset_scale: Manufacturing offsets are ``N(0, (scale sigma_meas)^2)``.
    """

    initial_damage_max: float = 0.02
    wear_mean: float = 0.0081
    wear_std: float = 0.0007
    wear_min: float = 1e-4
    wear_noise: float = 0.3
    overhaul_beta: float = 1.0
    failure_threshold_mean: float = 1.02
    failure_threshold_std: float = 0.07
    failure_threshold_min: float = 0.6
    failure_threshold_max: float = 1.3
    hazard_base: float = 5e-5
    hazard_damage_slope: float = 2.0
    revenue_per_flight: float = 47.5
    revenue_std: float = 3.3
    repair_cost_base: float = 510.0
    repair_cost_per_repair: float = 8.0
    repair_cost_std: float = 15.0
    repair_fraction_min: float = 0.80
    repair_fraction_max: float = 0.92
    repair_residual_damage: float = 0.01
    shop_days: float = 10.0
    sale_base: float = 50.0
    sale_value: float = 100.0
    sale_discount: float = 0.96
    failure_reward: float = -1000.0
    dtamb_mean: float = 9.7
    dtamb_std: float = 0.35
    dtamb_rho: float = 0.3
    dtamb_min: float = 9.1
    dtamb_max: float = 10.9
    sensor_offset_scale: float = 2.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names accepted by :meth:`from_overrides`, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, float] | None) -> TurbofanParams:
        """Build parameters from the defaults and a mapping of overrides.

        Args:
            overrides: Parameter name to value; ``None`` or empty keeps every default.

        Returns:
            The validated parameters.

        Raises:
            TypeError: ``overrides`` is not a mapping, or a value is not a real number.
            ValueError: An unknown name (the message lists the valid names) or a value
                out of its range.
        """
        if overrides is None:
            return cls()
        if not isinstance(overrides, Mapping):
            raise TypeError(
                f"option 'params' must be a mapping of parameter name to number or None, "
                f"got {type(overrides).__name__}: {overrides!r}"
            )
        valid = cls.names()
        values: dict[str, float] = {}
        for name, value in overrides.items():
            if name not in valid:
                raise ValueError(
                    f"option 'params' has an unknown parameter {name!r}; "
                    f"valid names are: {', '.join(valid)}"
                )
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise TypeError(
                    f"option 'params'[{name!r}] must be a real number, "
                    f"got {type(value).__name__}: {value!r}"
                )
            values[name] = float(value)
        params = dataclasses.replace(cls(), **values)
        params.validate()
        return params

    def validate(self) -> None:
        """Check every value and the relations between them.

        Raises:
            ValueError: Naming the first offending parameter, its value and the
                allowed range.
        """
        for name in self.names():
            value = getattr(self, name)
            if not math.isfinite(value):
                _reject(name, value, "a finite number")
        for name in (
            "initial_damage_max",
            "wear_std",
            "wear_noise",
            "overhaul_beta",
            "failure_threshold_std",
            "hazard_damage_slope",
            "revenue_std",
            "repair_cost_std",
            "repair_residual_damage",
            "sale_value",
            "dtamb_std",
            "sensor_offset_scale",
        ):
            if getattr(self, name) < 0:
                _reject(name, getattr(self, name), "a number >= 0")
        if self.wear_min <= 0:
            _reject("wear_min", self.wear_min, "a number > 0")
        if not 0 <= self.hazard_base <= 1:
            _reject("hazard_base", self.hazard_base, "a probability in [0, 1]")
        if not 0 < self.sale_discount <= 1:
            _reject("sale_discount", self.sale_discount, "a factor in (0, 1]")
        if not -1 < self.dtamb_rho < 1:
            _reject("dtamb_rho", self.dtamb_rho, "an AR(1) coefficient in (-1, 1)")
        if self.shop_days < 1 or self.shop_days != int(self.shop_days):
            _reject("shop_days", self.shop_days, "a whole number >= 1")
        _check_range(self, "repair_fraction_min", "repair_fraction_max", 0.0, 1.0)
        _check_range(self, "failure_threshold_min", "failure_threshold_max", 0.0, math.inf)
        if not self.dtamb_min < self.dtamb_max:
            _reject("dtamb_max", self.dtamb_max, f"a number > dtamb_min ({self.dtamb_min})")


def _check_range(params: TurbofanParams, low: str, high: str, floor: float, ceil: float) -> None:
    low_value, high_value = getattr(params, low), getattr(params, high)
    if not floor <= low_value <= ceil:
        _reject(low, low_value, f"a number in [{floor}, {ceil}]")
    if not low_value <= high_value <= ceil:
        _reject(high, high_value, f"a number in [{low} ({low_value}), {ceil}]")


def _reject(name: str, value: float, expected: str) -> None:
    raise ValueError(f"option 'params'[{name!r}] must be {expected}, got {value!r}")
