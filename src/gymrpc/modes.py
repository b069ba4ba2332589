"""Autoreset and vectorization modes between Gymnasium's names and the wire's enums."""

from __future__ import annotations

from typing import Final

from gymnasium.vector import AutoresetMode

from gymrpc.errors import InvalidArgumentError
from gymrpc.v1 import env_service_pb2 as pb

__all__ = ["autoreset_from_proto", "autoreset_to_proto"]

_TO_PROTO: Final = {
    AutoresetMode.NEXT_STEP: pb.AUTORESET_MODE_NEXT_STEP,
    AutoresetMode.SAME_STEP: pb.AUTORESET_MODE_SAME_STEP,
    AutoresetMode.DISABLED: pb.AUTORESET_MODE_DISABLED,
}
_FROM_PROTO: Final = {value: mode for mode, value in _TO_PROTO.items()}


def autoreset_to_proto(mode: AutoresetMode | str) -> pb.AutoresetMode.ValueType:
    """Return the wire value of a Gymnasium autoreset mode.

    Args:
        mode: An ``AutoresetMode`` or its value or name (``"SameStep"``, ``"SAME_STEP"``).

    Returns:
        The ``gymrpc.v1.AutoresetMode`` value.

    Raises:
        ValueError: For an unknown mode.

    >>> autoreset_to_proto("SameStep") == pb.AUTORESET_MODE_SAME_STEP
    True
    """
    if isinstance(mode, str) and not isinstance(mode, AutoresetMode):
        by_name = {m.name: m for m in AutoresetMode}
        try:
            mode = by_name[mode.upper()] if mode.upper() in by_name else AutoresetMode(mode)
        except ValueError as error:
            raise ValueError(
                f"autoreset_mode: {mode!r}; expected one of {[m.value for m in AutoresetMode]}"
            ) from error
    return _TO_PROTO[mode]


def autoreset_from_proto(value: int, field: str = "autoreset_mode") -> AutoresetMode:
    """Return the Gymnasium autoreset mode of a wire value (UNSPECIFIED is NEXT_STEP).

    Args:
        value: A ``gymrpc.v1.AutoresetMode`` value.
        field: Path of the value, for error messages.

    Returns:
        The ``AutoresetMode``.

    Raises:
        InvalidArgumentError: For a value outside the enum.
    """
    if value == pb.AUTORESET_MODE_UNSPECIFIED:
        return AutoresetMode.NEXT_STEP
    try:
        return _FROM_PROTO[pb.AutoresetMode.ValueType(value)]
    except KeyError:
        raise InvalidArgumentError(
            f"{field}: {value} is not an AutoresetMode; expected NEXT_STEP (1), "
            "SAME_STEP (2) or DISABLED (3)",
            field=field,
        ) from None
