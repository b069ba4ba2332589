"""Server life cycle: whether it is stopping, and which requests are in progress.

A graceful stop refuses new work at once, lets requests already executing finish
(within the grace period) and only then cuts the connections that remain.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["Lifecycle"]


class Lifecycle:
    """Stopping flag and in-flight request counter shared by the server's parts."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Mark a request as in progress for the duration of the block."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        """Requests in progress now."""
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            True if idle, False if the timeout passed first.
        """
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True
