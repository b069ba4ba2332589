"""Scores of the challenge: :func:`leaderboard`, :func:`scores` and :func:`episodes`.

The client side of ``gymrpc.v1.ScoresService`` (proto/gymrpc/v1/scores.proto), returning
plain frozen dataclasses; the package exports the three functions as
``gymrpc.leaderboard``, ``gymrpc.scores`` and ``gymrpc.episodes``.

Example:
    >>> import gymrpc
    >>> board = gymrpc.leaderboard("gymrpc/Turbofan-v0")  # doctest: +SKIP
    >>> for entry in board.entries:  # doctest: +SKIP
    ...     print(entry.rank, entry.score.user, round(entry.score.score, 1))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from google.protobuf import timestamp_pb2

from gymrpc.connection import Connection, ConnectionSettings
from gymrpc.v1 import scores_pb2 as spb
from gymrpc.v1 import scores_pb2_grpc as spb_grpc
from gymrpc.values import decode_value

__all__ = [
    "Episode",
    "Leaderboard",
    "LeaderboardEntry",
    "Score",
    "ScorePoint",
    "episodes",
    "leaderboard",
    "scores",
]

_ENDINGS: Final = {
    spb.EPISODE_ENDING_TERMINATED: "terminated",
    spb.EPISODE_ENDING_TRUNCATED: "truncated",
    spb.EPISODE_ENDING_ABANDONED: "abandoned",
}
_FILTERS: Final = {
    None: spb.EPISODE_FILTER_UNSPECIFIED,
    True: spb.EPISODE_FILTER_EVALUATION,
    False: spb.EPISODE_FILTER_TRAINING,
}
_T = TypeVar("_T")


@dataclass(frozen=True)
class Score:
    """One user's score on one environment.

    Attributes:
        user: The user.
        env_id: The environment.
        score: Mean return of the last ``episodes`` finished evaluation episodes.
        episodes: How many episodes the score covers (at most the server's window).
        provisional: The user has fewer evaluation episodes than the window.
        failure_rate: Fraction of those episodes that failed, for environments that
            report failures; ``None`` otherwise.
        last_episode_time: When the most recent covered episode ended.
        total_episodes: All the user's evaluation episodes on the environment.
    """

    user: str
    env_id: str
    score: float
    episodes: int
    provisional: bool
    failure_rate: float | None
    last_episode_time: datetime | None
    total_episodes: int


@dataclass(frozen=True)
class ScorePoint:
    """A user's score just after one of their evaluation episodes ended."""

    time: datetime | None
    score: float
    episodes: int


@dataclass(frozen=True)
class LeaderboardEntry:
    """One line of a leaderboard."""

    rank: int
    score: Score
    history: tuple[ScorePoint, ...] = ()


@dataclass(frozen=True)
class Leaderboard:
    """A leaderboard (all its pages, or one, see :func:`leaderboard`).

    Attributes:
        env_id: The environment.
        entries: Best first.
        score_window: Episodes a non-provisional score covers.
        total_users: Users on the whole leaderboard.
        next_page_token: Token of the page after these entries; empty at the end.
    """

    env_id: str
    entries: tuple[LeaderboardEntry, ...]
    score_window: int
    total_users: int
    next_page_token: str = ""


@dataclass(frozen=True)
class Episode:
    """One recorded episode.

    Attributes:
        user: Who played it.
        env_id: The environment.
        session_id: The session it ran in.
        env_options: The session's environment options.
        evaluation: An evaluation episode (it counts for the score).
        k: Its index among the user's evaluation episodes; ``None`` otherwise.
        episode_return: The sum of its rewards.
        length: Its length in steps.
        ending: ``"terminated"``, ``"truncated"`` or ``"abandoned"``.
        reason: The environment's name for how it ended (``"failure"``...), or "".
        failure: The environment counts this ending as a failure.
        start_time: When it started.
        end_time: When it ended.
    """

    user: str
    env_id: str
    session_id: str
    env_options: dict[str, Any]
    evaluation: bool
    k: int | None
    episode_return: float
    length: int
    ending: str
    reason: str
    failure: bool
    start_time: datetime | None
    end_time: datetime | None


def _time(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return message.ToDatetime(tzinfo=UTC) if present else None


def _score(message: spb.Score) -> Score:
    return Score(
        user=message.user,
        env_id=message.env_id,
        score=message.score,
        episodes=message.episodes,
        provisional=message.provisional,
        failure_rate=message.failure_rate if message.HasField("failure_rate") else None,
        last_episode_time=_time(message.last_episode_time, message.HasField("last_episode_time")),
        total_episodes=message.total_episodes,
    )


def _episode(message: spb.Episode) -> Episode:
    return Episode(
        user=message.user,
        env_id=message.env_id,
        session_id=message.session_id,
        env_options={
            name: decode_value(value, field=f"env_options.{name}")
            for name, value in message.env_options.items()
        },
        evaluation=message.evaluation,
        k=message.k if message.HasField("k") else None,
        episode_return=message.episode_return,
        length=message.length,
        ending=_ENDINGS.get(message.ending, "unspecified"),
        reason=message.reason,
        failure=message.failure,
        start_time=_time(message.start_time, message.HasField("start_time")),
        end_time=_time(message.end_time, message.HasField("end_time")),
    )


@contextmanager
def _stub(
    target: str | None,
    token: str | None,
    root_certificates: str | os.PathLike[str] | None,
    timeout: float,
) -> Iterator[tuple[Connection, spb_grpc.ScoresServiceStub]]:
    connection = Connection(
        ConnectionSettings.resolve(target, token, root_certificates, None, timeout)
    )
    try:
        connection.handshake()
        yield connection, spb_grpc.ScoresServiceStub(connection.channel)
    finally:
        connection.close()


def _pages(fetch: Callable[[str], tuple[list[_T], str]], limit: int | None) -> list[_T]:
    """Follow page tokens until the end or ``limit`` items."""
    items: list[_T] = []
    token = ""
    while True:
        page, token = fetch(token)
        items.extend(page)
        if not token or (limit is not None and len(items) >= limit):
            return items if limit is None else items[:limit]


def leaderboard(
    env_id: str = "gymrpc/Turbofan-v0",
    *,
    target: str | None = None,
    token: str | None = None,
    root_certificates: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    include_history: bool = False,
    timeout: float = 30.0,
) -> Leaderboard:
    """Read the leaderboard of an environment, best first.

    Args:
        env_id: The environment.
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        limit: At most this many entries (all by default).
        include_history: Also fetch each user's score over time.
        timeout: Deadline in seconds of each call.

    Returns:
        The leaderboard.

    Raises:
        PermissionDeniedError: If the server shows leaderboards to admins only.
        EvaluationUnavailableError: If the server keeps no scores.
        GymrpcError: Any other refusal, with the server's message.
    """
    meta: dict[str, int] = {}
    with _stub(target, token, root_certificates, timeout) as (connection, stub):

        def fetch(page_token: str) -> tuple[list[LeaderboardEntry], str]:
            response = connection.call(
                stub.GetLeaderboard,
                spb.GetLeaderboardRequest(
                    env_id=env_id,
                    page_size=min(limit or 1000, 1000),
                    page_token=page_token,
                    include_history=include_history,
                ),
            )
            meta["window"], meta["users"] = response.score_window, response.total_users
            entries = [
                LeaderboardEntry(
                    rank=entry.rank,
                    score=_score(entry.score),
                    history=tuple(
                        ScorePoint(_time(p.time, p.HasField("time")), p.score, p.episodes)
                        for p in entry.history
                    ),
                )
                for entry in response.entries
            ]
            return entries, response.next_page_token

        entries = _pages(fetch, limit)
    return Leaderboard(env_id, tuple(entries), meta["window"], meta["users"])


def scores(
    user: str | None = None,
    env_id: str | None = None,
    *,
    target: str | None = None,
    token: str | None = None,
    root_certificates: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
) -> list[Score]:
    """Read a user's scores, one per environment: the caller's own by default.

    Args:
        user: Another user (admins only); the caller by default.
        env_id: Only this environment.
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        timeout: Deadline in seconds of the call.

    Returns:
        The scores, sorted by environment.
    """
    with _stub(target, token, root_certificates, timeout) as (connection, stub):
        response = connection.call(
            stub.GetScores, spb.GetScoresRequest(user=user or "", env_id=env_id or "")
        )
    return [_score(score) for score in response.scores]


def episodes(
    user: str | None = None,
    env_id: str | None = None,
    *,
    evaluation: bool | None = None,
    target: str | None = None,
    token: str | None = None,
    root_certificates: str | os.PathLike[str] | None = None,
    limit: int | None = 100,
    timeout: float = 30.0,
) -> list[Episode]:
    """Read recorded episodes, newest first: the caller's own by default.

    Args:
        user: Another user (admins only); the caller by default.
        env_id: Only this environment.
        evaluation: Only evaluation episodes (True), only others (False), or all.
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        limit: At most this many (``None`` for all).
        timeout: Deadline in seconds of each call.

    Returns:
        The episodes, newest first.
    """
    with _stub(target, token, root_certificates, timeout) as (connection, stub):

        def fetch(page_token: str) -> tuple[list[Episode], str]:
            response = connection.call(
                stub.ListEpisodes,
                spb.ListEpisodesRequest(
                    user=user or "",
                    env_id=env_id or "",
                    filter=_FILTERS[evaluation],
                    page_size=min(limit or 1000, 1000),
                    page_token=page_token,
                ),
            )
            return [_episode(item) for item in response.episodes], response.next_page_token

        return _pages(fetch, limit)
