"""``python -m gymrpc.conformance``: one line per check, a summary, the exit status."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest

from gymrpc.conformance import CHECKS, Target
from gymrpc.conformance.__main__ import main
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc_server.auth import Identity
from gymrpc_server.servicer import EnvServicer


class _CloseKeepsSession(EnvServicer):
    """Answers CloseSession with OK and closes nothing (enough to fail one check)."""

    def CloseSession(  # noqa: N802 (the RPC's name)
        self, request: pb.CloseSessionRequest, context: grpc.ServicerContext
    ) -> pb.CloseSessionResponse:
        def handle(identity: Identity) -> pb.CloseSessionResponse:
            self._registry.get(identity, request.session_id)
            return pb.CloseSessionResponse()

        return self._unary(context, handle)


def test_the_module_runs_and_passes(real_target: Target) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gymrpc.conformance",
            "--target",
            real_target.address,
            "--check",
            "handshake.",
            "--check",
            "health.serving",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[:2] == ["PASS handshake.server_info", "PASS health.serving"]
    assert lines[2].startswith("2 passed, 0 failed, 0 skipped in ")
    assert lines[2].endswith(f"against {real_target.address}")


def test_a_failure_prints_the_reason_and_exits_1(
    serve_target: Callable[..., Target], capsys: pytest.CaptureFixture[str]
) -> None:
    target = serve_target(_CloseKeepsSession)
    status = main(
        ["--target", target.address, "--check", "session.lifecycle", "--check", "health."]
    )
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0].startswith("FAIL session.lifecycle: GetSession after CloseSession: received ")
    assert "expected NOT_FOUND (SESSION_NOT_FOUND, field session_id)" in lines[0]
    assert lines[1] == "PASS health.serving"
    assert lines[2].startswith("1 passed, 1 failed, 0 skipped")


def test_list_names_every_check_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [check.id for check in CHECKS]
    assert all(line.endswith("]") for line in lines)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--check", "handshake."], "--target host:port is required"),
        (["--target", "127.0.0.1:1", "--check", "nope"], "no check 'nope'"),
        (["--target", "127.0.0.1:1", "--timeout", "0"], "--timeout 0.0"),
        (["--target", "127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca"),
    ],
    ids=["no-target", "unknown-check", "zero-timeout", "missing-ca"],
)
def test_usage_errors_exit_2(
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GYMRPC_TARGET", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
