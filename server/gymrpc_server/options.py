"""Environment options: discovered from constructor signatures (validated in :mod:`.validation`).

An environment's options are the keyword arguments of its entry point (the class or
function registered with Gymnasium), with defaults from its registration. Their types
come from the annotations (or, without one, from the default's type), and their
descriptions from the Google-style ``Args:`` section of the docstring.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_DEFAULT", "OptionInfo", "OptionKind", "discover_options", "takes_any_keyword"]


class OptionKind(enum.Enum):
    """The type an option's value must have."""

    ANY = "any"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "str"
    DICT = "dict"


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: Marks an option without a default value (a required constructor argument).
NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class OptionInfo:
    """One option of an environment.

    Attributes:
        name: Keyword argument name.
        kind: Required type of the value.
        default: Default value, or :data:`NO_DEFAULT`.
        nullable: Whether ``None`` is accepted.
        description: Text from the docstring, may be empty.
        privileged: Whether only admins may set it to anything but its default.
        unit: What the value counts, when the environment says so (its metadata
            ``gymrpc.option_units``), e.g. sub-steps for the turbofan's
            ``max_episode_steps``.
    """

    name: str
    kind: OptionKind
    default: Any = NO_DEFAULT
    nullable: bool = False
    description: str = ""
    privileged: bool = False
    unit: str = ""


# Parameters that the vectorizer, not the user, sets.
_RESERVED = frozenset({"self", "num_envs", "autoreset_mode"})
_SIMPLE_KINDS = {
    "bool": OptionKind.BOOL,
    "int": OptionKind.INT,
    "float": OptionKind.FLOAT,
    "str": OptionKind.STRING,
}
_ARG_LINE = re.compile(r"^\s{4,}(\w+)(?:\s*\([^)]*\))?:\s+(.+)$")


def discover_options(
    creator: Callable[..., Any],
    defaults: Mapping[str, Any],
    privileged: frozenset[str],
) -> dict[str, OptionInfo]:
    """List the options a registered entry point accepts.

    Args:
        creator: The environment class or factory function.
        defaults: Keyword arguments from the registration (``EnvSpec.kwargs``), which
            override the signature's defaults.
        privileged: Names of options only admins may change.

    Returns:
        Options by name, in signature order. Parameters without a usable name
        (``*args``, ``**kwargs``) and the vectorizer's own are left out.
    """
    target = creator.__init__ if inspect.isclass(creator) else creator
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    descriptions = _describe_args(inspect.getdoc(creator) or "") | _describe_args(
        inspect.getdoc(target) or ""
    )
    options: dict[str, OptionInfo] = {}
    for name, parameter in signature.parameters.items():
        if name in _RESERVED or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            continue
        default = defaults.get(name, parameter.default)
        if default is inspect.Parameter.empty:
            default = NO_DEFAULT
        kind, nullable = _kind_of(parameter.annotation, default)
        options[name] = OptionInfo(
            name=name,
            kind=kind,
            default=default,
            nullable=nullable or default is None,
            description=descriptions.get(name, ""),
            privileged=name in privileged,
        )
    return options


def takes_any_keyword(creator: Callable[..., Any]) -> bool:
    """Whether the entry point accepts keyword arguments it does not name (``**kwargs``).

    Such an entry point passes them on, as MuJoCo's environments pass ``render_mode``
    to ``MujocoEnv``: options it does not name may still be its own.

    Example:
        >>> def make(size: int = 3, **kwargs: object) -> None: ...
        >>> takes_any_keyword(make), takes_any_keyword(lambda size=3: None)
        (True, False)
    """
    target = creator.__init__ if inspect.isclass(creator) else creator
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)


def _describe_args(doc: str) -> dict[str, str]:
    found: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args and stripped and not line.startswith(" "):
            in_args = False
        match = _ARG_LINE.match(line) if in_args else None
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def _kind_of(annotation: Any, default: Any) -> tuple[OptionKind, bool]:
    """Map an annotation (often a string, under postponed evaluation) to a kind."""
    if annotation is inspect.Parameter.empty:
        return _kind_of_value(default), False
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = re.sub(r"\s+", "", text.replace("typing.", "").replace("collections.abc.", ""))
    optional = re.fullmatch(r"Optional\[(.+)\]", text)
    parts = [optional.group(1), "None"] if optional else text.split("|")
    nullable = "None" in parts
    parts = [part for part in parts if part != "None"]
    if len(parts) != 1:
        return OptionKind.ANY, nullable
    (part,) = parts
    if part in _SIMPLE_KINDS:
        return _SIMPLE_KINDS[part], nullable
    if re.match(r"(dict|Dict|Mapping)(\[|$)", part):
        return OptionKind.DICT, nullable
    return OptionKind.ANY, nullable


def _kind_of_value(value: Any) -> OptionKind:
    # bool before int: True is an int in Python.
    for python_type, kind in (
        (bool, OptionKind.BOOL),
        (int, OptionKind.INT),
        (float, OptionKind.FLOAT),
        (str, OptionKind.STRING),
        (dict, OptionKind.DICT),
    ):
        if type(value) is python_type:
            return kind
    return OptionKind.ANY
