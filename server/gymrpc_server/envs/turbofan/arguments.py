"""Validation of the arguments of ``reset`` and ``step`` (seeds, options, actions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsInt, cast

import numpy as np
import numpy.typing as npt

__all__ = ["batch_actions", "check_reset_options", "check_seed", "single_action", "vector_seeds"]

_NUM_ACTIONS = 3
_EXPECTED_ACTION = "an integer action in {0, 1, 2} (0 keep flying, 1 repair, 2 sell)"


def check_seed(seed: object, name: str = "seed") -> int | None:
    """A seed: ``None`` or a non-negative integer (as Gymnasium's ``np_random`` wants)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"{name} must be None or a non-negative int, got {type(seed).__name__}: {seed!r}"
        )
    if seed < 0:
        raise ValueError(f"{name} must be None or a non-negative int, got {seed}")
    return int(seed)


def vector_seeds(seed: object, num_envs: int) -> list[int | None] | None:
    """One seed per env: ``s`` gives env i ``s + i``; a list gives one each (None: keep).

    Raises:
        TypeError: Not None, an int or a list of ints and Nones.
        ValueError: A list of the wrong length or a negative seed.
    """
    if seed is None:
        return None
    if isinstance(seed, np.ndarray) and seed.ndim == 1:
        seed = seed.tolist()
    if isinstance(seed, list | tuple):
        if len(seed) != num_envs:
            raise ValueError(
                f"If seeds are passed as a list the length must match num_envs={num_envs} "
                f"but got length={len(seed)}."
            )
        return [check_seed(value, f"seed[{index}]") for index, value in enumerate(seed)]
    first = check_seed(seed)
    assert first is not None
    return [first + index for index in range(num_envs)]


def check_reset_options(options: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A copy of the ``reset`` options (``None`` gives ``{}``); unknown keys are refused."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(
            f"options must be a dict or None, got {type(options).__name__}: {options!r}"
        )
    unknown = sorted(str(key) for key in options if key not in allowed)
    if unknown:
        accepted = ", ".join(repr(key) for key in allowed) if allowed else "none"
        raise ValueError(f"unknown reset option(s) {', '.join(unknown)}; accepted: {accepted}")
    return dict(options)


def single_action(action: object) -> int:
    """The action of a single env as an int.

    Raises:
        ValueError: Not an integer scalar in {0, 1, 2}.
    """
    integer_array = (
        isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
    )
    if not integer_array and (isinstance(action, bool) or not isinstance(action, int | np.integer)):
        raise ValueError(
            f"action must be {_EXPECTED_ACTION}, got {type(action).__name__}: {action!r}"
        )
    value = int(cast("SupportsInt", action))
    if not 0 <= value < _NUM_ACTIONS:
        raise ValueError(f"action must be {_EXPECTED_ACTION}, got {value}")
    return value


def batch_actions(actions: object, num_envs: int) -> npt.NDArray[np.int64]:
    """The actions of a batch as an int64 array of shape (num_envs,).

    Accepts an integer ndarray (``action_space.sample()``) or a list/tuple of ints.

    Raises:
        TypeError: A scalar or another type where a batch is expected.
        ValueError: Wrong length/shape, non-integer dtype, or actions out of range.
    """
    expected = f"{num_envs} actions in {{0, 1, 2}} (shape ({num_envs},), integer dtype)"
    if isinstance(actions, np.ndarray):
        array = actions
    elif isinstance(actions, list | tuple):
        try:
            array = np.asarray(actions)
        except ValueError as error:
            raise ValueError(f"actions must be {expected}, got {actions!r}") from error
    else:
        raise TypeError(
            f"actions must be a batch of {expected}, got {type(actions).__name__}: {actions!r}"
        )
    if array.ndim == 0:
        raise TypeError(f"actions must be a batch of {expected}, got the scalar {actions!r}")
    if array.shape != (num_envs,):
        raise ValueError(f"actions must be {expected}, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"actions must be {expected}, got dtype {array.dtype}: {actions!r}")
    array = array.astype(np.int64, copy=False)
    # Negative actions become huge as uint64, so one comparison checks both ends.
    if (array.view(np.uint64) >= _NUM_ACTIONS).any():
        bad = np.flatnonzero((array < 0) | (array >= _NUM_ACTIONS))
        raise ValueError(
            f"actions must be {expected}, got {array[bad].tolist()} at env indices {bad.tolist()}"
        )
    return array
