"""Prometheus metrics of a gymrpc server: ``--metrics-address host:port`` (``metrics`` extra).

The servicer records steps, episodes and errors through a :class:`Recorder`; a server
without ``--metrics-address`` gets :data:`NO_METRICS`, whose methods do nothing, and
never imports ``prometheus-client``. :class:`ServerMetrics` is the real recorder: it
owns its own registry (several servers in one process do not collide), an interceptor
that times every call, and the HTTP endpoint that serves ``/metrics``.

Names. Calls are counted under the names of gRPC's own OpenTelemetry plugin (gRFC A66:
``grpc.server.call.started`` with the attribute ``grpc.method``,
``grpc.server.call.duration`` with ``grpc.method`` and ``grpc.status``), as its
Prometheus exporter writes them, so dashboards made for gRPC servers work unchanged:

- ``grpc_server_call_started_total{grpc_method}``: calls started.
- ``grpc_server_call_duration_seconds{grpc_method,grpc_status}`` (histogram): calls
  ended, by status, and how long they took.
- ``gymrpc_env_steps_total{env_id}``: sub-environment steps (a batch step of n counts n).
- ``gymrpc_batch_steps_total{env_id}``: batch steps (Step requests that stepped).
- ``gymrpc_step_duration_seconds{env_id}`` (histogram): one batch step in its session,
  decoding and encoding excluded.
- ``gymrpc_episodes_total{env_id,ending,reason}``: episodes ended, ``terminated`` or
  ``truncated``, with the reason the environment declares (``gymrpc.episode_reason``;
  empty if it declares none).
- ``gymrpc_active_sessions`` (gauge): open sessions.
- ``gymrpc_errors_total{reason}``: errors the servicer answered, by ``ErrorReason``.
- ``gymrpc_credentials_refused_total``: calls refused for a missing or unknown token.
- ``gymrpc_quota_refusals_total{limit}``: requests refused by a limit or the step quota
  (``step_quota``, ``max_sessions_per_user``, ``max_sessions``, ``max_num_envs``).

A session stream's ``grpc_server_call_duration_seconds`` is the life of the stream,
not of a step: step latency is ``gymrpc_step_duration_seconds``, measured around the
session's step. No label holds a user name or a session id: label values are method
names, status codes, environment ids, error reasons and the reason names an
environment declares (``gymrpc.episode_reason``), all bounded sets.

Several worker processes (``--workers N``): every worker records into
prometheus-client's multiprocess files in one shared directory
(``ServerConfig.metrics_directory``) and serves nothing; the parent serves them all,
summed, from ``--metrics-address`` (:class:`WorkersMetrics`). One scrape target per
host, whatever N.

Example::

    server, port = create_server(ServerConfig(metrics_address="127.0.0.1:9464"))
    server.start()  # curl http://127.0.0.1:9464/metrics
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
import numpy as np
from gymnasium.vector import AutoresetMode

from gymrpc.errors import GymrpcError
from gymrpc_server.config import ServerConfig, split_address
from gymrpc_server.scores.tracker import ReasonSpec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from gymrpc_server.session import Session, StepResult

__all__ = [
    "CALL_DURATION_BUCKETS",
    "METRIC_NAMES",
    "NO_METRICS",
    "STEP_DURATION_BUCKETS",
    "Recorder",
    "ServerMetrics",
    "WorkersMetrics",
    "open_metrics",
]

logger = logging.getLogger(__name__)

_INSTALL_HINT: Final = "pip install -e '.[metrics]'"
#: gRFC A66's latency buckets, in seconds: what gRPC's OpenTelemetry plugin uses.
CALL_DURATION_BUCKETS: Final = (
    0.0,
    0.00001,
    0.00005,
    0.0001,
    0.0003,
    0.0006,
    0.0008,
    0.001,
    0.002,
    0.003,
    0.004,
    0.005,
    0.006,
    0.008,
    0.01,
    0.013,
    0.016,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.065,
    0.08,
    0.1,
    0.13,
    0.16,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.65,
    0.8,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
)
#: Step latency buckets, in seconds: from a one-env CartPole step (tens of microseconds)
#: to a large slow batch. Fewer than A66's: observing costs one comparison per bucket
#: below the value, on the hot path.
STEP_DURATION_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
#: The metric families a server exports (as they appear on /metrics, without the
#: _bucket/_count/_sum suffixes of histograms).
METRIC_NAMES: Final = (
    "grpc_server_call_started_total",
    "grpc_server_call_duration_seconds",
    "gymrpc_env_steps_total",
    "gymrpc_batch_steps_total",
    "gymrpc_step_duration_seconds",
    "gymrpc_episodes_total",
    "gymrpc_active_sessions",
    "gymrpc_errors_total",
    "gymrpc_credentials_refused_total",
    "gymrpc_quota_refusals_total",
)
#: Error reasons that are a limit or the quota refusing, and the setting that refused.
_LIMITS: Final = {
    "STEP_QUOTA_EXHAUSTED": "step_quota",
    "SESSION_LIMIT": "max_sessions_per_user",
    "SERVER_BUSY": "max_sessions",
    "NUM_ENVS_LIMIT": "max_num_envs",
}
#: How often a worker refreshes its open-session count in the shared files: the parent
#: cannot ask the worker's registry at scrape time.
_SESSIONS_PERIOD: Final = 1.0
_TERMINATED: Final = "terminated"
_TRUNCATED: Final = "truncated"


def _prometheus(module: str = "prometheus_client") -> ModuleType:
    """Import prometheus-client (or one of its modules), or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(
            f"--metrics-address needs prometheus-client, from the optional extra 'metrics' "
            f"({error}); install it with: {_INSTALL_HINT}"
        ) from error


class Recorder:
    """What the servicer records. This base records nothing: a server without metrics."""

    def stepped(self, session: Session, result: StepResult, seconds: float) -> None:
        """A batch step of ``session`` returned ``result`` after ``seconds``."""

    def failed(self, error: GymrpcError) -> None:
        """The servicer answered ``error`` (a status, or a stream's error response)."""


#: The recorder of a server without ``--metrics-address``.
NO_METRICS: Final = Recorder()


@dataclass
class _EnvInstruments:
    """One environment's bound metrics: ``labels()`` costs a lock and a tuple, so once."""

    env_steps: Any
    batch_steps: Any
    duration: Any
    episodes: Callable[[str, str], Any]
    #: Where its info says how episodes end (None: it does not say); found at the
    #: first ended episode, from the environment's metadata.
    reason: ReasonSpec | None = None
    reason_known: bool = False
    by_ending: dict[tuple[str, str], Any] = field(default_factory=dict)

    def episode(self, ending: str, reason: str) -> Any:
        child = self.by_ending.get((ending, reason))
        if child is None:
            child = self.by_ending[ending, reason] = self.episodes(ending, reason)
        return child

    def episodes_ended(
        self, session: Session, result: StepResult, terminated: int, truncated: int
    ) -> list[tuple[str, str, int]]:
        """The episodes that ended in this step: ``(ending, reason, how many)``.

        Args:
            session: The session that stepped.
            result: Its step's result.
            terminated: How many sub-environments terminated.
            truncated: How many were truncated (some may have terminated too).

        Few array operations, none per episode: a large batch ends hundreds of
        episodes in one step, right after the environment evicted every cache.
        """
        truncations = result.truncations
        if terminated and truncated:
            # Both terminated and truncated counts as terminated: the terminal state
            # was reached (Gymnasium's reading).
            truncations = truncations & ~result.terminations
            truncated = int(np.count_nonzero(truncations))
        if not self.reason_known:
            self.reason = ReasonSpec.from_metadata(session.env.metadata)
            self.reason_known = True
        reasons = None if self.reason is None else _reason_codes(self.reason, session, result)
        ended: list[tuple[str, str, int]] = []
        for ending, where, count in (
            (_TERMINATED, result.terminations, terminated),
            (_TRUNCATED, truncations, truncated),
        ):
            if not count:
                continue
            if reasons is None:
                ended.append((ending, "", count))
                continue
            codes, present = reasons
            selected = codes[where]
            if present is not None:
                shown = present[where]
                named = int(np.count_nonzero(shown))
                if named < count:
                    ended.append((ending, "", count - named))
                    selected = selected[shown]
            ended += [(ending, self._reason_name(code), n) for code, n in _tally(selected)]
        return ended

    def forget_reasons(self, env_id: str) -> None:
        """Count this environment's episodes without reasons from now on (they broke)."""
        logger.warning(
            "metrics: %s reports episode reasons that cannot be counted; counting its "
            "episodes without them",
            env_id,
            exc_info=True,
        )
        self.reason, self.reason_known = None, True

    def _reason_name(self, code: int) -> str:
        assert self.reason is not None  # only called with codes from its spec
        return self.reason.names.get(code, str(code))


def _reason_codes(
    spec: ReasonSpec, session: Session, result: StepResult
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, np.dtype[np.bool_]] | None] | None:
    """Every sub-environment's reason code in this step, and where it is given.

    Where the environment reports it follows the autoreset mode, as in the scores'
    tracker: the step's info, or in SAME_STEP mode the step's ``final_info``.

    Returns:
        The codes and the info's mask of them (None: all given), or None when the
        step's info has no codes.
    """
    info: Any = result.info
    if session.autoreset_mode is AutoresetMode.SAME_STEP:
        info = info.get("final_info")
    if not isinstance(info, Mapping) or spec.key not in info:
        return None
    mask = info.get(f"_{spec.key}")
    return (
        np.asarray(info[spec.key]),
        None if mask is None else np.asarray(mask, dtype=np.bool_),
    )


def _tally(codes: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
    """``(code, how many)`` for each code present: a bincount, not a sort.

    Reason codes are usually one byte (the turbofan's are int8): counted over the 256
    byte values, with no range to find first.
    """
    if codes.size == 0:
        return []
    if codes.dtype.itemsize == 1 and codes.dtype.kind in "iub":
        counts = np.bincount(codes.view(np.uint8))
        found = counts.nonzero()[0]
        values = found.tolist()
        if codes.dtype.kind == "i":  # int8 -1 is the byte 255
            values = [value - 256 if value >= 128 else value for value in values]
        return list(zip(values, counts[found].tolist(), strict=True))
    wide = codes.astype(np.int64, copy=False)
    low, high = int(wide.min()), int(wide.max())
    if high - low > 4096:  # sparse codes: sorting is cheaper than a long bincount
        unique, how_many = np.unique(wide, return_counts=True)
        return list(zip(unique.tolist(), how_many.tolist(), strict=True))
    counts = np.bincount(wide - low)
    found = counts.nonzero()[0]
    return list(zip((found + low).tolist(), counts[found].tolist(), strict=True))


class ServerMetrics(Recorder):
    """The Prometheus metrics of one server (see the module's table).

    Args:
        directory: Record into prometheus-client's multiprocess files in this directory
            (a worker of ``--workers N``; the parent serves them); None keeps the values
            in this process, served by :meth:`serve`.

    Attributes:
        registry: Its collector registry (None for a worker: the parent collects).
        port: The port of the endpoint, once :meth:`serve` has bound it.
    """

    def __init__(self, *, directory: Path | None = None) -> None:
        prometheus = _prometheus()
        if directory is not None:
            _record_into(directory)
        self._directory = directory
        self.registry: CollectorRegistry | None = (
            None if directory is not None else prometheus.CollectorRegistry()
        )
        registry = self.registry
        if registry is not None:
            # The process's CPU, memory and GC; a worker's would not add up across workers.
            prometheus.ProcessCollector(registry=registry)
            prometheus.PlatformCollector(registry=registry)
            prometheus.GCCollector(registry=registry)
        # A worker's metrics are unregistered objects writing to files; registry=None
        # keeps them out of prometheus-client's process-wide default registry.
        counter, gauge, histogram = prometheus.Counter, prometheus.Gauge, prometheus.Histogram
        self._call_started: Counter = counter(
            "grpc_server_call_started",
            "Calls started (gRPC OpenTelemetry grpc.server.call.started)",
            ["grpc_method"],
            registry=registry,
        )
        self._call_duration: Histogram = histogram(
            "grpc_server_call_duration_seconds",
            "Calls ended, and their duration in seconds; a session stream's is its life "
            "(gRPC OpenTelemetry grpc.server.call.duration)",
            ["grpc_method", "grpc_status"],
            buckets=CALL_DURATION_BUCKETS,
            registry=registry,
        )
        self._env_steps: Counter = counter(
            "gymrpc_env_steps",
            "Sub-environment steps (a batch step of n sub-environments counts n)",
            ["env_id"],
            registry=registry,
        )
        self._batch_steps: Counter = counter(
            "gymrpc_batch_steps",
            "Batch steps: Step requests that stepped",
            ["env_id"],
            registry=registry,
        )
        self._step_duration: Histogram = histogram(
            "gymrpc_step_duration_seconds",
            "Seconds one batch step takes in its session (request decoding and result "
            "encoding excluded)",
            ["env_id"],
            buckets=STEP_DURATION_BUCKETS,
            registry=registry,
        )
        self._episodes: Counter = counter(
            "gymrpc_episodes",
            "Episodes ended: terminated or truncated, and the reason the environment "
            "declares (gymrpc.episode_reason; empty if none)",
            ["env_id", "ending", "reason"],
            registry=registry,
        )
        self._sessions: Gauge = gauge(
            "gymrpc_active_sessions",
            "Open sessions",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._errors: Counter = counter(
            "gymrpc_errors",
            "Errors answered, by ErrorReason (errors.proto)",
            ["reason"],
            registry=registry,
        )
        self._credentials_refused: Counter = counter(
            "gymrpc_credentials_refused",
            "Calls refused for a missing or unknown bearer token",
            registry=registry,
        )
        self._quota_refusals: Counter = counter(
            "gymrpc_quota_refusals",
            "Requests refused by a limit or the step quota, by the setting that refused",
            ["limit"],
            registry=registry,
        )
        for limit in _LIMITS.values():
            self._quota_refusals.labels(limit)  # present as 0 before the first refusal
        self._envs: dict[str, _EnvInstruments] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._http: Any = None
        self._refresher: threading.Thread | None = None
        self.port: int | None = None

    # --- the servicer's records (hot path) ---------------------------------------------

    def stepped(self, session: Session, result: StepResult, seconds: float) -> None:
        """Count a batch step, its sub-environment steps and its ended episodes."""
        instruments = self._envs.get(session.env_id) or self._bind(session.env_id)
        instruments.env_steps.inc(session.num_envs)
        instruments.batch_steps.inc()
        instruments.duration.observe(seconds)
        # count_nonzero: a fraction of the cost of ndarray.any() on small arrays.
        terminated = int(np.count_nonzero(result.terminations))
        truncated = int(np.count_nonzero(result.truncations))
        if terminated or truncated:
            try:
                ended = instruments.episodes_ended(session, result, terminated, truncated)
            except Exception:
                # An environment's odd reason codes must not fail the step it served.
                instruments.forget_reasons(session.env_id)
                ended = instruments.episodes_ended(session, result, terminated, truncated)
            for ending, reason, count in ended:
                instruments.episode(ending, reason).inc(count)

    def _bind(self, env_id: str) -> _EnvInstruments:
        with self._lock:
            if env_id not in self._envs:
                self._envs[env_id] = _EnvInstruments(
                    env_steps=self._env_steps.labels(env_id),
                    batch_steps=self._batch_steps.labels(env_id),
                    duration=self._step_duration.labels(env_id),
                    episodes=lambda ending, reason: self._episodes.labels(env_id, ending, reason),
                )
            return self._envs[env_id]

    def failed(self, error: GymrpcError) -> None:
        """Count an error by its reason, and as a quota refusal when it is one."""
        self._errors.labels(error.reason).inc()
        limit = _LIMITS.get(error.reason)
        if limit is not None:
            self._quota_refusals.labels(limit).inc()

    # --- wiring ------------------------------------------------------------------------

    def interceptor(self, stopping: threading.Event) -> grpc.ServerInterceptor:
        """The interceptor that counts and times every call; put it first (outermost).

        Args:
            stopping: Set while the server stops: streams it cuts then end UNAVAILABLE,
                which the handler cannot see (it sees its requests end).
        """
        return _CallMetrics(
            self._call_started, self._call_duration, self._credentials_refused, stopping
        )

    def watch_sessions(self, count: Callable[[], int]) -> None:
        """Report ``count()`` as the open sessions.

        A single process reads it at every scrape; a worker writes it to the shared
        files every second (the parent cannot call into the worker).
        """
        if self._directory is None:
            self._sessions.set_function(lambda: float(count()))
            return

        def refresh() -> None:
            while True:
                self._sessions.set(count())
                if self._stop.wait(_SESSIONS_PERIOD):
                    # A last look: the sessions a stop closed are gone from the sum.
                    self._sessions.set(count())
                    return

        self._refresher = threading.Thread(
            target=refresh, name="gymrpc-metrics-sessions", daemon=True
        )
        self._refresher.start()

    def serve(self, address: str) -> str:
        """Serve ``/metrics`` on ``host:port`` in a background thread.

        Returns:
            The endpoint's URL (with the port the OS chose for port 0).

        Raises:
            ValueError: If the address cannot be bound, or this is a worker.
        """
        if self.registry is None:
            raise ValueError("a worker's metrics are served by its parent, not by the worker")
        self._http, self.port = _start_http(address, self.registry)
        return _url(address, self.port)

    def close(self) -> None:
        """Stop the endpoint and the session watcher. Idempotent."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()


def open_metrics(config: ServerConfig) -> ServerMetrics | None:
    """The metrics a configuration asks for: none, a served endpoint, or a worker's files.

    The endpoint is bound here, so that a busy port fails the start like a busy gRPC
    port does.

    Raises:
        ValueError: If prometheus-client is missing or the address cannot be bound.
    """
    if config.metrics_directory is not None:
        return ServerMetrics(directory=config.metrics_directory)
    if config.metrics_address is None:
        return None
    metrics = ServerMetrics()
    url = metrics.serve(config.metrics_address)
    logger.info("metrics on %s", url)
    return metrics


def _code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """The status the handler set (``abort`` sets it too); grpcio has it, its stubs do not."""
    code: grpc.StatusCode | None = cast(Any, context).code()
    return code


class _CallMetrics(grpc.ServerInterceptor):
    """Counts every call when it starts and times it until it ends, with its status.

    A call ends when its handler returns or raises, or for a streaming response when
    its last response is taken or the client goes away. Its status is the one the
    handler set (``abort`` sets it), OK when it set none, CANCELLED when the client
    cancelled, UNKNOWN when the handler raised something else. Methods the server does
    not serve are not counted (gRPC answers UNIMPLEMENTED before any handler).
    """

    def __init__(
        self, started: Counter, duration: Histogram, refused: Counter, stopping: threading.Event
    ) -> None:
        self._started = started
        self._duration = duration
        self._refused = refused
        self._stopping = stopping
        self._started_by_method: dict[str, Any] = {}
        self._duration_by_status: dict[tuple[str, str], Any] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return None
        # A66's grpc.method: the full name without the leading slash.
        method = str(details.method).removeprefix("/")
        started = self._started_by_method.get(method)
        if started is None:
            started = self._started_by_method[method] = self._started.labels(method)
        return self._timed(handler, method, started)

    def _record(self, method: str, status: str, since: float) -> None:
        child = self._duration_by_status.get((method, status))
        if child is None:
            child = self._duration_by_status[method, status] = self._duration.labels(method, status)
        child.observe(time.perf_counter() - since)
        if status == "UNAUTHENTICATED":
            # The gate's refusal is the only source of UNAUTHENTICATED.
            self._refused.inc()

    def _failure(self, context: grpc.ServicerContext, error: BaseException) -> str:
        code = _code(context)
        if code is not None:
            return str(code.name)
        if isinstance(error, grpc.RpcError):
            # The request stream broke: the client cancelled, or the server cut it.
            return "UNAVAILABLE" if self._stopping.is_set() else "CANCELLED"
        return "UNKNOWN"

    @staticmethod
    def _success(context: grpc.ServicerContext) -> str:
        code = _code(context)
        return "OK" if code is None else str(code.name)

    def _timed(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str, started: Any
    ) -> grpc.RpcMethodHandler[Any, Any]:
        behavior = (
            handler.stream_stream
            or handler.stream_unary
            or handler.unary_stream
            or handler.unary_unary
        )
        assert behavior is not None  # every method handler has one behavior
        streaming = handler.response_streaming

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            since = time.perf_counter()
            started.inc()
            try:
                response = behavior(request, context)
            except BaseException as error:
                self._record(method, self._failure(context, error), since)
                raise
            if streaming:
                return self._watched(response, context, method, since)
            self._record(method, self._success(context), since)
            return response

        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.request_streaming and streaming:
            return grpc.stream_stream_rpc_method_handler(run, **kwargs)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(run, **kwargs)
        if streaming:
            return grpc.unary_stream_rpc_method_handler(run, **kwargs)
        return grpc.unary_unary_rpc_method_handler(run, **kwargs)

    def _watched(
        self, responses: Iterator[Any], context: grpc.ServicerContext, method: str, since: float
    ) -> Iterator[Any]:
        """``responses``, recording the call when they end."""
        status = None
        try:
            yield from responses
        except GeneratorExit:
            # gRPC dropped the stream (the client went away): closing runs the
            # handler's own clean-up through ``yield from``.
            status = "CANCELLED"
            raise
        except BaseException as error:
            status = self._failure(context, error)
            raise
        finally:
            self._record(method, status or self._success(context), since)


# --- several workers, one endpoint ----------------------------------------------------------


def _record_into(directory: Path) -> None:
    """Make this process write prometheus-client values into ``directory``'s files.

    prometheus-client picks its value class when first imported, from
    ``PROMETHEUS_MULTIPROC_DIR``; a worker may have imported it before (an environment
    module, say), so the class is replaced as well. Only worker processes do this.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values = _prometheus("prometheus_client.values")
    if not getattr(values.ValueClass, "_multiprocess", False):
        setattr(values, "ValueClass", values.MultiProcessValue())  # noqa: B010 (a module's)


class WorkersMetrics:
    """The one metrics endpoint of a server run as several worker processes.

    The parent process opens it before starting the workers and closes it after they
    exit: it creates the shared directory, serves the sum of every worker's files, and
    removes the directory at the end. Workers get :meth:`worker_config`: the
    directory instead of the address. Without ``metrics_address`` it does nothing.

    Example::

        with WorkersMetrics.open(config) as metrics:
            run_workers(metrics.worker_config(config), log_level)

    Attributes:
        directory: The shared directory (None without metrics).
        port: The endpoint's port (None without metrics).
    """

    def __init__(self, directory: Path | None, http: Any, port: int | None) -> None:
        self.directory = directory
        self.port = port
        self._http = http

    @classmethod
    def open(cls, config: ServerConfig) -> WorkersMetrics:
        """Create the directory and serve it on ``config.metrics_address``.

        Raises:
            ValueError: If prometheus-client is missing or the address cannot be bound.
        """
        if config.metrics_address is None:
            return cls(None, None, None)
        prometheus = _prometheus()
        multiprocess = _prometheus("prometheus_client.multiprocess")
        directory = Path(tempfile.mkdtemp(prefix="gymrpc-metrics-"))
        try:
            registry = prometheus.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(directory))
            http, port = _start_http(config.metrics_address, registry)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        logger.info("metrics of all workers on %s", _url(config.metrics_address, port))
        return cls(directory, http, port)

    def worker_config(self, config: ServerConfig) -> ServerConfig:
        """The configuration the workers run: record into the directory, serve nothing."""
        if self.directory is None:
            return config
        return replace(config, metrics_address=None, metrics_directory=self.directory)

    def worker_exited(self, pid: int) -> None:
        """Forget a dead worker's open sessions (its counters stay: they did happen)."""
        if self.directory is not None:
            _prometheus("prometheus_client.multiprocess").mark_process_dead(
                pid, path=str(self.directory)
            )

    def close(self) -> None:
        """Stop serving and remove the directory. Idempotent."""
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> WorkersMetrics:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _start_http(address: str, registry: CollectorRegistry) -> tuple[Any, int]:
    """Serve ``registry`` over HTTP on ``host:port``; return the server and its port."""
    host, port = split_address(address)
    exposition = _prometheus("prometheus_client.exposition")
    try:
        http, _thread = exposition.start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ValueError(
            f"cannot serve metrics on {address} (--metrics-address): {error.strerror or error}"
        ) from error
    return http, int(http.server_port)


def _url(address: str, port: int) -> str:
    host = address.rpartition(":")[0]  # as written, brackets of IPv6 hosts included
    return f"http://{host}:{port}/metrics"
