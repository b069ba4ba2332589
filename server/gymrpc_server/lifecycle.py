"""Server life cycle: whether it is stopping, which requests run, which streams are open.

A graceful stop refuses new work at once, lets requests already executing finish
(within the grace period), closes the sessions, then ends every open session stream
with UNAVAILABLE "SHUTTING_DOWN: ..." so that clients learn at once that the server is
gone (errors.proto, "The error model"), and only then cuts the connections.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Iterator
from types import TracebackType

import grpc

from gymrpc.protocol import SHUTDOWN_PREFIX

__all__ = ["Lifecycle"]

logger = logging.getLogger(__name__)


def _end_with_status(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    """End a call from outside its handler's thread with a status of our choosing.

    grpcio's public ``ServicerContext.cancel()`` ends a call with CANCELLED, which a
    client cannot tell from a broken connection; its handler thread is blocked reading
    the next request, so ``abort`` cannot be used either. The call object underneath
    cancels with a code and message, which gRPC sends to the client as the call's
    status. If a grpcio release moves it, the public cancel is the fallback (clients
    then learn of the stop when re-attaching fails).
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        cygrpc = importlib.import_module("grpc._cython.cygrpc")  # private; see above
        call.cancel(cygrpc.StatusCode(code.value[0]), message)  # type: ignore[union-attr]
    except Exception:
        logger.debug("cancelling with a status failed; cancelling plainly", exc_info=True)
        context.cancel()


class Lifecycle:
    """Stopping flag, in-flight request counter and open streams, shared by the server's parts.

    ``with lifecycle:`` marks one request as in progress. Counting is on the hot path
    of every request, so it is a plain counter under an uncontended lock; only a
    stopping server, rarely, polls it.
    """

    _POLL = 0.005

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._streams: set[grpc.ServicerContext] = set()

    def __enter__(self) -> None:
        with self._lock:
            self._in_flight += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Requests in progress now."""
        return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            True if idle, False if the timeout passed first.
        """
        deadline = time.monotonic() + timeout
        while self._in_flight > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._POLL)
        return True

    @contextlib.contextmanager
    def stream(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Count a session stream as open for the duration of the ``with`` block."""
        with self._lock:
            self._streams.add(context)
        try:
            yield
        finally:
            with self._lock:
                self._streams.discard(context)

    def end_streams(self, message: str) -> int:
        """End every open session stream with UNAVAILABLE and ``SHUTTING_DOWN: message``.

        Returns:
            How many streams were ended.
        """
        with self._lock:
            streams = list(self._streams)
        for context in streams:
            _end_with_status(context, grpc.StatusCode.UNAVAILABLE, f"{SHUTDOWN_PREFIX} {message}")
        return len(streams)
