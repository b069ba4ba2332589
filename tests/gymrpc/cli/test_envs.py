"""``gymrpc envs``: the catalogue as a table, one environment in detail, or JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gymrpc_testing import Running

from gymrpc.cli import main


def test_the_table_lists_every_served_environment(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["envs", "--target", running.target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ENV_ID", "OBSERVATION", "ACTION", "MAX", "STEPS", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "gymrpc/Turbofan-v0" in rows
    assert "CartPole-v1" in rows
    assert "gymrpc-test/CustomSpace-v0" not in rows
    assert "Discrete(3)" in rows["gymrpc/Turbofan-v0"]


def test_one_environment_in_detail(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "gymrpc/Turbofan-v0", "--target", running.target]) == 0
    text = capsys.readouterr().out
    assert text.startswith("gymrpc/Turbofan-v0\n")
    assert "max episode steps  100" in text
    assert "Observation elements" in text
    assert "HPC_Tout" in text
    assert "rpm" in text
    assert "degradation (admins)" in text
    assert "step_size" in text


def test_json_carries_spaces_options_labels_and_documentation(running: Running) -> None:
    # The real console entry point, in a subprocess, as a user runs it.
    result = subprocess.run(
        [sys.executable, "-m", "gymrpc.cli", "envs", "--json", "--target", running.target],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    documents = {item["env_id"]: item for item in json.loads(result.stdout)}
    turbofan = documents["gymrpc/Turbofan-v0"]
    assert turbofan["max_episode_steps"] == 100
    assert turbofan["observation_space"].startswith("Box(")
    options = {option["name"]: option for option in turbofan["options"]}
    assert options["step_size"]["default"] == 10
    assert options["expose_hidden_state"]["privileged"] is True
    labels = turbofan["observation_labels"][0]["labels"]
    assert [label["unit"] for label in labels[:2]] == ["K", "rpm"]
    assert turbofan["documentation"]
    assert documents["CartPole-v1"]["autoreset_modes"] == ["NextStep", "SameStep", "Disabled"]


def test_an_unknown_environment_and_an_unreachable_server_fail_in_one_line(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["envs", "Nope-v0", "--target", running.target]) == 1
    error = capsys.readouterr().err
    assert error.startswith("gymrpc: env_id: 'Nope-v0' is not served by this server")
    assert main(["envs", "--target", "127.0.0.1:1", "--timeout", "2"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "127.0.0.1:1" in error


def test_a_reader_that_stops_early_stops_the_command_quietly(running: Running) -> None:
    # As `gymrpc envs --json | head` does: the JSON (some 80 KB) overflows the pipe, the
    # reader closes it, and the command ends without a traceback.
    process = subprocess.Popen(
        [sys.executable, "-m", "gymrpc.cli", "envs", "--json", "--target", running.target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(10) == b"[\n  {\n    "
    process.stdout.close()
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b""
    process.stderr.close()
