"""Tensor codec: round trips for every DataType and rejection of malformed tensors."""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gymrpc.errors import InvalidTensorError, InvalidValueError, TensorTooLargeError
from gymrpc.tensors import data_type_of, decode_tensor, dtype_of, encode_tensor
from gymrpc.v1 import tensor_pb2

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]


def assert_same(decoded: npt.NDArray[Any], original: npt.NDArray[Any]) -> None:
    assert decoded.shape == original.shape
    assert decoded.dtype == original.dtype.newbyteorder("=")
    assert decoded.dtype.isnative
    # Compare bit patterns so that NaN payloads and signed zeros count too.
    assert decoded.tobytes() == original.astype(decoded.dtype).tobytes()


@st.composite
def arrays(draw: st.DrawFn) -> npt.NDArray[Any]:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if dtype.itemsize > 1 and draw(st.booleans()):
        dtype = dtype.newbyteorder(">")
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(dtype, shape))
    if array.ndim and draw(st.booleans()):
        # A non-contiguous view: every other element along the first axis, reversed.
        array = array[::-2]
    return array


@given(arrays())
def test_every_dtype_round_trips(array: npt.NDArray[Any]) -> None:
    message = tensor_pb2.Tensor.FromString(encode_tensor(array).SerializeToString())
    assert_same(decode_tensor(message), array)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_wire_bytes_are_little_endian_c_order(dtype: type[np.generic]) -> None:
    array = np.arange(6).reshape(2, 3).astype(dtype).T  # a Fortran-ordered view
    message = encode_tensor(array)
    assert list(message.shape) == [3, 2]
    assert (
        message.data
        == np.ascontiguousarray(array).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    )
    assert message.dtype == data_type_of(dtype)
    assert dtype_of(message.dtype) == np.dtype(dtype)


def test_scalar_and_empty_tensors() -> None:
    scalar = encode_tensor(np.float64(2.5))
    assert list(scalar.shape) == []
    assert decode_tensor(scalar)[()] == 2.5
    empty = encode_tensor(np.zeros((0, 4), np.int32))
    assert empty.data == b""
    assert decode_tensor(empty).shape == (0, 4)


def test_decoded_array_is_a_writable_copy() -> None:
    message = encode_tensor(np.arange(4, dtype=np.int64))
    decoded = decode_tensor(message)
    decoded[0] = 99
    assert decode_tensor(message)[0] == 0
    view = decode_tensor(message, copy=False)
    assert not view.flags.writeable


def test_unknown_dtype_is_rejected() -> None:
    for code in (tensor_pb2.DATA_TYPE_UNSPECIFIED, tensor_pb2.DataType.ValueType(99)):
        message = tensor_pb2.Tensor(dtype=code, shape=[1], data=b"\0")
        with pytest.raises(InvalidTensorError, match=r"actions\.dtype: unknown data type") as info:
            decode_tensor(message, field="actions")
        assert info.value.field == "actions.dtype"


def test_byte_length_must_match_shape() -> None:
    message = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[2, 3], data=b"\0" * 20)
    with pytest.raises(
        InvalidTensorError, match=r"obs\.data: 20 bytes .* expected 6 elements x 4 bytes = 24"
    ):
        decode_tensor(message, field="obs")


def test_negative_dimension_is_rejected() -> None:
    message = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_INT8, shape=[2, -1], data=b"")
    with pytest.raises(InvalidTensorError, match=r"x\.shape: dimension 1 of shape \[2, -1\] is -1"):
        decode_tensor(message, field="x")


def test_huge_shapes_are_rejected_before_allocation() -> None:
    big = 2**62
    for shape in ([big, big, big], [big], [0, big], [1 << 20, 1 << 20]):
        message = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_UINT8, shape=shape, data=b"")
        with pytest.raises(TensorTooLargeError, match="above the limit") as info:
            decode_tensor(message, field="actions", max_elements=1 << 30)
        assert isinstance(info.value, ValueError)


def test_limit_is_configurable() -> None:
    message = encode_tensor(np.zeros(11, np.uint8))
    decode_tensor(message, max_elements=11)
    with pytest.raises(TensorTooLargeError):
        decode_tensor(message, max_elements=10)


def test_bool_bytes_must_be_zero_or_one() -> None:
    message = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_BOOL, shape=[3], data=b"\x01\x00\x07")
    with pytest.raises(InvalidTensorError, match="bool element 2 is byte 7"):
        decode_tensor(message, field="mask")


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(2, np.complex64),
        np.array(["a"]),
        np.array([None], dtype=object),
        np.zeros(1, "M8[s]"),
    ],
    ids=["complex", "str", "object", "datetime"],
)
def test_unsupported_dtypes_are_rejected_on_encode(array: npt.NDArray[Any]) -> None:
    with pytest.raises(InvalidValueError, match="cannot be sent as a Tensor"):
        encode_tensor(array, field="obs")
