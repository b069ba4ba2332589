"""Evaluation sessions of the challenge: what they refuse, their secret engines, their k.

The rules are those of ``CreateSessionRequest.evaluation`` in env_service.proto:

* only the environments the server evaluates (``--evaluation-env``), with their
  default options, and only when it keeps scores;
* no seeds, no reset options, no privileged options (admins included), no access to
  sub-environment attributes;
* the k-th evaluation episode of a user on an environment runs on the engine seeded
  with :meth:`~gymrpc_server.scores.ScoreStore.evaluation_seed` of k: episodes take
  their k in the order they start, sub-environment order for those starting together;
* every episode whose first observation was sent counts, abandoned ones included, and
  no evaluation request runs while its episodes could not be recorded.

This module decides; the servicer asks it, the registry builds sessions with it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt

from gymrpc.errors import (
    EvaluationUnavailableError,
    InvalidOptionError,
    InvalidSeedError,
    PermissionDeniedError,
    ScoresUnavailableError,
)
from gymrpc.fieldpath import join_key
from gymrpc_server.options import NO_DEFAULT, OptionInfo
from gymrpc_server.scores.errors import StoreUnavailableError
from gymrpc_server.scores.store import ScoreStore
from gymrpc_server.scores.tracker import EpisodeTracker
from gymrpc_server.session import StepResult

__all__ = ["EvaluationEpisodes", "EvaluationRules", "SeededEpisodes"]

logger = logging.getLogger(__name__)

#: At least this many k are reserved at a time, so that the database is asked rarely.
_MIN_BLOCK = 16


class EvaluationRules:
    """What evaluation sessions may ask for on one server.

    Args:
        env_ids: The environments the server evaluates.
        store: The scores database, or None when the server keeps no scores.
    """

    def __init__(self, env_ids: Sequence[str], store: ScoreStore | None) -> None:
        self.env_ids = tuple(env_ids)
        self.store = store

    def check_create(self, env_id: str, seed: int | None) -> ScoreStore:
        """Refuse an evaluation session the server does not offer.

        Returns:
            The store its episodes go to.

        Raises:
            EvaluationUnavailableError: The server keeps no scores, or does not evaluate
                ``env_id``.
            InvalidSeedError: A seed was given.
        """
        if self.store is None:
            raise EvaluationUnavailableError(
                "evaluation: this server keeps no scores (it runs with --database none); "
                "expected a server with a scores database",
                field="evaluation",
            )
        if env_id not in self.env_ids:
            raise EvaluationUnavailableError(
                f"evaluation: {env_id!r} is not evaluated on this server; expected one of "
                f"{list(self.env_ids)} (the server's --evaluation-env setting)",
                field="evaluation",
                metadata={"setting": "--evaluation-env"},
            )
        if seed is not None:
            raise InvalidSeedError(
                f"seed: {seed}; expected none: evaluation episodes run on the server's "
                "secret engines",
                field="seed",
            )
        return self.store

    @staticmethod
    def check_options(accepted: Mapping[str, OptionInfo], options: Mapping[str, Any]) -> None:
        """Refuse options other than the configured ones (the environment's defaults).

        Raises:
            PermissionDeniedError: A privileged option, whatever the caller's role.
            InvalidOptionError: Another option set to anything but its default.
        """
        for name, value in options.items():
            path = join_key("env_options", name)
            info = accepted[name]
            if info.privileged:
                raise PermissionDeniedError(
                    f"{path}: {name} reveals hidden state and is never allowed in an "
                    "evaluation session, for admins neither",
                    field=path,
                )
            default = None if info.default is NO_DEFAULT else info.default
            if value != default:
                raise InvalidOptionError(
                    f"{path}: {value!r}; expected the evaluated setting {default!r} (an "
                    "evaluation session runs with the configured options only)",
                    field=path,
                )

    @staticmethod
    def check_reset(*, seeding: str | None, has_options: bool, root: str) -> None:
        """Refuse a reset with seeds or options in an evaluation session.

        Raises:
            InvalidSeedError: For ``seed``/``seeds``.
            InvalidOptionError: For reset options.
        """
        if seeding is not None:
            field = join_key(root, seeding)
            raise InvalidSeedError(
                f"{field}: set; expected no seed: evaluation episodes run on the server's "
                "secret engines",
                field=field,
            )
        if has_options:
            field = join_key(root, "options")
            raise InvalidOptionError(
                f"{field}: set; expected no reset options in an evaluation session",
                field=field,
            )

    @staticmethod
    def refuse_attributes(name_field: str = "name") -> PermissionDeniedError:
        """The error for Call, GetAttr and SetAttr in an evaluation session."""
        return PermissionDeniedError(
            f"{name_field}: sub-environment attributes are never accessible in an "
            "evaluation session (they could reveal the engines)",
            field=name_field,
        )


class EvaluationEpisodes:
    """The k, seeds and records of one evaluation session's episodes.

    Reserves k from the store in blocks, hands out the seed of each episode as it
    starts (:meth:`draw`, called by the environment in sub-environment order), and
    refuses a reset or step before it starts whenever the episodes it could start or
    end might not be recorded: with k in hand and room in the store's queue, nothing
    that runs can fail to be recorded.

    Args:
        store: The scores database.
        user: The session's owner.
        env_id: Its environment.
        num_envs: Its batch size.
    """

    def __init__(self, store: ScoreStore, user: str, env_id: str, num_envs: int) -> None:
        self._store = store
        self._user = user
        self._env_id = env_id
        self._num_envs = num_envs
        self._pool: collections.deque[int] = collections.deque()
        self.current_k = np.full(num_envs, -1, dtype=np.int64)
        self.tracker: EpisodeTracker | None = None

    def draw(self, env_indices: npt.NDArray[np.intp]) -> list[int]:
        """The seeds of the episodes starting at ``env_indices`` (in that order)."""
        if len(self._pool) < len(env_indices):  # ensure() makes this unreachable
            raise ScoresUnavailableError("evaluation: no k reserved for a starting episode")
        seeds = []
        for index in np.asarray(env_indices).tolist():
            k = self._pool.popleft()
            self.current_k[index] = k
            seeds.append(self._store.evaluation_seed(self._env_id, k))
        return seeds

    def ensure(self, starting: int) -> None:
        """Make sure ``starting`` episodes can start and every episode can be recorded.

        Raises:
            ScoresUnavailableError: The database cannot hand out k now, or the queue
                of records is too full to take this request's episodes.
        """
        status = self._store.status()
        unsent = self.tracker.unsent if self.tracker is not None else 0
        room = self._store.settings.max_queued - status.queued - unsent
        if status.closed or room < self._num_envs:
            reason = status.last_error or "its queue of records is full"
            raise ScoresUnavailableError(
                "evaluation: the server cannot record episodes now (the scores database: "
                f"{reason}); evaluation requests wait until it can, try again later",
                metadata={"queued": str(status.queued)},
            )
        missing = starting - len(self._pool)
        if missing <= 0:
            return
        try:
            # Twice the batch: the database is asked about once per num_envs episodes
            # started, not at every step (k left over at close are skipped, never reused).
            block = self._store.reserve_k(
                self._user, self._env_id, max(missing, 2 * self._num_envs, _MIN_BLOCK)
            )
        except StoreUnavailableError as error:
            raise ScoresUnavailableError(
                f"evaluation: the server cannot reach its scores database ({error}); "
                "try again later"
            ) from error
        self._pool.extend(block)

    # --- the session's observer hooks: the tracker records, these guard ---------------

    def before_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Hold the k of every episode the reset starts."""
        self.ensure(self._num_envs if reset_mask is None else int(reset_mask.sum()))

    def after_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Record the episodes the reset abandoned; start the new ones."""
        assert self.tracker is not None
        self.tracker.after_reset(reset_mask)

    def before_step(self) -> None:
        """Hold k for every sub-environment that could start an episode in the step."""
        self.ensure(self._num_envs)

    def after_step(self, result: StepResult) -> None:
        """Record the episodes that ended."""
        assert self.tracker is not None
        self.tracker.after_step(result)

    def close(self) -> None:
        """Record the running episodes as abandoned."""
        assert self.tracker is not None
        self.tracker.abandon_all()


class SeededEpisodes(gymnasium.Wrapper[Any, Any, Any, Any]):
    """One sub-environment of a SyncVectorEnv whose every episode gets its seed from k.

    SyncVectorEnv resets its sub-environments (at a reset, or an autoreset) in index
    order, with no seed in an evaluation session: this wrapper asks the session for the
    seed of the episode starting, as a native environment's ``episode_seed_source``
    does.

    Args:
        env: The sub-environment.
        index: Its index in the batch.
        episodes: The session's evaluation episodes.
    """

    def __init__(
        self, env: gymnasium.Env[Any, Any], index: int, episodes: EvaluationEpisodes
    ) -> None:
        super().__init__(env)
        self._index = np.array([index], dtype=np.intp)
        self._episodes = episodes

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset with the seed of the episode starting (the session refuses others)."""
        (drawn,) = self._episodes.draw(self._index)
        return super().reset(seed=drawn if seed is None else seed, options=options)
