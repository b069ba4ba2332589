"""Helpers for tests that talk to real gymrpc servers over real channels."""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.values import encode_value
from gymrpc_server.config import ServerConfig
from gymrpc_server.server import GymrpcServer, create_server

TOKENS = {
    "alice": "alice-token-0123456789",
    "bob": "bob-token-0123456789",
    "carol": "carol-token-0123456789",
}
TOKENS_TOML = """
[[tokens]]
user = "alice"
token = "alice-token-0123456789"

[[tokens]]
user = "bob"
role = "user"
token = "bob-token-0123456789"

[[tokens]]
user = "carol"
role = "admin"
token = "carol-token-0123456789"
"""


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds fixed metadata (the bearer token) to every call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass
class Stream:
    """A StreamSession call driven request by request."""

    requests: queue.SimpleQueue[pb.StreamSessionRequest | None]
    responses: Iterator[pb.StreamSessionResponse]
    call: Any

    def send(self, request: pb.StreamSessionRequest) -> None:
        self.requests.put(request)

    def receive(self) -> pb.StreamSessionResponse:
        return next(self.responses)

    def round_trip(self, request: pb.StreamSessionRequest) -> pb.StreamSessionResponse:
        self.send(request)
        return self.receive()

    def close(self) -> None:
        self.requests.put(None)


@dataclass
class Running:
    """A started server and ways to reach it."""

    server: GymrpcServer
    port: int
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, token: str | None = None) -> grpc.Channel:
        channel = grpc.insecure_channel(self.target)
        self.channels.append(channel)
        if token is None:
            return channel
        return grpc.intercept_channel(channel, _Metadata((("authorization", f"Bearer {token}"),)))

    def stub(self, token: str | None = None) -> pb_grpc.EnvServiceStub:
        return pb_grpc.EnvServiceStub(self.channel(token))

    def stream(self, stub: pb_grpc.EnvServiceStub) -> Stream:
        requests: queue.SimpleQueue[pb.StreamSessionRequest | None] = queue.SimpleQueue()

        def generate() -> Iterator[pb.StreamSessionRequest]:
            while (request := requests.get()) is not None:
                yield request

        call = stub.StreamSession(generate(), timeout=60)
        return Stream(requests, call, call)


Serve = Callable[..., Running]


def server_environ() -> dict[str, str]:
    """The environment of a server subprocess: it can import the test environments."""
    support = str(Path(__file__).resolve().parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([support, *sys.path])}


def server_command(*flags: str) -> list[str]:
    """The command line of a server process on 127.0.0.1, port 0, with the test envs.

    Without a ``--database`` flag the server keeps no scores (``--database none``), so
    that no test writes into the user's data directory.
    """
    database = (
        [] if any(flag.startswith("--database") for flag in flags) else ["--database", "none"]
    )
    return [
        sys.executable,
        "-m",
        "gymrpc_server",
        "--address",
        "127.0.0.1:0",
        "--env-module",
        "gymrpc_test_envs",
        *database,
        *flags,
    ]


def start_server(**overrides: Any) -> Running:
    """Start a server on 127.0.0.1, port 0, with the given ServerConfig overrides."""
    overrides.setdefault("env_modules", ("gymrpc_test_envs",))
    # Tests that need scores give a database of their own; the others keep none, so that
    # no test writes into the user's data directory.
    overrides.setdefault("database", "none")
    config = ServerConfig(address="127.0.0.1:0", **overrides)
    server, port = create_server(config)
    server.start()
    return Running(server, port)


def stop_server(item: Running) -> None:
    """Close the channels opened through ``item`` and stop its server."""
    for channel in item.channels:
        channel.close()
    item.server.stop(0).wait(10)


def create(
    stub: pb_grpc.EnvServiceStub, env_id: str = "CartPole-v1", num_envs: int = 2, **fields: Any
) -> pb.Session:
    """Create a session and return its description."""
    options = fields.pop("env_options", {})
    request = pb.CreateSessionRequest(env_id=env_id, num_envs=num_envs, **fields)
    for name, value in options.items():
        request.env_options[name].CopyFrom(encode_value(value))
    return stub.CreateSession(request, timeout=30).session


def actions(values: Any, dtype: Any = np.int64) -> Any:
    """Encode a batch of actions."""
    return encode_value(np.asarray(values, dtype=dtype))


def step_request(session_id: str, values: Any, dtype: Any = np.int64) -> pb.StepRequest:
    return pb.StepRequest(session_id=session_id, actions=actions(values, dtype))


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """Run a call that must fail and return its error."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def status_of(error: grpc.RpcError) -> Any:
    """The google.rpc.Status a server sent with a failed call."""
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the server sent no rich status"
    return status


def reason_and_field(status: Any) -> tuple[str, str | None]:
    """The ErrorInfo reason and the first BadRequest field of a status."""
    from gymrpc.errors import from_status

    error = from_status(status)
    return error.reason, error.field
