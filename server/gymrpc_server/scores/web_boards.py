"""What the leaderboard page shows: ranked boards with score histories, as JSON-ready dicts.

Pure Python over :class:`~gymrpc_server.scores.ScoreStore` (no web framework), so that
the page, its JSON API and their tests agree on one schema, written down here as
``TypedDict`` classes::

    reader = BoardReader(store, ["gymrpc/Turbofan-v0"])
    board = reader.board("gymrpc/Turbofan-v0")
    board["rows"][0]["user"], board["rows"][0]["score"]  # the leader and their score

Only scores leave this module: no episode, no return of a single episode, no k.

A board is cached for a moment (``cache_seconds``): every open page asks again every
few seconds, and a class watching the board at a deadline must not turn into one
database query per viewer and refresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypedDict, TypeVar

from gymrpc_server.auth import Identity
from gymrpc_server.scores.queries import LeaderboardPage, ScorePoint
from gymrpc_server.scores.store import ScoreStore

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "HISTORY_POINTS",
    "VISIBILITIES",
    "BoardJson",
    "BoardReader",
    "HistoryPointJson",
    "RowJson",
    "UnknownEnvironmentError",
    "iso_time",
    "may_read_leaderboard",
    "thin",
]

#: Rows of a board the page shows (the API takes ``page_size`` up to 1000).
DEFAULT_PAGE_SIZE = 100
#: Points of a user's score history sent at most: a sparkline is about 120 pixels wide,
#: and a hundred users times their whole history would be megabytes every refresh.
HISTORY_POINTS = 40
#: ``leaderboard_visibility`` values, as the gRPC side names them.
VISIBILITIES = ("public", "admin")

_T = TypeVar("_T")


class HistoryPointJson(TypedDict):
    """A user's score just after one of their evaluation episodes ended.

    Keys:
        time: When the episode ended, ISO 8601 in UTC (``2026-01-01T12:00:00.000Z``).
        score: The score then.
        episodes: How many episodes that score covered (below the window: provisional).
    """

    time: str
    score: float
    episodes: int


class RowJson(TypedDict):
    """One user's line of a board.

    Keys:
        rank: 1 for the best score.
        user: The user name.
        score: The mean return of the user's last ``score_window`` evaluation episodes.
        episodes: How many episodes the score covers.
        total_episodes: All the user's evaluation episodes on the environment.
        provisional: True while ``episodes`` is below ``score_window``.
        failure_rate: The fraction of the covered episodes that ended in a failure.
        last_episode_time: When the most recent covered episode ended (ISO 8601, UTC).
        history: The score over time, oldest first; at most :data:`HISTORY_POINTS`
            points, evenly thinned, the first and the current one always included.
    """

    rank: int
    user: str
    score: float
    episodes: int
    total_episodes: int
    provisional: bool
    failure_rate: float
    last_episode_time: str
    history: list[HistoryPointJson]


class BoardJson(TypedDict):
    """One environment's leaderboard, or a page of it.

    Keys:
        env_id: The environment.
        total_users: Users on the whole board (more than ``rows`` on a partial page).
        next_page_token: Pass it back as ``page_token`` for the next page; ``None`` on
            the last page.
        rows: Best first.
    """

    env_id: str
    total_users: int
    next_page_token: str | None
    rows: list[RowJson]


class UnknownEnvironmentError(LookupError):
    """An env_id that has no leaderboard on this server (it is not evaluated here)."""


def may_read_leaderboard(identity: Identity, visibility: str) -> bool:
    """The gRPC side's rule: ``"public"`` boards are for every caller, ``"admin"`` ones for admins.

    Args:
        identity: The authenticated caller (the anonymous identity on an open server).
        visibility: ``"public"`` or ``"admin"``.
    """
    return visibility == "public" or identity.is_admin


def iso_time(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with milliseconds and a ``Z``, which every browser parses."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def thin(items: Sequence[_T], limit: int) -> list[_T]:
    """At most ``limit`` items evenly spread over ``items``, the first and the last included.

    Args:
        items: In order (a score history, oldest first).
        limit: At least 2.

    Example:
        >>> thin(range(10), 4)
        [0, 3, 6, 9]
    """
    if limit < 2:
        raise ValueError(f"limit is {limit}; expected at least 2")
    count = len(items)
    if count <= limit:
        return list(items)
    # Evenly by index; rounding keeps both ends exactly.
    return [items[round(i * (count - 1) / (limit - 1))] for i in range(limit)]


def _history(points: Sequence[ScorePoint]) -> list[HistoryPointJson]:
    return [
        {"time": iso_time(p.ended_at), "score": p.mean_return, "episodes": p.episodes}
        for p in thin(points, HISTORY_POINTS)
    ]


def _board(page: LeaderboardPage, histories: dict[str, tuple[ScorePoint, ...]]) -> BoardJson:
    rows: list[RowJson] = [
        {
            "rank": entry.rank,
            "user": entry.score.user,
            "score": entry.score.mean_return,
            "episodes": entry.score.episodes,
            "total_episodes": entry.score.total_episodes,
            "provisional": entry.score.provisional,
            "failure_rate": entry.score.failure_rate,
            "last_episode_time": iso_time(entry.score.last_episode_at),
            "history": _history(histories.get(entry.score.user, ())),
        }
        for entry in page.entries
    ]
    return {
        "env_id": page.env_id,
        "total_users": page.total,
        "next_page_token": page.next_page_token,
        "rows": rows,
    }


class BoardReader:
    """Reads boards from the store, each cached for ``cache_seconds``. Thread-safe.

    Args:
        store: The scores store.
        env_ids: The evaluated environments, in the order the page shows them.
        cache_seconds: How long a board read from the database is served again; 0
            reads every time.
        clock: Seconds, monotonic (tests may pass their own).
    """

    def __init__(
        self,
        store: ScoreStore,
        env_ids: Sequence[str],
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_seconds < 0:
            raise ValueError(f"cache_seconds is {cache_seconds}; expected seconds >= 0")
        self._store = store
        self._env_ids = tuple(dict.fromkeys(env_ids))  # ordered, without repeats
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, int, str | None], tuple[float, BoardJson]] = {}
        # One read at a time: viewers arriving together wait for the first one's read
        # and share it, instead of each querying the database.
        self._lock = threading.Lock()

    @property
    def env_ids(self) -> tuple[str, ...]:
        """The environments that have a board, in page order."""
        return self._env_ids

    @property
    def score_window(self) -> int:
        """Evaluation episodes per (non-provisional) score."""
        return self._store.settings.score_window

    @property
    def healthy(self) -> bool:
        """True when the store's last write succeeded (no database query)."""
        return self._store.healthy

    def board(
        self, env_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> BoardJson:
        """A page of ``env_id``'s board with each listed user's score history.

        Args:
            env_id: One of :attr:`env_ids`.
            page_size: Rows, 1..1000.
            page_token: ``next_page_token`` of the previous page; ``None`` for the first.

        Raises:
            UnknownEnvironmentError: If ``env_id`` is not evaluated here.
            ValueError: If ``page_size`` or ``page_token`` is not valid.
            StoreUnavailableError: If the database cannot be reached.
        """
        if env_id not in self._env_ids:
            raise UnknownEnvironmentError(
                f"env_id {env_id!r} has no leaderboard here; expected one of {list(self._env_ids)}"
            )
        key = (env_id, page_size, page_token)
        with self._lock:
            now = self._clock()
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
            page = self._store.leaderboard(env_id, page_size=page_size, page_token=page_token)
            users = [entry.score.user for entry in page.entries]
            histories = self._store.score_histories(users, env_id) if users else {}
            board = _board(page, histories)
            if self._cache_seconds > 0:
                # Forget what expired, so that odd page tokens cannot pile up.
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                self._cache[key] = (now + self._cache_seconds, board)
            return board
