"""Reset and step, unary and streamed, against in-process Gymnasium as the reference."""

from __future__ import annotations

from typing import Any

import grpc
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymrpc_testing import (
    Running,
    Stream,
    create,
    reason_and_field,
    rpc_error,
    status_of,
    step_request,
)

from gymrpc.errors import from_status
from gymrpc.tensors import decode_tensor, encode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.v1.tensor_pb2 import DataType, Tensor
from gymrpc.v1.value_pb2 import Value
from gymrpc.values import decode_map, decode_value, encode_value

SYNC = pb.VECTORIZATION_MODE_SYNC
MODES = {
    AutoresetMode.NEXT_STEP: pb.AUTORESET_MODE_NEXT_STEP,
    AutoresetMode.SAME_STEP: pb.AUTORESET_MODE_SAME_STEP,
    AutoresetMode.DISABLED: pb.AUTORESET_MODE_DISABLED,
}


def unpack_step(response: pb.StepResponse) -> tuple[Any, ...]:
    return (
        decode_value(response.observations),
        decode_tensor(response.rewards),
        decode_tensor(response.terminations),
        decode_tensor(response.truncations),
        decode_map(response.info),
    )


def unpack_reset(response: pb.ResetResponse) -> tuple[Any, ...]:
    return decode_value(response.observations), decode_map(response.info)


def assert_same(remote: tuple[Any, ...], local: tuple[Any, ...]) -> None:
    assert len(remote) == len(local)
    for got, want in zip(remote, local, strict=True):
        assert data_equivalence(got, want, exact=True), (got, want)


def reference(env_id: str, num_envs: int, mode: AutoresetMode) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: gym.make(env_id)] * num_envs, autoreset_mode=mode)


def mask_tensor(mask: list[bool]) -> Any:
    return encode_tensor(np.array(mask, dtype=np.bool_))


@pytest.mark.parametrize("mode", list(MODES), ids=lambda m: m.name)
@pytest.mark.parametrize("transport", ["unary", "stream"])
def test_cartpole_matches_sync_vector_env(
    running: Running, mode: AutoresetMode, transport: str
) -> None:
    stub = running.stub()
    num_envs = 3
    session = create(
        stub, "CartPole-v1", num_envs, autoreset_mode=MODES[mode], vectorization_mode=SYNC
    )
    local = reference("CartPole-v1", num_envs, mode)
    stream = running.stream(stub) if transport == "stream" else None
    sequence = 0

    def reset(**fields: Any) -> tuple[Any, ...]:
        nonlocal sequence
        request = pb.ResetRequest(session_id=session.session_id, **fields)
        if stream is None:
            return unpack_reset(stub.Reset(request))
        sequence += 1
        response = stream.round_trip(pb.StreamSessionRequest(sequence=sequence, reset=request))
        assert response.sequence == sequence
        return unpack_reset(response.reset)

    def step(batch: Any) -> tuple[Any, ...]:
        nonlocal sequence
        request = step_request(session.session_id, batch)
        if stream is None:
            return unpack_step(stub.Step(request))
        sequence += 1
        response = stream.round_trip(pb.StreamSessionRequest(sequence=sequence, step=request))
        assert response.WhichOneof("response") == "step", response.error.message
        return unpack_step(response.step)

    assert_same(reset(seed=42), local.reset(seed=42))
    rng = np.random.default_rng(0)
    for _ in range(150):
        batch = rng.integers(0, 2, size=num_envs)
        remote = step(batch)
        assert_same(remote, local.step(batch))
        if mode is AutoresetMode.DISABLED:
            done = remote[2] | remote[3]
            if done.any():
                assert_same(
                    reset(reset_mask=mask_tensor(done.tolist())),
                    local.reset(options={"reset_mask": done}),
                )
    if stream is not None:
        stream.close()


def test_per_env_seeds_and_partial_reset(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 3, vectorization_mode=SYNC)
    local = reference("CartPole-v1", 3, AutoresetMode.NEXT_STEP)
    seeds = pb.PerEnvSeeds(values=encode_tensor(np.array([5, 6, 7], dtype=np.uint64)))
    remote = unpack_reset(stub.Reset(pb.ResetRequest(session_id=session.session_id, seeds=seeds)))
    assert_same(remote, local.reset(seed=[5, 6, 7]))
    for _ in range(3):
        assert_same(
            unpack_step(stub.Step(step_request(session.session_id, [1, 0, 1]))),
            local.step(np.array([1, 0, 1])),
        )
    # None for env 1: it continues its own random stream.
    seeds = pb.PerEnvSeeds(
        values=encode_tensor(np.array([9, 0, 2**63], dtype=np.uint64)),
        present=encode_tensor(np.array([True, False, True])),
    )
    remote = unpack_reset(stub.Reset(pb.ResetRequest(session_id=session.session_id, seeds=seeds)))
    assert_same(remote, local.reset(seed=[9, None, 2**63]))
    request = pb.ResetRequest(
        session_id=session.session_id, seed=11, reset_mask=mask_tensor([False, True, False])
    )
    assert_same(
        unpack_reset(stub.Reset(request)),
        local.reset(seed=11, options={"reset_mask": np.array([False, True, False])}),
    )


def test_pipelined_requests_are_answered_in_order(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "gymrpc/Turbofan-v0", 4)
    lockstep = create(stub, "gymrpc/Turbofan-v0", 4)
    stream, reference_stream = running.stream(stub), running.stream(stub)
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 3, size=4) for _ in range(30)]
    stream.send(
        pb.StreamSessionRequest(
            sequence=10, reset=pb.ResetRequest(session_id=session.session_id, seed=3)
        )
    )
    for index, batch in enumerate(batches):
        stream.send(
            pb.StreamSessionRequest(
                sequence=11 + index, step=step_request(session.session_id, batch)
            )
        )
    pipelined = [stream.receive() for _ in range(len(batches) + 1)]
    assert [r.sequence for r in pipelined] == list(range(10, 11 + len(batches)))
    expected = reference_stream.round_trip(
        pb.StreamSessionRequest(
            sequence=1, reset=pb.ResetRequest(session_id=lockstep.session_id, seed=3)
        )
    )
    assert_same(unpack_reset(pipelined[0].reset), unpack_reset(expected.reset))
    for index, batch in enumerate(batches):
        expected = reference_stream.round_trip(
            pb.StreamSessionRequest(
                sequence=2 + index, step=step_request(lockstep.session_id, batch)
            )
        )
        assert_same(unpack_step(pipelined[index + 1].step), unpack_step(expected.step))
    stream.close()
    reference_stream.close()


def turbofan_run(
    stream: Stream, session_id: str, batches: list[Any], first: int = 1
) -> list[pb.StreamSessionResponse]:
    responses = [
        stream.round_trip(
            pb.StreamSessionRequest(
                sequence=first, reset=pb.ResetRequest(session_id=session_id, seed=5)
            )
        )
    ]
    for index, batch in enumerate(batches):
        responses.append(
            stream.round_trip(
                pb.StreamSessionRequest(
                    sequence=first + 1 + index, step=step_request(session_id, batch)
                )
            )
        )
    return responses


def test_new_stream_reattaches_and_retry_is_not_executed_twice(running: Running) -> None:
    stub = running.stub()
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 3, size=2) for _ in range(12)]
    clean = create(stub, "gymrpc/Turbofan-v0", 2)
    expected = turbofan_run(running.stream(stub), clean.session_id, batches)

    session = create(stub, "gymrpc/Turbofan-v0", 2)
    first = running.stream(stub)
    got = turbofan_run(first, session.session_id, batches[:6])
    first.call.cancel()  # the connection "drops"
    second = running.stream(stub)
    # The client does not know whether its last step ran: it sends it again.
    retried = second.round_trip(
        pb.StreamSessionRequest(sequence=7, step=step_request(session.session_id, batches[5]))
    )
    assert retried == got[-1]
    for index, batch in enumerate(batches[6:]):
        got.append(
            second.round_trip(
                pb.StreamSessionRequest(
                    sequence=8 + index, step=step_request(session.session_id, batch)
                )
            )
        )
    assert [r.SerializeToString(deterministic=True) for r in got] == [
        r.SerializeToString(deterministic=True) for r in expected
    ]
    # A repeated number with other content, or an older number, is refused.
    retries: list[tuple[int, Any]] = [(13, [2, 2]), (5, batches[0])]
    for sequence, batch in retries:
        response = second.round_trip(
            pb.StreamSessionRequest(sequence=sequence, step=step_request(session.session_id, batch))
        )
        error = from_status(response.error)
        assert error.reason == "OUT_OF_ORDER"
        assert error.field == "sequence"
    assert (
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session.last_sequence
        == 13
    )
    second.close()


def test_stream_is_bound_to_one_session(running: Running) -> None:
    stub = running.stub()
    one, two = create(stub), create(stub)
    stream = running.stream(stub)
    assert stream.round_trip(
        pb.StreamSessionRequest(sequence=1, reset=pb.ResetRequest(session_id=one.session_id))
    ).HasField("reset")
    response = stream.round_trip(
        pb.StreamSessionRequest(sequence=2, reset=pb.ResetRequest(session_id=two.session_id))
    )
    assert from_status(response.error).reason == "OUT_OF_ORDER"
    assert "belongs to session" in response.error.message
    response = stream.round_trip(pb.StreamSessionRequest(sequence=3))
    assert from_status(response.error).reason == "INVALID_ARGUMENT"
    assert stream.round_trip(
        pb.StreamSessionRequest(sequence=4, step=step_request(one.session_id, [0, 1]))
    ).HasField("step")
    stream.close()


def test_an_unknown_session_on_a_stream_does_not_end_it(running: Running) -> None:
    stub = running.stub()
    session = create(stub)
    stream = running.stream(stub)
    response = stream.round_trip(
        pb.StreamSessionRequest(sequence=1, reset=pb.ResetRequest(session_id="nope"))
    )
    assert response.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert stream.round_trip(
        pb.StreamSessionRequest(sequence=2, reset=pb.ResetRequest(session_id=session.session_id))
    ).HasField("reset")
    stream.close()


BAD_STEPS: list[tuple[str, Any, str, str]] = [
    (
        "count",
        encode_value(np.array([0, 1, 0])),
        "INVALID_ACTION",
        "3 actions for 2 sub-environments",
    ),
    ("scalar", encode_value(np.int64(1)), "INVALID_ACTION", "got int64"),
    (
        "dtype",
        encode_value(np.array([0, 1], dtype=np.int32)),
        "INVALID_ACTION",
        "dtype int32; expected int64",
    ),
    (
        "float",
        encode_value(np.array([0.0, 1.0])),
        "INVALID_ACTION",
        "dtype float64; expected int64",
    ),
    (
        "shape",
        encode_value(np.zeros((2, 1), dtype=np.int64)),
        "INVALID_ACTION",
        "shape (2, 1); expected (2,)",
    ),
    (
        "range",
        encode_value(np.array([0, 2])),
        "INVALID_ACTION",
        "actions[1]: 2 is outside Discrete(2)",
    ),
    ("negative", encode_value(np.array([-1, 0])), "INVALID_ACTION", "actions[0]: -1 is outside"),
    ("list", encode_value([0, 1]), "INVALID_ACTION", "got list"),
    ("missing", None, "INVALID_ACTION", "actions: missing"),
    (
        "garbage",
        Value(array_value=Tensor(dtype=DataType.ValueType(5), shape=[2], data=b"123")),
        "INVALID_TENSOR",
        "actions.data: 3 bytes",
    ),
    (
        "huge",
        Value(array_value=Tensor(dtype=DataType.ValueType(5), shape=[2**40, 2**40], data=b"")),
        "TENSOR_TOO_LARGE",
        "above the limit",
    ),
    (
        "negative-dim",
        Value(array_value=Tensor(dtype=DataType.ValueType(5), shape=[-2], data=b"")),
        "INVALID_TENSOR",
        "dimension 0",
    ),
    (
        "unknown-dtype",
        Value(array_value=Tensor(dtype=DataType.ValueType(77), shape=[2], data=b"")),
        "INVALID_TENSOR",
        "unknown data type",
    ),
    ("empty-value", Value(), "INVALID_VALUE", "no kind is set"),
]


@pytest.mark.parametrize(
    ("name", "value", "reason", "text"), BAD_STEPS, ids=[case[0] for case in BAD_STEPS]
)
def test_bad_actions_are_refused_and_change_nothing(
    running: Running, name: str, value: Any, reason: str, text: str
) -> None:
    stub = running.stub()
    session = create(stub, "CartPole-v1", 2, vectorization_mode=SYNC)
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=8))
    local = reference("CartPole-v1", 2, AutoresetMode.NEXT_STEP)
    local.reset(seed=8)
    bad = pb.StepRequest(session_id=session.session_id)
    if value is not None:
        bad.actions.CopyFrom(value)
    stream = running.stream(stub)
    for sequence in range(1, 4):
        error = rpc_error(lambda: stub.Step(bad))
        assert error.code().name in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED")
        assert reason_and_field(status_of(error))[0] == reason
        assert text in (error.details() or "")
        response = stream.round_trip(pb.StreamSessionRequest(sequence=sequence * 2, step=bad))
        assert from_status(response.error).reason == reason
        good = stream.round_trip(
            pb.StreamSessionRequest(
                sequence=sequence * 2 + 1, step=step_request(session.session_id, [1, 0])
            )
        )
        assert_same(unpack_step(good.step), local.step(np.array([1, 0])))
    stream.close()


def test_box_actions_refuse_nan_and_out_of_bounds(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "Pendulum-v1", 2)
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    for values, text in (
        ([[0.0], [np.nan]], "actions[1]: nan at element (0,) is outside"),
        ([[2.5], [0.0]], "actions[0]: 2.5 at element (0,) is outside"),
        ([[-np.inf], [0.0]], ": -inf at element"),
    ):
        error = rpc_error(lambda: stub.Step(step_request(session.session_id, values, np.float32)))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert text in (error.details() or "")
    stub.Step(step_request(session.session_id, [[2.0], [-2.0]], np.float32))


def test_step_before_reset_and_partial_first_reset(running: Running) -> None:
    stub = running.stub()
    session = create(stub)
    error = rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 1])))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "must be reset" in (error.details() or "")
    error = rpc_error(
        lambda: stub.Reset(
            pb.ResetRequest(session_id=session.session_id, reset_mask=mask_tensor([True, False]))
        )
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("mask", "text"),
    [
        (encode_tensor(np.array([1, 0], dtype=np.int8)), "dtype int8; expected bool"),
        (encode_tensor(np.array([True, False, True])), "shape (3,); expected (2,)"),
        (encode_tensor(np.array([False, False])), "all 2 entries are false"),
        (
            Tensor(dtype=DataType.ValueType(1), shape=[2], data=b"\x01\x02"),
            "bool element 1 is byte 2",
        ),
    ],
    ids=["dtype", "shape", "all-false", "bad-bool-bytes"],
)
def test_bad_reset_masks(running: Running, mask: Any, text: str) -> None:
    stub = running.stub()
    session = create(stub)
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    error = rpc_error(
        lambda: stub.Reset(pb.ResetRequest(session_id=session.session_id, reset_mask=mask))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert text in (error.details() or "")


def test_bad_seeds(running: Running) -> None:
    stub = running.stub()
    session = create(stub, num_envs=2)
    for request, text in (
        (pb.ResetRequest(session_id=session.session_id, seed=2**64 - 1), "does not fit in 64 bits"),
        (
            pb.ResetRequest(
                session_id=session.session_id,
                seeds=pb.PerEnvSeeds(values=encode_tensor(np.array([1, 2], np.int64))),
            ),
            "expected uint64 of shape (2,)",
        ),
        (
            pb.ResetRequest(
                session_id=session.session_id,
                seeds=pb.PerEnvSeeds(values=encode_tensor(np.array([1], np.uint64))),
            ),
            "expected uint64 of shape (2,)",
        ),
    ):
        error = rpc_error(lambda: stub.Reset(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert text in (error.details() or "")
        assert reason_and_field(status_of(error))[0] == "INVALID_SEED"


def test_reset_options_reach_the_environment_or_are_refused(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "gymrpc-test/Faulty-v0", 2)
    request = pb.ResetRequest(session_id=session.session_id)
    request.options["explode"].CopyFrom(encode_value(True))
    error = rpc_error(lambda: stub.Reset(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'explode' is not supported" in (error.details() or "")
    request = pb.ResetRequest(session_id=session.session_id)
    request.options["reset_mask"].CopyFrom(encode_value(np.array([True, True])))
    error = rpc_error(lambda: stub.Reset(request))
    assert "expected the mask in the reset_mask field" in (error.details() or "")


def test_disabled_mode_refuses_to_step_an_ended_env(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "gymrpc/Turbofan-v0", 2, autoreset_mode=pb.AUTORESET_MODE_DISABLED)
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=1))
    result = unpack_step(stub.Step(step_request(session.session_id, [2, 0])))  # env 0 sells
    assert result[2].tolist() == [True, False]
    error = rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 0])))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "sub-environments [0] ended" in (error.details() or "")
    assert reason_and_field(status_of(error))[0] == "EPISODE_ENDED"
    stub.Reset(
        pb.ResetRequest(session_id=session.session_id, reset_mask=mask_tensor([True, False]))
    )
    stub.Step(step_request(session.session_id, [0, 0]))


def test_environment_errors_are_internal_and_need_a_reset(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "gymrpc-test/Faulty-v0", 2)
    stub.Reset(pb.ResetRequest(session_id=session.session_id))
    for action, text in ((1, "the simulator crashed"), (2, "cannot carry")):
        error = rpc_error(lambda: stub.Step(step_request(session.session_id, [action, 0])))
        assert error.code() is grpc.StatusCode.INTERNAL
        assert text in (error.details() or "")
        assert reason_and_field(status_of(error))[0] == "ENVIRONMENT_ERROR"
        error = rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 0])))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        stub.Reset(pb.ResetRequest(session_id=session.session_id))
        stub.Step(step_request(session.session_id, [0, 0]))
    # The server and other sessions never noticed.
    other = create(stub)
    stub.Reset(pb.ResetRequest(session_id=other.session_id))


def test_unary_channel_stub_type(running: Running) -> None:
    assert isinstance(running.stub(), pb_grpc.EnvServiceStub)
