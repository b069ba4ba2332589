"""Space codec: every Gymnasium space round-trips exactly, and so do its values.

The property tests draw spaces of every kind nested to depth 3 and check that the space
comes back equal, and that samples, batches (``batch_space``, ``concatenate``) and
their per-environment items (``iterate``) come back ``data_equivalence``-equal (exact
types and dtypes) through the wire's ``Value``; and that a space sent with its
generators (``Space.generator``) samples, and batches, what the original does.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate
from gymrpc_space_envs import nested_spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from gymrpc.errors import InvalidTensorError, InvalidValueError, UnsupportedSpaceError
from gymrpc.spaces import decode_space, encode_space, find_violation
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import space_pb2, tensor_pb2, value_pb2
from gymrpc.values import decode_value, encode_value

all_spaces = nested_spaces(3)


def as_dict(space: spaces.Space[Any]) -> spaces.Dict:
    assert isinstance(space, spaces.Dict), space
    return space


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
        batched, batched_original = batch_space(decoded, 2), batch_space(original, 2)
        assert isinstance(batched, spaces.Dict)
        assert isinstance(batched_original, spaces.Dict)
        assert batched == batched_original
        # The order in which the batched space seeds its parts, so samples match.
        assert list(batched.spaces) == list(batched_original.spaces)
        for key, sub in original.spaces.items():
            assert_exactly_equal(decoded.spaces[key], sub)
    elif isinstance(original, spaces.Tuple | spaces.OneOf):
        assert isinstance(decoded, spaces.Tuple | spaces.OneOf)
        for got, want in zip(decoded.spaces, original.spaces, strict=True):
            assert_exactly_equal(got, want)
    elif isinstance(original, spaces.Text):
        assert isinstance(decoded, spaces.Text)
        # Same order too, so that seeded samples match.
        assert decoded.character_list == original.character_list
    elif isinstance(original, spaces.Sequence):
        assert isinstance(decoded, spaces.Sequence)
        assert decoded.stack is original.stack
        assert_exactly_equal(decoded.feature_space, original.feature_space)
    elif isinstance(original, spaces.Graph):
        assert isinstance(decoded, spaces.Graph)
        assert_exactly_equal(decoded.node_space, original.node_space)
        if original.edge_space is None:
            assert decoded.edge_space is None
        else:
            assert decoded.edge_space is not None
            assert_exactly_equal(decoded.edge_space, original.edge_space)


@settings(max_examples=150, deadline=None)
@given(all_spaces)
def test_every_space_round_trips(space: spaces.Space[Any]) -> None:
    wire = space_pb2.Space.FromString(encode_space(space).SerializeToString())
    assert_exactly_equal(decode_space(wire), space)


def through_the_wire(value: Any) -> Any:
    return decode_value(value_pb2.Value.FromString(encode_value(value).SerializeToString()))


def assert_same_value(got: Any, want: Any) -> None:
    assert data_equivalence(got, want, exact=True), (got, want)


@settings(max_examples=60, deadline=None)
@given(all_spaces, st.integers(0, 2**31), st.integers(1, 3))
def test_samples_and_batches_round_trip_as_values(
    space: spaces.Space[Any], seed: int, num_envs: int
) -> None:
    space.seed(seed)
    sample = space.sample()
    result = through_the_wire(sample)
    assert_same_value(result, sample)
    assert find_violation(space, result) is None

    batched = batch_space(space, num_envs)
    batched.seed(seed)
    batch = batched.sample()
    assert_same_value(through_the_wire(batch), batch)

    # A batch built the way SyncVectorEnv builds its observations, and its items the
    # way SyncVectorEnv hands actions to its sub-environments.
    items = [space.sample() for _ in range(num_envs)]
    stacked = concatenate(space, items, cast(Any, create_empty_array(space, num_envs)))
    decoded = through_the_wire(stacked)
    assert_same_value(decoded, stacked)
    assert_same_value(list(iterate(batched, decoded)), list(iterate(batched, stacked)))

    # SAME_STEP's final_obs: one unbatched value per sub-environment, or None.
    final_obs = np.full(num_envs + 1, None, dtype=object)
    for index, item in enumerate(items):
        final_obs[index] = item
    assert_same_value(through_the_wire(final_obs), final_obs)


def test_every_kind_round_trips_nested_three_deep() -> None:
    graph = spaces.Graph(spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(3))
    space = spaces.Dict(
        [
            ("z", spaces.Tuple((spaces.Sequence(graph, stack=True), spaces.Text(4)))),
            (
                "a",
                spaces.OneOf(
                    (
                        spaces.Sequence(spaces.Dict({"t": spaces.Text(2, charset="xy")})),
                        spaces.Graph(spaces.Discrete(4), None),
                    )
                ),
            ),
        ],
        sort_keys=False,
    )
    assert_exactly_equal(decode_space(encode_space(space)), space)
    space.seed(3)
    for _ in range(5):
        sample = space.sample()
        assert_same_value(through_the_wire(sample), sample)


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


class CustomSpace(spaces.Space[int]):
    """A space Gymnasium does not know, so neither does the protocol."""

    def contains(self, x: Any) -> bool:
        return bool(x == 0)


@pytest.mark.parametrize(
    ("space", "field", "match"),
    [
        (CustomSpace(), "observation_space", "CustomSpace spaces cannot be described"),
        (
            spaces.Dict({"ok": spaces.Discrete(2), "deep": spaces.Tuple((CustomSpace(),))}),
            "observation_space.deep[0]",
            "CustomSpace spaces cannot be described",
        ),
        (
            spaces.Sequence(spaces.OneOf((spaces.Discrete(2), CustomSpace()))),
            "observation_space.feature_space[1]",
            "CustomSpace spaces cannot be described",
        ),
        (
            spaces.Graph(spaces.Dict({"ok": spaces.Discrete(2), "bad": CustomSpace()}), None),
            "observation_space.node_space.bad",
            "CustomSpace spaces cannot be described",
        ),
        (
            spaces.Dict({"my key": spaces.Graph(spaces.Box(0, 1), CustomSpace())}),
            'observation_space["my key"].edge_space',
            "CustomSpace spaces cannot be described",
        ),
    ],
    ids=["custom", "nested-custom", "custom-in-sequence", "graph-nodes", "graph-edges"],
)
def test_spaces_the_protocol_cannot_describe_are_refused(
    space: spaces.Space[Any], field: str, match: str
) -> None:
    with pytest.raises(UnsupportedSpaceError, match=match) as info:
        encode_space(space, field="observation_space")
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


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


def test_unsorted_dict_keys_keep_their_order_in_batches() -> None:
    space = spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Discrete(3)}, sort_keys=False)
    decoded = decode_space(encode_space(space))
    assert isinstance(decoded, spaces.Dict)
    assert list(decoded.spaces) == ["b", "a"]
    # batch_space sorts the keys of a Dict whose sort_keys is true: it must not here.
    batched, batched_original = batch_space(decoded, 3), batch_space(space, 3)
    assert isinstance(batched, spaces.Dict)
    assert isinstance(batched_original, spaces.Dict)
    assert list(batched.spaces) == list(batched_original.spaces)
    sorted_space = spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Discrete(3)})
    decoded_sorted = decode_space(encode_space(sorted_space))
    assert isinstance(decoded_sorted, spaces.Dict)
    assert list(decoded_sorted.spaces) == ["a", "b"]


def test_text_keeps_its_character_order_so_seeded_samples_match() -> None:
    space = spaces.Text(6, charset="zyxé ")
    decoded = decode_space(encode_space(space))
    assert isinstance(decoded, spaces.Text)
    assert decoded.character_list == ("z", "y", "x", "é", " ")
    space.seed(1)
    decoded.seed(1)
    assert [decoded.sample() for _ in range(5)] == [space.sample() for _ in range(5)]


def text_message(max_length: int, min_length: int, charset: str) -> space_pb2.Space:
    return space_pb2.Space(
        text=space_pb2.TextSpace(max_length=max_length, min_length=min_length, charset=charset)
    )


@pytest.mark.parametrize(
    ("message", "field", "match"),
    [
        (text_message(2, 3, "ab"), "space.text.max_length", "expected 0 <= min_length <= max"),
        (text_message(2, -1, "ab"), "space.text.min_length", "min_length -1 and max_length 2"),
        (text_message(2, 0, ""), "space.text.charset", "charset: empty"),
        (text_message(2, 0, "abca"), "space.text.charset", "'a' appears more than once"),
        (
            space_pb2.Space(sequence=space_pb2.SequenceSpace(stack=True)),
            "space.sequence.feature_space",
            "feature_space: missing",
        ),
        (
            space_pb2.Space(graph=space_pb2.GraphSpace()),
            "space.graph.node_space",
            "node_space: missing",
        ),
        (
            space_pb2.Space(
                graph=space_pb2.GraphSpace(
                    node_space=space_pb2.Space(
                        tuple=space_pb2.TupleSpace(
                            spaces=[encode_space(spaces.MultiBinary(2)), space_pb2.Space()]
                        )
                    )
                )
            ),
            "space.graph.node_space.tuple.spaces[1]",
            "no kind is set",
        ),
        (space_pb2.Space(one_of=space_pb2.OneOfSpace()), "space.one_of.spaces", "empty"),
        (
            space_pb2.Space(
                one_of=space_pb2.OneOfSpace(
                    spaces=[encode_space(spaces.Discrete(2)), space_pb2.Space()]
                )
            ),
            "space.one_of.spaces[1]",
            "no kind is set",
        ),
        (
            space_pb2.Space(
                sequence=space_pb2.SequenceSpace(
                    feature_space=encode_space(spaces.Dict({"a": spaces.Discrete(2)}))
                )
            ),
            None,
            None,
        ),
    ],
    ids=[
        "text-min-above-max",
        "text-negative-min",
        "text-empty-charset",
        "text-repeated-char",
        "sequence-without-feature",
        "graph-without-nodes",
        "graph-features-without-kind",
        "one-of-nothing",
        "one-of-empty-item",
        "valid-control",
    ],
)
def test_malformed_new_spaces_are_rejected_naming_the_field(
    message: space_pb2.Space, field: str | None, match: str | None
) -> None:
    if field is None:
        assert isinstance(decode_space(message), spaces.Sequence)
        return
    assert match is not None
    with pytest.raises(InvalidValueError, match=match) as info:
        decode_space(message)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_malformed_space_deep_inside_names_its_protobuf_path() -> None:
    message = encode_space(
        spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Sequence(spaces.Box(0, 1, (2,)))})
    )
    message.dict.entries[1].space.sequence.feature_space.box.low.data = b"\0"
    with pytest.raises(InvalidTensorError) as info:
        decode_space(message, field="single_observation_space")
    assert info.value.field == (
        "single_observation_space.dict.entries[1].space.sequence.feature_space.box.low.data"
    )


def test_dict_sort_keys_travels_so_batches_order_keys_alike() -> None:
    from collections import OrderedDict

    from gymnasium.vector.utils import batch_space

    # Keys given in unsorted order by an OrderedDict: the space keeps that order, but
    # sort_keys (true by default) makes batch_space sort the batched space's keys.
    space = spaces.Dict(OrderedDict([("b", spaces.Discrete(2)), ("a", spaces.Discrete(3))]))
    assert space.sort_keys
    assert list(space) == ["b", "a"]
    rebuilt = as_dict(decode_space(encode_space(space)))
    assert list(rebuilt) == ["b", "a"]
    assert rebuilt.sort_keys is True
    assert list(as_dict(batch_space(rebuilt, 2))) == list(as_dict(batch_space(space, 2)))
    assert list(as_dict(batch_space(space, 2))) == ["a", "b"]
    unsorted = spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Discrete(3)}, sort_keys=False)
    rebuilt = as_dict(decode_space(encode_space(unsorted)))
    assert rebuilt.sort_keys is False
    assert list(as_dict(batch_space(rebuilt, 2))) == list(as_dict(batch_space(unsorted, 2)))
    assert list(as_dict(batch_space(unsorted, 2))) == ["b", "a"]


# --- Graph features of any space ---------------------------------------------------------

GRAPH_FEATURES = [
    pytest.param(spaces.MultiBinary(3), id="multi-binary"),
    pytest.param(spaces.MultiBinary([2, 2]), id="multi-binary-2d"),
    pytest.param(spaces.MultiDiscrete([2, 3], start=[-1, 4]), id="multi-discrete"),
    pytest.param(
        spaces.Dict({"kind": spaces.Discrete(3), "pos": spaces.Box(0, 1, (2,))}, sort_keys=False),
        id="dict",
    ),
    pytest.param(spaces.Tuple((spaces.MultiBinary(2), spaces.Text(2, charset="ab"))), id="tuple"),
    pytest.param(
        spaces.Dict({"t": spaces.Tuple((spaces.Discrete(2), spaces.MultiDiscrete([3])))}),
        id="dict-of-tuple",
    ),
    pytest.param(spaces.Text(3), id="text"),
    pytest.param(spaces.OneOf((spaces.Discrete(2), spaces.Box(0, 1, (1,)))), id="one-of"),
    pytest.param(spaces.Sequence(spaces.Discrete(2), stack=True), id="sequence"),
]


@pytest.mark.parametrize("features", GRAPH_FEATURES)
@pytest.mark.parametrize("with_edges", [False, True], ids=["nodes", "nodes-and-edges"])
def test_graphs_with_features_of_any_space_round_trip(
    features: spaces.Space[Any], with_edges: bool
) -> None:
    edge_space = decode_space(encode_space(features)) if with_edges else None
    space = spaces.Graph(features, edge_space)
    assert_exactly_equal(decode_space(encode_space(space)), space)
    space.seed(5)
    for _ in range(4):
        graph = space.sample(num_nodes=4, num_edges=3 if with_edges else None)
        result = through_the_wire(graph)
        assert_same_value(result, graph)
        assert space.contains(result)
        assert find_violation(space, result) is None


def test_graph_features_stack_as_batch_space_stacks_them() -> None:
    features = spaces.Dict(
        {"kind": spaces.Discrete(3), "bits": spaces.MultiBinary(2), "name": spaces.Text(2)},
        sort_keys=False,
    )
    graph = spaces.Graph(features, None, seed=0).sample(num_nodes=4)
    message = encode_value(graph).graph_value
    assert not message.HasField("edges")
    entries = {entry.key: entry.value for entry in message.nodes.dict_value.entries}
    assert list(entries) == ["kind", "bits", "name"]
    assert list(entries["kind"].array_value.shape) == [4]
    assert list(entries["bits"].array_value.shape) == [4, 2]
    assert entries["bits"].array_value.dtype == tensor_pb2.DATA_TYPE_INT8
    assert len(entries["name"].tuple_value.items) == 4


def test_graphs_whose_stacks_disagree_are_outside_the_space() -> None:
    space = spaces.Graph(spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2))), None)
    nodes = (np.array([0, 1, 2]), np.zeros((2, 2), np.int8))
    value = through_the_wire(spaces.GraphInstance(nodes, None, None))
    assert find_violation(space, value) == ("the nodes stacks parts of different lengths [2, 3]")
    links = np.array([[0, 3]])
    edge_space = spaces.Graph(spaces.Dict({"a": spaces.Discrete(2)}), spaces.Discrete(2))
    value = spaces.GraphInstance({"a": np.array([0, 1, 1])}, np.array([1]), links)
    problem = find_violation(edge_space, through_the_wire(value))
    assert problem == "edge_links holds indices outside [0, 3), the nodes"


# --- generators ---------------------------------------------------------------------------


def has_generator(space: spaces.Space[Any]) -> bool:
    # Gymnasium annotates _np_random as a Generator; it is None until the space is seeded.
    generator: np.random.Generator | None = space._np_random
    return generator is not None


def generator_states(space: spaces.Space[Any]) -> Any:
    """Every generator state of a space tree (None where there is none), for comparing."""
    own = space._np_random.bit_generator.state if has_generator(space) else None
    if isinstance(space, spaces.Dict):
        return own, [generator_states(sub) for sub in space.spaces.values()]
    if isinstance(space, spaces.Tuple | spaces.OneOf):
        return own, [generator_states(sub) for sub in space.spaces]
    if isinstance(space, spaces.Sequence):
        return own, generator_states(space.feature_space)
    if isinstance(space, spaces.Graph):
        edges = None if space.edge_space is None else generator_states(space.edge_space)
        return own, generator_states(space.node_space), edges
    return own


def with_generators(space: spaces.Space[Any]) -> spaces.Space[Any]:
    wire = encode_space(space, generators=True).SerializeToString()
    return decode_space(space_pb2.Space.FromString(wire))


@settings(max_examples=60, deadline=None)
@given(all_spaces, st.integers(0, 2**31), st.integers(1, 3))
def test_spaces_sent_with_their_generators_sample_alike(
    space: spaces.Space[Any], seed: int, num_envs: int
) -> None:
    space.seed(seed)
    decoded = with_generators(space)
    assert generator_states(decoded) == generator_states(space)
    # batch_space copies every generator: what SyncVectorEnv's action_space samples.
    local, remote = batch_space(space, num_envs), batch_space(decoded, num_envs)
    for _ in range(2):
        assert_same_value(remote.sample(), local.sample())
        assert_same_value(decoded.sample(), space.sample())


def test_generators_travel_only_when_asked_and_nothing_gets_seeded() -> None:
    space = spaces.Dict({"seeded": spaces.Discrete(3, seed=1), "unseeded": spaces.Box(0, 1)})
    plain = encode_space(space)
    assert not plain.HasField("generator")
    assert not plain.dict.entries[0].space.HasField("generator")
    message = encode_space(space, generators=True)
    # Only the space that has a generator sends one; sending never seeds the others.
    assert not message.HasField("generator")
    assert message.dict.entries[0].space.generator.bit_generator == "PCG64"
    assert not message.dict.entries[1].space.HasField("generator")
    assert not has_generator(space)
    assert not has_generator(space["unseeded"])
    decoded = as_dict(decode_space(message))
    assert not has_generator(decoded)
    assert not has_generator(decoded["unseeded"])
    assert generator_states(decoded["seeded"]) == generator_states(space["seeded"])
    # 128-bit PCG64 words travel as big_int_value.
    state = decode_value(message.dict.entries[0].space.generator.state)
    assert state == space["seeded"].np_random.bit_generator.state
    assert state["state"]["state"] > 2**64


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_every_numpy_bit_generator_travels(name: str) -> None:
    generator = np.random.Generator(getattr(np.random, name)(7))
    generator.random(3)  # mid-stream, with a buffered half word for some
    space = spaces.Box(0, 1, (3,), seed=generator)
    decoded = with_generators(space)
    assert type(decoded.np_random.bit_generator).__name__ == name
    np.testing.assert_array_equal(decoded.sample(), space.sample())


def test_an_unknown_bit_generator_leaves_the_space_unseeded() -> None:
    message = encode_space(spaces.Discrete(3, seed=1), generators=True)
    message.generator.bit_generator = "Xoshiro256"
    assert not has_generator(decode_space(message))


@pytest.mark.parametrize(
    ("state", "match"),
    [
        (None, "no kind is set in the Value"),
        ({"bit_generator": "MT19937", "state": {}}, "not a state of numpy's PCG64"),
        ({"bit_generator": "PCG64"}, "not a state of numpy's PCG64"),
    ],
    ids=["no-state", "another-generator", "incomplete"],
)
def test_malformed_generator_states_are_rejected_naming_the_field(state: Any, match: str) -> None:
    message = encode_space(spaces.Tuple((spaces.Discrete(3, seed=1),)), generators=True)
    target = message.tuple.spaces[0].generator
    target.state.Clear()
    if state is not None:
        target.state.CopyFrom(encode_value(state))
    with pytest.raises(InvalidValueError, match=match) as info:
        decode_space(message, field="single_action_space")
    assert info.value.field == "single_action_space.tuple.spaces[0].generator.state"
