"""Checks of what clients send, against the session's spaces, before anything runs.

Every check raises the gymrpc error the protocol promises, with a message naming the
field, the value received and what was expected. All checks are vectorized over the
batch: their cost does not grow with a Python loop over sub-environments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc.errors import InvalidActionError, InvalidResetMaskError, InvalidSeedError

__all__ = ["ActionChecker", "check_reset_mask", "check_seed", "per_env_seeds"]

_SEED_LIMIT = 1 << 64
_SMALL = 64


class ActionChecker:
    """Validates batched actions against a single action space.

    Args:
        single_space: The action space of one sub-environment.
        num_envs: The batch size.

    Example:
        >>> from gymnasium import spaces
        >>> checker = ActionChecker(spaces.Discrete(3), num_envs=2)
        >>> checker.check(np.array([0, 2]))
        array([0, 2])
    """

    def __init__(self, single_space: spaces.Space[Any], num_envs: int) -> None:
        self._space = single_space
        self._num_envs = num_envs

    def check(self, actions: Any, field: str = "actions") -> Any:
        """Return the actions if they fit the batched space, else raise.

        Args:
            actions: Decoded actions: arrays with a leading batch dimension, nested in
                dicts and tuples like the space.
            field: Path of the actions in the request.

        Returns:
            The same actions.

        Raises:
            InvalidActionError: Naming the first problem found.
        """
        self._check(self._space, actions, field)
        return actions

    def _check(self, space: spaces.Space[Any], value: Any, field: str) -> None:
        if isinstance(space, spaces.Dict):
            if not isinstance(value, dict) or list(value) != list(space.spaces):
                got = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise InvalidActionError(
                    f"{field}: got {got}; expected a dict with keys {list(space.spaces)}",
                    field=field,
                )
            for key, sub_space in space.spaces.items():
                self._check(sub_space, value[key], f"{field}.{key}")
            return
        if isinstance(space, spaces.Tuple):
            if not isinstance(value, tuple) or len(value) != len(space.spaces):
                got = f"{len(value)} items" if isinstance(value, tuple) else type(value).__name__
                raise InvalidActionError(
                    f"{field}: got {got}; expected a tuple of {len(space.spaces)} items",
                    field=field,
                )
            for index, sub_space in enumerate(space.spaces):
                self._check(sub_space, value[index], f"{field}[{index}]")
            return
        array = self._array(space, value, field)
        self._check_bounds(space, array, field)

    def _array(self, space: spaces.Space[Any], value: Any, field: str) -> npt.NDArray[Any]:
        if not isinstance(value, np.ndarray):
            raise InvalidActionError(
                f"{field}: got {type(value).__name__}; expected an array of {space}",
                field=field,
            )
        shape = (self._num_envs, *(space.shape or ()))
        if value.shape[:1] != shape[:1]:
            count = value.shape[0] if value.ndim else "a scalar instead of"
            raise InvalidActionError(
                f"{field}: {count} actions for {self._num_envs} sub-environments; "
                f"expected shape {shape}",
                field=field,
            )
        if value.shape != shape:
            raise InvalidActionError(
                f"{field}: shape {value.shape}; expected {shape} ({self._num_envs} actions "
                f"of {space})",
                field=field,
            )
        # Float spaces take any float dtype, passed on unchanged, as SyncVectorEnv
        # passes a user's float64 actions to a float32 Box environment.
        float_ok = space.dtype is not None and space.dtype.kind == "f" and value.dtype.kind == "f"
        if value.dtype != space.dtype and not float_ok:
            raise InvalidActionError(
                f"{field}: dtype {value.dtype}; expected {space.dtype}, the dtype of {space}",
                field=field,
            )
        return value

    def _check_bounds(self, space: spaces.Space[Any], array: npt.NDArray[Any], field: str) -> None:
        if isinstance(space, spaces.Discrete) and array.size <= _SMALL:
            # Small batches: Python's min/max over a list beat three numpy calls.
            values = array.tolist()
            low, high = int(space.start), int(space.start + space.n)
            if low <= min(values) and max(values) < high:
                return
        if isinstance(space, spaces.Box):
            inside = (array >= space.low) & (array <= space.high)
            expected = "values within the Box's [low, high] bounds (NaN is never allowed)"
        elif isinstance(space, spaces.Discrete):
            inside = (array >= space.start) & (array < space.start + space.n)
            expected = f"{space.start} <= action < {space.start + space.n}"
        elif isinstance(space, spaces.MultiDiscrete):
            inside = (array >= space.start) & (array < space.start + space.nvec)
            expected = "start <= action < start + nvec element-wise"
        elif isinstance(space, spaces.MultiBinary):
            inside = (array == 0) | (array == 1)
            expected = "0 or 1"
        else:  # pragma: no cover - spaces.py refuses other spaces at session creation
            raise InvalidActionError(f"{field}: {space} cannot be checked", field=field)
        if inside.all():
            return
        bad = np.argwhere(~inside)[0]
        env_index, element = int(bad[0]), tuple(int(i) for i in bad[1:])
        where = f"[{env_index}]" + (f" at element {element}" if element else "")
        raise InvalidActionError(
            f"{field}{where} is {array[tuple(bad)].item()!r}, outside {space}; expected {expected}",
            field=f"{field}[{env_index}]",
        )


def check_reset_mask(mask: npt.NDArray[Any], num_envs: int, field: str = "reset_mask") -> None:
    """Validate a reset mask as Gymnasium does, with protocol errors.

    Args:
        mask: The decoded mask.
        num_envs: The batch size.
        field: Path of the mask in the request.

    Raises:
        InvalidResetMaskError: If the mask is not bool, not of shape (num_envs,), or
            selects nothing.
    """
    if mask.dtype != np.bool_:
        raise InvalidResetMaskError(f"{field}: dtype {mask.dtype}; expected bool", field=field)
    if mask.shape != (num_envs,):
        raise InvalidResetMaskError(
            f"{field}: shape {mask.shape}; expected ({num_envs},)", field=field
        )
    if not mask.any():
        raise InvalidResetMaskError(
            f"{field}: all {num_envs} entries are false; expected at least one true",
            field=field,
        )


def check_seed(seed: int, num_envs: int, field: str = "seed") -> None:
    """Check that ``seed + i`` fits in 64 bits for every sub-environment ``i``.

    Args:
        seed: The base seed.
        num_envs: The batch size.
        field: Path of the seed in the request.

    Raises:
        InvalidSeedError: If the last sub-environment's seed would overflow.
    """
    if seed + num_envs - 1 >= _SEED_LIMIT:
        raise InvalidSeedError(
            f"{field}: {seed} + {num_envs - 1} does not fit in 64 bits; expected "
            f"seed <= {_SEED_LIMIT - num_envs}",
            field=field,
        )


def per_env_seeds(
    values: npt.NDArray[Any],
    present: npt.NDArray[Any] | None,
    num_envs: int,
    field: str = "seeds",
) -> list[int | None]:
    """Turn decoded per-environment seeds into Gymnasium's list form.

    Args:
        values: uint64 array of shape (num_envs,).
        present: Optional bool array of shape (num_envs,); False means no new seed.
        num_envs: The batch size.
        field: Path of the seeds in the request.

    Returns:
        One ``int`` or ``None`` per sub-environment.

    Raises:
        InvalidSeedError: If dtypes or shapes are wrong.
    """
    if values.dtype != np.uint64 or values.shape != (num_envs,):
        raise InvalidSeedError(
            f"{field}.values: dtype {values.dtype} and shape {values.shape}; expected "
            f"uint64 of shape ({num_envs},)",
            field=f"{field}.values",
        )
    if present is None:
        return [int(seed) for seed in values.tolist()]
    if present.dtype != np.bool_ or present.shape != (num_envs,):
        raise InvalidSeedError(
            f"{field}.present: dtype {present.dtype} and shape {present.shape}; expected "
            f"bool of shape ({num_envs},)",
            field=f"{field}.present",
        )
    return [
        int(seed) if used else None
        for seed, used in zip(values.tolist(), present.tolist(), strict=True)
    ]
