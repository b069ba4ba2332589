"""Protocol descriptions of environments and sessions (catalogue entries, Session).

These are the server's read-only views translated to protobuf; building them never
changes an environment.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Final

from gymnasium.vector import AutoresetMode

from gymrpc.errors import GymrpcError
from gymrpc.modes import autoreset_to_proto
from gymrpc.spaces import encode_space
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import fill_value
from gymrpc_server.catalogue import Catalogue, Vectorization
from gymrpc_server.options import NO_DEFAULT, OptionInfo, OptionKind
from gymrpc_server.session import Session

__all__ = ["EnvironmentDescriber", "fill_metadata", "session_message", "vectorization_to_proto"]

logger = logging.getLogger(__name__)

_OPTION_TYPES: Final = {
    OptionKind.ANY: pb.OPTION_TYPE_UNSPECIFIED,
    OptionKind.BOOL: pb.OPTION_TYPE_BOOL,
    OptionKind.INT: pb.OPTION_TYPE_INT,
    OptionKind.FLOAT: pb.OPTION_TYPE_FLOAT,
    OptionKind.STRING: pb.OPTION_TYPE_STRING,
    OptionKind.DICT: pb.OPTION_TYPE_DICT,
}
_VECTORIZATION: Final = {
    Vectorization.NATIVE: pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT,
    Vectorization.SYNC: pb.VECTORIZATION_MODE_SYNC,
}


def vectorization_to_proto(vectorization: Vectorization) -> pb.VectorizationMode.ValueType:
    """Return the wire value of a vectorization."""
    return _VECTORIZATION[vectorization]


def fill_metadata(target: Any, metadata: Mapping[str, Any]) -> None:
    """Copy an environment's metadata into a ValueMap, skipping what cannot travel.

    ``autoreset_mode`` is left out (the protocol has its own field for it), and so are
    keys starting with ``gymrpc.`` (promises the environment makes to this server, see
    :data:`gymrpc_server.session.RESET_OPTIONS_CHECKED_FIRST`) and any entry the
    protocol cannot carry: metadata is informative, and one odd entry must not make an
    environment unservable.
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


def _fill_option(target: pb.OptionSpec, option: OptionInfo) -> None:
    target.name = option.name
    target.type = _OPTION_TYPES[option.kind]
    target.description = option.description
    target.privileged = option.privileged
    if option.default is not NO_DEFAULT:
        try:
            fill_value(target.default_value, option.default, field=option.name)
        except GymrpcError:
            target.ClearField("default_value")


def session_message(session: Session, target: pb.Session) -> None:
    """Describe a session.

    Args:
        session: The session.
        target: The (empty) message to fill.
    """
    env = session.env
    target.session_id = session.session_id
    target.env_id = session.env_id
    target.num_envs = session.num_envs
    target.autoreset_mode = autoreset_to_proto(session.autoreset_mode)
    target.vectorization_mode = vectorization_to_proto(session.vectorization)
    target.single_observation_space.CopyFrom(encode_space(env.single_observation_space))
    target.single_action_space.CopyFrom(encode_space(env.single_action_space))
    fill_metadata(target.metadata, env.metadata)
    target.render_mode = env.render_mode or ""
    for name, value in session.options.items():
        try:
            fill_value(target.env_options[name], value, field=f"env_options.{name}")
        except GymrpcError:
            del target.env_options[name]
    target.last_sequence = session.last_sequence
    target.needs_reset = session.needs_reset
    limit = session.options.get("max_episode_steps")
    spec = env.spec
    if not isinstance(limit, int):
        limit = spec.max_episode_steps if spec is not None else None
    # gymnasium.make reads max_episode_steps=-1 as "no TimeLimit": 0 on the wire.
    target.max_episode_steps = max(limit or 0, 0)


class EnvironmentDescriber:
    """Builds and caches the catalogue entries of ListEnvironments.

    Describing an environment means building one copy with default options (to read
    its spaces and metadata), so it is done once per environment, on first request.

    Args:
        catalogue: The servable environments.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._cache: dict[str, pb.EnvironmentInfo | None] = {}
        self._lock = threading.Lock()

    def describe_all(self) -> list[pb.EnvironmentInfo]:
        """Return the entries of every servable environment, sorted by id."""
        with self._lock:
            for env_id in self._catalogue.env_ids():
                if env_id not in self._cache:
                    self._cache[env_id] = self._describe(env_id)
            return [info for _, info in sorted(self._cache.items()) if info is not None]

    def _describe(self, env_id: str) -> pb.EnvironmentInfo | None:
        try:
            entry = self._catalogue.entry(env_id)
            with warnings.catch_warnings():
                # Deprecation notices of old versions (CartPole-v0...) are not the
                # server's concern when it merely lists what exists.
                warnings.simplefilter("ignore")
                built = self._catalogue.build(
                    entry,
                    num_envs=1,
                    autoreset_mode=AutoresetMode.NEXT_STEP,
                    vectorization=None,
                    options={},
                )
        except Exception as error:  # an environment that cannot be built is not servable
            logger.debug("%s is not servable: %s", env_id, error)
            return None
        env = built.env
        try:
            info = pb.EnvironmentInfo(
                env_id=env_id,
                description=entry.description,
                native_vector=entry.native_options is not None,
                max_episode_steps=entry.spec.max_episode_steps or 0,
            )
            info.single_observation_space.CopyFrom(encode_space(env.single_observation_space))
            info.single_action_space.CopyFrom(encode_space(env.single_action_space))
        except GymrpcError as error:
            logger.debug("%s is not servable: %s", env_id, error)
            return None
        finally:
            env.close()
        for option in entry.options.values():
            _fill_option(info.options.add(), option)
        info.autoreset_modes.extend(
            sorted(autoreset_to_proto(mode) for mode in entry.autoreset_modes)
        )
        fill_metadata(info.metadata, env.metadata)
        return info
