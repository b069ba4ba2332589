"""The challenge's costs: evaluation sessions against ordinary ones, and records per second.

* Turbofan, 1024 engines, native: steps per second of an ordinary session and of an
  evaluation session on the same server (target: evaluation >= 0.9x ordinary). An
  evaluation session reserves k, seeds every episode from the secret and records every
  episode; an ordinary one records every episode too.
* 32 client processes, each stepping a turbofan session whose engines are sold at once
  (one episode per two steps), for a few seconds: episodes recorded per second by the
  server's writer thread, from its own count (StoreStatus.written), and the longest
  queue of records meanwhile.
* The writer alone (no server, no clients): 20,000 episodes queued at once, then
  flushed: its own ceiling on this machine.

Writes benchmarks/results/scores.md. Run: ``.venv/bin/python benchmarks/bench_scores.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import gymrpc
from gymrpc_server.config import ServerConfig
from gymrpc_server.scores.episodes import Ending, Episode
from gymrpc_server.scores.store import StoreSettings, open_store
from gymrpc_server.server import create_server

HERE = Path(__file__).resolve().parent
TURBOFAN = "gymrpc/Turbofan-v0"


def steps_per_second(target: str, num_envs: int, seconds: float, *, evaluation: bool) -> float:
    """Batch steps per second of one session, after a warm-up."""
    with gymrpc.RemoteVectorEnv(TURBOFAN, num_envs, target=target, evaluation=evaluation) as env:
        env.reset()
        rng = np.random.default_rng(0)
        # Mostly flying, some repairs and sales, as a learning agent does.
        bank = [rng.choice(3, size=num_envs, p=[0.9, 0.07, 0.03]) for _ in range(64)]
        for i in range(20):
            env.step(bank[i % 64])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.step(bank[count % 64])
            count += 1
        return count / (time.perf_counter() - start)


def _client(target: str, seconds: float, num_envs: int, ready: Any) -> tuple[float, float]:
    """One process: sell every engine at once, for ``seconds``.

    Every client connects and resets, then waits at the ``ready`` barrier, so that 32
    process start-ups on two cores do not spread the clients' loops apart in time.

    Returns:
        The wall-clock start and end of its stepping loop.
    """
    with gymrpc.make_vec(TURBOFAN, num_envs, target=target) as env:
        env.reset()
        ready.wait()
        sell = np.full(num_envs, 2, dtype=np.int64)
        start = time.time()
        end = start + seconds
        while time.time() < end:
            env.step(sell)
        return start, time.time()


def records_per_second(
    target: str, store: Any, clients: int, seconds: float
) -> tuple[float, int, int]:
    """Episodes written per second while all ``clients`` processes end episodes constantly.

    The writer's count is sampled every 50 ms while the clients run; the rate is taken over
    the window in which every client was stepping (wall clock, shared by the processes).

    Returns:
        The rate, the episodes written in the window, and the longest queue of records
        seen in it: when it stays small the writer kept up, and the rate is what the
        clients produced, not the writer's limit.
    """
    samples: list[tuple[float, int, int]] = []
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(clients) as pool:
        ready = manager.Barrier(clients)
        pending = pool.starmap_async(_client, [(target, seconds, 4, ready)] * clients)
        while not pending.ready():
            status = store.status()
            samples.append((time.time(), status.written, status.queued))
            time.sleep(0.05)
        windows = pending.get()
    first = max(start for start, _ in windows)
    last = min(end for _, end in windows)
    inside = [sample for sample in samples if first <= sample[0] <= last]
    if last - first < 1.0 or len(inside) < 2:
        raise RuntimeError(
            f"the clients overlapped for {last - first:.2f} s only; raise --load-seconds"
        )
    (t0, w0, _), (t1, w1, _) = inside[0], inside[-1]
    return (w1 - w0) / (t1 - t0), w1 - w0, max(queued for *_, queued in inside)


def writer_capacity(directory: Path, count: int = 20_000) -> float:
    """Episodes per second the writer thread stores alone: ``count`` queued at once, flushed.

    No server and no clients: this is the writer's own ceiling on this machine (SQLite,
    WAL), against which the rate under 32 clients tells who was the limit.
    """
    store = open_store(str(directory / "writer.sqlite3"), StoreSettings(max_queued=count))
    assert store is not None
    now = datetime.now(UTC)
    episodes = [
        Episode.trusted(
            user="bench",
            env_id=TURBOFAN,
            env_options={},
            evaluation=False,
            k=None,
            episode_return=float(i),
            length=36,
            ending=Ending.TERMINATED,
            reason="sold",
            failure=False,
            started_at=now,
            ended_at=now,
            session_id="bench-session",
            episode_id=f"bench-{i:016x}",
        )
        for i in range(count)
    ]
    try:
        start = time.perf_counter()
        for episode in episodes:
            if not store.record(episode):
                raise RuntimeError("the writer's queue refused an episode")
        if not store.flush(timeout=120):
            raise RuntimeError("the writer did not finish in 120 s")
        return count / (time.perf_counter() - start)
    finally:
        store.close()


def main() -> None:
    """Measure and write benchmarks/results/scores.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scores.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(
            address="127.0.0.1:0",
            database=str(Path(tmp) / "scores.sqlite3"),
            max_sessions_per_user=256,
        )
        server, port = create_server(config)
        server.start()
        target = f"127.0.0.1:{port}"
        try:
            ordinary: list[float] = []
            evaluation: list[float] = []
            with tqdm(total=2 * args.rounds + 2, unit="measurement", file=sys.stderr) as bar:
                for _ in range(args.rounds):  # alternate, so that load drifts hit both alike
                    for kind, rates in (("ordinary", ordinary), ("evaluation", evaluation)):
                        rates.append(
                            steps_per_second(
                                target, args.num_envs, args.seconds, evaluation=kind == "evaluation"
                            )
                        )
                        bar.write(f"[bench_scores] {kind}: {rates[-1]:.1f} batch steps/s")
                        bar.update(1)
                rate, written, longest = records_per_second(
                    target, server.store, args.clients, args.load_seconds
                )
                bar.write(f"[bench_scores] {rate:,.0f} episodes recorded per second")
                bar.update(1)
                alone = writer_capacity(Path(tmp))
                bar.write(f"[bench_scores] the writer alone: {alone:,.0f} episodes/s")
                bar.update(1)
        finally:
            server.stop(1.0).wait(30)
    ratio = float(np.median(evaluation) / np.median(ordinary))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = platform.processor() or platform.machine()
    rows = [
        (
            f"ordinary session, turbofan {args.num_envs} envs (batch steps/s, median of "
            f"{args.rounds})",
            f"{np.median(ordinary):,.1f}",
        ),
        ("evaluation session, same (batch steps/s)", f"{np.median(evaluation):,.1f}"),
        ("evaluation / ordinary (target >= 0.9)", f"{ratio:.3f}"),
        (
            f"episodes recorded per second while {args.clients} client processes all "
            "step (SQLite, WAL)",
            f"{rate:,.0f}",
        ),
        ("episodes recorded in that window", f"{written:,}"),
        ("longest queue of records in that window (of --record-queue 10,000)", f"{longest:,}"),
        ("the writer alone: episodes stored per second (20,000 queued at once)", f"{alone:,.0f}"),
    ]
    lines = [
        "# Scores: what evaluation and recording cost",
        "",
        f"`.venv/bin/python benchmarks/bench_scores.py` on {platform.node()} ({cpu}), {when}.",
        "",
        "| measurement | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "Every session records every episode; an evaluation session also reserves its k in",
        "blocks and seeds each episode from the server secret (an HMAC per episode).",
        "",
        f"The writer alone stores {alone:,.0f} episodes per second, {alone / rate:,.0f} times what",
        f"the {args.clients} clients produced: under load the rate is what the clients can",
        "produce on the machine's cores (shared by the clients, the server's stream threads and",
        "the writer), not the writer's limit. The queue's peaks are the writer waiting for a",
        "core and the GIL behind the server's stream threads; evaluation sessions would be",
        "refused (UNAVAILABLE) only at the queue's bound.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
