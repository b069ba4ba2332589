"""Sequence numbers of a session stream: execute, replay or refuse, decided in one place.

The rules are those of ``StreamSession`` in ``proto/gymrpc/v1/env_service.proto``
(rules 3c, 4 and 5): numbers increase strictly per session, a request that passes the
check consumes its number whatever its outcome, and the latest response is
remembered so that a retried request is answered without running twice. This module
knows nothing of gRPC or protobuf: a request is any value comparable with ``==`` and a
response is the bytes that were sent.

Example:
    >>> guard = SequenceGuard()
    >>> guard.admit(1, "reset") is None  # run it, then remember the answer
    True
    >>> guard.remember(1, "reset", b"answer")
    >>> guard.admit(1, "reset")  # the same request again: a retry
    b'answer'
    >>> guard.last_sequence
    1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gymrpc.errors import OutOfOrderError

__all__ = ["ReplayEntry", "SequenceGuard"]


@dataclass(frozen=True)
class ReplayEntry:
    """The most recent stream request of a session and the answer it got.

    Attributes:
        sequence: The request's sequence number.
        request: The request, to tell a retry from a different request.
        response: The serialized response, sent again as it is.
    """

    sequence: int
    request: Any
    response: bytes


class SequenceGuard:
    """The sequence state of one session.

    Not thread-safe on its own: the session's lock serializes its requests.

    Args:
        last_sequence: The session's latest sequence number (0 for a new session).
    """

    def __init__(self, last_sequence: int = 0) -> None:
        self.last_sequence = last_sequence
        self._replay: ReplayEntry | None = None

    def admit(self, sequence: int, request: Any, *, field: str = "sequence") -> bytes | None:
        """Decide what to do with a stream request.

        Args:
            sequence: The request's sequence number.
            request: The request, compared with ``==`` to the remembered one.
            field: Field path of the sequence number, for the error.

        Returns:
            The remembered response when the request is a retry of the latest one (send
            it again and run nothing); ``None`` when the request must run, in which case
            its number is consumed and becomes :attr:`last_sequence`.

        Raises:
            OutOfOrderError: For a number not above the latest, or a repeat of the
                latest with different content; nothing is consumed.
        """
        replay = self._replay
        if replay is not None and sequence == replay.sequence:
            if replay.request != request:
                raise OutOfOrderError(
                    f"{field}: {sequence} repeats the previous request's number with "
                    "different content; expected a number above it (sequence numbers "
                    "increase strictly per session)",
                    field=field,
                    metadata={"last_sequence": str(self.last_sequence)},
                )
            return replay.response
        if sequence <= self.last_sequence:
            raise OutOfOrderError(
                f"{field}: {sequence} is not greater than {self.last_sequence}, the last "
                "sequence number used on this session; expected a number above it",
                field=field,
                metadata={"last_sequence": str(self.last_sequence)},
            )
        self.last_sequence = sequence
        self._replay = None
        return None

    def remember(self, sequence: int, request: Any, response: bytes) -> None:
        """Remember the response of the request that consumed ``sequence``."""
        self._replay = ReplayEntry(sequence, request, response)

    def forget(self) -> None:
        """Forget the remembered response (a unary Reset or Step changed the session)."""
        self._replay = None
