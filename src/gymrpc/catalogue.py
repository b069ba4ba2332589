"""What a server serves: :func:`list_environments`, the client side of ``ListEnvironments``.

Example:
    >>> import gymrpc
    >>> for spec in gymrpc.list_environments(target="127.0.0.1:50051"):  # doctest: +SKIP
    ...     print(spec.env_id, spec.observation_space, spec.max_episode_steps)
    gymrpc/Turbofan-v0 Box(..., (10, 9), float32) 100
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final

from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from gymrpc.connection import Connection, ConnectionSettings
from gymrpc.modes import autoreset_from_proto
from gymrpc.spaces import decode_space
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_map, decode_value

__all__ = [
    "NO_DEFAULT",
    "AxisLabels",
    "ElementLabel",
    "EnvironmentSpec",
    "InfoKey",
    "OptionSpec",
    "list_environments",
]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: The ``default`` of an option that has none (a required constructor argument).
NO_DEFAULT: Final[Any] = _NoDefault()

_OPTION_TYPES: Final = {
    pb.OPTION_TYPE_UNSPECIFIED: "any",
    pb.OPTION_TYPE_BOOL: "bool",
    pb.OPTION_TYPE_INT: "int",
    pb.OPTION_TYPE_FLOAT: "float",
    pb.OPTION_TYPE_STRING: "str",
    pb.OPTION_TYPE_DICT: "dict",
}


@dataclass(frozen=True)
class OptionSpec:
    """One option of an environment (a keyword argument of ``make_vec``).

    Attributes:
        name: The option's name.
        type: ``"bool"``, ``"int"``, ``"float"``, ``"str"``, ``"dict"`` or ``"any"``.
        default: Its default value, or :data:`NO_DEFAULT`.
        description: What it does.
        privileged: Only admins may set it to anything but its default.
        unit: What the value counts, when that needs saying.
    """

    name: str
    type: str
    default: Any
    description: str
    privileged: bool
    unit: str


@dataclass(frozen=True)
class ElementLabel:
    """The name, unit and meaning of one element of an observation (a sensor column)."""

    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class AxisLabels:
    """Labels of the elements along one axis of a Box inside the observation space.

    Attributes:
        path: Where the Box is in the observation space (empty for the space itself).
        axis: The labelled axis of the unbatched Box (negative counts from the end).
        labels: One label per element, in order.
    """

    path: str
    axis: int
    labels: tuple[ElementLabel, ...]


@dataclass(frozen=True)
class InfoKey:
    """One documented key of an environment's info dicts."""

    key: str
    description: str
    privileged: bool


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment a server serves, as ``ListEnvironments`` describes it.

    Attributes:
        env_id: Its id, to pass to ``gymrpc.make_vec``.
        description: One line.
        documentation: Longer documentation (Markdown conventions), may be empty.
        observation_space: One sub-environment's observation space (default options).
        action_space: One sub-environment's action space (default options).
        options: The options ``make_vec`` accepts as keyword arguments.
        native_vector: It has a native vector implementation.
        autoreset_modes: The autoreset modes it can run in.
        metadata: Its metadata (render modes, ...).
        max_episode_steps: The most steps an episode takes before truncation with
            default options, or ``None`` when unlimited.
        observation_labels: Names and units of the observation's elements.
        info_keys: The documented keys of its info dicts.
    """

    env_id: str
    description: str
    documentation: str
    observation_space: spaces.Space[Any]
    action_space: spaces.Space[Any]
    options: tuple[OptionSpec, ...]
    native_vector: bool
    autoreset_modes: tuple[AutoresetMode, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    observation_labels: tuple[AxisLabels, ...] = ()
    info_keys: tuple[InfoKey, ...] = ()


def _option(message: pb.OptionSpec) -> OptionSpec:
    default = NO_DEFAULT
    if message.HasField("default_value"):
        default = decode_value(message.default_value, field=f"options.{message.name}.default")
    return OptionSpec(
        name=message.name,
        type=_OPTION_TYPES.get(message.type, "any"),
        default=default,
        description=message.description,
        privileged=message.privileged,
        unit=message.unit,
    )


def environment_spec(message: pb.EnvironmentInfo) -> EnvironmentSpec:
    """Turn a catalogue entry of the wire into an :class:`EnvironmentSpec`."""
    return EnvironmentSpec(
        env_id=message.env_id,
        description=message.description,
        documentation=message.documentation,
        observation_space=decode_space(message.single_observation_space),
        action_space=decode_space(message.single_action_space),
        options=tuple(_option(option) for option in message.options),
        native_vector=message.native_vector,
        autoreset_modes=tuple(autoreset_from_proto(mode) for mode in message.autoreset_modes),
        metadata=decode_map(message.metadata, field="metadata"),
        max_episode_steps=message.max_episode_steps or None,
        observation_labels=tuple(
            AxisLabels(
                path=axis.path,
                axis=axis.axis,
                labels=tuple(
                    ElementLabel(label.name, label.unit, label.description) for label in axis.labels
                ),
            )
            for axis in message.observation_labels
        ),
        info_keys=tuple(
            InfoKey(key.key, key.description, key.privileged) for key in message.info_keys
        ),
    )


def list_environments(
    target: str | None = None,
    *,
    token: str | None = None,
    root_certificates: str | os.PathLike[str] | None = None,
    tls: bool | None = None,
    timeout: float = 30.0,
) -> list[EnvironmentSpec]:
    """List the environments a server serves, with their spaces, options and documentation.

    Args:
        target: Server ``host:port``; ``GYMRPC_TARGET``, then ``127.0.0.1:50051``.
        token: Bearer token; ``GYMRPC_TOKEN`` by default.
        root_certificates: CA file for TLS (``GYMRPC_TLS_CA``).
        tls: Use TLS with the system's CAs (``GYMRPC_TLS``).
        timeout: Deadline in seconds of each call.

    Returns:
        The environments, sorted by id.

    Raises:
        UnavailableError: If the server cannot be reached.
        ProtocolVersionError: If it speaks another major protocol version.
        GymrpcError: Any other refusal, with the server's message.
    """
    connection = Connection(
        ConnectionSettings.resolve(target, token, root_certificates, tls, timeout)
    )
    try:
        connection.handshake()
        response = connection.call(connection.stub.ListEnvironments, pb.ListEnvironmentsRequest())
    finally:
        connection.close()
    return [environment_spec(info) for info in response.environments]
