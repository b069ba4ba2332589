"""A session: one batch of environments, stepped with Gymnasium's exact semantics.

The session owns a ``VectorEnv`` and everything the protocol promises about it:
requests are serialized, a rejected request changes nothing, stepping before the
first reset or (DISABLED autoreset) stepping an ended sub-environment is refused, and
an environment that raises leaves the session needing a reset rather than in an
unknown state. A session given an :class:`~.affinity.EnvThread` makes every call to its
environment on that thread. It knows nothing about gRPC or protobuf.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from gymrpc.errors import (
    EnvironmentFailureError,
    EpisodeEndedError,
    InvalidArgumentError,
    InvalidOptionError,
    NotSupportedError,
    ResetNeededError,
    SessionNotFoundError,
    UnknownAttributeError,
)
from gymrpc.fieldpath import join_key
from gymrpc_server.affinity import EnvThread
from gymrpc_server.auth import Identity
from gymrpc_server.catalogue import BuiltEnv, Vectorization, render_modes_of
from gymrpc_server.sequencing import SequenceGuard
from gymrpc_server.validation import ActionChecker, check_reset_mask

__all__ = ["RESET_OPTIONS_CHECKED_FIRST", "EpisodeObserver", "Session", "StepResult"]

logger = logging.getLogger(__name__)

#: Metadata key by which a native vector environment promises that a ``reset`` raising
#: ValueError, TypeError or KeyError for its options changed nothing (errors.proto).
RESET_OPTIONS_CHECKED_FIRST = "gymrpc.reset_options_checked_first"

Seeds = int | list[int | None] | None
_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class StepResult:
    """What a step returns, as Gymnasium returns it."""

    observations: Any
    rewards: npt.NDArray[np.float64]
    terminations: npt.NDArray[np.bool_]
    truncations: npt.NDArray[np.bool_]
    info: dict[str, Any]


class EpisodeObserver(Protocol):
    """What follows a session's episodes (the challenge's scores, see ``scores/``).

    The ``before_*`` hooks may refuse a request by raising a gymrpc error: nothing has
    changed then. The ``after_*`` hooks see what the environments returned.
    """

    def before_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Called before the environments reset; may raise to refuse."""

    def after_reset(self, reset_mask: npt.NDArray[np.bool_] | None) -> None:
        """Called after a successful reset of all or the masked sub-environments."""

    def before_step(self) -> None:
        """Called before the environments step; may raise to refuse."""

    def after_step(self, result: StepResult) -> None:
        """Called after a successful step."""

    def close(self) -> None:
        """Called once when the session closes: episodes still running are abandoned."""


class _Held:
    """The session held for one request (see :meth:`Session.use`)."""

    __slots__ = ("_field", "_session")

    def __init__(self, session: Session, field: str) -> None:
        self._session = session
        self._field = field

    def __enter__(self) -> Session:
        session = self._session
        session._lock.acquire()
        if session._closed:
            session._lock.release()
            raise session.not_found(self._field)
        return session

    def __exit__(self, *exc_info: object) -> None:
        session = self._session
        # Idle time counts from the end of the last request.
        session.last_used = time.monotonic()
        session._lock.release()


class Session:
    """One batch of environments owned by one user.

    Args:
        session_id: Unguessable identifier.
        owner: The user who created it.
        env_id: The environment's registered id.
        built: The built batch.
        autoreset_mode: The autoreset mode in force.
        default_seed: Seed of the first reset when that reset has none.
        evaluation: An evaluation session of the challenge (its episodes are scored).
        observer: Follows the episodes (records them), if any.
        thread: The thread on which every call to the environment runs (the one that
            built it), for environments bound to their thread; ``None`` calls them from
            the request's thread. The session closes it.
    """

    def __init__(
        self,
        session_id: str,
        *,
        owner: Identity,
        env_id: str,
        built: BuiltEnv,
        autoreset_mode: AutoresetMode,
        default_seed: int | None = None,
        evaluation: bool = False,
        observer: EpisodeObserver | None = None,
        thread: EnvThread | None = None,
    ) -> None:
        self.session_id = session_id
        self._thread = thread
        self.evaluation = evaluation
        self._observer = observer
        self.owner = owner
        self.env_id = env_id
        self.env: VectorEnv[Any, Any, Any] = built.env
        self.vectorization: Vectorization = built.vectorization
        self.options = built.options
        self.autoreset_mode = autoreset_mode
        self.num_envs: int = built.env.num_envs
        self.needs_reset = True
        # Only a native vector env can promise this: under SyncVectorEnv, wrappers such
        # as TimeLimit change their state before the sub-environment sees the options.
        self._options_checked_first = built.vectorization is Vectorization.NATIVE and bool(
            built.env.metadata.get(RESET_OPTIONS_CHECKED_FIRST)
        )
        # Stream sequence numbers and the remembered response (sequencing.py).
        self.sequence = SequenceGuard()
        self.steps_taken = 0
        self.last_used = time.monotonic()
        self._default_seed = default_seed
        self._actions = ActionChecker(built.env.single_action_space, self.num_envs)
        # Only DISABLED autoreset needs to remember which sub-environments ended.
        self._ended = np.zeros(self.num_envs, dtype=np.bool_)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the session is closed."""
        return self._closed

    def _env_call(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call ``function`` on the session's environment thread, if it has one."""
        if self._thread is None:
            return function(*args, **kwargs)
        return self._thread.run(function, *args, **kwargs)

    def use(self, field: str = "session_id") -> _Held:
        """Hold the session for one request: ``with session.use(): ...``.

        Entering locks the session against other requests and raises
        SessionNotFoundError if it was closed meanwhile.

        Args:
            field: Field path of the session id in the request (``step.session_id`` on
                the stream), for that error.
        """
        return _Held(self, field)

    def not_found(self, field: str = "session_id") -> SessionNotFoundError:
        """The error for requests on this session once it is gone."""
        return SessionNotFoundError(
            f"{field}: no session {self.session_id!r} (closed or expired); expected one of "
            "your open sessions",
            field=field,
            metadata={"resource_name": self.session_id},
        )

    def reset(
        self,
        seed: Seeds = None,
        reset_mask: npt.NDArray[np.bool_] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        root: str = "",
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all or some sub-environments; call it inside :meth:`use`.

        Args:
            seed: ``None``, an int (sub-environment i gets ``seed + i``) or one
                ``int | None`` per sub-environment.
            reset_mask: Which sub-environments to reset; ``None`` means all.
            options: Passed to every reset sub-environment.
            root: Field path of the reset request (``"reset"`` on the stream), for
                errors.

        Returns:
            ``(observations, info)`` exactly as the vector environment returns them.

        Raises:
            InvalidResetMaskError: For a malformed mask.
            ResetNeededError: For a partial first reset.
            InvalidOptionError: If the environment rejects the options.
            EnvironmentFailureError: If the environment raises for another reason.
        """
        reset_options = dict(options or {})
        mask_field = join_key(root, "reset_mask")
        options_field = join_key(root, "options")
        if reset_mask is not None:
            check_reset_mask(reset_mask, self.num_envs, field=mask_field)
            if self.needs_reset and not reset_mask.all():
                raise ResetNeededError(
                    f"{mask_field}: selects {int(reset_mask.sum())} of {self.num_envs} "
                    "sub-environments, but the session needs a full reset first (after "
                    "creation or an environment error); expected every sub-environment",
                    field=mask_field,
                )
            reset_options["reset_mask"] = reset_mask
        if seed is None and self._default_seed is not None:
            seed = self._default_seed
        if self._observer is not None:
            self._observer.before_reset(reset_mask)
        try:
            # SyncVectorEnv and native vector envs accept per-env seed lists; the base
            # class annotation says int only.
            observations, info = self._env_call(
                self.env.reset, seed=cast(Any, seed), options=reset_options or None
            )
        except (ValueError, TypeError, KeyError) as error:
            if options and self._options_checked_first:
                raise InvalidOptionError(
                    f"{options_field}: {self.env_id} rejected the reset options "
                    f"{dict(options)}: {error}; nothing was reset",
                    field=options_field,
                ) from error
            self.needs_reset = True
            if options:
                raise InvalidOptionError(
                    f"{options_field}: {self.env_id} rejected the reset options "
                    f"{dict(options)}: {error}; it may have reset some sub-environments, so "
                    "the session needs a full reset",
                    field=options_field,
                ) from error
            raise self._failure("reset", error) from error
        except Exception as error:
            self.needs_reset = True
            raise self._failure("reset", error) from error
        self._default_seed = None
        self.needs_reset = False
        if reset_mask is None:
            self._ended[:] = False
        else:
            self._ended[reset_mask] = False
        if self._observer is not None:
            self._observer.after_reset(reset_mask)
        return observations, info

    def step(
        self,
        actions: Any,
        charge: Callable[[int], None] | None = None,
        *,
        field: str = "actions",
    ) -> StepResult:
        """Step every sub-environment once; call it inside :meth:`use`.

        Args:
            actions: Decoded batched actions.
            charge: Called with ``num_envs`` after validation and before stepping, to
                count the steps against a quota; it may raise to refuse the step.
            field: Field path of the actions (``step.actions`` on the stream).

        Returns:
            The step's results.

        Raises:
            InvalidActionError: If the actions do not fit the batched action space.
            ResetNeededError: Before the first reset or after an environment error.
            EpisodeEndedError: DISABLED autoreset, a sub-environment ended unreset.
            EnvironmentFailureError: If the environment raises.
        """
        if self.needs_reset:
            raise ResetNeededError(
                "the session must be reset before it steps (it was just created, or an "
                "environment error left it in an unknown state)"
            )
        actions = self._actions.check(actions, field)
        if self.autoreset_mode is AutoresetMode.DISABLED and self._ended.any():
            ended = np.flatnonzero(self._ended).tolist()
            raise EpisodeEndedError(
                f"sub-environments {ended} ended and were not reset; with DISABLED "
                "autoreset, reset them with a reset_mask before stepping",
                metadata={"env_indices": ",".join(map(str, ended))},
            )
        if self._observer is not None:
            self._observer.before_step()
        if charge is not None:
            charge(self.num_envs)
        try:
            observations, rewards, terminations, truncations, info = self._env_call(
                self.env.step, actions
            )
        except Exception as error:
            self.needs_reset = True
            raise self._failure("step", error) from error
        self.steps_taken += self.num_envs
        if self.autoreset_mode is AutoresetMode.DISABLED:
            self._ended |= np.asarray(terminations) | np.asarray(truncations)
        result = StepResult(
            observations,
            np.asarray(rewards, dtype=np.float64),
            np.asarray(terminations, dtype=np.bool_),
            np.asarray(truncations, dtype=np.bool_),
            info,
        )
        if self._observer is not None:
            self._observer.after_step(result)
        return result

    def np_random_seed(self) -> Any:
        """``VectorEnv.np_random_seed``: the sub-environments' seeds, or the native env's.

        Under SyncVectorEnv a tuple of one seed per sub-environment; a native vector
        environment has its own single seed.
        """
        return self._env_call(lambda: self.env.np_random_seed)

    def _indices(self, env_indices: list[int]) -> list[int]:
        if not env_indices:
            return list(range(self.num_envs))
        bad = [index for index in env_indices if index >= self.num_envs]
        if bad:
            raise InvalidArgumentError(
                f"env_indices: {bad} are not sub-environments of a session of "
                f"{self.num_envs}; expected indices in 0..{self.num_envs - 1}",
                field="env_indices",
            )
        return env_indices

    def _unknown(self, name: str, error: AttributeError) -> UnknownAttributeError:
        return UnknownAttributeError(
            f"name: {self.env_id} has no attribute {name!r} ({error})", field="name"
        )

    def get_attr(self, name: str, env_indices: list[int] | None = None) -> list[Any]:
        """Read an attribute of sub-environments; call it inside :meth:`use`.

        With a native vector environment there are no sub-environments: the vector
        environment's own attribute is returned once per selected index.

        Raises:
            UnknownAttributeError: If the attribute does not exist.
            InvalidArgumentError: For indices outside the batch.
        """
        indices = self._indices(env_indices or [])
        env = self.env
        try:
            if isinstance(env, SyncVectorEnv):
                return self._env_call(lambda: [env.envs[i].get_wrapper_attr(name) for i in indices])
            return [self._env_call(getattr, env, name)] * len(indices)
        except AttributeError as error:
            raise self._unknown(name, error) from error

    def call(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        env_indices: list[int] | None = None,
    ) -> list[Any]:
        """Call a method of sub-environments (``SyncVectorEnv.call``).

        Raises:
            NotSupportedError: For native vector environments.
            UnknownAttributeError: If the method does not exist.
            InvalidArgumentError: If it rejects the arguments, or for bad indices.
            EnvironmentFailureError: If the method raises anything else.
        """
        env = self._sync_env("call")
        indices = self._indices(env_indices or [])
        results = []
        for index in indices:
            try:
                results.append(self._env_call(_call_attribute, env.envs[index], name, args, kwargs))
            except AttributeError as error:
                raise self._unknown(name, error) from error
            except (TypeError, ValueError) as error:
                raise InvalidArgumentError(
                    f"args: {self.env_id}.{name} rejected the arguments: {error}", field="args"
                ) from error
            except gymnasium.error.ResetNeeded as error:
                raise ResetNeededError(f"{self.env_id}.{name}: {error}") from error
            except Exception as error:
                raise self._failure(f"call of {name}", error, broken=False) from error
        return results

    def set_attr(self, name: str, values: list[Any], env_indices: list[int] | None = None) -> None:
        """Set an attribute of sub-environments (``SyncVectorEnv.set_attr``).

        Args:
            name: The attribute.
            values: One value for all selected sub-environments, or one per index.
            env_indices: The sub-environments to change; all when empty.

        Raises:
            NotSupportedError: For native vector environments.
            InvalidArgumentError: For a wrong number of values or bad indices.
        """
        env = self._sync_env("set_attr")
        indices = self._indices(env_indices or [])
        if len(values) not in (1, len(indices)):
            raise InvalidArgumentError(
                f"values: {len(values)} values; expected 1 or {len(indices)}", field="values"
            )
        for position, index in enumerate(indices):
            value = values[position if len(values) > 1 else 0]
            self._env_call(env.envs[index].set_wrapper_attr, name, value)

    def render(self, env_indices: list[int] | None = None) -> Any:
        """Render the sub-environments (``VectorEnv.render``), or those in ``env_indices``.

        Under SyncVectorEnv only the selected sub-environments render (an ``_list``
        mode's other sub-environments keep collecting frames); a native vector
        environment renders all and the selected frames are returned.

        Raises:
            NotSupportedError: If the session was created without a render mode.
            InvalidArgumentError: For indices outside the batch.
        """
        indices = self._indices(env_indices or [])
        if self.env.render_mode is None:
            modes = render_modes_of(tuple(self.env.metadata.get("render_modes", ())))
            hint = (
                f"create a session with the env option render_mode set to one of {modes}"
                if modes
                else f"{self.env_id} renders nothing on a server (no render modes)"
            )
            raise NotSupportedError(
                f"render: this session of {self.env_id} was created without a render_mode; " + hint
            )
        env = self.env
        try:
            if isinstance(env, SyncVectorEnv) and env_indices:
                return self._env_call(lambda: tuple(env.envs[index].render() for index in indices))
            frames = self._env_call(env.render)
        except gymnasium.error.ResetNeeded as error:
            raise ResetNeededError(f"{self.env_id}.render: {error}") from error
        except Exception as error:
            raise self._failure("render", error, broken=False) from error
        if env_indices and isinstance(frames, list | tuple):
            return tuple(frames[index] for index in indices)
        return tuple(frames) if isinstance(frames, list) else frames

    def _sync_env(self, operation: str) -> SyncVectorEnv:
        if not isinstance(self.env, SyncVectorEnv):
            raise NotSupportedError(
                f"{operation} needs sub-environments, and this session runs {self.env_id} "
                "as a native vector environment; create it with vectorization_mode SYNC"
            )
        return self.env

    def mark_broken(self) -> None:
        """Require a reset, e.g. after a result could not be delivered."""
        self.needs_reset = True

    def _failure(
        self, operation: str, error: BaseException, *, broken: bool = True
    ) -> EnvironmentFailureError:
        logger.warning(
            "session %s: %s %s raised %s: %s",
            self.session_id[:8],
            self.env_id,
            operation,
            type(error).__name__,
            error,
        )
        consequence = "; the session needs a full reset" if broken else ""
        return EnvironmentFailureError(
            f"{self.env_id} raised during {operation}: {type(error).__name__}: {error}"
            + consequence,
            metadata={"session_id": self.session_id},
        )

    def close(self) -> None:
        """Close the environments once the request in progress, if any, is done.

        Requests after this get NOT_FOUND. Idempotent.
        """
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._observer is not None:
            # Episodes still running are recorded as abandoned (a closed session cannot
            # discard an evaluation episode); a failure to record is logged, not raised.
            try:
                self._observer.close()
            except Exception:
                logger.exception(
                    "session %s: recording its last episodes failed", self.session_id[:8]
                )
        try:
            self._env_call(self.env.close)
        except Exception:
            logger.exception("session %s: closing %s raised", self.session_id[:8], self.env_id)
        if self._thread is not None:
            self._thread.close()

    def try_close_if_idle(self, idle_since: float) -> bool:
        """Close the session if no request holds it and it is idle since before a time.

        Args:
            idle_since: ``time.monotonic()`` threshold.

        Returns:
            True if the session was closed.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._closed or self.last_used > idle_since:
                return False
            self._close_locked()
            return True
        finally:
            self._lock.release()


def _call_attribute(
    env: gymnasium.Env[Any, Any], name: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """``SyncVectorEnv.call`` for one sub-environment: call the attribute, or return it."""
    function = env.get_wrapper_attr(name)
    return function(*args, **kwargs) if callable(function) else function
