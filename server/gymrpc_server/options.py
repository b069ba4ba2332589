"""Environment options: discovered from constructor signatures, validated by name and type.

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

from gymrpc.errors import InvalidOptionError

__all__ = ["NO_DEFAULT", "OptionInfo", "OptionKind", "check_options", "discover_options"]


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
    """

    name: str
    kind: OptionKind
    default: Any = NO_DEFAULT
    nullable: bool = False
    description: str = ""
    privileged: bool = False


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


_EXPECTED = {
    OptionKind.BOOL: "a bool",
    OptionKind.INT: "an int",
    OptionKind.FLOAT: "a float",
    OptionKind.STRING: "a string",
    OptionKind.DICT: "a dict",
}


def _check_value(option: OptionInfo, value: Any, field: str) -> Any:
    if value is None:
        if option.nullable:
            return None
        raise InvalidOptionError(
            f"{field}: got None; expected {_EXPECTED.get(option.kind, 'a value')}",
            field=field,
        )
    kind = option.kind
    if kind is OptionKind.ANY:
        return value
    if kind is OptionKind.FLOAT and type(value) is int:
        return float(value)
    expected_type = {
        OptionKind.BOOL: bool,
        OptionKind.INT: int,
        OptionKind.FLOAT: float,
        OptionKind.STRING: str,
        OptionKind.DICT: dict,
    }[kind]
    if type(value) is not expected_type:
        raise InvalidOptionError(
            f"{field}: got {type(value).__name__} {value!r}; expected {_EXPECTED[kind]}",
            field=field,
        )
    return value


def check_options(
    given: Mapping[str, Any],
    accepted: Mapping[str, OptionInfo],
    *,
    env_id: str,
    field: str = "env_options",
) -> dict[str, Any]:
    """Validate options by name and type.

    Args:
        given: Decoded option values from the request.
        accepted: What the environment accepts.
        env_id: The environment, for error messages.
        field: Path of the options in the request, for error messages.

    Returns:
        The options with values converted where the protocol allows it (an int given
        for a float option becomes a float).

    Raises:
        InvalidOptionError: For an unknown name or a value of the wrong type.
    """
    checked: dict[str, Any] = {}
    for name, value in given.items():
        option = accepted.get(name)
        if option is None:
            known = ", ".join(sorted(accepted)) or "none"
            raise InvalidOptionError(
                f"{field}.{name}: {env_id} has no option {name!r}; its options are: {known}",
                field=f"{field}.{name}",
            )
        checked[name] = _check_value(option, value, f"{field}.{name}")
    return checked
