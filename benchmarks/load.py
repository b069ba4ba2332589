"""gymrpc under load: many client processes on one server, and thousands of session lives.

Runs the scenarios of ``tests/robustness/test_load.py`` at a larger scale and prints a
markdown report. One server process listens on 127.0.0.1; ``--clients`` client
processes with ``--envs`` sub-environments each (``gymrpc/Turbofan-v0`` and
``CartPole-v1``, alternating) step at the same time for ``--seconds``. Step latencies
are the wall time of each ``step`` call measured in the clients. The server's memory,
threads and file descriptors are read from ``/proc`` when it starts, after a warm-up
with the same shape as the measurements (its worker pool grows to the peak number of
streams and stays), after ``--cycles`` session lives (create, reset, step, close,
through the client, each on its own connection) and after the stepping run.

The exit status is 1 if any client failed or any session stayed open. Progress bars
go to stderr, the report to stdout.

Usage::

    .venv/bin/python benchmarks/load.py --clients 32 --envs 16 --seconds 10 --cycles 5000
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
# The scenarios live with the tests that check them at a small scale.
sys.path[:0] = [str(ROOT / "tests" / "robustness"), str(ROOT / "tests" / "support")]
from gymrpc_robustness import (  # noqa: E402
    ClientReport,
    LatencySummary,
    ProcessStats,
    ServerProcess,
    cycle_sessions,
    open_sessions,
    run_clients,
)

ENV_IDS = ("gymrpc/Turbofan-v0", "CartPole-v1")
WARMUP_SECONDS = 2.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="client processes (default 32)")
    parser.add_argument("--envs", type=int, default=16, help="environments per client (16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stepping time (10 s)")
    parser.add_argument("--cycles", type=int, default=5000, help="session lives (5000)")
    parser.add_argument(
        "--cycle-threads", type=int, default=4, help="session lives at once (default 4)"
    )
    args = parser.parse_args(argv)
    for name in ("clients", "envs", "cycles", "cycle_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def lives_with_progress(target: str, cycles: int, threads: int, label: str) -> list[str]:
    """``cycle_sessions`` with a progress bar (on stderr; the report goes to stdout).

    Each life is a ``cycle_sessions`` of one, ``threads`` of them at a time, so that the
    bar moves with every life while as many lives overlap as in one big call (a private
    one-thread pool per life costs about 0.1 ms against the ~17 ms of a life).
    """
    errors: list[str] = []
    with (
        tqdm(total=cycles, desc=f"[load] {label}", unit="life", file=sys.stderr) as bar,
        concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="lives") as pool,
    ):
        for result in pool.map(lambda _: cycle_sessions(target, 1, threads=1), range(cycles)):
            errors += result
            bar.update(1)
    return errors


def clients_with_progress(
    target: str, env_ids: list[str], num_envs: int, seconds: float, label: str
) -> list[ClientReport]:
    """``run_clients`` with a progress bar over its seconds of stepping (on stderr).

    The bar counts wall time from the start of the call: the clients' start-up comes
    first, so it waits at the end until they are done.
    """
    with (
        tqdm(
            total=seconds,
            desc=f"[load] {label}",
            unit="s",
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
        ) as bar,
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clients") as pool,
    ):
        start = time.perf_counter()
        future = pool.submit(run_clients, target, env_ids, num_envs, seconds)
        while True:
            try:
                reports = future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                bar.update(min(time.perf_counter() - start, seconds) - bar.n)
            else:
                bar.update(seconds - bar.n)
                return reports


@dataclass(frozen=True)
class Moment:
    """The server's resources at one point of the run."""

    label: str
    stats: ProcessStats
    sessions: int


def server_flags(args: argparse.Namespace) -> list[str]:
    """Limits that fit the run: every client holds a session and a stream at once."""
    sessions = args.clients + args.cycle_threads + 16
    return [
        "--max-sessions-per-user",
        str(max(64, sessions)),
        "--max-sessions",
        str(max(1024, sessions)),
        "--max-workers",
        str(max(256, sessions + 64)),
        "--max-concurrent-rpcs",
        str(max(240, sessions + 48)),
    ]


def stepping_table(reports: list[ClientReport]) -> list[str]:
    lines = [
        "| environments | clients | batch steps/s | env steps/s | batch steps/s per client "
        "(min / median / max) | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups = [(env_id, [r for r in reports if r.env_id == env_id]) for env_id in ENV_IDS]
    for label, group in [*groups, ("all", reports)]:
        if not group:
            continue
        rates = [report.steps_per_second for report in group]
        env_rate = sum(report.steps_per_second * report.num_envs for report in group)
        latency = LatencySummary.of(group)
        lines.append(
            f"| {label} | {len(group)} | {sum(rates):,.0f} | {env_rate:,.0f} | "
            f"{min(rates):,.1f} / {statistics.median(rates):,.1f} / {max(rates):,.1f} | "
            f"{latency.p50_ms:.1f} | {latency.p99_ms:.1f} | {latency.max_ms:.1f} |"
        )
    return lines


def resources_table(moments: list[Moment]) -> list[str]:
    lines = [
        "| moment | RSS MiB | threads | open fds | sessions open |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for moment in moments:
        stats = moment.stats
        lines.append(
            f"| {moment.label} | {stats.rss_mib:.1f} | {stats.threads} | {stats.fds} "
            f"| {moment.sessions} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Other work on the machine shares its CPUs with the run: say how much there was.
    load_before = os.getloadavg()[0]
    env_ids = [ENV_IDS[index % len(ENV_IDS)] for index in range(args.clients)]
    warmup_cycles = max(args.cycles // 10, 1)
    with ServerProcess(*server_flags(args)) as server:
        moments: list[Moment] = []

        def record(label: str) -> None:
            moments.append(Moment(label, server.stats(), open_sessions(server.target)))

        record("started")
        cycle_errors = lives_with_progress(
            server.target, warmup_cycles, args.cycle_threads, "warm-up lives"
        )
        warmup = clients_with_progress(
            server.target, env_ids, args.envs, WARMUP_SECONDS, "warm-up stepping"
        )
        record(f"after the warm-up ({warmup_cycles} lives, {WARMUP_SECONDS:g} s of stepping)")

        start = time.perf_counter()
        cycle_errors += lives_with_progress(
            server.target,
            args.cycles,
            args.cycle_threads,
            f"session lives, {args.cycle_threads} at a time",
        )
        rate = args.cycles / (time.perf_counter() - start)
        record(f"after {args.cycles} create/close cycles ({rate:,.0f} lives/s)")

        reports = clients_with_progress(
            server.target,
            env_ids,
            args.envs,
            args.seconds,
            f"{args.clients} clients x {args.envs} envs stepping",
        )
        record("after the stepping run")

    failed = [f"client {i}: {r.error}" for i, r in enumerate(warmup + reports) if r.error]
    failed += [f"session life: {error}" for error in cycle_errors]
    stepped = [report for report in reports if report.steps > 0]
    lines = [
        "## gymrpc under load",
        "",
        f"{args.clients} client processes x {args.envs} environments ({' and '.join(ENV_IDS)}, "
        f"alternating) stepping for {args.seconds:g} s at once against one server process "
        f"on 127.0.0.1. Machine: {os.cpu_count()} CPUs (load average {load_before:.1f} before "
        f"the run), Python {platform.python_version()}, grpcio {grpc.__version__}. Latencies "
        "are the wall time of each `step` call measured in the clients; a batch step steps "
        "every environment of a client once.",
        "",
        *(stepping_table(stepped) if stepped else ["No client stepped."]),
        "",
        f"Errors: {len(failed)} (of {2 * args.clients} client runs and "
        f"{warmup_cycles + args.cycles} session lives).",
        *(f"- {error}" for error in failed[:20]),
        "",
        "### Server resources",
        "",
        *resources_table(moments),
        "",
        f"Growth over the {args.cycles} session lives: "
        f"{moments[2].stats.rss_mib - moments[1].stats.rss_mib:+.1f} MiB, "
        f"{moments[2].stats.threads - moments[1].stats.threads:+d} threads; over the stepping "
        f"run: {moments[3].stats.rss_mib - moments[2].stats.rss_mib:+.1f} MiB, "
        f"{moments[3].stats.threads - moments[2].stats.threads:+d} threads.",
    ]
    print("\n".join(lines))
    return 1 if failed or any(moment.sessions for moment in moments) else 0


if __name__ == "__main__":
    sys.exit(main())
