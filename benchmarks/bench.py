"""gymrpc side by side with the gRPC floor, in-process vectorizers and dm_env_rpc.

``make bench`` runs this. It starts every server it needs in its own process on
127.0.0.1, measures steps per second and microseconds per batch step for each system
in one run (ratios between systems measured together are meaningful on a shared
machine; absolute numbers are not), prints a markdown table with the issue's target
ratios, and writes the table, a JSON file and a log-log plot to benchmarks/results/.

Every system steps the same precomputed random actions, so action sampling is not
timed. One progress bar over the measurements goes to stderr with each measurement's
result; the report goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import gymnasium as gym
import numpy as np
from tqdm import tqdm

import gymrpc
import gymrpc_server  # noqa: F401  (registers gymrpc/Turbofan-v0 for the in-process runs)
from gymrpc.tensors import decode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.values import decode_map, decode_value, encode_value

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_envs  # noqa: E402, F401  (registers gymrpc-bench/Null-v0)
from echo_peer import EchoClient, request_bytes  # noqa: E402

ENVS: dict[str, dict[str, Any]] = {
    "gymrpc-bench/Null-v0": {},
    "CartPole-v1": {},
    "gymrpc/Turbofan-v0": {"step_size": 10},
}
ACTIONS = {"gymrpc-bench/Null-v0": 2, "CartPole-v1": 2, "gymrpc/Turbofan-v0": 3}
NATIVE_ONLY = {"gymrpc-bench/Null-v0"}


@dataclass
class Row:
    """One measurement."""

    system: str
    env_id: str
    num_envs: int
    mode: str
    steps_per_second: float
    us_per_step: float
    request_bytes: int = 0
    response_bytes: int = 0


#: The bar over the measurements of the run (main() opens it); each row() advances it.
BAR: tqdm[Any] | None = None


def progress(message: str) -> None:
    """Show progress on stderr while the benchmark runs (above the bar, if there is one)."""
    tqdm.write(f"[bench] {message}", file=sys.stderr)


def planned_measurements(env_ids: list[str], counts: list[int], async_limit: int) -> int:
    """How many rows the gymrpc-server part of main() measures (the bar's total).

    Mirrors the functions it calls: unary, stream (+ pipelined) and the floor for every
    batch size, the paired one-env rounds, and the in-process vectorizers.
    """
    total = 0
    for env_id in env_ids:
        for n in counts:
            total += 1  # gymrpc_unary
            total += 0 if n == 1 else 2  # gymrpc_stream: stream and pipelined
            total += 1 if n == 1 else 2  # floor: unary (and stream)
            total += 2 if n == 1 else 0  # paired_one_env: gymrpc and the floor
            if env_id in NATIVE_ONLY:
                total += 1
            else:
                total += 3 if n <= async_limit else 2
    return total


def timed(step: Callable[[int], object], seconds: float, warmup: float) -> tuple[int, float]:
    """Call ``step(i)`` for ``warmup`` then ``seconds``; return (calls, elapsed)."""
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < warmup:
        step(i)
        i += 1
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step(i + calls)
        calls += 1
    return calls, elapsed


def row(
    system: str, env_id: str, num_envs: int, mode: str, calls: int, elapsed: float, **sizes: int
) -> Row:
    result = Row(
        system, env_id, num_envs, mode, calls * num_envs / elapsed, elapsed / calls * 1e6, **sizes
    )
    if BAR is not None:
        BAR.update(1)
    progress(
        f"{system:>14} {mode:<10} {env_id:<20} n={num_envs:<5} "
        f"{result.steps_per_second:>14,.0f} steps/s {result.us_per_step:>10.1f} µs/step"
    )
    return result


def _step_with(envs: Any, bank: list[np.ndarray[Any, Any]], i: int) -> object:
    return envs.step(bank[i % len(bank)])


def action_bank(env_id: str, num_envs: int, count: int = 64) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    if env_id == "gymrpc/Turbofan-v0":
        # Mostly fly, sometimes repair or sell: episodes end and autoreset like in training.
        return [
            rng.choice(3, size=num_envs, p=[0.9, 0.07, 0.03]).astype(np.int64) for _ in range(count)
        ]
    return [rng.integers(0, ACTIONS[env_id], size=num_envs, dtype=np.int64) for _ in range(count)]


@contextlib.contextmanager
def subprocess_server(args: list[str], pattern: str) -> Iterator[int]:
    """Start a server process and yield the port it reports."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(pattern, line)
            if match:
                break
        else:
            raise RuntimeError(f"{args} exited without reporting its port")
        # Keep reading its output so that a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stdout is not None:
            process.stdout.close()


# --- the floor -------------------------------------------------------------------------


def floor(
    target: str, env_id: str, num_envs: int, sizes: tuple[int, int], seconds: float, warmup: float
) -> list[Row]:
    client = EchoClient(target)
    payload = request_bytes(*sizes)
    rows = []
    requests, replies = client.open_stream()

    def stream_step(_: int) -> None:
        requests.put(payload)
        next(replies)

    if num_envs > 1:  # one env: measured by paired_one_env
        rows.append(
            row(
                "grpc-floor",
                env_id,
                num_envs,
                "stream",
                *timed(stream_step, seconds, warmup),
                request_bytes=sizes[0],
                response_bytes=sizes[1],
            )
        )
    requests.put(None)
    rows.append(
        row(
            "grpc-floor",
            env_id,
            num_envs,
            "unary",
            *timed(lambda _: client.unary(payload), seconds, warmup),
            request_bytes=sizes[0],
            response_bytes=sizes[1],
        )
    )
    client.close()
    return rows


# --- gymrpc ----------------------------------------------------------------------------


def paired_one_env(
    gymrpc_target: str,
    echo_target: str,
    env_id: str,
    sizes: tuple[int, int],
    seconds: float,
    rounds: int,
) -> list[Row]:
    """One env, streamed: gymrpc and the bare stream measured in alternating rounds.

    On a shared machine the speed of both drifts together from second to second;
    alternating short rounds and taking medians makes their ratio stable.
    """
    bank = action_bank(env_id, 1)
    client = EchoClient(echo_target)
    requests, replies = client.open_stream()
    payload = request_bytes(*sizes)

    def floor_step(_: int) -> None:
        requests.put(payload)
        next(replies)

    samples: dict[str, list[float]] = {"gymrpc": [], "grpc-floor": []}
    with gymrpc.make_vec(env_id, 1, target=gymrpc_target, seed=0, **ENVS[env_id]) as envs:
        envs.reset()
        step = functools.partial(_step_with, envs, bank)
        for _ in range(rounds):
            for name, func in (("grpc-floor", floor_step), ("gymrpc", step)):
                calls, elapsed = timed(func, seconds / rounds, 0.05)
                samples[name].append(elapsed / calls)
    requests.put(None)
    client.close()
    rows = []
    for name, values in samples.items():
        median = float(np.median(values))
        rows.append(
            row(
                name,
                env_id,
                1,
                "stream",
                1,
                median,
                request_bytes=sizes[0],
                response_bytes=sizes[1],
            )
        )
    return rows


def gymrpc_stream(
    target: str, env_id: str, num_envs: int, seconds: float, warmup: float
) -> list[Row]:
    bank = action_bank(env_id, num_envs)
    rows: list[Row] = []
    if num_envs == 1:
        return rows  # measured by paired_one_env
    with gymrpc.make_vec(env_id, num_envs, target=target, seed=0, **ENVS[env_id]) as envs:
        envs.reset()
        rows.append(
            row(
                "gymrpc",
                env_id,
                num_envs,
                "stream",
                *timed(functools.partial(_step_with, envs, bank), seconds, warmup),
            )
        )
    if num_envs >= 2:
        # Double buffering: two sessions of half the batch, one stepping on the server
        # while the client handles the other (what step_async/step_wait are for).
        half = num_envs // 2
        halves = [
            gymrpc.make_vec(env_id, half, target=target, seed=k, **ENVS[env_id]) for k in (0, 1)
        ]
        half_bank = action_bank(env_id, half)
        for envs in halves:
            envs.reset()
        halves[0].step_async(half_bank[0])

        def pipelined(i: int) -> None:
            current, other = halves[i % 2], halves[1 - i % 2]
            other.step_async(half_bank[i % 64])
            current.step_wait()

        calls, elapsed = timed(pipelined, seconds, warmup)
        # Each call completes one half-batch step.
        rows.append(row("gymrpc", env_id, half, "pipelined", calls, elapsed))
        rows[-1].num_envs = num_envs
        rows[-1].us_per_step *= 2
        for envs in halves:
            with contextlib.suppress(Exception):
                envs.step_wait()
            envs.close()
    return rows


def gymrpc_unary(
    target: str, env_id: str, num_envs: int, seconds: float, warmup: float
) -> tuple[Row, tuple[int, int]]:
    """Unary Step calls with gymrpc's codecs: what a 20-line client in any language does."""
    bank = action_bank(env_id, num_envs)
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 1 << 28),
            ("grpc.max_send_message_length", 1 << 28),
        ],
    )
    stub = pb_grpc.EnvServiceStub(channel)
    request = pb.CreateSessionRequest(env_id=env_id, num_envs=num_envs)
    for name, value in ENVS[env_id].items():
        request.env_options[name].CopyFrom(encode_value(value))
    session_id = stub.CreateSession(request).session.session_id
    stub.Reset(pb.ResetRequest(session_id=session_id, seed=0))

    def step(i: int) -> None:
        response = stub.Step(
            pb.StepRequest(session_id=session_id, actions=encode_value(bank[i % 64]))
        )
        decode_value(response.observations)
        decode_tensor(response.rewards)
        decode_tensor(response.terminations)
        decode_tensor(response.truncations)
        decode_map(response.info)

    calls, elapsed = timed(step, seconds, warmup)
    sample = pb.StepRequest(session_id=session_id, actions=encode_value(bank[0]))
    sizes = (sample.ByteSize(), stub.Step(sample).ByteSize())
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    channel.close()
    return row(
        "gymrpc",
        env_id,
        num_envs,
        "unary",
        calls,
        elapsed,
        request_bytes=sizes[0],
        response_bytes=sizes[1],
    ), sizes


# --- in-process ------------------------------------------------------------------------


def in_process(
    env_id: str, num_envs: int, seconds: float, warmup: float, async_limit: int
) -> list[Row]:
    bank = action_bank(env_id, num_envs)
    rows = []
    makers: list[tuple[str, Callable[[], gym.vector.VectorEnv[Any, Any, Any]]]] = [
        (
            "native",
            lambda: gym.make_vec(
                env_id, num_envs, vectorization_mode="vector_entry_point", **ENVS[env_id]
            ),
        ),
        ("sync", lambda: gym.make_vec(env_id, num_envs, vectorization_mode="sync", **ENVS[env_id])),
    ]
    if env_id in NATIVE_ONLY:
        makers = makers[:1]
    elif num_envs <= async_limit:
        makers.append(
            (
                "async",
                lambda: gym.make_vec(
                    env_id,
                    num_envs,
                    vectorization_mode="async",
                    vector_kwargs={"context": "fork"},
                    **ENVS[env_id],
                ),
            )
        )
    for name, make in makers:
        envs = make()
        envs.reset(seed=0)
        rows.append(
            row(
                f"in-process {name}",
                env_id,
                num_envs,
                "lockstep",
                *timed(functools.partial(_step_with, envs, bank), seconds, warmup),
            )
        )
        envs.close()
    return rows


def dm_env_rpc_rows(target: str, num_envs: int, seconds: float, warmup: float) -> Row:
    from dm_env_rpc_peer import Worlds

    worlds = Worlds(target, num_envs)
    bank = action_bank("CartPole-v1", num_envs)
    result = row(
        "dm_env_rpc",
        "CartPole-v1",
        num_envs,
        "stream",
        *timed(lambda i: worlds.step(bank[i % 64]), seconds, warmup),
    )
    worlds.close()
    return result


# --- report ----------------------------------------------------------------------------


def find(rows: list[Row], system: str, env_id: str, num_envs: int, mode: str) -> Row | None:
    return next(
        (
            r
            for r in rows
            if (r.system, r.env_id, r.num_envs, r.mode) == (system, env_id, num_envs, mode)
        ),
        None,
    )


def targets(rows: list[Row]) -> list[tuple[str, str, float | None, bool | None]]:
    """The issue's targets: (name, expression, measured ratio, pass)."""
    checks: list[tuple[str, str, float | None, bool | None]] = []

    def ratio(
        name: str,
        a: Row | None,
        b: Row | None,
        minimum: float,
        inverse: bool = False,
        how: str = "",
    ) -> None:
        if a is None or b is None:
            checks.append((name, how, None, None))
            return
        value = (
            (a.us_per_step / b.us_per_step)
            if inverse
            else (a.steps_per_second / b.steps_per_second)
        )
        passed = value <= minimum if inverse else value >= minimum
        checks.append((name, how, value, passed))

    for env_id in ENVS:
        ratio(
            f"{env_id} 1 env: stream step / bare stream round trip <= 1.3",
            find(rows, "gymrpc", env_id, 1, "stream"),
            find(rows, "grpc-floor", env_id, 1, "stream"),
            1.3,
            inverse=True,
            how="µs ratio",
        )
        ratio(
            f"{env_id} 1 env: stream / unary >= 1.4",
            find(rows, "gymrpc", env_id, 1, "stream"),
            find(rows, "gymrpc", env_id, 1, "unary"),
            1.4,
        )
    cp = "CartPole-v1"
    ratio(
        "CartPole 1 env: gymrpc / dm_env_rpc >= 2",
        find(rows, "gymrpc", cp, 1, "stream"),
        find(rows, "dm_env_rpc", cp, 1, "stream"),
        2,
    )
    ratio(
        "CartPole 256 envs: gymrpc / dm_env_rpc >= 200",
        find(rows, "gymrpc", cp, 256, "stream"),
        find(rows, "dm_env_rpc", cp, 256, "stream"),
        200,
    )
    ratio(
        "CartPole 256 envs: gymrpc / local AsyncVectorEnv >= 20",
        find(rows, "gymrpc", cp, 256, "stream"),
        find(rows, "in-process async", cp, 256, "lockstep"),
        20,
    )
    ratio(
        "CartPole 256 envs: gymrpc / local SyncVectorEnv >= 3",
        find(rows, "gymrpc", cp, 256, "stream"),
        find(rows, "in-process sync", cp, 256, "lockstep"),
        3,
    )
    tf = "gymrpc/Turbofan-v0"
    ratio(
        "Turbofan 1024 envs: gymrpc / in-process native >= 0.6",
        find(rows, "gymrpc", tf, 1024, "stream"),
        find(rows, "in-process native", tf, 1024, "lockstep"),
        0.6,
    )
    for env_id in ENVS:
        if env_id in NATIVE_ONLY:
            continue
        for n in (256, 1024):
            ratio(
                f"{env_id} {n} envs: pipelined / lockstep > 1",
                find(rows, "gymrpc", env_id, n, "pipelined"),
                find(rows, "gymrpc", env_id, n, "stream"),
                1.0,
            )
    return checks


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    import numpy

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gym.__version__,
        "gymrpc": gymrpc.__version__,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def markdown(
    rows: list[Row], checks: list[tuple[str, str, float | None, bool | None]], info: dict[str, Any]
) -> str:
    lines = [
        "# gymrpc benchmark",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    lines += [
        "| system | env | num_envs | mode | steps/s | µs per batch step | request B | response B |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r.env_id, r.num_envs, r.system, r.mode)):
        cells = [
            r.system,
            r.env_id,
            str(r.num_envs),
            r.mode,
            f"{r.steps_per_second:,.0f}",
            f"{r.us_per_step:,.1f}",
            str(r.request_bytes or ""),
            str(r.response_bytes or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---:|---|"]
    for name, _, value, passed in checks:
        verdict = "not measured" if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"| {name} | {'' if value is None else f'{value:.2f}'} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(ENVS), figsize=(13, 5), sharey=True)
    for axis, env_id in zip(axes, ENVS, strict=True):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.env_id == env_id:
                series.setdefault(f"{r.system} ({r.mode})", []).append(
                    (r.num_envs, r.steps_per_second)
                )
        for label, points in sorted(series.items()):
            points.sort()
            # The floor carries the same payloads with no work: dashed, as a bound.
            style = "--" if label.startswith("grpc-floor") else "-"
            axis.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                style,
                marker="o",
                label=label,
            )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(env_id)
        axis.set_xlabel("num_envs")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("environment steps per second")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short measurements (a smoke run)")
    parser.add_argument("--envs", default="1,16,256,1024", help="comma-separated num_envs")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument(
        "--async-limit", type=int, default=256, help="largest AsyncVectorEnv (one process per env)"
    )
    parser.add_argument(
        "--dm-limit", type=int, default=256, help="largest dm_env_rpc batch (one stream per env)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    seconds, warmup = (0.3, 0.1) if args.quick else (args.seconds, 0.5)
    counts = [int(n) for n in args.envs.split(",")]
    rows: list[Row] = []
    python = sys.executable
    try:
        import dm_env_rpc  # noqa: F401
    except ImportError:
        dm_counts = []
        progress("dm_env_rpc is not installed (pip install -e '.[bench]'); skipping it")
    else:
        dm_counts = [n for n in counts if n <= args.dm_limit]
    global BAR  # noqa: PLW0603 (one bar for the whole run, advanced by row())
    BAR = tqdm(
        total=planned_measurements(list(ENVS), counts, args.async_limit) + len(dm_counts),
        desc="[bench] measurements",
        unit="row",
        file=sys.stderr,
    )
    with (
        subprocess_server(
            [
                python,
                "-m",
                "gymrpc_server",
                "--address",
                "127.0.0.1:0",
                "--max-num-envs",
                "4096",
                "--log-level",
                "INFO",
                "--env-module",
                "bench_envs",
            ],
            r"serving on 127\.0\.0\.1:(\d+)",
        ) as gymrpc_port,
        subprocess_server([python, str(HERE / "echo_peer.py")], r"^(\d+)$") as echo_port,
    ):
        gymrpc_target, echo_target = f"127.0.0.1:{gymrpc_port}", f"127.0.0.1:{echo_port}"
        for env_id in ENVS:
            for n in counts:
                progress(f"--- {env_id}, {n} envs")
                unary, sizes = gymrpc_unary(gymrpc_target, env_id, n, seconds, warmup)
                rows.append(unary)
                rows += gymrpc_stream(gymrpc_target, env_id, n, seconds, warmup)
                rows += floor(echo_target, env_id, n, sizes, seconds, warmup)
                if n == 1:
                    rows += paired_one_env(
                        gymrpc_target, echo_target, env_id, sizes, 3 * seconds, rounds=9
                    )
                rows += in_process(env_id, n, seconds, warmup, args.async_limit)
    if dm_counts:
        with subprocess_server([python, str(HERE / "dm_env_rpc_peer.py")], r"^(\d+)$") as dm_port:
            for n in dm_counts:
                rows.append(dm_env_rpc_rows(f"127.0.0.1:{dm_port}", n, seconds, warmup))
    BAR.close()
    BAR = None
    checks = targets(rows)
    info = machine()
    report = markdown(rows, checks, info)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report)
    (args.out / "results.json").write_text(
        json.dumps(
            {"machine": info, "rows": [asdict(r) for r in rows], "targets": checks}, indent=2
        )
    )
    try:
        plot(rows, args.out / "throughput.png")
        progress(f"wrote {args.out / 'results.md'}, results.json and throughput.png")
    except ImportError:
        progress("matplotlib is not installed; no plot")


if __name__ == "__main__":
    main()
