"""Python values to and from the wire's ``Value``: observations, actions, infos, options.

The mapping keeps Python and numpy types apart (``1`` stays an ``int``, ``np.int64(1)``
a numpy scalar, a tuple a tuple), because Gymnasium compares data strictly. Arrays
travel as packed tensors; only containers are walked in Python.

>>> import numpy as np
>>> from gymrpc.values import decode_value, encode_value
>>> decode_value(encode_value({"x": np.zeros(2, np.float32), "n": 3}))
{'x': array([0., 0.], dtype=float32), 'n': 3}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
from google.protobuf import struct_pb2

from gymrpc.errors import InvalidValueError
from gymrpc.tensors import DEFAULT_MAX_ELEMENTS, check_shape, decode_tensor, fill_tensor
from gymrpc.v1 import value_pb2

__all__ = [
    "decode_info",
    "decode_map",
    "decode_value",
    "encode_info",
    "encode_map",
    "encode_value",
    "fill_map",
    "fill_value",
]

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_SUPPORTED = (
    "None, bool, int, float, str, bytes, a numeric numpy array or scalar, "
    "an object array of such values, or a list, tuple or str-keyed dict of them"
)

_Filler = Callable[[value_pb2.Value, Any, str], None]


def _fill_none(message: value_pb2.Value, obj: None, field: str) -> None:
    message.null_value = struct_pb2.NULL_VALUE


def _fill_bool(message: value_pb2.Value, obj: bool, field: str) -> None:
    message.bool_value = obj


def _fill_int(message: value_pb2.Value, obj: int, field: str) -> None:
    if not _INT64_MIN <= obj <= _INT64_MAX:
        raise InvalidValueError(
            f"{field}: the int {obj} does not fit in 64 bits; expected a value in "
            f"[{_INT64_MIN}, {_INT64_MAX}]",
            field=field,
        )
    message.int_value = obj


def _fill_float(message: value_pb2.Value, obj: float, field: str) -> None:
    message.float_value = obj


def _fill_str(message: value_pb2.Value, obj: str, field: str) -> None:
    message.string_value = obj


def _fill_bytes(message: value_pb2.Value, obj: bytes, field: str) -> None:
    message.bytes_value = obj


def _fill_list(message: value_pb2.Value, obj: list[Any], field: str) -> None:
    items = message.list_value.items
    for index, item in enumerate(obj):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if not obj:
        message.list_value.SetInParent()


def _fill_tuple(message: value_pb2.Value, obj: tuple[Any, ...], field: str) -> None:
    items = message.tuple_value.items
    for index, item in enumerate(obj):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if not obj:
        message.tuple_value.SetInParent()


def _fill_dict(message: value_pb2.Value, obj: Mapping[Any, Any], field: str) -> None:
    fill_map(message.dict_value, obj, field=field)
    if not obj:
        message.dict_value.SetInParent()


def _fill_ndarray(message: value_pb2.Value, obj: np.ndarray[Any, Any], field: str) -> None:
    if obj.dtype.kind != "O":
        fill_tensor(message.array_value, obj, field=field)
        return
    target = message.object_array_value
    target.shape[:] = obj.shape
    items = target.items
    # Object arrays hold arbitrary Python objects, so there is no way around a loop;
    # they only appear for rare info keys (final_obs, final_info, strings).
    for index, item in enumerate(obj.flat):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if obj.size == 0:
        target.SetInParent()


# Exact types first (a dict lookup on the hot path); subclasses fall back to isinstance.
_FILLERS: Final[dict[type, _Filler]] = {
    type(None): _fill_none,
    bool: _fill_bool,
    int: _fill_int,
    float: _fill_float,
    str: _fill_str,
    bytes: _fill_bytes,
    list: _fill_list,
    tuple: _fill_tuple,
    dict: _fill_dict,
    np.ndarray: _fill_ndarray,
}


def fill_value(message: value_pb2.Value, obj: Any, *, field: str = "value") -> None:
    """Write a Python value into an existing ``Value`` message.

    Args:
        message: The (empty) message to fill.
        obj: The value; see the module docstring for what is supported.
        field: Path of the value in the request or response, for error messages.

    Raises:
        InvalidValueError: If ``obj`` (or something inside it) cannot be carried.
    """
    if type(obj) is np.ndarray and obj.dtype.kind != "O":
        fill_tensor(message.array_value, obj, field=field)
        return
    filler = _FILLERS.get(type(obj))
    if filler is not None:
        filler(message, obj, field)
    elif isinstance(obj, np.generic):
        if obj.dtype.kind == "O":
            raise InvalidValueError(f"{field}: numpy object scalars cannot be sent", field=field)
        fill_tensor(message.scalar_value, obj, field=field)
    elif isinstance(obj, np.ndarray):
        _fill_ndarray(message, obj, field)
    elif isinstance(obj, bool | int | float | str | bytes) and not isinstance(obj, np.generic):
        # Subclasses such as IntEnum or str-Enum travel as their base value.
        base: type = next(t for t in (bool, int, float, str, bytes) if isinstance(obj, t))
        _FILLERS[base](message, base(obj), field)
    elif isinstance(obj, Mapping):
        _fill_dict(message, obj, field)
    elif isinstance(obj, tuple):
        _fill_tuple(message, obj, field)
    elif isinstance(obj, list):
        _fill_list(message, obj, field)
    else:
        raise InvalidValueError(
            f"{field}: a value of type {type(obj).__module__}.{type(obj).__qualname__} "
            f"cannot be sent; expected {_SUPPORTED}",
            field=field,
        )


def encode_value(obj: Any, *, field: str = "value") -> value_pb2.Value:
    """Encode a Python value as a ``Value``.

    Args:
        obj: The value.
        field: Path of the value, for error messages.

    Returns:
        A new ``Value`` message.

    Raises:
        InvalidValueError: If ``obj`` cannot be carried.
    """
    message = value_pb2.Value()
    fill_value(message, obj, field=field)
    return message


def fill_map(message: value_pb2.ValueMap, obj: Mapping[Any, Any], *, field: str = "map") -> None:
    """Write a str-keyed mapping into an existing ``ValueMap``, keeping key order.

    Args:
        message: The (empty) message to fill.
        obj: The mapping.
        field: Path of the mapping, for error messages.

    Raises:
        InvalidValueError: If a key is not a ``str`` or a value cannot be carried.
    """
    entries = message.entries
    for key, item in obj.items():
        if type(key) is not str:
            raise InvalidValueError(
                f"{field}: key {key!r} is a {type(key).__name__}; expected str keys",
                field=field,
            )
        entry = entries.add(key=key)
        # Numeric arrays are nearly every entry of a vector info: skip the dispatch.
        if type(item) is np.ndarray and item.dtype.kind != "O":
            fill_tensor(entry.value.array_value, item, field=f"{field}.{key}")
        else:
            fill_value(entry.value, item, field=f"{field}.{key}")


def encode_map(obj: Mapping[Any, Any], *, field: str = "map") -> value_pb2.ValueMap:
    """Encode a str-keyed mapping as a ``ValueMap``.

    Args:
        obj: The mapping.
        field: Path of the mapping, for error messages.

    Returns:
        A new ``ValueMap`` message.
    """
    message = value_pb2.ValueMap()
    fill_map(message, obj, field=field)
    return message


def encode_info(info: Mapping[str, Any], *, field: str = "info") -> value_pb2.ValueMap:
    """Encode a Gymnasium vector info dict (masks included, as ordinary keys).

    Args:
        info: The info dict, as built by ``VectorEnv._add_info``.
        field: Path of the info, for error messages.

    Returns:
        A new ``ValueMap`` message.
    """
    return encode_map(info, field=field)


def decode_value(
    message: value_pb2.Value,
    *,
    field: str = "value",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Any:
    """Decode a ``Value`` into the Python value it carries.

    Args:
        message: The received value.
        field: Path of the value, for error messages.
        max_elements: Largest element count of any tensor or object array inside.

    Returns:
        The Python value; arrays are fresh writable copies.

    Raises:
        InvalidValueError: If no kind is set, a map repeats a key or an object array
            has the wrong number of items.
        InvalidTensorError: If a tensor inside is malformed.
        TensorTooLargeError: If a shape exceeds ``max_elements``.
    """
    kind = message.WhichOneof("kind")
    if kind == "array_value":
        return decode_tensor(message.array_value, field=field, max_elements=max_elements)
    if kind is None:
        raise InvalidValueError(
            f"{field}: no kind is set in the Value; expected exactly one", field=field
        )
    return _DECODERS[kind](message, field, max_elements)


def _decode_scalar(message: value_pb2.Value, field: str, max_elements: int) -> Any:
    tensor = message.scalar_value
    if tensor.shape:
        raise InvalidValueError(
            f"{field}: a scalar_value has shape {list(tensor.shape)}; expected an empty shape",
            field=f"{field}.shape",
        )
    array = decode_tensor(tensor, field=field, max_elements=max_elements, copy=False)
    return array[()]


def _decode_items(message: value_pb2.ValueList, field: str, max_elements: int) -> list[Any]:
    return [
        decode_value(item, field=f"{field}[{index}]", max_elements=max_elements)
        for index, item in enumerate(message.items)
    ]


def _decode_object_array(
    message: value_pb2.ObjectArray, field: str, max_elements: int
) -> np.ndarray[Any, Any]:
    shape = tuple(message.shape)
    size = check_shape(shape, field=f"{field}.shape", max_elements=max_elements)
    if size != len(message.items):
        raise InvalidValueError(
            f"{field}: object array of shape {list(shape)} has {len(message.items)} items; "
            f"expected {size}",
            field=f"{field}.items",
        )
    flat = np.empty(size, dtype=object)
    for index, item in enumerate(message.items):
        # Element assignment stores the object itself, even a tuple or an array.
        flat[index] = decode_value(item, field=f"{field}[{index}]", max_elements=max_elements)
    return flat.reshape(shape)


_Decoder = Callable[[value_pb2.Value, str, int], Any]
_DECODERS: Final[dict[str, _Decoder]] = {
    "array_value": lambda m, f, n: decode_tensor(m.array_value, field=f, max_elements=n),
    "dict_value": lambda m, f, n: decode_map(m.dict_value, field=f, max_elements=n),
    "int_value": lambda m, f, n: m.int_value,
    "float_value": lambda m, f, n: m.float_value,
    "bool_value": lambda m, f, n: m.bool_value,
    "null_value": lambda m, f, n: None,
    "string_value": lambda m, f, n: m.string_value,
    "bytes_value": lambda m, f, n: m.bytes_value,
    "scalar_value": _decode_scalar,
    "tuple_value": lambda m, f, n: tuple(_decode_items(m.tuple_value, f, n)),
    "list_value": lambda m, f, n: _decode_items(m.list_value, f, n),
    "object_array_value": lambda m, f, n: _decode_object_array(m.object_array_value, f, n),
}


def decode_map(
    message: value_pb2.ValueMap,
    *,
    field: str = "map",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, Any]:
    """Decode a ``ValueMap`` into a dict, in the sender's key order.

    Args:
        message: The received map.
        field: Path of the map, for error messages.
        max_elements: Largest element count of any tensor inside.

    Returns:
        The dict.

    Raises:
        InvalidValueError: If a key repeats, or a value is malformed.
    """
    result = {}
    for entry in message.entries:
        value = entry.value
        if value.WhichOneof("kind") == "array_value":
            # The common case in vector infos; skip the dispatch.
            result[entry.key] = decode_tensor(
                value.array_value, field=f"{field}.{entry.key}", max_elements=max_elements
            )
        else:
            result[entry.key] = decode_value(
                value, field=f"{field}.{entry.key}", max_elements=max_elements
            )
    if len(result) != len(message.entries):
        keys = [entry.key for entry in message.entries]
        duplicate = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise InvalidValueError(
            f"{field}: key {duplicate!r} appears more than once; keys must be unique",
            field=f"{field}.{duplicate}",
        )
    return result


def decode_info(
    message: value_pb2.ValueMap,
    *,
    field: str = "info",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, Any]:
    """Decode a vector info dict sent as a ``ValueMap``.

    Args:
        message: The received info.
        field: Path of the info, for error messages.
        max_elements: Largest element count of any tensor inside.

    Returns:
        The info dict with its ``_key`` masks, exactly as the sender's environment
        built it.
    """
    return decode_map(message, field=field, max_elements=max_elements)
