"""Value codec: Python/numpy values and Gymnasium vector info dicts round-trip exactly."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st

from gymrpc.errors import InvalidTensorError, InvalidValueError, TensorTooLargeError
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import value_pb2
from gymrpc.values import decode_info, decode_value, encode_info, encode_value


def round_trip(obj: Any) -> Any:
    wire = value_pb2.Value.FromString(encode_value(obj).SerializeToString())
    return decode_value(wire)


def assert_round_trips(obj: Any) -> None:
    result = round_trip(obj)
    assert data_equivalence(result, obj, exact=True), (result, obj)


@pytest.mark.parametrize(
    "obj",
    [
        None,
        True,
        0,
        -(2**63),
        2**63 - 1,
        1.5,
        float("inf"),
        "héllo",
        b"\x00\xff",
        np.float32(1.25),
        np.int8(-3),
        np.bool_(True),
        np.uint64(2**64 - 1),
        np.array(3.0),
        np.zeros((2, 0, 3), np.float16),
        [],
        (),
        {},
        [1, (2.0, None), {"a": [np.int16(4)]}],
        np.array([None, "x", (1, 2), np.arange(3)], dtype=object),
        np.empty((0, 2), dtype=object),
    ],
    ids=repr,
)
def test_values_keep_their_python_and_numpy_types(obj: Any) -> None:
    assert_round_trips(obj)


def test_nan_round_trips() -> None:
    result = round_trip(np.array([np.nan, 1.0]))
    assert np.isnan(result[0])
    assert isinstance(round_trip(float("nan")), float)


def test_object_array_elements_keep_identity_of_kind() -> None:
    original = np.full((2, 2), None, dtype=object)
    original[0, 1] = (1, 2)
    original[1, 0] = np.ones(3, np.float32)
    result = round_trip(original)
    assert result.shape == (2, 2)
    assert result.dtype == object
    assert result[0, 1] == (1, 2)
    assert result[1, 0].dtype == np.float32


def test_dict_key_order_is_preserved() -> None:
    assert list(round_trip({"b": 1, "a": 2, "c": 3})) == ["b", "a", "c"]


def test_enum_and_mapping_subclasses_travel_as_their_base() -> None:
    from collections import OrderedDict
    from enum import IntEnum

    class Color(IntEnum):
        RED = 1

    assert round_trip(Color.RED) == 1
    assert type(round_trip(Color.RED)) is int
    assert round_trip(OrderedDict(a=1)) == {"a": 1}


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({1, 2}, "a value of type builtins.set cannot be sent"),
        (object(), "builtins.object cannot be sent"),
        ({1: "a"}, "key 1 is a int; expected str keys"),
        (2**64, "does not fit in 64 bits"),
        (np.array(["a", "b"]), "numpy dtype <U1 cannot be sent"),
        (1 + 2j, "builtins.complex cannot be sent"),
    ],
    ids=["set", "object", "int-key", "big-int", "str-array", "complex"],
)
def test_unsupported_values_are_rejected(obj: Any, match: str) -> None:
    with pytest.raises(InvalidValueError, match=match) as info:
        encode_value({"outer": obj}, field="info")
    assert "info.outer" in str(info.value)


def test_empty_value_is_rejected() -> None:
    with pytest.raises(InvalidValueError, match="actions: no kind is set"):
        decode_value(value_pb2.Value(), field="actions")


def test_scalar_value_must_have_empty_shape() -> None:
    message = value_pb2.Value(scalar_value=encode_tensor(np.zeros(2)))
    with pytest.raises(InvalidValueError, match=r"scalar_value has shape \[2\]"):
        decode_value(message)


def test_object_array_item_count_must_match_shape() -> None:
    message = encode_value(np.array([None, None], dtype=object))
    message.object_array_value.shape[:] = [3]
    with pytest.raises(InvalidValueError, match=r"shape \[3\] has 2 items; expected 3"):
        decode_value(message)


def test_object_array_shape_is_limited() -> None:
    message = encode_value(np.array([None], dtype=object))
    message.object_array_value.shape[:] = [2**40, 2**40]
    with pytest.raises(TensorTooLargeError):
        decode_value(message, max_elements=2**20)


def test_duplicate_keys_are_rejected() -> None:
    message = encode_info({"a": 1, "b": 2})
    message.entries[1].key = "a"
    with pytest.raises(InvalidValueError, match="key 'a' appears more than once"):
        decode_info(message)


def test_malformed_tensor_inside_is_reported_with_its_path() -> None:
    message = encode_value({"obs": [np.zeros(2)]})
    message.dict_value.entries[0].value.list_value.items[0].array_value.data = b"123"
    with pytest.raises(InvalidTensorError, match=r"value\.obs\[0\]\.data: 3 bytes"):
        decode_value(message)


# --- Gymnasium vector info dicts, built by Gymnasium's own _add_info -------------------

# data_equivalence cannot compare NaN (NaN != NaN); test_nan_round_trips covers NaN.
LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False),
    "bool": st.booleans(),
    "int8": st.integers(-128, 127).map(np.int8),
    "uint64": st.integers(0, 2**64 - 1).map(np.uint64),
    "float32": st.floats(width=32, allow_nan=False).map(np.float32),
    "float64": st.floats(allow_nan=False).map(np.float64),
    "str": st.text(max_size=3),
    "none": st.none(),
    "array": st.lists(st.floats(width=32, allow_nan=False), min_size=3, max_size=3).map(
        lambda v: np.array(v, np.float32)
    ),
}
KEYS = ["a", "b", "episode", "final_obs", "x"]


@st.composite
def schemas(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """Which keys exist and the kind of each; _add_info needs one kind per key."""
    schema: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=4)):
        nested = depth < 2 and draw(st.integers(0, 3)) == 0
        schema[key] = draw(schemas(depth + 1)) if nested else draw(st.sampled_from(sorted(LEAVES)))
    return schema


@st.composite
def env_info(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key, kind in schema.items():
        if draw(st.booleans()):
            info[key] = draw(env_info(kind)) if isinstance(kind, dict) else draw(LEAVES[kind])
    return info


@st.composite
def per_env_infos(draw: st.DrawFn) -> list[dict[str, Any]]:
    schema = draw(schemas())
    return [draw(env_info(schema)) for _ in range(draw(st.integers(1, 4)))]


def vector_info(per_env: list[dict[str, Any]]) -> dict[str, Any]:
    vector_env = gym.vector.VectorEnv()
    vector_env.num_envs = len(per_env)
    infos: dict[str, Any] = {}
    for index, env_info in enumerate(per_env):
        infos = vector_env._add_info(infos, env_info, index)
    return infos


@given(per_env_infos())
def test_gymnasium_vector_infos_round_trip(per_env: list[dict[str, Any]]) -> None:
    infos = vector_info(per_env)
    wire = value_pb2.ValueMap.FromString(encode_info(infos).SerializeToString())
    result = decode_info(wire)
    assert data_equivalence(result, infos, exact=True)
    assert list(result) == list(infos)


def test_same_step_style_info_round_trips() -> None:
    final_obs = np.full(3, None, dtype=object)
    final_obs[1] = np.ones((2, 9), np.float32)
    infos = vector_info(
        [
            {"step": 3, "reason": np.int8(0)},
            {"step": 7, "reason": np.int8(1), "episode": {"r": 1.5, "l": 7, "t": 0.25}},
            {},
        ]
    )
    infos["final_obs"], infos["_final_obs"] = final_obs, np.array([False, True, False])
    infos["final_info"] = vector_info([{}, {"step": 7, "in_shop": False}, {}])
    infos["_final_info"] = infos["_final_obs"].copy()
    result = decode_info(encode_info(infos))
    assert data_equivalence(result, infos, exact=True)
    assert result["reason"].dtype == np.int8
    assert result["step"].dtype == np.int64
    assert result["episode"]["r"].dtype == np.float64
    assert result["final_obs"][0] is None
