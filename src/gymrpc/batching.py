"""Client-side checks and conversions of what a user passes to reset and step.

They raise the errors Gymnasium's own vector environments raise (``TypeError`` and
``ValueError`` with the same wording), so code written for ``SyncVectorEnv`` handles
a remote environment the same way, and they turn Python lists and other dtypes into
arrays of the action space's exact dtype, which is what the wire requires.

Batches of Text, Sequence, Graph and OneOf actions are not arrays: as Gymnasium's
``batch_space`` makes them, they are tuples of one action per sub-environment (any
sequence is accepted and becomes a tuple). Whether each action lies in the space is
checked by the server, which names the sub-environment at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc.errors import InvalidActionError
from gymrpc.fieldpath import join_key

__all__ = ["batch_actions", "check_reset_mask", "check_seeds"]

# Spaces whose batches are arrays with a leading batch dimension.
_ARRAY_SPACES: Final = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
# Spaces whose batches are tuples of one value per sub-environment.
_ITEM_SPACES: Final = (spaces.Text, spaces.Sequence, spaces.Graph, spaces.OneOf)


def batch_actions(
    space: spaces.Space[Any], actions: Any, num_envs: int, field: str = "actions"
) -> Any:
    """Convert a batch of actions to the form the wire carries.

    Args:
        space: The single (unbatched) action space.
        actions: One action per sub-environment, in Gymnasium's batched form: an array
            (or a list) for Box, Discrete, MultiDiscrete and MultiBinary, a tuple (or
            any sequence) of ``num_envs`` actions for Text, Sequence, Graph and OneOf,
            and for Dict and Tuple spaces a dict or tuple of such batches.
        num_envs: The batch size.
        field: Path of the actions, for error messages.

    Returns:
        The same structure with C-contiguous arrays of shape ``(num_envs, *shape)``
        and tuples of ``num_envs`` actions.

    Raises:
        TypeError: For a scalar, a single action, or an object that is not a batch.
        InvalidActionError: (a ``ValueError``) for a wrong batch size, shape or a
            dtype that cannot be converted without changing its kind.

    Example:
        >>> from gymnasium import spaces
        >>> batch_actions(spaces.Text(3), ["ab", "c"], num_envs=2)
        ('ab', 'c')
    """
    if (
        type(actions) is np.ndarray
        and actions.dtype == space.dtype
        and actions.shape == (num_envs, *(space.shape or ()))
        and actions.flags.c_contiguous
        and isinstance(space, _ARRAY_SPACES)
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
            key: batch_actions(sub, actions[key], num_envs, join_key(field, key))
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
    if isinstance(space, _ITEM_SPACES):
        return _batch_items(space, actions, num_envs, field)
    return _batch_leaf(space, actions, num_envs, field)


def _batch_items(
    space: spaces.Space[Any], actions: Any, num_envs: int, field: str
) -> tuple[Any, ...]:
    expected = f"expected a tuple of {num_envs} actions of {space}, one per sub-environment"
    if _is_single_action(space, actions):
        raise TypeError(
            f"{field}: got a single action {_summary(actions)}; {expected} (as "
            "action_space.sample() gives)"
        )
    is_batch = type(actions) is tuple or (isinstance(actions, np.ndarray) and actions.ndim > 0)
    if not is_batch and (not isinstance(actions, Sequence) or isinstance(actions, str | bytes)):
        raise TypeError(f"{field}: got {_summary(actions)}; {expected}")
    items = tuple(actions)
    if len(items) != num_envs:
        raise InvalidActionError(
            f"{field}: {len(items)} actions for {num_envs} sub-environments; {expected}",
            field=field,
        )
    return items


def _is_single_action(space: spaces.Space[Any], actions: Any) -> bool:
    """Whether ``actions`` is plainly one action of ``space`` rather than a batch."""
    if isinstance(space, spaces.Text):
        return isinstance(actions, str)
    if isinstance(space, spaces.Graph):
        return isinstance(actions, spaces.GraphInstance)
    if isinstance(space, spaces.OneOf):
        # A OneOf action is (index, value); a batch holds such tuples, never an index.
        return (
            isinstance(actions, tuple)
            and len(actions) == 2
            and isinstance(actions[0], int | np.integer)
        )
    return False


def _summary(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a str of {len(value)} characters"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, bool | int | float | np.generic) or value is None:
        return f"{value!r} ({type(value).__name__})"
    return f"a {type(value).__name__}"


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
