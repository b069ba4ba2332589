"""A server that stops tells its clients at once; they do not try to re-attach."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest
from gymrpc_testing import Serve, server_command, server_environ

import gymrpc
from gymrpc.errors import ConnectionLostError, ShuttingDownError


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        server_command(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=server_environ(),
    )
    assert process.stderr is not None
    for line in process.stderr:
        match = re.search(r"serving on (127\.0\.0\.1:\d+)", line)
        if match:
            break
    else:
        raise AssertionError("the server never said it was serving")
    yield process, match.group(1)
    if process.poll() is None:
        process.kill()
    process.wait(10)
    process.stderr.close()


def test_sigterm_ends_open_streams_with_shutting_down(
    server: tuple[subprocess.Popen[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    process, target = server
    envs = gymrpc.make_vec("gymrpc/Turbofan-v0", num_envs=2, target=target, seed=0)
    envs.reset()
    envs.step(envs.action_space.sample())
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    caplog.set_level(logging.INFO, logger="gymrpc.stream")
    # The stream was ended with SHUTTING_DOWN: the next step fails at once with the
    # typed error, instead of re-attaching for 5 s and raising ConnectionLostError.
    with pytest.raises(ShuttingDownError) as info:
        envs.step(envs.action_space.sample())
    assert not isinstance(info.value, ConnectionLostError)
    assert "stopped and closed session" in str(info.value)
    assert "re-attaching" not in caplog.text
    envs.close()


def test_an_in_process_stop_reaches_an_idle_client(serve: Serve) -> None:
    running = serve()
    envs = gymrpc.make_vec("CartPole-v1", num_envs=2, target=running.target, seed=0)
    envs.reset()
    running.server.stop(1.0).wait(10)
    with pytest.raises(ShuttingDownError, match=r"SHUTTING_DOWN: the server stopped"):
        envs.step(envs.action_space.sample())
    envs.close()
