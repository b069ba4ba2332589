"""Fixtures of the conformance kit's tests (tests/conformance): real servers on 127.0.0.1.

Registered by tests/conftest.py as a plugin (``pytest_plugins``), so that the kit's
tests need no conftest.py of their own (two would share one module name for mypy).

``serve_target`` starts servers with any ``ServerConfig`` overrides and servicer class
(the deliberately broken servers pass theirs); ``real_target`` is one default server
shared by the module, and ``baseline`` the kit's verdict on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gymrpc.conformance import CheckResult, Target, run_checks
from gymrpc_server.config import ServerConfig
from gymrpc_server.server import GymrpcServer, create_server
from gymrpc_server.servicer import EnvServicer

ServeTarget = Callable[..., Target]


def _start(servicer_class: type[EnvServicer], **overrides: Any) -> tuple[GymrpcServer, int]:
    config = ServerConfig(address="127.0.0.1:0", **overrides)
    server, port = create_server(config, servicer_class=servicer_class)
    server.start()
    return server, port


@pytest.fixture
def serve_target() -> Iterator[ServeTarget]:
    """Start servers (``servicer_class=`` and ServerConfig overrides); stop them after."""
    servers: list[GymrpcServer] = []

    def start(
        servicer_class: type[EnvServicer] = EnvServicer,
        *,
        token: str | None = None,
        tls_ca: bytes | None = None,
        host: str = "127.0.0.1",
        **overrides: Any,
    ) -> Target:
        server, port = _start(servicer_class, **overrides)
        servers.append(server)
        return Target(f"{host}:{port}", token=token, tls_ca=tls_ca)

    yield start
    for server in servers:
        server.stop(0).wait(10)


@pytest.fixture(scope="module")
def real_target() -> Iterator[Target]:
    """Our own server with its default configuration, shared by a test module."""
    server, port = _start(EnvServicer)
    yield Target(f"127.0.0.1:{port}")
    server.stop(0).wait(10)


@pytest.fixture(scope="module")
def baseline(real_target: Target) -> dict[str, CheckResult]:
    """The kit's results on our own server, by check id."""
    return {result.check_id: result for result in run_checks(real_target)}
