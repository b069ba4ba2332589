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
_SUPPORTED = "bool, int8-int64, uint8-uint64, float16, float32 or float64"


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
    arr = np.asarray(array)
    message.dtype = data_type_of(arr.dtype, field=field)
    wire_dtype = arr.dtype.newbyteorder("<")
    if arr.dtype != wire_dtype:
        arr = arr.astype(wire_dtype)
    message.shape[:] = arr.shape
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
    dtype = dtype_of(message.dtype, field=f"{field}.dtype")
    shape = tuple(message.shape)
    size = check_shape(shape, field=f"{field}.shape", max_elements=max_elements)
    data = message.data
    expected = size * dtype.itemsize
    if len(data) != expected:
        raise InvalidTensorError(
            f"{field}.data: {len(data)} bytes for shape {list(shape)} of "
            f"{tensor_pb2.DataType.Name(message.dtype)}; expected {size} elements x "
            f"{dtype.itemsize} bytes = {expected} bytes",
            field=f"{field}.data",
        )
    if dtype.kind == "b" and size:
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.max() > 1:
            raise InvalidTensorError(
                f"{field}.data: bool element {int(np.argmax(raw > 1))} is byte "
                f"{int(raw[raw > 1][0])}; bool elements must be 0 or 1",
                field=f"{field}.data",
            )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.copy() if copy else array
