"""One batch over many servers: how throughput scales, and what the client costs.

Three measurements, every server a separate process on 127.0.0.1:

1. **Waiting simulators.** ``gymrpc-scale/Sleep-v0`` sleeps 5 ms per step without using
   the CPU (a stand-in for a heavy external simulator); 64 of them through
   ``SyncVectorEnv`` on 1, 2, 4 and 8 servers. Throughput relative to one server.
2. **CPU-bound.** The turbofan natively, 4096 engines, ``step_size=100``: one server
   process against ``gymrpc-server --workers 2`` (the client finds both workers by
   itself), on this machine's cores, which the client shares. CPU seconds of the client
   and of every server process say where the time goes.
3. **The client's own cost.** ``gymrpc-bench/Null-v0`` (no work at all) on 1, 2, 4 and 8
   servers with one sub-environment each, and on one server with up to 4096: the client
   process's CPU time per batch step, a price per shard (and, from run 2, per
   observation byte). From them, on paper, how many servers one client process can
   drive before it is the bottleneck, next to EnvPool's published scaling.

Usage::

    python benchmarks/bench_sharding.py            # about two minutes
    python benchmarks/bench_sharding.py --quick    # a smoke run

Writes ``benchmarks/results/sharding.md``, ``sharding.json`` and ``sharding.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import gymrpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SUPPORT = ROOT / "tests" / "support"
SLEEP = "gymrpc-scale/Sleep-v0"
NULL = "gymrpc-bench/Null-v0"
TURBOFAN = "gymrpc/Turbofan-v0"
TICKS = os.sysconf("SC_CLK_TCK")
SERVING = re.compile(r"serving on (\S+):(\d+)")
WORKER = re.compile(r"worker (\d+) listening at (\S+) \(pid (\d+)\)")


#: The bar of the whole run (rate and ETA), one tick per measurement; set by main().
BAR: tqdm[Any] | None = None


def progress(message: str) -> None:
    """Print one measurement's result above the bar, and tick the bar."""
    tqdm.write(f"[bench_sharding] {message}", file=sys.stderr)
    if BAR is not None:
        BAR.update(1)


# --- server processes ------------------------------------------------------------------------


@dataclass
class Server:
    """A server process (with its worker processes, if any)."""

    process: subprocess.Popen[str]
    target: str
    pids: list[int] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes so far (parent and workers)."""
        return sum(_cpu_seconds(pid) for pid in self.pids)


def machine_cpu_seconds() -> float:
    """CPU seconds the machine has been busy (all cores, every process), from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / TICKS  # user .. steal; guest time is inside user


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@contextlib.contextmanager
def servers(count: int, *flags: str) -> Iterator[list[Server]]:
    """Start ``count`` server processes at once; yield them when all serve."""
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "GYMRPC_LOG_LEVEL": "INFO",
    }
    command = [
        sys.executable,
        "-m",
        "gymrpc_server",
        "--address",
        "127.0.0.1:0",
        "--env-module",
        "gymrpc_scale_envs",
        "--env-module",
        "bench_envs",
        *flags,
    ]
    processes = [
        subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environ
        )
        for _ in range(count)
    ]
    started: list[Server] = []
    try:
        for process in processes:
            assert process.stderr is not None
            workers: list[int] = []
            for line in process.stderr:
                if match := WORKER.search(line):
                    workers.append(int(match.group(3)))
                if match := SERVING.search(line):
                    target = f"{match.group(1)}:{match.group(2)}"
                    break
            else:
                raise RuntimeError(f"a server exited without serving: {command}")
            # Keep reading, so that a chatty server never blocks on a full pipe.
            stream = process.stderr
            threading.Thread(target=lambda s=stream: [None for _ in s], daemon=True).start()
            started.append(Server(process, target, [process.pid, *workers]))
        yield started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Measurement:
    """Steps of one batch for a while."""

    label: str
    servers: int
    num_envs: int
    steps: int
    seconds: float
    client_cpu: float
    server_cpu: float = 0.0
    #: CPU seconds the whole machine spent meanwhile (other users' work included).
    machine_cpu: float = 0.0

    def __add__(self, other: Measurement) -> Measurement:
        """Two rounds of the same configuration as one."""
        return Measurement(
            self.label,
            self.servers,
            self.num_envs,
            self.steps + other.steps,
            self.seconds + other.seconds,
            self.client_cpu + other.client_cpu,
            self.server_cpu + other.server_cpu,
            self.machine_cpu + other.machine_cpu,
        )

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    @property
    def env_steps_per_second(self) -> float:
        return self.num_envs * self.steps_per_second

    @property
    def client_cpu_per_step_us(self) -> float:
        return 1e6 * self.client_cpu / self.steps


def run(
    env: gymrpc.RemoteVectorEnv,
    label: str,
    seconds: float,
    min_steps: int,
    processes: Sequence[Server] = (),
) -> Measurement:
    """Reset, warm up, then step for ``seconds`` (and at least ``min_steps`` steps)."""
    rng = np.random.default_rng(0)
    bank = [env.action_space.sample() for _ in range(16)]
    env.reset(seed=0)
    for index in range(2):
        env.step(bank[index])
    server_before = sum(server.cpu_seconds() for server in processes)
    machine_before = machine_cpu_seconds()
    cpu_before = time.process_time()
    start = time.perf_counter()
    steps = 0
    while steps < min_steps or time.perf_counter() - start < seconds:
        env.step(bank[int(rng.integers(len(bank)))])
        steps += 1
    elapsed = time.perf_counter() - start
    return Measurement(
        label,
        len(env.shards) if isinstance(env, gymrpc.ShardedVectorEnv) else 1,
        env.num_envs,
        steps,
        elapsed,
        time.process_time() - cpu_before,
        sum(server.cpu_seconds() for server in processes) - server_before,
        machine_cpu_seconds() - machine_before,
    )


def waiting_simulators(seconds: float) -> list[Measurement]:
    """64 sleeping environments on 1, 2, 4 and 8 servers."""
    rows = []
    with servers(8) as started:
        targets = [server.target for server in started]
        for count in (1, 2, 4, 8):
            with gymrpc.make_vec(
                SLEEP, 64, target=targets[:count], vectorization_mode="sync", timeout=120
            ) as env:
                rows.append(run(env, f"{count} servers", seconds, min_steps=8))
            progress(f"sleep env, {count} servers: {rows[-1].steps_per_second:.2f} steps/s")
    return rows


def cpu_bound(seconds: float, num_envs: int, step_size: int, rounds: int) -> list[Measurement]:
    """The turbofan on one server process and on ``--workers 2``, rounds alternating.

    Both servers run throughout (an idle server costs nothing) and the measurements
    alternate, so that a change in the shared machine's load hits both alike.
    """
    totals: dict[str, Measurement] = {}
    with servers(1) as (single,), servers(1, "--workers", "2") as (workers,):
        for _ in range(rounds):
            for label, server in (("1 worker", single), ("--workers 2", workers)):
                with gymrpc.make_vec(
                    TURBOFAN, num_envs, target=server.target, step_size=step_size, timeout=300
                ) as env:
                    measured = run(env, label, seconds, min_steps=5, processes=[server])
                totals[label] = totals[label] + measured if label in totals else measured
                progress(f"turbofan, {label}: {measured.steps_per_second:.2f} steps/s")
    return list(totals.values())


def in_process_turbofan(num_envs: int, step_size: int, steps: int) -> float:
    """Seconds per step of the native turbofan in this process, without any RPC."""
    from gymrpc_server.envs.turbofan import TurbofanVectorEnv

    env = TurbofanVectorEnv(num_envs=num_envs, step_size=step_size)
    env.reset(seed=0)
    actions = np.zeros(num_envs, np.int64)
    env.step(actions)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(actions)
    seconds = (time.perf_counter() - start) / steps
    progress(f"turbofan in-process: {seconds * 1000:.1f} ms per step")
    return seconds


def client_cost(seconds: float, rounds: int) -> list[Measurement]:
    """Client CPU per step: 1 env on 1, 2, 4 and 8 shards; 1 shard of 1 to 4096 envs.

    Each configuration is measured in ``rounds`` rounds and the round with the median
    client CPU per step is kept: the machine is shared, and CPU time still moves with
    the load (cache misses, thread hand-offs).
    """
    rows = []
    configurations = [(count, 1) for count in (1, 2, 4, 8)]
    configurations += [(1, num_envs) for num_envs in (256, 1024, 4096)]
    with servers(8) as started:
        targets = [server.target for server in started]
        for count, per_shard in configurations:
            with gymrpc.make_vec(NULL, per_shard * count, target=targets[:count]) as env:
                measured = [
                    run(env, f"{count} x {per_shard}", seconds, min_steps=200)
                    for _ in range(rounds)
                ]
            measured.sort(key=lambda row: row.client_cpu_per_step_us)
            rows.append(measured[len(measured) // 2])
            progress(
                f"null env, {count} shards x {per_shard}: "
                f"{rows[-1].client_cpu_per_step_us:.0f} us client CPU per step"
            )
    return rows


def fit(xs: Sequence[float], rows: Sequence[Measurement]) -> tuple[float, float]:
    """``(intercept, slope)`` of client CPU per step (us) against ``xs``, least squares."""
    slope, intercept = np.polyfit(xs, [row.client_cpu_per_step_us for row in rows], 1)
    return float(intercept), float(slope)


def by_shards(cost: Sequence[Measurement]) -> list[Measurement]:
    return [row for row in cost if row.num_envs == row.servers]


def by_envs(cost: Sequence[Measurement]) -> list[Measurement]:
    return [row for row in cost if row.servers == 1]


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientModel:
    """Client CPU per batch step: ``per_shard * shards + per_byte * observation bytes``.

    A shard's price is what one single-server step costs the client (a step over one
    shard is exactly that), fitted through the origin on the null environment, whose
    observations are 16 bytes; the price of the observation bytes on top comes from
    the turbofan's run, whose batches are megabytes.
    """

    per_shard: float  # us
    per_byte: float  # us

    @classmethod
    def of(cls, cost: Sequence[Measurement], cpu: Measurement, step_size: int) -> ClientModel:
        shards = by_shards(cost)
        counts = np.array([row.servers for row in shards], dtype=np.float64)
        values = np.array([row.client_cpu_per_step_us for row in shards])
        per_shard = float(counts @ values / (counts @ counts))
        payload = cpu.num_envs * observation_bytes(step_size)
        per_byte = max(cpu.client_cpu_per_step_us - cpu.servers * per_shard, 0.0) / payload
        return cls(per_shard, per_byte)

    def best_servers(self, num_envs: int, env_us: float) -> int:
        """Servers for the fastest step (see the report): k* = sqrt(n * t_env / per_shard)."""
        return max(1, min(num_envs, round(math.sqrt(num_envs * env_us / self.per_shard))))

    def client_us(self, shards: int, num_envs: int, obs_bytes: int) -> float:
        return shards * self.per_shard + num_envs * obs_bytes * self.per_byte


def observation_bytes(step_size: int) -> int:
    """Bytes of one turbofan observation: ``step_size`` rows of 9 float32."""
    return step_size * 9 * 4


#: Cases of the paper estimate: batch size, server time per sub-environment step (us),
#: observation bytes per sub-environment, and what it stands for.
CASES = (
    (64, 5000.0, 16, "the 5 ms simulator of section 1"),
    (1024, 5000.0, 16, "the same, a bigger batch"),
    (4096, 62.0, 3600, "the turbofan at step_size 100 (a 255 ms step on an idle core / 4096)"),
    (4096, 2.0, 16, "a cheap native vector env"),
    (4096, 2.0, 28224, "the same with Atari-sized observations (4 x 84 x 84 bytes)"),
)


def capacity_rows(model: ClientModel) -> list[str]:
    """On paper: the best number of servers per case, and what limits it."""
    lines = [
        "| batch n | t_env | observation | k* servers | client CPU per step | "
        "server time per step | env steps/s | case |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for num_envs, env_us, obs_bytes, case in CASES:
        best = model.best_servers(num_envs, env_us)
        client = model.client_us(best, num_envs, obs_bytes)
        server = num_envs / best * env_us
        rate = num_envs / ((client + server) * 1e-6)
        lines.append(
            f"| {num_envs} | {env_us:g} us | {obs_bytes:,} B | {best} | {client / 1e3:.2f} ms | "
            f"{server / 1e3:.2f} ms | {rate:,.0f} | {case} |"
        )
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{os.cpu_count()} vCPUs ({cpu}), Python {platform.python_version()}, load {load}"


# EnvPool's published scaling, from its benchmark/README.md (sail-sg/envpool, "Highest FPS
# Overview"; FPS counts frames, i.e. steps x frame_skip: 4 for Atari Pong, 5 for MuJoCo
# Ant): EnvPool (async) on a 12-core laptop and a 256-core DGX-A100.
ENVPOOL = {
    "Atari": {"laptop_12": 49_439, "dgx_256": 891_286, "dgx_256_numa": 1_069_922, "skip": 4},
    "MuJoCo": {"laptop_12": 105_126, "dgx_256": 2_363_864, "dgx_256_numa": 3_134_287, "skip": 5},
}


def cores(row: Measurement) -> tuple[float, float, float]:
    """Cores used by the client, the servers and everything else on the machine."""
    client = row.client_cpu / row.seconds
    server = row.server_cpu / row.seconds
    return client, server, max(row.machine_cpu / row.seconds - client - server, 0.0)


def report(
    sleep: list[Measurement],
    cpu: list[Measurement],
    in_process: float,
    cost: list[Measurement],
    args: argparse.Namespace,
) -> str:
    base = sleep[0].steps_per_second
    ratios = {row.servers: row.steps_per_second / base for row in sleep}
    one, two = cpu
    model = ClientModel.of(cost, two, args.step_size)
    lines = [
        "# One batch over many servers",
        "",
        f"`python benchmarks/bench_sharding.py` on {machine()} (1, 5 and 15-minute load "
        "averages at the end: the machine is shared with other work), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Every server is a separate "
        "process on 127.0.0.1. Plot: `sharding.png`; every figure: `sharding.json`.",
        "",
        "## 1. Waiting simulators: 64 envs whose step sleeps 5 ms",
        "",
        "`gymrpc-scale/Sleep-v0` (`tests/support/gymrpc_scale_envs.py`) through "
        "`SyncVectorEnv`, `make_vec(..., target=[...])` over 1 to 8 server processes.",
        "",
        "| servers | batch steps/s | env steps/s | vs 1 server | ideal | target |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    goals = {4: 3.5, 8: 6.0}
    for row in sleep:
        goal = goals.get(row.servers)
        verdict = ""
        if goal is not None:
            verdict = f">= {goal}x: {'met' if ratios[row.servers] >= goal else 'missed'}"
        lines.append(
            f"| {row.servers} | {row.steps_per_second:.2f} | {row.env_steps_per_second:,.0f} | "
            f"{ratios[row.servers]:.2f}x | {row.servers}x | {verdict} |"
        )
    last = sleep[-1]
    lines += [
        "",
        f"Each server steps its share one env after the other ({64 // last.servers} x 5 ms "
        f"plus the sleep's overshoot at {last.servers} servers) and the shards sleep at the "
        "same time. What is missing from the ideal is mostly the client's price per shard "
        f"(section 3: {model.per_shard:.0f} us of CPU per shard per step, so "
        f"{last.servers * model.per_shard / 1e3:.1f} ms of a {1e3 / last.steps_per_second:.0f} "
        "ms step at 8 servers), spent before the requests leave and after the answers "
        "arrive.",
        "",
        f"## 2. CPU-bound: the turbofan, {one.num_envs} engines, step_size {args.step_size}",
        "",
        f"In this process without RPC the native step takes {in_process * 1e3:.0f} ms "
        f"({1 / in_process:.2f} steps/s). One `gymrpc-server` against `gymrpc-server "
        "--workers 2` (the client is given worker 0 and finds worker 1 by itself), measured "
        "in alternating rounds.",
        "",
        "| server | batch steps/s | vs 1 worker | client (cores) | servers (cores) | "
        "other processes (cores) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in cpu:
        client, server, other = cores(row)
        lines.append(
            f"| {row.label} | {row.steps_per_second:.2f} | "
            f"{row.steps_per_second / one.steps_per_second:.2f}x | {client:.2f} | "
            f"{server:.2f} | {other:.2f} |"
        )
    client, server, other = cores(two)
    machine_cores = os.cpu_count() or 1
    payload = one.num_envs * observation_bytes(args.step_size) / 1e6
    lines += [
        "",
        f"**{two.steps_per_second / one.steps_per_second:.2f}x** with 2 workers. What limits "
        f"it: one worker used {cores(one)[1]:.2f} cores (it steps, then serializes "
        f"{payload:.1f} MB of observations, one core at a time); two workers used "
        f"{server:.2f} cores and the client {client:.2f} (receiving, decoding and joining the "
        f"{payload:.1f} MB of every step). During the 2-worker rounds other processes on this "
        f"shared machine took {other:.2f} of its {machine_cores} cores, so the workers had at "
        f"most {max(machine_cores - other - client, 0.0):.2f} cores between them: the ratio "
        "is bounded by the cores the workers can get, not by the protocol. On an idle "
        "2-core machine the parts of a step that cannot overlap still keep it below 2x: "
        "each worker's serialization competes with the other's step for a core, and the "
        "client decodes only after the slower worker has answered.",
        "",
        "## 3. The client's own cost (null environment)",
        "",
        "`gymrpc-bench/Null-v0` (`benchmarks/bench_envs.py`) does nothing: what a step costs "
        "is gymrpc's own work. Client CPU is the client process's CPU time, all threads "
        "(grpcio's included), per batch step; the median of 3 rounds.",
        "",
        "| shards | envs per shard | client CPU per batch step | per shard | wall per batch step |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in cost:
        lines.append(
            f"| {row.servers} | {row.num_envs // row.servers} | "
            f"{row.client_cpu_per_step_us:.0f} us | "
            f"{row.client_cpu_per_step_us / row.servers:.0f} us | "
            f"{1e6 / row.steps_per_second:.0f} us |"
        )
    lines += [
        "",
        f"**{model.per_shard:.0f} us of client CPU per shard per step** (least squares through "
        "the origin): a shard costs the client what a whole single-server step does, which "
        "is building, encoding and sending the request and receiving and decoding the "
        "result, with a thread hand-off each way inside grpcio (about a third of it in the "
        "calling thread, the rest in grpcio's threads). It grows a little with the number "
        "of shards (more threads waking for the GIL); the batch size of a shard barely "
        "matters for these 16-byte observations. Joining the shards' results is a "
        "concatenation per array, once per step. The wall time grows faster than the CPU "
        "time because every shard's server competes for the same 2 cores. Observation "
        f"bytes cost the client about {model.per_byte * 1e3:.2f} ns each (from section 2: client "
        "CPU per step beyond the two shards' price, over the bytes received).",
        "",
        "### On paper: how many servers one client process drives",
        "",
        "A synchronous step over k servers of n envs costs the client about "
        "k x per_shard + n x bytes x per_byte, and the servers n / k x t_env in parallel "
        "(t_env: a server's time per sub-environment step). More servers shorten the "
        "servers' part and lengthen the client's; the sum is least at "
        "**k\\* = sqrt(n x t_env / per_shard)**, where the client's per-shard work equals "
        "the servers' time: beyond it the client is the bottleneck and more servers make "
        "the batch slower.",
        "",
        *capacity_rows(model),
        "",
        f"One client process sustains at most about {1e6 / model.per_shard:,.0f} shard-steps "
        "per second, and receives observations at about "
        f"{1 / max(model.per_byte, 1e-12):,.0f} MB per second of its CPU time. It keeps many "
        "servers busy only when each shard carries enough work to amortize its price: slow "
        "environments (the first rows), or large batches.",
        "",
        "EnvPool's published scaling (its `benchmark/README.md`, "
        'https://github.com/sail-sg/envpool/blob/main/benchmark/README.md, "Highest FPS '
        'Overview", envpool 0.5.3; FPS counts frames, steps x frame_skip):',
        "",
        "| EnvPool (async) | 12-core laptop | 256-core DGX-A100 | DGX-A100, NUMA-pinned | "
        "DGX steps/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, figures in ENVPOOL.items():
        lines.append(
            f"| {name} (frame_skip {figures['skip']}) | {figures['laptop_12']:,} FPS | "
            f"{figures['dgx_256']:,} FPS | {figures['dgx_256_numa']:,} FPS | "
            f"{figures['dgx_256_numa'] // figures['skip']:,} |"
        )
    atari_steps = ENVPOOL["Atari"]["dgx_256_numa"] // ENVPOOL["Atari"]["skip"]
    per_shard_rate = 1e6 / model.per_shard
    atari_cores = atari_steps * 28224 * model.per_byte / 1e6  # per_byte is in us
    lines += [
        "",
        "EnvPool scales inside one machine: a C++ thread pool steps the envs and hands whole "
        "batches to Python without per-env Python work, about 21x (Atari) to 30x (MuJoCo) "
        "from a 12-core laptop to 256 NUMA-pinned cores. gymrpc scales across processes and "
        "machines, at a fixed client price per server per step and a price per observation "
        f"byte. Feeding one gymrpc client at EnvPool's DGX rate of {atari_steps:,} Atari "
        f"steps/s would take, at {per_shard_rate:,.0f} shard-steps/s, at least "
        f"{math.ceil(atari_steps / per_shard_rate)} envs per shard per step, and "
        f"{atari_cores:.1f} cores of client CPU for the observations alone (28,224 bytes "
        "each): one client process reaches EnvPool's single-machine rates only for small "
        "observations in large batches per server; beyond that, several client processes "
        "(one per actor, as IMPALA-style learners use) share the servers.",
        "",
    ]
    return "\n".join(lines)


def plot(sleep: list[Measurement], cost: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    counts = [row.servers for row in sleep]
    base = sleep[0].steps_per_second
    left.plot(counts, counts, "--", color="grey", label="ideal")
    left.plot(counts, [row.steps_per_second / base for row in sleep], "o-", label="measured")
    left.plot([4, 8], [3.5, 6.0], "v", color="tab:red", label="targets (4: 3.5x, 8: 6x)")
    left.set(
        xlabel="servers",
        ylabel="throughput vs 1 server",
        title="64 envs, step sleeps 5 ms",
        xticks=counts,
    )
    left.legend()
    shards = by_shards(cost)
    counts = [row.servers for row in shards]
    per_shard = sum(row.servers * row.client_cpu_per_step_us for row in shards) / sum(
        row.servers**2 for row in shards
    )
    right.plot(counts, [row.client_cpu_per_step_us for row in shards], "o", label="measured")
    right.plot(
        counts,
        [per_shard * count for count in counts],
        "-",
        color="grey",
        label=f"{per_shard:.0f} us x shards",
    )
    right.set(
        xlabel="shards (servers), 1 env each",
        ylabel="client CPU per batch step (us)",
        title="the client's price per shard, null environment",
        xticks=counts,
    )
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short measurements (smoke run)")
    parser.add_argument("--num-envs", type=int, default=4096, help="turbofan batch")
    parser.add_argument("--step-size", type=int, default=100, help="turbofan sub-steps")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the report")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 4.0
    rounds = 1 if args.quick else 2
    global BAR  # noqa: PLW0603 - one bar for the run, ticked by progress()
    # Measurements: 4 server counts, 2 per CPU-bound round, the in-process run, 7 costs.
    with tqdm(total=4 + 2 * rounds + 1 + 7, unit="measurement", file=sys.stderr) as BAR:
        sleep = waiting_simulators(seconds)
        cpu = cpu_bound(2.0 if args.quick else 8.0, args.num_envs, args.step_size, rounds=rounds)
        in_process = in_process_turbofan(args.num_envs, args.step_size, 3 if args.quick else 10)
        cost = client_cost(seconds / 2, rounds=1 if args.quick else 3)
    BAR = None
    text = report(sleep, cpu, in_process, cost, args)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sharding.md").write_text(text)
    (args.out / "sharding.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "waiting_simulators": [asdict(row) for row in sleep],
                "cpu_bound": [asdict(row) for row in cpu],
                "in_process_turbofan_seconds": in_process,
                "client_cost": [asdict(row) for row in cost],
            },
            indent=2,
        )
    )
    plot(sleep, cost, args.out / "sharding.png")


if __name__ == "__main__":
    main()
