"""Following a session's episodes: returns, lengths and endings, recorded when they end.

An :class:`EpisodeTracker` watches one session's resets and steps (it is the session's
``EpisodeObserver``) and turns every episode that ends, or that is still running when
the session closes or resets it, into an :class:`~.episodes.Episode` for the store.
Returns and lengths are kept in numpy arrays over the batch; Python work happens only
for the sub-environments whose episode ends.

When an episode starts and ends follows Gymnasium's autoreset modes (env_service.proto,
AutoresetMode): in NEXT_STEP the step after an end is a reset step, which belongs to
no episode (its reward is 0) and starts the next; in SAME_STEP an episode ends and the
next starts within one step (the terminal info is ``info["final_info"]``); in DISABLED
the client resets explicitly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode

from gymrpc_server.scores.episodes import Ending, Episode
from gymrpc_server.session import StepResult

__all__ = ["EpisodeTracker", "ReasonSpec", "TrackedSession", "jsonable"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReasonSpec:
    """Where an environment's info says how an episode ended (``gymrpc.episode_reason``).

    Attributes:
        key: The info key holding an integer code, e.g. ``"reason"``.
        names: Code to name, e.g. ``{1: "failure", 2: "sold"}``.
        failures: The codes that count as failures.
    """

    key: str
    names: Mapping[int, str]
    failures: frozenset[int] = frozenset()

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ReasonSpec | None:
        """The spec an environment's metadata declares, or None."""
        spec = metadata.get("gymrpc.episode_reason")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("key"), str):
            return None
        names = {int(code): str(name) for code, name in dict(spec.get("names", {})).items()}
        return cls(spec["key"], names, frozenset(int(code) for code in spec.get("failures", ())))


@dataclass(frozen=True)
class TrackedSession:
    """What every episode of a session shares.

    Attributes:
        user: The session's owner.
        env_id: Its environment.
        session_id: Its id.
        env_options: Its options in force (JSON values only are kept).
        num_envs: Its batch size.
        autoreset_mode: Its autoreset mode.
        evaluation: An evaluation session.
        reason: Where its environment's info says how episodes end, if it does.
    """

    user: str
    env_id: str
    session_id: str
    env_options: Mapping[str, Any]
    num_envs: int
    autoreset_mode: AutoresetMode
    evaluation: bool
    reason: ReasonSpec | None = None


def jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as JSON can keep them: a value JSON cannot hold is kept as its repr."""
    kept: dict[str, Any] = {}
    for name, value in options.items():
        try:
            json.dumps(value, allow_nan=False)
            kept[name] = value
        except (TypeError, ValueError):
            kept[name] = repr(value)
    return kept


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


class EpisodeTracker:
    """Follows the episodes of one session and records each when it ends.

    Args:
        session: What the session's episodes share.
        record: Takes a finished episode; returns False when it could not take it
            now (a full queue): the tracker keeps it and offers it again later.
        current_k: For evaluation sessions, returns the k of each sub-environment's
            current episode (assigned when it started); None otherwise.
    """

    def __init__(
        self,
        session: TrackedSession,
        record: Callable[[Episode], bool],
        current_k: Callable[[], npt.NDArray[np.int64]] | None = None,
    ) -> None:
        n = session.num_envs
        self._session = session
        self._record = record
        self._current_k = current_k
        self._returns = np.zeros(n, dtype=np.float64)
        self._lengths = np.zeros(n, dtype=np.int64)
        self._running = np.zeros(n, dtype=np.bool_)
        self._started = np.zeros(n, dtype=np.float64)
        self._k = np.full(n, -1, dtype=np.int64)
        # NEXT_STEP: sub-environments whose episode ended on the last step, reset on
        # the next one.
        self._pending = np.zeros(n, dtype=np.bool_)
        self._unsent: list[Episode] = []
        # Episode ids: unique by the session's (random) id and a counter, without the
        # cost of a UUID per episode (EPISODE_ID_LENGTH characters).
        self._id_prefix = hashlib.blake2b(session.session_id.encode(), digest_size=8).hexdigest()
        self._counter = itertools.count()
        # The options were checked when the session was created: once, as JSON, here.
        self._options = dict(session.env_options)
        json.dumps(self._options, allow_nan=False)

    @property
    def unsent(self) -> int:
        """Episodes waiting to be taken by the store (its queue was full)."""
        return len(self._unsent)

    def _start(self, where: npt.NDArray[np.bool_]) -> None:
        self._returns[where] = 0.0
        self._lengths[where] = 0
        self._running[where] = True
        self._started[where] = time.time()
        if self._current_k is not None:
            self._k[where] = self._current_k()[where]

    def _finish(
        self,
        where: npt.NDArray[np.bool_],
        ending: npt.NDArray[np.int8] | Ending,
        info: Mapping[str, Any] | None,
    ) -> None:
        """Record the episodes of the sub-environments in ``where`` and stop them."""
        indices = np.flatnonzero(where & self._running)
        if indices.size == 0:
            return
        ended_at = datetime.now(UTC)
        session = self._session
        spec = session.reason
        codes = self._reason_codes(info, indices)
        # One Python object per ended episode is unavoidable (the store queues records);
        # everything else is read from the arrays in bulk.
        returns = self._returns[indices].tolist()
        lengths = self._lengths[indices].tolist()
        ks = self._k[indices].tolist()
        starts = self._started[indices].tolist()
        kinds = (
            [ending] * indices.size
            if isinstance(ending, Ending)
            else [_ENDINGS[code] for code in ending[indices].tolist()]
        )
        for position in range(indices.size):
            code = codes[position]
            reason = None
            failure = False
            if code is not None and spec is not None:
                reason = spec.names.get(code, str(code))
                failure = code in spec.failures
            self._offer(
                Episode.trusted(
                    user=session.user,
                    env_id=session.env_id,
                    env_options=self._options,
                    evaluation=session.evaluation,
                    k=ks[position] if session.evaluation else None,
                    episode_return=returns[position],
                    length=lengths[position],
                    ending=kinds[position],
                    reason=reason,
                    failure=failure,
                    started_at=min(_utc(starts[position]), ended_at),
                    ended_at=ended_at,
                    session_id=session.session_id,
                    episode_id=f"{self._id_prefix}{next(self._counter):016x}",
                )
            )
        self._running[indices] = False

    def _reason_codes(
        self, info: Mapping[str, Any] | None, indices: npt.NDArray[np.intp]
    ) -> list[int | None]:
        spec = self._session.reason
        if spec is None or info is None or spec.key not in info:
            return [None] * indices.size
        values = np.asarray(info[spec.key])[indices].tolist()
        mask = info.get(f"_{spec.key}")
        if mask is None:
            return [int(value) for value in values]
        present = np.asarray(mask)[indices].tolist()
        return [int(v) if p else None for v, p in zip(values, present, strict=True)]

    def _offer(self, episode: Episode) -> None:
        if self._unsent or not self._record(episode):
            self._unsent.append(episode)

    def retry_unsent(self) -> None:
        """Offer the episodes the store could not take, oldest first."""
        while self._unsent and self._record(self._unsent[0]):
            self._unsent.pop(0)

    # --- the observer hooks (see gymrpc_server.session.EpisodeObserver) ----------------

    def before_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Nothing to check: an ordinary session's episodes are recorded as they can be."""

    def before_step(self) -> None:
        """Nothing to check (see :meth:`before_reset`)."""

    def close(self) -> None:
        """The session closes: its running episodes are abandoned."""
        self.abandon_all()

    def after_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Abandon the episodes a reset cut short, and start the new ones."""
        where = np.ones_like(self._running) if reset_mask is None else reset_mask.astype(np.bool_)
        self._finish(where, Ending.ABANDONED, None)
        self._pending[where] = False
        self._start(where)

    def after_step(self, result: StepResult) -> None:
        """Account for one step: rewards, lengths, episodes ended and started."""
        ended = result.terminations | result.truncations
        mode = self._session.autoreset_mode
        stepped = ~self._pending if mode is AutoresetMode.NEXT_STEP else slice(None)
        self._returns[stepped] += result.rewards[stepped]
        self._lengths[stepped] += 1
        codes = np.where(result.terminations, _TERMINATED, _TRUNCATED).astype(np.int8)
        if mode is AutoresetMode.NEXT_STEP:
            reset_now = self._pending.copy()
            ended &= ~reset_now
            self._finish(ended, codes, result.info)
            if reset_now.any():
                self._start(reset_now)
            self._pending = ended
        elif mode is AutoresetMode.SAME_STEP:
            if ended.any():
                final_info = result.info.get("final_info")
                self._finish(ended, codes, final_info if isinstance(final_info, Mapping) else None)
                self._start(ended)
        else:
            self._finish(ended, codes, result.info)
        if self._unsent:
            self.retry_unsent()

    def abandon_all(self) -> None:
        """Record every running episode as abandoned (the session is closing)."""
        self._finish(self._running.copy(), Ending.ABANDONED, None)
        self.retry_unsent()
        if self._unsent:
            logger.error(
                "session %s: %d episodes could not be queued for recording and are lost",
                self._session.session_id[:8],
                len(self._unsent),
            )
            self._unsent.clear()


_TERMINATED = 0
_TRUNCATED = 1
_ENDINGS = {_TERMINATED: Ending.TERMINATED, _TRUNCATED: Ending.TRUNCATED}
