"""Health, reflection and graceful stop of a real server."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from gymrpc_testing import Running, Serve, create, rpc_error, step_request

from gymrpc.v1 import env_service_pb2 as pb
from gymrpc_server.config import ServerConfig
from gymrpc_server.server import create_server


def test_health_reports_serving(running: Running) -> None:
    health = cast(Any, health_pb2_grpc.HealthStub)(running.channel())
    for service in ("", "gymrpc.v1.EnvService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service_and_its_schema(running: Running) -> None:
    reflection = cast(Any, reflection_pb2_grpc.ServerReflectionStub)(running.channel())
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="gymrpc.v1.EnvService"),
    ]
    listing, schema = list(reflection.ServerReflectionInfo(iter(requests), timeout=10))
    names = {service.name for service in listing.list_services_response.service}
    assert {"gymrpc.v1.EnvService", "grpc.health.v1.Health"} <= names
    assert schema.file_descriptor_response.file_descriptor_proto


def test_graceful_stop_finishes_in_flight_work_and_refuses_new(serve: Serve) -> None:
    running = serve()
    stub = running.stub()
    slow = create(stub, "gymrpc-test/Slow-v0", 1, env_options={"delay": 0.5})
    stub.Reset(pb.ResetRequest(session_id=slow.session_id))
    quick = create(stub)
    stream = running.stream(stub)
    stream.round_trip(
        pb.StreamSessionRequest(sequence=1, reset=pb.ResetRequest(session_id=quick.session_id))
    )
    watcher = cast(Any, health_pb2_grpc.HealthStub)(running.channel())
    statuses = watcher.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
    result: dict[str, Any] = {}

    def step_slowly() -> None:
        result["response"] = stub.Step(step_request(slow.session_id, [0]), timeout=30)

    worker = threading.Thread(target=step_slowly)
    worker.start()
    deadline = time.monotonic() + 10
    while running.server.registry and running.server._lifecycle.in_flight == 0:
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.01)
    stopped = running.server.stop(grace=10)
    assert next(statuses).status == health_pb2.HealthCheckResponse.NOT_SERVING
    error = rpc_error(lambda: stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    stream.send(pb.StreamSessionRequest(sequence=2, step=step_request(quick.session_id, [0, 1])))
    with pytest.raises(grpc.RpcError) as info:
        stream.receive()
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    worker.join(30)
    assert isinstance(result["response"], pb.StepResponse)
    assert stopped.wait(30)
    assert len(running.server.registry) == 0


def test_an_idle_stream_ends_with_unavailable_when_the_server_stops(serve: Serve) -> None:
    running = serve()
    stub = running.stub()
    session = create(stub)
    stream = running.stream(stub)
    stream.round_trip(
        pb.StreamSessionRequest(sequence=1, reset=pb.ResetRequest(session_id=session.session_id))
    )
    running.server.stop(grace=5).wait(30)
    with pytest.raises(grpc.RpcError) as info:
        stream.receive()
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"address": "0.0.0.0:0"}, "refusing to serve 0.0.0.0:0 without a tokens file"),
        ({"env_modules": ("no_such_module_here",)}, "cannot be imported"),
        ({"allowed_env_ids": frozenset({"Nope-v9"})}, "not registered"),
    ],
    ids=["public-open", "env-module", "allow-list"],
)
def test_unservable_configurations_are_refused(overrides: dict[str, Any], message: str) -> None:
    config = ServerConfig(**{"address": "127.0.0.1:0", **overrides})
    with pytest.raises(ValueError, match=message):
        create_server(config)


def test_config_validation() -> None:
    cases: tuple[tuple[dict[str, Any], str], ...] = (
        ({"address": "nohost"}, "not host:port"),
        ({"max_num_envs": 0}, "max_num_envs is 0"),
        ({"step_quota": -1}, "step_quota"),
        ({"anonymous_role": "root"}, "anonymous_role"),
        ({"tls_cert": "cert.pem"}, "together"),
        ({"max_workers": 4, "max_concurrent_rpcs": 8}, "exceeds max_workers"),
        ({"attribute_access": "some"}, "attribute_access"),
    )
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ServerConfig(**kwargs)
