"""A connection to a gymrpc server: channel, credentials, deadlines and the handshake.

Unary calls go through :meth:`Connection.call`, which sets the deadline and the
bearer token and turns every gRPC failure into a :mod:`gymrpc.errors` exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc

from gymrpc.errors import ProtocolVersionError, UnavailableError, from_rpc_error
from gymrpc.protocol import PROTOCOL_VERSION, is_compatible
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_TARGET", "Connection", "ConnectionSettings"]

logger = logging.getLogger(__name__)

#: Where clients connect when neither ``target`` nor ``GYMRPC_TARGET`` says otherwise.
DEFAULT_TARGET: Final = "127.0.0.1:50051"
_DEFAULT_MESSAGE_BYTES: Final = 64 * 1024 * 1024
_Response = TypeVar("_Response")


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach a server.

    Attributes:
        target: ``host:port``; defaults to ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; defaults to ``GYMRPC_TOKEN``.
        root_certificates: PEM file of the CA to trust; enables TLS. Defaults to
            ``GYMRPC_TLS_CA``.
        tls: Use TLS with the system's trusted CAs (implied by ``root_certificates``);
            defaults to ``GYMRPC_TLS`` being ``1``/``true``.
        timeout: Deadline in seconds of every call and step.
    """

    target: str
    token: str | None = None
    root_certificates: Path | None = None
    tls: bool = False
    timeout: float = 60.0

    @classmethod
    def resolve(
        cls,
        target: str | None = None,
        token: str | None = None,
        root_certificates: str | os.PathLike[str] | None = None,
        tls: bool | None = None,
        timeout: float = 60.0,
    ) -> ConnectionSettings:
        """Fill unset settings from ``GYMRPC_*`` environment variables and defaults."""
        ca = root_certificates or os.environ.get("GYMRPC_TLS_CA") or None
        if tls is None:
            tls = os.environ.get("GYMRPC_TLS", "").lower() in ("1", "true", "yes")
        if timeout <= 0:
            raise ValueError(f"timeout: {timeout}; expected a positive number of seconds")
        return cls(
            target=target or os.environ.get("GYMRPC_TARGET") or DEFAULT_TARGET,
            token=token or os.environ.get("GYMRPC_TOKEN") or None,
            root_certificates=Path(ca) if ca else None,
            tls=tls or ca is not None,
            timeout=timeout,
        )


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Client channel options, each set on purpose."""
    return [
        # Batches of many environments exceed gRPC's 4 MiB default; match the server.
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Find out about a dead server during a quiet stream, within about 40 s, and
        # ping no more often than the server allows (every 10 s).
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Do not retry transparently: gymrpc retries the session stream itself, with
        # idempotent sequence numbers, and must not repeat a step behind our back.
        ("grpc.enable_retries", 0),
    ]


class Connection:
    """A channel to one server, with the caller's credentials.

    Args:
        settings: Where and how to connect.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {settings.token}"),) if settings.token else ()
        )
        self._max_message_bytes = _DEFAULT_MESSAGE_BYTES
        self.channel = self._new_channel()
        self.stub = pb_grpc.EnvServiceStub(self.channel)

    def _new_channel(self) -> grpc.Channel:
        options = _channel_options(self._max_message_bytes)
        if not self.settings.tls:
            return grpc.insecure_channel(self.settings.target, options=options)
        roots = None
        if self.settings.root_certificates is not None:
            roots = self.settings.root_certificates.read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.secure_channel(self.settings.target, credentials, options=options)

    def call(
        self,
        method: Callable[..., _Response],
        request: Any,
        timeout: float | None = None,
    ) -> _Response:
        """Make a unary call with the deadline and token; raise gymrpc errors.

        Args:
            method: A stub method, e.g. ``connection.stub.CreateSession``.
            request: The request message.
            timeout: Deadline in seconds; the settings' timeout by default.

        Returns:
            The response message.

        Raises:
            GymrpcError: The exception matching the server's status.
        """
        try:
            return method(
                request,
                timeout=self.settings.timeout if timeout is None else timeout,
                metadata=self.metadata,
            )
        except grpc.RpcError as error:
            raise self.translate(error) from None

    def translate(self, error: grpc.RpcError) -> Exception:
        """Turn a gRPC error into a gymrpc exception that names the server."""
        translated = from_rpc_error(error)
        status = translated.status
        if isinstance(translated, UnavailableError) and status is not None and not status.details:
            translated.message = (
                f"cannot reach the gymrpc server at {self.settings.target}: {translated.message}"
            )
            translated.args = (translated.message,)
        return translated

    def handshake(self) -> pb.GetServerInfoResponse:
        """Check the server's protocol version and match its message size limit.

        Returns:
            The server's description.

        Raises:
            ProtocolVersionError: If the major versions differ.
            UnavailableError: If the server cannot be reached.
        """
        info = self.call(self.stub.GetServerInfo, pb.GetServerInfoRequest())
        server = (info.protocol_version.major, info.protocol_version.minor)
        if not is_compatible(server[0]):
            raise ProtocolVersionError(
                f"the server at {self.settings.target} speaks gymrpc protocol "
                f"{server[0]}.{server[1]} and this client speaks {PROTOCOL_VERSION[0]}."
                f"{PROTOCOL_VERSION[1]}; install a gymrpc release for protocol {server[0]}.x"
            )
        if server != PROTOCOL_VERSION:
            logger.info("server protocol %d.%d, client %d.%d", *server, *PROTOCOL_VERSION)
        limit = info.limits.max_message_bytes
        if limit and limit != self._max_message_bytes:
            # Channel options are fixed at creation; a new channel matches the server.
            self._max_message_bytes = int(limit)
            old = self.channel
            self.channel = self._new_channel()
            self.stub = pb_grpc.EnvServiceStub(self.channel)
            old.close()
        return info

    def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        self.channel.close()
