"""The client when things go wrong: dead servers, deadlines, dropped streams, no close().

Every failure must surface as a gymrpc exception within the call's deadline, never as
a hang; a dropped stream must be re-attached without changing the episode. Servers
that get killed run in a subprocess; everything listens on the loopback interface
only and every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymrpc_testing import Running, server_command
from vector_reference import (
    MODES,
    Lockstep,
    StepResult,
    assert_equivalent,
    remote_env,
    server_session,
    sync_reference,
)

import gymrpc
from gymrpc.errors import ConnectionLostError, DeadlineExceededError, UnavailableError
from gymrpc_server.session import Session

SUPPORT = Path(__file__).resolve().parent.parent / "support"
SLOW = "gymrpc-test/Slow-v0"
DICT_OBS = "gymrpc-test/DictObs-v0"
# Bounds on waiting for a subprocess: far above what a healthy run needs, so that only a
# hang reaches them.
START_TIMEOUT = 60.0
EXIT_TIMEOUT = 20.0
# A short script exits in about a second; a hang costs this much per run.
SCRIPT_TIMEOUT = 15.0


@dataclass
class ServerProcess:
    """A gymrpc server in a subprocess, whose stderr is drained by a thread."""

    process: subprocess.Popen[str]
    target: str
    lines: list[str]
    drain: threading.Thread


def _drain(process: subprocess.Popen[str], lines: list[str], found: queue.Queue[int]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        if match:
            found.put(int(match.group(1)))


@pytest.fixture
def server_process() -> Iterator[Callable[[], ServerProcess]]:
    """Start servers in subprocesses (with the test environments); kill them afterwards."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SUPPORT), *sys.path])}
        process = subprocess.Popen(
            server_command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )
        lines: list[str] = []
        found: queue.Queue[int] = queue.Queue()
        drain = threading.Thread(target=_drain, args=(process, lines, found), daemon=True)
        drain.start()
        started.append(ServerProcess(process, "", lines, drain))
        try:
            port = found.get(timeout=START_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the server never said it was serving: {lines}") from None
        started[-1].target = f"127.0.0.1:{port}"
        return started[-1]

    yield start
    for server in started:
        kill(server)
        # The pipe reaches its end once the process is gone.
        server.drain.join(EXIT_TIMEOUT)
        assert server.process.stderr is not None
        server.process.stderr.close()


def kill(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(EXIT_TIMEOUT)


def free_port() -> int:
    """A loopback port where nothing listens (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def drop_stream(env: gymrpc.RemoteVectorEnv) -> None:
    """Cancel the session stream under the client, as a network hiccup would."""
    stream = env._stream
    assert stream is not None
    assert stream._call is not None, "the stream is opened by the first reset"
    stream._call.cancel()


# --- a server that dies ------------------------------------------------------------------


def test_server_killed_between_steps(server_process: Callable[[], ServerProcess]) -> None:
    server = server_process()
    env = gymrpc.RemoteVectorEnv("CartPole-v1", 2, target=server.target, timeout=10.0)
    env.reset(seed=0)
    env.step(np.array([0, 1]))
    kill(server)
    with pytest.raises(UnavailableError, match=re.escape(server.target)) as error:
        env.step(np.array([0, 1]))
    assert isinstance(error.value, ConnectionError)
    # Every later call fails the same way instead of waiting, and close() returns.
    with pytest.raises(UnavailableError):
        env.reset()
    env.close()
    assert env.closed


def test_server_killed_during_a_step(server_process: Callable[[], ServerProcess]) -> None:
    server = server_process()
    env = gymrpc.make_vec(SLOW, 1, target=server.target, timeout=30.0, delay=30.0)
    env.reset()
    env.step_async(np.array([0]))
    kill(server)
    # The answer can never come: the stream breaks, re-attaching fails, and the error
    # arrives long before the 30 s deadline (the per-test timeout catches a hang).
    with pytest.raises(ConnectionLostError, match=re.escape(server.target)):
        env.step_wait()
    env.close()


def test_nothing_listening_is_unavailable_naming_the_target() -> None:
    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(UnavailableError, match=re.escape(target)):
        gymrpc.RemoteVectorEnv("CartPole-v1", 1, target=target, timeout=10.0)


# --- deadlines ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["constructor", "step_wait"])
def test_slow_step_exceeds_the_deadline(running: Running, where: str) -> None:
    delay = 2.0
    timeout = 0.2
    env = gymrpc.make_vec(
        SLOW,
        1,
        target=running.target,
        timeout=timeout if where == "constructor" else 30.0,
        delay=delay,
    )
    env.reset()
    env.step_async(np.array([0]))
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=re.escape("within 0.2 s")) as error:
        env.step_wait(timeout=timeout if where == "step_wait" else None)
    # The client gave up at its deadline rather than waiting for the step to finish.
    assert time.monotonic() - started < delay
    assert isinstance(error.value, TimeoutError)
    env.close()


# --- a dropped stream ---------------------------------------------------------------------


def step_with_the_request_dropped(pair: Lockstep, session: Session) -> StepResult:
    """Step both sides; drop the remote stream while the server executes the step."""
    remote = pair.remote
    assert isinstance(remote, gymrpc.RemoteVectorEnv)
    stream = remote._stream
    assert stream is not None
    actions = remote.action_space.sample()
    assert_equivalent(actions, pair.local.action_space.sample(), "sampled actions")
    remote.step_async(actions)
    deadline = time.monotonic() + 10
    while session.sequence.last_sequence < stream._sequence:
        assert time.monotonic() < deadline, "the server never received the step"
        time.sleep(0.001)
    drop_stream(remote)
    got = remote.step_wait()
    want = pair.local.step(actions)
    assert_equivalent(got, want, "the step whose stream was dropped")
    return want


@pytest.mark.parametrize("mode", MODES)
def test_dropped_stream_is_reattached_and_the_episode_continues(
    running: Running, mode: AutoresetMode
) -> None:
    """Drops between calls, and drops of a request the server has already received.

    A request sent again after a drop is answered from the server's memory of its
    latest request, so the step runs once. The reference never drops.
    """
    options: dict[str, Any] = {"horizon": 5, "end_probability": 0.1}
    remote = remote_env(running.target, DICT_OBS, 3, mode, **options)
    with Lockstep(remote, sync_reference(DICT_OBS, 3, mode, **options)) as pair:
        pair.reset(seed=1)
        session = server_session(running, remote)
        for step in range(45):
            if step % 3 == 0:
                result = step_with_the_request_dropped(pair, session)
            else:
                if step % 3 == 1:
                    drop_stream(remote)
                result = pair.step()
            ended = result[2] | result[3]
            if mode is AutoresetMode.DISABLED and ended.any():
                drop_stream(remote)
                pair.reset(options={"reset_mask": ended})
        assert pair.events["truncated"] > 0


# --- forgetting close() -------------------------------------------------------------------

FORGETFUL_SCRIPTS = {
    "module-level": """
        import sys
        import gymrpc

        envs = gymrpc.make_vec("CartPole-v1", num_envs=2, target=sys.argv[1], seed=0)
        envs.reset()
        envs.step(envs.action_space.sample())
    """,
    "function-local": """
        import sys
        import gymrpc

        def main():
            envs = gymrpc.make_vec("CartPole-v1", num_envs=2, target=sys.argv[1], seed=0)
            envs.reset()
            envs.step(envs.action_space.sample())

        main()
    """,
}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            "module-level",
        ),
        "function-local",
    ],
)
def test_script_that_forgets_close_exits_and_frees_its_session(
    running: Running, script: str
) -> None:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(FORGETFUL_SCRIPTS[script]), running.target],
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            env=environ,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the script did not exit within {SCRIPT_TIMEOUT:g} s")
    assert result.returncode == 0, result.stderr
    assert len(running.server.registry) == 0
