"""The rules of StreamSession (env_service.proto), each checked against a real server."""

from __future__ import annotations

import numpy as np
from gymrpc_testing import Running, actions, create, reason_and_field

from gymrpc.v1 import env_service_pb2 as pb


def reset(sequence: int, session_id: str, seed: int = 0) -> pb.StreamSessionRequest:
    request = pb.StreamSessionRequest(sequence=sequence)
    request.reset.session_id = session_id
    request.reset.seed = seed
    return request


def step(sequence: int, session_id: str, values: list[int]) -> pb.StreamSessionRequest:
    request = pb.StreamSessionRequest(sequence=sequence)
    request.step.session_id = session_id
    request.step.actions.CopyFrom(actions(values))
    return request


def error_of(response: pb.StreamSessionResponse) -> tuple[str, str | None, str]:
    assert response.HasField("error"), response
    reason, field = reason_and_field(response.error)
    return reason, field, response.error.message


def test_field_paths_are_rooted_at_the_stream_request(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 2)
    stream = running.stream(stub)
    stream.round_trip(reset(1, session.session_id))
    reason, field, message = error_of(stream.round_trip(step(2, session.session_id, [0, 9])))
    assert (reason, field) == ("INVALID_ACTION", "step.actions[1]")
    assert message.startswith("step.actions[1]: ")
    bad_mask = reset(3, session.session_id)
    bad_mask.reset.reset_mask.CopyFrom(actions(np.zeros(2, np.bool_), np.bool_).array_value)
    reason, field, message = error_of(stream.round_trip(bad_mask))
    assert (reason, field) == ("INVALID_RESET_MASK", "reset.reset_mask")
    assert message.startswith("reset.reset_mask: ")
    stream.close()


def test_an_empty_session_id_is_invalid_even_on_a_bound_stream(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 1)
    stream = running.stream(stub)
    assert error_of(stream.round_trip(reset(1, "")))[:2] == (
        "INVALID_ARGUMENT",
        "reset.session_id",
    )
    stream.round_trip(reset(2, session.session_id))  # binds the stream
    assert error_of(stream.round_trip(step(3, "", [0])))[:2] == (
        "INVALID_ARGUMENT",
        "step.session_id",
    )
    other = create(stub, "CartPole-v1", 1)
    assert error_of(stream.round_trip(step(4, other.session_id, [0])))[:2] == (
        "OUT_OF_ORDER",
        "step.session_id",
    )
    stream.close()


def test_a_request_without_an_operation_is_invalid_and_consumes_nothing(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 1)
    stream = running.stream(stub)
    assert error_of(stream.round_trip(pb.StreamSessionRequest(sequence=1)))[:2] == (
        "INVALID_ARGUMENT",
        "request",
    )
    # Number 1 was not consumed: a reset may use it.
    assert stream.round_trip(reset(1, session.session_id)).HasField("reset")
    stream.close()


def test_refused_sequences_consume_nothing_and_failed_requests_do(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 1)
    stream = running.stream(stub)
    assert stream.round_trip(reset(5, session.session_id)).HasField("reset")
    # Lower: refused, nothing consumed; the latest stays 5.
    reason, field, _ = error_of(stream.round_trip(step(4, session.session_id, [0])))
    assert (reason, field) == ("OUT_OF_ORDER", "sequence")
    # A request that passes the checks and fails consumes its number (rule 4)...
    assert error_of(stream.round_trip(step(6, session.session_id, [7])))[0] == "INVALID_ACTION"
    # ...so the next one must be above it, and the failed step changed nothing.
    assert error_of(stream.round_trip(step(6, session.session_id, [0])))[0] == "OUT_OF_ORDER"
    assert stream.round_trip(step(7, session.session_id, [0])).HasField("step")
    stream.close()
    described = stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session
    assert described.last_sequence == 7


def test_a_repeat_is_replayed_only_with_identical_content(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 1)
    stream = running.stream(stub)
    stream.round_trip(reset(1, session.session_id))
    first = stream.round_trip(step(2, session.session_id, [1]))
    again = stream.round_trip(step(2, session.session_id, [1]))
    assert again == first  # answered from memory: not stepped twice
    reason, field, message = error_of(stream.round_trip(step(2, session.session_id, [0])))
    assert (reason, field) == ("OUT_OF_ORDER", "sequence")
    assert "different content" in message
    # The environment stepped once: the next step continues from the first one's state.
    third = stream.round_trip(step(3, session.session_id, [1]))
    assert third.HasField("step")
    stream.close()
