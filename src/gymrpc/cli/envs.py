"""``gymrpc envs``: the environments a server serves, as a table, one in detail, or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gymnasium import spaces

from gymrpc.catalogue import NO_DEFAULT, EnvironmentSpec, list_environments
from gymrpc.cli.options import add_connection_options
from gymrpc.errors import EnvNotFoundError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``envs`` sub-command."""
    parser = subparsers.add_parser(
        "envs",
        help="list the environments a server serves",
        description=(
            "List the environments a gymrpc server serves (ListEnvironments): a table, "
            "or one environment in detail (documentation, observation columns, info "
            "keys, options), or everything as JSON."
        ),
    )
    parser.add_argument("env_id", nargs="?", help="show this environment in detail")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_connection_options(parser)
    parser.set_defaults(handler=run)


def _jsonable(value: Any) -> Any:
    """A JSON-friendly rendering of an option default or metadata value."""
    if value is NO_DEFAULT:
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    tolist = getattr(value, "tolist", None)
    return _jsonable(tolist()) if callable(tolist) else str(value)


def as_json(spec: EnvironmentSpec) -> dict[str, Any]:
    """The JSON object ``gymrpc envs --json`` prints for one environment."""
    return {
        "env_id": spec.env_id,
        "description": spec.description,
        "observation_space": str(spec.observation_space),
        "action_space": str(spec.action_space),
        "max_episode_steps": spec.max_episode_steps,
        "native_vector": spec.native_vector,
        "autoreset_modes": [mode.value for mode in spec.autoreset_modes],
        "options": [
            {
                "name": option.name,
                "type": option.type,
                "default": _jsonable(option.default),
                "description": option.description,
                "privileged": option.privileged,
                "unit": option.unit,
            }
            for option in spec.options
        ],
        "observation_labels": [
            {
                "path": axis.path,
                "axis": axis.axis,
                "labels": [
                    {"name": label.name, "unit": label.unit, "description": label.description}
                    for label in axis.labels
                ],
            }
            for axis in spec.observation_labels
        ],
        "info_keys": [
            {"key": key.key, "description": key.description, "privileged": key.privileged}
            for key in spec.info_keys
        ],
        "metadata": _jsonable(spec.metadata),
        "documentation": spec.documentation,
    }


def brief(space: spaces.Space[Any]) -> str:
    """A one-line description of a space (a Box's bounds would fill the screen).

    >>> brief(spaces.Box(0.0, 1.0, (10, 9)))
    'Box(10, 9) float32'
    >>> brief(spaces.Dict({"x": spaces.Discrete(3)}))
    'Dict(x: Discrete(3))'
    """
    if isinstance(space, spaces.Box):
        return f"Box{space.shape} {space.dtype}".replace(",)", ")")
    if isinstance(space, spaces.MultiDiscrete):
        return f"MultiDiscrete{space.shape}".replace(",)", ")")
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{key}: {brief(sub)}" for key, sub in space.items()) + ")"
    if isinstance(space, spaces.Tuple):
        return "Tuple(" + ", ".join(brief(sub) for sub in space) + ")"
    if isinstance(space, spaces.Discrete | spaces.MultiBinary | spaces.Text):
        return str(space)
    return type(space).__name__


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _summary(specs: list[EnvironmentSpec]) -> str:
    rows = [["ENV_ID", "OBSERVATION", "ACTION", "MAX STEPS", "DESCRIPTION"]]
    for spec in specs:
        rows.append(
            [
                spec.env_id,
                brief(spec.observation_space),
                brief(spec.action_space),
                str(spec.max_episode_steps or "-"),
                spec.description[:60],
            ]
        )
    return _table(rows)


def _detail(spec: EnvironmentSpec) -> str:
    lines = [spec.env_id, "=" * len(spec.env_id), ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [
        f"observation space  {spec.observation_space}",
        f"action space       {spec.action_space}",
        f"max episode steps  {spec.max_episode_steps or 'unlimited'}",
        f"autoreset modes    {', '.join(mode.value for mode in spec.autoreset_modes)}",
        f"native vector      {'yes' if spec.native_vector else 'no (served by SyncVectorEnv)'}",
    ]
    for axis in spec.observation_labels:
        where = f"{axis.path or 'observation'}, axis {axis.axis}"
        lines += ["", f"Observation elements ({where}):"]
        rows = [["INDEX", "NAME", "UNIT", "DESCRIPTION"]]
        rows += [
            [str(index), label.name, label.unit or "-", label.description]
            for index, label in enumerate(axis.labels)
        ]
        lines.append(_table(rows))
    if spec.info_keys:
        lines += ["", "Info keys:"]
        rows = [["KEY", "DESCRIPTION"]]
        rows += [
            [key.key + (" (admins)" if key.privileged else ""), key.description]
            for key in spec.info_keys
        ]
        lines.append(_table(rows))
    if spec.options:
        lines += ["", "Options (keyword arguments of gymrpc.make_vec):"]
        rows = [["NAME", "TYPE", "DEFAULT", "DESCRIPTION"]]
        for option in spec.options:
            default = "(required)" if option.default is NO_DEFAULT else repr(option.default)
            text = option.description + (f" [{option.unit}]" if option.unit else "")
            text += " (admins only)" if option.privileged else ""
            rows.append([option.name, option.type, default, text])
        lines.append(_table(rows))
    if spec.documentation:
        lines += ["", spec.documentation]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the catalogue of the server at ``args.target``."""
    specs = list_environments(
        args.target, token=args.token, root_certificates=args.tls_ca, timeout=args.timeout
    )
    if args.env_id is not None:
        chosen = [spec for spec in specs if spec.env_id == args.env_id]
        if not chosen:
            served = ", ".join(spec.env_id for spec in specs) or "none"
            raise EnvNotFoundError(
                f"env_id: {args.env_id!r} is not served by this server; expected one of: {served}",
                field="env_id",
            )
        specs = chosen
    if args.json:
        documents = [as_json(spec) for spec in specs]
        json.dump(documents[0] if args.env_id else documents, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.env_id is not None:
        print(_detail(specs[0]))
    else:
        print(_summary(specs))
    return 0
