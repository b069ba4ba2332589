"""Client-side checks and conversions of what a user passes to reset and step.

They raise the errors Gymnasium's own vector environments raise (``TypeError`` and
``ValueError`` with the same wording), so code written for ``SyncVectorEnv`` handles
a remote environment the same way, and they turn Python lists and other dtypes into
arrays of the action space's exact dtype, which is what the wire requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc.errors import InvalidActionError

__all__ = ["batch_actions", "check_reset_mask", "check_seeds"]


def batch_actions(
    space: spaces.Space[Any], actions: Any, num_envs: int, field: str = "actions"
) -> Any:
    """Convert a batch of actions to arrays of the single action space's dtype.

    Args:
        space: The single (unbatched) action space.
        actions: One action per sub-environment: an array, a list, or for Dict and
            Tuple spaces a dict or tuple of such batches.
        num_envs: The batch size.
        field: Path of the actions, for error messages.

    Returns:
        The same structure with C-contiguous arrays of shape ``(num_envs, *shape)``.

    Raises:
        TypeError: For a scalar or an object that is not a batch.
        InvalidActionError: (a ``ValueError``) for a wrong batch size, shape or a
            dtype that cannot be converted without changing its kind.
    """
    if (
        type(actions) is np.ndarray
        and actions.dtype == space.dtype
        and actions.shape == (num_envs, *(space.shape or ()))
        and actions.flags.c_contiguous
        and not isinstance(space, spaces.Dict | spaces.Tuple)
    ):
        # The common case, e.g. action_space.sample() or a policy's output: as is.
        return actions
    if isinstance(space, spaces.Dict):
        if not isinstance(actions, Mapping) or set(actions) != set(space.spaces):
            got = sorted(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise InvalidActionError(
                f"{field}: got {got}; expected a dict with keys {list(space.spaces)}", field=field
            )
        return {
            key: batch_actions(sub, actions[key], num_envs, f"{field}.{key}")
            for key, sub in space.spaces.items()
        }
    if isinstance(space, spaces.Tuple):
        if not isinstance(actions, Sequence) or len(actions) != len(space.spaces):
            raise InvalidActionError(
                f"{field}: expected a tuple of {len(space.spaces)} batches", field=field
            )
        return tuple(
            batch_actions(sub, item, num_envs, f"{field}[{index}]")
            for index, (sub, item) in enumerate(zip(space.spaces, actions, strict=True))
        )
    return _batch_leaf(space, actions, num_envs, field)


def _batch_leaf(
    space: spaces.Space[Any], actions: Any, num_envs: int, field: str
) -> npt.NDArray[Any]:
    if np.isscalar(actions) or (isinstance(actions, np.ndarray) and actions.ndim == 0):
        raise TypeError(
            f"{field}: got the scalar {actions!r}; expected a batch of {num_envs} actions "
            f"(e.g. np.array([...]) with shape ({num_envs}, ...))"
        )
    array = np.asarray(actions)
    if array.dtype == object:
        raise TypeError(f"{field}: got ragged or non-numeric actions; expected numbers")
    expected = (num_envs, *(space.shape or ()))
    if array.ndim == 0 or array.shape[0] != num_envs:
        raise InvalidActionError(
            f"{field}: {array.shape[0] if array.ndim else 0} actions for {num_envs} "
            f"sub-environments; expected a batch of shape {expected}",
            field=field,
        )
    if array.shape != expected:
        raise InvalidActionError(
            f"{field}: shape {array.shape}; expected {expected} for {space}", field=field
        )
    dtype = space.dtype
    assert dtype is not None
    if array.dtype != dtype:
        if dtype.kind == "f" and array.dtype.kind == "f":
            # Floats travel as they are, as SyncVectorEnv hands them to the
            # environment: rounding float64 actions to a float32 space would change
            # the results.
            return np.ascontiguousarray(array)
        if dtype.kind == "f" and array.dtype.kind in "biu":
            return np.ascontiguousarray(array, dtype=np.float64)
        integral = np.issubdtype(dtype, np.integer)
        if (integral and array.dtype.kind not in "biu") or not np.can_cast(
            array.dtype, dtype, casting="same_kind"
        ):
            raise InvalidActionError(
                f"{field}: dtype {array.dtype} cannot be used as {dtype}, the dtype of {space}",
                field=field,
            )
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def check_seeds(
    seed: int | Sequence[int | None] | None, num_envs: int
) -> int | list[int | None] | None:
    """Validate ``reset(seed=...)`` as Gymnasium does.

    Args:
        seed: ``None``, an int, or one int-or-None per sub-environment.
        num_envs: The batch size.

    Returns:
        The seed, with a sequence turned into a list.

    Raises:
        ValueError: For a list of the wrong length or a negative seed.
        TypeError: For something that is not a seed.
    """
    if seed is None:
        return None
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed: {seed}; seeds must be non-negative")
        return int(seed)
    if not isinstance(seed, Sequence) or isinstance(seed, str | bytes):
        raise TypeError(f"seed: got {type(seed).__name__}; expected an int, a list or None")
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(
            f"If seeds are passed as a list the length must match num_envs={num_envs} but "
            f"got length={len(seeds)}."
        )
    for index, item in enumerate(seeds):
        if item is not None and (not isinstance(item, int | np.integer) or item < 0):
            raise ValueError(f"seed[{index}]: {item!r}; expected a non-negative int or None")
    return [None if item is None else int(item) for item in seeds]


def check_reset_mask(mask: Any, num_envs: int) -> npt.NDArray[np.bool_]:
    """Validate ``options["reset_mask"]`` with Gymnasium's errors and messages.

    Raises:
        TypeError: If the mask is not a numpy array or not of dtype bool.
        ValueError: If its shape is not ``(num_envs,)`` or it selects nothing.
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
    if mask.shape != (num_envs,):
        raise ValueError(
            f"`options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}"
        )
    if mask.dtype != np.bool_:
        raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
    if not np.any(mask):
        raise ValueError(
            "`options['reset_mask']` must contain a boolean array with at least one True "
            f"value, got reset_mask={mask}"
        )
    return mask
