"""``gymrpc-server --workers N``: ports, discovery by clients, stopping, a dying worker."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymrpc_testing import server_command, server_environ
from vector_reference import Lockstep

import gymrpc
from gymrpc.errors import UnavailableError
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc_server.cli import build_config
from gymrpc_server.workers import WorkerPlanError, worker_addresses

# importlib mode puts no test directory on sys.path; the subprocess server lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from gymrpc_robustness import EXIT_TIMEOUT, START_TIMEOUT, ServerProcess, wait_until

WORKER_LINE = r"worker (\d+) listening at (\S+) \(pid (\d+)\)"


def workers_of(server: ServerProcess) -> list[tuple[str, int]]:
    """``(target, pid)`` of each worker, from the parent's log."""
    found = [
        (match.group(2), int(match.group(3))) for match in re.finditer(WORKER_LINE, server.log.text)
    ]
    assert found, server.log.text
    return found


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_worker_ports_follow_the_address() -> None:
    assert worker_addresses("127.0.0.1:50051", 3) == [
        "127.0.0.1:50051",
        "127.0.0.1:50052",
        "127.0.0.1:50053",
    ]
    assert worker_addresses("[::1]:0", 2) == ["[::1]:0", "[::1]:0"]
    with pytest.raises(WorkerPlanError, match="beyond 65535"):
        worker_addresses("127.0.0.1:65535", 2)


def test_workers_come_from_the_flag_or_the_environment() -> None:
    assert build_config([], {})[0].workers == 1
    assert build_config([], {"GYMRPC_WORKERS": "4"})[0].workers == 4
    assert build_config(["--workers", "3"], {"GYMRPC_WORKERS": "4"})[0].workers == 3
    with pytest.raises(SystemExit):
        build_config(["--workers", "0"], {})


def test_workers_serve_list_each_other_share_a_batch_and_stop_on_sigterm() -> None:
    with ServerProcess("--workers", "2") as server:
        workers = workers_of(server)
        targets = [target for target, _ in workers]
        assert len(targets) == 2
        assert server.target == targets[0]  # the "serving on" line names worker 0
        assert f"2 workers: {', '.join(targets)}" in server.log.text
        for target in targets:
            with grpc.insecure_channel(target) as channel:
                info = pb_grpc.EnvServiceStub(channel).GetServerInfo(
                    pb.GetServerInfoRequest(), timeout=10
                )
                assert list(info.worker_targets) == targets
                health = cast(Any, health_pb2_grpc.HealthStub)(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING

        # One target is enough: the batch spreads over both workers by itself, with the
        # results of one server; discover_workers=False keeps it on the target named.
        env = gymrpc.make_vec(
            "CartPole-v1", 5, target=targets[1], vectorization_mode="sync", timeout=30
        )
        assert isinstance(env, gymrpc.ShardedVectorEnv)
        assert env.targets == tuple(targets)
        single = gymrpc.make_vec(
            "CartPole-v1",
            5,
            target=targets[1],
            vectorization_mode="sync",
            discover_workers=False,
            timeout=30,
        )
        assert type(single) is gymrpc.RemoteVectorEnv
        with Lockstep(env, single) as lockstep:
            lockstep.run(20, seed=4)
            server.terminate()
            assert server.wait(EXIT_TIMEOUT) == 0, server.log.text
            # Both workers ended their streams with SHUTTING_DOWN: the batch ends at once.
            with pytest.raises(UnavailableError, match="stopped") as stopped:
                env.step(env.action_space.sample())
            assert any(target in str(stopped.value) for target in targets)
            assert env.closed
    log = server.log.text
    assert "SIGTERM received; stopping 2 workers gracefully" in log
    assert len(re.findall(r"\(worker \d\): stopped", log)) == 2, log
    # Each worker told its clients' streams (worker 1 had two, the single env's too).
    assert len(re.findall(r"\(worker \d\): ended \d open session streams", log)) == 2, log
    assert not any(alive(pid) for _, pid in workers)


def test_a_dead_worker_stops_the_others_and_the_parent_fails() -> None:
    with ServerProcess("--workers", "2") as server:
        (_, first_pid), (second, second_pid) = workers_of(server)
        os.kill(second_pid, signal.SIGKILL)
        assert server.wait(EXIT_TIMEOUT) == 1, server.log.text
    log = server.log.text
    assert f"worker 1 at {second} (pid {second_pid}) exited unexpectedly with status -9" in log
    assert "(worker 0): stopped" in log
    assert not alive(first_pid)


def test_workers_do_not_outlive_a_killed_parent() -> None:
    with ServerProcess("--workers", "2") as server:
        pids = [pid for _, pid in workers_of(server)]
        server.process.kill()
        server.wait(EXIT_TIMEOUT)
        # Each worker sees its pipe to the parent close and stops by itself.
        assert wait_until(lambda: not any(alive(pid) for pid in pids), EXIT_TIMEOUT)
    assert server.log.text.count("the parent process is gone; stopping") == 2


def test_a_port_in_use_fails_the_start_with_status_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        process = subprocess.run(
            server_command("--address", f"127.0.0.1:{port}", "--workers", "2"),
            env=server_environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    assert process.returncode == 2, process.stderr
    assert f"worker 0: cannot listen on 127.0.0.1:{port}" in process.stderr
    assert "already in use" in process.stderr
    assert "serving on" not in process.stderr
