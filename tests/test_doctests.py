"""The examples in the docstrings of gymrpc and gymrpc_server run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gymrpc
import gymrpc_server

# Generated code has no examples; the migrations' env.py runs only under alembic.
SKIPPED = ("gymrpc.v1", "gymrpc_server.scores.migrations")
# Importing a __main__ module runs the program.


def modules() -> list[str]:
    names = []
    for package in (gymrpc, gymrpc_server):
        prefix = f"{package.__name__}."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            if not info.name.startswith(SKIPPED) and not info.name.endswith(".__main__"):
                names.append(info.name)
    return sorted(names)


def test_the_modules_with_examples_are_found() -> None:
    found = modules()
    assert "gymrpc.turbofan" in found
    assert "gymrpc_server.envs.turbofan.vector_env" in found


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
