"""gymrpc servers as Ray actors, spread over a Ray cluster (the ``ray`` extra).

:func:`start_servers` reserves a placement group of one bundle of CPUs per server
(SPREAD strategy: on as many nodes as the cluster has), starts one gymrpc server per
bundle as an actor, waits until every server answers SERVING on the standard health
service from here, and returns a :class:`ServerCluster`: the servers' targets, the
token they accept, and :meth:`~ServerCluster.stop`. A batch then spans the cluster::

    import ray
    import gymrpc
    import gymrpc.ray

    ray.init()  # or ray.init(address="auto") on a cluster
    with gymrpc.ray.start_servers(4, cpus_per_server=2) as cluster:
        envs = gymrpc.make_vec(
            "gymrpc/Turbofan-v0", 256, target=cluster.targets, token=cluster.token
        )

Each server listens on its node's address as Ray knows it
(``ray.util.get_node_ip_address()``), on a port the operating system picks. A server
reachable from the network accepts only the cluster's bearer token, generated here
for this cluster (the actors receive only its SHA-256 digest); on a loopback node
address the servers are open, like ``gymrpc-server`` on 127.0.0.1, and ``token`` is
None. The actors and the placement group belong to the Ray job: they end with the
driver if :meth:`ServerCluster.stop` is never called.

Only Ray core is needed (``pip install -e '.[ray]'``); ``ray[rllib]`` pins an older
Gymnasium. An RLlib environment creator picks a server by its worker index, see
:func:`target_for_worker`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import ipaddress
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final

import grpc

__all__ = ["ClusterStartError", "ServerCluster", "start_servers", "target_for_worker"]

logger = logging.getLogger(__name__)

_INSTALL_HINT: Final = "pip install -e '.[ray]'"
#: Flags start_servers sets itself, and why a caller cannot.
_RESERVED_FLAGS: Final = {
    "--address": "each server listens on its node's address; choose the port with port=",
    "--workers": "one server per bundle; ask for more servers instead",
}
#: Seconds a stopping server may take beyond its grace period before it is killed.
_STOP_MARGIN: Final = 10.0
_HEALTH_POLL: Final = 0.2
_STRATEGIES: Final = ("SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK")


class ClusterStartError(RuntimeError):
    """The servers could not all start; the message names the one that failed and why."""


def _ray() -> ModuleType:
    """Import Ray, or say which extra installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ImportError(
            f"gymrpc.ray needs Ray, from the optional extra 'ray' ({error}); install it "
            f"with: {_INSTALL_HINT} (from a gymrpc checkout) or pip install 'gymrpc[ray]'"
        ) from error


def target_for_worker(targets: Sequence[str], worker_index: int) -> str:
    """The server an RLlib-style worker connects to: worker i>=1 uses server (i-1) mod n.

    RLlib numbers its local worker 0 and its remote env runners 1..N; spreading the
    remote ones over the servers in turn gives every server the same share, and the
    local worker (which usually does not sample) the first server.

    Args:
        targets: The servers, e.g. :attr:`ServerCluster.targets`.
        worker_index: ``EnvContext.worker_index``.

    Returns:
        One of ``targets``.

    Raises:
        ValueError: If ``targets`` is empty or ``worker_index`` is negative.

    Example:
        >>> targets = ["10.0.0.1:40001", "10.0.0.2:40002"]
        >>> [target_for_worker(targets, index) for index in range(4)]
        ['10.0.0.1:40001', '10.0.0.1:40001', '10.0.0.2:40002', '10.0.0.1:40001']
    """
    if not targets:
        raise ValueError("targets: empty; expected at least one 'host:port'")
    if worker_index < 0:
        raise ValueError(f"worker_index: {worker_index}; expected 0 or more")
    return targets[max(worker_index - 1, 0) % len(targets)]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _ServerActor:
    """One gymrpc server in a Ray actor process (made a Ray actor by :func:`start_servers`).

    Args:
        server_args: ``gymrpc-server`` flags.
        port: The port to listen on (0: the OS picks one).
        token_sha256: Digest of the cluster's token, required of callers unless the
            node's address is loopback; None when the flags give the credentials.
    """

    def __init__(self, server_args: Sequence[str], port: int, token_sha256: str | None) -> None:
        self._args = list(server_args)
        self._port = port
        self._token_sha256 = token_sha256
        self._server: Any = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> tuple[str, bool]:
        """Build and start the server; return its target and whether it needs the token."""
        from gymrpc_server.cli import build_config  # noqa: PLC0415 (the actor's process only)
        from gymrpc_server.server import create_server  # noqa: PLC0415

        ray = _ray()
        host = str(ray.util.get_node_ip_address())
        shown = f"[{host}]" if ":" in host else host
        # Flags only: a node's own GYMRPC_* variables would make servers differ silently.
        config, log_level = build_config(self._args, environ={})
        logging.basicConfig(
            level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        needs_token = self._token_sha256 is not None and not _is_loopback(host)
        changes: dict[str, Any] = {"address": f"{shown}:{self._port}"}
        if needs_token:
            self._directory = tempfile.TemporaryDirectory(prefix="gymrpc-ray-")
            tokens = Path(self._directory.name) / "tokens.toml"
            tokens.write_text(
                f'[[tokens]]\nuser = "ray"\nrole = "user"\ntoken_sha256 = "{self._token_sha256}"\n'
            )
            tokens.chmod(0o600)
            changes["tokens_file"] = tokens
        try:
            self._server, port = create_server(dataclasses.replace(config, **changes))
        except BaseException:
            self._forget_tokens()
            raise
        self._server.start()
        return f"{shown}:{port}", needs_token

    def stop(self, grace: float) -> bool:
        """Stop gracefully (streams end with SHUTTING_DOWN); True once stopped."""
        stopped = True
        if self._server is not None:
            stopped = bool(self._server.stop(grace).wait(grace + _STOP_MARGIN))
        self._forget_tokens()
        return stopped

    def _forget_tokens(self) -> None:
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def node_id(self) -> str:
        """The Ray node this server runs on."""
        return str(_ray().get_runtime_context().get_node_id())


@dataclasses.dataclass
class ServerCluster:
    """gymrpc servers running as Ray actors; :func:`start_servers` builds it.

    Use it as a context manager, or call :meth:`stop`.

    Attributes:
        targets: Every server's ``host:port``, in bundle order: pass them all to
            ``gymrpc.make_vec(..., target=cluster.targets)``.
        token: The bearer token the servers accept (``token=`` of ``make_vec``), or
            None when they need none (loopback addresses, or credentials from the
            caller's ``--tokens-file``).
        node_ids: The Ray node of each server, in the same order.
    """

    targets: tuple[str, ...]
    token: str | None
    node_ids: tuple[str, ...]
    _actors: list[Any] = dataclasses.field(repr=False)
    _placement_group: Any = dataclasses.field(repr=False)
    _stopped: bool = dataclasses.field(default=False, repr=False)

    def target_for(self, worker_index: int) -> str:
        """The server worker ``worker_index`` connects to (see :func:`target_for_worker`)."""
        return target_for_worker(self.targets, worker_index)

    def stop(self, grace: float = 5.0) -> None:
        """Stop every server gracefully, then end the actors and free the bundles.

        Args:
            grace: Seconds the servers let requests in progress finish.
        """
        if self._stopped:
            return
        self._stopped = True
        _release(self._actors, self._placement_group, grace)

    def __enter__(self) -> ServerCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _release(actors: Sequence[Any], placement_group: Any, grace: float) -> None:
    """Stop the servers that run, kill every actor, remove the placement group."""
    ray = _ray()
    pending = [actor.stop.remote(grace) for actor in actors]
    with contextlib.suppress(Exception):  # a dead actor has nothing left to stop
        ray.get(pending, timeout=grace + _STOP_MARGIN)
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    with contextlib.suppress(Exception):
        importlib.import_module("ray.util.placement_group").remove_placement_group(placement_group)


def _check_args(server_args: Sequence[str]) -> bool:
    """Refuse flags start_servers sets, and bad flags, here rather than in every actor.

    Returns:
        True when the flags give the credentials (``--tokens-file``) or explicitly open
        the servers to the network (``--allow-public-open``): no token is generated.
    """
    from gymrpc_server.cli import build_config  # noqa: PLC0415 (the server's own parser)

    if isinstance(server_args, str):
        raise TypeError(
            "server_args: a string; expected a list of flags, e.g. ['--max-num-envs', '64']"
        )
    for flag in server_args:
        name = flag.split("=", 1)[0]
        if name in _RESERVED_FLAGS:
            raise ValueError(
                f"server_args: {name} is set by start_servers: {_RESERVED_FLAGS[name]}"
            )
    try:
        config, _ = build_config(list(server_args), environ={})
    except SystemExit as error:
        raise ValueError(
            f"server_args: {list(server_args)} are not valid gymrpc-server flags (see above)"
        ) from error
    return config.tokens_file is not None or config.allow_public_open


def start_servers(
    num_servers: int,
    *,
    cpus_per_server: float = 1.0,
    server_args: Sequence[str] = (),
    port: int = 0,
    strategy: str = "SPREAD",
    ready_timeout: float = 120.0,
    root_certificates: str | os.PathLike[str] | None = None,
) -> ServerCluster:
    """Start gymrpc servers as Ray actors, one per bundle of a placement group.

    Args:
        num_servers: How many servers.
        cpus_per_server: CPUs reserved for each server (its bundle); a server steps
            environments on one core at a time, so 1 to 2 is usual.
        server_args: ``gymrpc-server`` flags for every server, e.g.
            ``["--max-num-envs", "1024", "--database", "none"]``; GYMRPC_* variables of
            the nodes are not read. ``--address`` and ``--workers`` are set here.
            Give ``--database none`` or one shared PostgreSQL URL: the default is a
            SQLite file on each node, which would split the scores.
        port: Port of every server; 0 (the default) lets each node's OS pick one, a
            fixed port allows one server per node (use ``strategy="STRICT_SPREAD"``).
        strategy: Ray's placement strategy of the bundles: SPREAD (the default, as many
            nodes as possible), STRICT_SPREAD (one node each), PACK or STRICT_PACK.
        ready_timeout: Seconds to wait for the bundles, then for every server to serve.
        root_certificates: CA file to check the servers' TLS certificates when
            ``server_args`` has ``--tls-cert`` (the health checks connect with TLS).

    Returns:
        The running servers.

    Raises:
        ValueError: For a bad count, strategy or flags.
        ImportError: If Ray is not installed (the message says how to install it).
        ClusterStartError: If the cluster cannot place the bundles, or a server does
            not start or does not answer SERVING in time; the servers already started
            are stopped and the bundles freed.
    """
    if num_servers < 1:
        raise ValueError(f"num_servers: {num_servers}; expected 1 or more")
    if cpus_per_server <= 0:
        raise ValueError(f"cpus_per_server: {cpus_per_server}; expected a positive number")
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy: {strategy!r}; expected one of {list(_STRATEGIES)}")
    caller_credentials = _check_args(server_args)
    ray = _ray()
    placement = importlib.import_module("ray.util.placement_group")
    scheduling = importlib.import_module("ray.util.scheduling_strategies")
    token = None if caller_credentials else secrets.token_urlsafe(32)
    digest = None if token is None else hashlib.sha256(token.encode()).hexdigest()
    group = placement.placement_group([{"CPU": cpus_per_server}] * num_servers, strategy=strategy)
    deadline = time.monotonic() + ready_timeout
    actors: list[Any] = []
    try:
        try:
            ray.get(group.ready(), timeout=ready_timeout)
        except importlib.import_module("ray.exceptions").GetTimeoutError:
            raise ClusterStartError(
                f"the Ray cluster could not place {num_servers} bundles of {cpus_per_server:g} "
                f"CPUs ({strategy}) within {ready_timeout:g} s; it has "
                f"{ray.available_resources().get('CPU', 0):g} CPUs free"
            ) from None
        remote = ray.remote(_ServerActor)
        for index in range(num_servers):
            actors.append(
                remote.options(
                    num_cpus=cpus_per_server,
                    scheduling_strategy=scheduling.PlacementGroupSchedulingStrategy(
                        placement_group=group, placement_group_bundle_index=index
                    ),
                ).remote(list(server_args), port, digest)
            )
        started = [actor.start.remote() for actor in actors]
        targets: list[str] = []
        uses_token = False
        for index, reference in enumerate(started):
            try:
                target, needs_token = ray.get(
                    reference, timeout=max(deadline - time.monotonic(), 0.1)
                )
            except Exception as error:
                # A RayTaskError's text is the remote traceback; its cause is the news.
                cause = getattr(error, "cause", None) or error
                raise ClusterStartError(
                    f"gymrpc server {index} did not start: {type(cause).__name__}: {cause}"
                ) from error
            targets.append(target)
            uses_token = uses_token or needs_token
        for target in targets:
            _wait_serving(target, deadline, root_certificates)
        node_ids = ray.get([actor.node_id.remote() for actor in actors])
    except BaseException:
        _release(actors, group, grace=0.0)
        raise
    cluster = ServerCluster(
        targets=tuple(targets),
        token=token if uses_token else None,
        node_ids=tuple(node_ids),
        _actors=actors,
        _placement_group=group,
    )
    logger.info(
        "%d gymrpc servers on %d Ray nodes: %s",
        num_servers,
        len(set(node_ids)),
        ", ".join(targets),
    )
    return cluster


def _wait_serving(
    target: str, deadline: float, root_certificates: str | os.PathLike[str] | None
) -> None:
    """Wait until ``target`` answers SERVING on the standard health service, from here."""
    health_pb2 = importlib.import_module("grpc_health.v1.health_pb2")
    health_pb2_grpc = importlib.import_module("grpc_health.v1.health_pb2_grpc")
    if root_certificates is None:
        channel = grpc.insecure_channel(target)
    else:
        credentials = grpc.ssl_channel_credentials(Path(root_certificates).read_bytes())
        channel = grpc.secure_channel(target, credentials)
    last: object = "no answer"
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterStartError(
                    f"the gymrpc server at {target} did not answer SERVING in time from "
                    f"this machine (last: {last}); is its node's address reachable?"
                )
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=min(left, 5.0),
                    wait_for_ready=True,
                )
            except grpc.RpcError as error:
                last = error.code()
            else:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            time.sleep(_HEALTH_POLL)
