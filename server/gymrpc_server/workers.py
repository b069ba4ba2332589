"""``gymrpc-server --workers N``: N server processes on one host, started, watched, stopped.

One Python process steps environments on one core at a time (the GIL), so a machine
with several cores serves more with several processes. Each worker is a full server
(its own port, sessions, health service and limits); nothing is shared between them,
so nothing needs a lock. Clients find them all through any one of them:
``GetServerInfoResponse.worker_targets`` lists every worker's address, and
``gymrpc.make_vec(target=<any worker>)`` spreads its batch over all of them.

Ports: with ``--address host:P`` worker ``i`` listens on ``P + i``; with ``host:0``
each worker takes a port from the operating system, reports it, and the parent gives
every worker the full list before any of them starts serving, so no client ever sees an
incomplete list. The parent logs one line per worker and then the usual
``serving on host:port`` line (worker 0's address) once every worker serves.

Stopping: SIGTERM or SIGINT to the parent stops every worker gracefully (each ends its
open streams with SHUTTING_DOWN, as a single server does). A worker that dies is not
restarted: its sessions died with it, a new process could not reclaim an OS-chosen
port that the other workers already list, and a crash loop hidden behind restarts
helps nobody. The parent stops the others and exits with status 1, and the process
supervisor (systemd, Kubernetes) restarts the whole server, with its usual back-off
and alerts, as one unit with one consistent list of workers.

Example::

    gymrpc-server --address 127.0.0.1:50051 --workers 4   # ports 50051..50054
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any, Final, cast

import grpc

from gymrpc.v1 import env_service_pb2 as pb
from gymrpc_server import __version__
from gymrpc_server.config import ServerConfig, is_loopback_address, split_address
from gymrpc_server.describe import CatalogueReport
from gymrpc_server.server import create_server
from gymrpc_server.servicer import EnvServicer

__all__ = ["WorkerPlanError", "run_workers", "worker_addresses"]

logger = logging.getLogger(__name__)

#: Seconds a worker may take to import, build its server and bind: far above what a
#: healthy start takes on a small machine, so that only a hang reaches it.
START_TIMEOUT: Final = 120.0
#: Seconds a stopping worker may take beyond its grace period before it is killed.
EXIT_MARGIN: Final = 10.0
#: How often the parent looks at its stop flag while it waits.
_POLL: Final = 0.2
#: Exit statuses of the parent: a worker died while serving; a worker could not start
#: (the single server's status for a configuration it cannot serve).
EXIT_WORKER_DIED: Final = 1
EXIT_CANNOT_START: Final = 2


class WorkerPlanError(ValueError):
    """The workers' addresses cannot be planned (ports beyond 65535)."""


def worker_addresses(address: str, workers: int) -> list[str]:
    """The address each worker listens on.

    Args:
        address: The server's ``host:port``.
        workers: How many workers.

    Returns:
        ``host:P+i`` for worker ``i``, or ``host:0`` for every worker when the port is 0
        (each then gets a port from the operating system).

    Raises:
        WorkerPlanError: If the last port would exceed 65535.

    Example:
        >>> worker_addresses("127.0.0.1:50051", 3)
        ['127.0.0.1:50051', '127.0.0.1:50052', '127.0.0.1:50053']
    """
    _, port = split_address(address)
    host = address.rpartition(":")[0]  # as written, brackets of IPv6 hosts included
    if port and port + workers - 1 > 65535:
        raise WorkerPlanError(
            f"--workers {workers} on {address} needs ports {port}..{port + workers - 1}, "
            "beyond 65535; choose a lower port"
        )
    return [f"{host}:{port + index if port else 0}" for index in range(workers)]


# --- the worker process ---------------------------------------------------------------------


class _Targets:
    """The workers' addresses, known once every worker has bound its port."""

    def __init__(self) -> None:
        self.value: tuple[str, ...] = ()


def _servicer_class(targets: _Targets) -> type[EnvServicer]:
    """An EnvServicer that lists the workers, which are known only after it is built.

    With OS-chosen ports the list exists only once every worker has bound its port,
    that is after ``create_server`` built the servicer from the configuration; the list
    is filled before the worker starts serving.
    """

    class WorkerServicer(EnvServicer):
        def GetServerInfo(  # noqa: N802 - the protocol's RPC name
            self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext
        ) -> pb.GetServerInfoResponse:
            response = super().GetServerInfo(request, context)
            if not response.worker_targets:
                response.worker_targets.extend(targets.value)
            return response

    return WorkerServicer


def _worker_main(
    config: ServerConfig,
    index: int,
    parent: Connection,
    log_level: str,
    announce: Callable[[CatalogueReport], None] | None,
) -> None:
    """Run worker ``index`` until the parent says stop or goes away (in the child).

    The conversation with the parent: the worker sends ``("bound", port)`` (or
    ``("error", message)``), receives ``("targets", [...])``, starts, sends
    ``("serving",)``, and stops on ``("stop",)`` or when the pipe closes.
    """
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s %(name)s (worker {index}): %(message)s",
        stream=sys.stderr,
    )
    # The parent coordinates a stop; a Ctrl-C reaches the whole process group, and the
    # parent's stop message follows it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    targets = _Targets()
    try:
        server, port = create_server(config, servicer_class=_servicer_class(targets))
    except ValueError as error:
        parent.send(("error", str(error)))
        sys.exit(EXIT_CANNOT_START)
    parent.send(("bound", port))
    try:
        message = parent.recv()
    except EOFError:
        return  # the parent is gone before the start
    if message[0] != "targets":
        return
    targets.value = tuple(message[1])

    def on_sigterm(_number: int, _frame: FrameType | None) -> None:
        logger.info("SIGTERM received; stopping gracefully")
        server.stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.start()
    parent.send(("serving",))

    def listen() -> None:
        # A stop message, or the parent's end (the pipe closes), stops this worker, so
        # that no worker outlives its parent.
        try:
            parent.recv()
        except (EOFError, OSError):
            logger.warning("the parent process is gone; stopping")
        server.stop()

    threading.Thread(target=listen, name="gymrpc-worker-parent", daemon=True).start()
    if announce is not None:
        announce(server.describer.report())
    server.wait_for_termination()


# --- the parent process ---------------------------------------------------------------------


@dataclasses.dataclass
class _Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    pipe: Connection
    address: str
    target: str = ""

    @property
    def sentinel(self) -> int:
        return int(self.process.sentinel)


class _StartError(Exception):
    """A worker could not start; the message says why."""


class _Supervisor:
    """Starts the workers, watches them, and stops them together."""

    def __init__(
        self,
        config: ServerConfig,
        log_level: str,
        announce: Callable[[CatalogueReport], None] | None,
    ) -> None:
        self.config = config
        self.log_level = log_level
        self.announce = announce
        self.workers: list[_Worker] = []
        self.stop_requested = threading.Event()

    def start(self, addresses: Sequence[str]) -> None:
        """Start every worker and bring them all to serving, or raise _StartError."""
        # spawn, not fork: each worker is a fresh interpreter, with no copy of the
        # parent's threads or gRPC state (gRPC does not survive fork).
        context = multiprocessing.get_context("spawn")
        for index, address in enumerate(addresses):
            pipe, child = context.Pipe()
            config = dataclasses.replace(self.config, address=address, workers=1)
            process = context.Process(
                target=_worker_main,
                args=(config, index, child, self.log_level, self.announce if index == 0 else None),
                name=f"gymrpc-worker-{index}",
            )
            process.start()
            child.close()  # the parent keeps only its end: EOF tells each side of the other
            self.workers.append(_Worker(index, process, pipe, address))
        deadline = time.monotonic() + START_TIMEOUT
        for worker in self.workers:
            port = self._expect(worker, "bound", deadline)[1]
            worker.target = f"{worker.address.rpartition(':')[0]}:{port}"
        targets = [worker.target for worker in self.workers]
        for worker in self.workers:
            worker.pipe.send(("targets", targets))
        for worker in self.workers:
            self._expect(worker, "serving", deadline)

    def _expect(self, worker: _Worker, kind: str, deadline: float) -> tuple[Any, ...]:
        """The worker's next message, which must be ``kind``; watches for its death."""
        while not self.stop_requested.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise _StartError(f"worker {worker.index} did not start within {START_TIMEOUT:g} s")
            ready = wait([worker.pipe, worker.sentinel], timeout=min(left, _POLL))
            if worker.pipe in ready:
                try:
                    message: tuple[Any, ...] = worker.pipe.recv()
                except EOFError:
                    message = ("exited",)
                if message[0] == kind:
                    return message
                if message[0] == "error":
                    raise _StartError(f"worker {worker.index}: {message[1]}")
            if worker.sentinel in ready or worker.process.exitcode is not None:
                worker.process.join(EXIT_MARGIN)
                raise _StartError(
                    f"worker {worker.index} exited while starting (status "
                    f"{worker.process.exitcode})"
                )
        raise _StartError("stopped while starting")

    def watch(self) -> _Worker | None:
        """Wait until a stop is requested (None) or a worker dies (that worker)."""
        sentinels = {worker.sentinel: worker for worker in self.workers}
        while not self.stop_requested.is_set():
            ready = wait(list(sentinels), timeout=_POLL)
            if ready:
                died = sentinels[cast(int, ready[0])]
                died.process.join(EXIT_MARGIN)  # collects its exit status
                return died
        return None

    def stop(self) -> bool:
        """Stop every live worker gracefully; kill those that overrun. True if all were clean."""
        for worker in self.workers:
            if worker.process.exitcode is None:
                with contextlib.suppress(OSError):  # a broken pipe: it is exiting anyway
                    worker.pipe.send(("stop",))
        deadline = time.monotonic() + self.config.grace_period + EXIT_MARGIN
        clean = True
        for worker in self.workers:
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            if worker.process.exitcode is None:
                logger.error("worker %d did not stop in time; killing it", worker.index)
                worker.process.kill()
                worker.process.join(EXIT_MARGIN)
                clean = False
            elif worker.process.exitcode != 0:
                clean = False
            worker.pipe.close()
        return clean


def _describe(config: ServerConfig) -> str:
    auth = "tokens" if config.tokens_file else f"open (anonymous {config.anonymous_role})"
    reach = "loopback only" if is_loopback_address(config.address) else "reachable from the network"
    return f"{'TLS' if config.tls else 'plaintext'}, auth: {auth}, {reach}"


def run_workers(
    config: ServerConfig,
    log_level: str,
    announce: Callable[[CatalogueReport], None] | None = None,
) -> int:
    """Run ``config.workers`` server processes until SIGTERM/SIGINT or one of them dies.

    Args:
        config: The configuration every worker serves (each on its own port).
        log_level: The workers' logging level.
        announce: Called in worker 0 with its catalogue report once it serves (the CLI
            logs it); a module-level function, as it travels to the worker by name.

    Returns:
        The exit status: 0 after a requested stop, 1 if a worker died (the others are
        stopped first), 2 if a worker could not start (e.g. its port is in use).
    """
    try:
        addresses = worker_addresses(config.address, config.workers)
    except WorkerPlanError as error:
        logger.error("%s", error)
        return EXIT_CANNOT_START
    supervisor = _Supervisor(config, log_level, announce)

    def on_signal(number: int, _frame: FrameType | None) -> None:
        logger.info(
            "%s received; stopping %d workers gracefully",
            signal.Signals(number).name,
            config.workers,
        )
        supervisor.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        supervisor.start(addresses)
    except _StartError as error:
        if supervisor.stop_requested.is_set():
            supervisor.stop()  # a signal while starting: stop as asked
            logger.info("stopped")
            return 0
        logger.error("%s; stopping the other workers", error)
        supervisor.stop()
        return EXIT_CANNOT_START
    targets = [worker.target for worker in supervisor.workers]
    for worker in supervisor.workers:
        logger.info(
            "worker %d listening at %s (pid %d)", worker.index, worker.target, worker.process.pid
        )
    logger.info(
        "gymrpc-server %s serving on %s (%s; %d workers: %s)",
        __version__,
        targets[0],
        _describe(config),
        len(targets),
        ", ".join(targets),
    )
    died = supervisor.watch()
    if died is not None:
        logger.error(
            "worker %d at %s (pid %d) exited unexpectedly with status %s; stopping the others",
            died.index,
            died.target,
            died.process.pid,
            died.process.exitcode,
        )
    clean = supervisor.stop()
    logger.info("stopped")
    if died is not None:
        return EXIT_WORKER_DIED
    return 0 if clean else EXIT_WORKER_DIED
