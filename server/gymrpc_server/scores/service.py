"""The gRPC ``ScoresService``: scores, leaderboards and episode histories, read-only.

A translator like :mod:`gymrpc_server.servicer`: it checks who may read what (a user's
own scores and episodes; anyone's for admins; leaderboards by the server's visibility
setting), asks the store, and encodes the answer (proto/gymrpc/v1/scores.proto).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final, TypeVar

import grpc

from gymrpc.errors import (
    GymrpcError,
    InvalidArgumentError,
    PermissionDeniedError,
    ScoresUnavailableError,
    ShuttingDownError,
)
from gymrpc.v1 import scores_pb2 as spb
from gymrpc.v1 import scores_pb2_grpc as spb_grpc
from gymrpc.values import fill_value
from gymrpc_server.auth import Identity
from gymrpc_server.calls import abort, identity_of, internal_error
from gymrpc_server.lifecycle import Lifecycle
from gymrpc_server.scores.episodes import Ending, Episode
from gymrpc_server.scores.errors import StoreUnavailableError
from gymrpc_server.scores.queries import Score, ScorePoint
from gymrpc_server.scores.store import ScoreStore

__all__ = ["LEADERBOARD_VISIBILITIES", "ScoresServicer"]

logger = logging.getLogger(__name__)

#: The values of ``--leaderboard``.
LEADERBOARD_VISIBILITIES: Final = ("public", "admin")
_ENDINGS: Final = {
    Ending.TERMINATED: spb.EPISODE_ENDING_TERMINATED,
    Ending.TRUNCATED: spb.EPISODE_ENDING_TRUNCATED,
    Ending.ABANDONED: spb.EPISODE_ENDING_ABANDONED,
}
_FILTERS: Final = {
    spb.EPISODE_FILTER_UNSPECIFIED: None,
    spb.EPISODE_FILTER_EVALUATION: True,
    spb.EPISODE_FILTER_TRAINING: False,
}
_T = TypeVar("_T")
#: Longest wait for queued records before answering a query (the database may be down).
_FLUSH_TIMEOUT = 1.0


def _fill_time(target: object, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)  # type: ignore[attr-defined]


def fill_score(target: spb.Score, score: Score, *, reports_failures: bool) -> None:
    """Write a store score into a ``Score`` message."""
    target.user = score.user
    target.env_id = score.env_id
    target.score = score.mean_return
    target.episodes = score.episodes
    target.provisional = score.provisional
    if reports_failures:
        target.failure_rate = score.failure_rate
    _fill_time(target.last_episode_time, score.last_episode_at)
    target.total_episodes = score.total_episodes


def _fill_point(target: spb.ScorePoint, point: ScorePoint) -> None:
    _fill_time(target.time, point.ended_at)
    target.score = point.mean_return
    target.episodes = point.episodes


def _fill_episode(target: spb.Episode, episode: Episode) -> None:
    target.user = episode.user
    target.env_id = episode.env_id
    target.session_id = episode.session_id
    for name, value in episode.env_options.items():
        fill_value(target.env_options[name], value, field=f"env_options.{name}")
    target.evaluation = episode.evaluation
    if episode.k is not None:
        target.k = episode.k
    target.episode_return = episode.episode_return
    target.length = episode.length
    target.ending = _ENDINGS[episode.ending]
    target.reason = episode.reason or ""
    target.failure = episode.failure
    _fill_time(target.start_time, episode.started_at)
    _fill_time(target.end_time, episode.ended_at)


def _page_size(requested: int, default: int) -> int:
    if requested > 1000:
        raise InvalidArgumentError(
            f"page_size: {requested}; expected 1..1000 (0 for the default, {default})",
            field="page_size",
        )
    return requested or default


class ScoresServicer(spb_grpc.ScoresServiceServicer):
    """Implements ``gymrpc.v1.ScoresService``.

    Args:
        store: The scores database.
        lifecycle: Stopping flag and in-flight counter.
        visibility: Who may read leaderboards, ``"public"`` or ``"admin"``.
        reports_failures: Whether an environment says which episode endings are
            failures (then scores carry a failure rate).
    """

    def __init__(
        self,
        store: ScoreStore,
        lifecycle: Lifecycle,
        *,
        visibility: str,
        reports_failures: Callable[[str], bool],
    ) -> None:
        if visibility not in LEADERBOARD_VISIBILITIES:
            raise ValueError(f"leaderboard visibility is {visibility!r}; expected public or admin")
        self._store = store
        self._lifecycle = lifecycle
        self._visibility = visibility
        self._reports_failures = reports_failures

    def _unary(self, context: grpc.ServicerContext, handler: Callable[[Identity], _T]) -> _T:
        """Run a handler, turning every exception into a precise status."""
        if self._lifecycle.stopping.is_set():
            abort(context, ShuttingDownError("the server is shutting down; try again later"))
        identity = identity_of(context)
        with self._lifecycle:
            try:
                # Read your writes: episodes that ended before this call are queued for
                # the writer thread; let them land first (a moment, batch_interval).
                self._store.flush(timeout=_FLUSH_TIMEOUT)
                return handler(identity)
            except GymrpcError as error:
                failure: GymrpcError = error
            except StoreUnavailableError as error:
                failure = ScoresUnavailableError(
                    f"the scores database cannot be read now ({error}); try again later"
                )
            except ValueError as error:  # the store's own checks: page tokens, windows
                failure = InvalidArgumentError(f"page_token: {error}", field="page_token")
            except Exception as error:
                failure = internal_error(error, "the scores service")
        abort(context, failure)

    @staticmethod
    def _whose(identity: Identity, user: str, what: str) -> str:
        """The user whose data is read: the caller's own, or anyone's for an admin."""
        if not user or user == identity.user:
            return identity.user
        if not identity.is_admin:
            raise PermissionDeniedError(
                f"user: {user!r}; only admins may read another user's {what}, and "
                f"{identity.user!r} is not one",
                field="user",
            )
        return user

    def GetScores(
        self, request: spb.GetScoresRequest, context: grpc.ServicerContext
    ) -> spb.GetScoresResponse:
        """A user's scores, one per environment."""

        def handle(identity: Identity) -> spb.GetScoresResponse:
            user = self._whose(identity, request.user, "scores")
            response = spb.GetScoresResponse(score_window=self._store.settings.score_window)
            for score in sorted(self._store.user_scores(user), key=lambda s: s.env_id):
                if request.env_id and score.env_id != request.env_id:
                    continue
                fill_score(
                    response.scores.add(),
                    score,
                    reports_failures=self._reports_failures(score.env_id),
                )
            return response

        return self._unary(context, handle)

    def GetLeaderboard(
        self, request: spb.GetLeaderboardRequest, context: grpc.ServicerContext
    ) -> spb.GetLeaderboardResponse:
        """One page of an environment's leaderboard."""

        def handle(identity: Identity) -> spb.GetLeaderboardResponse:
            if self._visibility == "admin" and not identity.is_admin:
                raise PermissionDeniedError(
                    "leaderboards are shown to admins only on this server (--leaderboard "
                    f"admin), and {identity.user!r} is not one",
                    metadata={"setting": "--leaderboard"},
                )
            if not request.env_id:
                raise InvalidArgumentError(
                    "env_id: empty; expected the id of an evaluated environment",
                    field="env_id",
                )
            page = self._store.leaderboard(
                request.env_id,
                page_size=_page_size(request.page_size, 50),
                page_token=request.page_token or None,
            )
            response = spb.GetLeaderboardResponse(
                next_page_token=page.next_page_token or "",
                score_window=page.window,
                total_users=page.total,
            )
            failures = self._reports_failures(request.env_id)
            histories = {}
            if request.include_history and page.entries:
                users = [entry.score.user for entry in page.entries]
                histories = self._store.score_histories(users, request.env_id)
            for entry in page.entries:
                target = response.entries.add(rank=entry.rank)
                fill_score(target.score, entry.score, reports_failures=failures)
                for point in histories.get(entry.score.user, ()):
                    _fill_point(target.history.add(), point)
            return response

        return self._unary(context, handle)

    def ListEpisodes(
        self, request: spb.ListEpisodesRequest, context: grpc.ServicerContext
    ) -> spb.ListEpisodesResponse:
        """One page of a user's episodes, newest first."""

        def handle(identity: Identity) -> spb.ListEpisodesResponse:
            user = self._whose(identity, request.user, "episodes")
            if request.filter not in _FILTERS:
                raise InvalidArgumentError(
                    f"filter: {request.filter} is not an EpisodeFilter; expected 0, 1 or 2",
                    field="filter",
                )
            page = self._store.episodes(
                user,
                env_id=request.env_id or None,
                evaluation=_FILTERS[request.filter],
                page_size=_page_size(request.page_size, 100),
                page_token=request.page_token or None,
            )
            response = spb.ListEpisodesResponse(next_page_token=page.next_page_token or "")
            for episode in page.episodes:
                _fill_episode(response.episodes.add(), episode)
            return response

        return self._unary(context, handle)
