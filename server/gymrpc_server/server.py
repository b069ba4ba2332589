"""Assembles a gymrpc server: the EnvService, health, reflection, auth, TLS, limits.

:func:`create_server` is the one factory used by the CLI and by the tests::

    server, port = create_server(ServerConfig(address="127.0.0.1:0"))
    server.start()
    ...
    server.stop(grace=5).wait()
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import gymnasium
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from gymrpc.allocator import tune_allocator
from gymrpc.errors import AuthenticationError, GymrpcError, ShuttingDownError
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc_server.auth import Authenticator, Identity, Role, load_tokens
from gymrpc_server.catalogue import Catalogue
from gymrpc_server.config import ServerConfig, is_loopback_address
from gymrpc_server.describe import EnvironmentDescriber
from gymrpc_server.lifecycle import Lifecycle
from gymrpc_server.registry import Limits, SessionRegistry
from gymrpc_server.servicer import EnvServicer, ServicerSettings
from gymrpc_server.wire import wire_handler

__all__ = ["GymrpcServer", "create_server"]

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnvService"].full_name
_HEALTH_PREFIX = "/grpc.health.v1.Health/"


def _channel_options(config: ServerConfig) -> list[tuple[str, Any]]:
    """Return the gRPC server options, each set on purpose."""
    return [
        # Large batches exceed gRPC's 4 MiB default; the limit is explicit and is what
        # GetServerInfo reports, so clients can match it.
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Notice dead clients on idle connections (their sessions then idle out).
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Let clients keep a connection alive with pings every 10 s or more, but not
        # flood the server with them.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A port already in use is an error, not something to share silently.
        ("grpc.so_reuseport", 0),
    ]


class _Gate(grpc.ServerInterceptor):
    """Refuses calls without valid credentials, and new calls while stopping.

    Health checks always pass: orchestrators probe without tokens. Every other handler
    gets the wire's edge: bad bodies refused cleanly, bytes sent as they are
    (see :mod:`gymrpc_server.wire`).
    """

    def __init__(self, authenticator: Authenticator, lifecycle: Lifecycle) -> None:
        self._auth = authenticator
        self._lifecycle = lifecycle

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            return handler
        handler = wire_handler(handler)
        error: GymrpcError | None = None
        if self._lifecycle.stopping.is_set():
            error = ShuttingDownError("the server is shutting down; try again later")
        elif self._auth.identify(details.invocation_metadata) is None:
            error = AuthenticationError(
                "authorization: missing or invalid bearer token; send the metadata "
                "'authorization: Bearer <token>'",
                field="authorization",
            )
        return handler if error is None else _refusing(handler, error)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: GymrpcError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that only aborts with ``error``."""
    status = rpc_status.to_status(error.to_status())

    def refuse(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort_with_status(status)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)


class GymrpcServer:
    """A configured gymrpc server; the grpc server plus what a graceful stop needs.

    Attributes:
        config: The configuration it was built from.
        registry: Its sessions.
        health: The standard health servicer.
    """

    def __init__(
        self,
        config: ServerConfig,
        grpc_server: grpc.Server,
        registry: SessionRegistry,
        health_servicer: health.HealthServicer,
        lifecycle: Lifecycle,
    ) -> None:
        self.config = config
        self.registry = registry
        self.health = health_servicer
        self._grpc_server = grpc_server
        self._lifecycle = lifecycle
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopping_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving and reaping idle sessions."""
        self._grpc_server.start()
        self.registry.start_reaper()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop gracefully: refuse new work, finish requests in progress, close sessions.

        Args:
            grace: Seconds requests in progress may take to finish; the config's
                grace period by default.

        Returns:
            An event set once the server has stopped and every session is closed.
        """
        with self._stop_lock:
            if self._stopping_thread is None:
                grace = self.config.grace_period if grace is None else grace
                self._stopping_thread = threading.Thread(
                    target=self._stop, args=(grace,), name="gymrpc-stop", daemon=True
                )
                self._stopping_thread.start()
        return self._stopped

    def _stop(self, grace: float) -> None:
        self._lifecycle.stopping.set()
        self.health.enter_graceful_shutdown()
        if not self._lifecycle.wait_idle(grace):
            logger.warning(
                "%d requests still running after the %.1f s grace period; cutting them",
                self._lifecycle.in_flight,
                grace,
            )
        # Requests are done; idle streams and connections can go now. The short grace
        # lets the last responses leave the process.
        self._grpc_server.stop(min(grace, 0.5)).wait()
        self.registry.close_all()
        logger.info("stopped")
        self._stopped.set()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped.

        Args:
            timeout: Seconds to wait at most; forever by default.

        Returns:
            True if the server stopped.
        """
        return self._stopped.wait(timeout)


def _import_env_modules(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"--env-module {name!r} cannot be imported: {error}") from error


def _authenticator(config: ServerConfig) -> Authenticator:
    if config.tokens_file is not None:
        return Authenticator(load_tokens(config.tokens_file))
    return Authenticator(None, Identity("anonymous", Role(config.anonymous_role)))


def _check_exposure(config: ServerConfig) -> None:
    if is_loopback_address(config.address):
        return
    if config.open and not config.allow_public_open:
        raise ValueError(
            f"refusing to serve {config.address} without a tokens file: anyone who can reach "
            "it could use the server. Give --tokens-file, or --allow-public-open if this "
            "is really what you want"
        )
    if not config.tls:
        logger.warning(
            "serving %s without TLS: tokens and data travel in clear text", config.address
        )


def create_server(config: ServerConfig) -> tuple[GymrpcServer, int]:
    """Build a server from a configuration, bound but not started.

    Args:
        config: The configuration.

    Returns:
        The server and the port it is bound to (useful with port 0).

    Raises:
        ValueError: If the configuration cannot be served (an env module that does not
            import, a bad tokens file, an open server on a public address, an address
            that cannot be bound).
    """
    _check_exposure(config)
    import gymrpc_server  # noqa: F401, PLC0415  (registers gymrpc's own environments)

    tune_allocator()  # large results: see gymrpc.allocator

    _import_env_modules(config.env_modules)
    unknown = sorted(i for i in config.allowed_env_ids if i not in gymnasium.registry)
    if unknown:
        raise ValueError(f"allowed environment ids are not registered: {unknown}")
    authenticator = _authenticator(config)
    lifecycle = Lifecycle()
    catalogue = Catalogue(config.allowed_env_ids, config.privileged_options)
    registry = SessionRegistry(
        catalogue,
        Limits(
            max_num_envs=config.max_num_envs,
            max_sessions_per_user=config.max_sessions_per_user,
            max_sessions=config.max_sessions,
            step_quota=config.step_quota,
            session_idle_timeout=config.session_idle_timeout,
            max_message_bytes=config.max_message_bytes,
        ),
    )
    capabilities = ["stream", "unary_step", "idempotent_retry", "call", "get_attr"]
    capabilities += ["set_attr", "render"]
    capabilities += ["auth"] if authenticator.required else []
    capabilities += ["tls"] if config.tls else []
    servicer = EnvServicer(
        registry,
        EnvironmentDescriber(catalogue),
        authenticator,
        lifecycle,
        ServicerSettings(
            max_message_bytes=config.max_message_bytes,
            max_tensor_elements=config.max_tensor_elements,
            capabilities=tuple(capabilities),
            attribute_access_for_users=config.attribute_access == "all",
            privileged_options=config.privileged_options,
        ),
    )
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="gymrpc"),
        interceptors=[_Gate(authenticator, lifecycle)],
        options=_channel_options(config),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    pb_grpc.add_EnvServiceServicer_to_server(servicer, grpc_server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        grpc_server,
    )
    port = _bind(grpc_server, config)
    return GymrpcServer(config, grpc_server, registry, health_servicer, lifecycle), port


def _bind(grpc_server: grpc.Server, config: ServerConfig) -> int:
    try:
        if config.tls_cert is not None and config.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())]
            )
            return int(grpc_server.add_secure_port(config.address, credentials))
        return int(grpc_server.add_insecure_port(config.address))
    except RuntimeError as error:
        raise ValueError(f"cannot listen on {config.address}: {error}") from error
