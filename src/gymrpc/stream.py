"""The client side of a session stream: ordered requests, deadlines, re-attaching.

Requests carry sequence numbers that increase for the whole session. When the stream
breaks (the connection dropped, a proxy restarted), :class:`SessionStream` opens a new
stream to the same session, retrying for a few seconds while the network flaps, and
re-sends the requests that had no answer with their original numbers; the server
answers a repeat of its latest request from memory, so nothing is executed twice and
the episode continues exactly.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import grpc

from gymrpc.connection import Connection
from gymrpc.errors import (
    DOMAIN,
    ConnectionLostError,
    DeadlineExceededError,
    InternalServerError,
    ShuttingDownError,
)
from gymrpc.protocol import SHUTDOWN_PREFIX
from gymrpc.v1 import env_service_pb2 as pb

__all__ = ["SessionStream"]

logger = logging.getLogger(__name__)

_CLOSE: Final = object()
# Status codes that mean "the transport broke", as opposed to an answer of the server.
_TRANSPORT_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


#: Longest time spent re-attaching a broken stream before giving up.
_REATTACH_WINDOW: Final = 5.0
#: Pause between re-attach attempts.
_RETRY_PAUSE: Final = 0.05


class _Watchdog:
    """Cancels a call whose response is overdue.

    The waiting thread only writes two attributes per request; the watchdog thread
    polls them a few times per second, so a deadline costs nothing on the hot path
    and is enforced to within :attr:`PERIOD` seconds.
    """

    PERIOD: Final = 0.05

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.call: grpc.Call | None = None
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gymrpc-deadline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            deadline, call = self.deadline, self.call
            if deadline is not None and call is not None and time.monotonic() > deadline:
                self.fired = True
                self.deadline = None
                call.cancel()

    def stop(self) -> None:
        self._stop.set()


class SessionStream:
    """A bidirectional session stream that survives connection drops of a few seconds.

    Args:
        connection: The server connection.
        session_id: The session the stream serves.
        last_sequence: The session's latest sequence number (0 for a new session).
    """

    def __init__(self, connection: Connection, session_id: str, last_sequence: int = 0) -> None:
        self._connection = connection
        self._session_id = session_id
        self._sequence = last_sequence
        self._pending: collections.deque[pb.StreamSessionRequest] = collections.deque()
        self._requests: queue.SimpleQueue[Any] | None = None
        self._responses: Iterator[pb.StreamSessionResponse] | None = None
        self._call: grpc.Call | None = None
        self._watchdog = _Watchdog()

    @property
    def pending(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def new_request(self) -> pb.StreamSessionRequest:
        """Return an empty request carrying the next sequence number."""
        self._sequence += 1
        return pb.StreamSessionRequest(sequence=self._sequence)

    def send(self, request: pb.StreamSessionRequest) -> None:
        """Send a request without waiting for its answer (pipelining is allowed)."""
        if self._requests is None:
            self._open()
        assert self._requests is not None
        self._pending.append(request)
        self._requests.put(request)

    def receive(self, timeout: float | None = None) -> pb.StreamSessionResponse:
        """Wait for the answer to the oldest pending request.

        Args:
            timeout: Seconds to wait; the connection's timeout by default.

        Returns:
            The response, whose ``error`` may be set (the caller raises it).

        Raises:
            DeadlineExceededError: If no answer came in time; the stream is dropped and
                the request's outcome is unknown.
            ConnectionLostError: If the stream broke and re-attaching failed.
        """
        if not self._pending:
            raise RuntimeError("receive() without a pending request")
        limit = self._connection.settings.timeout if timeout is None else timeout
        try:
            response = self._next(limit)
        except _BrokenStreamError as broken:
            response = self._reattach(broken, limit)
        expected = self._pending.popleft()
        if response.sequence != expected.sequence:
            self._drop()
            raise InternalServerError(
                f"the server answered sequence {response.sequence} while {expected.sequence} "
                "was expected; the stream was dropped"
            )
        return response

    def _open(self) -> None:
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def generate() -> Iterator[pb.StreamSessionRequest]:
            while (request := requests.get()) is not _CLOSE:
                yield request

        call = self._connection.stub.StreamSession(generate(), metadata=self._connection.metadata)
        self._requests, self._responses, self._call = requests, call, call

    def _next(self, timeout: float) -> pb.StreamSessionResponse:
        assert self._responses is not None
        watchdog = self._watchdog
        watchdog.fired = False
        watchdog.call = self._call
        watchdog.deadline = time.monotonic() + timeout
        try:
            return next(self._responses)
        except StopIteration:
            raise _BrokenStreamError(None) from None
        except grpc.RpcError as error:
            if watchdog.fired:
                self._abandon()
                raise DeadlineExceededError(
                    f"no answer from {self._connection.settings.target} within {timeout:g} s; "
                    "the request may or may not have run (raise the timeout for slow "
                    "environments)"
                ) from None
            raise _BrokenStreamError(error) from None
        finally:
            watchdog.deadline = None

    def _reattach(self, broken: _BrokenStreamError, timeout: float) -> pb.StreamSessionResponse:
        unanswered = list(self._pending)
        # The channel may still hold the transport that is closing, or its first new
        # connection may fail while the network flaps: retry, waiting for the channel to
        # be ready between attempts, until the re-attach window closes.
        window = min(timeout, _REATTACH_WINDOW)
        window_end = time.monotonic() + window
        error = broken.error
        first = True
        while True:
            if error is not None and _server_stopped(error):
                # The server closed the session: there is nothing to re-attach to.
                self._abandon()
                raise ShuttingDownError(
                    f"the gymrpc server at {self._connection.settings.target} stopped and "
                    f"closed session {self._session_id} ({error.details()})",
                    metadata={"session_id": self._session_id},
                ) from None
            if error is not None and not _is_transport_failure(error):
                self._abandon()
                raise self._connection.translate(error) from None
            if first:
                logger.info(
                    "session %s: stream broke (%s); re-attaching",
                    self._session_id[:8],
                    error.code().name if error is not None else "ended",
                )
            elif not self._await_channel(window_end):
                self._abandon()
                cause = error.details() if error is not None else "the stream ended"
                raise ConnectionLostError(
                    f"lost the connection to {self._connection.settings.target} and could "
                    f"not re-attach to session {self._session_id} within {window:g} s: {cause}"
                ) from None
            first = False
            self._drop()
            self._open()
            assert self._requests is not None
            for request in unanswered:
                self._requests.put(request)
            try:
                return self._next(timeout)
            except _BrokenStreamError as again:
                error = again.error

    def _await_channel(self, window_end: float) -> bool:
        """Wait until the channel is ready again; False once the window has closed."""
        # A pause first, so that a link that accepts and drops at once is not hammered.
        time.sleep(min(_RETRY_PAUSE, max(window_end - time.monotonic(), 0.0)))
        remaining = window_end - time.monotonic()
        if remaining <= 0:
            return False
        ready = grpc.channel_ready_future(self._connection.channel)
        try:
            ready.result(timeout=remaining)
        except grpc.FutureTimeoutError:
            return False
        finally:
            ready.cancel()
        return time.monotonic() < window_end

    def _drop(self) -> None:
        if self._requests is not None:
            self._requests.put(_CLOSE)
        if self._call is not None:
            self._call.cancel()
        self._requests = self._responses = self._call = None

    def _abandon(self) -> None:
        """Drop the stream and forget the requests it had in flight."""
        self._drop()
        self._pending.clear()

    def close(self) -> None:
        """End the stream and stop its watchdog; the session stays open."""
        self._abandon()
        self._watchdog.stop()


class _BrokenStreamError(Exception):
    def __init__(self, error: grpc.RpcError | None) -> None:
        super().__init__()
        self.error = error


def _server_stopped(error: grpc.RpcError) -> bool:
    """True when a stopping server ended the stream (errors.proto, "The error model")."""
    call: Any = error
    details = call.details() or ""
    return bool(call.code() is grpc.StatusCode.UNAVAILABLE and details.startswith(SHUTDOWN_PREFIX))


def _is_transport_failure(error: grpc.RpcError) -> bool:
    """True when the stream broke, rather than the server refusing the stream."""
    call: Any = error
    if call.code() not in _TRANSPORT_CODES:
        return False
    # A status with gymrpc details is the server's answer (e.g. SHUTTING_DOWN): final.
    metadata = call.trailing_metadata() or ()
    details = next((value for key, value in metadata if key == "grpc-status-details-bin"), None)
    return details is None or DOMAIN.encode() not in details
