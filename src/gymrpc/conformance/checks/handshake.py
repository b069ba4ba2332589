"""The handshake: GetServerInfo (env_service.proto, GetServerInfoResponse, Versioning)."""

from __future__ import annotations

import re
from typing import Final

import grpc

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.probe import Probe
from gymrpc.v1 import env_service_pb2 as pb

__all__ = ["server_info"]

_RULE: Final = "env_service.proto, GetServerInfoResponse and Versioning"
_CAPABILITY: Final = re.compile(r"[a-z][a-z0-9_]*")


@check(
    "handshake.server_info",
    rule=_RULE,
    title="GetServerInfo: protocol major 1, well-formed capabilities, sane limits, an identity",
    needs_handshake=False,
)
def server_info(probe: Probe) -> None:
    """Check the handshake's answer field by field."""
    subject = "GetServerInfo"
    try:
        info = probe.server_info()
    except grpc.RpcError:
        problem = probe.connection.handshake_problem()
        raise Violation(
            subject, received=str(problem), expected="the server's description", rule=_RULE
        ) from None
    version = info.protocol_version
    if version.major != 1:
        raise Violation(
            subject,
            received=f"protocol_version {version.major}.{version.minor}",
            expected="major version 1 (this kit speaks gymrpc.v1)",
            rule=_RULE,
        )
    if not info.server_version:
        raise Violation(
            subject, received="an empty server_version", expected="a version string", rule=_RULE
        )
    capabilities = list(info.capabilities)
    bad = [name for name in capabilities if not _CAPABILITY.fullmatch(name)]
    if bad or len(set(capabilities)) != len(capabilities):
        raise Violation(
            subject,
            received=f"capabilities {capabilities}",
            expected="distinct stable names such as 'stream', 'unary_step'",
            rule=_RULE,
        )
    limits = info.limits
    positive = {
        "max_num_envs": limits.max_num_envs,
        "max_sessions_per_user": limits.max_sessions_per_user,
        "max_message_bytes": limits.max_message_bytes,
        "max_tensor_elements": limits.max_tensor_elements,
    }
    for name, value in positive.items():
        if value <= 0:
            raise Violation(
                f"{subject}: limits.{name}",
                received=str(value),
                expected="a positive number (zero means 'no limit' only where a field says so)",
                rule="env_service.proto, ServerLimits",
            )
    timeout = limits.session_idle_timeout
    if (
        timeout.seconds < 0
        or not 0 <= timeout.nanos < 1_000_000_000
        or (timeout.seconds == 0 and timeout.nanos == 0)
    ):
        raise Violation(
            f"{subject}: limits.session_idle_timeout",
            received=f"{timeout.seconds} s {timeout.nanos} ns",
            expected="a positive Duration",
            rule="env_service.proto, ServerLimits",
        )
    if not info.identity.user or info.identity.role == pb.ROLE_UNSPECIFIED:
        raise Violation(
            f"{subject}: identity",
            received=f"user {info.identity.user!r}, role {pb.Role.Name(info.identity.role)}",
            expected="the caller's user name and role",
            rule="env_service.proto, Identity",
        )
