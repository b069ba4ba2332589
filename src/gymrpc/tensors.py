"""numpy arrays to and from the wire's ``Tensor``: raw little-endian bytes, C order.

Encoding is one ``tobytes`` copy; decoding is ``np.frombuffer`` (a view on the received
bytes) and, by default, one copy so that users get ordinary writable arrays. Nothing
goes through Python lists.

>>> import numpy as np
>>> from gymrpc.tensors import decode_tensor, encode_tensor
>>> decode_tensor(encode_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))).shape
(2, 3)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from gymrpc.errors import InvalidTensorError, InvalidValueError, TensorTooLargeError
from gymrpc.v1 import tensor_pb2

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "check_shape",
    "data_type_of",
    "decode_tensor",
    "dtype_of",
    "encode_tensor",
    "fill_tensor",
]

#: Largest element count accepted when decoding unless the caller says otherwise
#: (2**31: 8 GiB of float32, far above any sane message and below any overflow).
DEFAULT_MAX_ELEMENTS: Final = 1 << 31

# Wire type <-> little-endian numpy dtype. The wire fixes little-endian; on the
# (little-endian) hosts we run on these dtypes are also the native ones.
DataTypeValue: TypeAlias = tensor_pb2.DataType.ValueType
_DTYPE_BY_CODE: Final[dict[DataTypeValue, np.dtype[Any]]] = {
    tensor_pb2.DATA_TYPE_BOOL: np.dtype("|b1"),
    tensor_pb2.DATA_TYPE_INT8: np.dtype("|i1"),
    tensor_pb2.DATA_TYPE_INT16: np.dtype("<i2"),
    tensor_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    tensor_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
    tensor_pb2.DATA_TYPE_UINT8: np.dtype("|u1"),
    tensor_pb2.DATA_TYPE_UINT16: np.dtype("<u2"),
    tensor_pb2.DATA_TYPE_UINT32: np.dtype("<u4"),
    tensor_pb2.DATA_TYPE_UINT64: np.dtype("<u8"),
    tensor_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    tensor_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}
# Keyed by (kind, itemsize) so that byte order and platform aliases ('l' vs 'q') do
# not matter when looking up the wire type of an array.
_CODE_BY_KIND_SIZE: Final[dict[tuple[str, int], DataTypeValue]] = {
    (dtype.kind, dtype.itemsize): code for code, dtype in _DTYPE_BY_CODE.items()
}
# The same, keyed by numpy's type number: one dict lookup on the hot path. Platform
# aliases (int64 is 'l' or 'q') have distinct numbers, so every alias is listed.
_CODE_BY_NUM: Final[dict[int, DataTypeValue]] = {
    np.dtype(char).num: _CODE_BY_KIND_SIZE[(np.dtype(char).kind, np.dtype(char).itemsize)]
    for char in "?bhilqBHILQefd"
    if (np.dtype(char).kind, np.dtype(char).itemsize) in _CODE_BY_KIND_SIZE
}
_LITTLE_ENDIAN_HOST: Final = sys.byteorder == "little"
_SUPPORTED = "bool, int8-int64, uint8-uint64, float16, float32 or float64"
# Decoding a (dtype, shape) seen before skips shape validation: what remains per tensor
# is one dict lookup, a length check and numpy's frombuffer. Bounded so that hostile
# shapes cannot grow it.
_LAYOUTS: dict[tuple[int, int, tuple[int, ...]], tuple[np.dtype[Any], int]] = {}
_LAYOUT_CACHE_SIZE: Final = 4096
_BOOL_BYTES: Final = bytes([0, 1])


def data_type_of(dtype: npt.DTypeLike, *, field: str = "tensor") -> DataTypeValue:
    """Return the wire ``DataType`` of a numpy dtype.

    Args:
        dtype: A numpy dtype (or anything ``np.dtype`` accepts).
        field: Name of the field being encoded, for the error message.

    Returns:
        The ``gymrpc.v1.DataType`` enum value.

    Raises:
        InvalidValueError: If the dtype has no wire type (complex, strings, objects...).
    """
    np_dtype = np.dtype(dtype)
    code = _CODE_BY_KIND_SIZE.get((np_dtype.kind, np_dtype.itemsize))
    if code is None:
        raise InvalidValueError(
            f"{field}: numpy dtype {np_dtype} cannot be sent as a Tensor; expected {_SUPPORTED}",
            field=field,
        )
    return code


def dtype_of(code: int, *, field: str = "tensor.dtype") -> np.dtype[Any]:
    """Return the numpy dtype of a wire ``DataType``.

    Args:
        code: A ``gymrpc.v1.DataType`` enum value.
        field: Name of the field being decoded, for the error message.

    Returns:
        The little-endian numpy dtype.

    Raises:
        InvalidTensorError: If ``code`` is unspecified or unknown.
    """
    value = tensor_pb2.DataType.ValueType(code)
    dtype = _DTYPE_BY_CODE.get(value)
    if dtype is None:
        known = value in tensor_pb2.DataType.values()
        name = tensor_pb2.DataType.Name(value) if known else code
        raise InvalidTensorError(
            f"{field}: unknown data type {name}; expected one of DATA_TYPE_BOOL, "
            "DATA_TYPE_INT8..INT64, DATA_TYPE_UINT8..UINT64, DATA_TYPE_FLOAT16/32/64",
            field=field,
        )
    return dtype


def fill_tensor(message: tensor_pb2.Tensor, array: npt.ArrayLike, *, field: str = "tensor") -> None:
    """Write an array into an existing ``Tensor`` message (avoids a message copy).

    Args:
        message: The (empty) message to fill, typically a sub-message field.
        array: Any array-like of a supported dtype; big-endian and non-contiguous
            inputs are converted.
        field: Name of the field being encoded, for error messages.

    Raises:
        InvalidValueError: If the dtype has no wire type.
    """
    arr = array if type(array) is np.ndarray else np.asarray(array)
    dtype = arr.dtype
    code = _CODE_BY_NUM.get(dtype.num)
    if code is None:
        code = data_type_of(dtype, field=field)
    if not (dtype.isnative and _LITTLE_ENDIAN_HOST) and dtype.byteorder != "|":
        arr = arr.astype(dtype.newbyteorder("<"))
    message.dtype = code
    message.shape.extend(arr.shape)
    # tobytes() always emits C order, whatever the array's strides.
    message.data = arr.tobytes()


def encode_tensor(array: npt.ArrayLike, *, field: str = "tensor") -> tensor_pb2.Tensor:
    """Encode an array as a ``Tensor``.

    Args:
        array: Any array-like of a supported dtype.
        field: Name of the field being encoded, for error messages.

    Returns:
        A new ``Tensor`` message.

    Raises:
        InvalidValueError: If the dtype has no wire type.
    """
    message = tensor_pb2.Tensor()
    fill_tensor(message, array, field=field)
    return message


def check_shape(
    shape: Sequence[int], *, field: str, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> int:
    """Validate a declared shape before anything is allocated for it.

    Args:
        shape: The dimensions, outermost first.
        field: Name of the field, for error messages.
        max_elements: Largest element count, and largest single dimension, accepted.

    Returns:
        The number of elements.

    Raises:
        InvalidTensorError: If a dimension is negative.
        TensorTooLargeError: If a dimension or the element count exceeds the limit.
    """
    size = 1
    for axis, dim in enumerate(shape):
        if dim < 0:
            raise InvalidTensorError(
                f"{field}: dimension {axis} of shape {list(shape)} is {dim}; "
                "dimensions must be >= 0",
                field=field,
            )
        # Python ints do not overflow; checking each step keeps the numbers small.
        size *= dim
        if dim > max_elements or size > max_elements:
            raise TensorTooLargeError(
                f"{field}: shape {list(shape)} declares more than {max_elements} elements; "
                "this is above the limit",
                field=field,
            )
    return size


def decode_tensor(
    message: tensor_pb2.Tensor,
    *,
    field: str = "tensor",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    copy: bool = True,
) -> npt.NDArray[Any]:
    """Decode a ``Tensor`` into a numpy array, checking every encoding rule.

    Args:
        message: The received tensor.
        field: Name of the field being decoded, for error messages.
        max_elements: Largest element count accepted.
        copy: Return a writable copy (the default). With ``False`` the result is a
            read-only view on the message's bytes, for callers that only read it.

    Returns:
        An array with the tensor's dtype (native byte order) and shape.

    Raises:
        InvalidTensorError: If the dtype is unknown, a dimension is negative, the byte
            length does not match the shape, or a bool byte is neither 0 nor 1.
        TensorTooLargeError: If the shape exceeds ``max_elements``.
    """
    shape = tuple(message.shape)
    key = (message.dtype, max_elements, shape)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _layout(message.dtype, shape, field, max_elements)
        if len(_LAYOUTS) < _LAYOUT_CACHE_SIZE:
            _LAYOUTS[key] = layout
    dtype, nbytes = layout
    data = message.data
    if len(data) != nbytes:
        size = nbytes // dtype.itemsize
        raise InvalidTensorError(
            f"{field}.data: {len(data)} bytes for shape {list(shape)} of "
            f"{tensor_pb2.DataType.Name(message.dtype)}; expected {size} elements x "
            f"{dtype.itemsize} bytes = {nbytes} bytes",
            field=f"{field}.data",
        )
    if dtype.kind == "b" and data.translate(None, _BOOL_BYTES):
        raw = np.frombuffer(data, dtype=np.uint8)
        bad = int(np.argmax(raw > 1))
        raise InvalidTensorError(
            f"{field}.data: bool element {bad} is byte {int(raw[bad])}; bool elements must "
            "be 0 or 1",
            field=f"{field}.data",
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.copy() if copy else array


def _layout(
    code: int, shape: tuple[int, ...], field: str, max_elements: int
) -> tuple[np.dtype[Any], int]:
    dtype = dtype_of(code, field=f"{field}.dtype")
    size = check_shape(shape, field=f"{field}.shape", max_elements=max_elements)
    return dtype, size * dtype.itemsize
