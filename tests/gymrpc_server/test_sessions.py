"""Session life cycle, limits, ownership, quotas and idle reaping over real channels."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from gymrpc_testing import (
    TOKENS,
    Running,
    Serve,
    create,
    reason_and_field,
    rpc_error,
    status_of,
    step_request,
)

from gymrpc.spaces import decode_space
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_value


def assert_error(error: grpc.RpcError, code: grpc.StatusCode, reason: str, text: str) -> None:
    assert error.code() is code, error.details()
    assert reason_and_field(status_of(error))[0] == reason
    assert text in (error.details() or "")


def test_create_describe_and_close(running: Running) -> None:
    stub = running.stub()
    session = create(stub, "gymrpc/Turbofan-v0", num_envs=3, env_options={"step_size": 5}, seed=9)
    assert len(session.session_id) >= 32
    assert session.env_id == "gymrpc/Turbofan-v0"
    assert session.num_envs == 3
    assert session.autoreset_mode == pb.AUTORESET_MODE_NEXT_STEP
    assert session.vectorization_mode == pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT
    assert decode_space(session.single_observation_space).shape == (5, 9)
    assert decode_value(session.env_options["step_size"]) == 5
    assert decode_value(session.env_options["expose_hidden_state"]) is False
    assert session.needs_reset
    described = stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session
    # GetSession adds the environments' seeds, which creating a session does not read.
    assert not session.HasField("np_random_seed")
    assert described.HasField("np_random_seed")
    described.ClearField("np_random_seed")
    assert described == session
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.session_id))
    for call in (
        lambda: stub.GetSession(pb.GetSessionRequest(session_id=session.session_id)),
        lambda: stub.CloseSession(pb.CloseSessionRequest(session_id=session.session_id)),
        lambda: stub.Step(step_request(session.session_id, [0, 0, 0])),
    ):
        assert_error(rpc_error(call), grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "no session")
    assert len(running.server.registry) == 0


@pytest.mark.parametrize(
    ("mode", "vectorization", "expected"),
    [
        (pb.AUTORESET_MODE_NEXT_STEP, pb.VECTORIZATION_MODE_UNSPECIFIED, "native"),
        (pb.AUTORESET_MODE_SAME_STEP, pb.VECTORIZATION_MODE_UNSPECIFIED, "sync"),
        (pb.AUTORESET_MODE_DISABLED, pb.VECTORIZATION_MODE_UNSPECIFIED, "sync"),
        (pb.AUTORESET_MODE_NEXT_STEP, pb.VECTORIZATION_MODE_SYNC, "sync"),
    ],
    ids=["next-native", "same-sync", "disabled-sync", "forced-sync"],
)
def test_cartpole_vectorization_follows_what_the_native_env_supports(
    running: Running, mode: int, vectorization: int, expected: str
) -> None:
    session = create(
        running.stub(), "CartPole-v1", autoreset_mode=mode, vectorization_mode=vectorization
    )
    assert session.autoreset_mode == mode
    native = pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT
    assert (session.vectorization_mode == native) == (expected == "native")


def test_native_vectorization_in_an_unsupported_mode_is_refused(running: Running) -> None:
    error = rpc_error(
        lambda: create(
            running.stub(),
            "CartPole-v1",
            autoreset_mode=pb.AUTORESET_MODE_SAME_STEP,
            vectorization_mode=pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT,
        )
    )
    assert_error(
        error, grpc.StatusCode.FAILED_PRECONDITION, "UNSUPPORTED_AUTORESET", "runs natively only"
    )


@pytest.mark.parametrize(
    ("env_id", "code", "reason"),
    [
        ("NoSuchEnv-v0", grpc.StatusCode.NOT_FOUND, "ENV_NOT_FOUND"),
        ("os:System-v0", grpc.StatusCode.NOT_FOUND, "ENV_NOT_FOUND"),
        ("", grpc.StatusCode.NOT_FOUND, "ENV_NOT_FOUND"),
        ("gymrpc-test/CustomSpace-v0", grpc.StatusCode.FAILED_PRECONDITION, "UNSUPPORTED_SPACE"),
    ],
    ids=["unknown", "module-form", "empty", "custom-space"],
)
def test_environments_that_cannot_be_served(
    running: Running, env_id: str, code: grpc.StatusCode, reason: str
) -> None:
    error = rpc_error(lambda: create(running.stub(), env_id))
    assert error.code() is code
    assert reason_and_field(status_of(error))[0] == reason
    assert len(running.server.registry) == 0


def test_num_envs_limits(serve: Serve) -> None:
    stub = serve(max_num_envs=8).stub()
    error = rpc_error(lambda: create(stub, num_envs=0))
    assert_error(error, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NUM_ENVS", "num_envs: 0")
    error = rpc_error(lambda: create(stub, num_envs=9))
    assert_error(error, grpc.StatusCode.RESOURCE_EXHAUSTED, "NUM_ENVS_LIMIT", "limit of 8")
    assert create(stub, num_envs=8).num_envs == 8


def test_sessions_per_user_and_per_server(serve: Serve, tokens_file: object) -> None:
    running = serve(tokens_file=tokens_file, max_sessions_per_user=2, max_sessions=3)
    alice, bob = running.stub(TOKENS["alice"]), running.stub(TOKENS["bob"])
    first = create(alice)
    create(alice)
    error = rpc_error(lambda: create(alice))
    assert_error(
        error, grpc.StatusCode.RESOURCE_EXHAUSTED, "SESSION_LIMIT", "'alice' already has 2"
    )
    create(bob)
    error = rpc_error(lambda: create(bob))
    # The server-wide limit is the server's capacity, not bob's fault: SERVER_BUSY.
    assert_error(error, grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER_BUSY", "server has 3")
    alice.CloseSession(pb.CloseSessionRequest(session_id=first.session_id))
    create(bob)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"stepsize": 3}, "env_options.stepsize: gymrpc/Turbofan-v0 has no option 'stepsize'"),
        ({"step_size": "ten"}, "env_options.step_size: got str 'ten'; expected an int"),
        ({"step_size": 2.5}, "env_options.step_size: got float 2.5; expected an int"),
        ({"expose_hidden_state": 1}, "expected a bool"),
        ({"step_size": 0}, "step_size"),
        ({"step_size": 101}, "step_size"),
        ({"render_mode": "human"}, "never available on a server"),
    ],
    ids=["unknown", "string", "float", "int-for-bool", "zero", "too-big", "human-render"],
)
def test_bad_options_are_refused_naming_the_option(
    running: Running, options: dict[str, object], text: str
) -> None:
    error = rpc_error(lambda: create(running.stub(), "gymrpc/Turbofan-v0", env_options=options))
    assert_error(error, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OPTION", text)
    assert reason_and_field(status_of(error))[1] is not None
    assert len(running.server.registry) == 0


def test_float_options_accept_ints(running: Running) -> None:
    session = create(running.stub(), "Pendulum-v1", env_options={"g": 9})
    assert decode_value(session.env_options["g"]) == 9.0
    assert isinstance(decode_value(session.env_options["g"]), float)


def test_sessions_are_invisible_to_other_users(serve: Serve, tokens_file: object) -> None:
    running = serve(tokens_file=tokens_file)
    alice, bob = running.stub(TOKENS["alice"]), running.stub(TOKENS["bob"])
    session = create(alice)
    alice.Reset(pb.ResetRequest(session_id=session.session_id, seed=1))
    for call in (
        lambda: bob.GetSession(pb.GetSessionRequest(session_id=session.session_id)),
        lambda: bob.Step(step_request(session.session_id, [0, 1])),
        lambda: bob.Reset(pb.ResetRequest(session_id=session.session_id)),
        lambda: bob.CloseSession(pb.CloseSessionRequest(session_id=session.session_id)),
    ):
        error = rpc_error(call)
        assert_error(error, grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "for user 'bob'")
        # The answer is the one for an id that never existed: nothing leaks.
        never = rpc_error(lambda: bob.GetSession(pb.GetSessionRequest(session_id="x" * 32)))
        assert (error.details() or "").replace(session.session_id, "x" * 32) == never.details()
    bob_stream = running.stream(bob)
    response = bob_stream.round_trip(
        pb.StreamSessionRequest(sequence=1, step=step_request(session.session_id, [0, 1]))
    )
    assert response.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    bob_stream.close()
    # Alice's session is untouched and still hers.
    alice.Step(step_request(session.session_id, [0, 1]))
    info = bob.GetServerInfo(pb.GetServerInfoRequest())
    assert info.usage.open_sessions == 0


def test_step_quota_counts_environment_steps(serve: Serve, tokens_file: object) -> None:
    running = serve(tokens_file=tokens_file, step_quota=10)
    alice = running.stub(TOKENS["alice"])
    session = create(alice, num_envs=4)
    alice.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    alice.Step(step_request(session.session_id, [0] * 4))
    alice.Step(step_request(session.session_id, [0] * 4))
    before = alice.GetServerInfo(pb.GetServerInfoRequest()).usage.steps_used
    error = rpc_error(lambda: alice.Step(step_request(session.session_id, [0] * 4)))
    assert_error(error, grpc.StatusCode.RESOURCE_EXHAUSTED, "STEP_QUOTA_EXHAUSTED", "8 of 10")
    assert before == 8
    assert alice.GetServerInfo(pb.GetServerInfoRequest()).usage.steps_used == 8
    # Resets are free, and other users have their own quota.
    alice.Reset(pb.ResetRequest(session_id=session.session_id))
    bob = running.stub(TOKENS["bob"])
    other = create(bob, num_envs=4)
    bob.Reset(pb.ResetRequest(session_id=other.session_id))
    bob.Step(step_request(other.session_id, [0] * 4))


def test_idle_sessions_are_reaped(serve: Serve) -> None:
    running = serve(session_idle_timeout=0.3)
    stub = running.stub()
    idle = create(stub)
    busy = create(stub)
    stub.Reset(pb.ResetRequest(session_id=busy.session_id, seed=0))
    deadline = time.monotonic() + 30
    while len(running.server.registry) == 2 and time.monotonic() < deadline:
        # Keep one session busy while the other idles.
        stub.Step(step_request(busy.session_id, [0, 1]))
        time.sleep(0.05)
    error = rpc_error(lambda: stub.GetSession(pb.GetSessionRequest(session_id=idle.session_id)))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    stub.GetSession(pb.GetSessionRequest(session_id=busy.session_id))


def test_create_with_seed_makes_the_first_reset_reproducible(running: Running) -> None:
    stub = running.stub()
    observations = []
    for _ in range(2):
        session = create(stub, "gymrpc/Turbofan-v0", num_envs=2, seed=123)
        reset = stub.Reset(pb.ResetRequest(session_id=session.session_id))
        observations.append(decode_value(reset.observations))
    np.testing.assert_array_equal(observations[0], observations[1])
