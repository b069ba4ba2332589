"""Assembles a gymrpc server: the EnvService, health, reflection, auth, TLS, limits.

:func:`create_server` is the one factory used by the CLI and by the tests::

    server, port = create_server(ServerConfig(address="127.0.0.1:0"))
    server.start()
    ...
    server.stop(grace=5).wait()
"""

from __future__ import annotations

import errno
import importlib
import logging
import socket
import threading
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any, cast

import grpc
import gymnasium
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from gymrpc.allocator import tune_allocator
from gymrpc.errors import AuthenticationError, GymrpcError, ShuttingDownError
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.v1 import scores_pb2 as spb
from gymrpc.v1 import scores_pb2_grpc as spb_grpc
from gymrpc_server.auth import Authenticator, Identity, Role, load_tokens
from gymrpc_server.calls import CallContext
from gymrpc_server.catalogue import Catalogue
from gymrpc_server.config import ServerConfig, is_loopback_address, split_address
from gymrpc_server.describe import EnvironmentDescriber
from gymrpc_server.lifecycle import Lifecycle
from gymrpc_server.metrics import NO_METRICS, ServerMetrics, open_metrics
from gymrpc_server.policy import AccessPolicy
from gymrpc_server.registry import Limits, SessionRegistry
from gymrpc_server.scores.service import ScoresServicer
from gymrpc_server.scores.setup import Scores, open_scores
from gymrpc_server.scores.store import ScoreStore

if TYPE_CHECKING:
    from gymrpc_server.scores.web import WebServer
from gymrpc_server.servicer import EnvServicer, ServicerSettings
from gymrpc_server.wire import wire_handler

__all__ = ["GymrpcServer", "create_server"]

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnvService"].full_name
SCORES_SERVICE_NAME = spb.DESCRIPTOR.services_by_name["ScoresService"].full_name
#: Seconds between two looks at the scores database's health.
_SCORES_HEALTH_PERIOD = 0.5
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
    """Authenticates every call once, and refuses new calls while stopping.

    The identity travels to the servicer in a :class:`~gymrpc_server.calls.CallContext`.
    Health checks always pass, unauthenticated: orchestrators probe without tokens.
    Every other handler also gets the wire's edge: bad bodies refused cleanly, bytes
    sent as they are (see :mod:`gymrpc_server.wire`).
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
        if self._lifecycle.stopping.is_set():
            return _refusing(
                handler, ShuttingDownError("the server is shutting down; try again later")
            )
        identity = self._auth.identify(details.invocation_metadata)
        if identity is None:
            return _refusing(
                handler,
                # The credentials travel in call metadata, not in a request field.
                AuthenticationError(
                    "missing or invalid bearer token; expected the call metadata "
                    "'authorization: Bearer <token>' with a token of this server",
                    metadata={"metadata_key": "authorization"},
                ),
            )
        return _identified(handler, identity)


def _rebuilt(
    handler: grpc.RpcMethodHandler[Any, Any], behavior: Callable[[Any, Any], Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape and (de)serializers as ``handler``, running ``behavior``."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behavior, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behavior, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behavior, **kwargs)
    return grpc.unary_unary_rpc_method_handler(behavior, **kwargs)


def _identified(
    handler: grpc.RpcMethodHandler[Any, Any], identity: Identity
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with the caller's identity attached to its context."""
    behavior = (
        handler.stream_stream or handler.stream_unary or handler.unary_stream or handler.unary_unary
    )
    assert behavior is not None  # every method handler has one behavior

    def run(request: Any, context: grpc.ServicerContext) -> Any:
        # CallContext forwards every attribute of the real context.
        return behavior(request, cast(grpc.ServicerContext, CallContext(context, identity)))

    return _rebuilt(handler, run)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: GymrpcError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that only aborts with ``error``."""
    status = rpc_status.to_status(error.to_status())

    def refuse(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort_with_status(status)

    return _rebuilt(handler, refuse)


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
        *,
        grpc_server: grpc.Server,
        registry: SessionRegistry,
        health_servicer: health.HealthServicer,
        lifecycle: Lifecycle,
        describer: EnvironmentDescriber,
        scores: Scores,
        web: WebServer | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.health = health_servicer
        self.describer = describer
        self.scores = scores
        self.store = scores.store
        #: The leaderboard web page, when ``http_address`` is set.
        self.web = web
        #: The Prometheus metrics, when ``metrics_address`` (or a worker's directory) is set.
        self.metrics = metrics
        self._grpc_server = grpc_server
        self._lifecycle = lifecycle
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopping_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving, reaping idle sessions and watching the scores database."""
        self._grpc_server.start()
        self.registry.start_reaper()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self.store is not None:
            self._watch_scores(self.store)

    def _watch_scores(self, store: ScoreStore) -> None:
        """Report whether episodes can be written as the health of ScoresService.

        The server itself stays SERVING when the database is lost: ordinary sessions
        go on, records wait in the store's queue and evaluation requests are refused.
        """

        def watch() -> None:
            healthy: bool | None = None
            while not self._lifecycle.stopping.wait(_SCORES_HEALTH_PERIOD):
                status = store.status()
                if status.healthy != healthy:
                    healthy = status.healthy
                    self.health.set(
                        SCORES_SERVICE_NAME,
                        health_pb2.HealthCheckResponse.SERVING
                        if healthy
                        else health_pb2.HealthCheckResponse.NOT_SERVING,
                    )
                    if not healthy:
                        logger.warning(
                            "the scores database cannot be written (%s); %d records wait",
                            status.last_error,
                            status.queued,
                        )

        self.health.set(SCORES_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        threading.Thread(target=watch, name="gymrpc-scores-health", daemon=True).start()

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
        # Requests are done: close the sessions, then tell every open stream that the
        # server is gone, so clients fail at once instead of trying to re-attach.
        self.registry.close_all()
        if self.web is not None:
            self.web.stop()
        ended = self._lifecycle.end_streams("the server stopped; its sessions are closed")
        if ended:
            logger.info("ended %d open session streams", ended)
        # The short grace lets the last responses and statuses leave the process.
        self._grpc_server.stop(min(grace, 0.5)).wait()
        if self.store is not None:
            # Every episode that ended, or was abandoned above, is written before exit.
            written = self.store.close(timeout=max(grace, 1.0))
            status = self.store.status()
            logger.info(
                "scores database closed: %d records written%s",
                status.written,
                "" if written else f", {status.queued} could not be written",
            )
        if self.metrics is not None:
            # Last: a scrape during the stop still sees the calls and sessions ending.
            self.metrics.close()
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


def create_server(
    config: ServerConfig, *, servicer_class: type[EnvServicer] = EnvServicer
) -> tuple[GymrpcServer, int]:
    """Build a server from a configuration, bound but not started.

    Args:
        config: The configuration.
        servicer_class: The servicer to serve; tests of the conformance kit pass
            deliberately broken subclasses.

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
    policy = AccessPolicy(config.privileged_options, attribute_access=config.attribute_access)
    describer = EnvironmentDescriber(catalogue)
    scores = open_scores(config, catalogue)
    metrics: ServerMetrics | None = None
    try:
        metrics = open_metrics(config)
        return _assemble(
            config,
            servicer_class,
            authenticator,
            lifecycle,
            catalogue,
            policy,
            describer,
            scores,
            metrics,
        )
    except BaseException:
        if metrics is not None:
            metrics.close()
        if scores.store is not None:
            scores.store.close(timeout=1.0)
        raise


def _assemble(  # noqa: PLR0917 (the parts create_server made, in order)
    config: ServerConfig,
    servicer_class: type[EnvServicer],
    authenticator: Authenticator,
    lifecycle: Lifecycle,
    catalogue: Catalogue,
    policy: AccessPolicy,
    describer: EnvironmentDescriber,
    scores: Scores,
    metrics: ServerMetrics | None,
) -> tuple[GymrpcServer, int]:
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
        policy,
        scores.rules,
    )
    capabilities = ["stream", "unary_step", "idempotent_retry", "call", "get_attr"]
    capabilities += ["set_attr", "render", "env_docs"]
    capabilities += ["auth"] if authenticator.required else []
    capabilities += ["tls"] if config.tls else []
    capabilities += ["evaluation", "scores"] if scores.store is not None else []
    servicer = servicer_class(
        registry,
        describer,
        policy,
        lifecycle,
        ServicerSettings(
            max_message_bytes=config.max_message_bytes,
            max_tensor_elements=config.max_tensor_elements,
            capabilities=tuple(capabilities),
            worker_targets=config.worker_targets,
            scoring=scores.scoring if scores.store is not None else None,
        ),
        metrics=NO_METRICS if metrics is None else metrics,
    )
    interceptors: list[grpc.ServerInterceptor] = [_Gate(authenticator, lifecycle)]
    if metrics is not None:
        metrics.watch_sessions(registry.__len__)
        # Outermost: it times every call, the gate's refusals included.
        interceptors.insert(0, metrics.interceptor(lifecycle.stopping))
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="gymrpc"),
        interceptors=interceptors,
        options=_channel_options(config),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    pb_grpc.add_EnvServiceServicer_to_server(servicer, grpc_server)
    services = [SERVICE_NAME]
    if scores.store is not None:
        spb_grpc.add_ScoresServiceServicer_to_server(
            ScoresServicer(
                scores.store,
                lifecycle,
                visibility=config.leaderboard,
                reports_failures=scores.reports_failures,
            ),
            grpc_server,
        )
        services.append(SCORES_SERVICE_NAME)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        (
            *services,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        grpc_server,
    )
    port = _bind(grpc_server, config)
    web = _start_web(config, scores, authenticator)
    server = GymrpcServer(
        config,
        grpc_server=grpc_server,
        registry=registry,
        health_servicer=health_servicer,
        lifecycle=lifecycle,
        describer=describer,
        scores=scores,
        web=web,
        metrics=metrics,
    )
    return server, port


def _start_web(
    config: ServerConfig, scores: Scores, authenticator: Authenticator
) -> WebServer | None:
    """The leaderboard page, when asked for (see :mod:`.scores.web`)."""
    if config.http_address is None:
        return None
    if scores.store is None:
        raise ValueError(
            "--http-address serves the leaderboard, and this server keeps no scores "
            "(--database none); give a database or drop --http-address"
        )
    from gymrpc_server.scores.web import start_web  # noqa: PLC0415 (the web extra, lazily)

    web = start_web(
        scores.store,
        authenticator,
        address=config.http_address,
        visibility=config.leaderboard,
        env_ids=scores.rules.env_ids,
        tls_cert=config.tls_cert,
        tls_key=config.tls_key,
        allow_public_open=config.allow_public_open,
        reports_failures=scores.reports_failures,
    )
    logger.info("leaderboard page on %s", web.url)
    return web


def _bind(grpc_server: grpc.Server, config: ServerConfig) -> int:
    try:
        if config.tls_cert is not None and config.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())]
            )
            return int(grpc_server.add_secure_port(config.address, credentials))
        return int(grpc_server.add_insecure_port(config.address))
    except RuntimeError as error:
        raise ValueError(
            f"cannot listen on {config.address}: {_bind_failure(config.address)}"
        ) from error


def _bind_failure(address: str) -> str:
    """Why gRPC could not listen on ``address``, in words (gRPC only logs the reason).

    Binding a plain socket to the same address reproduces the operating system's
    answer, e.g. "address already in use" when another server holds the port.
    """
    host, port = split_address(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"the host {host!r} does not resolve ({error.strerror})"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return f"port {port} is already in use (another server listens on it)"
                if error.errno == errno.EACCES:
                    return f"permission denied for port {port} (ports below 1024 need privileges)"
                if error.errno == errno.EADDRNOTAVAIL:
                    return f"{host} is not an address of this machine"
                return error.strerror or str(error)
    return "gRPC refused the address (run with GRPC_VERBOSITY=debug for its log)"
