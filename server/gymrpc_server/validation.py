"""Every check of what clients send, once, before anything runs.

Session ids, ``num_envs``, environment and reset options, seeds, reset masks and
actions are each checked here and nowhere else. Every check raises the gymrpc error
the protocol promises, with a message naming the field path, the value received and
what was expected. Checks of array batches (Box, Discrete, MultiDiscrete,
MultiBinary) are vectorized; batches of Text, Sequence, Graph and OneOf values are
ragged, so those are checked one sub-environment at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc.errors import (
    InvalidActionError,
    InvalidArgumentError,
    InvalidNumEnvsError,
    InvalidOptionError,
    InvalidResetMaskError,
    InvalidSeedError,
)
from gymrpc.fieldpath import join_key
from gymrpc.spaces import find_violation
from gymrpc_server.options import OptionInfo, OptionKind

__all__ = [
    "ActionChecker",
    "check_num_envs",
    "check_options",
    "check_reset_mask",
    "check_seed",
    "check_session_id",
    "per_env_seeds",
]

_SEED_LIMIT = 1 << 64
_SMALL = 64


class ActionChecker:
    """Validates batched actions against a single action space.

    Box, Discrete, MultiDiscrete and MultiBinary batches are arrays checked in one
    vectorized pass. Text, Sequence, Graph and OneOf batches are tuples of one action
    per sub-environment (Gymnasium's ``batch_space``), each checked as
    ``space.contains`` would (:func:`gymrpc.spaces.find_violation`: arrays inside, such
    as a graph's nodes, are checked with numpy, and hostile values are refused, never
    raised on); the error's field path ends with the sub-environment's index.

    Args:
        single_space: The action space of one sub-environment.
        num_envs: The batch size.

    Example:
        >>> from gymnasium import spaces
        >>> checker = ActionChecker(spaces.Discrete(3), num_envs=2)
        >>> checker.check(np.array([0, 2]))
        array([0, 2])
    """

    # Spaces whose batches are arrays with a leading batch dimension.
    _ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

    def __init__(self, single_space: spaces.Space[Any], num_envs: int) -> None:
        self._space = single_space
        self._num_envs = num_envs

    def check(self, actions: Any, field: str = "actions") -> Any:
        """Return the actions if they fit the batched space, else raise.

        Args:
            actions: Decoded actions: arrays with a leading batch dimension, or tuples
                of one action per sub-environment (Text, Sequence, Graph, OneOf), nested
                in dicts and tuples like the space.
            field: Path of the actions in the request.

        Returns:
            The actions to hand to the environment (the same object).

        Raises:
            InvalidActionError: Naming the first problem found.
        """
        self._check(self._space, actions, field)
        return actions

    def _check(self, space: spaces.Space[Any], value: Any, field: str) -> None:
        if isinstance(space, self._ARRAY_SPACES):
            array = self._array(space, value, field)
            self._check_bounds(space, array, field)
            return
        if isinstance(space, spaces.Dict):
            if not isinstance(value, dict) or list(value) != list(space.spaces):
                got = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise InvalidActionError(
                    f"{field}: got {got}; expected a dict with keys {list(space.spaces)}",
                    field=field,
                )
            for key, sub_space in space.spaces.items():
                self._check(sub_space, value[key], join_key(field, key))
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
        self._check_items(space, value, field)

    def _check_items(self, space: spaces.Space[Any], value: Any, field: str) -> None:
        # One action per sub-environment: a loop over them is unavoidable (strings,
        # sequences and graphs are ragged), and each is checked without Python loops
        # over its arrays.
        expected = f"a tuple of {self._num_envs} actions of {space}, one per sub-environment"
        if type(value) is not tuple:
            raise InvalidActionError(
                f"{field}: got {type(value).__name__}; expected {expected}", field=field
            )
        if len(value) != self._num_envs:
            raise InvalidActionError(
                f"{field}: {len(value)} actions for {self._num_envs} sub-environments; "
                f"expected {expected}",
                field=field,
            )
        for index, item in enumerate(value):
            problem = find_violation(space, item)
            if problem is not None:
                raise InvalidActionError(
                    f"{field}[{index}]: {problem}; expected an action of {space}",
                    field=f"{field}[{index}]",
                )

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
        else:  # pragma: no cover - _check sends only the array spaces here
            raise InvalidActionError(f"{field}: {space} cannot be checked", field=field)
        if inside.all():
            return
        # argmax finds the first offender without listing them all (argwhere would,
        # with memory proportional to a hostile batch).
        bad = np.unravel_index(int(np.argmax(~inside)), inside.shape)
        env_index, element = int(bad[0]), tuple(int(i) for i in bad[1:])
        path = f"{field}[{env_index}]"
        at = f" at element {element}" if element else ""
        raise InvalidActionError(
            f"{path}: {array[tuple(bad)].item()!r}{at} is outside {space}; expected {expected}",
            field=path,
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


def check_session_id(session_id: str, field: str = "session_id") -> None:
    """Refuse an empty session id (INVALID_ARGUMENT, not NOT_FOUND: it names nothing).

    Raises:
        InvalidArgumentError: If ``session_id`` is empty.
    """
    if not session_id:
        raise InvalidArgumentError(
            f"{field}: empty; expected the id of one of your sessions (CreateSession returns it)",
            field=field,
        )


def check_num_envs(num_envs: int, field: str = "num_envs") -> None:
    """Refuse a batch without sub-environments.

    Raises:
        InvalidNumEnvsError: If ``num_envs`` is below 1.
    """
    if num_envs < 1:
        raise InvalidNumEnvsError(f"{field}: {num_envs}; expected at least 1", field=field)


_EXPECTED: dict[OptionKind, tuple[type, str]] = {
    OptionKind.BOOL: (bool, "a bool"),
    OptionKind.INT: (int, "an int"),
    OptionKind.FLOAT: (float, "a float"),
    OptionKind.STRING: (str, "a string"),
    OptionKind.DICT: (dict, "a dict"),
}


def _check_option_value(option: OptionInfo, value: Any, field: str) -> Any:
    expected = _EXPECTED.get(option.kind)
    if value is None:
        if option.nullable:
            return None
        raise InvalidOptionError(
            f"{field}: got None; expected {expected[1] if expected else 'a value'}",
            field=field,
        )
    if expected is None:  # OptionKind.ANY: the environment validates it
        return value
    if option.kind is OptionKind.FLOAT and type(value) is int:
        return float(value)
    if type(value) is not expected[0]:
        raise InvalidOptionError(
            f"{field}: got {type(value).__name__} {value!r}; expected {expected[1]}",
            field=field,
        )
    return value


def check_options(
    given: Mapping[str, Any],
    accepted: Mapping[str, OptionInfo],
    *,
    env_id: str,
    field: str = "env_options",
) -> dict[str, Any]:
    """Validate environment options by name and type.

    Args:
        given: Decoded option values from the request.
        accepted: What the environment accepts.
        env_id: The environment, for error messages.
        field: Field path of the options in the request.

    Returns:
        The options with values converted where the protocol allows it (an int given
        for a float option becomes a float).

    Raises:
        InvalidOptionError: For an unknown name or a value of the wrong type.
    """
    checked: dict[str, Any] = {}
    for name, value in given.items():
        path = join_key(field, name)
        option = accepted.get(name)
        if option is None:
            known = ", ".join(sorted(accepted)) or "none"
            raise InvalidOptionError(
                f"{path}: {env_id} has no option {name!r}; expected one of: {known}",
                field=path,
            )
        checked[name] = _check_option_value(option, value, path)
    return checked
