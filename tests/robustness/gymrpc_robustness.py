"""Machinery shared by the robustness tests and ``benchmarks/load.py``.

Servers under test run in their own process, started as users start them
(``python -m gymrpc_server``): a signal reaches them as it would in production, and
their memory, threads and file descriptors can be read from ``/proc``. Load comes from
client processes that run this file as a script (``client`` mode); each steps a
``gymrpc.make_vec`` batch and reports its steps and per-step latencies as one JSON line.

Everything listens on 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from gymrpc_testing import server_command

import gymrpc
from gymrpc.connection import Connection, ConnectionSettings

__all__ = [
    "ClientReport",
    "LatencySummary",
    "LineReader",
    "ProcessStats",
    "ServerProcess",
    "cycle_sessions",
    "open_sessions",
    "run_clients",
    "start_python",
    "subprocess_environment",
]

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"
#: Bounds on waiting for a subprocess: far above what a healthy start or exit takes on a
#: small machine shared with other work, so that only a hang reaches them.
START_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0
#: What client processes print: once ready to step, then their report.
READY = "ready"
REPORT = "report "


def subprocess_environment() -> dict[str, str]:
    """The environment of child processes: this interpreter's path and the test support.

    ``tests/support`` holds ``gymrpc_test_envs`` (the servers' ``--env-module``); this
    directory holds the client script.
    """
    path = [str(SUPPORT), str(HERE), *sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


class LineReader:
    """Reads a child's output line by line in a thread, so that every wait is bounded.

    Args:
        stream: The child's stdout or stderr, in text mode.
        name: Names the thread.

    Attributes:
        lines: Every line read so far.
    """

    def __init__(self, stream: IO[str], name: str) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=f"read-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._stream:
                self.lines.append(line)
                self._queue.put(line)
        finally:
            self._queue.put(None)

    @property
    def text(self) -> str:
        """Everything read so far."""
        return "".join(self.lines)

    def next(self, deadline: float) -> str | None:
        """Return the next line, or None once the output has ended.

        Args:
            deadline: ``time.monotonic()`` reading after which to give up.

        Raises:
            TimeoutError: If no line came before the deadline.
        """
        if self._ended:
            return None
        try:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise TimeoutError(f"no output within the deadline; so far: {self.text!r}") from None
        self._ended = line is None
        return line

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Return the match of the first line (from now on) that matches ``pattern``.

        Raises:
            TimeoutError: If none came within ``timeout`` seconds.
            EOFError: If the output ended first.
        """
        deadline = time.monotonic() + timeout
        while (line := self.next(deadline)) is not None:
            if match := re.search(pattern, line):
                return match
        raise EOFError(f"the output ended without a line matching {pattern!r}: {self.text!r}")

    def join(self, timeout: float) -> None:
        """Wait for the end of the output (the child exited and the pipe closed)."""
        self._thread.join(timeout)


@dataclass(frozen=True)
class ProcessStats:
    """What a process holds, read from ``/proc``.

    Attributes:
        rss_mib: Resident memory (``VmRSS``), in MiB.
        threads: Threads (entries of ``/proc/PID/task``).
        fds: Open file descriptors (entries of ``/proc/PID/fd``): sockets among them.
    """

    rss_mib: float
    threads: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> ProcessStats:
        """Read the statistics of a running process."""
        proc = Path("/proc") / str(pid)
        status = (proc / "status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None, f"no VmRSS in /proc/{pid}/status"
        return cls(
            rss_mib=int(match.group(1)) / 1024,
            threads=len(os.listdir(proc / "task")),
            fds=len(os.listdir(proc / "fd")),
        )


class ServerProcess:
    """A gymrpc server in a subprocess on 127.0.0.1, serving the test environments too.

    Use it as a context manager: leaving the block kills the server if it still runs.

    Args:
        *flags: More ``gymrpc-server`` flags, e.g. ``"--grace-period", "10"``.
        start_timeout: Seconds to wait for the "serving on" line.

    Attributes:
        process: The server process.
        log: Its stderr (the server logs there).
        target: ``127.0.0.1:PORT`` to connect to.
    """

    def __init__(self, *flags: str, start_timeout: float = START_TIMEOUT) -> None:
        self.process = subprocess.Popen(
            server_command(*flags),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_environment(),
        )
        assert self.process.stderr is not None
        self.log = LineReader(self.process.stderr, "server")
        try:
            match = self.log.wait_for(r"serving on 127\.0\.0\.1:(\d+)", start_timeout)
        except BaseException:
            self.close()
            raise
        self.target = f"127.0.0.1:{match.group(1)}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def stats(self) -> ProcessStats:
        """The server's memory, threads and file descriptors now."""
        return ProcessStats.of(self.pid)

    def terminate(self) -> None:
        """Send SIGTERM, as an orchestrator stopping the server does."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """Return the exit status, or None if the server still runs after ``timeout`` s."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Kill the server if it still runs and release its pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(EXIT_TIMEOUT)
        self.log.join(EXIT_TIMEOUT)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_python(
    *arguments: str, stdin: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], LineReader]:
    """Run ``python ARGUMENTS`` with the test support importable; read its output.

    Returns:
        The process, and a reader of its stdout and stderr together.
    """
    process = subprocess.Popen(
        [sys.executable, *arguments],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_environment(),
    )
    assert process.stdout is not None
    return process, LineReader(process.stdout, Path(arguments[0]).name)


def open_sessions(target: str) -> int:
    """How many sessions the anonymous user has open on an open server."""
    connection = Connection(ConnectionSettings.resolve(target, timeout=30.0))
    try:
        return int(connection.handshake().usage.open_sessions)
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(interval)
    return True


# --- load: client processes -------------------------------------------------------------


@dataclass
class ClientReport:
    """What one client process did.

    Attributes:
        env_id: Its environment.
        num_envs: Its batch size.
        steps: Batch steps (calls of ``step``) in the measured window.
        seconds: Length of the window.
        started_at: Wall-clock start of the window (``time.time()``).
        latencies_us: Wall time of every step, in microseconds, as the client saw it.
        error: ``"Type: message"`` of what went wrong, or None.
    """

    env_id: str
    num_envs: int
    steps: int = 0
    seconds: float = 0.0
    started_at: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def ended_at(self) -> float:
        """Wall-clock end of the window."""
        return self.started_at + self.seconds

    @property
    def steps_per_second(self) -> float:
        """Batch steps per second over the window."""
        return self.steps / self.seconds if self.seconds > 0 else 0.0


def _step_for(env: gymrpc.RemoteVectorEnv, seconds: float, report: ClientReport, seed: int) -> None:
    # Actions are drawn beforehand so that sampling is not part of the latencies.
    env.action_space.seed(seed)
    batches = [env.action_space.sample() for _ in range(64)]
    latencies = report.latencies_us
    report.started_at = time.time()
    start = time.perf_counter()
    end = start + seconds
    after = start
    while after < end:
        before = time.perf_counter()
        env.step(batches[len(latencies) % len(batches)])
        after = time.perf_counter()
        latencies.append(round((after - before) * 1e6))
    report.steps = len(latencies)
    report.seconds = after - start


def client_main(argv: Sequence[str]) -> int:
    """Step one batch for a while once told to go; print a JSON report.

    Prints ``ready`` after the first reset, waits for a line on stdin (the signal that
    every client is ready), steps for the given time and prints ``report {...}``.

    Returns:
        0, or 1 if anything failed (the report says what).
    """
    parser = argparse.ArgumentParser(prog="gymrpc_robustness.py client")
    parser.add_argument("target")
    parser.add_argument("env_id")
    parser.add_argument("num_envs", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("seed", type=int)
    args = parser.parse_args(argv)
    report = ClientReport(args.env_id, args.num_envs)
    try:
        with gymrpc.make_vec(
            args.env_id, args.num_envs, target=args.target, seed=args.seed, timeout=60.0
        ) as env:
            env.reset()
            print(READY, flush=True)
            sys.stdin.readline()
            _step_for(env, args.seconds, report, args.seed)
    except Exception as error:
        report.error = f"{type(error).__name__}: {error}"
    print(REPORT + json.dumps(asdict(report)), flush=True)
    return 0 if report.error is None else 1


def _next_marked(output: LineReader, deadline: float) -> str | None:
    """The next ``ready`` or ``report`` line; None if the output ended without one."""
    while (line := output.next(deadline)) is not None:
        if line.startswith((READY, REPORT)):
            return line
    return None


def _report(line: str | None, process: subprocess.Popen[str], output: LineReader) -> ClientReport:
    if line is None or not line.startswith(REPORT):
        process.wait(EXIT_TIMEOUT)
        return ClientReport(
            "?", 0, error=f"exited with status {process.returncode} and no report: {output.text}"
        )
    fields = json.loads(line.removeprefix(REPORT))
    return ClientReport(**fields)


def run_clients(
    target: str,
    env_ids: Sequence[str],
    num_envs: int,
    seconds: float,
    *,
    start_timeout: float = START_TIMEOUT,
) -> list[ClientReport]:
    """Run one client process per item of ``env_ids``, all stepping at the same time.

    Every process creates its session and resets; once all are ready they step for
    ``seconds`` together, then close their session and report.

    Args:
        target: The server.
        env_ids: The environment of each client.
        num_envs: Batch size of every client.
        seconds: How long each steps.
        start_timeout: Seconds all clients may take to be ready.

    Returns:
        One report per client, in the order of ``env_ids``; failures are reports with
        an ``error``, never exceptions.
    """
    clients: list[tuple[subprocess.Popen[str], LineReader]] = []
    reports: dict[int, ClientReport] = {}
    try:
        for index, env_id in enumerate(env_ids):
            arguments = (target, env_id, str(num_envs), str(seconds), str(index))
            script = str(Path(__file__).resolve())
            clients.append(start_python(script, "client", *arguments, stdin=subprocess.PIPE))
        deadline = time.monotonic() + start_timeout
        for index, (process, output) in enumerate(clients):
            line = _next_marked(output, deadline)
            if line is None or not line.startswith(READY):
                reports[index] = _report(line, process, output)
        for process, _ in clients:
            assert process.stdin is not None
            try:
                process.stdin.write("go\n")
                process.stdin.close()
            except BrokenPipeError:  # it failed before being ready, and says so
                pass
        deadline = time.monotonic() + seconds + 2 * EXIT_TIMEOUT
        for index, (process, output) in enumerate(clients):
            if index not in reports:
                reports[index] = _report(_next_marked(output, deadline), process, output)
            process.wait(EXIT_TIMEOUT)
    finally:
        for process, output in clients:
            if process.poll() is None:
                process.kill()
                process.wait(EXIT_TIMEOUT)
            output.join(EXIT_TIMEOUT)
            assert process.stdout is not None
            process.stdout.close()
    return [reports[index] for index in range(len(env_ids))]


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of step latencies, in milliseconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, reports: Sequence[ClientReport]) -> LatencySummary:
        """Summarize the latencies of all the reports together."""
        latencies = np.concatenate([np.asarray(r.latencies_us, dtype=np.float64) for r in reports])
        p50, p99 = np.percentile(latencies, [50, 99]) / 1000
        return cls(float(p50), float(p99), float(latencies.max()) / 1000)


# --- leaks: session life cycles -------------------------------------------------------


def cycle_sessions(
    target: str,
    cycles: int,
    *,
    threads: int = 4,
    env_id: str = "CartPole-v1",
    num_envs: int = 16,
) -> list[str]:
    """Open, reset, step and close ``cycles`` sessions through the client, ``threads`` at a time.

    Each cycle is a whole client life: channel, handshake, session, stream, close.

    Returns:
        ``"Type: message"`` of every cycle that failed; empty when all succeeded.
    """

    def cycle(seed: int) -> str | None:
        try:
            with gymrpc.make_vec(env_id, num_envs, target=target, seed=seed, timeout=60.0) as env:
                env.reset()
                env.step(env.action_space.sample())
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    with futures.ThreadPoolExecutor(threads, thread_name_prefix="cycle") as pool:
        return [error for error in pool.map(cycle, range(cycles)) if error is not None]


def _main(argv: Sequence[str]) -> int:
    if not argv or argv[0] != "client":
        print("usage: gymrpc_robustness.py client TARGET ENV_ID NUM_ENVS SECONDS SEED")
        return 2
    return client_main(argv[1:])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
