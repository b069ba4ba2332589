"""ActionChecker: batches of every space are accepted or refused as ``contains`` would.

Text, Sequence, Graph and OneOf batches are tuples of one action per sub-environment;
each is checked against the single space and the error's field path ends with the
sub-environment's index. The cases below are refused by Gymnasium's own ``contains``
too (asserted where ``contains`` answers rather than raises), and by the checker
without raising anything but InvalidActionError, whatever the input.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces import GraphInstance
from gymnasium.vector.utils import batch_space
from gymrpc_space_envs import nested_spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from gymrpc.errors import InvalidActionError
from gymrpc.v1 import value_pb2
from gymrpc.values import decode_value, encode_value
from gymrpc_server.validation import ActionChecker


def through_the_wire(value: Any) -> Any:
    return decode_value(value_pb2.Value.FromString(encode_value(value).SerializeToString()))


@settings(max_examples=60, deadline=None)
@given(nested_spaces(3), st.integers(0, 2**31), st.integers(1, 3))
def test_samples_of_the_batched_space_are_accepted(
    space: spaces.Space[Any], seed: int, num_envs: int
) -> None:
    batched = batch_space(space, num_envs)
    batched.seed(seed)
    actions = through_the_wire(batched.sample())
    assert ActionChecker(space, num_envs).check(actions) is actions


BOX = spaces.Box(-1, 1, (2,), np.float32)
GRAPH = spaces.Graph(BOX, spaces.Discrete(3))
NODES = np.zeros((3, 2), np.float32)
LINKS = np.array([[0, 1], [2, 0]], np.int64)
STACKED_DICT = spaces.Sequence(spaces.Dict({"a": spaces.Discrete(2), "b": BOX}), stack=True)
# Node features of a Dict, edge features of a Tuple: stacks only the space can count.
FEATURE_GRAPH = spaces.Graph(
    spaces.Dict({"bits": spaces.MultiBinary(2), "kind": spaces.Discrete(3)}),
    spaces.Tuple((spaces.MultiDiscrete([2]), spaces.Text(2, charset="ab"))),
)
FEATURE_NODES = {"bits": np.zeros((3, 2), np.int8), "kind": np.array([0, 1, 2])}
FEATURE_EDGES = (np.zeros((2, 1), np.int64), ("a", "ab"))

# (space, one bad action, what the message says); the bad action goes to sub-env 1.
REFUSED: list[Any] = [
    pytest.param(spaces.Text(3, charset="ab"), "abc", r"'c' \(position 2\) is not", id="char"),
    pytest.param(spaces.Text(3), "abcd", "a str of 4 characters; expected 1 to 3", id="long"),
    pytest.param(spaces.Text(3), b"ab", "bytes; expected a str", id="bytes"),
    pytest.param(spaces.Sequence(BOX), [np.zeros(2, np.float32)], "a list", id="seq-list"),
    pytest.param(
        spaces.Sequence(BOX),
        (np.zeros(2, np.float32), np.full(2, 5, np.float32)),
        r"element 1 of the sequence: 5.0 at \(0,\) is outside",
        id="seq-element",
    ),
    pytest.param(
        spaces.Sequence(BOX, stack=True),
        np.array([[0, 0], [0, np.nan]], np.float32),
        r"the sequence: nan at \(1, 1\) is outside",
        id="stack-nan",
    ),
    pytest.param(
        spaces.Sequence(BOX, stack=True),
        np.zeros((2, 2), np.float64),
        "dtype float64, which does not cast safely to float32",
        id="stack-dtype",
    ),
    pytest.param(
        spaces.Sequence(BOX, stack=True),
        np.zeros((2, 3), np.float32),
        r"shape \(2, 3\); expected \(n, \*\(2,\)\)",
        id="stack-shape",
    ),
    pytest.param(
        spaces.Sequence(spaces.Discrete(3), stack=True),
        np.array([0, 3]),
        r"3 at \(1,\) is outside",
        id="stack-discrete",
    ),
    pytest.param(
        spaces.Sequence(spaces.Discrete(3), stack=True),
        np.zeros(2, np.float32),
        "expected an integer dtype",
        id="stack-discrete-float",
    ),
    pytest.param(
        STACKED_DICT,
        {"a": np.zeros(3, np.int64), "b": np.zeros((2, 2), np.float32)},
        r"parts of different lengths \[2, 3\]",
        id="stack-lengths",
    ),
    pytest.param(STACKED_DICT, {"a": np.zeros(3, np.int64)}, "has keys", id="stack-keys"),
    pytest.param(GRAPH, (NODES, None, None), "a tuple of 3 items; expected a Graph", id="tuple"),
    pytest.param(
        GRAPH,
        GraphInstance(np.full((3, 2), 2, np.float32), None, None),
        r"the nodes: 2.0 at \(0, 0\) is outside",
        id="nodes-bounds",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(np.zeros((3, 3), np.float32), None, None),
        r"the nodes has shape \(3, 3\)",
        id="nodes-shape",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(NODES, np.array([0, 1]), None),
        "edges without edge_links",
        id="edges-without-links",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(NODES, np.array([0, 3]), LINKS),
        r"the edges: 3 at \(1,\) is outside",
        id="edge-value",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(NODES, np.array([0, 1]), np.array([[0, 1], [2, 3]])),
        r"outside \[0, 3\), the nodes",
        id="link-range",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(NODES, np.array([0, 1]), LINKS.astype(np.float64)),
        "expected an integer array",
        id="link-dtype",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(NODES, np.array([0, 1, 2]), LINKS),
        r"shape \(2, 2\); expected \(3, 2\)",
        id="link-count",
    ),
    pytest.param(
        spaces.Graph(BOX, None),
        GraphInstance(NODES, np.array([0, 1]), LINKS),
        "edge_space None",
        id="edges-not-allowed",
    ),
    pytest.param(
        spaces.OneOf((spaces.Discrete(2), BOX)), (2, np.int64(0)), "the index 2", id="index"
    ),
    pytest.param(
        spaces.OneOf((spaces.Discrete(2), BOX)),
        (np.int32(0), np.int64(0)),
        r"the index np.int32\(0\) \(int32\); expected an int or numpy int64",
        id="index-dtype",
    ),
    pytest.param(
        spaces.OneOf((spaces.Discrete(2), BOX)),
        [np.int64(0), np.int64(0)],
        r"a list of 2 items; expected a tuple \(index, value\)",
        id="one-of-list",
    ),
    pytest.param(
        spaces.OneOf((spaces.Discrete(2), BOX)),
        (np.int64(1), np.zeros(3, np.float32)),
        r"the value of option 1: an array of shape \(3,\); expected shape \(2,\)",
        id="one-of-value",
    ),
    pytest.param(
        spaces.OneOf((spaces.Tuple((spaces.Text(2), spaces.Discrete(2))),)),
        (np.int64(0), ("ab", np.int32(5))),
        "option 0: item 1: 5, outside",
        id="one-of-deep",
    ),
    pytest.param(
        spaces.OneOf((spaces.Tuple((spaces.Text(2), spaces.Discrete(2))),)),
        (np.int64(0), ("ab",)),
        "option 0: a tuple of 1; expected a tuple of 2 items",
        id="tuple-length",
    ),
    pytest.param(
        GRAPH,
        GraphInstance(np.array([[0, 0], [np.nan, 0], [0, 0]], np.float32), None, None),
        r"the nodes: nan at \(1, 0\) is outside",
        id="nodes-nan",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance({**FEATURE_NODES, "bits": np.full((3, 2), 2, np.int8)}, None, None),
        r"the nodes, entry 'bits': 2 at \(0, 0\) is outside 0 or 1",
        id="dict-features-value",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance({**FEATURE_NODES, "kind": np.array([0, 1])}, None, None),
        r"the nodes stacks parts of different lengths \[2, 3\]",
        id="dict-features-lengths",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance({"bits": FEATURE_NODES["bits"]}, None, None),
        r"the nodes has keys \['bits'\]",
        id="dict-features-keys",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance(FEATURE_NODES, (FEATURE_EDGES[0], ("a", "c")), LINKS),
        r"element 1 of the edges, item 1: 'c' \(position 0\) is not in the character set",
        id="tuple-features-text",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance(FEATURE_NODES, FEATURE_EDGES, np.array([[0, 1], [2, 3]])),
        r"outside \[0, 3\), the nodes",
        id="structured-link-range",
    ),
    pytest.param(
        FEATURE_GRAPH,
        GraphInstance(FEATURE_NODES, FEATURE_EDGES, np.zeros((3, 2), np.int64)),
        r"edge_links has shape \(3, 2\); expected \(2, 2\)",
        id="structured-link-count",
    ),
]


@pytest.mark.parametrize(("space", "action", "match"), REFUSED)
def test_actions_outside_the_space_are_refused_naming_the_sub_environment(
    space: spaces.Space[Any], action: Any, match: str
) -> None:
    good = space.sample()
    batch = (good, action, good)
    with pytest.raises(InvalidActionError, match=match) as info:
        ActionChecker(space, 3).check(batch, field="step.actions")
    assert info.value.field == "step.actions[1]"
    assert str(info.value).startswith("step.actions[1]: ")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Box.contains warns before casting a list
        # contains itself raises on some (unequal or missing stacks): refused too.
        with contextlib.suppress(TypeError, ValueError, KeyError):
            assert not space.contains(action)


@pytest.mark.parametrize(
    ("space", "actions", "match"),
    [
        (spaces.Text(3), ["a", "b"], "got list; expected a tuple of 2 actions"),
        (spaces.Text(3), ("a",), "1 actions for 2 sub-environments"),
        (spaces.Text(3), np.array(["a", "b"]), "got ndarray"),
        (GRAPH, None, "got NoneType"),
    ],
    ids=["list", "too-few", "array", "none"],
)
def test_batches_must_be_tuples_of_num_envs_actions(
    space: spaces.Space[Any], actions: Any, match: str
) -> None:
    with pytest.raises(InvalidActionError, match=match) as info:
        ActionChecker(space, 2).check(actions)
    assert info.value.field == "actions"


def test_paths_inside_dicts_and_tuples_end_with_the_sub_environment() -> None:
    space = spaces.Dict(
        {"my text": spaces.Text(2, charset="a"), "pair": spaces.Tuple((BOX, spaces.Text(1)))}
    )
    actions = {
        "my text": ("a", "a"),
        "pair": (np.zeros((2, 2), np.float32), ("x", "")),
    }
    with pytest.raises(InvalidActionError) as info:
        ActionChecker(space, 2).check(actions)
    assert info.value.field == "actions.pair[1][1]"
    actions["my text"] = ("a", "b")
    with pytest.raises(InvalidActionError) as info:
        ActionChecker(space, 2).check(actions)
    assert info.value.field == 'actions["my text"][1]'


def test_huge_graphs_are_checked_as_arrays() -> None:
    # A million nodes: checked with numpy (the last node is the bad one, and found),
    # where Graph.contains would loop in Python over every node.
    space = spaces.Graph(spaces.Discrete(4), None)
    nodes = np.zeros(1_000_000, np.int64)
    checker = ActionChecker(space, 1)
    checker.check((GraphInstance(nodes, None, None),))
    nodes[-1] = 4
    with pytest.raises(InvalidActionError, match=r"the nodes: 4 at \(999999,\) is outside"):
        checker.check((GraphInstance(nodes, None, None),))


@pytest.mark.parametrize(
    "action",
    [
        GraphInstance(np.array([object(), 1], dtype=object), None, None),
        GraphInstance({"not": "nodes"}, None, None),
        GraphInstance(np.array(["a", "b"]), None, None),
        GraphInstance(NODES, np.zeros((2, 3)), LINKS),
        GraphInstance(NODES, np.array([0, 1]), np.zeros((2, 2, 2), np.int64)),
    ],
    ids=["object-nodes", "dict-nodes", "str-nodes", "edge-shape", "link-rank"],
)
def test_hostile_graphs_are_refused_not_raised_on(action: Any) -> None:
    with pytest.raises(InvalidActionError) as info:
        ActionChecker(GRAPH, 1).check((action,))
    assert info.value.field == "actions[0]"


def test_box_and_discrete_batches_keep_their_checks() -> None:
    ActionChecker(BOX, 2).check(np.zeros((2, 2), np.float64))  # any float dtype, as before
    with pytest.raises(InvalidActionError, match=r"actions\[1\]: 3 is outside Discrete\(3\)"):
        ActionChecker(spaces.Discrete(3), 2).check(np.array([0, 3]))
