"""What is recorded about one finished episode: :class:`Episode` and :class:`Ending`.

The same frozen dataclass goes into :meth:`ScoreStore.record
<gymrpc_server.scores.ScoreStore.record>` and comes back from the episode history, so
a record is checked once, where it is made, and a bad one never reaches the writer
thread::

    Episode(
        user="alice", env_id="gymrpc/Turbofan-v0", env_options={"step_size": 10},
        evaluation=True, k=41, episode_return=-12.5, length=180,
        ending=Ending.TERMINATED, reason="sold", failure=False,
        started_at=start, ended_at=end, session_id=session.session_id,
    )
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["EPISODE_ID_LENGTH", "MAX_K", "Ending", "Episode"]

#: k is stored as a signed 64-bit integer.
MAX_K = 2**63 - 1
#: The longest episode_id (a UUID's 32 hexadecimal digits).
EPISODE_ID_LENGTH = 32


class Ending(enum.StrEnum):
    """How an episode ended."""

    #: The environment ended it (``terminated``): success, failure or a natural end.
    TERMINATED = "terminated"
    #: A time limit ended it (``truncated``).
    TRUNCATED = "truncated"
    #: The session ended before the episode did (closed, expired or the server stopped).
    ABANDONED = "abandoned"


def _new_episode_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One finished episode of one sub-environment.

    Attributes:
        user: Who ran it.
        env_id: The environment, for example ``"gymrpc/Turbofan-v0"``.
        env_options: The session's environment options; JSON values only. Read back,
            they are what JSON makes of them (a tuple comes back as a list).
        evaluation: True for an episode of an evaluation session (it counts for scores).
        k: The user's evaluation-episode index on ``env_id`` (from
            :meth:`~gymrpc_server.scores.ScoreStore.reserve_k`); ``None`` exactly when
            ``evaluation`` is False.
        episode_return: The sum of the episode's rewards; a finite number.
        length: Its number of steps.
        ending: How it ended.
        reason: The environment's own name for why it ended (``"failure"``, ``"sold"``),
            when it gives one.
        failure: True when the environment counts ``reason`` as a failure.
        started_at: When it started; timezone-aware, kept in UTC.
        ended_at: When it ended; timezone-aware, kept in UTC, not before ``started_at``.
        session_id: The session it ran in.
        episode_id: Names this record (at most 32 characters); writing it twice stores
            it once. A fresh random UUID (hexadecimal) unless given.

    Raises:
        ValueError: If a field is out of range; the message names the field.
    """

    user: str
    env_id: str
    env_options: Mapping[str, Any]
    evaluation: bool
    k: int | None
    episode_return: float
    length: int
    ending: Ending
    reason: str | None
    failure: bool
    started_at: datetime
    ended_at: datetime
    session_id: str
    episode_id: str = field(default_factory=_new_episode_id)

    def __post_init__(self) -> None:
        """Check every field and normalise times to UTC and ``ending`` to an Ending."""
        self._check_names()
        self._check_numbers()
        try:
            object.__setattr__(self, "ending", Ending(self.ending))
        except ValueError:
            expected = ", ".join(repr(e.value) for e in Ending)
            raise ValueError(f"ending is {self.ending!r}; expected one of {expected}") from None
        self._check_times()
        try:
            json.dumps(self.env_options, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"env_options {self.env_options!r} is not JSON: {error}") from None

    @classmethod
    def trusted(cls, **fields: Any) -> Episode:
        """An episode built without the checks of ``__init__``, for the server's hot path.

        The tracker builds one per ended episode, many per step in a large batch; its
        fields come from the session (checked once, when it was created) and from numpy
        arrays of the right types, and the times are UTC. Everything else should use
        the checked constructor.
        """
        episode = object.__new__(cls)
        object.__setattr__(episode, "__dict__", fields)
        return episode

    def _check_names(self) -> None:
        for name in ("user", "env_id", "session_id", "episode_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} is {value!r}; expected a non-empty string")
        if len(self.episode_id) > EPISODE_ID_LENGTH:
            raise ValueError(
                f"episode_id is {self.episode_id!r}; expected at most "
                f"{EPISODE_ID_LENGTH} characters"
            )

    def _check_numbers(self) -> None:
        if self.evaluation:
            if self.k is None or not 0 <= self.k <= MAX_K:
                raise ValueError(
                    f"k is {self.k!r} for an evaluation episode; expected 0 <= k < 2**63"
                )
        elif self.k is not None:
            raise ValueError(f"k is {self.k!r} for a non-evaluation episode; expected None")
        if not math.isfinite(self.episode_return):
            raise ValueError(f"episode_return is {self.episode_return!r}; expected a finite number")
        if self.length < 0:
            raise ValueError(f"length is {self.length}; expected >= 0")

    def _check_times(self) -> None:
        for name in ("started_at", "ended_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ValueError(f"{name} is {value!r}; expected a timezone-aware datetime")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.ended_at < self.started_at:
            raise ValueError(
                f"ended_at ({self.ended_at.isoformat()}) is before started_at "
                f"({self.started_at.isoformat()})"
            )
