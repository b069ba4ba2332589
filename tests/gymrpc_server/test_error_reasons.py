"""Every ErrorReason of errors.proto is sent by the server, with the promised details.

One provocation per reason, each against a real server; every error must carry the
code of the error table, an ``ErrorInfo`` in the gymrpc domain, and a message that
starts with the field path when a field is at fault (errors.proto, "The error model").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from gymrpc_testing import (
    TOKENS,
    TOKENS_TOML,
    Running,
    create,
    rpc_error,
    start_server,
    status_of,
    step_request,
    stop_server,
)

from gymrpc.errors import DOMAIN, REASON_CLASSES
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.v1 import tensor_pb2
from gymrpc.values import encode_value
from gymrpc_server.config import ServerConfig
from gymrpc_server.server import create_server
from gymrpc_server.servicer import EnvServicer

TURBOFAN = "gymrpc/Turbofan-v0"


class Servers:
    """One server per configuration a provocation needs, started on first use."""

    def __init__(self, tokens_file: Path) -> None:
        self._tokens_file = tokens_file
        self._running: dict[str, Running] = {}
        self.database = tokens_file.parent / "scores.sqlite3"

    def get(self, name: str) -> Running:
        if name not in self._running:
            configurations: dict[str, dict[str, Any]] = {
                "open": {},
                "tight": {"max_num_envs": 4, "max_sessions_per_user": 1},
                "tokens": {"tokens_file": self._tokens_file},
                "crowded": {
                    "tokens_file": self._tokens_file,
                    "max_sessions_per_user": 1,
                    "max_sessions": 2,
                },
                "quota": {"step_quota": 2},
                "small": {"max_message_bytes": 64 * 1024, "max_tensor_elements": 1000},
                "scores": {"database": str(self.database)},
            }
            self._running[name] = start_server(**configurations[name])
        return self._running[name]

    def stub(self, name: str = "open", token: str | None = None) -> pb_grpc.EnvServiceStub:
        return self.get(name).stub(token)

    def close(self) -> None:
        for running in self._running.values():
            stop_server(running)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    path = tmp_path_factory.mktemp("tokens") / "tokens.toml"
    path.write_text(TOKENS_TOML)
    found = Servers(path)
    yield found
    found.close()


def reset(stub: pb_grpc.EnvServiceStub, session: pb.Session) -> None:
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0), timeout=30)


def stream_error(
    running: Running, requests: list[pb.StreamSessionRequest]
) -> error_details_pb2.ErrorInfo | Any:
    """Send stream requests; return the error of the last response."""
    stream = running.stream(running.stub())
    try:
        for request in requests:
            response = stream.round_trip(request)
    finally:
        stream.close()
    assert response.HasField("error"), response
    return response.error


# --- provocations: each returns the google.rpc.Status the server sent ----------------


def invalid_tensor(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 2)
    reset(stub, session)
    bad = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_INT64, shape=[2], data=b"\x00" * 3)
    request = pb.StepRequest(session_id=session.session_id)
    request.actions.array_value.CopyFrom(bad)
    return status_of(rpc_error(lambda: stub.Step(request)))


def invalid_value(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 2)
    reset(stub, session)
    request = pb.StepRequest(session_id=session.session_id)
    request.actions.dict_value.entries.add(key="a")  # a Value with no kind
    return status_of(rpc_error(lambda: stub.Step(request)))


def invalid_action(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 2)
    reset(stub, session)
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 7]))))


def invalid_reset_mask(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 2)
    request = pb.ResetRequest(session_id=session.session_id)
    request.reset_mask.CopyFrom(encode_value(np.zeros(2, np.bool_)).array_value)
    return status_of(rpc_error(lambda: stub.Reset(request)))


def invalid_seed(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 2)
    request = pb.ResetRequest(session_id=session.session_id)
    request.seeds.values.CopyFrom(encode_value(np.zeros(2, np.int32)).array_value)
    return status_of(rpc_error(lambda: stub.Reset(request)))


def invalid_option(s: Servers) -> Any:
    stub = s.stub()
    return status_of(rpc_error(lambda: create(stub, TURBOFAN, 1, env_options={"step_size": 0})))


def invalid_num_envs(s: Servers) -> Any:
    return status_of(rpc_error(lambda: create(s.stub(), "CartPole-v1", 0)))


def invalid_argument(s: Servers) -> Any:
    stub = s.stub()
    return status_of(rpc_error(lambda: stub.GetSession(pb.GetSessionRequest(session_id=""))))


def out_of_order(s: Servers) -> Any:
    running = s.get("open")
    session = create(running.stub(), "CartPole-v1", 1)
    first = pb.StreamSessionRequest(sequence=5)
    first.reset.session_id = session.session_id
    second = pb.StreamSessionRequest(sequence=4)
    second.reset.session_id = session.session_id
    return stream_error(running, [first, second])


def session_not_found(s: Servers) -> Any:
    stub = s.stub()
    return status_of(rpc_error(lambda: stub.GetSession(pb.GetSessionRequest(session_id="x" * 8))))


def env_not_found(s: Servers) -> Any:
    return status_of(rpc_error(lambda: create(s.stub(), "NoSuchEnv-v0", 1)))


def reset_required(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 1)
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [0]))))


def episode_ended(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, TURBOFAN, 1, autoreset_mode=pb.AUTORESET_MODE_DISABLED)
    reset(stub, session)
    stub.Step(step_request(session.session_id, [2]))  # sell: the episode ends
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [0]))))


def unsupported_space(s: Servers) -> Any:
    return status_of(rpc_error(lambda: create(s.stub(), "gymrpc-test/CustomSpace-v0", 1)))


def unsupported_autoreset(s: Servers) -> Any:
    native = pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT
    return status_of(
        rpc_error(lambda: create(s.stub(), "gymrpc-test/DictObs-v0", 1, vectorization_mode=native))
    )


def num_envs_limit(s: Servers) -> Any:
    return status_of(rpc_error(lambda: create(s.stub("tight"), "CartPole-v1", 5)))


def session_limit(s: Servers) -> Any:
    stub = s.stub("tight")
    create(stub, "CartPole-v1", 1)
    return status_of(rpc_error(lambda: create(stub, "CartPole-v1", 1)))


def server_busy(s: Servers) -> Any:
    # Each user stays within their own limit; together they fill the server.
    create(s.stub("crowded", TOKENS["alice"]), "CartPole-v1", 1)
    create(s.stub("crowded", TOKENS["bob"]), "CartPole-v1", 1)
    carol = s.stub("crowded", TOKENS["carol"])
    return status_of(rpc_error(lambda: create(carol, "CartPole-v1", 1)))


def step_quota_exhausted(s: Servers) -> Any:
    stub = s.stub("quota")
    session = create(stub, "CartPole-v1", 2)
    reset(stub, session)
    stub.Step(step_request(session.session_id, [0, 0]))
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [0, 0]))))


def tensor_too_large(s: Servers) -> Any:
    stub = s.stub("small")
    session = create(stub, "CartPole-v1", 1)
    reset(stub, session)
    big = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_INT64, shape=[10**6])
    request = pb.StepRequest(session_id=session.session_id)
    request.actions.array_value.CopyFrom(big)
    return status_of(rpc_error(lambda: stub.Step(request)))


def unauthenticated(s: Servers) -> Any:
    stub = s.stub("tokens")
    return status_of(rpc_error(lambda: stub.GetServerInfo(pb.GetServerInfoRequest())))


def permission_denied(s: Servers) -> Any:
    stub = s.stub("tokens", TOKENS["alice"])
    options = {"expose_hidden_state": True}
    return status_of(rpc_error(lambda: create(stub, TURBOFAN, 1, env_options=options)))


def not_supported(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "CartPole-v1", 1)
    reset(stub, session)
    return status_of(
        rpc_error(lambda: stub.Render(pb.RenderRequest(session_id=session.session_id)))
    )


def shutting_down(s: Servers) -> Any:
    running = start_server()
    try:
        stub = running.stub()
        session = create(stub, "gymrpc-test/Slow-v0", 1, env_options={"delay": 1.0})
        reset(stub, session)
        # A slow step in flight holds the server in its grace period, where new calls are
        # refused with SHUTTING_DOWN.
        worker = threading.Thread(
            target=lambda: stub.Step(step_request(session.session_id, [0]), timeout=30)
        )
        worker.start()
        time.sleep(0.2)
        running.server.stop(5.0)
        status = status_of(rpc_error(lambda: stub.GetServerInfo(pb.GetServerInfoRequest())))
        worker.join(30)
        return status
    finally:
        stop_server(running)


def environment_error(s: Servers) -> Any:
    stub = s.stub()
    session = create(stub, "gymrpc-test/Faulty-v0", 1)
    reset(stub, session)
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [1]))))


class _BuggyServicer(EnvServicer):
    """A servicer with a bug: what the server does with its own faults."""

    def GetServerInfo(  # noqa: N802 (the RPC's name)
        self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServerInfoResponse:
        def handle(_identity: Any) -> pb.GetServerInfoResponse:
            raise ZeroDivisionError("a bug")

        return self._unary(context, handle)


def internal(s: Servers) -> Any:
    server, port = create_server(ServerConfig(address="127.0.0.1:0"), servicer_class=_BuggyServicer)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.EnvServiceStub(channel)
            return status_of(rpc_error(lambda: stub.GetServerInfo(pb.GetServerInfoRequest())))
    finally:
        server.stop(0).wait(10)


def unknown_attribute(s: Servers) -> Any:
    stub = s.stub("tokens", TOKENS["carol"])  # an admin
    session = create(stub, "CartPole-v1", 1)
    request = pb.GetAttrRequest(session_id=session.session_id, name="no_such_attribute")
    return status_of(rpc_error(lambda: stub.GetAttr(request)))


def response_too_large(s: Servers) -> Any:
    stub = s.stub("small")
    session = create(stub, "gymrpc-test/BigInfo-v0", 1, env_options={"info_bytes": 100_000})
    reset(stub, session)
    return status_of(rpc_error(lambda: stub.Step(step_request(session.session_id, [0]))))


def evaluation_unavailable(s: Servers) -> Any:
    # The open test server keeps no scores (--database none).
    stub = s.stub()
    return status_of(rpc_error(lambda: create(stub, TURBOFAN, 1, evaluation=True)))


def scores_unavailable(s: Servers) -> Any:
    running = s.get("scores")
    stub = running.stub()
    session = create(stub, TURBOFAN, 1, evaluation=True)
    # The database goes away: no k can be reserved for the reset's episode, so the reset
    # is refused before anything runs.
    database = s.database
    database.rename(database.with_suffix(".away"))
    try:
        return status_of(
            rpc_error(lambda: stub.Reset(pb.ResetRequest(session_id=session.session_id)))
        )
    finally:
        database.with_suffix(".away").rename(database)


PROVOCATIONS: dict[str, tuple[Callable[[Servers], Any], grpc.StatusCode, str | None]] = {
    "INVALID_TENSOR": (invalid_tensor, grpc.StatusCode.INVALID_ARGUMENT, "actions.data"),
    "INVALID_VALUE": (invalid_value, grpc.StatusCode.INVALID_ARGUMENT, "actions.a"),
    "INVALID_ACTION": (invalid_action, grpc.StatusCode.INVALID_ARGUMENT, "actions[1]"),
    "INVALID_RESET_MASK": (invalid_reset_mask, grpc.StatusCode.INVALID_ARGUMENT, "reset_mask"),
    "INVALID_SEED": (invalid_seed, grpc.StatusCode.INVALID_ARGUMENT, "seeds.values"),
    "INVALID_OPTION": (invalid_option, grpc.StatusCode.INVALID_ARGUMENT, "env_options.step_size"),
    "INVALID_NUM_ENVS": (invalid_num_envs, grpc.StatusCode.INVALID_ARGUMENT, "num_envs"),
    "INVALID_ARGUMENT": (invalid_argument, grpc.StatusCode.INVALID_ARGUMENT, "session_id"),
    "OUT_OF_ORDER": (out_of_order, grpc.StatusCode.INVALID_ARGUMENT, "sequence"),
    "SESSION_NOT_FOUND": (session_not_found, grpc.StatusCode.NOT_FOUND, "session_id"),
    "ENV_NOT_FOUND": (env_not_found, grpc.StatusCode.NOT_FOUND, "env_id"),
    "RESET_REQUIRED": (reset_required, grpc.StatusCode.FAILED_PRECONDITION, None),
    "EPISODE_ENDED": (episode_ended, grpc.StatusCode.FAILED_PRECONDITION, None),
    "UNSUPPORTED_SPACE": (unsupported_space, grpc.StatusCode.FAILED_PRECONDITION, None),
    "UNSUPPORTED_AUTORESET": (
        unsupported_autoreset,
        grpc.StatusCode.FAILED_PRECONDITION,
        "vectorization_mode",
    ),
    "NUM_ENVS_LIMIT": (num_envs_limit, grpc.StatusCode.RESOURCE_EXHAUSTED, "num_envs"),
    "SESSION_LIMIT": (session_limit, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    "STEP_QUOTA_EXHAUSTED": (step_quota_exhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    "TENSOR_TOO_LARGE": (tensor_too_large, grpc.StatusCode.RESOURCE_EXHAUSTED, "actions.shape"),
    "SERVER_BUSY": (server_busy, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    "UNAUTHENTICATED": (unauthenticated, grpc.StatusCode.UNAUTHENTICATED, None),
    "PERMISSION_DENIED": (
        permission_denied,
        grpc.StatusCode.PERMISSION_DENIED,
        "env_options.expose_hidden_state",
    ),
    "NOT_SUPPORTED": (not_supported, grpc.StatusCode.UNIMPLEMENTED, None),
    "SHUTTING_DOWN": (shutting_down, grpc.StatusCode.UNAVAILABLE, None),
    "ENVIRONMENT_ERROR": (environment_error, grpc.StatusCode.INTERNAL, None),
    "INTERNAL": (internal, grpc.StatusCode.INTERNAL, None),
    "UNKNOWN_ATTRIBUTE": (unknown_attribute, grpc.StatusCode.INVALID_ARGUMENT, "name"),
    "RESPONSE_TOO_LARGE": (response_too_large, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    "EVALUATION_UNAVAILABLE": (
        evaluation_unavailable,
        grpc.StatusCode.FAILED_PRECONDITION,
        "evaluation",
    ),
    "SCORES_UNAVAILABLE": (scores_unavailable, grpc.StatusCode.UNAVAILABLE, None),
}


def test_every_reason_of_the_enum_has_a_provocation() -> None:
    assert set(PROVOCATIONS) == set(REASON_CLASSES)


@pytest.mark.parametrize("reason", sorted(PROVOCATIONS))
def test_the_server_sends_each_reason_as_errors_proto_says(servers: Servers, reason: str) -> None:
    provoke, code, field = PROVOCATIONS[reason]
    status = provoke(servers)
    assert status.code == code.value[0], (status.code, status.message)
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    (info,) = infos
    assert (info.domain, info.reason) == (DOMAIN, reason)
    assert info.metadata.get("field") == field
    # The message is one line; with a field at fault it starts with its path.
    assert "\n" not in status.message
    assert status.message
    if field is not None:
        assert status.message.startswith(f"{field}: "), status.message
    if code is grpc.StatusCode.INVALID_ARGUMENT and field is not None:
        bad_request = error_details_pb2.BadRequest()
        assert any(detail.Unpack(bad_request) for detail in status.details)
        assert bad_request.field_violations[0].field == field
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        quota = error_details_pb2.QuotaFailure()
        assert any(detail.Unpack(quota) for detail in status.details)
