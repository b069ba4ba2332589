"""Autoreset and vectorization modes between Gymnasium's names and the wire's enums.

The one place where ``AutoresetMode`` values and Gymnasium's ``vectorization_mode``
names (``"vector_entry_point"``, ``"sync"``) meet the protocol's enums.
"""

from __future__ import annotations

from typing import Final

from gymnasium.vector import AutoresetMode

from gymrpc.errors import InvalidArgumentError
from gymrpc.v1 import env_service_pb2 as pb

__all__ = [
    "VECTORIZATION_MODES",
    "autoreset_from_proto",
    "autoreset_to_proto",
    "vectorization_from_proto",
    "vectorization_to_proto",
]

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


_VECTORIZATION_TO_PROTO: Final = {
    None: pb.VECTORIZATION_MODE_UNSPECIFIED,
    "vector_entry_point": pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT,
    "sync": pb.VECTORIZATION_MODE_SYNC,
}
_VECTORIZATION_FROM_PROTO: Final = {value: name for name, value in _VECTORIZATION_TO_PROTO.items()}
#: The vectorization modes a client may ask for (``None`` lets the server choose).
VECTORIZATION_MODES: Final = tuple(_VECTORIZATION_TO_PROTO)


def vectorization_to_proto(name: str | None) -> pb.VectorizationMode.ValueType:
    """Return the wire value of a Gymnasium ``vectorization_mode`` name.

    Args:
        name: ``"vector_entry_point"``, ``"sync"``, or ``None`` (the server chooses).

    Raises:
        ValueError: For another name.

    >>> vectorization_to_proto("sync") == pb.VECTORIZATION_MODE_SYNC
    True
    """
    try:
        return _VECTORIZATION_TO_PROTO[name]
    except KeyError:
        raise ValueError(
            f"vectorization_mode: {name!r}; expected 'vector_entry_point', 'sync' or None"
        ) from None


def vectorization_from_proto(value: int, field: str = "vectorization_mode") -> str | None:
    """Return the Gymnasium name of a wire vectorization mode (``None`` for UNSPECIFIED).

    Raises:
        InvalidArgumentError: For a value outside the enum.
    """
    try:
        return _VECTORIZATION_FROM_PROTO[pb.VectorizationMode.ValueType(value)]
    except KeyError:
        raise InvalidArgumentError(
            f"{field}: {value} is not a VectorizationMode; expected UNSPECIFIED (0), "
            "VECTOR_ENTRY_POINT (1) or SYNC (2)",
            field=field,
        ) from None
