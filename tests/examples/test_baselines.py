"""examples/baselines.py: the documented tables, the calibration targets and remote runs."""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gymrpc_testing import TOKENS, Running, Serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"
# Documents that show the table of a full run between the markers.
DOCUMENTS = ("docs/turbofan.md", "examples/README.md", "README.md")
TIMEOUT = 120.0


def load_baselines() -> ModuleType:
    """examples/baselines.py as a module (the examples are scripts, not a package)."""
    name = "gymrpc_example_baselines"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "baselines.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the module runs.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


baselines = load_baselines()


def run(command: list[str]) -> str:
    """Run a command from the repository root; return its output if it exits with 0."""
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def run_documented(command: str) -> str:
    """The output of a documented ``.venv/bin/python ...`` command, run with this Python."""
    words = shlex.split(command, comments=True)
    assert words[0] == ".venv/bin/python", command
    return run([sys.executable, *words[1:]])


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def documented_block(document: str) -> tuple[str, list[str]]:
    """The command and the table between the baselines markers of ``document``."""
    text = (ROOT / document).read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1, document
    assert text.count(END) == 1, document
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", block, flags=re.DOTALL)
    assert len(commands) == 1, block
    assert "\n" not in commands[0], block
    return commands[0], table_lines(block)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documented_table_is_what_the_documented_command_prints(document: str) -> None:
    command, table = documented_block(document)
    assert "examples/baselines.py" in command
    assert "--target" not in command
    assert len(table) == 2 + len(baselines.BASELINES), table
    assert table_lines(run_documented(command)) == table


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Every baseline on the 1,000 engines of the documented run, in-process."""
    evaluated, notes = baselines.run_baselines()
    assert notes == []
    return {result.name: result for result in evaluated}


@pytest.mark.parametrize(
    ("name", "target"),
    [
        (baselines.RANDOM, 48),
        (baselines.NEVER, 1850),
        (baselines.TIME_POLICY, 4700),
        (baselines.HIDDEN_DAMAGE, 4950),
    ],
)
def test_mean_returns_agree_with_the_calibration_targets(
    results: dict[str, Any], name: str, target: float
) -> None:
    # turbofan.md's figures, within three half-widths of the 95 % interval.
    result = results[name]
    assert abs(result.mean_return - target) <= 3 * result.ci95, (result.mean_return, result.ci95)


def test_baselines_meet_the_calibration_tolerances(results: dict[str, Any]) -> None:
    never, every_60 = results[baselines.NEVER], results[baselines.EVERY_60]
    timed = results[baselines.TIME_POLICY]
    assert 1650 <= never.mean_return <= 2050
    assert never.failed.all()
    assert 3300 <= every_60.mean_return <= 4000
    assert every_60.failed.all()
    assert 240 <= np.median(every_60.flights) <= 340
    assert 3600 <= timed.mean_return <= 5000
    assert 6 <= np.mean(timed.repairs) <= 10
    assert np.mean(timed.failed) <= 0.15
    # Each baseline in the table's order earns more than the one before.
    means = [results[name].mean_return for name in baselines.BASELINES]
    assert means == sorted(means), dict(zip(baselines.BASELINES, means, strict=True))


def test_the_policies_follow_their_rules(results: dict[str, Any]) -> None:
    # The time policy repairs in blocks 3, 7, ..., 35 and sells in block 36: an engine
    # that does not fail has 9 repairs and 36 blocks of 10 sub-steps plus the sale.
    timed = results[baselines.TIME_POLICY]
    survivors = ~timed.failed
    assert survivors.any()
    assert (timed.repairs[survivors] == 9).all()
    assert (timed.flights[survivors] == 361).all()
    # Repairs every 6th block from block 6 on: k repairs take at least 60 k flights.
    every_60 = results[baselines.EVERY_60]
    assert (every_60.flights > 60 * every_60.repairs).all()
    assert (every_60.flights <= 60 * (every_60.repairs + 1)).all()
    # The hidden-damage heuristic sells after its 6th repair, never before.
    hidden = results[baselines.HIDDEN_DAMAGE]
    assert (hidden.repairs <= 6).all()
    assert (hidden.repairs[~hidden.failed] == 6).all()


def test_engine_clock_follows_repairs_and_new_episodes() -> None:
    clock = baselines.EngineClock(3)
    infos = [
        ([0, 0, 0], [0, 0, 0]),  # reset
        ([10, 10, 10], [0, 1, 0]),  # engine 1 repaired
        ([20, 20, 1], [0, 1, 0]),  # engine 2 sold
        ([30, 30, 0], [1, 1, 0]),  # engine 0 repaired, engine 2 autoreset
        ([40, 40, 10], [1, 1, 0]),
    ]
    seen = []
    for step, repairs in infos:
        clock.observe({"step": np.array(step), "repairs": np.array(repairs)})
        seen.append((clock.block.tolist(), clock.blocks_since_repair.tolist()))
    assert seen == [
        ([0, 0, 0], [0, 0, 0]),
        ([1, 1, 1], [1, 0, 1]),
        ([2, 2, 2], [2, 1, 2]),
        ([3, 3, 0], [0, 2, 0]),
        ([4, 4, 1], [1, 3, 1]),
    ]


def baselines_command(*flags: str) -> list[str]:
    return [sys.executable, "examples/baselines.py", "--engines", "50", *flags]


def test_a_server_gives_the_in_process_numbers(serve: Serve, tokens_file: Path) -> None:
    server: Running = serve(tokens_file=tokens_file)
    in_process = table_lines(run(baselines_command("--markdown")))
    # An admin may see the hidden state: every row, the same numbers.
    admin = run(
        baselines_command("--markdown", "--target", server.target, "--token", TOKENS["carol"])
    )
    assert table_lines(admin) == in_process
    # A user may not: the hidden-damage row is skipped, with a note that says why.
    user = run(
        baselines_command("--markdown", "--target", server.target, "--token", TOKENS["alice"])
    )
    assert table_lines(user) == in_process[:-1]
    assert in_process[-1].startswith(f"| {baselines.HIDDEN_DAMAGE} |")
    assert f"note: {baselines.HIDDEN_DAMAGE}: skipped" in user
    assert "expose_hidden_state" in user
