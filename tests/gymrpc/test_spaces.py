"""Space codec: every supported kind round-trips exactly; others are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given
from hypothesis import strategies as st

from gymrpc.errors import InvalidTensorError, InvalidValueError, UnsupportedSpaceError
from gymrpc.spaces import decode_space, encode_space
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import space_pb2, tensor_pb2

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def boxes(draw: st.DrawFn) -> spaces.Box:
    shape: tuple[int, ...] = draw(shapes)
    dtype: Any
    low: Any
    high: Any
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
        low = draw(st.sampled_from([-np.inf, -1.0, 0.0]))
        high = draw(st.sampled_from([np.inf, 1.0, 2.5]))
        if draw(st.booleans()):
            # Per-element bounds.
            low = np.linspace(-3, -1, num=int(np.prod(shape))).reshape(shape).astype(dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    dtype = draw(st.sampled_from(INT_DTYPES))
    return spaces.Box(0, draw(st.integers(1, 100)), shape=shape, dtype=dtype)


@st.composite
def leaf_spaces(draw: st.DrawFn) -> spaces.Space[Any]:
    kind = draw(st.sampled_from(["box", "discrete", "multi_discrete", "multi_binary"]))
    if kind == "box":
        return draw(boxes())
    if kind == "discrete":
        return spaces.Discrete(
            draw(st.integers(1, 10**4)),
            start=draw(st.integers(-100, 100)),
            dtype=draw(st.sampled_from([np.int64, np.int32, np.int16])),
        )
    if kind == "multi_discrete":
        shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
        nvec = np.full(shape, draw(st.integers(1, 9)))
        start = np.full(shape, draw(st.integers(-5, 5)))
        return spaces.MultiDiscrete(
            nvec, dtype=draw(st.sampled_from([np.int64, np.int32])), start=start
        )
    if draw(st.booleans()):
        return spaces.MultiBinary(draw(st.integers(1, 8)))
    return spaces.MultiBinary(list(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))))


all_spaces = st.recursive(
    leaf_spaces(),
    lambda children: st.one_of(
        st.dictionaries(st.text("abcxyz_", min_size=1, max_size=4), children, max_size=3).map(
            spaces.Dict
        ),
        st.lists(children, max_size=3).map(lambda items: spaces.Tuple(tuple(items))),
    ),
    max_leaves=6,
)


def assert_exactly_equal(decoded: spaces.Space[Any], original: spaces.Space[Any]) -> None:
    assert type(decoded) is type(original)
    assert decoded == original
    assert decoded.shape == original.shape
    assert decoded.dtype == original.dtype
    if isinstance(original, spaces.Box):
        assert isinstance(decoded, spaces.Box)
        np.testing.assert_array_equal(decoded.low, original.low)
        np.testing.assert_array_equal(decoded.high, original.high)
    elif isinstance(original, spaces.MultiBinary):
        assert isinstance(decoded, spaces.MultiBinary)
        assert decoded.n == original.n
    elif isinstance(original, spaces.Dict):
        assert isinstance(decoded, spaces.Dict)
        assert list(decoded.spaces) == list(original.spaces)
        for key, sub in original.spaces.items():
            assert_exactly_equal(decoded.spaces[key], sub)
    elif isinstance(original, spaces.Tuple):
        assert isinstance(decoded, spaces.Tuple)
        for got, want in zip(decoded.spaces, original.spaces, strict=True):
            assert_exactly_equal(got, want)


@given(all_spaces)
def test_every_space_round_trips(space: spaces.Space[Any]) -> None:
    wire = space_pb2.Space.FromString(encode_space(space).SerializeToString())
    assert_exactly_equal(decode_space(wire), space)


def test_classic_spaces_round_trip() -> None:
    space: spaces.Space[Any]
    for space in (
        spaces.Box(-np.inf, np.inf, (4,), np.float32),
        spaces.Box(0, 255, (84, 84, 3), np.uint8),
        spaces.Box(0, 1, (3,), np.dtype(np.bool_)),  # type: ignore[arg-type]
        spaces.Discrete(2),
        spaces.MultiBinary(5),
        spaces.MultiBinary([5]),
        spaces.Dict({}),
        spaces.Tuple(()),
    ):
        assert_exactly_equal(decode_space(encode_space(space)), space)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Text(5),
        spaces.Sequence(spaces.Discrete(2)),
        spaces.Dict({"ok": spaces.Discrete(2), "bad": spaces.Text(3)}),
    ],
    ids=["text", "sequence", "nested-text"],
)
def test_unsupported_spaces_are_refused(space: spaces.Space[Any]) -> None:
    with pytest.raises(UnsupportedSpaceError, match="cannot be described by protocol v1") as info:
        encode_space(space, field="observation_space")
    assert isinstance(info.value, ValueError)
    assert "observation_space" in str(info.value)


def test_empty_space_message_is_rejected() -> None:
    with pytest.raises(InvalidValueError, match="no kind is set"):
        decode_space(space_pb2.Space())


def test_box_bounds_must_match_dtype_and_shape() -> None:
    message = encode_space(spaces.Box(0, 1, (2,), np.float32))
    message.box.low.CopyFrom(encode_tensor(np.zeros(3, np.float32)))
    with pytest.raises(
        InvalidValueError, match=r"box\.low: bounds of dtype float32 and shape \(3,\)"
    ):
        decode_space(message)
    message = encode_space(spaces.Box(0, 1, (2,), np.float32))
    message.box.high.CopyFrom(encode_tensor(np.ones(2, np.float64)))
    with pytest.raises(InvalidValueError, match="expected dtype float32"):
        decode_space(message)


def test_box_with_low_above_high_is_rejected() -> None:
    message = encode_space(spaces.Box(0, 1, (2,), np.float32))
    message.box.low.CopyFrom(encode_tensor(np.full(2, 5, np.float32)))
    with pytest.raises(InvalidValueError, match="low bounds exceed"):
        decode_space(message)


def test_malformed_bounds_tensor_is_rejected() -> None:
    message = encode_space(spaces.Box(0, 1, (2,), np.float32))
    message.box.low.data = b"\0"
    with pytest.raises(InvalidTensorError, match=r"space\.box\.low\.data"):
        decode_space(message)


def test_discrete_needs_positive_n_and_integer_dtype() -> None:
    with pytest.raises(InvalidValueError, match=r"discrete\.n: 0; expected n > 0"):
        decode_space(space_pb2.Space(discrete=space_pb2.DiscreteSpace(n=0)))
    with pytest.raises(InvalidValueError, match="not an integer type"):
        decode_space(
            space_pb2.Space(
                discrete=space_pb2.DiscreteSpace(n=2, dtype=tensor_pb2.DATA_TYPE_FLOAT32)
            )
        )


def test_multi_discrete_needs_positive_nvec() -> None:
    message = space_pb2.Space(
        multi_discrete=space_pb2.MultiDiscreteSpace(nvec=encode_tensor(np.array([2, 0])))
    )
    with pytest.raises(InvalidValueError, match=r"nvec: \[2, 0\]; expected every entry > 0"):
        decode_space(message)


def test_multi_binary_needs_a_positive_shape() -> None:
    with pytest.raises(InvalidValueError, match="at least one dimension"):
        decode_space(space_pb2.Space(multi_binary=space_pb2.MultiBinarySpace(shape=[0])))


def test_dict_keys_must_be_unique() -> None:
    message = encode_space(spaces.Dict({"a": spaces.Discrete(2)}))
    message.dict.entries.add(key="a").space.CopyFrom(encode_space(spaces.Discrete(3)))
    with pytest.raises(InvalidValueError, match="'a' appears more than once"):
        decode_space(message)


def test_discrete_n_must_fit_its_dtype() -> None:
    message = space_pb2.Space(
        discrete=space_pb2.DiscreteSpace(n=2**40, dtype=tensor_pb2.DATA_TYPE_INT16)
    )
    with pytest.raises(InvalidValueError, match="invalid discrete space"):
        decode_space(message)
