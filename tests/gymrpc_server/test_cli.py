"""The gymrpc-server command: flags, GYMRPC_* variables, serving and stopping by signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc_server.cli import build_config

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def launch(*args: str, **env: str) -> subprocess.Popen[str]:
    # No scores unless a test asks: nothing written into the user's data directory.
    environ = {**os.environ, "PYTHONPATH": str(SUPPORT), "GYMRPC_DATABASE": "none", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "gymrpc_server", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environ,
    )


def wait_for_port(process: subprocess.Popen[str]) -> tuple[int, list[str]]:
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1)), lines
    raise AssertionError(f"the server never said it was serving: {lines}")


@pytest.fixture
def server_process() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def test_serves_until_sigterm_then_stops_gracefully(
    server_process: list[subprocess.Popen[str]],
) -> None:
    process = launch(
        "--address", "127.0.0.1:0", "--env-module", "gymrpc_test_envs", GYMRPC_MAX_NUM_ENVS="7"
    )
    server_process.append(process)
    port, lines = wait_for_port(process)
    assert "plaintext" in lines[-1]
    assert "loopback only" in lines[-1]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.EnvServiceStub(channel)
        assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).limits.max_num_envs == 7
        stub.CreateSession(
            pb.CreateSessionRequest(env_id="gymrpc-test/DictObs-v0", num_envs=2), timeout=30
        )
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert process.stderr is not None
    rest = process.stderr.read()
    assert "SIGTERM received; stopping gracefully" in rest
    assert "created: user=anonymous env=gymrpc-test/DictObs-v0 num_envs=2" in "".join(lines) + rest
    assert "closed at shutdown" in rest
    assert "stopped" in rest


def test_refuses_an_open_public_address(server_process: list[subprocess.Popen[str]]) -> None:
    process = launch("--address", "0.0.0.0:0")
    server_process.append(process)
    assert process.wait(30) == 2
    assert process.stderr is not None
    assert "refusing to serve 0.0.0.0:0 without a tokens file" in process.stderr.read()


def test_flags_override_environment_defaults() -> None:
    environ = {
        "GYMRPC_ADDRESS": "127.0.0.1:6000",
        "GYMRPC_ENV_MODULES": "one, two",
        "GYMRPC_ALLOWED_ENV_IDS": "CartPole-v1",
        "GYMRPC_STEP_QUOTA": "100000",
        "GYMRPC_ALLOW_PUBLIC_OPEN": "true",
    }
    config, level = build_config([], environ)
    assert config.address == "127.0.0.1:6000"
    assert config.env_modules == ("one", "two")
    assert config.allowed_env_ids == frozenset({"CartPole-v1"})
    assert config.step_quota == 100_000
    assert config.allow_public_open
    assert level == "INFO"
    config, _ = build_config(
        [
            "--address",
            "[::1]:0",
            "--env-module",
            "three",
            "--step-quota",
            "5",
            "--no-allow-public-open",
        ],
        environ,
    )
    assert config.address == "[::1]:0"
    assert config.env_modules == ("three",)
    assert config.step_quota == 5
    assert not config.allow_public_open
    assert build_config([], {})[0].address == "127.0.0.1:50051"


@pytest.mark.parametrize(
    "argv", [["--max-num-envs", "lots"], ["--max-num-envs", "0"], ["--address", "nope"]]
)
def test_invalid_values_exit_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_config(argv, {})
    assert info.value.code == 2
    assert "gymrpc-server" in capsys.readouterr().err


def test_a_busy_port_is_reported_in_words_with_a_failing_status(
    server_process: list[subprocess.Popen[str]],
) -> None:
    first = launch("--address", "127.0.0.1:0", "--env-module", "gymrpc_test_envs")
    server_process.append(first)
    port, _ = wait_for_port(first)
    second = launch("--address", f"127.0.0.1:{port}")
    server_process.append(second)
    assert second.wait(30) == 2
    assert second.stderr is not None
    errors = [line for line in second.stderr.read().splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in errors[0]
    assert "Traceback" not in errors[0]


def test_the_start_up_log_says_what_is_served_and_what_is_not(
    server_process: list[subprocess.Popen[str]],
) -> None:
    process = launch("--address", "127.0.0.1:0", "--env-module", "gymrpc_test_envs")
    server_process.append(process)
    wait_for_port(process)
    assert process.stderr is not None
    served = next(line for line in process.stderr if "serving " in line and "environments" in line)
    assert "gymrpc/Turbofan-v0" in served
    assert "CartPole-v1" in served
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read().splitlines()
    assert process.wait(30) == 0
    # The custom-space test environment cannot be described: it is listed with the reason.
    (unserved,) = [line for line in rest if "gymrpc-test/CustomSpace-v0" in line]
    assert "not serving 1 registered environments (the protocol cannot describe it" in unserved


def test_a_missing_tokens_file_is_one_line_and_status_2(
    server_process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    process = launch("--address", "127.0.0.1:0", "--tokens-file", str(tmp_path / "nope.toml"))
    server_process.append(process)
    assert process.wait(30) == 2
    assert process.stderr is not None
    text = process.stderr.read()
    assert "Traceback" not in text
    missing = tmp_path / "nope.toml"
    assert f"tokens file {missing}: cannot be read (No such file or directory)" in text
