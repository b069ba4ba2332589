"""batch_actions: Gymnasium's batched form of every space goes through; non-batches do not.

Batches of Text, Sequence, Graph and OneOf actions are tuples of one action per
sub-environment (``batch_space``); any sequence of them is accepted. What is not a
batch raises ``TypeError`` and a wrong batch size ``ValueError``, as Gymnasium's vector
environments do. Whether each action lies in the space is the server's check
(tests/gymrpc_server/test_action_checker.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces import GraphInstance
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector.utils import batch_space
from gymrpc_space_envs import nested_spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from gymrpc.batching import batch_actions
from gymrpc.errors import InvalidActionError
from gymrpc.values import encode_value

GRAPH = spaces.Graph(spaces.Box(0, 1, (2,), np.float32), None)
ONE_OF = spaces.OneOf((spaces.Discrete(2), spaces.Text(3)))


@settings(max_examples=60, deadline=None)
@given(nested_spaces(3), st.integers(0, 2**31), st.integers(1, 3))
def test_samples_of_the_batched_space_pass_unchanged(
    space: spaces.Space[Any], seed: int, num_envs: int
) -> None:
    batched = batch_space(space, num_envs)
    batched.seed(seed)
    actions = batched.sample()
    result = batch_actions(space, actions, num_envs)
    assert data_equivalence(result, actions, exact=True)
    encode_value(result)  # and it can be sent


def test_array_batches_keep_their_fast_path() -> None:
    actions = np.zeros((4, 2), np.float32)
    assert batch_actions(spaces.Box(-1, 1, (2,), np.float32), actions, 4) is actions
    discrete = np.array([0, 1, 2])
    assert batch_actions(spaces.Discrete(3), discrete, 3) is discrete


@pytest.mark.parametrize(
    ("space", "actions", "expected"),
    [
        (spaces.Text(3), ["ab", "c"], ("ab", "c")),
        (spaces.Text(3), np.array(["ab", "c"], dtype=object), ("ab", "c")),
        (ONE_OF, [(np.int64(0), np.int64(1)), (1, "ab")], ((np.int64(0), np.int64(1)), (1, "ab"))),
        (spaces.Sequence(spaces.Discrete(2)), [(), (np.int64(1),)], ((), (np.int64(1),))),
    ],
    ids=["list", "object-array", "one-of", "sequence"],
)
def test_any_sequence_of_actions_becomes_a_tuple(
    space: spaces.Space[Any], actions: Any, expected: tuple[Any, ...]
) -> None:
    result = batch_actions(space, actions, 2)
    assert type(result) is tuple
    assert data_equivalence(result, expected, exact=True)


def test_a_float_array_for_a_sequence_space_is_not_taken_for_an_array_batch() -> None:
    # np.dtype("float64") == None holds, and a Sequence's dtype is None: the array fast
    # path must not send this as a Box batch.
    result = batch_actions(spaces.Sequence(spaces.Box(0, 1)), np.zeros(2), 2)
    assert type(result) is tuple


@pytest.mark.parametrize(
    ("space", "actions", "match"),
    [
        (spaces.Text(3), "abc", "got a single action 'abc'"),
        (GRAPH, GraphInstance(np.zeros((1, 2), np.float32), None, None), "single action"),
        (ONE_OF, (np.int64(0), np.int64(1)), "single action"),
        (spaces.Text(3), 3, r"got 3 \(int\)"),
        (spaces.Text(3), None, r"got None \(NoneType\)"),
        (spaces.Text(3), {"a": "b"}, "got a dict"),
        (spaces.Text(3), (text for text in ["a", "b"]), "got a generator"),
        (spaces.Sequence(spaces.Discrete(2)), np.array(1), r"an array of shape \(\)"),
    ],
    ids=["str", "graph", "one-of-pair", "int", "none", "dict", "generator", "0d-array"],
)
def test_what_is_not_a_batch_is_a_type_error(
    space: spaces.Space[Any], actions: Any, match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        batch_actions(space, actions, 2)


def test_a_wrong_batch_size_is_a_value_error_naming_the_field() -> None:
    space = spaces.Dict({"my key": spaces.Text(3), "box": spaces.Box(0, 1, (2,))})
    actions = {"my key": ["a", "b", "c"], "box": np.zeros((2, 2), np.float32)}
    with pytest.raises(ValueError, match="3 actions for 2 sub-environments") as info:
        batch_actions(space, actions, 2)
    assert isinstance(info.value, InvalidActionError)
    assert info.value.field == 'actions["my key"]'


def test_dicts_and_tuples_convert_each_part() -> None:
    space = spaces.Tuple((spaces.Discrete(3), spaces.Dict({"g": GRAPH, "t": spaces.Text(2)})))
    graph = GraphInstance(np.zeros((1, 2), np.float32), None, None)
    result = batch_actions(space, ([0, 2], {"t": ["a", "b"], "g": [graph, graph]}), 2)
    assert data_equivalence(
        result, (np.array([0, 2]), {"g": (graph, graph), "t": ("a", "b")}), exact=True
    )
    # In the space's key order, whatever the caller's.
    assert list(result[1]) == ["g", "t"]
