"""The generated parts of README.md are what the code generates today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from gymrpc_server.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


def gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_readme_flag_table_is_generated_from_the_parser() -> None:
    tool = gen_docs()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert tool.section(readme, "flags") == tool.flag_table()
    assert tool.regenerate(readme) == readme, "README.md is stale: run `make docs`"


def test_the_flag_table_has_a_row_for_every_flag_of_the_parser() -> None:
    table = gen_docs().flag_table()
    flags = [
        flag
        for action in _parser({})._actions
        for flag in action.option_strings
        if flag not in ("-h", "--help")
    ]
    assert flags, "the parser has no flags?"
    for flag in flags:
        assert f"`{flag}`" in table, flag
    for must in ("--max-tensor-elements", "--max-workers", "--max-concurrent-rpcs"):
        assert f"`{must}`" in table
    assert "`--log-level`" in table
    assert "`--version`" in table
