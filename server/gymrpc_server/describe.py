"""Protocol descriptions of environments and sessions (catalogue entries, Session).

These are the server's read-only views translated to protobuf; building them never
changes an environment, except :func:`fill_np_random_seed`, which reads
``np_random_seed`` and so seeds environments that have no generator yet, exactly as
reading it from a local ``SyncVectorEnv`` does.

An environment documents itself for remote clients through metadata keys that are
never sent as plain metadata:

* ``gymrpc.description`` (str): documentation; without it, the entry point's
  docstring is used;
* ``gymrpc.observation_labels``: ``[{"path": "", "axis": -1, "labels": [{"name": ...,
  "unit": ..., "description": ...}, ...]}, ...]``;
* ``gymrpc.info_keys``: ``[{"key": ..., "description": ..., "privileged": bool}, ...]``;
* ``gymrpc.option_units``: ``{option name: unit}`` (read by the catalogue).
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers import TimeLimit

from gymrpc.errors import EnvNotFoundError, GymrpcError, UnsupportedSpaceError
from gymrpc.modes import autoreset_to_proto, vectorization_to_proto
from gymrpc.spaces import encode_space
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import fill_value
from gymrpc_server.catalogue import Catalogue, EnvEntry
from gymrpc_server.options import NO_DEFAULT, OptionInfo, OptionKind
from gymrpc_server.session import Session

__all__ = [
    "CatalogueReport",
    "EnvironmentDescriber",
    "episode_step_limit",
    "fill_metadata",
    "fill_np_random_seed",
    "session_message",
]

logger = logging.getLogger(__name__)

_OPTION_TYPES: Final = {
    OptionKind.ANY: pb.OPTION_TYPE_UNSPECIFIED,
    OptionKind.BOOL: pb.OPTION_TYPE_BOOL,
    OptionKind.INT: pb.OPTION_TYPE_INT,
    OptionKind.FLOAT: pb.OPTION_TYPE_FLOAT,
    OptionKind.STRING: pb.OPTION_TYPE_STRING,
    OptionKind.DICT: pb.OPTION_TYPE_DICT,
}


def fill_metadata(target: Any, metadata: Mapping[str, Any]) -> None:
    """Copy an environment's metadata into a ValueMap, skipping what cannot travel.

    ``autoreset_mode`` is left out (the protocol has its own field for it), and so are
    keys starting with ``gymrpc.`` (promises and documentation the environment gives
    this server, sent in their own fields) and any entry the protocol cannot carry:
    metadata is informative, and one odd entry must not make an environment
    unservable.
    """
    for key, value in metadata.items():
        if key == "autoreset_mode" or type(key) is not str or key.startswith("gymrpc."):
            continue
        entry = target.entries.add(key=key)
        try:
            fill_value(entry.value, value, field=f"metadata.{key}")
        except GymrpcError:
            del target.entries[-1]
            logger.debug("metadata key %r cannot be sent; left out", key)


def episode_step_limit(env: VectorEnv[Any, Any, Any]) -> int:
    """The most ``step`` calls an episode of ``env`` can take before truncation, 0 if none.

    A native vector environment says so with an ``episode_step_limit`` attribute (the
    turbofan, whose own ``max_episode_steps`` counts sub-steps) or, as Gymnasium's
    CartPole does, a ``max_episode_steps`` attribute counted in steps; under
    SyncVectorEnv the sub-environment's ``TimeLimit`` and its own
    ``episode_step_limit`` count, the smaller winning.
    """
    limits: list[int] = []
    if isinstance(env, SyncVectorEnv):
        single = env.envs[0]
        wrapper: Any = single
        while wrapper is not None:
            if isinstance(wrapper, TimeLimit):
                limits.append(int(wrapper._max_episode_steps))  # TimeLimit has no public getter
            wrapper = getattr(wrapper, "env", None)
        own = getattr(single.unwrapped, "episode_step_limit", None)
    else:
        own = getattr(env, "episode_step_limit", None)
        if own is None:
            own = getattr(env, "max_episode_steps", None)
    if isinstance(own, int) and not isinstance(own, bool):
        limits.append(own)
    positive = [limit for limit in limits if limit > 0]
    return min(positive) if positive else 0


def _fill_option(target: pb.OptionSpec, option: OptionInfo) -> None:
    target.name = option.name
    target.type = _OPTION_TYPES[option.kind]
    target.description = option.description
    target.privileged = option.privileged
    target.unit = option.unit
    if option.default is not NO_DEFAULT:
        try:
            fill_value(target.default_value, option.default, field=option.name)
        except GymrpcError:
            target.ClearField("default_value")


def _fill_documentation(info: pb.EnvironmentInfo, entry: EnvEntry) -> None:
    """Documentation, observation labels and info keys from the entry's metadata."""
    metadata = entry.metadata
    text = metadata.get("gymrpc.description")
    if not isinstance(text, str):
        text = inspect.cleandoc(entry.docstring) if entry.docstring else ""
    info.documentation = text
    for axis in metadata.get("gymrpc.observation_labels", ()):
        target = info.observation_labels.add(path=str(axis.get("path", "")), axis=axis["axis"])
        for label in axis["labels"]:
            target.labels.add(
                name=str(label["name"]),
                unit=str(label.get("unit", "")),
                description=str(label.get("description", "")),
            )
    for key in metadata.get("gymrpc.info_keys", ()):
        info.info_keys.add(
            key=str(key["key"]),
            description=str(key.get("description", "")),
            privileged=bool(key.get("privileged", False)),
        )


def session_message(session: Session, target: pb.Session) -> None:
    """Describe a session.

    The spaces carry the state of their random generators (``Space.generator``), so
    that the client's batched spaces sample what ``SyncVectorEnv``'s would, except in
    evaluation sessions: an environment may draw its secret randomness from its own
    spaces. ``np_random_seed`` is left to GetSession (reading it may seed the
    environments; see :func:`fill_np_random_seed`).

    Args:
        session: The session.
        target: The (empty) message to fill.
    """
    env = session.env
    target.session_id = session.session_id
    target.env_id = session.env_id
    target.num_envs = session.num_envs
    target.autoreset_mode = autoreset_to_proto(session.autoreset_mode)
    target.vectorization_mode = vectorization_to_proto(session.vectorization.value)
    for field, space in (
        ("single_observation_space", env.single_observation_space),
        ("single_action_space", env.single_action_space),
    ):
        try:
            getattr(target, field).CopyFrom(
                encode_space(space, field=field, generators=not session.evaluation)
            )
        except UnsupportedSpaceError as error:
            # No request field is at fault: the environment is. Say which space.
            raise UnsupportedSpaceError(
                f"{session.env_id} cannot be served: {error.message}",
                metadata={"space": error.field or field},
            ) from error
    fill_metadata(target.metadata, env.metadata)
    target.render_mode = env.render_mode or ""
    for name, value in session.options.items():
        try:
            fill_value(target.env_options[name], value, field=f"env_options.{name}")
        except GymrpcError:
            del target.env_options[name]
    target.last_sequence = session.sequence.last_sequence
    target.needs_reset = session.needs_reset
    target.max_episode_steps = episode_step_limit(env)
    target.evaluation = session.evaluation


def fill_np_random_seed(session: Session, target: pb.Session) -> None:
    """Add the batch's ``np_random_seed`` to a session's description (GetSession).

    As ``SyncVectorEnv.np_random_seed`` does, reading it seeds the sub-environments
    that have no random generator yet. Never for an evaluation session, whose seeds
    are secret; a seed the protocol cannot carry is left out.

    Args:
        session: The session, held by the caller (:meth:`Session.use`).
        target: Its description, filled by :func:`session_message`.
    """
    if session.evaluation:
        return
    try:
        fill_value(target.np_random_seed, session.np_random_seed(), field="np_random_seed")
    except GymrpcError:
        target.ClearField("np_random_seed")
        logger.debug("session %s: np_random_seed cannot be sent", session.session_id[:8])


@dataclass(frozen=True)
class CatalogueReport:
    """What a server serves, and what it does not and why (for its start-up log).

    Attributes:
        served: Ids of the environments ListEnvironments lists.
        unavailable: Id to reason of the registered environments it does not serve.
    """

    served: tuple[str, ...]
    unavailable: dict[str, str]


class EnvironmentDescriber:
    """Builds and caches the catalogue entries of ListEnvironments.

    Describing an environment means building one copy with default options (to read
    its spaces and metadata), so a success is cached. A failure is not: the next
    request tries again (a dependency may have been installed, a flaky constructor
    may succeed), and the cause is logged: at WARNING the first time for an unexpected
    failure, at DEBUG for a missing dependency (which :meth:`report` returns, for the
    server's start-up log).

    Args:
        catalogue: The servable environments.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._cache: dict[str, pb.EnvironmentInfo] = {}
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def describe_all(self) -> list[pb.EnvironmentInfo]:
        """Return the entries of every servable environment, sorted by id."""
        return [self._cache[env_id] for env_id in self.report().served]

    def report(self) -> CatalogueReport:
        """Describe every environment the server may serve; say which fail and why."""
        with self._lock:
            unavailable: dict[str, str] = {}
            for env_id in self._catalogue.env_ids():
                if env_id in self._cache:
                    continue
                info, reason = self._describe(env_id)
                if info is not None:
                    self._cache[env_id] = info
                    self._failures.pop(env_id, None)
                else:
                    unavailable[env_id] = reason
            served = tuple(sorted(self._cache))
        return CatalogueReport(served, unavailable)

    def _log_failure(self, env_id: str, reason: str, *, expected: bool) -> None:
        # A missing dependency is expected (the server's start-up log sums them up); any
        # other failure is news, worth a warning the first time it is seen.
        first = self._failures.get(env_id) != reason
        self._failures[env_id] = reason
        level = logging.WARNING if first and not expected else logging.DEBUG
        logger.log(level, "%s is not served: %s", env_id, reason)

    def _describe(self, env_id: str) -> tuple[pb.EnvironmentInfo | None, str]:
        try:
            entry = self._catalogue.entry(env_id)
            with warnings.catch_warnings():
                # Deprecation notices of old versions (CartPole-v0...) are not the
                # server's concern when it merely lists what exists.
                warnings.simplefilter("ignore")
                plan = self._catalogue.plan(
                    entry, autoreset_mode=AutoresetMode.NEXT_STEP, vectorization=None, options={}
                )
                built = self._catalogue.build(
                    entry, plan, num_envs=1, autoreset_mode=AutoresetMode.NEXT_STEP
                )
        except EnvNotFoundError as error:  # registered, but its code or a dependency is missing
            cause = error.__cause__
            reason = str(cause) if cause is not None else error.message.removeprefix("env_id: ")
            self._log_failure(env_id, reason, expected=True)
            return None, reason
        except Exception as error:  # an environment that cannot be built is not servable
            reason = f"building it with default options failed: {type(error).__name__}: {error}"
            self._log_failure(env_id, reason, expected=False)
            return None, reason
        env = built.env
        try:
            info = pb.EnvironmentInfo(
                env_id=env_id,
                description=entry.description,
                native_vector=entry.native_options is not None,
                max_episode_steps=episode_step_limit(env),
            )
            info.single_observation_space.CopyFrom(
                encode_space(env.single_observation_space, field="single_observation_space")
            )
            info.single_action_space.CopyFrom(
                encode_space(env.single_action_space, field="single_action_space")
            )
            fill_metadata(info.metadata, env.metadata)
        except GymrpcError as error:
            reason = f"the protocol cannot describe it: {error}"
            self._log_failure(env_id, reason, expected=True)
            return None, reason
        finally:
            env.close()
        for option in entry.options.values():
            _fill_option(info.options.add(), option)
        info.autoreset_modes.extend(
            sorted(autoreset_to_proto(mode) for mode in entry.autoreset_modes)
        )
        _fill_documentation(info, entry)
        return info, ""
