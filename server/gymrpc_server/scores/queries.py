"""Scores, the leaderboard, episode histories and score charts, as frozen dataclasses.

A user's **score** on an environment is the mean return of their last ``window``
(default 100) evaluation episodes there, the most recent by end time (ties by k). Every
recorded evaluation episode counts, abandoned ones too: leaving them out would let a user
skip the seeds that go badly. A score over fewer than ``window`` episodes is
*provisional*.

Each function takes a :class:`~sqlalchemy.Connection` and runs the same SQL on SQLite
and PostgreSQL (window functions; SQLite >= 3.25). Page tokens are opaque strings: pass
back the ``next_page_token`` of the previous page. The leaderboard pages by position
(a score that changes between two pages can move an entry across them); the episode
history pages by ``(ended_at, id)``, so new episodes never shift later pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Select,
    and_,
    case,
    false,
    func,
    or_,
    select,
    true,
)

from gymrpc_server.scores.episodes import Episode
from gymrpc_server.scores.schema import UtcDateTime, episode_from_row, episodes

__all__ = [
    "EpisodePage",
    "LeaderboardEntry",
    "LeaderboardPage",
    "Score",
    "ScorePoint",
    "episode_page",
    "leaderboard",
    "score_histories",
    "score_history",
    "scores",
]

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Score:
    """A user's score on an environment.

    Attributes:
        user: The user.
        env_id: The environment.
        mean_return: The mean return of the episodes counted.
        episodes: How many evaluation episodes it covers (at most the window).
        failure_rate: The fraction of those episodes that ended in failure.
        last_episode_at: When the most recent of them ended (UTC).
        provisional: True while the user has fewer episodes than the window.
        total_episodes: All the user's evaluation episodes on the environment.
    """

    user: str
    env_id: str
    mean_return: float
    episodes: int
    failure_rate: float
    last_episode_at: datetime
    provisional: bool
    total_episodes: int


@dataclass(frozen=True)
class LeaderboardEntry:
    """One line of a leaderboard.

    Attributes:
        rank: 1 for the best score; every entry has its own rank (ties are broken).
        score: The user's score.
    """

    rank: int
    score: Score


@dataclass(frozen=True)
class LeaderboardPage:
    """A page of an environment's leaderboard.

    Attributes:
        env_id: The environment.
        window: Episodes per score.
        entries: Best first: mean return descending, then more episodes first (a
            provisional score yields to a full one), then the user name.
        total: Users on the whole leaderboard.
        next_page_token: Token of the next page; ``None`` on the last page.
    """

    env_id: str
    window: int
    entries: tuple[LeaderboardEntry, ...]
    total: int
    next_page_token: str | None


@dataclass(frozen=True)
class EpisodePage:
    """A page of a user's episodes, newest first.

    Attributes:
        episodes: The episodes, by end time descending.
        next_page_token: Token of the next (older) page; ``None`` on the last page.
    """

    episodes: tuple[Episode, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class ScorePoint:
    """The score right after one evaluation episode (a point of a score chart).

    Attributes:
        k: The episode's k.
        ended_at: When it ended (UTC).
        episode_return: Its return.
        mean_return: The score once it counted: the mean return of the user's last
            ``window`` evaluation episodes up to and including it.
        episodes: How many episodes ``mean_return`` covers.
        provisional: True while ``episodes`` is below the window.
    """

    k: int
    ended_at: datetime
    episode_return: float
    mean_return: float
    episodes: int
    provisional: bool


def _check_window(window: int) -> None:
    if window < 1:
        raise ValueError(f"window is {window}; expected at least 1")


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size is {page_size}; expected 1..{MAX_PAGE_SIZE}")


def _encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode_token(token: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(payload, dict) or set(payload) != set(keys):
            raise ValueError("unexpected fields")
    except (ValueError, binascii.Error, UnicodeError) as error:
        raise ValueError(
            f"page_token {token!r} is not valid ({error}); expected the next_page_token "
            "of a previous page"
        ) from None
    return payload


def _windowed_scores(
    window: int, *, env_id: str | None = None, user: str | None = None
) -> Select[Any]:
    """One row per (env_id, user): the aggregate of their last ``window`` episodes."""
    position = (
        func.row_number()
        .over(
            partition_by=(episodes.c.env_id, episodes.c.user_name),
            order_by=(episodes.c.ended_at.desc(), episodes.c.k.desc()),
        )
        .label("position")
    )
    total = (
        func.count()
        .over(partition_by=(episodes.c.env_id, episodes.c.user_name))
        .label("total_episodes")
    )
    conditions: list[ColumnElement[bool]] = [episodes.c.evaluation == true()]
    if env_id is not None:
        conditions.append(episodes.c.env_id == env_id)
    if user is not None:
        conditions.append(episodes.c.user_name == user)
    recent = (
        select(
            episodes.c.env_id,
            episodes.c.user_name,
            episodes.c.episode_return,
            episodes.c.failure,
            episodes.c.ended_at,
            position,
            total,
        )
        .where(*conditions)
        .subquery("recent")
    )
    return (
        select(
            recent.c.env_id,
            recent.c.user_name,
            func.avg(recent.c.episode_return).label("mean_return"),
            func.count().label("episodes"),
            func.avg(case((recent.c.failure == true(), 1.0), else_=0.0), type_=Float).label(
                "failure_rate"
            ),
            func.max(recent.c.ended_at, type_=UtcDateTime).label("last_episode_at"),
            func.max(recent.c.total_episodes).label("total_episodes"),
        )
        .where(recent.c.position <= window)
        .group_by(recent.c.env_id, recent.c.user_name)
    )


def _score(row: Any, window: int) -> Score:
    return Score(
        user=row.user_name,
        env_id=row.env_id,
        mean_return=float(row.mean_return),
        episodes=int(row.episodes),
        failure_rate=float(row.failure_rate),
        last_episode_at=row.last_episode_at,
        provisional=int(row.episodes) < window,
        total_episodes=int(row.total_episodes),
    )


def scores(
    connection: Connection, window: int, *, user: str | None = None, env_id: str | None = None
) -> tuple[Score, ...]:
    """Scores of a user, of an environment's users, or of everyone, by env_id then user.

    Args:
        connection: The database.
        window: Episodes per score.
        user: Only this user's scores.
        env_id: Only scores on this environment.
    """
    _check_window(window)
    query = _windowed_scores(window, env_id=env_id, user=user).subquery("scores")
    rows = connection.execute(select(query).order_by(query.c.env_id, query.c.user_name))
    return tuple(_score(row, window) for row in rows)


def leaderboard(
    connection: Connection,
    env_id: str,
    window: int,
    *,
    page_size: int = 50,
    page_token: str | None = None,
    include_provisional: bool = True,
) -> LeaderboardPage:
    """A page of ``env_id``'s leaderboard, best first (see :class:`LeaderboardPage`).

    Args:
        connection: The database.
        env_id: The environment.
        window: Episodes per score.
        page_size: Entries per page, 1..1000.
        page_token: ``next_page_token`` of the previous page; ``None`` for the first.
        include_provisional: Also rank users with fewer episodes than the window.

    Raises:
        ValueError: If an argument is out of range or the token is not one of ours.
    """
    _check_window(window)
    _check_page_size(page_size)
    offset = 0
    if page_token is not None:
        offset = _decode_token(page_token, ("offset",))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"page_token {page_token!r} is not valid; expected a page token")
    board = _windowed_scores(window, env_id=env_id)
    if not include_provisional:
        board = board.having(func.count() >= window)
    board_rows = board.subquery("board")
    total = connection.execute(select(func.count()).select_from(board_rows)).scalar_one()
    rows = connection.execute(
        select(board_rows)
        .order_by(
            board_rows.c.mean_return.desc(),
            board_rows.c.episodes.desc(),
            board_rows.c.user_name.asc(),
        )
        .limit(page_size + 1)
        .offset(offset)
    ).all()
    entries = tuple(
        LeaderboardEntry(rank=offset + index + 1, score=_score(row, window))
        for index, row in enumerate(rows[:page_size])
    )
    more = len(rows) > page_size
    return LeaderboardPage(
        env_id=env_id,
        window=window,
        entries=entries,
        total=int(total),
        next_page_token=_encode_token({"offset": offset + page_size}) if more else None,
    )


def episode_page(
    connection: Connection,
    user: str,
    *,
    env_id: str | None = None,
    evaluation: bool | None = None,
    page_size: int = 50,
    page_token: str | None = None,
) -> EpisodePage:
    """A page of ``user``'s episodes, newest first.

    Args:
        connection: The database.
        user: Whose episodes.
        env_id: Only episodes of this environment.
        evaluation: Only evaluation (True) or only other (False) episodes.
        page_size: Episodes per page, 1..1000.
        page_token: ``next_page_token`` of the previous page; ``None`` for the first.

    Raises:
        ValueError: If an argument is out of range or the token is not one of ours.
    """
    _check_page_size(page_size)
    conditions: list[ColumnElement[bool]] = [episodes.c.user_name == user]
    if env_id is not None:
        conditions.append(episodes.c.env_id == env_id)
    if evaluation is not None:
        conditions.append(episodes.c.evaluation == (true() if evaluation else false()))
    if page_token is not None:
        after = _decode_token(page_token, ("ended_at", "id"))
        try:
            ended_at = datetime.fromisoformat(after["ended_at"])
            last_id = int(after["id"])
        except (TypeError, ValueError):
            raise ValueError(
                f"page_token {page_token!r} is not valid; expected a page token"
            ) from None
        conditions.append(
            or_(
                episodes.c.ended_at < ended_at,
                and_(episodes.c.ended_at == ended_at, episodes.c.id < last_id),
            )
        )
    rows = (
        connection.execute(
            select(episodes)
            .where(*conditions)
            .order_by(episodes.c.ended_at.desc(), episodes.c.id.desc())
            .limit(page_size + 1)
        )
        .mappings()
        .all()
    )
    page = rows[:page_size]
    token = None
    if len(rows) > page_size:
        last = page[-1]
        token = _encode_token({"ended_at": last["ended_at"].isoformat(), "id": last["id"]})
    return EpisodePage(tuple(episode_from_row(row) for row in page), token)


def score_histories(
    connection: Connection,
    users: Sequence[str],
    env_id: str,
    window: int,
    *,
    limit: int | None = None,
) -> dict[str, tuple[ScorePoint, ...]]:
    """Each user's score after each of their evaluation episodes on ``env_id``.

    One query for all ``users`` (a leaderboard page with its charts).

    Args:
        connection: The database.
        users: Whose scores.
        env_id: The environment.
        window: Episodes per score.
        limit: Only each user's most recent ``limit`` points (each still over its full
            window).

    Returns:
        For every user in ``users``, their points oldest first (none for a user without
        evaluation episodes).
    """
    _check_window(window)
    if limit is not None and limit < 1:
        raise ValueError(f"limit is {limit}; expected at least 1 or None")
    history: dict[str, list[ScorePoint]] = {user: [] for user in users}
    if not history:
        return {}
    by_user = episodes.c.user_name
    order = (episodes.c.ended_at, episodes.c.k)
    rows_frame = (-(window - 1), 0)  # this episode and the window - 1 before it
    points = (
        select(
            by_user,
            episodes.c.k,
            episodes.c.ended_at,
            episodes.c.episode_return,
            func.avg(episodes.c.episode_return)
            .over(partition_by=by_user, order_by=order, rows=rows_frame)
            .label("mean_return"),
            func.count()
            .over(partition_by=by_user, order_by=order, rows=rows_frame)
            .label("episodes"),
            func.row_number()
            .over(partition_by=by_user, order_by=(episodes.c.ended_at.desc(), episodes.c.k.desc()))
            .label("recency"),
        )
        .where(
            by_user.in_(list(history)),
            episodes.c.env_id == env_id,
            episodes.c.evaluation == true(),
        )
        .subquery("points")
    )
    query = select(points).order_by(points.c.user_name, points.c.ended_at, points.c.k)
    if limit is not None:
        query = query.where(points.c.recency <= limit)
    for row in connection.execute(query):
        history[row.user_name].append(
            ScorePoint(
                k=int(row.k),
                ended_at=row.ended_at,
                episode_return=float(row.episode_return),
                mean_return=float(row.mean_return),
                episodes=int(row.episodes),
                provisional=int(row.episodes) < window,
            )
        )
    return {user: tuple(points) for user, points in history.items()}


def score_history(
    connection: Connection, user: str, env_id: str, window: int, *, limit: int | None = None
) -> tuple[ScorePoint, ...]:
    """The score after each of ``user``'s evaluation episodes on ``env_id``, oldest first.

    See :func:`score_histories`.
    """
    return score_histories(connection, [user], env_id, window, limit=limit)[user]
