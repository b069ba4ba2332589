"""Field paths: how errors name the request field at fault.

The grammar is the protocol's ("Field paths" in ``proto/gymrpc/v1/env_service.proto``):
``.name`` for a message field or a map/Dict key, ``[i]`` for an item, and a quoted
JSON string in brackets for a key that is not made of letters, digits and ``_``.

>>> join_key("env_options", "step_size")
'env_options.step_size'
>>> join_key("env_options", "my option")
'env_options["my option"]'
>>> join_index(join_key("step", "actions"), 3)
'step.actions[3]'
>>> join_key("", "actions")
'actions'
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = ["join_index", "join_key"]

_PLAIN: Final = re.compile(r"[A-Za-z0-9_]+")


def join_key(base: str, key: str) -> str:
    """The path of field, map entry or Dict entry ``key`` under ``base``.

    Args:
        base: The parent's path; empty for a root field.
        key: The field name or key.

    Returns:
        ``base.key``, or ``base["key"]`` when the key needs quoting.
    """
    if _PLAIN.fullmatch(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


def join_index(base: str, index: int) -> str:
    """The path of item ``index`` of the sequence at ``base``."""
    return f"{base}[{index}]"
