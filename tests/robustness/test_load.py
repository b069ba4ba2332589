"""One server under many clients, and under thousands of session lives, stays correct and flat.

The server runs in its own process, as users run it, so that its memory (``VmRSS``),
threads and file descriptors are read from ``/proc``; the load comes from client
processes (``gymrpc_robustness.py client``). Everything is bounded in count and time:
these are behaviour tests, not speed tests, and ``benchmarks/load.py`` runs the same
scenarios at a larger scale and reports the figures.

The leak bounds are generous on purpose and derived from what a leak would cost:
a session of 16 CartPole environments that is never freed holds about 26 KiB of the
server's memory, so 2,000 leaked sessions are about 50 MiB, while 10,000 healthy
create/close cycles move the server's RSS by less than 2 MiB (measured on the 2-core
CI machine). Likewise a server that leaked a thread or a socket per session, per
connection or per step would be thousands over its baseline, where a healthy one stays
within a few threads: its gRPC worker pool grows whenever more calls than ever overlap
(clients connecting and closing) and never shrinks.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# importlib mode puts no test directory on sys.path; the shared machinery lives here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gymrpc_robustness import (
    ClientReport,
    ProcessStats,
    ServerProcess,
    cycle_sessions,
    open_sessions,
    run_clients,
    wait_until,
)

ENV_IDS = ("gymrpc/Turbofan-v0", "CartPole-v1")
CLIENTS = 32
NUM_ENVS = 16
STEP_SECONDS = 3.0
#: Session lives before the baseline (the worker pool and allocator reach their steady
#: state) and measured after it.
WARMUP_CYCLES = 300
CYCLES = 2000
#: See the module docstring: far above allocator noise, far below what a leak costs.
RSS_GROWTH_MIB = 16.0
THREAD_SLACK = 8
FD_SLACK = 4
SETTLE_SECONDS = 10.0


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A server subprocess with the default configuration."""
    with ServerProcess() as server:
        yield server


def mixed(clients: int) -> list[str]:
    """Alternate the environments: half the clients step each."""
    return [ENV_IDS[index % len(ENV_IDS)] for index in range(clients)]


def assert_no_errors(reports: list[ClientReport]) -> None:
    errors = [(index, report.error) for index, report in enumerate(reports) if report.error]
    assert errors == [], f"{len(errors)} of {len(reports)} clients failed: {errors}"


def settled(server: ServerProcess, baseline: ProcessStats) -> ProcessStats:
    """The server's statistics once closed connections and finished calls are released.

    Connections close asynchronously after the clients are gone; give them a bounded
    moment to come back within the bounds rather than sampling at an arbitrary instant.
    """
    wait_until(
        lambda: (
            (stats := server.stats()).threads <= baseline.threads + THREAD_SLACK
            and stats.fds <= baseline.fds + FD_SLACK
        ),
        SETTLE_SECONDS,
    )
    return server.stats()


def assert_flat(before: ProcessStats, after: ProcessStats, what: str) -> None:
    assert after.rss_mib - before.rss_mib < RSS_GROWTH_MIB, (
        f"the server's RSS grew from {before.rss_mib:.1f} to {after.rss_mib:.1f} MiB {what}"
    )
    assert after.threads <= before.threads + THREAD_SLACK, (
        f"the server had {before.threads} threads and has {after.threads} {what}"
    )
    assert after.fds <= before.fds + FD_SLACK, (
        f"the server had {before.fds} open file descriptors and has {after.fds} {what}"
    )


@pytest.mark.timeout(300)
def test_many_client_processes_step_at_once_without_errors(server: ServerProcess) -> None:
    reports = run_clients(server.target, mixed(CLIENTS), NUM_ENVS, STEP_SECONDS)

    assert_no_errors(reports)
    assert [report.env_id for report in reports] == mixed(CLIENTS)
    for report in reports:
        assert report.num_envs == NUM_ENVS
        assert report.steps > 0
        assert len(report.latencies_us) == report.steps
        assert all(latency > 0 for latency in report.latencies_us)
        assert report.seconds >= STEP_SECONDS
    # All 32 sessions were stepping at the same time: every window overlaps every other.
    assert max(r.started_at for r in reports) < min(r.ended_at for r in reports)
    # Every client closed its session, and the server still serves.
    assert open_sessions(server.target) == 0
    assert server.process.poll() is None


@pytest.mark.timeout(300)
def test_thousands_of_session_lives_leave_the_server_flat(server: ServerProcess) -> None:
    assert cycle_sessions(server.target, WARMUP_CYCLES) == []
    baseline = server.stats()
    client_threads = threading.active_count()

    assert cycle_sessions(server.target, CYCLES) == []

    assert open_sessions(server.target) == 0
    assert_flat(baseline, settled(server, baseline), f"after {CYCLES} session lives")
    # The client side too: every closed env stopped its threads (deadline watchdog, gRPC).
    assert wait_until(lambda: threading.active_count() <= client_threads, SETTLE_SECONDS), [
        thread.name for thread in threading.enumerate()
    ]


@pytest.mark.timeout(300)
def test_a_long_stepping_run_leaves_the_server_flat(server: ServerProcess) -> None:
    clients = mixed(8)
    # The same clients for a short while first: the worker pool grows to their number.
    assert_no_errors(run_clients(server.target, clients, NUM_ENVS, 2.0))
    baseline = server.stats()

    reports = run_clients(server.target, clients, NUM_ENVS, 4 * STEP_SECONDS)

    assert_no_errors(reports)
    # Enough batch steps that leaking 4 KiB per step (less than one batch of turbofan
    # observations, 16 x 10 x 9 float32) would exceed the RSS bound.
    assert sum(report.steps for report in reports) > RSS_GROWTH_MIB * 1024 / 4
    assert open_sessions(server.target) == 0
    assert_flat(baseline, settled(server, baseline), "after the stepping run")
