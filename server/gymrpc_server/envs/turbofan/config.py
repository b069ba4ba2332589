"""Validation of the constructor options shared by ``TurbofanEnv`` and ``TurbofanVectorEnv``.

Every error names the option, the value received and what was expected, because the
server forwards these messages to remote users who cannot read the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

import numpy as np
from gymnasium.vector import AutoresetMode

from gymrpc_server.envs.turbofan.params import TurbofanParams

__all__ = [
    "MAX_EPISODE_STEPS",
    "MAX_STEP_SIZE",
    "RENDER_MODES",
    "TurbofanConfig",
    "validate_autoreset_mode",
    "validate_config",
    "validate_num_envs",
]

#: Largest ``step_size`` (sub-steps per block).
MAX_STEP_SIZE: Final = 100
#: Largest ``max_episode_steps`` (sub-steps; far beyond any engine's life).
MAX_EPISODE_STEPS: Final = 10**12
#: The accepted ``render_mode`` values besides None.
RENDER_MODES: Final = ("rgb_array",)


@dataclasses.dataclass(frozen=True, slots=True)
class TurbofanConfig:
    """Validated options of one environment (see the env classes for their meaning)."""

    step_size: int
    max_episode_steps: int
    expose_hidden_state: bool
    params: TurbofanParams
    render_mode: str | None


def validate_config(
    *,
    step_size: object,
    max_episode_steps: object,
    expose_hidden_state: object,
    params: Mapping[str, float] | None,
    render_mode: object,
) -> TurbofanConfig:
    """Check the options common to both env classes.

    Raises:
        TypeError: An option of the wrong type.
        ValueError: An option out of range, an unknown model parameter or render mode.
    """
    mode = _render_mode_option(render_mode)
    if not isinstance(expose_hidden_state, bool | np.bool_):
        raise TypeError(
            f"option 'expose_hidden_state' must be a bool, got "
            f"{type(expose_hidden_state).__name__}: {expose_hidden_state!r}"
        )
    return TurbofanConfig(
        step_size=_int_option("step_size", step_size, 1, MAX_STEP_SIZE),
        max_episode_steps=_int_option("max_episode_steps", max_episode_steps, 1, MAX_EPISODE_STEPS),
        expose_hidden_state=bool(expose_hidden_state),
        params=TurbofanParams.from_overrides(params),
        render_mode=mode,
    )


def validate_num_envs(num_envs: object) -> int:
    """Check ``num_envs`` (an int >= 1)."""
    return _int_option("num_envs", num_envs, 1, None)


def validate_autoreset_mode(autoreset_mode: object) -> AutoresetMode:
    """Check ``autoreset_mode``: an ``AutoresetMode`` or its string value."""
    if isinstance(autoreset_mode, AutoresetMode):
        return autoreset_mode
    valid = ", ".join(repr(mode.value) for mode in AutoresetMode)
    if not isinstance(autoreset_mode, str):
        raise TypeError(
            f"option 'autoreset_mode' must be an AutoresetMode or one of {valid}, got "
            f"{type(autoreset_mode).__name__}: {autoreset_mode!r}"
        )
    try:
        return AutoresetMode(autoreset_mode)
    except ValueError:
        raise ValueError(
            f"option 'autoreset_mode' must be an AutoresetMode or one of {valid}, "
            f"got {autoreset_mode!r}"
        ) from None


def _render_mode_option(value: object) -> str | None:
    if value is None:
        return None
    accepted = f"None or one of {', '.join(repr(mode) for mode in RENDER_MODES)}"
    if not isinstance(value, str):
        raise TypeError(
            f"option 'render_mode' must be {accepted}, got {type(value).__name__}: {value!r}"
        )
    if value not in RENDER_MODES:
        raise ValueError(f"option 'render_mode' must be {accepted}, got {value!r}")
    return value


def _int_option(name: str, value: object, low: int, high: int | None) -> int:
    expected = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"option {name!r} must be {expected}, got {type(value).__name__}: {value!r}"
        )
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ValueError(f"option {name!r} must be {expected}, got {number}")
    return number
