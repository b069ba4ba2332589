"""Every Gymnasium space through a real server: a remote batch equals SyncVectorEnv.

The environments of ``gymrpc_space_envs`` observe and act in Text, Sequence (stacked
and not), Graph (with and without an edge space) and OneOf spaces, alone and nested
three deep in Dict and Tuple spaces. For each one and each autoreset mode, a remote
batch run by the server's ``SyncVectorEnv`` and a local ``SyncVectorEnv`` take the same
seeded actions (sampled from each side's own batched action space, which must agree),
and every reset and step result, infos with ``final_obs`` and ``final_info`` included,
must be ``data_equivalence``-equal.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces import GraphInstance
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from gymrpc_space_envs import SPACE_CASES, env_id
from gymrpc_testing import (
    Running,
    Serve,
    create,
    reason_and_field,
    rpc_error,
    status_of,
)
from vector_reference import MODES, Lockstep, remote_env, sync_reference

from gymrpc.errors import InvalidActionError, ResponseTooLargeError, from_status
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import encode_value

NUM_ENVS = 3
STEPS = 40
#: Gymnasium's own sampling of graphs with nested features (up to 90 edges, each a
#: nested sample) takes most of a run's time: fewer steps still end episodes both ways.
STEPS_OF = {"GraphFeatures": 16}


@pytest.fixture
def space_server(serve: Serve) -> Running:
    """A server that serves the environments of gymrpc_space_envs."""
    return serve(env_modules=("gymrpc_test_envs", "gymrpc_space_envs"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_remote_equals_sync_vector_env(
    space_server: Running, case: str, mode: AutoresetMode
) -> None:
    with Lockstep(
        remote_env(space_server.target, env_id(case), NUM_ENVS, mode, "sync"),
        sync_reference(env_id(case), NUM_ENVS, mode),
    ) as lockstep:
        remote, local = lockstep.remote, lockstep.local
        assert remote.single_observation_space == local.single_observation_space
        assert remote.single_action_space == local.single_action_space
        assert remote.observation_space == batch_space(local.single_observation_space, NUM_ENVS)
        assert remote.action_space == batch_space(local.single_action_space, NUM_ENVS)
        assert remote.observation_space == local.observation_space
        assert remote.action_space == local.action_space
        events = lockstep.run(STEPS_OF.get(case, STEPS), seed=11)
    # Episodes ended both ways (so final_obs and final_info were compared in
    # SAME_STEP) and partial resets staggered them.
    assert events["terminated"] > 0
    assert events["truncated"] > 0
    assert events["partial resets"] > 0


@pytest.fixture
def text_env(space_server: Running) -> Any:
    env = remote_env(space_server.target, env_id("Text"), NUM_ENVS)
    env.reset(seed=0)
    yield env
    env.close()


@pytest.mark.parametrize(
    ("actions", "error", "match"),
    [
        ("zyx", TypeError, "got a single action 'zyx'"),
        (3, TypeError, r"got 3 \(int\)"),
        (("z", "y"), ValueError, "2 actions for 3 sub-environments"),
    ],
    ids=["one-string", "scalar", "too-few"],
)
def test_text_batches_that_are_not_batches_are_refused_by_the_client(
    text_env: Any, actions: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        text_env.step(actions)
    text_env.step(("z", "yy", "xyz"))  # nothing was left pending


@pytest.mark.parametrize(
    ("actions", "field", "match"),
    [
        (("z", "ya", "x"), "step.actions[1]", r"'a' \(position 1\) is not in the character set"),
        (("z", "y", ""), "step.actions[2]", "a str of 0 characters; expected 1 to 4"),
        (("z", "y", np.zeros(2)), "step.actions[2]", "an array of shape"),
    ],
    ids=["bad-character", "too-short", "not-a-string"],
)
def test_text_actions_outside_the_space_are_refused_by_the_server(
    text_env: Any, actions: Any, field: str, match: str
) -> None:
    with pytest.raises(InvalidActionError, match=match) as info:
        text_env.step(actions)
    assert info.value.status is not None  # the server's answer
    # The client steps on the session stream, whose requests are the root of the path.
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    text_env.step(["z", "y", "x"])  # a list is a batch too


def test_nested_actions_name_the_sub_environment_at_fault(space_server: Running) -> None:
    env = remote_env(space_server.target, env_id("Nested"), NUM_ENVS)
    env.reset(seed=0)
    env.action_space.seed(0)
    plans, choices, boxes = env.action_space.sample()
    wrong = (np.int64(1), (np.int64(2), (np.zeros(1, np.float32),)))  # Discrete(2) gets 2
    choices = (*choices[:2], wrong)
    with pytest.raises(InvalidActionError, match="the value of option 1: item 0: 2") as info:
        env.step((plans, choices, boxes))
    assert info.value.field == "step.actions[1][2]"
    nan_box = (np.int64(1), (np.int64(0), (np.full(1, np.nan, np.float32),)))
    with pytest.raises(InvalidActionError, match="nan") as info:
        env.step((plans, (*choices[:2], nan_box), boxes))
    assert info.value.field == "step.actions[1][2]"
    env.close()


def test_graph_observations_are_graph_instances(space_server: Running) -> None:
    env = remote_env(space_server.target, env_id("Graph"), 2)
    observations, _ = env.reset(seed=3)
    assert type(observations) is tuple
    assert all(type(graph) is spaces.GraphInstance for graph in observations)
    assert env.observation_space.contains(observations)
    local = gym.make(env_id("Graph"))
    first, _ = local.reset(seed=3)
    assert first.nodes.dtype == observations[0].nodes.dtype == np.float32
    np.testing.assert_array_equal(observations[0].nodes, first.nodes)
    local.close()
    env.close()


def test_sessions_count_what_unbounded_observations_hold_at_least(serve: Serve) -> None:
    # A OneOf(Discrete(3), Box((2,)), Text(5)) observation holds its int64 index and at
    # least its smallest option, a 1-character string: 9 bytes, plus 10 bytes of reward
    # and flags per sub-environment. Texts, sequences and graphs may be longer; what
    # they hold beyond that is caught when a result is sent. (The limit leaves room for
    # the session's description, generator states included.)
    running = serve(max_message_bytes=3000, env_modules=("gymrpc_test_envs", "gymrpc_space_envs"))
    stub = running.stub()
    error = rpc_error(lambda: create(stub, env_id("OneOf"), 158))
    refusal = from_status(status_of(error))
    assert isinstance(refusal, ResponseTooLargeError)
    assert refusal.metadata == {"limit": "3000", "result_bytes": str(158 * 19)}
    session = create(stub, env_id("OneOf"), 157)
    assert session.num_envs == 157


def test_malformed_and_hostile_graph_actions_over_the_raw_protocol(space_server: Running) -> None:
    stub = space_server.stub()
    session_id = create(stub, env_id("Graph"), 2).session_id
    stub.Reset(pb.ResetRequest(session_id=session_id), timeout=30)
    good = GraphInstance(np.array([0, 1, 2], np.int64), None, None)

    def step(nodes: Any, edge_links: Any = None) -> tuple[str, str | None]:
        # Built by hand: the client refuses to encode a malformed graph.
        request = pb.StepRequest(session_id=session_id)
        items = request.actions.tuple_value.items
        items.add().CopyFrom(encode_value(good))
        graph = items.add().graph_value
        graph.nodes.array_value.CopyFrom(encode_tensor(nodes))
        if edge_links is not None:
            graph.edges.array_value.CopyFrom(encode_tensor(np.zeros(len(edge_links), np.int64)))
            graph.edge_links.CopyFrom(encode_tensor(edge_links))
        error = rpc_error(lambda: stub.Step(request, timeout=30))
        return reason_and_field(status_of(error))

    # Not a graph at all: the codec refuses it (INVALID_VALUE).
    assert step(np.array([0, 1]), np.array([[0, 7]])) == ("INVALID_VALUE", "actions[1].edge_links")
    # A graph, outside the space: the action check refuses it (INVALID_ACTION).
    assert step(np.array([0, 9])) == ("INVALID_ACTION", "actions[1]")
    assert step(np.zeros((2, 2), np.int64)) == ("INVALID_ACTION", "actions[1]")
    assert step(np.array([0.5, 1.0])) == ("INVALID_ACTION", "actions[1]")
    # Edges on a Graph without an edge space.
    assert step(np.array([0, 1]), np.array([[0, 1]])) == ("INVALID_ACTION", "actions[1]")
    # A million nodes, the last one out of the space.
    nodes = np.zeros(1_000_000, np.int64)
    nodes[-1] = 5
    assert step(nodes) == ("INVALID_ACTION", "actions[1]")
    # The session goes on.
    request = pb.StepRequest(session_id=session_id, actions=encode_value((good, good)))
    stub.Step(request, timeout=30)


def test_graph_actions_with_structured_features_over_the_raw_protocol(
    space_server: Running,
) -> None:
    # GraphFeatures acts in Dict({"graph": Graph(Tuple((Discrete(4), Dict(on:
    # MultiBinary(2), level: Box((1,))))), Dict(weight: Box((1,)), tag: OneOf(...))),
    # "bits": MultiBinary(2)}): its graphs' nodes are a tuple of stacks, its edges a
    # dict of stacks, which only the space can count.
    stub = space_server.stub()
    session_id = create(stub, env_id("GraphFeatures"), 2).session_id
    stub.Reset(pb.ResetRequest(session_id=session_id), timeout=30)
    space = SPACE_CASES["GraphFeatures"]()[1]
    space.seed(1)
    good = space.sample()
    kinds, features = good["graph"].nodes
    num_nodes = len(kinds)
    edges = good["graph"].edges
    one_edge = {"weight": edges["weight"][:1], "tag": edges["tag"][:1]}

    def request(graph: Any) -> pb.StepRequest:
        # In the space's key order (sorted), as the client sends them.
        batch = {"bits": np.stack([good["bits"]] * 2), "graph": (good["graph"], graph)}
        return pb.StepRequest(session_id=session_id, actions=encode_value(batch))

    def refusal(message: pb.StepRequest) -> tuple[str, str | None]:
        return reason_and_field(status_of(rpc_error(lambda: stub.Step(message, timeout=30))))

    # The codec cannot count a tuple of stacks: the action check does.
    beyond = GraphInstance(good["graph"].nodes, one_edge, np.array([[0, num_nodes]]))
    assert refusal(request(beyond)) == ("INVALID_ACTION", "actions.graph[1]")
    shorter = GraphInstance((kinds[:-1], features), None, None)
    assert refusal(request(shorter)) == ("INVALID_ACTION", "actions.graph[1]")
    flipped = {"on": features["on"].copy(), "level": features["level"]}
    flipped["on"][0, 0] = 2
    assert refusal(request(GraphInstance((kinds, flipped), None, None))) == (
        "INVALID_ACTION",
        "actions.graph[1]",
    )
    # Features that are no stack at all: the codec refuses them (INVALID_VALUE).
    message = request(good["graph"])
    graph = message.actions.dict_value.entries[1].value.tuple_value.items[1].graph_value
    graph.nodes.CopyFrom(encode_value("nodes"))
    assert refusal(message) == ("INVALID_VALUE", "actions.graph[1].nodes")
    # The session goes on, and a good graph arrives intact (the environment checks).
    stub.Step(request(GraphInstance((kinds, features), one_edge, np.array([[0, 1]]))), timeout=30)
