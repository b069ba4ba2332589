"""Server life cycle: whether it is stopping, and which requests are in progress.

A graceful stop refuses new work at once, lets requests already executing finish
(within the grace period) and only then cuts the connections that remain.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

__all__ = ["Lifecycle"]


class Lifecycle:
    """Stopping flag and in-flight request counter shared by the server's parts.

    ``with lifecycle:`` marks one request as in progress. Counting is on the hot path
    of every request, so it is a plain counter under an uncontended lock; only a
    stopping server, rarely, polls it.
    """

    _POLL = 0.005

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()

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
