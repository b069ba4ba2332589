"""The standard health service (env_service.proto, Authentication)."""

from __future__ import annotations

from typing import Final

import grpc
from grpc_health.v1 import health_pb2

from gymrpc.conformance.framework import Violation, call_of, check
from gymrpc.conformance.probe import Probe

__all__ = ["serving"]

_RULE: Final = "env_service.proto, Authentication and Notes for other languages"


@check(
    "health.serving",
    rule=_RULE,
    title="grpc.health.v1 Check answers SERVING, without credentials, for '' and EnvService",
    needs_handshake=False,
)
def serving(probe: Probe) -> None:
    """Ask the health service, sending no token: orchestrators probe without one."""
    for service in ("", "gymrpc.v1.EnvService"):
        subject = f"grpc.health.v1.Health/Check(service={service!r}) without credentials"
        try:
            response = probe.health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=probe.target.timeout
            )
        except grpc.RpcError as error:
            call = call_of(error)
            code = call.code().name if call is not None else "an error"
            raise Violation(
                subject, received=code, expected="status SERVING", rule=_RULE
            ) from error
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise Violation(
                subject,
                received=health_pb2.HealthCheckResponse.ServingStatus.Name(response.status),
                expected="SERVING",
                rule=_RULE,
            )
