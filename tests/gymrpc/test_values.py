"""Value codec: Python/numpy values and Gymnasium vector info dicts round-trip exactly.

Values of every space kind are also property-tested in test_spaces.py (samples and
batches of spaces nested three deep); here are the cases one by one, and malformed
graphs.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import GraphInstance
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st

from gymrpc.errors import InvalidTensorError, InvalidValueError, TensorTooLargeError
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import value_pb2
from gymrpc.values import decode_map, decode_value, encode_map, encode_value


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
        (np.array(["a", "b"]), "numpy dtype <U1 cannot be sent"),
        (1 + 2j, "builtins.complex cannot be sent"),
    ],
    ids=["set", "object", "int-key", "str-array", "complex"],
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
    message = encode_map({"a": 1, "b": 2})
    message.entries[1].key = "a"
    with pytest.raises(InvalidValueError, match=r"^info.a: the key 'a' appears more than once"):
        decode_map(message, field="info")


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
    wire = value_pb2.ValueMap.FromString(encode_map(infos).SerializeToString())
    result = decode_map(wire)
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
    result = decode_map(encode_map(infos))
    assert data_equivalence(result, infos, exact=True)
    assert result["reason"].dtype == np.int8
    assert result["step"].dtype == np.int64
    assert result["episode"]["r"].dtype == np.float64
    assert result["final_obs"][0] is None


# --- values of Text, Sequence, Graph and OneOf spaces -----------------------------------

GRAPH = GraphInstance(
    nodes=np.arange(6, dtype=np.float32).reshape(3, 2),
    edges=np.array([1, 0], dtype=np.int64),
    edge_links=np.array([[0, 1], [2, 2]], dtype=np.int32),
)
# Features of any space travel stacked as batch_space(feature_space, n) stacks them:
# node features of Dict({"bits": MultiBinary(2), "kind": Discrete(3)}), edge features
# of Tuple((MultiDiscrete([2, 3]), Text(2))).
STRUCTURED_GRAPH = GraphInstance(
    nodes={"bits": np.array([[0, 1], [1, 1], [0, 0]], np.int8), "kind": np.array([2, 0, 1])},
    edges=(np.array([[1, 2], [0, 0]]), ("ab", "")),
    edge_links=np.array([[0, 2], [1, 1]], dtype=np.int32),
)


@pytest.mark.parametrize(
    "obj",
    [
        GRAPH,
        GraphInstance(np.array([3, 1], np.int16), None, None),
        GraphInstance(np.zeros((0, 2), np.float64), np.zeros((0, 4)), np.zeros((0, 2), np.int64)),
        ("héllo", ""),  # a batch of Text values
        (np.int64(1), (np.zeros((2, 3), np.float32), "ab")),  # a OneOf value
        ((), (GRAPH, GRAPH)),  # two unstacked Sequence values
        {"seq": {"a": np.zeros(0, np.int64)}, "g": (GRAPH,)},
        STRUCTURED_GRAPH,
        GraphInstance((np.zeros((2, 2), np.int8), ("x", "y")), None, None),
        GraphInstance(("a", "bc", ""), None, None),  # Text features: a tuple per node
        GraphInstance(((np.int64(0), np.int64(1)), (np.int64(1), "u")), None, None),  # OneOf
    ],
    ids=[
        "graph",
        "graph-without-edges",
        "empty-graph",
        "texts",
        "one-of",
        "sequences",
        "nested",
        "dict-and-tuple-features",
        "tuple-features",
        "text-features",
        "one-of-features",
    ],
)
def test_values_of_the_new_spaces_round_trip(obj: Any) -> None:
    assert_round_trips(obj)


def test_graphs_in_object_arrays_stay_graphs() -> None:
    final_obs = np.full(3, None, dtype=object)
    final_obs[1] = GRAPH
    final_obs[2] = (np.int64(0), GRAPH)
    result = round_trip(final_obs)
    assert data_equivalence(result, final_obs, exact=True)
    assert type(result[1]) is GraphInstance
    assert result[1].edge_links is not None
    assert result[1].edge_links.dtype == np.int32
    assert type(result[2][1]) is GraphInstance


def graph_message(**parts: Any) -> value_pb2.Value:
    """A graph_value built by hand: features as given (arrays as array_value)."""
    message = value_pb2.Value()
    graph = message.graph_value
    graph.SetInParent()
    for name, part in parts.items():
        if name == "edge_links":
            graph.edge_links.CopyFrom(encode_tensor(part))
        elif isinstance(part, value_pb2.Value):
            getattr(graph, name).CopyFrom(part)
        else:
            getattr(graph, name).array_value.CopyFrom(encode_tensor(part))
    return message


NODES = np.zeros((3, 2), np.float32)


@pytest.mark.parametrize(
    ("message", "field", "match"),
    [
        (graph_message(), "obs.nodes", "missing"),
        (graph_message(nodes=np.float32(1)), "obs.nodes", "a 0-d array"),
        (
            graph_message(nodes=NODES, edges=np.zeros(2), edge_links=np.zeros((2, 2))),
            "obs.edge_links",
            "dtype float64; expected an integer dtype",
        ),
        (
            graph_message(nodes=NODES, edge_links=np.zeros((2, 3), np.int64)),
            "obs.edge_links",
            r"shape \(2, 3\); expected \(num_edges, 2\)",
        ),
        (
            graph_message(nodes=NODES, edges=np.zeros(3), edge_links=np.zeros((2, 2), np.int64)),
            "obs.edge_links",
            "2 links for 3 edges",
        ),
        (
            graph_message(nodes=NODES, edge_links=np.array([[0, 1], [1, 3]])),
            "obs.edge_links",
            r"entry \(1, 1\) is 3, not a node index; expected 0 <= index < 3",
        ),
        (
            graph_message(nodes=NODES, edge_links=np.array([[-1, 0]])),
            "obs.edge_links",
            r"entry \(0, 0\) is -1",
        ),
        (
            graph_message(nodes=encode_value("abc")),
            "obs.nodes",
            "a string_value; expected the stacked features of a graph",
        ),
        (
            graph_message(nodes=encode_value([NODES])),
            "obs.nodes",
            "a list_value; expected",
        ),
        (graph_message(nodes=value_pb2.Value()), "obs.nodes", "a Value with no kind set"),
        (
            graph_message(nodes=NODES, edges=encode_value(np.int64(3))),
            "obs.edges",
            "a scalar_value; expected",
        ),
        (graph_message(nodes=NODES, edges=np.float32(1)), "obs.edges", "a 0-d array"),
        (
            graph_message(
                nodes=encode_value({"a": NODES}),
                edges=encode_value(("x",)),
                edge_links=np.array([[0, -2]]),
            ),
            "obs.edge_links",
            r"entry \(0, 1\) is -2, not a node index; expected an index >= 0",
        ),
    ],
    ids=[
        "no-nodes",
        "0d-nodes",
        "float-links",
        "links-shape",
        "links-count",
        "link-too-large",
        "negative-link",
        "string-nodes",
        "list-nodes",
        "empty-nodes",
        "scalar-edges",
        "0d-edges",
        "negative-link-dict-nodes",
    ],
)
def test_malformed_graph_values_are_rejected_naming_the_field(
    message: value_pb2.Value, field: str, match: str
) -> None:
    with pytest.raises(InvalidValueError, match=match) as info:
        decode_value(message, field="obs")
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_graph_tensors_are_checked_like_any_tensor() -> None:
    message = graph_message(nodes=NODES)
    message.graph_value.nodes.array_value.data = b"\0"
    with pytest.raises(InvalidTensorError, match=r"obs\.nodes\.data: 1 bytes"):
        decode_value(message, field="obs")
    message = graph_message(nodes=NODES)
    message.graph_value.nodes.array_value.shape[:] = [2**20, 2**20]
    with pytest.raises(TensorTooLargeError):
        decode_value(message, field="obs", max_elements=2**20)
    # Inside structured features too, with the field path of the part at fault.
    message = encode_value(STRUCTURED_GRAPH)
    message.graph_value.edges.tuple_value.items[0].array_value.shape[:] = [2**20, 2**20]
    with pytest.raises(TensorTooLargeError) as info:
        decode_value(message, field="obs", max_elements=2**20)
    assert info.value.field is not None
    assert info.value.field.startswith("obs.edges[0]")


@pytest.mark.parametrize(
    ("obj", "field", "match"),
    [
        (GraphInstance(cast(Any, None), None, None), "info.g.nodes", "None; a GraphInstance"),
        (GraphInstance([[1.0], [2.0, 3.0]], None, None), "info.g.nodes", "not an array"),
        (GraphInstance(NODES, None, np.array([[0, 5]])), "info.g.edge_links", "is 5"),
        (GraphInstance(np.array(["a"]), None, None), "info.g.nodes", "<U1 cannot be sent"),
        (
            GraphInstance(np.array([object(), 1], dtype=object), None, None),
            "info.g.nodes",
            "object",
        ),
        (
            GraphInstance({"bits": NODES}, (np.zeros(1),), np.array([[0, -1]])),
            "info.g.edge_links",
            "is -1",
        ),
        (GraphInstance(NODES, cast(Any, np.float64(2.0)), None), "info.g.edges", "a 0-d array"),
    ],
    ids=["no-nodes", "ragged-nodes", "bad-link", "str-nodes", "object-nodes", "dict-nodes", "0d"],
)
def test_graphs_that_cannot_be_sent_are_refused_when_encoded(
    obj: GraphInstance, field: str, match: str
) -> None:
    with pytest.raises(InvalidValueError, match=match) as info:
        encode_value({"g": obj}, field="info")
    assert info.value.field == field


def test_strings_utf8_cannot_carry_are_refused_not_crashed_on() -> None:
    with pytest.raises(InvalidValueError, match="not valid Unicode") as info:
        encode_value(("ok", "bad \ud800"), field="observations")
    assert info.value.field == "observations[1]"
    with pytest.raises(InvalidValueError, match="not valid Unicode"):
        encode_map({"\udfff": 1}, field="info")


def test_keys_that_are_not_plain_names_are_quoted_in_field_paths() -> None:
    with pytest.raises(InvalidValueError) as info:
        encode_map({"my key": {"x": object()}}, field="info")
    assert info.value.field == 'info["my key"].x'
    message = encode_map({"TimeLimit.truncated": np.zeros(2)})
    message.entries[0].value.array_value.data = b"1"
    with pytest.raises(InvalidTensorError) as tensor_info:
        decode_map(message, field="info")
    assert tensor_info.value.field == 'info["TimeLimit.truncated"].data'


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**127 + 5, -(10**40)])
def test_ints_beyond_64_bits_travel_as_digits(number: int) -> None:
    message = encode_value(number)
    assert message.WhichOneof("kind") == "big_int_value"
    assert decode_value(message) == number
    assert type(decode_value(message)) is int
    assert encode_value(2**63 - 1).WhichOneof("kind") == "int_value"


@pytest.mark.parametrize("text", ["", "-", "12a", "1" * 1001, "١٢"], ids=repr)
def test_malformed_big_ints_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError, match="seed: big_int_value"):
        decode_value(value_pb2.Value(big_int_value=text), field="seed")
