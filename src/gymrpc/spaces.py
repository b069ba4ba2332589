"""Gymnasium spaces to and from the wire's ``Space``, exactly.

Box (dtype, shape and per-element bounds), Discrete (n, start, dtype), MultiDiscrete
(nvec, start, dtype), MultiBinary, Dict and Tuple, nested to any depth, come back equal
to what was sent. Other spaces (Text, Sequence, Graph, OneOf) are refused with
:class:`~gymrpc.errors.UnsupportedSpaceError`.

>>> from gymnasium import spaces
>>> from gymrpc.spaces import decode_space, encode_space
>>> space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "id": spaces.Discrete(4, start=1)})
>>> decode_space(encode_space(space)) == space
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from gymrpc.errors import GymrpcError, InvalidValueError, UnsupportedSpaceError
from gymrpc.tensors import check_shape, data_type_of, decode_tensor, dtype_of, fill_tensor
from gymrpc.v1 import space_pb2, tensor_pb2

__all__ = ["decode_space", "encode_space"]

_SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, Dict or Tuple"


def encode_space(space: spaces.Space[Any], *, field: str = "space") -> space_pb2.Space:
    """Encode a Gymnasium space.

    Args:
        space: The space; Dict and Tuple may nest any supported space.
        field: Path of the space, for error messages.

    Returns:
        A new ``Space`` message.

    Raises:
        UnsupportedSpaceError: If the space (or a sub-space) is of a kind protocol v1
            does not describe.
    """
    message = space_pb2.Space()
    _fill_space(message, space, field)
    return message


def _fill_space(message: space_pb2.Space, space: spaces.Space[Any], field: str) -> None:
    if isinstance(space, spaces.Box):
        box = message.box
        box.dtype = data_type_of(space.dtype, field=field)
        box.shape[:] = space.shape
        fill_tensor(box.low, space.low, field=f"{field}.low")
        fill_tensor(box.high, space.high, field=f"{field}.high")
    elif isinstance(space, spaces.Discrete):
        discrete = message.discrete
        discrete.n = int(space.n)
        discrete.start = int(space.start)
        discrete.dtype = data_type_of(space.dtype, field=field)
    elif isinstance(space, spaces.MultiDiscrete):
        fill_tensor(message.multi_discrete.nvec, space.nvec, field=f"{field}.nvec")
        fill_tensor(message.multi_discrete.start, space.start, field=f"{field}.start")
    elif isinstance(space, spaces.MultiBinary):
        message.multi_binary.shape[:] = space.shape
        message.multi_binary.scalar_n = not isinstance(space.n, tuple)
    elif isinstance(space, spaces.Dict):
        entries = message.dict.entries
        for key, sub_space in space.spaces.items():
            if type(key) is not str:
                raise UnsupportedSpaceError(
                    f"{field}: Dict space key {key!r} is a {type(key).__name__}; "
                    "protocol v1 supports str keys only",
                    field=field,
                )
            entry = entries.add(key=key)
            _fill_space(entry.space, sub_space, f"{field}[{key!r}]")
        message.dict.SetInParent()
    elif isinstance(space, spaces.Tuple):
        for index, sub_space in enumerate(space.spaces):
            _fill_space(message.tuple.spaces.add(), sub_space, f"{field}[{index}]")
        message.tuple.SetInParent()
    else:
        raise UnsupportedSpaceError(
            f"{field}: {type(space).__name__} spaces cannot be described by protocol v1; "
            f"expected {_SUPPORTED}",
            field=field,
        )


def decode_space(message: space_pb2.Space, *, field: str = "space") -> spaces.Space[Any]:
    """Rebuild the Gymnasium space a ``Space`` message describes.

    Args:
        message: The received space.
        field: Path of the space, for error messages.

    Returns:
        A space equal to the one that was encoded.

    Raises:
        InvalidValueError: If the message is inconsistent (no kind set, bounds of the
            wrong shape or dtype, non-positive sizes, repeated Dict keys).
        InvalidTensorError: If a tensor inside is malformed.
    """
    kind = message.WhichOneof("kind")
    try:
        if kind == "box":
            return _decode_box(message.box, f"{field}.box")
        if kind == "discrete":
            return _decode_discrete(message.discrete, f"{field}.discrete")
        if kind == "multi_discrete":
            return _decode_multi_discrete(message.multi_discrete, f"{field}.multi_discrete")
        if kind == "multi_binary":
            return _decode_multi_binary(message.multi_binary, f"{field}.multi_binary")
        if kind == "dict":
            return _decode_dict(message.dict, f"{field}.dict")
        if kind == "tuple":
            return spaces.Tuple(
                tuple(
                    decode_space(sub, field=f"{field}.tuple.spaces[{index}]")
                    for index, sub in enumerate(message.tuple.spaces)
                )
            )
    except GymrpcError:
        raise
    except (AssertionError, TypeError, ValueError, OverflowError) as error:
        # Gymnasium validates its constructor arguments with asserts and TypeErrors;
        # report them as a malformed message rather than an internal failure.
        raise InvalidValueError(f"{field}: invalid {kind} space: {error}", field=field) from error
    raise InvalidValueError(
        f"{field}: no kind is set in the Space; expected exactly one of {_SUPPORTED}",
        field=field,
    )


def _decode_box(box: space_pb2.BoxSpace, field: str) -> spaces.Box:
    dtype = dtype_of(box.dtype, field=f"{field}.dtype")
    shape = tuple(box.shape)
    check_shape(shape, field=f"{field}.shape")
    bounds = []
    for name, tensor in (("low", box.low), ("high", box.high)):
        array = decode_tensor(tensor, field=f"{field}.{name}")
        if array.dtype != dtype or array.shape != shape:
            raise InvalidValueError(
                f"{field}.{name}: bounds of dtype {array.dtype} and shape {array.shape}; "
                f"expected dtype {dtype} and shape {shape} like the Box",
                field=f"{field}.{name}",
            )
        bounds.append(array)
    low, high = bounds
    if np.any(low > high):
        raise InvalidValueError(
            f"{field}: some low bounds exceed their high bounds; expected low <= high",
            field=field,
        )
    return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)


def _integer_dtype(code: int, field: str) -> np.dtype[Any]:
    dtype = dtype_of(code or tensor_pb2.DATA_TYPE_INT64, field=field)
    if dtype.kind not in "iu":
        raise InvalidValueError(
            f"{field}: {dtype} is not an integer type; expected an integer DataType",
            field=field,
        )
    return dtype


def _decode_discrete(discrete: space_pb2.DiscreteSpace, field: str) -> spaces.Discrete:
    if discrete.n <= 0:
        raise InvalidValueError(f"{field}.n: {discrete.n}; expected n > 0", field=f"{field}.n")
    dtype = _integer_dtype(discrete.dtype, f"{field}.dtype")
    return spaces.Discrete(discrete.n, start=discrete.start, dtype=dtype.type)


def _decode_multi_discrete(multi: space_pb2.MultiDiscreteSpace, field: str) -> spaces.MultiDiscrete:
    nvec = decode_tensor(multi.nvec, field=f"{field}.nvec")
    _integer_dtype(multi.nvec.dtype, f"{field}.nvec.dtype")
    if np.any(nvec <= 0):
        raise InvalidValueError(
            f"{field}.nvec: {nvec.tolist()}; expected every entry > 0", field=f"{field}.nvec"
        )
    start = np.zeros_like(nvec)
    if multi.HasField("start"):
        start = decode_tensor(multi.start, field=f"{field}.start")
        if start.shape != nvec.shape or start.dtype != nvec.dtype:
            raise InvalidValueError(
                f"{field}.start: dtype {start.dtype} and shape {start.shape}; expected "
                f"{nvec.dtype} and {nvec.shape} like nvec",
                field=f"{field}.start",
            )
    return spaces.MultiDiscrete(nvec, dtype=nvec.dtype.type, start=start)


def _decode_multi_binary(multi: space_pb2.MultiBinarySpace, field: str) -> spaces.MultiBinary:
    shape = tuple(multi.shape)
    check_shape(shape, field=f"{field}.shape")
    if not shape or min(shape) <= 0:
        raise InvalidValueError(
            f"{field}.shape: {list(shape)}; expected at least one dimension, all > 0",
            field=f"{field}.shape",
        )
    if multi.scalar_n:
        if len(shape) != 1:
            raise InvalidValueError(
                f"{field}: scalar_n with shape {list(shape)}; expected a 1-d shape",
                field=f"{field}.scalar_n",
            )
        return spaces.MultiBinary(shape[0])
    return spaces.MultiBinary(list(shape))


def _decode_dict(message: space_pb2.DictSpace, field: str) -> spaces.Dict:
    sub_spaces: dict[str, spaces.Space[Any]] = {}
    for entry in message.entries:
        if entry.key in sub_spaces:
            raise InvalidValueError(
                f"{field}: key {entry.key!r} appears more than once; keys must be unique",
                field=f"{field}.entries",
            )
        sub_spaces[entry.key] = decode_space(entry.space, field=f"{field}[{entry.key!r}]")
    return spaces.Dict(sub_spaces)
