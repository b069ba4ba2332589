"""All sessions of a server: creation under limits, ownership, quotas and idle reaping.

Lookups are by ``(owner, session_id)``: a session id of another user is answered
exactly like an id that never existed, so ids leak nothing.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.vector import AutoresetMode, VectorEnv

from gymrpc.errors import (
    EvaluationUnavailableError,
    NumEnvsLimitError,
    ResponseTooLargeError,
    ServerBusyError,
    SessionLimitError,
    SessionNotFoundError,
    StepQuotaExhaustedError,
)
from gymrpc_server.affinity import EnvThread, needs_own_thread, renders
from gymrpc_server.auth import Identity
from gymrpc_server.catalogue import BuildPlan, BuiltEnv, Catalogue, EnvEntry, Vectorization
from gymrpc_server.policy import AccessPolicy
from gymrpc_server.scores.evaluation import EvaluationEpisodes, EvaluationRules, SeededEpisodes
from gymrpc_server.scores.tracker import EpisodeTracker, ReasonSpec, TrackedSession, jsonable
from gymrpc_server.session import EpisodeObserver, Session
from gymrpc_server.sizing import result_bytes
from gymrpc_server.validation import check_num_envs, check_session_id

__all__ = ["Limits", "SessionRegistry"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one user and the whole server may use."""

    max_num_envs: int
    max_sessions_per_user: int
    max_sessions: int
    step_quota: int
    session_idle_timeout: float
    #: The largest message the server sends; sessions whose results exceed it are refused.
    max_message_bytes: int = 64 * 1024 * 1024


class SessionRegistry:
    """Creates, finds, closes and reaps sessions.

    Args:
        catalogue: The servable environments.
        limits: The limits to enforce.
        policy: Who may set which options.
        evaluation: The challenge's rules and scores database (its store is None when
            the server keeps no scores: then no episode is recorded).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        limits: Limits,
        policy: AccessPolicy,
        evaluation: EvaluationRules | None = None,
    ) -> None:
        evaluation = evaluation or EvaluationRules((), None)
        self._catalogue = catalogue
        self.limits = limits
        self._policy = policy
        self._evaluation = evaluation
        self._sessions: dict[str, Session] = {}
        self._per_user: Counter[str] = Counter()
        self._steps: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def create(
        self,
        owner: Identity,
        *,
        env_id: str,
        num_envs: int,
        autoreset_mode: AutoresetMode,
        vectorization: Vectorization | None,
        options: Mapping[str, Any],
        seed: int | None,
        evaluation: bool = False,
    ) -> Session:
        """Create a session for ``owner``; an evaluation session when ``evaluation``.

        Raises:
            InvalidNumEnvsError: If ``num_envs`` is 0.
            NumEnvsLimitError: If ``num_envs`` exceeds the limit.
            SessionLimitError: If the user has too many sessions.
            ServerBusyError: If the server has too many sessions.
            PermissionDeniedError: If a non-admin changes a privileged option.
            EnvNotFoundError, InvalidOptionError, UnsupportedAutoresetError,
            EnvironmentFailureError: From planning and building the batch.
            ResponseTooLargeError: If a step's result could exceed max_message_bytes.
            EvaluationUnavailableError, InvalidSeedError: For an evaluation session the
                server does not offer (see :mod:`.scores.evaluation`).
        """
        check_num_envs(num_envs)
        if num_envs > self.limits.max_num_envs:
            raise NumEnvsLimitError(
                f"num_envs: {num_envs} exceeds this server's limit of "
                f"{self.limits.max_num_envs} sub-environments per session; expected at "
                f"most {self.limits.max_num_envs}",
                field="num_envs",
                metadata={"limit": str(self.limits.max_num_envs)},
            )
        entry = self._catalogue.entry(env_id)
        store = self._evaluation.check_create(env_id, seed) if evaluation else None
        # Names and types first (INVALID_ARGUMENT), then who may set them.
        plan = self._catalogue.plan(
            entry, autoreset_mode=autoreset_mode, vectorization=vectorization, options=options
        )
        if evaluation:
            EvaluationRules.check_options(plan.accepted, plan.options)
        else:
            self._policy.check_options(owner, plan.accepted, plan.options)
        self._reserve(owner)
        session_id = secrets.token_urlsafe(24)
        episodes = (
            None if store is None else EvaluationEpisodes(store, owner.user, env_id, num_envs)
        )
        # An environment bound to its thread is built, called and closed on one of its own.
        thread = (
            EnvThread(f"gymrpc-env-{session_id[:8]}")
            if needs_own_thread(entry.metadata, plan.effective)
            else None
        )
        try:
            build = functools.partial(
                self._build,
                entry,
                plan,
                num_envs=num_envs,
                autoreset_mode=autoreset_mode,
                requested=vectorization,
                episodes=episodes,
            )
            built = build() if thread is None else thread.run(build)
            if thread is None and renders(built.env):
                # Its entry point or registration chose a render mode: the back-end binds at the
                # first render, which will now come from this thread, like every call.
                thread = EnvThread(f"gymrpc-env-{session_id[:8]}")
            try:
                self._check_result_size(built.env, env_id, autoreset_mode)
            except Exception:
                if thread is None:
                    built.env.close()
                else:
                    thread.run(built.env.close)
                raise
        except BaseException:
            if thread is not None:
                thread.close()
            with self._lock:
                self._per_user[owner.user] -= 1
            raise
        session = Session(
            session_id,
            owner=owner,
            env_id=env_id,
            built=built,
            autoreset_mode=autoreset_mode,
            default_seed=seed,
            evaluation=evaluation,
            observer=self._observer(
                owner,
                env_id=env_id,
                session_id=session_id,
                built=built,
                autoreset_mode=autoreset_mode,
                episodes=episodes,
            ),
            thread=thread,
        )
        with self._lock:
            self._sessions[session.session_id] = session
        logger.info(
            "session %s created: user=%s env=%s num_envs=%d autoreset=%s vectorization=%s",
            session.session_id[:8],
            owner.user,
            env_id,
            num_envs,
            autoreset_mode.name,
            built.vectorization.value,
        )
        return session

    def _build(
        self,
        entry: EnvEntry,
        plan: BuildPlan,
        *,
        num_envs: int,
        autoreset_mode: AutoresetMode,
        requested: Vectorization | None,
        episodes: EvaluationEpisodes | None,
    ) -> BuiltEnv:
        """Build the batch; an evaluation batch takes every episode's seed from k."""
        if episodes is None:
            return self._catalogue.build(
                entry, plan, num_envs=num_envs, autoreset_mode=autoreset_mode
            )

        def seeded(env: gymnasium.Env[Any, Any], index: int) -> gymnasium.Env[Any, Any]:
            return SeededEpisodes(env, index, episodes)

        built = self._catalogue.build(
            entry, plan, num_envs=num_envs, autoreset_mode=autoreset_mode, wrap_single=seeded
        )
        if built.vectorization is Vectorization.SYNC:
            return built
        if built.env.metadata.get("gymrpc.episode_seed_source"):
            built.env.episode_seed_source = episodes.draw  # type: ignore[attr-defined]
            return built
        # A native batch that cannot take seeds per episode cannot be evaluated; the
        # same environment under SyncVectorEnv can, unless native was asked for.
        built.env.close()
        if requested is Vectorization.NATIVE or entry.sync_options is None:
            raise EvaluationUnavailableError(
                f"vectorization_mode: {entry.env_id}'s native vector implementation cannot "
                "seed each episode, which evaluation needs; expected vectorization_mode sync",
                field="vectorization_mode",
            )
        sync_plan = self._catalogue.plan(
            entry,
            autoreset_mode=autoreset_mode,
            vectorization=Vectorization.SYNC,
            options=plan.options,
        )
        return self._catalogue.build(
            entry, sync_plan, num_envs=num_envs, autoreset_mode=autoreset_mode, wrap_single=seeded
        )

    def _observer(
        self,
        owner: Identity,
        *,
        env_id: str,
        session_id: str,
        built: BuiltEnv,
        autoreset_mode: AutoresetMode,
        episodes: EvaluationEpisodes | None,
    ) -> EpisodeObserver | None:
        """What records the session's episodes (None when the server keeps no scores)."""
        store = self._evaluation.store
        if store is None:
            return None
        tracker = EpisodeTracker(
            TrackedSession(
                user=owner.user,
                env_id=env_id,
                session_id=session_id,
                env_options=jsonable(built.options),
                num_envs=built.env.num_envs,
                autoreset_mode=autoreset_mode,
                evaluation=episodes is not None,
                reason=ReasonSpec.from_metadata(built.env.metadata),
            ),
            store.record,
            current_k=None if episodes is None else (lambda: episodes.current_k),
        )
        if episodes is None:
            return tracker
        episodes.tracker = tracker
        return episodes

    def _check_result_size(
        self, env: VectorEnv[Any, Any, Any], env_id: str, autoreset_mode: AutoresetMode
    ) -> None:
        """Refuse a batch whose step results could not be sent (see :mod:`sizing`)."""
        space = env.single_observation_space
        limit = self.limits.max_message_bytes
        size = result_bytes(space, env.num_envs, autoreset_mode)
        if size > limit:
            per_env = max(size // env.num_envs, 1)
            same_step = autoreset_mode is AutoresetMode.SAME_STEP
            raise ResponseTooLargeError(
                f"num_envs: {env.num_envs} sub-environments of {env_id} would return "
                f"{size:,} bytes per step ({per_env:,} per sub-environment"
                f"{', final observations included' if same_step else ''}), above this "
                f"server's max_message_bytes of {limit:,}; expected at most "
                f"{limit // per_env} sub-environments, or smaller observations",
                field="num_envs",
                metadata={"limit": str(limit), "result_bytes": str(size)},
            )

    def _reserve(self, owner: Identity) -> None:
        with self._lock:
            if self._per_user[owner.user] >= self.limits.max_sessions_per_user:
                raise SessionLimitError(
                    f"user {owner.user!r} already has {self._per_user[owner.user]} sessions "
                    f"open, this server's limit per user; close one first",
                    metadata={"limit": str(self.limits.max_sessions_per_user)},
                )
            if sum(self._per_user.values()) >= self.limits.max_sessions:
                raise ServerBusyError(
                    f"the server has {self.limits.max_sessions} sessions open (all users "
                    "together), its limit; try again later",
                    metadata={"limit": str(self.limits.max_sessions)},
                )
            self._per_user[owner.user] += 1

    def get(self, owner: Identity, session_id: str, field: str = "session_id") -> Session:
        """Find a session of ``owner``.

        Raises:
            InvalidArgumentError: If ``session_id`` is empty.
            SessionNotFoundError: If there is none with this id for this user.
        """
        check_session_id(session_id, field)
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.owner.user != owner.user or session.closed:
            raise SessionNotFoundError(
                f"{field}: no session {session_id!r} for user {owner.user!r} (never "
                "created, closed, or expired after idling); expected one of your open "
                "sessions",
                field=field,
                metadata={"resource_name": session_id},
            )
        return session

    def close(self, owner: Identity, session_id: str, *, reason: str = "closed") -> None:
        """Close a session of ``owner``.

        Raises:
            SessionNotFoundError: If there is none with this id for this user.
        """
        self._remove(self.get(owner, session_id), reason)

    def _remove(self, session: Session, reason: str, *, already_closed: bool = False) -> None:
        with self._lock:
            if self._sessions.pop(session.session_id, None) is None:
                return
            self._per_user[session.owner.user] -= 1
            if self._per_user[session.owner.user] <= 0:
                del self._per_user[session.owner.user]
        if not already_closed:
            session.close()
        logger.info(
            "session %s %s: user=%s env=%s steps=%d",
            session.session_id[:8],
            reason,
            session.owner.user,
            session.env_id,
            session.steps_taken,
        )

    def charge(self, owner: Identity, steps: int) -> None:
        """Count steps against the user's quota.

        Raises:
            StepQuotaExhaustedError: If the steps would exceed the quota; nothing is
                counted then.
        """
        quota = self.limits.step_quota
        with self._lock:
            used = self._steps[owner.user]
            if quota and used + steps > quota:
                raise StepQuotaExhaustedError(
                    f"user {owner.user!r} has used {used} of {quota} environment steps; "
                    f"this step needs {steps} more",
                    metadata={"limit": str(quota), "used": str(used)},
                )
            self._steps[owner.user] = used + steps

    def usage(self, owner: Identity) -> tuple[int, int]:
        """Return ``(open sessions, steps used)`` of a user."""
        with self._lock:
            return self._per_user[owner.user], self._steps[owner.user]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def reap_idle(self, now: float | None = None) -> int:
        """Close sessions idle for longer than the timeout.

        Args:
            now: ``time.monotonic()`` reading; the current one by default.

        Returns:
            How many sessions were closed.
        """
        deadline = (time.monotonic() if now is None else now) - self.limits.session_idle_timeout
        with self._lock:
            candidates = [s for s in self._sessions.values() if s.last_used < deadline]
        reaped = 0
        for session in candidates:
            if session.try_close_if_idle(deadline):
                self._remove(session, "expired after idling", already_closed=True)
                reaped += 1
        return reaped

    def start_reaper(self) -> None:
        """Reap idle sessions in a background thread until :meth:`close_all`."""
        interval = min(max(self.limits.session_idle_timeout / 4, 0.05), 5.0)

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reap_idle()
                except Exception:  # keep reaping whatever one session did
                    logger.exception("reaping idle sessions failed")

        self._reaper = threading.Thread(target=run, name="gymrpc-reaper", daemon=True)
        self._reaper.start()

    def close_all(self) -> None:
        """Stop the reaper and close every session."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            self._remove(session, "closed at shutdown")
