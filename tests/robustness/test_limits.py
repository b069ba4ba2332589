"""Every limit a server enforces is answered with a status, and nothing else breaks.

Oversized messages, too many sub-environments, sessions or steps, tensors that declare
too many elements, and more concurrent calls than the server takes: each gets
RESOURCE_EXHAUSTED (or INVALID_ARGUMENT) with a message, the server keeps serving,
and sessions that were not at fault go on exactly as Gymnasium would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymnasium.vector import AutoresetMode
from gymrpc_testing import TOKENS, Running, Serve, create, rpc_error, status_of, step_request
from vector_reference import Lockstep, sync_reference

import gymrpc
from gymrpc.errors import (
    InvalidNumEnvsError,
    NumEnvsLimitError,
    ResetNeededError,
    ResourceExhaustedError,
    ResponseTooLargeError,
    SessionLimitError,
    StepQuotaExhaustedError,
    from_status,
)
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1.tensor_pb2 import DataType, Tensor
from gymrpc.v1.value_pb2 import ObjectArray, Value
from gymrpc.values import encode_value

CARTPOLE = "CartPole-v1"
TURBOFAN = "gymrpc/Turbofan-v0"
MIB = 1 << 20
_T = TypeVar("_T")


def assert_serving(running: Running) -> None:
    """The standard health check still says SERVING."""
    stub = cast(Any, health_pb2_grpc.HealthStub)(running.channel())
    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def lockstep(running: Running, num_envs: int = 2, **client: Any) -> Lockstep:
    """A remote CartPole batch (run as SyncVectorEnv) and the same batch in-process."""
    remote = gymrpc.make_vec(
        CARTPOLE, num_envs, target=running.target, vectorization_mode="sync", timeout=30, **client
    )
    return Lockstep(remote, sync_reference(CARTPOLE, num_envs, AutoresetMode.NEXT_STEP))


def session_of(pair: Lockstep) -> str:
    remote = pair.remote
    assert isinstance(remote, gymrpc.RemoteVectorEnv)
    return remote.session_id


# --- message size -------------------------------------------------------------------------


def _oversized_unary(running: Running, session_id: str) -> grpc.RpcError:
    big = np.zeros(2 * MIB // 8, dtype=np.int64)
    return rpc_error(lambda: running.stub().Step(step_request(session_id, big), timeout=30))


def _oversized_stream(running: Running, session_id: str) -> grpc.RpcError:
    stream = running.stream(running.stub())
    big = np.zeros(2 * MIB // 8, dtype=np.int64)
    request = pb.StreamSessionRequest(sequence=10**6, step=step_request(session_id, big))
    try:
        return rpc_error(lambda: stream.round_trip(request))
    finally:
        stream.close()


@pytest.mark.parametrize("send", [_oversized_unary, _oversized_stream], ids=["unary", "stream"])
def test_an_oversized_message_is_refused_and_the_session_goes_on(
    serve: Serve, send: Callable[[Running, str], grpc.RpcError]
) -> None:
    running = serve(max_message_bytes=MIB)
    with lockstep(running) as pair:
        pair.run(steps=5, seed=3, partial_resets=False)
        error = send(running, session_of(pair))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (error.details() or ""), error.details()
        # The refused step changed nothing: the episode continues exactly.
        for _ in range(20):
            pair.step()
    assert_serving(running)


def test_a_session_whose_results_cannot_be_sent_is_refused_at_creation(serve: Serve) -> None:
    """Found: such a session used to be created, then every step ran and was lost.

    Now CreateSession refuses it (nothing exists yet, so nothing is lost) and says how
    many sub-environments would fit.
    """
    running = serve(max_message_bytes=256 * 1024)
    stub = running.stub()
    # 100 engines x 100 snapshots x 9 float32 sensors: 360 kB of observations per step.
    error = rpc_error(lambda: create(stub, TURBOFAN, 100, env_options={"step_size": 100}))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    refusal = from_status(status_of(error))
    assert (type(refusal), refusal.field) == (ResponseTooLargeError, "num_envs")
    assert refusal.metadata == {"limit": str(256 * 1024), "result_bytes": str(100 * 3610)}
    assert "expected at most 72 sub-environments" in refusal.message
    # SAME_STEP carries final observations too: half as many fit.
    error = rpc_error(
        lambda: create(
            stub,
            TURBOFAN,
            50,
            env_options={"step_size": 100},
            autoreset_mode=pb.AUTORESET_MODE_SAME_STEP,
        )
    )
    assert from_status(status_of(error)).reason == "RESPONSE_TOO_LARGE"
    usage = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).usage
    assert (usage.open_sessions, usage.steps_used) == (0, 0)
    # What fits with room for the info is served, through the client too.
    with gymrpc.make_vec(TURBOFAN, 64, target=running.target, step_size=100, timeout=30) as env:
        env.reset(seed=0)
        env.step(np.zeros(64, dtype=np.int64))
    with pytest.raises(ResponseTooLargeError, match="num_envs: 73 sub-environments"):
        gymrpc.make_vec(TURBOFAN, 73, target=running.target, step_size=100, timeout=30)
    assert_serving(running)


def test_a_result_too_large_to_send_is_a_precise_error(serve: Serve) -> None:
    """Infos are not bounded in advance: a step that ran but cannot be sent says so."""
    running = serve(max_message_bytes=256 * 1024)
    options = {"info_bytes": 200_000}
    with gymrpc.make_vec(
        "gymrpc-test/BigInfo-v0", 2, target=running.target, info_bytes=200_000
    ) as env:
        env.reset(seed=0)
        with pytest.raises(ResponseTooLargeError, match="step ran but its result cannot be sent"):
            env.step(np.zeros(2, dtype=np.int64))
        # The environments moved on: the session says so instead of pretending.
        with pytest.raises(ResetNeededError):
            env.step(np.zeros(2, dtype=np.int64))
        env.reset(seed=0)
    # The same over unary calls, with the figures in the details.
    stub = running.stub()
    session_id = create(stub, "gymrpc-test/BigInfo-v0", 2, env_options=options).session_id
    stub.Reset(pb.ResetRequest(session_id=session_id), timeout=30)
    error = rpc_error(lambda: stub.Step(step_request(session_id, [0, 0]), timeout=30))
    refusal = from_status(status_of(error))
    assert isinstance(refusal, ResponseTooLargeError)
    assert refusal.metadata["limit"] == str(256 * 1024)
    assert int(refusal.metadata["result_bytes"]) > 200_000
    assert stub.GetSession(pb.GetSessionRequest(session_id=session_id)).session.needs_reset
    assert_serving(running)


# --- sub-environments, sessions and steps ---------------------------------------------------


def test_num_envs_limits_through_the_client(serve: Serve) -> None:
    running = serve(max_num_envs=8)
    with pytest.raises(NumEnvsLimitError, match="9 exceeds this server's limit of 8") as info:
        gymrpc.make_vec(CARTPOLE, 9, target=running.target, timeout=30)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidNumEnvsError, match="num_envs: 0; expected at least 1"):
        gymrpc.make_vec(CARTPOLE, 0, target=running.target, timeout=30)
    with gymrpc.make_vec(CARTPOLE, 8, target=running.target, timeout=30) as env:
        env.reset(seed=0)
        env.step(env.action_space.sample())
    assert_serving(running)


def test_sessions_per_user_through_the_client(serve: Serve, tokens_file: Path) -> None:
    running = serve(tokens_file=tokens_file, max_sessions_per_user=2)
    with ExitStack() as stack:
        alice = [stack.enter_context(lockstep(running, token=TOKENS["alice"])) for _ in range(2)]
        with pytest.raises(SessionLimitError, match="'alice' already has 2 sessions open"):
            gymrpc.make_vec(CARTPOLE, 2, target=running.target, token=TOKENS["alice"])
        # Another user has slots of their own, and alice's sessions still work.
        with lockstep(running, token=TOKENS["bob"]) as bob:
            bob.run(steps=10, seed=1)
        for pair in alice:
            pair.run(steps=10, seed=2)
        alice.pop().close()
        with lockstep(running, token=TOKENS["alice"]) as again:
            again.run(steps=10, seed=3)
    assert_serving(running)


def test_an_exhausted_step_quota_refuses_steps_but_not_the_stream(
    serve: Serve, tokens_file: Path
) -> None:
    running = serve(tokens_file=tokens_file, step_quota=12)
    with lockstep(running, num_envs=4, token=TOKENS["alice"]) as pair:
        pair.run(steps=3, seed=0, partial_resets=False)
        actions = pair.remote.action_space.sample()
        for _ in range(2):
            with pytest.raises(StepQuotaExhaustedError, match="'alice' has used 12 of 12") as info:
                pair.remote.step(actions)
            assert isinstance(info.value, ResourceExhaustedError)
        # Resets are free; the refused steps changed nothing and the stream goes on.
        pair.reset(seed=5)
        info_response = running.stub(TOKENS["alice"]).GetServerInfo(pb.GetServerInfoRequest())
        assert info_response.usage.steps_used == 12
    with lockstep(running, num_envs=4, token=TOKENS["bob"]) as other:
        other.run(steps=3, seed=0, partial_resets=False)
    assert_serving(running)


# --- tensor sizes ------------------------------------------------------------------------

LIMIT = 64


def _huge(*shape: int, dtype: int = DataType.DATA_TYPE_INT64) -> Tensor:
    """A tensor declaring ``shape`` and carrying no bytes: only its declaration is big."""
    return Tensor(dtype=DataType.ValueType(dtype), shape=list(shape), data=b"")


def _with_options(**options: Value) -> Callable[[str], pb.ResetRequest]:
    return lambda session_id: pb.ResetRequest(session_id=session_id, options=options)


TOO_LARGE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "actions-with-data": (
        "actions.shape",
        lambda sid: pb.StepRequest(
            session_id=sid, actions=encode_value(np.zeros(LIMIT + 1, np.int64))
        ),
    ),
    "actions-declared-only": (
        "actions.shape",
        lambda sid: pb.StepRequest(session_id=sid, actions=Value(array_value=_huge(2, 2**40))),
    ),
    "actions-overflowing-shape": (
        "actions.shape",
        lambda sid: pb.StepRequest(
            session_id=sid, actions=Value(array_value=_huge(2**62, 2**62, 2**62))
        ),
    ),
    "reset-mask": (
        "reset_mask.shape",
        lambda sid: pb.ResetRequest(
            session_id=sid, reset_mask=_huge(10**9, dtype=DataType.DATA_TYPE_BOOL)
        ),
    ),
    "seeds": (
        "seeds.values.shape",
        lambda sid: pb.ResetRequest(
            session_id=sid,
            seeds=pb.PerEnvSeeds(values=_huge(10**9, dtype=DataType.DATA_TYPE_UINT64)),
        ),
    ),
    "reset-option": (
        "options.low.shape",
        _with_options(low=encode_value(np.zeros(LIMIT + 1))),
    ),
    "object-array": (
        "options.low.shape",
        _with_options(low=Value(object_array_value=ObjectArray(shape=[10**12]))),
    ),
}


@pytest.fixture
def limited(serve: Serve) -> Iterator[tuple[Running, Lockstep]]:
    """A server accepting tensors of at most LIMIT elements, and a session on it."""
    running = serve(max_tensor_elements=LIMIT)
    with lockstep(running) as pair:
        pair.reset(seed=0)
        yield running, pair
        # Whatever was refused, the session steps on exactly.
        for _ in range(5):
            pair.step()
    assert_serving(running)


@pytest.mark.parametrize("case", list(TOO_LARGE))
def test_tensors_above_max_tensor_elements_are_refused_before_allocation(
    limited: tuple[Running, Lockstep], case: str
) -> None:
    running, pair = limited
    field, build = TOO_LARGE[case]
    request = build(session_of(pair))
    stub = running.stub()
    call = stub.Step if isinstance(request, pb.StepRequest) else stub.Reset
    error = rpc_error(lambda: call(request, timeout=30))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    status = status_of(error)
    refusal = from_status(status)
    assert (refusal.reason, refusal.field) == ("TENSOR_TOO_LARGE", field), refusal.message
    assert f"more than {LIMIT} elements" in refusal.message
    quota = error_details_pb2.QuotaFailure()
    assert any(detail.Unpack(quota) for detail in status.details), "no QuotaFailure detail"


def test_tensors_within_max_tensor_elements_are_accepted(
    limited: tuple[Running, Lockstep],
) -> None:
    running, pair = limited
    # Exactly at the limit is fine for decoding; CartPole then refuses the shape.
    request = pb.StepRequest(
        session_id=session_of(pair), actions=encode_value(np.zeros(LIMIT, np.int64))
    )
    error = rpc_error(lambda: running.stub().Step(request, timeout=30))
    assert from_status(status_of(error)).reason == "INVALID_ACTION"
    pair.reset(seed=1, options={"reset_mask": np.ones(2, np.bool_)})


# --- concurrent calls ------------------------------------------------------------------------


def when_free(call: Callable[[], _T]) -> _T:
    """Make a call once the server has a free slot: it releases them asynchronously."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except (ResourceExhaustedError, grpc.RpcError) as error:
            code = error.code() if isinstance(error, grpc.RpcError) else ResourceExhaustedError.code
            if code is not grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_streams_beyond_max_concurrent_rpcs_are_refused_and_the_others_go_on(
    serve: Serve,
) -> None:
    running = serve(max_workers=4, max_concurrent_rpcs=4)
    with ExitStack() as stack:
        pairs = [stack.enter_context(lockstep(running)) for _ in range(4)]
        for seed, pair in enumerate(pairs):
            pair.reset(seed=seed)  # each client now holds a stream open
        with pytest.raises(ResourceExhaustedError, match="Concurrent RPC limit exceeded"):
            gymrpc.make_vec(CARTPOLE, 2, target=running.target, timeout=30)
        stream = running.stream(running.stub())
        request = pb.StreamSessionRequest(sequence=1, step=step_request(session_of(pairs[0]), [0]))
        error = rpc_error(lambda: stream.round_trip(request))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        for _ in range(10):
            for pair in pairs:
                pair.step()
        pairs.pop().close()
        remote = when_free(
            lambda: gymrpc.make_vec(
                CARTPOLE, 2, target=running.target, vectorization_mode="sync", timeout=30
            )
        )
        pair = stack.enter_context(
            Lockstep(remote, sync_reference(CARTPOLE, 2, AutoresetMode.NEXT_STEP))
        )
        pair.run(steps=10, seed=9)
        for other in pairs:
            other.step()
    assert_serving(running)


def test_closing_a_client_at_the_concurrency_limit_closes_its_session(serve: Serve) -> None:
    running = serve(max_workers=4, max_concurrent_rpcs=4)

    def client() -> gymrpc.RemoteVectorEnv:
        env = gymrpc.make_vec(CARTPOLE, 2, target=running.target, timeout=30)
        env.reset(seed=0)
        return env

    envs = [client() for _ in range(4)]
    try:
        for _ in range(30):
            closing = envs.pop(0)
            closing.close()
            stub = running.stub()
            open_sessions = when_free(
                lambda: stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
            ).usage.open_sessions
            assert open_sessions == 3, f"{closing.session_id[:8]} was not closed"
            envs.append(when_free(client))
    finally:
        for env in envs:
            env.close()
