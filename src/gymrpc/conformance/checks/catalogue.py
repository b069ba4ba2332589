"""The catalogue: ListEnvironments and the conformance environment's entry."""

from __future__ import annotations

from typing import Final

import numpy as np

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import DEFAULT_EPISODE_LENGTH, MAX_EPISODE_LENGTH, VALUE_HIGH
from gymrpc.conformance.probe import Probe
from gymrpc.conformance.spaces import rebuild_space
from gymrpc.conformance.wire import read_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import space_pb2, tensor_pb2, value_pb2

__all__ = ["conformance_env", "environments", "expect_conformance_spaces"]

_RULE: Final = "env_service.proto, ListEnvironmentsResponse and EnvironmentInfo"
_ENV_RULE: Final = "docs/conformance.md, the conformance environment"
# The Value kinds an option's default may have, by OptionType (null: no value).
_DEFAULT_KINDS: Final = {
    pb.OPTION_TYPE_BOOL: {"bool_value"},
    pb.OPTION_TYPE_INT: {"int_value"},
    pb.OPTION_TYPE_FLOAT: {"float_value", "int_value"},
    pb.OPTION_TYPE_STRING: {"string_value"},
    pb.OPTION_TYPE_DICT: {"dict_value"},
}
_MODES: Final = frozenset(
    {pb.AUTORESET_MODE_NEXT_STEP, pb.AUTORESET_MODE_SAME_STEP, pb.AUTORESET_MODE_DISABLED}
)


def _list(probe: Probe) -> list[pb.EnvironmentInfo]:
    response: pb.ListEnvironmentsResponse = probe.call(
        "ListEnvironments", pb.ListEnvironmentsRequest()
    )
    return list(response.environments)


@check(
    "catalogue.environments",
    rule=_RULE,
    title="ListEnvironments: sorted unique ids, every space valid and rebuildable, options typed",
)
def environments(probe: Probe) -> None:
    """Check every entry of the catalogue, whatever the environment."""
    entries = _list(probe)
    ids = [entry.env_id for entry in entries]
    if ids != sorted(ids) or len(set(ids)) != len(ids) or "" in ids:
        raise Violation(
            "ListEnvironments",
            received=f"env_ids {ids}",
            expected="distinct non-empty ids sorted by env_id",
            rule=_RULE,
        )
    for entry in entries:
        where = f"ListEnvironments: {entry.env_id}"
        rebuild_space(entry.single_observation_space, f"{where}.single_observation_space")
        rebuild_space(entry.single_action_space, f"{where}.single_action_space")
        names = [option.name for option in entry.options]
        if len(set(names)) != len(names) or "" in names:
            raise Violation(
                f"{where}.options", received=str(names), expected="distinct names", rule=_RULE
            )
        for option in entry.options:
            kind = option.default_value.WhichOneof("kind")
            allowed = _DEFAULT_KINDS.get(option.type)
            if kind not in (None, "null_value") and allowed is not None and kind not in allowed:
                raise Violation(
                    f"{where}.options.{option.name}.default_value",
                    received=f"a {kind} for {pb.OptionType.Name(option.type)}",
                    expected=f"one of {sorted(allowed)}",
                    rule="env_service.proto, OptionType",
                )
        modes = list(entry.autoreset_modes)
        if not modes or pb.AUTORESET_MODE_UNSPECIFIED in modes:
            raise Violation(
                f"{where}.autoreset_modes",
                received=str([pb.AutoresetMode.Name(m) for m in modes]),
                expected="the modes the environment runs in, never UNSPECIFIED",
                rule=_RULE,
            )


def expect_conformance_spaces(
    observation: space_pb2.Space, action: space_pb2.Space, where: str, rule: str = _ENV_RULE
) -> None:
    """Check the conformance environment's documented spaces.

    Raises:
        Violation: If they differ from ``Box([0, 0], [100, 2**20 - 1], (2,), int64)``
            and ``Discrete(3)`` (int64).
    """
    rebuild_space(observation, f"{where}.single_observation_space")
    box = observation.box
    bounds_ok = False
    if observation.WhichOneof("kind") == "box" and box.dtype == tensor_pb2.DATA_TYPE_INT64:
        low = read_tensor(box.low, f"{where}.single_observation_space.box.low")
        high = read_tensor(box.high, f"{where}.single_observation_space.box.high")
        bounds_ok = (
            list(box.shape) == [2]
            and np.array_equal(low, [0, 0])
            and np.array_equal(high, [MAX_EPISODE_LENGTH, VALUE_HIGH])
        )
    if not bounds_ok:
        raise Violation(
            f"{where}.single_observation_space",
            received=str(observation).replace("\n", " "),
            expected=f"Box(low=[0, 0], high=[100, {VALUE_HIGH}], shape=(2,), int64)",
            rule=rule,
        )
    rebuild_space(action, f"{where}.single_action_space")
    discrete = action.discrete
    if (
        action.WhichOneof("kind") != "discrete"
        or (discrete.n, discrete.start) != (3, 0)
        or (discrete.dtype not in (tensor_pb2.DATA_TYPE_UNSPECIFIED, tensor_pb2.DATA_TYPE_INT64))
    ):
        raise Violation(
            f"{where}.single_action_space",
            received=str(action).replace("\n", " "),
            expected="Discrete(3) of int64",
            rule=rule,
        )


def _option(
    entry: pb.EnvironmentInfo,
    name: str,
    kind: pb.OptionType.ValueType,
    default: value_pb2.Value,
    privileged: bool,
) -> None:
    found = [option for option in entry.options if option.name == name]
    want = f"{pb.OptionType.Name(kind)}, default {str(default).strip()}, privileged {privileged}"
    if not found:
        raise Violation(
            f"{entry.env_id}.options", received=f"no option {name!r}", expected=want, rule=_ENV_RULE
        )
    option = found[0]
    if option.type != kind or option.default_value != default or option.privileged != privileged:
        raise Violation(
            f"{entry.env_id}.options.{name}",
            received=f"{pb.OptionType.Name(option.type)}, default "
            f"{str(option.default_value).strip()}, privileged {option.privileged}",
            expected=want,
            rule=_ENV_RULE,
        )


@check(
    "catalogue.conformance_env",
    rule=_ENV_RULE,
    title="the conformance environment is listed with its documented spaces, options and modes",
)
def conformance_env(probe: Probe) -> None:
    """Find the conformance environment and compare its entry with its documentation."""
    env_id = probe.target.env_id
    found = [entry for entry in _list(probe) if entry.env_id == env_id]
    if not found:
        raise Violation(
            "ListEnvironments",
            received=f"no {env_id}",
            expected=f"{env_id}, which the kit's checks drive",
            rule=_ENV_RULE,
        )
    entry = found[0]
    expect_conformance_spaces(entry.single_observation_space, entry.single_action_space, env_id)
    _option(
        entry,
        "episode_length",
        pb.OPTION_TYPE_INT,
        value_pb2.Value(int_value=DEFAULT_EPISODE_LENGTH),
        privileged=False,
    )
    _option(
        entry,
        "expose_hidden_state",
        pb.OPTION_TYPE_BOOL,
        value_pb2.Value(bool_value=False),
        privileged=True,
    )
    modes = frozenset(entry.autoreset_modes)
    if modes != _MODES or entry.max_episode_steps != 0:
        raise Violation(
            env_id,
            received=f"autoreset_modes {sorted(pb.AutoresetMode.Name(m) for m in modes)}, "
            f"max_episode_steps {entry.max_episode_steps}",
            expected="all three autoreset modes and max_episode_steps 0 (episodes "
            "terminate, they are never truncated)",
            rule=_ENV_RULE,
        )
